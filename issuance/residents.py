"""Enrolment: residents, their photos, and the duplicate checks that protect the register."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cardsys import audit
from cardsys.access import require_office, require_role
from cardsys.errors import (
    DuplicateError,
    NotFoundError,
    PossibleDuplicateError,
    ValidationError,
)
from cardsys.ids import ResidentId
from cardsys.models import Operator, Photo, Resident, Role, Sex

MAX_PHOTO_BYTES = 100_000
_PHOTO_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
_SCHEME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


@dataclass(frozen=True)
class Enrolment:
    """What an office records about a new resident."""

    id_number: ResidentId
    surname: str
    given_names: str
    sex: Sex
    birth_date: date
    region: str
    schemes: tuple[str, ...] = ()
    photo: bytes | None = None


def enrol(
    session: Session,
    actor: Operator,
    enrolment: Enrolment,
    *,
    now: datetime,
    confirm_distinct: bool = False,
) -> Resident:
    """Register a resident in the actor's office.

    Raises:
        DuplicateError: the ID number is already registered.
        PossibleDuplicateError: someone with the same name, birth date and region exists; pass
            `confirm_distinct=True` after checking documents, which flags the new record for a
            supervisor's review.
        ValidationError: names, dates, region, schemes or photo are not acceptable.
    """
    require_role(actor, Role.CLERK, Role.SUPERVISOR)
    assert actor.office_id is not None
    surname = _name(enrolment.surname, "surname")
    given = _name(enrolment.given_names, "given names")
    if enrolment.birth_date != enrolment.id_number.birth_date:
        raise ValidationError("the birth date differs from the one in the ID number")
    if enrolment.birth_date > now.date():
        raise ValidationError("the birth date is in the future")
    if not (len(enrolment.region) == 6 and enrolment.region.isdigit()):
        raise ValidationError(f"region {enrolment.region!r} must be a 6-digit code")
    schemes = _schemes(enrolment.schemes)
    id_number = str(enrolment.id_number)
    if session.scalar(select(Resident.id).where(Resident.id_number == id_number)) is not None:
        raise DuplicateError(f"a resident with ID number {id_number} is already registered")
    twin = session.scalar(
        select(Resident).where(
            func.lower(Resident.surname) == surname.lower(),
            func.lower(Resident.given_names) == given.lower(),
            Resident.birth_date == enrolment.birth_date,
            Resident.region == enrolment.region,
        )
    )
    if twin is not None and not confirm_distinct:
        # Another office's register is not shown to this clerk: only that a match exists.
        which = twin.id_number if twin.office_id == actor.office_id else "a resident elsewhere"
        raise PossibleDuplicateError(
            f"possible duplicate of {which} (same name, birth date and region); check the "
            "documents and confirm to enrol for review"
        )
    photo = store_photo(session, enrolment.photo) if enrolment.photo is not None else None
    resident = Resident(
        id_number=id_number, surname=surname, given_names=given, sex=enrolment.sex,
        birth_date=enrolment.birth_date, region=enrolment.region, schemes=" ".join(schemes),
        photo=photo, office_id=actor.office_id, review_required=twin is not None,
        deceased=False, created_at=now, created_by_id=actor.id,
    )
    session.add(resident)
    session.flush()
    audit.record(
        session, at=now, actor=actor.login, office=resident.office.code,
        tag="resident:resident:enrol", subject=id_number,
        details={"review_required": resident.review_required,
                 "possible_duplicate_of": twin.id_number if twin is not None else None,
                 "photo_sha256": photo.sha256 if photo is not None else None},
    )
    return resident


def _name(value: str, what: str) -> str:
    cleaned = " ".join(value.split())
    if not cleaned or len(cleaned) > 100:
        raise ValidationError(f"{what} must be 1 to 100 characters")
    if any(not (c.isprintable()) for c in cleaned):
        raise ValidationError(f"{what} contains control characters")
    return cleaned


def _schemes(schemes: tuple[str, ...]) -> tuple[str, ...]:
    result = tuple(sorted({s.strip().upper() for s in schemes if s.strip()}))
    for scheme in result:
        if not set(scheme) <= _SCHEME or len(scheme) > 16:
            raise ValidationError(f"insurance scheme code {scheme!r}: A-Z, 0-9 and '-', max 16")
    return result


def store_photo(session: Session, content: bytes) -> Photo:
    """Store a JPEG or PNG portrait once, keyed by its SHA-256."""
    if not content or len(content) > MAX_PHOTO_BYTES:
        raise ValidationError(f"a photo must be 1 to {MAX_PHOTO_BYTES} bytes")
    media_type = next((t for magic, t in _PHOTO_TYPES.items() if content.startswith(magic)), None)
    if media_type is None:
        raise ValidationError("a photo must be a JPEG or PNG image")
    digest = hashlib.sha256(content).hexdigest()
    photo = session.scalar(select(Photo).where(Photo.sha256 == digest))
    if photo is None:
        photo = Photo(sha256=digest, media_type=media_type, content=content)
        session.add(photo)
        session.flush()
    return photo


def get(session: Session, actor: Operator, id_number: str) -> Resident:
    """A resident of the actor's office by ID number."""
    require_role(actor, Role.CLERK, Role.SUPERVISOR, Role.AUDITOR)
    number = str(ResidentId.parse(id_number))
    resident = session.scalar(select(Resident).where(Resident.id_number == number))
    if resident is None:
        raise NotFoundError("not found in your office")
    require_office(actor, resident.office_id)
    return resident


def find(session: Session, actor: Operator, text: str, *, limit: int = 50) -> list[Resident]:
    """Residents of the actor's office whose ID number starts with, or name contains, `text`."""
    require_role(actor, Role.CLERK, Role.SUPERVISOR, Role.AUDITOR)
    needle = " ".join(text.split())
    if len(needle) < 2:
        raise ValidationError("search for at least 2 characters")
    escaped = needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    full_name = func.lower(Resident.surname + " " + Resident.given_names)
    query = (
        select(Resident)
        .where(Resident.office_id == actor.office_id)
        .where(
            or_(
                Resident.id_number.startswith(needle.upper(), autoescape=True),
                full_name.like(pattern, escape="\\"),
            )
        )
        .order_by(Resident.surname, Resident.given_names, Resident.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def clear_review(session: Session, actor: Operator, id_number: str, *, now: datetime) -> Resident:
    """A supervisor confirms a flagged resident is a distinct person."""
    require_role(actor, Role.SUPERVISOR)
    resident = get(session, actor, id_number)
    if not resident.review_required:
        raise ValidationError(f"resident {resident.id_number} is not waiting for review")
    resident.review_required = False
    audit.record(
        session, at=now, actor=actor.login, office=resident.office.code,
        tag="resident:review:clear", subject=resident.id_number, details={},
    )
    return resident
