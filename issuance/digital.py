"""Digital cards: activation codes, binding a phone, credentials and their refresh.

Rules this service keeps (formats: `cardsys.formats.credential`):

* an activation code is made for a resident's ACTIVE physical card by an office clerk or
  supervisor: 60 random bits as 12 Crockford base32 characters (`XXXX-XXXX-XXXX`), shown once,
  stored only as a salted SHA-256, dead after `activation_code_ttl` seconds or
  `activation_max_attempts` wrong tries; a new code for the card replaces the live one;
* `provision` manages its own transactions, so that a wrong try is counted durably even though
  the call then raises: the caller cannot forget to commit it;
* a phone is bound by its P-256 public key (checked to be a point on the curve), becomes a new
  DIGITAL card (`cards.provision`: at most `max_devices` open ones per resident, never the same
  key twice) with its own status slot, and gets a credential signed by the active credential
  signer, valid `credential_lifetime_days` (never past the physical card's expiry);
* a refresh is authorised by a signature of the bound device key over a fresh time, for an
  active digital card of an active physical card, up to `REFRESH_GRACE` after the presented
  credential expired;
* every step writes its audit event (`digital:<subject>:<action>`) in its transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsys import audit
from cardsys.access import require_role
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import (
    AuthenticationError,
    CardNotActiveError,
    CardsysError,
    DecodeError,
    IllegalTransitionError,
    LockedError,
    NotFoundError,
    SignatureError,
    ValidationError,
)
from cardsys.formats import cbor, cwt
from cardsys.formats import credential as fmt
from cardsys.ids import CardNumber
from cardsys.lifecycle import CardKind, CardStatus
from cardsys.models import ActivationCode, ActivationCodeState, Card, Operator, Role
from cardsys.pki import Purpose
from issuance import cards
from issuance.operators import SYSTEM_LOGIN, get_operator
from issuance.status import SignerSource, status_uri

__all__ = [
    "CODE_ALPHABET",
    "REFRESH_GRACE",
    "IssuedCode",
    "ProvisionRequest",
    "Provisioned",
    "create_activation_code",
    "credential_for",
    "digital_card",
    "holder_of",
    "normalize_code",
    "provision",
    "refresh",
    "static_credential",
]

#: Crockford base32: no I, L, O or U, so a code read aloud or typed is hard to get wrong.
CODE_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_CHARS: Final = 12  # 60 bits
#: How long after its credential expired a phone may still refresh it (it was offline).
REFRESH_GRACE: Final = timedelta(days=30)
_DECODE: Final = str.maketrans({"O": "0", "I": "1", "L": "1"})
_ISSUING_ROLES: Final = (Role.CLERK, Role.SUPERVISOR)


@dataclass(frozen=True)
class IssuedCode:
    """A fresh activation code: show `code` to the resident once; it is not stored."""

    code: str
    card_number: str
    expires_at: datetime


@dataclass(frozen=True)
class ProvisionRequest:
    """What the phone sends: the code, the holder's card number and birth date, its key."""

    code: str
    card_number: str
    birth_date: date
    #: Uncompressed P-256 point: 0x04 || x || y (65 bytes).
    device_public_key: bytes

    def __repr__(self) -> str:  # never the code
        return f"ProvisionRequest(card_number={self.card_number!r})"


@dataclass(frozen=True)
class Provisioned:
    """A digital card's credential as handed to the phone."""

    card_number: str
    credential: bytes
    expires_at: datetime


# --- activation codes -----------------------------------------------------------------------------


def create_activation_code(
    session: Session, actor: Operator, card_number: str, *, now: datetime, settings: Settings
) -> IssuedCode:
    """A one-time code for the holder of active physical card `card_number`.

    Raises:
        CardNotActiveError: the card is not an active physical card.
        PermissionDeniedError, NotFoundError: the actor's role or office.
    """
    require_role(actor, *_ISSUING_ROLES)
    card = cards.get(session, actor, card_number)
    _lock(session, card)
    if card.kind is not CardKind.PHYSICAL or card.status is not CardStatus.ACTIVE:
        raise CardNotActiveError(f"card {card.number} is not an active physical card")
    live = session.scalars(
        select(ActivationCode)
        .where(ActivationCode.card_id == card.id)
        .where(ActivationCode.state == ActivationCodeState.LIVE)
    ).all()
    for old in live:
        old.state, old.closed_at = ActivationCodeState.REPLACED, now
    session.flush()  # the partial unique index admits one live code per card
    replaced = len(live)
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(_CODE_CHARS))
    salt = secrets.token_bytes(16)
    expires = now + timedelta(seconds=settings.activation_code_ttl)
    session.add(
        ActivationCode(
            card_id=card.id, salt=salt, code_hash=_hash(salt, code),
            state=ActivationCodeState.LIVE, attempts=0, created_at=now, expires_at=expires,
            created_by=actor.login,
        )
    )
    session.flush()
    _audit(session, actor.login, card, "activation-code:create", now,
           {"expires_at": expires.isoformat(), "replaced": replaced})
    return IssuedCode(_grouped(code), card.number, expires)


def normalize_code(text: str) -> str:
    """An activation code as typed (any case, dashes, spaces, O for 0, I or L for 1).

    Raises:
        ValidationError: characters outside Crockford base32, or the wrong length.
    """
    code = "".join(text.split()).replace("-", "").upper().translate(_DECODE)
    if len(code) != _CODE_CHARS or not set(code) <= set(CODE_ALPHABET):
        raise ValidationError(f"an activation code has {_CODE_CHARS} letters and digits")
    return code


def _hash(salt: bytes, code: str) -> str:
    return hashlib.sha256(salt + code.encode("ascii")).hexdigest()


def _grouped(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


# --- provisioning -----------------------------------------------------------------------------


def provision(
    db: Database,
    request: ProvisionRequest,
    *,
    now: datetime,
    settings: Settings,
    signers: SignerSource,
    channel: str = "wallet",
) -> Provisioned:
    """Redeem an activation code: bind the phone's key to a new digital card, sign its
    credential. Runs its own transactions (module docstring): a wrong try is committed, then
    raised.

    Raises:
        ValidationError: a malformed code, card number or device key.
        AuthenticationError: wrong code, card number or birth date, or an expired code.
        LockedError: this try used up the attempts; the code is dead.
        CardNotActiveError, LimitExceededError, DuplicateError: see `cards.provision`.
    """
    code = normalize_code(request.code)
    number = str(CardNumber.parse(request.card_number))
    device_key = fmt.public_key_from_point(request.device_public_key)
    with db.transaction() as session:
        outcome = _redeem(session, code, number, request.birth_date, device_key, now=now,
                          settings=settings, signers=signers, channel=channel)
    if isinstance(outcome, CardsysError):
        raise outcome
    return outcome


def _redeem(
    session: Session,
    code: str,
    number: str,
    birth_date: date,
    device_key: ec.EllipticCurvePublicKey,
    *,
    now: datetime,
    settings: Settings,
    signers: SignerSource,
    channel: str,
) -> Provisioned | CardsysError:
    """Inside one transaction. A refusal that must be committed is returned, not raised."""
    wrong = AuthenticationError("wrong activation code, card number or birth date")
    parent = session.scalar(select(Card).where(Card.number == number))
    if parent is None or parent.kind is not CardKind.PHYSICAL:
        return wrong
    row = session.scalar(
        select(ActivationCode)
        .where(ActivationCode.card_id == parent.id)
        .where(ActivationCode.state == ActivationCodeState.LIVE)
        .with_for_update()
    )
    if row is None:
        return wrong
    if now >= row.expires_at:
        row.state, row.closed_at = ActivationCodeState.EXPIRED, now
        return AuthenticationError("the activation code has expired: ask the office for a new one")
    if not (hmac.compare_digest(_hash(row.salt, code), row.code_hash)
            and birth_date == parent.resident.birth_date):
        row.attempts += 1
        left = settings.activation_max_attempts - row.attempts
        if left > 0:
            return AuthenticationError(f"{wrong} ({left} tries left)")
        row.state, row.closed_at = ActivationCodeState.LOCKED, now
        _audit(session, SYSTEM_LOGIN, parent, "activation-code:lock", now,
               {"attempts": row.attempts})
        return LockedError("too many wrong tries: the activation code is dead; ask for a new one")
    thumbprint = fmt.thumbprint(device_key).hex()
    card = cards.provision(
        session, get_operator(session, SYSTEM_LOGIN), parent,
        device_key=cbor.dumps(fmt.cose_key(device_key)), device_thumbprint=thumbprint,
        now=now, settings=settings,
        details={"channel": channel, "code_created_by": row.created_by},
    )
    row.state, row.closed_at, row.digital_card_id = ActivationCodeState.USED, now, card.id
    _audit(session, SYSTEM_LOGIN, parent, "activation-code:use", now,
           {"digital_card": card.number, "channel": channel})
    return credential_for(session, card, now=now, settings=settings, signers=signers)


# --- credentials --------------------------------------------------------------------------------


def credential_for(
    session: Session, card: Card, *, now: datetime, settings: Settings, signers: SignerSource
) -> Provisioned:
    """A fresh credential for an active digital card (its device key, its status slot)."""
    parent = session.get(Card, card.parent_id) if card.parent_id is not None else None
    if card.kind is not CardKind.DIGITAL or card.device_key is None or parent is None:
        raise IllegalTransitionError(f"card {card.number} is not a digital card")
    if card.status is not CardStatus.ACTIVE or parent.status is not CardStatus.ACTIVE:
        raise CardNotActiveError(f"card {card.number} (or its physical card) is not active")
    expires = now + timedelta(days=settings.credential_lifetime_days)
    if parent.expiry_date is not None:
        expires = min(expires, _end_of(parent.expiry_date))
    device = cbor.loads(card.device_key)
    point = b"\x04" + device[-2] + device[-3]
    claims = fmt.Claims(
        issuer=settings.issuer,
        subject=card.number,
        issued_at=now,
        expires=expires,
        holder=holder_of(parent),
        status=_status_ref(card, settings),
        device_key=fmt.public_key_from_point(point),
    )
    signer = signers(session, Purpose.CREDENTIAL, now)
    data = fmt.issue_credential(claims, sign=signer.sign, alg=signer.algorithm, kid=signer.kid)
    return Provisioned(card.number, data, _seconds(expires))


def static_credential(
    session: Session,
    actor: Operator,
    card_number: str,
    *,
    now: datetime,
    settings: Settings,
    signers: SignerSource,
) -> bytes:
    """The static credential printed on a physical card's back (`SSC1:` QR), valid until the
    card's expiry; its status slot is the card's own.

    Raises:
        CardNotActiveError: the card is not personalized (no expiry yet) or is revoked/expired.
    """
    require_role(actor, *_ISSUING_ROLES)
    card = cards.get(session, actor, card_number)
    if card.kind is not CardKind.PHYSICAL or card.expiry_date is None or card.status.terminal:
        raise CardNotActiveError(f"card {card.number} has no printable credential")
    claims = fmt.Claims(
        issuer=settings.issuer,
        subject=card.number,
        issued_at=now,
        expires=_end_of(card.expiry_date),
        holder=holder_of(card),
        status=_status_ref(card, settings),
    )
    signer = signers(session, Purpose.CREDENTIAL, now)
    data = fmt.issue_credential(claims, sign=signer.sign, alg=signer.algorithm, kid=signer.kid)
    _audit(session, actor.login, card, "credential:static", now,
           {"kid": signer.kid.hex(), "expires": card.expiry_date.isoformat()})
    return data


def refresh(
    session: Session,
    request: bytes,
    *,
    now: datetime,
    settings: Settings,
    signers: SignerSource,
) -> Provisioned:
    """A new credential for the phone that signed `request` (rules: module docstring).

    Raises:
        ValidationError: not a refresh request.
        AuthenticationError: not signed by the card's device key, stale, or too late.
        CardNotActiveError: the digital card or its physical card is suspended or revoked.
    """
    try:
        parsed = fmt.decode_refresh_request(request)
        held = fmt.decode_credential(parsed.credential)
    except DecodeError as exc:
        raise ValidationError(f"not a refresh request: {exc}") from None
    refused = AuthenticationError("the refresh request is not signed by this card's phone")
    card = session.scalar(select(Card).where(Card.number == held.subject))
    if card is None or card.kind is not CardKind.DIGITAL or card.device_key is None:
        raise refused
    device = cbor.loads(card.device_key)
    key = fmt.public_key_from_point(b"\x04" + device[-2] + device[-3])
    try:
        parsed.message.verify(key)
    except SignatureError:
        raise refused from None
    if held.device_point != (device[-2], device[-3]):
        raise refused
    if abs(cwt.to_numeric_date(now) - parsed.time) > settings.presentation_window:
        raise AuthenticationError("the refresh request is stale: check the phone's clock")
    if now > _seconds_dt(held.expires) + REFRESH_GRACE:
        raise AuthenticationError("the credential expired too long ago: activate the phone again")
    issued = credential_for(session, card, now=now, settings=settings, signers=signers)
    _audit(session, SYSTEM_LOGIN, card, "credential:refresh", now,
           {"expires": issued.expires_at.isoformat()})
    return issued


def digital_card(session: Session, actor: Operator, number: str) -> Card:
    """A digital card of the actor's office, for the `digital` commands.

    Raises:
        NotFoundError: no such digital card in the office.
    """
    card = cards.get(session, actor, number)
    _lock(session, card)
    if card.kind is not CardKind.DIGITAL:
        raise NotFoundError(f"{card.number} is a physical card: use the card commands")
    return card


# --- helpers --------------------------------------------------------------------------------------


def holder_of(card: Card) -> fmt.Holder:
    """The holder data of a physical card, as credentials carry it."""
    resident = card.resident
    return fmt.Holder(
        card_number=card.number,
        surname=resident.surname,
        given_names=resident.given_names,
        sex=resident.sex.value,
        birth_date=resident.birth_date,
        region=resident.region,
        schemes=tuple(resident.schemes.split()),
        photo_sha256=bytes.fromhex(resident.photo.sha256) if resident.photo else None,
    )


def _lock(session: Session, card: Card) -> None:
    # Lock the card's row alone (FOR UPDATE on a query with joined eager loads is refused by
    # PostgreSQL), then reload it: what we check is what we hold the lock on.
    session.execute(select(Card.id).where(Card.id == card.id).with_for_update())
    session.refresh(card)


def _status_ref(card: Card, settings: Settings) -> fmt.StatusRef:
    if card.status_list is None or card.status_index is None:
        raise IllegalTransitionError(f"card {card.number} has no status list slot")
    return fmt.StatusRef(status_uri(settings, card.status_list), card.status_index)


def _end_of(day: date) -> datetime:
    """A card valid "until" a date is valid through that whole day (UTC)."""
    return datetime.combine(day + timedelta(days=1), time(0), UTC)


def _seconds(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def _seconds_dt(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _audit(
    session: Session,
    actor: str,
    card: Card,
    what: str,
    now: datetime,
    details: dict[str, object],
) -> None:
    audit.record(session, at=now, actor=actor, office=card.office.code, tag=f"digital:{what}",
                 subject=card.number, details=details)

