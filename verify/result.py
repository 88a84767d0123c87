"""What a terminal learns from a card: a `VerifiedCard`, and a `Verdict` for user interfaces.

`verify_qr` (and the chip reader) return a `VerifiedCard` only when every check passed and
raise a `cardsys.errors.VerificationError` subclass otherwise: there is no "valid" flag to
forget to read. A `Verdict` is the UI's view of either outcome: valid or not, a stable reason
code (the error's `code`), a sentence a clerk can read, and the card when it is valid.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from cardsys.errors import VerificationError

__all__ = ["Evidence", "StatusCheck", "Verdict", "VerifiedCard"]


class Evidence(enum.StrEnum):
    """What was verified."""

    #: A phone's dynamic QR: a credential plus a fresh proof of the bound device key.
    PRESENTATION = "presentation"
    #: The QR printed on a card: a credential with no holder binding (compare the photo).
    STATIC = "static"
    #: A chip read over PC/SC: passive and active authentication.
    CHIP = "chip"


class StatusCheck(enum.StrEnum):
    """The status a valid card was accepted with (revoked and suspended cards raise)."""

    #: A fresh, signed status list says the card is valid.
    GOOD = "good"
    #: No fresh list covered the card and the terminal's policy accepts unknown status.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, init=False)
class VerifiedCard:
    """A card that passed every check, and the holder data a counter needs."""

    evidence: Evidence
    #: The physical card number of the holder (what the counter records).
    card_number: str
    #: What the signature covers as the document's own id: the digital card number for a
    #: presentation, the physical card number for a static QR or a chip.
    document_number: str
    surname: str
    given_names: str
    #: "F", "M" or "X".
    sex: str
    birth_date: date
    #: The region of residence (6-digit code).
    region: str
    schemes: tuple[str, ...]
    #: SHA-256 of the holder's photo, to compare with the portrait the counter shows.
    photo_sha256: bytes | None
    #: When the credential (or the chip card) expires.
    expires: datetime
    #: Key id of the signer certificate that signed the credential or the chip's SOD.
    signer_kid: bytes
    status: StatusCheck
    checked_at: datetime

    def __init__(
        self,
        evidence: Evidence,
        card_number: str,
        document_number: str,
        surname: str,
        given_names: str,
        sex: str,
        birth_date: date,
        region: str,
        schemes: tuple[str, ...],
        photo_sha256: bytes | None,
        expires: datetime,
        signer_kid: bytes,
        status: StatusCheck,
        checked_at: datetime,
    ) -> None:
        # What a frozen dataclass's generated __init__ does, but each slot is written through
        # its descriptor's __set__ (bound once, below) rather than object.__setattr__: half
        # the cost, and a terminal builds one of these per card it verifies. Assignment from
        # outside still raises FrozenInstanceError.
        _set_evidence(self, evidence)
        _set_card_number(self, card_number)
        _set_document_number(self, document_number)
        _set_surname(self, surname)
        _set_given_names(self, given_names)
        _set_sex(self, sex)
        _set_birth_date(self, birth_date)
        _set_region(self, region)
        _set_schemes(self, schemes)
        _set_photo_sha256(self, photo_sha256)
        _set_expires(self, expires)
        _set_signer_kid(self, signer_kid)
        _set_status(self, status)
        _set_checked_at(self, checked_at)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (dates as ISO text, bytes as hex)."""
        return {
            "evidence": self.evidence.value,
            "card_number": self.card_number,
            "document_number": self.document_number,
            "surname": self.surname,
            "given_names": self.given_names,
            "sex": self.sex,
            "birth_date": self.birth_date.isoformat(),
            "region": self.region,
            "schemes": list(self.schemes),
            "photo_sha256": self.photo_sha256.hex() if self.photo_sha256 else None,
            "expires": self.expires.isoformat(),
            "signer_kid": self.signer_kid.hex(),
            "status": self.status.value,
            "checked_at": self.checked_at.isoformat(),
        }


_SLOTS: Final = vars(VerifiedCard)
_set_evidence: Final = _SLOTS["evidence"].__set__
_set_card_number: Final = _SLOTS["card_number"].__set__
_set_document_number: Final = _SLOTS["document_number"].__set__
_set_surname: Final = _SLOTS["surname"].__set__
_set_given_names: Final = _SLOTS["given_names"].__set__
_set_sex: Final = _SLOTS["sex"].__set__
_set_birth_date: Final = _SLOTS["birth_date"].__set__
_set_region: Final = _SLOTS["region"].__set__
_set_schemes: Final = _SLOTS["schemes"].__set__
_set_photo_sha256: Final = _SLOTS["photo_sha256"].__set__
_set_expires: Final = _SLOTS["expires"].__set__
_set_signer_kid: Final = _SLOTS["signer_kid"].__set__
_set_status: Final = _SLOTS["status"].__set__
_set_checked_at: Final = _SLOTS["checked_at"].__set__


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for a user interface: never raises, always says why."""

    valid: bool
    #: "valid", or the `code` of the VerificationError (e.g. "revoked", "stale_proof").
    reason: str
    message: str
    card: VerifiedCard | None

    @classmethod
    def accepted(cls, card: VerifiedCard) -> Verdict:
        unknown = card.status is StatusCheck.UNKNOWN
        status = " (status unknown: accepted by policy)" if unknown else ""
        return cls(True, "valid", f"{card.evidence.value} verified{status}", card)

    @classmethod
    def refused(cls, error: VerificationError) -> Verdict:
        return cls(False, error.reason, str(error) or error.reason.replace("_", " "), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "reason": self.reason,
            "message": self.message,
            "card": self.card.as_dict() if self.card is not None else None,
        }
