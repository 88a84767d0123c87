"""What terminals sync: `/public/trust-list`, `/public/status/<n>`, its index, `/public/root.pem`.

Each answer is public (no login, no cookie), cacheable with a strong ETag over its bytes and a
max-age (a status list's is its ttl), answers `If-None-Match` with 304, and is open to every
origin. `verify.sync` reads them over HTTP and accepts what it reads; a revocation reaches the
served status list with the request that made it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from cryptography import x509
from flask import Flask
from flask.testing import FlaskClient

from cardsys.errors import RevokedError
from cardsys.formats.statuslist import Status, parse_status_list
from cardsys.formats.trustlist import parse_trust_list
from tests.web.conftest import Clock, World, enter, post
from verify.sync import init_terminal, sync
from verify.trust import TerminalPolicy, TrustStore

FILES = ["/public/trust-list", "/public/status/0", "/public/status/index.json",
         "/public/root.pem"]


@pytest.mark.parametrize("path", FILES)
def test_public_file_is_cacheable_and_cookieless(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, path
    body = response.get_data()
    assert response.headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    assert response.headers["Cache-Control"].startswith("public, max-age=")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
    # The security headers stay, but these files may be fetched from any origin.
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


@pytest.mark.parametrize("path", FILES)
def test_if_none_match_gives_304_without_a_body(client: FlaskClient, path: str) -> None:
    etag = client.get(path).headers["ETag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"].startswith("public")
    # A list of tags, a weak form of ours, and "*" all match (RFC 9110 §13.1.2).
    for header in (f'"nope", {etag}', f"W/{etag}", "*"):
        assert client.get(path, headers={"If-None-Match": header}).status_code == 304, header
    other = client.get(path, headers={"If-None-Match": '"' + "0" * 64 + '"'})
    assert other.status_code == 200
    assert other.get_data() == client.get(path).get_data()


def test_status_list_max_age_is_its_ttl(make_app: object) -> None:
    app: Flask = make_app(status_list_ttl=1234)  # type: ignore[operator]
    response = app.test_client().get("/public/status/0")
    assert response.headers["Cache-Control"] == "public, max-age=1234"
    assert response.mimetype == "application/statuslist+cwt"


def test_the_files_are_the_signed_documents(client: FlaskClient, clock: Clock) -> None:
    root = x509.load_pem_x509_certificate(client.get("/public/root.pem").get_data())
    document = client.get("/public/trust-list").get_data()
    trust_list = parse_trust_list(document, root=root, now=clock.now, previous_sequence=None,
                                  grace=timedelta(days=3))
    assert trust_list.sequence >= 1
    index = json.loads(client.get("/public/status/index.json").get_data())
    token = client.get("/public/status/0").get_data()
    assert index == {"lists": [0], "sha256": {"0": hashlib.sha256(token).hexdigest()}}
    parsed = parse_status_list(token)
    assert parsed.uri.endswith("/public/status/0")


@pytest.mark.parametrize("shard", ["7", "99999", "-1", "0x0", "１", "9" * 12, "..%2Findex.json"])
def test_unknown_or_malformed_shard_is_404_without_a_cookie(client: FlaskClient,
                                                             shard: str) -> None:
    response = client.get(f"/public/status/{shard}")
    assert response.status_code == 404
    assert "Set-Cookie" not in response.headers


def test_no_trust_list_yet_is_404(tmp_path: Path) -> None:
    from cardsys.models import Base
    from web import create_app

    app = create_app({"TESTING": True, "CARDSYS": {"instance_path": tmp_path}})
    Base.metadata.create_all(app.extensions["cardsys_db"].engine)
    client = app.test_client()
    for path in ("/public/trust-list", "/public/root.pem", "/public/status/0"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Set-Cookie" not in response.headers
    assert client.get("/public/status/index.json").get_json() == {"lists": [], "sha256": {}}
    app.extensions["cardsys_db"].dispose()


def test_public_files_refuse_writes(client: FlaskClient) -> None:
    for path in FILES:
        assert client.post(path).status_code in (400, 405), path


# --- terminal sync over HTTP, and a revocation reaching the list -------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app on a real socket (127.0.0.1, a free port), as `cardsys terminal sync` sees it."""
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_terminal_syncs_over_http_and_sees_a_revocation(
    app: Flask, client: FlaskClient, served: str, world: World, clock: Clock, tmp_path: Path
) -> None:
    terminal = tmp_path / "terminal"
    init_terminal(client.get("/public/root.pem").get_data(), terminal)
    report = sync(served, terminal, now=clock.now)
    assert report.updated == (0,)
    store = TrustStore.load(terminal, now=clock.now, policy=TerminalPolicy())
    uri = next(iter(store.status_lists()))
    index = _slot(app, world.active_card)
    assert store.status(uri, index, now=int(clock.now.timestamp())).value == "good"

    # A supervisor revokes the card in the office; the same request republishes its shard.
    enter(client, world.a.supervisor)
    clock.advance(seconds=5)
    response = post(client, f"/office/cards/{world.active_card}/revoke",
                    {"version": str(_version(app, world.active_card)), "reason": "fraud",
                     "confirm": "yes"})
    assert response.status_code == 303
    token = client.get("/public/status/0").get_data()
    assert parse_status_list(token).lookup(index) is Status.REVOKED

    report = sync(served, terminal, now=clock.now)
    assert report.updated == (0,)
    store = TrustStore.load(terminal, now=clock.now, policy=TerminalPolicy())
    with pytest.raises(RevokedError):
        store.status(uri, index, now=int(clock.now.timestamp()))


def _slot(app: Flask, number: str) -> int:
    from cardsys.models import Card

    with app.app_context():
        from web.database import transaction

        with transaction() as db:
            card = db.query(Card).filter_by(number=number).one()
            assert card.status_index is not None
            return card.status_index


def _version(app: Flask, number: str) -> int:
    from cardsys.models import Card

    with app.app_context():
        from web.database import transaction

        with transaction() as db:
            return db.query(Card).filter_by(number=number).one().version
