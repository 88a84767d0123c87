"""Offices and operators: who may act, where, and how they prove it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsys import audit
from cardsys.access import require_role
from cardsys.errors import (
    AuthenticationError,
    DuplicateError,
    LockedError,
    NotFoundError,
    ValidationError,
)
from cardsys.models import Office, Operator, Role

#: The operator that scheduled jobs act as (expiry, status publication). It cannot log in.
SYSTEM_LOGIN = "system"
_LOGIN = re.compile(r"[a-z][a-z0-9._-]{1,63}")
_OFFICE_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{1,15}")
_REGION = re.compile(r"[0-9]{6}")
MIN_PASSWORD = 12

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def add_office(
    session: Session, actor: Operator, *, code: str, name: str, region: str, now: datetime
) -> Office:
    require_role(actor, Role.ADMIN)
    if not _OFFICE_CODE.fullmatch(code):
        raise ValidationError(f"office code {code!r}: 2-16 capital letters, digits or dashes")
    if not _REGION.fullmatch(region):
        raise ValidationError(f"region {region!r} must be a 6-digit code")
    if not name.strip():
        raise ValidationError("an office needs a name")
    if session.scalar(select(Office).where(Office.code == code)) is not None:
        raise DuplicateError(f"office {code} already exists")
    office = Office(code=code, name=name.strip(), region=region, created_at=now)
    session.add(office)
    session.flush()
    audit.record(
        session, at=now, actor=actor.login, office=code, tag="office:office:create",
        subject=code, details={"name": office.name, "region": region},
    )
    return office


def bootstrap_system(session: Session, *, now: datetime) -> Operator:
    """Create the system operator if missing (done by `cardsys init`); returns it."""
    system = session.scalar(select(Operator).where(Operator.login == SYSTEM_LOGIN))
    if system is None:
        system = Operator(
            login=SYSTEM_LOGIN, name="Scheduled jobs", role=Role.ADMIN, office_id=None,
            password_hash=None, active=True, failed_logins=0, created_at=now,
        )
        session.add(system)
        session.flush()
        audit.record(
            session, at=now, actor=SYSTEM_LOGIN, office=None, tag="operator:operator:create",
            subject=SYSTEM_LOGIN, details={"role": Role.ADMIN.value},
        )
    return system


def add_operator(
    session: Session,
    actor: Operator,
    *,
    login: str,
    name: str,
    role: Role,
    office_code: str | None,
    password: str | None,
    now: datetime,
) -> Operator:
    """Create an operator. Clerks, supervisors and auditors belong to an office."""
    require_role(actor, Role.ADMIN)
    if not _LOGIN.fullmatch(login) or login == SYSTEM_LOGIN:
        raise ValidationError(f"login {login!r}: 2-64 of a-z, 0-9, '.', '_', '-', starting a-z")
    if not name.strip():
        raise ValidationError("an operator needs a name")
    office = None
    if office_code is not None:
        office = session.scalar(select(Office).where(Office.code == office_code))
        if office is None:
            raise NotFoundError(f"no office {office_code}")
    elif role is not Role.ADMIN:
        raise ValidationError(f"a {role.value} must belong to an office (--office)")
    if session.scalar(select(Operator).where(Operator.login == login)) is not None:
        raise DuplicateError(f"operator {login} already exists")
    operator = Operator(
        login=login, name=name.strip(), role=role, office_id=office.id if office else None,
        password_hash=hash_password(password) if password is not None else None,
        active=True, failed_logins=0, created_at=now,
    )
    session.add(operator)
    session.flush()
    audit.record(
        session, at=now, actor=actor.login, office=office.code if office else None,
        tag="operator:operator:create", subject=login,
        details={"role": role.value, "password_set": password is not None},
    )
    return operator


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def get_operator(session: Session, login: str) -> Operator:
    """The active operator with this login (what `--as LOGIN` names)."""
    operator = session.scalar(select(Operator).where(Operator.login == login))
    if operator is None or not operator.active:
        raise NotFoundError(f"no active operator {login!r}")
    return operator


def authenticate(
    session: Session,
    *,
    login: str,
    password: str,
    now: datetime,
    max_failures: int,
    lock_seconds: int,
) -> Operator:
    """Check a password; count failures and lock the account for a while after too many.

    The same error for an unknown login and a wrong password, so logins cannot be probed.
    Failures are counted in `session`: the caller commits it even when this raises.
    """
    operator = session.scalar(select(Operator).where(Operator.login == login))
    if operator is None or not operator.active or operator.password_hash is None:
        _hasher.hash(password)  # spend the same time as a real check
        raise AuthenticationError("wrong login or password")
    if operator.locked_until is not None and operator.locked_until > now:
        raise LockedError("too many failed logins: try again later")
    try:
        _hasher.verify(operator.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError) as exc:
        operator.failed_logins += 1
        if operator.failed_logins >= max_failures:
            operator.locked_until = now + timedelta(seconds=lock_seconds)
            operator.failed_logins = 0
            audit.record(
                session, at=now, actor=login, office=_office_code(operator),
                tag="operator:login:lock", subject=login, details={"seconds": lock_seconds},
            )
        raise AuthenticationError("wrong login or password") from exc
    operator.failed_logins = 0
    operator.locked_until = None
    if _hasher.check_needs_rehash(operator.password_hash):
        operator.password_hash = _hasher.hash(password)
    return operator


def _office_code(operator: Operator) -> str | None:
    return operator.office.code if operator.office is not None else None
