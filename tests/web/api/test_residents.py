"""Residents through the API: search, enrol (idempotent), read, review; scope and roles."""

from __future__ import annotations

import base64
from datetime import date

from sqlalchemy import func, select

from cardsys.ids import ResidentId
from cardsys.models import Resident
from tests.web.api.conftest import Api, new_key, problem

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60


def enrolment(sequence: int, **more: object) -> dict[str, object]:
    number = ResidentId.build("110101", date(1990, 1, 2), sequence)
    return {"id_number": str(number), "surname": "Zhao", "given_names": f"Lei{sequence}",
            "sex": "M", **more}


def residents(api: Api) -> int:
    with api.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Resident)) or 0)


def test_enrol_answers_the_resident_and_where_it_lives(api: Api) -> None:
    photo = base64.b64encode(JPEG).decode()
    response = api.create("/residents", enrolment(7, schemes=["urban-emp"], photo=photo))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["birth_date"] == "1990-01-02"  # from the ID number
    assert body["region"] == "110101"
    assert body["schemes"] == ["URBAN-EMP"]
    assert body["office"] == "OFF-A"
    assert body["photo_sha256"] is not None
    assert response.headers["Location"] == f"/api/v1/residents/{body['id_number']}"
    assert api.get(response.headers["Location"]).get_json() == body


def test_enrol_retry_is_replayed_and_enrols_once(api: Api) -> None:
    key = new_key()
    before = residents(api)
    first = api.post("/residents", enrolment(8), key=key)
    second = api.post("/residents", enrolment(8), key=key)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json() == second.get_json()
    assert residents(api) == before + 1
    # Key order and spacing do not make another request.
    reordered = dict(reversed(list(enrolment(8).items())))
    assert api.post("/residents", reordered, key=key).status_code == 201
    problem(api.post("/residents", enrolment(9), key=key), 422, "idempotency_key_reused")


def test_enrol_refusals(api: Api) -> None:
    world = api.world
    problem(api.create("/residents", enrolment(10), as_=world.a.auditor), 403, "forbidden")
    bad_check = enrolment(11)
    bad_check["id_number"] = str(bad_check["id_number"])[:17] + (
        "0" if str(bad_check["id_number"])[17] != "0" else "1")
    problem(api.create("/residents", bad_check), 422, "invalid_id_number")
    problem(api.create("/residents", enrolment(12, birth_date="1990-01-03")), 422, "invalid")
    problem(api.create("/residents", enrolment(13, photo="AAAA")), 422, "invalid")
    found = problem(api.create("/residents", {"surname": 5, "extra": True}), 422, "invalid_body")
    pointers = {issue["pointer"] for issue in found["errors"]}
    assert {"/id_number", "/given_names", "/sex", "/surname", "/extra"} <= pointers
    first = api.create("/residents", enrolment(14))
    assert first.status_code == 201
    problem(api.create("/residents", enrolment(14)), 409, "duplicate")
    twin = enrolment(15, given_names="Lei14")
    problem(api.create("/residents", twin), 409, "possible_duplicate")
    flagged = api.create("/residents", {**twin, "confirm_distinct": True})
    assert flagged.get_json()["review_required"] is True


def test_clear_review_is_a_supervisors(api: Api) -> None:
    world = api.world
    api.create("/residents", enrolment(16))
    twin = api.create("/residents", enrolment(17, given_names="Lei16", confirm_distinct=True))
    number = twin.get_json()["id_number"]
    problem(api.post(f"/residents/{number}/clear-review", as_=world.a.clerk), 403)
    cleared = api.post(f"/residents/{number}/clear-review", as_=world.a.supervisor)
    assert cleared.get_json()["review_required"] is False
    problem(api.post(f"/residents/{number}/clear-review", as_=world.a.supervisor), 422)


def test_search_and_read_stay_in_the_office(api: Api) -> None:
    world = api.world
    found = api.get("/residents?q=wang", as_=world.a.auditor).get_json()["residents"]
    assert [r["id_number"] for r in found] == [world.resident_a]
    assert api.get("/residents?q=li%20wei").get_json()["residents"] == []
    assert api.get(f"/residents?q={world.resident_b[:8]}").get_json()["residents"] == []
    problem(api.get(f"/residents/{world.resident_b}"), 404, "not_found")
    problem(api.get("/residents/123"), 404)
    problem(api.get("/residents?q=a"), 422, "invalid_parameters")
    problem(api.get("/residents"), 422, "invalid_parameters")
    # Metacharacters are text, not patterns.
    assert api.get("/residents?q=%25%25").get_json()["residents"] == []
    assert api.get("/residents?q='%20OR%201=1--").get_json()["residents"] == []
