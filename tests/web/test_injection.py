"""Hostile text: markup in names renders as text; SQL metacharacters in every search field
are searched for literally and find nothing they should not."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cardsys.ids import ResidentId
from tests.factories import DEFAULT_BIRTH
from tests.web.conftest import World, enter, post

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
SQL = ["' OR 1=1 --", "%", "%%", "_", "__", "\\", "\\%", "Wang%", "W_ng", "'; DROP TABLE cards; --",
       '" OR ""="', "%' OR '1'='1"]


@pytest.fixture
def hostile(client: FlaskClient, world: World) -> str:
    """A resident of office A named with a script tag, enrolled through the form."""
    enter(client, world.a.clerk)
    rid = str(ResidentId.build("110101", DEFAULT_BIRTH, 90))
    response = post(client, "/office/residents/new", {
        "id_number": rid, "surname": SCRIPT, "given_names": '"><img src=x onerror=alert(2)>',
        "sex": "X", "birth_date": DEFAULT_BIRTH.isoformat(), "region": "110101",
    })
    assert response.status_code == 303
    apply = post(client, f"/office/residents/{rid}/apply")
    assert apply.status_code == 303
    return rid


def test_a_script_in_a_name_renders_escaped_everywhere(
    client: FlaskClient, world: World, hostile: str
) -> None:
    pages = [f"/office/residents/{hostile}", "/office/residents?q=script", "/office/queue"]
    post(client, "/office/logout")
    enter(client, world.a.supervisor)
    pages += ["/office/audit", f"/office/audit?subject={SCRIPT}", "/office/statistics"]
    for path in pages:
        page = client.get(path).get_data(as_text=True)
        assert SCRIPT not in page, path
        assert "<img src=x" not in page, path
    resident = client.get(f"/office/residents/{hostile}").get_data(as_text=True)
    assert ESCAPED in resident
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in resident


def test_a_script_in_the_query_is_echoed_escaped(client: FlaskClient, world: World) -> None:
    enter(client, world.a.clerk)
    page = client.get("/office/residents", query_string={"q": SCRIPT}).get_data(as_text=True)
    assert SCRIPT not in page
    assert ESCAPED in page


@pytest.mark.parametrize("text", SQL)
def test_metacharacters_in_the_resident_search(
    client: FlaskClient, world: World, text: str
) -> None:
    enter(client, world.a.clerk)
    response = client.get("/office/residents", query_string={"q": text})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    # "%", "_" and "\" are literal characters, not wildcards: nobody's name holds them.
    assert world.name_a not in page, text
    assert f'href="/office/residents/{world.resident_a}"' not in page


@pytest.mark.parametrize("field", ["subject", "tag"])
@pytest.mark.parametrize("text", SQL)
def test_metacharacters_in_the_audit_filters(
    client: FlaskClient, world: World, field: str, text: str
) -> None:
    enter(client, world.a.auditor)
    response = client.get("/office/audit", query_string={field: text})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "The audit chain is intact" in page
    assert "No events." in page, f"{field}={text!r} matched events"


def test_search_still_finds_what_it_should(
    app: Flask, client: FlaskClient, world: World
) -> None:
    enter(client, world.a.clerk)
    for query in ("wang", "Wang Fang", world.resident_a[:8], world.resident_a, "FANG"):
        page = client.get("/office/residents", query_string={"q": query}).get_data(as_text=True)
        assert f'href="/office/residents/{world.resident_a}"' in page, query
    found = client.get("/office/residents", query_string={"q": world.card_a})
    assert found.status_code == 302
    assert found.headers["Location"] == f"/office/residents/{world.resident_a}"


def test_audit_filter_finds_what_it_should(client: FlaskClient, world: World) -> None:
    enter(client, world.a.auditor)
    page = client.get("/office/audit", query_string={"subject": world.card_a}).get_data(
        as_text=True)
    assert "card:status:apply" in page
    page = client.get("/office/audit", query_string={"tag": "card:status:"}).get_data(
        as_text=True)
    assert "card:status:apply" in page
    assert "resident:resident:enrol" not in page
