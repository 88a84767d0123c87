"""Signing in and out: argon2id passwords, the lock after repeated failures, server sessions."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from cardsys.models import AuditEvent, Operator, OperatorSession
from tests.web.conftest import Clock, World, csrf_token, login, post


def _rows(app: Flask, model: type[Any]) -> list[Any]:
    with app.extensions["cardsys_db"].transaction() as session:
        return list(session.scalars(select(model)))


def _operator(app: Flask, name: str) -> Operator:
    with app.extensions["cardsys_db"].transaction() as session:
        found: Operator | None = session.scalar(select(Operator).where(Operator.login == name))
        assert found is not None
        return found


def test_login_opens_a_server_session_and_lands_on_the_office(
    app: Flask, client: FlaskClient, world: World
) -> None:
    response = login(client, world.a.clerk)
    assert response.status_code == 303
    assert response.headers["Location"] == "/office/"
    page = client.get("/office/").get_data(as_text=True)
    assert "Find a resident" in page
    assert "off-a.clerk".title() in page
    sessions = _rows(app, OperatorSession)
    assert len(sessions) == 1
    assert sessions[0].ended_at is None
    # Only the token's hash is stored: the cookie's token is not in the row.
    assert len(sessions[0].token_sha256) == 64
    tags = [event.tag for event in _rows(app, AuditEvent)]
    assert tags[-1] == "operator:session:start"


def test_login_returns_to_the_page_asked_for(client: FlaskClient, world: World) -> None:
    target = f"/office/residents/{world.resident_a}"
    assert client.get(target).headers["Location"] == f"/office/login?next={target}"
    token = csrf_token(client)
    response = client.post("/office/login", data={
        "login": world.a.clerk, "password": "correct horse battery staple",
        "csrf_token": token, "next": target,
    })
    assert response.headers["Location"] == target


def test_login_never_redirects_off_site(client: FlaskClient, world: World) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"):
        response = client.post("/office/login", data={
            "login": world.a.clerk, "password": "correct horse battery staple",
            "csrf_token": csrf_token(client), "next": target,
        })
        assert response.status_code == 303
        assert response.headers["Location"] == "/office/", target
        post(client, "/office/logout")


def test_wrong_password_and_unknown_login_get_the_same_answer(
    client: FlaskClient, world: World
) -> None:
    wrong = login(client, world.a.clerk, "not the password at all")
    unknown = login(client, "nobody.here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong login or password" in wrong.get_data(as_text=True)
    assert "wrong login or password" in unknown.get_data(as_text=True)
    assert client.get("/office/").status_code == 302


def test_failures_are_counted_even_though_the_login_fails(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, world.a.clerk, "wrong password one")
    login(client, world.a.clerk, "wrong password two")
    assert _operator(app, world.a.clerk).failed_logins == 2
    login(client, world.a.clerk)
    assert _operator(app, world.a.clerk).failed_logins == 0


def test_account_locks_after_max_failures_and_unlocks_later(
    app: Flask, client: FlaskClient, world: World, clock: Clock
) -> None:
    settings = app.config["CARDSYS_SETTINGS"]
    for attempt in range(settings.login_max_failures):
        assert login(client, world.a.clerk, f"wrong password {attempt}").status_code == 401
    locked = login(client, world.a.clerk)  # the right password, but locked
    assert locked.status_code == 401
    assert "too many failed logins" in locked.get_data(as_text=True)
    assert client.get("/office/").status_code == 302
    assert any(e.tag == "operator:login:lock" for e in _rows(app, AuditEvent))
    clock.advance(seconds=settings.login_lock_seconds + 1)
    assert login(client, world.a.clerk).status_code == 303


def test_lock_is_per_account(client: FlaskClient, world: World) -> None:
    for attempt in range(5):
        login(client, world.a.clerk, f"wrong password {attempt}")
    assert login(client, world.a.supervisor).status_code == 303


def test_logout_ends_the_session_on_the_server(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, world.a.clerk)
    stolen = client.get_cookie("cardsys")
    assert stolen is not None
    response = post(client, "/office/logout")
    assert response.status_code == 303
    assert response.headers["Location"] == "/office/login"
    assert client.get("/office/").status_code == 302
    # A copy of the cookie taken before logout opens nothing afterwards.
    replay = app.test_client()
    replay.set_cookie("cardsys", stolen.value)
    assert replay.get("/office/").status_code == 302
    assert all(row.ended_at is not None for row in _rows(app, OperatorSession))


def test_idle_session_expires(client: FlaskClient, world: World, app: Flask, clock: Clock) -> None:
    login(client, world.a.clerk)
    clock.advance(seconds=app.config["SESSION_IDLE_SECONDS"] - 120)
    assert client.get("/office/").status_code == 200  # used: idle time starts again
    clock.advance(seconds=app.config["SESSION_IDLE_SECONDS"] - 120)
    assert client.get("/office/").status_code == 200
    clock.advance(seconds=app.config["SESSION_IDLE_SECONDS"] + 1)
    assert client.get("/office/").status_code == 302


def test_session_has_an_absolute_lifetime(
    client: FlaskClient, world: World, app: Flask, clock: Clock
) -> None:
    login(client, world.a.clerk)
    steps = app.config["SESSION_MAX_SECONDS"] // (app.config["SESSION_IDLE_SECONDS"] // 2)
    for _ in range(steps + 1):
        clock.advance(seconds=app.config["SESSION_IDLE_SECONDS"] // 2)
        client.get("/office/")
    assert client.get("/office/").status_code == 302


def test_deactivated_operator_loses_the_session(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, world.a.clerk)
    with app.extensions["cardsys_db"].transaction() as session:
        operator = session.scalar(select(Operator).where(Operator.login == world.a.clerk))
        assert operator is not None
        operator.active = False
    assert client.get("/office/").status_code == 302


def test_an_account_without_office_role_cannot_use_the_office(
    app: Flask, client: FlaskClient
) -> None:
    from issuance import operators

    with app.extensions["cardsys_db"].transaction() as session:
        admin = session.scalar(select(Operator).where(Operator.login == "admin"))
        assert admin is not None
        admin.password_hash = operators.hash_password("correct horse battery staple")
    response = login(client, "admin")
    assert response.status_code == 401
    assert "no office pages" in response.get_data(as_text=True)
    assert client.get("/office/").status_code == 302


def test_a_forged_session_token_opens_nothing(app: Flask, world: World) -> None:
    client = app.test_client()
    with client.session_transaction() as session:
        session["sid"] = "made-up-token"
    assert client.get("/office/").status_code == 302
