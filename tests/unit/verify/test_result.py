"""The terminal's result values: a VerifiedCard is complete and frozen, a Verdict says why."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from cardsys.errors import RevokedError
from verify.result import Evidence, StatusCheck, Verdict, VerifiedCard

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
VALUES = {
    "evidence": Evidence.STATIC, "card_number": "SS110000000015",
    "document_number": "SS110000000023", "surname": "Wang", "given_names": "Fang", "sex": "F",
    "birth_date": date(1985, 3, 14), "region": "110105", "schemes": ("URBAN-EMP",),
    "photo_sha256": bytes(32), "expires": NOW, "signer_kid": b"\x01" * 8,
    "status": StatusCheck.GOOD, "checked_at": NOW,
}


def test_every_field_is_set_by_name_and_by_position() -> None:
    # VerifiedCard writes its slots itself (for speed): every field must be there.
    assert [field.name for field in dataclasses.fields(VerifiedCard)] == list(VALUES)
    for card in (VerifiedCard(**VALUES), VerifiedCard(*VALUES.values())):  # type: ignore[arg-type]
        assert {name: getattr(card, name) for name in VALUES} == VALUES
    assert VerifiedCard(**VALUES) == VerifiedCard(*VALUES.values())  # type: ignore[arg-type]


def test_a_verified_card_is_frozen_and_replace_works() -> None:
    card = VerifiedCard(**VALUES)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.surname = "Li"  # type: ignore[misc]
    other = dataclasses.replace(card, surname="Li")
    assert (other.surname, card.surname) == ("Li", "Wang")
    assert hash(card) == hash(VerifiedCard(**VALUES))  # type: ignore[arg-type]
    assert card.as_dict()["birth_date"] == "1985-03-14"


def test_verdicts_carry_the_card_or_the_reason() -> None:
    card = VerifiedCard(**VALUES)  # type: ignore[arg-type]
    assert Verdict.accepted(card).as_dict()["card"]["surname"] == "Wang"
    refused = Verdict.refused(RevokedError("the card is revoked"))
    assert (refused.valid, refused.reason, refused.card) == (False, "revoked", None)
