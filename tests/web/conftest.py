"""Fixtures for the web tests, after the Flask tutorial's: `app`, `client`, `office` (logins).

The schema is built with `Base.metadata.create_all` on a fresh SQLite file (the web tables are
not in the migrations yet). A template database is seeded once per session through the real
services (`tests.factories`): offices A and B, each with a clerk, two supervisors and an
auditor, a resident and a card; every test gets its own copy. All operators share one password
hash, so argon2 runs once at seeding and once per login.

The template also holds a development PKI made by the key ceremony with an in-memory key store
(`keys.ephemeral`, kept for the session; the apps sign through it via `CARDSYS_SIGNERS`), a
third resident of office A with an ACTIVE chip card (for digital cards), and the status lists
as published.
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from cardsys.config import load_settings
from cardsys.db import Database
from cardsys.lifecycle import CardStatus
from cardsys.models import Base, Operator
from cardsys.pki import Purpose, Signer
from issuance import operators, status
from keys import ceremony
from keys.ephemeral import EphemeralKeyStore
from tests.factories import (
    DEFAULT_BIRTH,
    NOW,
    Staff,
    make_admin,
    make_card,
    make_office,
    make_resident,
)
from verify.trust import TrustStore
from web import create_app

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_FORM_KEY = re.compile(r'name="form_key" value="([^"]+)"')


@dataclass(frozen=True)
class World:
    """What the template database holds."""

    a: Staff
    b: Staff
    resident_a: str
    resident_b: str
    card_a: str
    card_b: str
    name_a: str
    name_b: str
    #: Office A's resident with an ACTIVE chip card, for digital cards.
    active_resident: str
    active_card: str
    active_birth: str
    active_name: str


class Clock:
    """The app's clock, which a test can move."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


#: Where every test's clock starts (the template's status lists are published a minute before).
START = NOW + timedelta(days=1)
#: The development PKI's keys, in memory for the whole session (the template names them).
KEYS = EphemeralKeyStore()


def signers(session: Any, purpose: Purpose, now: datetime) -> Signer:
    """The apps' signer source: the ceremony's active signer, from the in-memory store."""
    return ceremony.active_signer(session, KEYS, purpose, now)


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, World]:
    path = tmp_path_factory.mktemp("web-template") / "cardsys.db"
    url = f"sqlite:///{path}"
    database = Database(url)
    Base.metadata.create_all(database.engine)
    settings = load_settings(env={}, overrides={"database_url": url,
                                                "instance_path": path.parent})
    with database.transaction() as session:
        a = make_office(session, "OFF-A", "110101")
        b = make_office(session, "OFF-B", "310104")
        holder_a = make_resident(session, a.clerk_in(session), 1, surname="Wang",
                                 given_names="Fang")
        holder_b = make_resident(session, b.clerk_in(session), 2, surname="Li",
                                 given_names="Wei", region="310104")
        card_a = make_card(session, a, holder_a, settings=settings, status=CardStatus.APPLIED)
        card_b = make_card(session, b, holder_b, settings=settings, status=CardStatus.APPLIED)
        ceremony.ensure_development_pki(session, KEYS, make_admin(session), settings=settings,
                                        now=NOW - timedelta(days=1))
        holder_c = make_resident(session, a.clerk_in(session), 3, surname="Chen",
                                 given_names="Jing")
        active = make_card(session, a, holder_c, settings=settings)
        hashed = operators.hash_password(PASSWORD)
        for operator in session.scalars(select(Operator).where(Operator.office_id.is_not(None))):
            operator.password_hash = hashed
        world = World(a=a, b=b, resident_a=holder_a.id_number, resident_b=holder_b.id_number,
                      card_a=card_a.number, card_b=card_b.number, name_a="Wang Fang",
                      name_b="Li Wei", active_resident=holder_c.id_number,
                      active_card=active.number, active_birth=DEFAULT_BIRTH.isoformat(),
                      active_name="Chen Jing")
    status.publish(database, now=START - timedelta(minutes=1), settings=settings,
                   signers=signers)
    database.dispose()
    return path, world


@pytest.fixture
def signer_source() -> Any:
    """The apps' signer source (a fixture: this module is also imported under another name
    by the tests that import its helpers, and that copy holds no keys)."""
    return signers


@pytest.fixture
def world(seeded: tuple[Path, World]) -> World:
    return seeded[1]


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def make_app(
    seeded: tuple[Path, World], tmp_path: Path, clock: Clock
) -> Iterator[Any]:
    """A factory: `make_app(secure_cookies=True)` builds another app on the same database."""
    database = tmp_path / "cardsys.db"
    shutil.copyfile(seeded[0], database)
    made: list[Flask] = []

    def build(**settings: Any) -> Flask:
        app = create_app({
            "TESTING": True,
            "CARDSYS": {"instance_path": tmp_path / "instance",
                        "database_url": f"sqlite:///{database}", **settings},
            "CARDSYS_CLOCK": clock,
            "CARDSYS_SIGNERS": signers,
        })
        made.append(app)
        return app

    yield build
    for app in made:
        app.extensions["cardsys_db"].dispose()


@pytest.fixture
def app(make_app: Any) -> Flask:
    app: Flask = make_app()
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.set_cookie("lang", "en")
    return client


def csrf_token(client: FlaskClient, path: str = "/") -> str:
    """A valid CSRF token of the client's session, read from a page's form."""
    match = _CSRF.search(client.get(path).get_data(as_text=True))
    assert match is not None, f"no CSRF token on {path}"
    return match.group(1)


def form_key(page: str) -> str:
    """The first form key on a page."""
    match = _FORM_KEY.search(page)
    assert match is not None, "no form key on the page"
    return match.group(1)


def login(client: FlaskClient, name: str, password: str = PASSWORD) -> TestResponse:
    """Sign in through the login form."""
    token = csrf_token(client)
    return client.post("/office/login", data={"login": name, "password": password,
                                              "csrf_token": token})


def enter(client: FlaskClient, name: str) -> None:
    """Sign in without the login form: a server session made directly (no argon2 check).

    For tests whose subject is not the login itself; `login` goes through the form.
    """
    from issuance.operators import get_operator
    from web import auth
    from web.database import now, transaction

    app = client.application
    with app.app_context(), transaction() as db:
        token = auth.start(db, get_operator(db, name), at=now())
    with client.session_transaction() as session:
        session[auth.SESSION_KEY] = token


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None,
         **kwargs: Any) -> TestResponse:
    """POST a form with a valid CSRF token and a fresh form key (unless `data` names them)."""
    fields = {"csrf_token": csrf_token(client), "form_key": secrets.token_urlsafe(16),
              **(data or {})}
    return client.post(path, data=fields, **kwargs)


def terminal_store(app: Flask) -> TrustStore:
    """The app's own terminal, synced now from the app's public files."""
    terminal = app.extensions["cardsys_terminal"]
    now = app.config["CARDSYS_CLOCK"]()
    with app.app_context():
        terminal.sync(now)
        store: TrustStore = terminal.store(now)
    return store
