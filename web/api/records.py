"""What the API views share: loading records named in a path, versions, replies and headers.

A card's version is its ETag (`"<version>"`): GET answers it, every change needs it back in
`If-Match`, and a stale one is 412 with the current ETag, so the client reloads instead of
acting on a card someone else changed meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import url_for
from sqlalchemy.orm import Session

from cardsys.errors import InvalidCardNumberError, InvalidIdNumberError, NotFoundError
from cardsys.models import Card, Operator, Resident
from issuance import cards, residents
from issuance.present import card_dict, resident_dict
from web.api.problems import Problem
from web.api.routing import Reply
from web.api.schema import CARD_NUMBER, ID_NUMBER, string

NUMBER_PARAM = {"number": string(CARD_NUMBER, description="A card number.")}
ID_PARAM = {"id_number": string(ID_NUMBER, description="A resident's ID number.")}


def card_or_404(db: Session, actor: Operator, number: str, *, for_update: bool = False) -> Card:
    """The card a path names, in the actor's office (a number failing its check digit is
    "not found", like one of another office)."""
    try:
        return cards.get(db, actor, number, for_update=for_update)
    except InvalidCardNumberError:
        raise NotFoundError("not found in your office") from None


def resident_or_404(db: Session, actor: Operator, id_number: str) -> Resident:
    """The resident a path names, in the actor's office."""
    try:
        return residents.get(db, actor, id_number)
    except InvalidIdNumberError:
        raise NotFoundError("not found in your office") from None


def check_version(card: Card, version: int | None) -> int:
    """The If-Match version, if it is the card's current one (else a 412 problem)."""
    assert version is not None  # the pipeline requires If-Match on these operations
    if card.version != version:
        raise Problem(
            "precondition_failed",
            f"card {card.number} is at version {card.version}, not {version}: read it again",
            headers={"ETag": etag(card.version)},
        )
    return version


def etag(version: int) -> str:
    return f'"{version}"'


def card_reply(db: Session, card: Card, status: int = 200) -> Reply:
    """The card as it will commit (flushed first, so its version is the new one)."""
    db.flush()
    return Reply(status, card_dict(card))


def resident_reply(resident: Resident, status: int = 200) -> Reply:
    return Reply(status, resident_dict(resident))


def card_headers(body: Mapping[str, Any]) -> dict[str, str]:
    """ETag of a card body."""
    return {"ETag": etag(int(body["version"]))}


def new_card_headers(body: Mapping[str, Any]) -> dict[str, str]:
    """ETag and Location of a card just created."""
    return {**card_headers(body), "Location": url_for("api.op_cards_number",
                                                      number=body["number"])}


def new_resident_headers(body: Mapping[str, Any]) -> dict[str, str]:
    return {"Location": url_for("api.op_residents_id_number", id_number=body["id_number"])}
