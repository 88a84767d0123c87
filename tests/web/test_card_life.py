"""A card's whole life through the office forms, as operators click it, and what may go wrong:
a stale form, a form sent twice, maker-checker, a missing reason."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from cardsys.ids import ResidentId
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import Card, IdempotencyKey, Resident
from tests.factories import DEFAULT_BIRTH
from tests.web.conftest import World, csrf_token, enter, post

# The smallest PNG a browser would upload (a 1x1 image; only its signature is checked).
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17


@dataclass(frozen=True)
class Form:
    action: str
    fields: dict[str, str]


def forms_on(page: str) -> list[Form]:
    """Every POST form of a page with its hidden fields."""
    found = []
    for match in re.finditer(r'<form method="post" action="([^"]+)"(.*?)</form>', page, re.S):
        hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', match.group(2)))
        found.append(Form(match.group(1), hidden))
    return found


def card_form(client: FlaskClient, id_number: str, number: str, slug: str) -> Form:
    page = client.get(f"/office/residents/{id_number}").get_data(as_text=True)
    action = f"/office/cards/{number}/{slug}"
    matches = [form for form in forms_on(page) if form.action == action]
    assert matches, f"no {slug} form for {number} on the page"
    return matches[0]


def send(client: FlaskClient, form: Form, **extra: str) -> str:
    """Send a form as drawn (plus `extra`); returns the page it leads to."""
    response = client.post(form.action, data={**form.fields, **extra})
    assert response.status_code == 303, response.get_data(as_text=True)[-2000:]
    return client.get(response.headers["Location"], follow_redirects=True).get_data(as_text=True)


def act(client: FlaskClient, id_number: str, number: str, slug: str, **extra: str) -> str:
    return send(client, card_form(client, id_number, number, slug), **extra)


def status_of(app: Flask, number: str) -> tuple[CardStatus, Reason | None]:
    with app.extensions["cardsys_db"].transaction() as session:
        card = session.scalar(select(Card).where(Card.number == number))
        assert card is not None
        return card.status, card.status_reason


def cards_of(app: Flask, id_number: str) -> list[str]:
    with app.extensions["cardsys_db"].transaction() as session:
        return list(session.scalars(
            select(Card.number).join(Card.resident).where(Resident.id_number == id_number)
            .order_by(Card.id)
        ))


def enrol(client: FlaskClient, id_number: str, **fields: object) -> str:
    data = {"id_number": id_number, "surname": "Zhou", "given_names": "Xin", "sex": "F",
            "birth_date": DEFAULT_BIRTH.isoformat(), "region": "110101", "schemes": "URBAN-EMP",
            **fields}
    response = post(client, "/office/residents/new", data, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)[-2000:]
    return client.get(response.headers["Location"]).get_data(as_text=True)


def new_id(sequence: int) -> str:
    return str(ResidentId.build("110101", DEFAULT_BIRTH, sequence))


def test_a_card_through_its_whole_life(app: Flask, client: FlaskClient, world: World) -> None:
    rid = new_id(77)
    enter(client, world.a.clerk)
    page = enrol(client, rid, photo=(io.BytesIO(PNG), "me.png"))
    assert "Resident enrolled." in page
    assert rid in page
    assert client.get(f"/office/residents/{rid}/photo").mimetype == "image/png"
    apply_form = next(f for f in forms_on(page) if f.action.endswith("/apply"))
    page = send(client, apply_form)
    assert "waits for a supervisor" in page
    (number,) = cards_of(app, rid)
    assert status_of(app, number)[0] is CardStatus.APPLIED
    # The clerk cannot approve: the page offers no approve button to a clerk.
    assert f"/office/cards/{number}/approve" not in page
    post(client, "/office/logout")

    enter(client, world.a.supervisor)
    queue = client.get("/office/queue").get_data(as_text=True)
    assert number in queue
    act(client, rid, number, "approve")
    assert status_of(app, number)[0] is CardStatus.APPROVED
    post(client, "/office/logout")

    enter(client, world.a.clerk)
    for slug, state in (("personalize", CardStatus.PERSONALIZED),
                        ("hand-over", CardStatus.ISSUED), ("activate", CardStatus.ACTIVE)):
        act(client, rid, number, slug)
        assert status_of(app, number)[0] is state, slug
    page = act(client, rid, number, "suspend", reason="lost")
    assert status_of(app, number) == (CardStatus.SUSPENDED, Reason.LOST)
    assert "card:status:suspend" in page  # the card's history
    post(client, "/office/logout")

    enter(client, world.a.supervisor)
    act(client, rid, number, "resume")
    assert status_of(app, number)[0] is CardStatus.ACTIVE
    act(client, rid, number, "replace", reason="damaged", confirm="yes")
    old, new = cards_of(app, rid)
    assert old == number
    assert status_of(app, old) == (CardStatus.REVOKED, Reason.SUPERSEDED)
    assert status_of(app, new)[0] is CardStatus.APPLIED
    page = act(client, rid, new, "revoke", reason="fraud", confirm="yes")
    assert status_of(app, new) == (CardStatus.REVOKED, Reason.FRAUD)
    assert "card:status:revoke" in page


def test_renewal_keeps_the_old_card_until_the_new_one_is_active(
    app: Flask, client: FlaskClient, world: World
) -> None:
    enter(client, world.a.supervisor2)
    act(client, world.resident_a, world.card_a, "approve")
    post(client, "/office/logout")
    enter(client, world.a.clerk)
    for slug in ("personalize", "hand-over", "activate"):
        act(client, world.resident_a, world.card_a, slug)
    act(client, world.resident_a, world.card_a, "renew")
    old, new = cards_of(app, world.resident_a)
    assert status_of(app, old)[0] is CardStatus.ACTIVE
    assert status_of(app, new)[0] is CardStatus.APPLIED


def test_maker_checker_is_shown_and_enforced(
    app: Flask, client: FlaskClient, world: World
) -> None:
    rid = new_id(78)
    enter(client, world.a.supervisor)
    page = enrol(client, rid)
    send(client, next(f for f in forms_on(page) if f.action.endswith("/apply")))
    (number,) = cards_of(app, rid)
    page = client.get("/office/queue").get_data(as_text=True)
    assert "You prepared this application" in page
    assert re.search(r"<button disabled>Approve</button>", page)
    # Sending the form anyway (crafted by hand) is refused by the service.
    response = post(client, f"/office/cards/{number}/approve", {"version": "2"})
    assert response.status_code == 303
    page = client.get(response.headers["Location"], follow_redirects=True).get_data(as_text=True)
    assert "another supervisor must approve" in page
    assert status_of(app, number)[0] is CardStatus.APPLIED


def test_a_stale_form_says_the_card_changed_meanwhile(
    app: Flask, client: FlaskClient, world: World
) -> None:
    enter(client, world.a.supervisor)
    stale = card_form(client, world.resident_a, world.card_a, "revoke")
    other = app.test_client()
    other.set_cookie("lang", "en")
    enter(other, world.a.supervisor2)
    act(other, world.resident_a, world.card_a, "approve")
    page = send(client, stale, reason="fraud", confirm="yes")
    assert "changed meanwhile" in page
    assert status_of(app, world.card_a)[0] is CardStatus.APPROVED


def test_a_form_sent_twice_counts_once(app: Flask, client: FlaskClient, world: World) -> None:
    rid = new_id(79)
    enter(client, world.a.clerk)
    page = enrol(client, rid)
    apply_form = next(f for f in forms_on(page) if f.action.endswith("/apply"))
    first = client.post(apply_form.action, data=apply_form.fields)
    second = client.post(apply_form.action, data=apply_form.fields)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert len(cards_of(app, rid)) == 1
    page = client.get(second.headers["Location"]).get_data(as_text=True)
    assert "already sent" in page


def test_an_enrolment_sent_twice_makes_one_resident(
    app: Flask, client: FlaskClient, world: World
) -> None:
    enter(client, world.a.clerk)
    data = {"csrf_token": csrf_token(client), "form_key": "same-key-for-both-sends",
            "id_number": new_id(80), "surname": "Qian", "given_names": "Bo", "sex": "M",
            "birth_date": DEFAULT_BIRTH.isoformat(), "region": "110101"}
    first = client.post("/office/residents/new", data=data)
    second = client.post("/office/residents/new", data=data)
    assert first.headers["Location"] == second.headers["Location"]
    with app.extensions["cardsys_db"].transaction() as session:
        assert session.scalar(select(func.count()).select_from(Resident).where(
            Resident.id_number == new_id(80))) == 1
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


def test_a_form_key_cannot_be_reused_for_another_form(
    client: FlaskClient, world: World
) -> None:
    enter(client, world.a.supervisor)
    key = "one-key-two-forms-x"
    first = post(client, "/office/residents/new", {
        "form_key": key, "id_number": new_id(81), "surname": "Sun", "given_names": "Li",
        "sex": "F", "birth_date": DEFAULT_BIRTH.isoformat(), "region": "110101"})
    assert first.status_code == 303
    second = post(client, f"/office/cards/{world.card_a}/approve",
                  {"form_key": key, "version": "2"})
    assert second.status_code == 400


@pytest.mark.parametrize("form_key", [None, "", "short", "bad key with spaces!!"])
def test_a_changing_form_needs_a_well_formed_key(
    client: FlaskClient, world: World, form_key: str | None
) -> None:
    enter(client, world.a.supervisor2)
    data = {"csrf_token": csrf_token(client), "version": "2"}
    if form_key is not None:
        data["form_key"] = form_key
    response = client.post(f"/office/cards/{world.card_a}/approve", data=data)
    assert response.status_code == 400


@pytest.mark.parametrize("version", [None, "", "abc", "-1", "9" * 40])
def test_a_card_form_needs_a_version(
    client: FlaskClient, world: World, version: str | None
) -> None:
    enter(client, world.a.supervisor2)
    data = {} if version is None else {"version": version}
    assert post(client, f"/office/cards/{world.card_a}/approve", data).status_code == 400


@pytest.mark.parametrize("reason", [None, "", "bored", "superseded"])
def test_revoke_needs_a_reason_from_its_list(
    app: Flask, client: FlaskClient, world: World, reason: str | None
) -> None:
    enter(client, world.a.supervisor2)
    act(client, world.resident_a, world.card_a, "approve")
    data = {} if reason is None else {"reason": reason}
    page = act(client, world.resident_a, world.card_a, "revoke", **data)
    assert "revoke" in page
    assert status_of(app, world.card_a)[0] is CardStatus.APPROVED
    assert "needs a reason" in page


def test_suspend_refuses_a_reason_it_does_not_take(
    app: Flask, client: FlaskClient, world: World
) -> None:
    enter(client, world.b.supervisor2)
    act(client, world.resident_b, world.card_b, "approve")
    post(client, "/office/logout")
    enter(client, world.b.clerk)
    for slug in ("personalize", "hand-over", "activate"):
        act(client, world.resident_b, world.card_b, slug)
    page = act(client, world.resident_b, world.card_b, "suspend", reason="damaged")
    assert "needs a reason" in page
    assert status_of(app, world.card_b)[0] is CardStatus.ACTIVE


def test_unknown_card_in_the_address_is_not_found(client: FlaskClient, world: World) -> None:
    enter(client, world.a.supervisor)
    for number in ("SS110000000999", "not-a-card", "%27%20OR%201%3D1"):
        assert client.get(f"/office/cards/{number}").status_code == 404
        assert post(client, f"/office/cards/{number}/revoke",
                    {"version": "1", "reason": "fraud"}).status_code == 404
    for id_number in ("110101198005179999", "nonsense"):
        assert client.get(f"/office/residents/{id_number}").status_code == 404


def test_a_form_sent_twice_at_the_same_moment_counts_once(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """Two requests racing with one form key: the claim and the card share one transaction,
    so the loser finds the winner's claim (or fails) and no second card appears."""
    from concurrent.futures import ThreadPoolExecutor

    rid = new_id(82)
    enter(client, world.a.clerk)
    page = enrol(client, rid)
    apply_form = next(f for f in forms_on(page) if f.action.endswith("/apply"))
    cookie = client.get_cookie("cardsys")
    assert cookie is not None

    def send_once(_: int) -> int:
        racer = app.test_client()
        racer.set_cookie("cardsys", cookie.value)
        return racer.post(apply_form.action, data=apply_form.fields).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(send_once, range(4)))
    assert codes == [303] * 4
    assert len(cards_of(app, rid)) == 1
