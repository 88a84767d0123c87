"""API tokens: who may make them, that they are hashed at rest, and every way one stops
working (expired, revoked, unknown, malformed, operator deactivated)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from cardsys.cli_tokens import token_group
from cardsys.clikit import App
from cardsys.errors import (
    LimitExceededError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from cardsys.models import ApiToken, Operator
from issuance import tokens
from tests.factories import make_admin
from tests.web.api.conftest import Api, db_of, problem


def test_a_token_acts_as_its_operator(api: Api) -> None:
    world = api.world
    me = api.get("/me", as_=world.a.supervisor).get_json()
    assert (me["login"], me["role"], me["office"]) == (world.a.supervisor, "supervisor", "OFF-A")
    assert api.tokens[world.a.supervisor].startswith(me["token"]["prefix"])


def test_only_the_digest_is_stored(api: Api) -> None:
    token = api.tokens[api.world.a.clerk]
    with api.db.transaction() as session:
        row = session.scalar(select(ApiToken).where(
            ApiToken.token_sha256 == hashlib.sha256(token.encode()).hexdigest()))
        assert row is not None
        stored = [str(v) for v in session.execute(select(ApiToken.__table__)).all()]
    assert not any(token in text or token[len(row.prefix):] in text for text in stored)


def test_no_token_and_wrong_tokens_are_401_with_a_challenge(api: Api) -> None:
    missing = problem(api.client.get("/api/v1/cards"), 401, "unauthenticated")
    assert "Bearer" in missing["detail"]
    response = api.client.get("/api/v1/cards")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="cardsys"'
    real = api.tokens[api.world.a.clerk]
    for wrong in ("cst_" + "A" * 43, real[:-1], real + "x", "nonsense", real.upper()):
        refused = api.get("/cards", token=wrong)
        problem(refused, 401, "unauthenticated")
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    for header in (f"Basic {real}", real, f"Bearer {real} extra", "Bearer"):
        problem(api.client.get("/api/v1/cards", headers={"Authorization": header}), 401)
    # The scheme is case-insensitive (RFC 9110 §11.1).
    ok = api.client.get("/api/v1/cards", headers={"Authorization": f"bearer {real}"})
    assert ok.status_code == 200


def test_expired_revoked_and_deactivated(api: Api, api_app: Flask) -> None:
    world = api.world
    token = api.tokens[world.a.clerk]
    at = api.clock.now
    with api.db.transaction() as session:
        admin = make_admin(session)
        short = tokens.issue(session, admin, world.a.auditor, name="short", now=at, days=1)
    assert api.get("/cards", token=short.token).status_code == 200
    api.clock.advance(days=1)
    expired = problem(api.get("/cards", token=short.token), 401)
    assert "expired" in expired["detail"]
    with api.db.transaction() as session:
        row = tokens.tokens_of(session, make_admin(session), world.a.clerk)[0]
        tokens.revoke(session, make_admin(session), world.a.clerk, row.id, now=api.clock.now)
    assert "revoked" in problem(api.get("/cards", token=token), 401)["detail"]
    assert api.get("/cards", as_=world.a.supervisor).status_code == 200
    with api.db.transaction() as session:
        boss = session.scalar(select(Operator).where(Operator.login == world.a.supervisor))
        assert boss is not None
        boss.active = False
    problem(api.get("/cards", as_=world.a.supervisor), 401)


def test_last_use_is_recorded_at_most_once_a_minute(api: Api) -> None:
    login = api.world.a.clerk

    def last_used() -> object:
        with api.db.transaction() as session:
            return tokens.tokens_of(session, make_admin(session), login)[0].last_used_at

    assert last_used() is None
    api.get("/cards")
    first = last_used()
    assert first == api.clock.now
    api.clock.advance(seconds=30)
    api.get("/cards")
    assert last_used() == first
    api.clock.advance(seconds=31)
    api.get("/cards")
    assert last_used() == api.clock.now


def test_who_may_make_tokens(api_app: Flask, api: Api) -> None:
    world = api.world
    at = api.clock.now
    with db_of(api_app).transaction() as session:
        clerk = session.scalar(select(Operator).where(Operator.login == world.a.clerk))
        assert clerk is not None
        mine = tokens.issue(session, clerk, world.a.clerk, name="my script", now=at)
        assert mine.login == world.a.clerk
        assert mine.token not in repr(mine)
        with pytest.raises(PermissionDeniedError):
            tokens.issue(session, clerk, world.a.supervisor, name="x", now=at)
        with pytest.raises(PermissionDeniedError):
            tokens.revoke(session, clerk, world.a.supervisor, 1, now=at)
        admin = make_admin(session)
        with pytest.raises(PermissionDeniedError, match="office operators"):
            tokens.issue(session, admin, admin.login, name="x", now=at)
        with pytest.raises(NotFoundError):
            tokens.issue(session, admin, "system", name="x", now=at)
        with pytest.raises(NotFoundError):
            tokens.issue(session, admin, "nobody", name="x", now=at)
        for name, days in (("", 1), ("x", 0), ("x", tokens.MAX_DAYS + 1), ("a\x00b", 1)):
            with pytest.raises(ValidationError):
                tokens.issue(session, admin, world.a.clerk, name=name, now=at, days=days)
        with pytest.raises(NotFoundError):
            tokens.revoke(session, admin, world.a.clerk, 10_000, now=at)
    with db_of(api_app).transaction() as session:
        admin = make_admin(session)
        live = len(tokens.tokens_of(session, admin, world.a.clerk))
        for _ in range(tokens.MAX_LIVE - live):
            tokens.issue(session, admin, world.a.clerk, name="many", now=at)
        with pytest.raises(LimitExceededError):
            tokens.issue(session, admin, world.a.clerk, name="one too many", now=at)


def test_the_cli_shows_a_token_once(api_app: Flask, api: Api) -> None:
    settings = api_app.config["CARDSYS_SETTINGS"]
    app = App(overrides={"instance_path": settings.instance_path,
                         "database_url": settings.database_url})
    runner = CliRunner()
    api.clock.now = datetime.now(UTC)  # the CLI reads the wall clock
    login = api.world.b.auditor
    made = runner.invoke(token_group, ["create", login, "--name", "reports", "--days", "7",
                                       "--as", "admin", "--json"], obj=app)
    assert made.exit_code == 0, made.output
    token = json.loads(made.output)["token"]
    assert api.get("/me", token=token).get_json()["login"] == login
    listed = runner.invoke(token_group, ["list", login, "--as", login], obj=app)
    assert listed.exit_code == 0, listed.output
    assert token not in listed.output
    assert "reports" in listed.output
    assert "live" in listed.output
    token_id = json.loads(made.output)["id"]
    refused = runner.invoke(token_group, ["revoke", login, str(token_id), "--as",
                                          api.world.a.clerk], obj=app)
    assert refused.exit_code != 0
    revoked = runner.invoke(token_group, ["revoke", login, str(token_id), "--as", login],
                            obj=app)
    assert revoked.exit_code == 0, revoked.output
    problem(api.get("/me", token=token), 401)
    app.db.dispose()
