"""Residents: search, enrol, read, clear a duplicate review (`/api/v1/residents...`)."""

from __future__ import annotations

import base64
import binascii
from datetime import date

from cardsys.errors import ValidationError
from cardsys.ids import ResidentId
from cardsys.models import Role, Sex
from issuance import residents
from issuance.present import resident_dict
from web.api import records
from web.api.routing import Call, Param, Reply, operation
from web.api.schema import ID_NUMBER, REGION, closed, string, values

TAG = "residents"
#: A portrait is at most `residents.MAX_PHOTO_BYTES`; base64 makes 4 characters of 3 bytes.
_PHOTO_CHARS = (residents.MAX_PHOTO_BYTES + 2) // 3 * 4
_SCHEME = "^[A-Za-z0-9-]{1,16}$"


@operation(
    method="GET", path="/residents", operation_id="searchResidents", tag=TAG,
    response="ResidentList",
    summary="Residents of the operator's office whose ID number starts with, or name "
            "contains, `q`.",
    query={
        "q": Param(string(min_length=2, max_length=100), "ID number prefix or part of the "
                   "name (at least 2 characters).", required=True),
        "limit": Param({"type": "integer", "minimum": 1, "maximum": 100}, "At most (50)."),
    },
)
def search(call: Call) -> Reply:
    found = residents.find(call.db, call.actor, call.query["q"],
                           limit=call.query.get("limit", 50))
    return Reply(200, {"residents": [resident_dict(r) for r in found]})


ENROLMENT = closed(
    ["id_number", "surname", "given_names", "sex"],
    id_number=string(ID_NUMBER),
    surname=string(min_length=1, max_length=100),
    given_names=string(min_length=1, max_length=100),
    sex={"type": "string", "enum": values(Sex)},
    birth_date=string("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", format="date",
                      description="Defaults to the one in the ID number (they must agree)."),
    region=string(REGION, description="Region of residence; defaults to the one in the ID "
                                      "number."),
    schemes={"type": "array", "items": string(_SCHEME), "maxItems": 10,
             "description": "Insurance scheme codes."},
    photo=string("^[A-Za-z0-9+/]*={0,2}$", max_length=_PHOTO_CHARS, contentEncoding="base64",
                 description="A JPEG or PNG portrait of at most 100 kB, base64."),
    confirm_distinct={"type": "boolean", "description": "Enrol although someone with the same "
                      "name, birth date and region exists (after checking documents); the "
                      "resident then waits for a supervisor's review."},
)


@operation(
    method="POST", path="/residents", operation_id="enrolResident", tag=TAG,
    response="Resident", status=201, roles=(Role.CLERK, Role.SUPERVISOR), creates=True,
    headers=records.new_resident_headers, body=ENROLMENT, errors=(409,),
    summary="Enrol a resident in the operator's office (a possible duplicate is 409 "
            "`possible_duplicate` unless `confirm_distinct`).",
)
def enrol(call: Call) -> Reply:
    body = call.body
    id_number = ResidentId.parse(body["id_number"])
    born = date.fromisoformat(body["birth_date"]) if "birth_date" in body else (
        id_number.birth_date)
    photo = None
    if "photo" in body:
        try:
            photo = base64.b64decode(body["photo"], validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("the photo is not valid base64") from None
    enrolment = residents.Enrolment(
        id_number=id_number, surname=body["surname"], given_names=body["given_names"],
        sex=Sex(body["sex"]), birth_date=born, region=body.get("region", id_number.region),
        schemes=tuple(body.get("schemes", ())), photo=photo,
    )
    person = residents.enrol(call.db, call.actor, enrolment, now=call.at,
                             confirm_distinct=bool(body.get("confirm_distinct", False)))
    return records.resident_reply(person, 201)


@operation(
    method="GET", path="/residents/{id_number}", operation_id="getResident", tag=TAG,
    response="Resident", path_params=records.ID_PARAM,
    summary="A resident of the operator's office.",
)
def get_resident(call: Call) -> Reply:
    return records.resident_reply(
        records.resident_or_404(call.db, call.actor, call.path["id_number"]))


@operation(
    method="POST", path="/residents/{id_number}/clear-review", operation_id="clearReview",
    tag=TAG, response="Resident", roles=(Role.SUPERVISOR,), path_params=records.ID_PARAM,
    summary="Confirm that a resident flagged as a possible duplicate is a distinct person "
            "(422 when none is waiting).",
)
def clear_review(call: Call) -> Reply:
    person = records.resident_or_404(call.db, call.actor, call.path["id_number"])
    return records.resident_reply(
        residents.clear_review(call.db, call.actor, person.id_number, now=call.at))
