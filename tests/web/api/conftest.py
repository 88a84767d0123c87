"""Fixtures for the API tests: an app with an in-memory PKI, API tokens for every operator of
the seeded offices A and B (see tests/web/conftest.py), and `api`, a client that speaks JSON.

Tokens are made through the real service (`issuance.tokens.issue`, by the admin), so the tests
authenticate exactly as a program would.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from cardsys.db import Database
from cardsys.formats.trustlist import build_trust_list
from cardsys.pki import Purpose, Signer
from issuance import status, tokens
from keys.ephemeral import EphemeralPki, ephemeral_pki
from tests.factories import NOW, make_admin
from tests.web.conftest import Clock, World
from verify.sync import init_terminal
from verify.trust import TerminalPolicy
from web import create_app
from web.terminal.state import TerminalState


@pytest.fixture(scope="session")
def pki() -> EphemeralPki:
    return ephemeral_pki(NOW - timedelta(days=30))


@pytest.fixture
def api_app(
    seeded: tuple[Path, World], tmp_path: Path, clock: Clock, pki: EphemeralPki
) -> Iterator[Flask]:
    database = tmp_path / "cardsys.db"
    shutil.copyfile(seeded[0], database)

    def signers(session: Session, purpose: Purpose, now: datetime) -> Signer:
        return pki.signers[purpose]

    app = create_app({
        "TESTING": True,
        "CARDSYS": {"instance_path": tmp_path / "instance", "database_url": f"sqlite:///{database}",
                    "status_list_size": 4096, "issuer": "cardsys-test"},
        "CARDSYS_CLOCK": clock,
        "CARDSYS_SIGNERS": signers,
    })
    yield app
    app.extensions["cardsys_db"].dispose()


def db_of(app: Flask) -> Database:
    db: Database = app.extensions["cardsys_db"]
    return db


def new_key() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Api:
    """A JSON client of /api/v1 that acts as one operator or another (by login)."""

    client: FlaskClient
    tokens: dict[str, str]
    world: World
    clock: Clock
    default: str | None = None
    sent_keys: list[str] = field(default_factory=list)

    @property
    def app(self) -> Flask:
        return self.client.application

    @property
    def db(self) -> Database:
        return db_of(self.app)

    def call(
        self,
        method: str,
        path: str,
        *,
        as_: str | None = None,
        json: Any = None,
        key: str | None = None,
        version: int | str | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> TestResponse:
        """A request; `as_` picks the operator whose token it carries (None: the default)."""
        sent: dict[str, str] = dict(headers or {})
        login = as_ or self.default
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        elif login is not None:
            sent["Authorization"] = f"Bearer {self.tokens[login]}"
        if key is not None:
            sent["Idempotency-Key"] = key
        if version is not None:
            sent["If-Match"] = f'"{version}"' if isinstance(version, int) else version
        url = path if path.startswith("/api/") else f"/api/v1{path}"
        return self.client.open(url, method=method, json=json, headers=sent)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> TestResponse:
        return self.call("POST", path, json=json, **kwargs)

    def create(self, path: str, json: Any = None, **kwargs: Any) -> TestResponse:
        """A creating POST with a fresh Idempotency-Key."""
        key = kwargs.pop("key", None) or new_key()
        self.sent_keys.append(key)
        return self.call("POST", path, json=json, key=key, **kwargs)

    def version(self, number: str, *, as_: str | None = None) -> int:
        response = self.get(f"/cards/{number}", as_=as_)
        assert response.status_code == 200, response.get_json()
        return int(response.get_json()["version"])

    def step(self, number: str, slug: str, *, as_: str | None = None,
             json: Any = None) -> TestResponse:
        """A lifecycle step with the card's current version in If-Match."""
        version = self.version(number, as_=as_)
        if slug in ("replace", "renew"):
            return self.create(f"/cards/{number}/{slug}", json, as_=as_, version=version)
        return self.post(f"/cards/{number}/{slug}", json, as_=as_, version=version)


def issue_tokens(app: Flask, logins: list[str], *, days: int = 30) -> dict[str, str]:
    """A token per login, made by the admin through the service."""
    at: datetime = app.config["CARDSYS_CLOCK"]()
    made = {}
    with db_of(app).transaction() as session:
        admin = make_admin(session)
        for login in logins:
            made[login] = tokens.issue(session, admin, login, name="tests", now=at,
                                       days=days).token
    return made


@pytest.fixture
def api(api_app: Flask, world: World, clock: Clock) -> Api:
    logins = [login for staff in (world.a, world.b)
              for login in (staff.clerk, staff.supervisor, staff.supervisor2, staff.auditor)]
    return Api(api_app.test_client(), issue_tokens(api_app, logins), world, clock,
               default=world.a.clerk)


def problem(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status (and code) and return it."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json(force=True)
    assert body["status"] == status
    assert body["type"] == f"/api/v1/problems/{body['code']}"
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == quote(response.request.path, safe="/:@!$&'()*+,;=-._~")
    if code is not None:
        assert body["code"] == code, body
    return body


def walk_to_active(api: Api, number: str) -> dict[str, Any]:
    """Approve (a supervisor who is not the maker), personalize, hand over and activate."""
    world = api.world
    for slug, who in (("approve", world.a.supervisor), ("personalize", world.a.clerk),
                      ("hand-over", world.a.clerk), ("activate", world.a.clerk)):
        response = api.step(number, slug, as_=who)
        assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    assert body["status"] == "active"
    return body


@dataclass
class Terminal:
    """The app's terminal, synced from its public files (the in-memory PKI's trust list)."""

    app: Flask
    pki: EphemeralPki

    def sync(self, now: datetime) -> None:
        from web.database import settings

        with self.app.app_context():
            config = settings()
            status.publish(db_of(self.app), now=now, settings=config, signers=self._signers)
            document = build_trust_list(
                sequence=int(now.timestamp()), issuer="test", issued_at=now - timedelta(hours=1),
                next_update=now + timedelta(days=7), root=self.pki.root.certificate,
                signers=[(p, s.certificate) for p, s in self.pki.signers.items()],
                crl=self.pki.crl, signer=self.pki.root,
            )
            status.write_trust_list(config, document)
            self.state.sync(now)

    def _signers(self, session: Session, purpose: Purpose, now: datetime) -> Signer:
        return self.pki.signers[purpose]

    @property
    def state(self) -> TerminalState:
        state: TerminalState = self.app.extensions["cardsys_terminal"]
        return state


@pytest.fixture
def terminal(api_app: Flask, pki: EphemeralPki, tmp_path: Path) -> Terminal:
    """Replace the app's terminal by one that trusts the in-memory PKI's root (the full app's
    own would read the root from a key ceremony in the database, which these tests skip)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from web.database import settings

    with api_app.app_context():
        config = settings()
    directory = config.instance_path / "terminal-api-tests"
    init_terminal(pki.root.certificate.public_bytes(Encoding.PEM), directory)
    api_app.extensions["cardsys_terminal"] = TerminalState(
        directory=directory, policy=TerminalPolicy.from_settings(config),
        source=config.instance_path / status.PUBLIC_DIR, sync_every=0,
    )
    return Terminal(api_app, pki)
