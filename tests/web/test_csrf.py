"""Every form needs the session's CSRF token: missing, wrong or foreign -> 400, nothing done."""

from __future__ import annotations

import secrets

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from cardsys.models import Card, OperatorSession
from tests.web.conftest import PASSWORD, World, csrf_token, login


def _count(app: Flask, model: type) -> int:
    with app.extensions["cardsys_db"].transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("token", [None, "", "not-a-token", "x" * 200], ids=repr)
def test_login_without_a_valid_token_is_refused(
    app: Flask, client: FlaskClient, world: World, token: str | None
) -> None:
    data = {"login": world.a.clerk, "password": PASSWORD}
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/office/login", data=data)
    assert response.status_code == 400
    assert _count(app, OperatorSession) == 0


def test_a_token_of_another_session_is_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    other = app.test_client()
    foreign = csrf_token(other)
    csrf_token(client)  # the client has a session of its own
    response = client.post("/office/login", data={
        "login": world.a.clerk, "password": PASSWORD, "csrf_token": foreign,
    })
    assert response.status_code == 400


def test_a_change_without_token_is_refused_when_signed_in(
    app: Flask, client: FlaskClient, world: World
) -> None:
    login(client, world.a.clerk)
    before = _count(app, Card)
    path = f"/office/residents/{world.resident_a}/apply"
    for data in ({}, {"csrf_token": "forged"}):
        data["form_key"] = secrets.token_urlsafe(16)
        response = client.post(path, data=data)
        assert response.status_code == 400
        assert "did not come from this site" in response.get_data(as_text=True)
    assert _count(app, Card) == before


def test_a_token_in_a_header_works_too(client: FlaskClient, world: World) -> None:
    # The later JSON views of the portal send it as X-CSRFToken.
    token = csrf_token(client)
    response = client.post(
        "/office/login", data={"login": world.a.clerk, "password": PASSWORD},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 303


def test_logout_needs_the_token(client: FlaskClient, world: World) -> None:
    login(client, world.a.clerk)
    assert client.post("/office/logout").status_code == 400
    assert client.get("/office/").status_code == 200  # still signed in


def test_language_switch_needs_the_token(client: FlaskClient) -> None:
    assert client.post("/language", data={"lang": "zh_Hans"}).status_code == 400
