"""Every office route, enumerated from the app's URL map (never a hand-kept list):

- without a session it sends the browser to the login page;
- an office role it does not name gets 403;
- an operator of another office gets 404 for this office's records, and no page of theirs
  shows this office's residents or cards.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cardsys.models import Role
from tests.web.conftest import World, csrf_token, enter
from web import create_app
from web.auth import OFFICE_ROLES

PUBLIC = {"office.login"}


@dataclass(frozen=True)
class Route:
    endpoint: str
    rule: str
    method: str
    arguments: frozenset[str]
    roles: frozenset[Role]

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


def _office_routes() -> list[Route]:
    """The office routes of a freshly built app (its instance is a throw-away directory)."""
    instance = Path(tempfile.mkdtemp(prefix="cardsys-routes-"))
    app = create_app({"TESTING": True, "CARDSYS": {"instance_path": instance}})
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("office.") or rule.endpoint in PUBLIC:
            continue
        roles: frozenset[Role] = getattr(app.view_functions[rule.endpoint], "allowed_roles",
                                         frozenset())
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append(Route(rule.endpoint, rule.rule, method, frozenset(rule.arguments),
                                frozenset(roles)))
    app.extensions["cardsys_db"].dispose()
    shutil.rmtree(instance)
    return sorted(routes, key=str)


ROUTES = _office_routes()
WRONG_ROLE = [(route, role) for route in ROUTES for role in OFFICE_ROLES
              if role not in route.roles]
SCOPED = [route for route in ROUTES if route.arguments or route.method == "GET"]


def _login_for(world: World, role: Role, *, office: str = "a") -> str:
    staff = world.a if office == "a" else world.b
    return {Role.CLERK: staff.clerk, Role.SUPERVISOR: staff.supervisor,
            Role.AUDITOR: staff.auditor}[role]


def _path(route: Route, world: World) -> str:
    return route.rule.replace("<id_number>", world.resident_a).replace("<number>", world.card_a)


def _send(client: FlaskClient, route: Route, world: World) -> TestResponse:
    """Request the route for office A's records, with a valid CSRF token on a POST."""
    path = _path(route, world)
    if route.method == "GET":
        return client.get(path)
    data = {"csrf_token": csrf_token(client), "form_key": secrets.token_urlsafe(16),
            "version": "2", "reason": "lost", "confirm": "yes"}
    return client.open(path, method=route.method, data=data)


def test_the_map_has_the_office_routes() -> None:
    endpoints = {route.endpoint for route in ROUTES}
    assert {"office.index", "office.find", "office.enrol", "office.resident", "office.queue",
            "office.audit_log", "office.statistics", "office.card_revoke",
            "office.logout"} <= endpoints
    # The digital-card and key pages are in the same enumeration, so every test below
    # covers them too.
    assert {"office.activation_codes", "office.create_activation_code", "office.static_qr",
            "office.keys"} <= endpoints
    assert len(ROUTES) >= 24


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_every_office_view_declares_its_roles(route: Route) -> None:
    assert route.roles, f"{route} is not guarded by web.auth.requires"
    assert route.roles <= set(OFFICE_ROLES)


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_without_login_redirects_to_login(
    client: FlaskClient, world: World, route: Route
) -> None:
    response = _send(client, route, world)
    assert response.status_code == 302, route
    assert response.headers["Location"].startswith("/office/login")


@pytest.mark.parametrize(("route", "role"), WRONG_ROLE, ids=lambda v: str(v))
def test_wrong_role_is_forbidden(
    app: Flask, client: FlaskClient, world: World, route: Route, role: Role
) -> None:
    enter(client, _login_for(world, role))
    response = _send(client, route, world)
    assert response.status_code == 403, route
    assert "Your role does not allow this" in response.get_data(as_text=True)


@pytest.mark.parametrize("route", SCOPED, ids=str)
def test_other_office_sees_nothing_of_this_one(
    client: FlaskClient, world: World, route: Route
) -> None:
    role = next(r for r in OFFICE_ROLES if r in route.roles)
    enter(client, _login_for(world, role, office="b"))
    response = _send(client, route, world)
    # The page may repeat the address asked for (the language switch returns to it).
    page = response.get_data(as_text=True).replace(_path(route, world), "")
    if route.arguments:
        assert response.status_code in (403, 404), route
    else:
        assert response.status_code == 200, route
    for secret in (world.resident_a, world.card_a, world.name_a):
        assert secret not in page, f"{route} shows {secret} to another office"


def test_search_for_another_office_finds_nothing(client: FlaskClient, world: World) -> None:
    enter(client, world.b.supervisor)
    for query in (world.resident_a, world.card_a, "Wang", world.resident_a[:6]):
        response = client.get("/office/residents", query_string={"q": query})
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        # The query is echoed in the search box; a result would be a link and the name.
        assert f'href="/office/residents/{world.resident_a}"' not in page, query
        assert world.name_a not in page
        assert "No resident of your office matches" in page


def test_auditor_reads_but_changes_nothing(client: FlaskClient, world: World) -> None:
    enter(client, world.a.auditor)
    for path in (f"/office/residents/{world.resident_a}", "/office/queue", "/office/audit",
                 "/office/statistics", "/office/residents?q=wang"):
        assert client.get(path).status_code == 200, path
    page = client.get(f"/office/residents/{world.resident_a}").get_data(as_text=True)
    assert "<form method=\"post\" action=\"/office/cards/" not in page
    assert "/apply" not in page
