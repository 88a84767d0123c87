"""Enrolment through the form: the ID number is checked in the browser (site.js) and again on
the server; photos must be JPEG or PNG; a possible duplicate needs an explicit confirmation."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from cardsys.ids import ResidentId
from cardsys.models import Resident
from tests.factories import DEFAULT_BIRTH
from tests.web.conftest import World, enter, post

JS = Path(__file__).resolve().parents[2] / "web" / "static" / "site.js"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def _data(sequence: int, **changes: object) -> dict[str, object]:
    return {"id_number": str(ResidentId.build("110101", DEFAULT_BIRTH, sequence)),
            "surname": "He", "given_names": "Ping", "sex": "M",
            "birth_date": DEFAULT_BIRTH.isoformat(), "region": "110101", **changes}


def _resident(app: Flask, id_number: str) -> Resident | None:
    with app.extensions["cardsys_db"].transaction() as session:
        found: Resident | None = session.scalar(
            select(Resident).where(Resident.id_number == id_number))
        return found


def test_the_form_checks_the_id_number_as_it_is_typed(
    client: FlaskClient, world: World
) -> None:
    enter(client, world.a.clerk)
    page = client.get("/office/residents/new").get_data(as_text=True)
    field = re.search(r"<input id=\"id_number\"[^>]*>", page, re.S)
    assert field is not None
    assert "data-id-number" in field.group(0)
    assert "data-msg-check" in field.group(0)
    script = re.search(r'<script src="(/static/[0-9a-f]{12}/site\.js)" defer></script>', page)
    assert script is not None
    served = client.get(script.group(1))
    assert served.status_code == 200
    assert served.mimetype in ("text/javascript",
                                                             "application/javascript")
    # The same algorithm as cardsys.ids: weights 2^(17-i) mod 11, check (12 - sum) mod 11.
    text = JS.read_text()
    assert "(12 - (sum % 11)) % 11" in text
    assert "0123456789X" in text


@pytest.mark.parametrize(
    ("id_number", "message"),
    [
        ("11010119800517001", "must be 17 digits"),         # too short
        ("110101198005170012", "wrong check character"),    # check character mistyped
        ("110101198002300015", "is not a date"),            # 30 February
        ("1101011980051700X1", "must be 17 digits"),        # X not at the end
    ],
)
def test_the_server_checks_the_id_number_again(
    app: Flask, client: FlaskClient, world: World, id_number: str, message: str
) -> None:
    enter(client, world.a.clerk)
    response = post(client, "/office/residents/new", {**_data(1), "id_number": id_number})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert _resident(app, id_number) is None


def test_a_photo_must_be_jpeg_or_png(app: Flask, client: FlaskClient, world: World) -> None:
    enter(client, world.a.clerk)
    data = _data(40, photo=(io.BytesIO(b"GIF89a" + b"\x00" * 20), "x.gif"))
    response = post(client, "/office/residents/new", data, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "JPEG or PNG" in response.get_data(as_text=True)
    ok = _data(41, photo=(io.BytesIO(JPEG), "x.jpg"))
    response = post(client, "/office/residents/new", ok, content_type="multipart/form-data")
    assert response.status_code == 303
    rid = str(ok["id_number"])
    photo = client.get(f"/office/residents/{rid}/photo")
    assert photo.data == JPEG
    assert photo.mimetype == "image/jpeg"
    assert photo.headers["X-Content-Type-Options"] == "nosniff"


def test_a_photo_over_the_limit_is_refused(client: FlaskClient, world: World) -> None:
    enter(client, world.a.clerk)
    data = _data(42, photo=(io.BytesIO(JPEG + b"\x00" * 100_000), "big.jpg"))
    response = post(client, "/office/residents/new", data, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "a photo must be 1 to" in response.get_data(as_text=True)


def test_bad_fields_come_back_with_the_form_filled(client: FlaskClient, world: World) -> None:
    enter(client, world.a.clerk)
    for changes, message in (({"birth_date": "yesterday"}, "must be a date"),
                             ({"sex": "Q"}, "Choose the sex"),
                             ({"region": "12"}, "6-digit code"),
                             ({"surname": ""}, "surname must be 1 to 100"),
                             ({"birth_date": "1980-05-18"}, "birth date differs")):
        response = post(client, "/office/residents/new", _data(43, **changes))
        page = response.get_data(as_text=True)
        assert response.status_code == 422, changes
        assert message in page, changes
        assert 'value="Ping"' in page  # what was typed is kept


def test_a_possible_duplicate_needs_confirmation(
    app: Flask, client: FlaskClient, world: World
) -> None:
    enter(client, world.a.clerk)
    twin = _data(44, surname="Wang", given_names="Fang", sex="F")
    response = post(client, "/office/residents/new", twin)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert 'name="confirm_distinct"' in page
    assert _resident(app, str(twin["id_number"])) is None
    response = post(client, "/office/residents/new", {**twin, "confirm_distinct": "yes"})
    assert response.status_code == 303
    enrolled = _resident(app, str(twin["id_number"]))
    assert enrolled is not None
    assert enrolled.review_required
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "possible duplicate" in page


def test_the_same_id_number_twice_is_refused(client: FlaskClient, world: World) -> None:
    enter(client, world.a.clerk)
    response = post(client, "/office/residents/new",
                    {**_data(45), "id_number": world.resident_a})
    assert response.status_code == 422
    assert "already registered" in response.get_data(as_text=True)


def test_a_supervisor_clears_a_review(app: Flask, client: FlaskClient, world: World) -> None:
    enter(client, world.a.clerk)
    twin = _data(46, surname="Wang", given_names="Fang", sex="F", confirm_distinct="yes")
    post(client, "/office/residents/new", twin)
    rid = str(twin["id_number"])
    post(client, "/office/logout")
    enter(client, world.a.supervisor)
    response = post(client, f"/office/residents/{rid}/clear-review", {"confirm": "yes"})
    assert response.status_code == 303
    resident = _resident(app, rid)
    assert resident is not None
    assert not resident.review_required
