"""The office's activation-code page: a code for an ACTIVE chip card, shown exactly once.

The code appears only in the answer to the POST that made it, never in a redirect, a flash
message, a URL or the database in the clear; a resent form (reload, double click) lands on the
page without it and makes no second code. The QR carries the portal URL with the card number
(never the code). The page also shows the resident's phones with their forms.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import zxingcpp
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

from cardsys.models import ActivationCode, ActivationCodeState, Card
from tests.web.conftest import World, csrf_token, enter, terminal_store
from web.database import transaction

_CODE = re.compile(r'id="activation-code">([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})<')


def issue_code(client: FlaskClient, world: World, number: str | None = None) -> str:
    """Sign in as office A's clerk and make a code for the active card; returns the code."""
    enter(client, world.a.clerk)
    number = number or world.active_card
    response = client.post(f"/office/cards/{number}/activation-code",
                           data={"csrf_token": csrf_token(client),
                                 "form_key": secrets.token_urlsafe(16)})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    match = _CODE.search(response.get_data(as_text=True))
    assert match is not None
    return match.group(1)


def _codes(app: Flask, number: str) -> list[ActivationCode]:
    with app.app_context(), transaction() as db:
        card = db.scalars(select(Card).where(Card.number == number)).one()
        rows = db.scalars(select(ActivationCode).where(ActivationCode.card_id == card.id)).all()
        db.expunge_all()
        return list(rows)


def test_the_page_finds_the_resident_by_card_or_id_number(client: FlaskClient,
                                                          world: World) -> None:
    enter(client, world.a.clerk)
    for query in (world.active_card, world.active_resident, world.active_card.lower()):
        page = client.get("/office/activation-codes", query_string={"q": query})
        text = page.get_data(as_text=True)
        assert page.status_code == 200
        assert world.active_name in text, query
        assert f"/office/cards/{world.active_card}/activation-code" in text
    other = client.get("/office/activation-codes", query_string={"q": world.card_b})
    assert world.name_b not in other.get_data(as_text=True)
    assert "No resident of your office" in other.get_data(as_text=True)


def test_a_code_is_shown_once(app: Flask, client: FlaskClient, world: World) -> None:
    enter(client, world.a.clerk)
    key = secrets.token_urlsafe(16)
    data = {"csrf_token": csrf_token(client), "form_key": key}
    path = f"/office/cards/{world.active_card}/activation-code"
    first = client.post(path, data=data)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    page = first.get_data(as_text=True)
    code = _CODE.search(page)
    assert code is not None
    assert "<svg" in page
    assert "Location" not in first.headers

    # The same form again (a reload of that answer): no code, and no second one made.
    again = client.post(path, data=data)
    assert again.status_code == 303
    follow = client.get(again.headers["Location"])
    assert code.group(1) not in follow.get_data(as_text=True)
    rows = _codes(app, world.active_card)
    assert len(rows) == 1
    # Stored salted and hashed only.
    plain = code.group(1).replace("-", "")
    assert rows[0].state is ActivationCodeState.LIVE
    assert plain not in rows[0].code_hash
    assert code.group(1) not in rows[0].code_hash

    # Nowhere else either: not on the page, not in the session.
    listing = client.get("/office/activation-codes", query_string={"q": world.active_card})
    assert code.group(1) not in listing.get_data(as_text=True)
    with client.session_transaction() as session:
        assert plain not in repr(dict(session))
        assert code.group(1) not in repr(dict(session))


def test_a_new_code_replaces_the_unused_one(app: Flask, client: FlaskClient,
                                            world: World) -> None:
    first = issue_code(client, world)
    second = issue_code(client, world)
    assert first != second
    states = sorted(row.state.value for row in _codes(app, world.active_card))
    assert states == ["live", "replaced"]


def test_the_qr_opens_the_portal_with_the_card_number(client: FlaskClient, world: World,
                                                      tmp_path: Any) -> None:
    enter(client, world.a.clerk)
    response = client.post(f"/office/cards/{world.active_card}/activation-code",
                           data={"csrf_token": csrf_token(client),
                                 "form_key": secrets.token_urlsafe(16)})
    page = response.get_data(as_text=True)
    code = _CODE.search(page)
    assert code is not None
    svg = page[page.index("<svg"):page.index("</svg>") + 6]
    assert "style=" not in svg
    assert "<script" not in svg
    text = _decode_svg(svg, tmp_path)
    assert text == f"HTTP://127.0.0.1:8000/PORTAL/A/{world.active_card}"
    assert code.group(1) not in text
    assert code.group(1).replace("-", "") not in text
    # The capital URL leads to the activation form with the card filled in.
    landing = client.get(f"/PORTAL/A/{world.active_card}")
    assert landing.status_code == 303
    assert landing.headers["Location"] == f"/portal/activate?card={world.active_card}"
    assert client.get("/PORTAL/A/NOT-A-CARD").headers["Location"] == "/portal/activate"


def _decode_svg(svg: str, tmp_path: Any) -> str:
    """Rasterise the one-path SVG of `cardsys.qrimage` (rectangles) and decode it."""
    numbers = re.compile(r"M([\d.]+),([\d.]+)H([\d.]+)V([\d.]+)H[\d.]+z")
    path = re.search(r' d="([^"]+)"', svg)
    assert path is not None
    view = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg)
    assert view is not None
    scale = 10
    size = int(float(view.group(1)) * scale) + 1
    image = Image.new("L", (size, size), 255)
    pixels = image.load()
    assert pixels is not None
    for x0, y0, x1, y1 in numbers.findall(path.group(1)):
        for x in range(round(float(x0) * scale), round(float(x1) * scale)):
            for y in range(round(float(y0) * scale), round(float(y1) * scale)):
                pixels[x, y] = 0
    found = zxingcpp.read_barcodes(image)
    assert found, "the activation QR does not decode"
    return str(found[0].text)


def test_no_code_for_a_card_that_is_not_active(app: Flask, client: FlaskClient,
                                               world: World) -> None:
    enter(client, world.a.clerk)
    response = client.post(f"/office/cards/{world.card_a}/activation-code",
                           data={"csrf_token": csrf_token(client),
                                 "form_key": secrets.token_urlsafe(16)})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "is not an active physical card" in page
    assert _codes(app, world.card_a) == []


def test_another_office_cannot_make_a_code(app: Flask, client: FlaskClient,
                                           world: World) -> None:
    enter(client, world.b.clerk)
    response = client.post(f"/office/cards/{world.active_card}/activation-code",
                           data={"csrf_token": csrf_token(client),
                                 "form_key": secrets.token_urlsafe(16)})
    assert response.status_code == 404
    assert _codes(app, world.active_card) == []


def test_the_printable_card_qr_verifies(app: Flask, client: FlaskClient, world: World,
                                        tmp_path: Any) -> None:
    from verify.qr import verify_qr

    enter(client, world.a.clerk)
    response = client.post(f"/office/cards/{world.active_card}/static-qr",
                           data={"csrf_token": csrf_token(client)})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    svg = page[page.index("<svg"):page.index("</svg>") + 6]
    text = _decode_svg(svg, tmp_path)
    assert text.startswith("SSC1:")
    now = app.config["CARDSYS_CLOCK"]()
    card = verify_qr(text, terminal_store(app), now=now)
    assert card.card_number == world.active_card
    assert card.evidence.value == "static"
