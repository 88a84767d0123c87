"""The terminal page: verification through `verify.check_qr` with a synced trust store.

Inside the full app the terminal trusts `<instance>/terminal`, synced from the app's own
public files; alone (`web.terminal_app`) it has no database at all. Verdicts: valid, replayed
(the same QR twice), revoked (after the office revoked the card and the terminal synced),
and refusals for junk and for a terminal that has nothing to trust yet.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from cardsys.models import Card, Photo
from tests.cli import run_cli
from tests.web.conftest import Clock, World, csrf_token, enter, post
from tests.web.test_portal import phone
from web import terminal_app
from web.database import transaction
from web.terminal.setup import mirror_public


def scan(client: FlaskClient, text: str, *, as_json: bool = True) -> Any:
    """What the page's script sends when the scanner typed `text` and Enter."""
    headers = {"Accept": "application/json"} if as_json else {}
    return client.post("/terminal/verify", headers=headers,
                       data={"qr": text, "csrf_token": csrf_token(client, "/terminal/")})


def sync(client: FlaskClient) -> None:
    response = client.post("/terminal/sync", headers={"Accept": "application/json"},
                           data={"csrf_token": csrf_token(client, "/terminal/")})
    assert response.status_code == 200
    assert response.get_json()["ok"], response.get_json()


def test_valid_then_replayed(client: FlaskClient, world: World, clock: Clock) -> None:
    wallet, _data = phone(client, world)
    text = wallet.presentation(clock.now)
    sync(client)
    first = scan(client, text).get_json()
    assert first["valid"] is True
    assert first["reason"] == "valid"
    assert first["reason_text"] == "The card is valid."
    assert first["card"]["card_number"] == world.active_card
    assert first["card"]["surname"] == "Chen"
    assert first["card"]["evidence"] == "presentation"
    assert first["last_sync"] is not None
    again = scan(client, text).get_json()
    assert again["valid"] is False
    assert again["reason"] == "replayed"
    assert again["card"] is None
    # A fresh proof from the same phone is fine.
    clock.advance(seconds=30)
    assert scan(client, wallet.presentation(clock.now)).get_json()["valid"] is True


def test_revoked_after_the_office_revokes_and_the_terminal_syncs(
    app: Flask, client: FlaskClient, world: World, clock: Clock
) -> None:
    wallet, _ = phone(client, world)
    sync(client)
    assert scan(client, wallet.presentation(clock.now)).get_json()["valid"] is True
    enter(client, world.a.supervisor)
    with app.app_context(), transaction() as db:
        version = db.scalars(select(Card.version).where(Card.number == world.active_card)).one()
    clock.advance(seconds=2)
    response = post(client, f"/office/cards/{world.active_card}/revoke",
                    {"version": str(version), "reason": "stolen", "confirm": "yes"})
    assert response.status_code == 303
    # Before the sync the terminal still holds the old list: the card passes (that is what
    # offline means); after it, the phone's card is revoked with its chip card. (The app's
    # own terminal also syncs by itself once its last sync is 30 s old.)
    clock.advance(seconds=2)
    assert scan(client, wallet.presentation(clock.now)).get_json()["valid"] is True
    sync(client)
    clock.advance(seconds=2)
    refused = scan(client, wallet.presentation(clock.now)).get_json()
    assert refused["valid"] is False
    assert refused["reason"] == "revoked"
    assert refused["reason_text"] == "The card is revoked."


def test_the_page_works_without_a_script(client: FlaskClient, world: World,
                                         clock: Clock) -> None:
    wallet, _ = phone(client, world)
    sync(client)
    page = scan(client, wallet.presentation(clock.now), as_json=False)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'class="verdict valid"' in text
    assert ">VALID<" in text
    assert world.active_card in text


@pytest.mark.parametrize(("text", "reason"), [
    ("", "bad_encoding"),
    ("hello", "bad_encoding"),
    ("SSP1:" + "A" * 30, "bad_encoding"),
    ("SSC1:%%%", "bad_encoding"),
])
def test_junk_is_refused_with_a_reason(client: FlaskClient, text: str, reason: str) -> None:
    sync(client)
    verdict = scan(client, text).get_json()
    assert verdict["valid"] is False
    assert verdict["reason"] == reason
    assert verdict["reason_text"]


def test_a_stale_code_is_refused(client: FlaskClient, world: World, clock: Clock) -> None:
    wallet, _ = phone(client, world)
    sync(client)
    text = wallet.presentation(clock.now - timedelta(minutes=5))
    assert scan(client, text).get_json()["reason"] == "stale_proof"


def test_an_oversized_scan_is_413(client: FlaskClient) -> None:
    response = client.post("/terminal/verify", data={"qr": "A" * 9000,
                                                     "csrf_token": csrf_token(client,
                                                                              "/terminal/")})
    assert response.status_code == 413


def test_verification_needs_the_csrf_token(client: FlaskClient) -> None:
    assert client.post("/terminal/verify", data={"qr": "x"}).status_code == 400


def test_the_page_shows_the_last_sync_and_the_chinese_words(client: FlaskClient) -> None:
    sync(client)
    page = client.get("/terminal/").get_data(as_text=True)
    assert re.search(r'id="last-sync" datetime="20[^"]+">20[0-9-]+ [0-9:]+ UTC<', page)
    assert 'autofocus' in page
    client.set_cookie("lang", "zh_Hans")
    verdict = scan(client, "hello").get_json()
    assert verdict["reason_text"] == "这不是可读取的卡码，请重新扫描。"


def test_photo_by_digest(app: Flask, client: FlaskClient) -> None:
    content = b"\xff\xd8\xff\xe0" + b"portrait" * 20
    digest = hashlib.sha256(content).hexdigest()
    with app.app_context(), transaction() as db:
        db.add(Photo(sha256=digest, media_type="image/jpeg", content=content))
    response = client.get(f"/terminal/photo/{digest}")
    assert response.status_code == 200
    assert response.get_data() == content
    assert response.mimetype == "image/jpeg"
    assert "public" not in response.headers["Cache-Control"]
    for bad in ("0" * 64, digest[:63], digest.upper(), "../" + digest[3:]):
        assert client.get(f"/terminal/photo/{bad}").status_code == 404, bad


# --- the terminal alone --------------------------------------------------------------------------


def test_standalone_terminal_has_no_database(app: Flask, client: FlaskClient, world: World,
                                             clock: Clock, tmp_path: Path) -> None:
    wallet, _ = phone(client, world)
    settings = app.config["CARDSYS_SETTINGS"]
    root_pem = mirror_public(app.extensions["cardsys_db"], settings)
    from verify.sync import init_terminal

    trust = tmp_path / "counter"
    init_terminal(root_pem, trust)
    alone = terminal_app(trust, sync_from=str(settings.instance_path / "public"),
                         settings=settings, test_config={"TESTING": True}, clock=lambda: clock.now)
    assert "cardsys_db" not in alone.extensions
    endpoints = {rule.endpoint for rule in alone.url_map.iter_rules()}
    assert not any(e.startswith(("office.", "portal.", "api.", "public.")) for e in endpoints)
    counter = alone.test_client()
    counter.set_cookie("lang", "en")
    # Nothing synced yet: the terminal says so and refuses.
    first = scan(counter, wallet.presentation(clock.now)).get_json()
    assert first["valid"] is False
    assert first["reason"] == "bad_trust_list"
    sync(counter)
    valid = scan(counter, wallet.presentation(clock.now)).get_json()
    assert valid["valid"] is True
    assert valid["card"]["photo_url"] is None  # no photo source for a directory sync
    assert counter.get("/").headers["Location"] == "/terminal/"
    page = counter.get("/terminal/").get_data(as_text=True)
    assert "Sync now" in page


def test_replays_are_shared_by_workers_and_kept_across_a_restart(
    app: Flask, client: FlaskClient, world: World, clock: Clock, tmp_path: Path
) -> None:
    wallet, _ = phone(client, world)
    settings = app.config["CARDSYS_SETTINGS"]
    from verify.sync import init_terminal

    trust = tmp_path / "counter"
    init_terminal(mirror_public(app.extensions["cardsys_db"], settings), trust)
    text = wallet.presentation(clock.now)

    def counter() -> FlaskClient:
        alone = terminal_app(trust, sync_from=str(settings.instance_path / "public"),
                             settings=settings, test_config={"TESTING": True},
                             clock=lambda: clock.now)
        return alone.test_client()

    # Two worker processes of one terminal (as gunicorn runs them), both started already.
    first, second = counter(), counter()
    sync(first)
    assert scan(first, text).get_json()["valid"] is True
    assert scan(second, text).get_json()["reason"] == "replayed"
    # And one started after a restart.
    assert scan(counter(), text).get_json()["reason"] == "replayed"


# --- cardsys terminal serve ----------------------------------------------------------------------


def _serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> tuple[int, str, Any]:
    """Run `cardsys terminal serve ...` with the server replaced: (exit code, output, the
    app factory and address the command would have served)."""

    from web.terminal import setup

    served: dict[str, Any] = {}

    def fake_serve(factory: Any, *, host: str, port: int, threads: int = 4) -> None:
        served.update(factory=factory, host=host, port=port)

    monkeypatch.setattr(setup, "serve", fake_serve)
    env = {"CARDSYS_INSTANCE_PATH": str(tmp_path / "unused")}
    result = run_cli(env, "terminal", "serve", *args)
    return result.code, result.out + result.err, served


def test_terminal_serve_needs_a_pinned_root(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    code, text, served = _serve(monkeypatch, tmp_path, "--trust", str(tmp_path / "empty"))
    assert code == 1
    assert "terminal init" in text
    assert not served


def test_terminal_serve_builds_the_standalone_app(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from verify.sync import init_terminal

    settings = app.config["CARDSYS_SETTINGS"]
    trust = tmp_path / "counter"
    init_terminal(mirror_public(app.extensions["cardsys_db"], settings), trust)
    code, text, served = _serve(monkeypatch, tmp_path, "--trust", str(trust), "--port", "8123",
                                "--sync-from", str(settings.instance_path / "public"))
    assert code == 0, text
    assert served["host"] == "127.0.0.1"
    assert served["port"] == 8123
    # The factory starts the background sync (not under TESTING): count it, don't run it.
    from web.terminal.state import TerminalState

    started: list[TerminalState] = []
    monkeypatch.setattr(TerminalState, "start_background_sync",
                        lambda self: started.append(self))
    alone = served["factory"]()
    assert "cardsys_db" not in alone.extensions
    assert alone.extensions["cardsys_terminal"].directory == trust
    assert started == [alone.extensions["cardsys_terminal"]]
    assert started[0].sync_every == 300
