"""The key status page (supervisors and auditors) and the background publication of lists."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from cardsys.formats.statuslist import Status, parse_status_list
from cardsys.lifecycle import Reason
from cardsys.models import Card
from issuance import cards
from issuance.operators import get_operator
from tests.web.conftest import START, World, enter
from web import create_app


def test_supervisor_sees_signers_rotation_and_sequence(client: FlaskClient, world: World) -> None:
    enter(client, world.a.supervisor)
    response = client.get("/office/keys")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Root CA (DEVELOPMENT)" in page
    assert 'id="trust-list-sequence">1<' in page
    for words in ("digital credentials", "status lists", "chip documents", "trust list",
                  "signing"):
        assert words in page, words
    assert "no active signer" not in page
    # Read-only: no form but the language switch and sign-out.
    assert page.count("<form") == 2


def test_auditor_sees_it_too_and_clerk_does_not(client: FlaskClient, world: World) -> None:
    enter(client, world.a.auditor)
    assert client.get("/office/keys").status_code == 200
    assert "/office/keys" in client.get("/office/").get_data(as_text=True)
    enter(client, world.a.clerk)
    assert client.get("/office/keys").status_code == 403
    assert "/office/keys" not in client.get("/office/").get_data(as_text=True)


def test_background_poll_publishes_changes_made_elsewhere(
    seeded: tuple[Path, World], signer_source: Any, tmp_path: Path
) -> None:
    """A change from outside the web (the CLI, another worker) reaches the served list."""
    import shutil

    world = seeded[1]
    database = tmp_path / "cardsys.db"
    shutil.copyfile(seeded[0], database)
    app = create_app({
        "CARDSYS": {"instance_path": tmp_path / "instance", "database_url": f"sqlite:///{database}"},
        "CARDSYS_SIGNERS": signer_source, "PUBLISH_POLL_SECONDS": 0.05,
        "CARDSYS_CLOCK": lambda: START,
    })
    try:
        db = app.extensions["cardsys_db"]
        with db.transaction() as session:
            card = session.query(Card).filter_by(number=world.active_card).one()
            index = card.status_index
            cards.suspend(session, get_operator(session, world.a.clerk), card,
                          reason=Reason.LOST, now=START)
        client = app.test_client()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            token = client.get("/public/status/0").get_data()
            if parse_status_list(token).lookup(index) is Status.SUSPENDED:
                break
            time.sleep(0.05)
        assert parse_status_list(token).lookup(index) is Status.SUSPENDED
    finally:
        app.extensions["cardsys_poller"].stop()
        app.extensions["cardsys_poller"].join(timeout=10)
        db.dispose()


def test_a_failed_publication_never_fails_the_request(
    make_app: Any, world: World, signer_source: Any
) -> None:
    """Without the status-list key the office still works; the shard stays marked and goes
    out with the next publication that has the key."""
    from cardsys.errors import NoActiveSignerError
    from cardsys.models import StatusListDirty
    from cardsys.pki import Purpose
    from tests.web.conftest import post
    from web.publication import publish_now

    def no_status_key(session: Any, purpose: Purpose, now: Any) -> Any:
        if purpose is Purpose.STATUS_LIST:
            raise NoActiveSignerError("the status-list key is not here")
        return signer_source(session, purpose, now)

    app: Flask = make_app()
    app.extensions["cardsys_signers"] = no_status_key
    client = app.test_client()
    enter(client, world.a.supervisor)
    db = app.extensions["cardsys_db"]
    with db.transaction() as session:
        card = session.query(Card).filter_by(number=world.active_card).one()
        version, index = card.version, card.status_index
    response = post(client, f"/office/cards/{world.active_card}/suspend",
                    {"version": str(version), "reason": "lost"})
    assert response.status_code == 303
    with db.transaction() as session:
        assert session.query(StatusListDirty).count() == 1
    assert parse_status_list(client.get("/public/status/0").get_data()).lookup(index) \
        is Status.VALID
    app.extensions["cardsys_signers"] = signer_source
    with app.test_request_context():
        assert [p.list_number for p in publish_now()] == [0]
    assert parse_status_list(client.get("/public/status/0").get_data()).lookup(index) \
        is Status.SUSPENDED
