"""Make offices, operators, residents and cards through the real services, for tests.

Everything here goes through `issuance` (so every row has its audit event, exactly as in
production) and works inside the caller's transaction. Operators are referred to by login and
reloaded per session, because ORM objects belong to the session that loaded them:

    with database.transaction() as session:
        staff = make_office(session)                    # admin, office, four operators
        holder = make_resident(session, staff.clerk_in(session))
        card = make_card(session, staff, holder, settings=settings)   # walked to ACTIVE

`snapshot(database)` returns every row of every table; `refused(database, Error, action)` runs
an action that must fail and asserts the database is unchanged afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardsys.config import Settings
from cardsys.db import Database
from cardsys.ids import ResidentId
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import AuditEvent, Card, Operator, Resident, Role, Sex
from issuance import cards, operators, residents

#: A fixed "now" for tests: time is a parameter, never read from the clock in the services.
NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
ADMIN = "admin"
DEFAULT_REGION = "110101"
DEFAULT_BIRTH = date(1980, 5, 17)
E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True)
class Staff:
    """The logins of one office's operators (two supervisors, for maker-checker tests)."""

    office: str
    clerk: str
    supervisor: str
    supervisor2: str
    auditor: str

    def clerk_in(self, session: Session) -> Operator:
        return operator(session, self.clerk)

    def supervisor_in(self, session: Session) -> Operator:
        return operator(session, self.supervisor)

    def supervisor2_in(self, session: Session) -> Operator:
        return operator(session, self.supervisor2)

    def auditor_in(self, session: Session) -> Operator:
        return operator(session, self.auditor)


def at_day(day: date) -> datetime:
    """That day at the time of day of NOW (UTC)."""
    return datetime.combine(day, NOW.timetz())


def operator(session: Session, login: str) -> Operator:
    """The active operator with this login, loaded in `session`."""
    return operators.get_operator(session, login)


def system(session: Session) -> Operator:
    """The operator scheduled jobs act as (the expiry job)."""
    return operator(session, operators.SYSTEM_LOGIN)


def card(session: Session, number: str) -> Card:
    """A card by number, without role or office checks (for assertions)."""
    found = session.scalar(select(Card).where(Card.number == number))
    if found is None:
        raise LookupError(f"no card {number} in the test database")
    return found


def resident(session: Session, id_number: str) -> Resident:
    """A resident by ID number, without role or office checks (for assertions)."""
    found = session.scalar(select(Resident).where(Resident.id_number == id_number))
    if found is None:
        raise LookupError(f"no resident {id_number} in the test database")
    return found


def make_admin(session: Session, *, now: datetime = NOW) -> Operator:
    """The system operator and the first admin `admin`, as `cardsys init` creates them."""
    existing = session.scalar(select(Operator).where(Operator.login == ADMIN))
    if existing is not None:
        return existing
    system_operator = operators.bootstrap_system(session, now=now)
    return operators.add_operator(
        session, system_operator, login=ADMIN, name="Administrator", role=Role.ADMIN,
        office_code=None, password=None, now=now,
    )


def make_operator(
    session: Session, login: str, role: Role, office: str | None, *, now: datetime = NOW
) -> Operator:
    """One more operator, created by the admin (no password: no slow argon2 hashing)."""
    return operators.add_operator(
        session, make_admin(session, now=now), login=login, name=login.title(), role=role,
        office_code=office, password=None, now=now,
    )


def make_office(
    session: Session, code: str = "OFF-A", region: str = DEFAULT_REGION, *, now: datetime = NOW
) -> Staff:
    """An office with a clerk, two supervisors and an auditor (logins `<code>.<role>`)."""
    admin = make_admin(session, now=now)
    operators.add_office(session, admin, code=code, name=f"Office {code}", region=region, now=now)
    prefix = code.lower()
    staff = Staff(
        office=code,
        clerk=f"{prefix}.clerk",
        supervisor=f"{prefix}.super",
        supervisor2=f"{prefix}.super2",
        auditor=f"{prefix}.auditor",
    )
    make_operator(session, staff.clerk, Role.CLERK, code, now=now)
    make_operator(session, staff.supervisor, Role.SUPERVISOR, code, now=now)
    make_operator(session, staff.supervisor2, Role.SUPERVISOR, code, now=now)
    make_operator(session, staff.auditor, Role.AUDITOR, code, now=now)
    return staff


def enrolment(
    sequence: int = 1,
    *,
    region: str = DEFAULT_REGION,
    birth_date: date = DEFAULT_BIRTH,
    surname: str = "Zhang",
    given_names: str | None = None,
    sex: Sex = Sex.FEMALE,
) -> residents.Enrolment:
    """Enrolment data with a valid ID number; `sequence` (0-999) makes the number unique.

    The given names default to one per sequence, so two enrolments are never possible
    duplicates of each other unless a test asks for it.
    """
    return residents.Enrolment(
        id_number=ResidentId.build(region, birth_date, sequence),
        surname=surname,
        given_names=given_names if given_names is not None else f"Test{sequence:03d}",
        sex=sex,
        birth_date=birth_date,
        region=region,
    )


def make_resident(
    session: Session,
    clerk: Operator,
    sequence: int = 1,
    *,
    confirm_distinct: bool = False,
    now: datetime = NOW,
    **fields: Any,
) -> Resident:
    """Enrol a resident through `issuance.residents.enrol` (see `enrolment` for `fields`)."""
    return residents.enrol(
        session, clerk, enrolment(sequence, **fields), now=now, confirm_distinct=confirm_distinct
    )


#: The order a physical card walks through its life.
_WALK = (
    CardStatus.APPLIED,
    CardStatus.APPROVED,
    CardStatus.PERSONALIZED,
    CardStatus.ISSUED,
    CardStatus.ACTIVE,
)


def make_card(
    session: Session,
    staff: Staff,
    holder: Resident,
    *,
    settings: Settings,
    status: CardStatus = CardStatus.ACTIVE,
    reason: Reason = Reason.LOST,
    now: datetime = NOW,
) -> Card:
    """A physical card walked through the real services to `status`.

    The clerk applies, personalizes, hands over and activates; the supervisor approves (so
    maker-checker holds) and revokes. SUSPENDED and REVOKED carry `reason`. EXPIRED runs the
    expiry job the day after the card's expiry, which expires every other due card as well.
    """
    clerk, boss = staff.clerk_in(session), staff.supervisor_in(session)
    new = cards.apply(session, clerk, holder, now=now, settings=settings)
    steps = {
        CardStatus.APPROVED: lambda: cards.approve(session, boss, new, now=now),
        CardStatus.PERSONALIZED: lambda: cards.personalize(
            session, clerk, new, now=now, settings=settings
        ),
        CardStatus.ISSUED: lambda: cards.hand_over(session, clerk, new, now=now),
        CardStatus.ACTIVE: lambda: cards.activate(session, clerk, new, now=now),
    }
    target = CardStatus.ACTIVE if status.terminal or status is CardStatus.SUSPENDED else status
    for step in _WALK[1 : _WALK.index(target) + 1]:
        steps[step]()
    if status is CardStatus.SUSPENDED:
        cards.suspend(session, clerk, new, reason=reason, now=now)
    elif status is CardStatus.REVOKED:
        cards.revoke(session, boss, new, reason=reason, now=now)
    elif status is CardStatus.EXPIRED:
        assert new.expiry_date is not None
        later = datetime.combine(new.expiry_date + timedelta(days=1), now.timetz())
        cards.expire_due(session, system(session), now=later)
    session.flush()
    assert new.status is status, f"factory walked the card to {new.status}, not {status}"
    return new


_TABLE_NAMES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
}


def snapshot(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: compare two to prove nothing changed.

    Tables are listed from the database itself (not the models), so `alembic_version` and a
    table the models do not know are compared too. Plain SQL keeps this cheap: a test calls it
    twice per refusal.
    """
    with database.engine.connect() as connection:
        names = connection.exec_driver_sql(_TABLE_NAMES[database.dialect]).scalars().all()
        return {
            name: sorted(
                (tuple(row) for row in connection.exec_driver_sql(f'SELECT * FROM "{name}"')),
                key=repr,
            )
            for name in sorted(names)
        }


def refused(
    database: Database,
    error: type[E],
    action: Callable[[Session], object],
    *,
    match: str | None = None,
    exact: bool = False,
) -> E:
    """Run `action` in a transaction: it must raise `error` and leave every table unchanged.

    Args:
        exact: the error must be `error` itself, not a subclass (DuplicateError, say, but not
            PossibleDuplicateError).
    """
    before = snapshot(database)
    with pytest.raises(error, match=match) as caught, database.transaction() as session:
        action(session)
    if exact:
        assert type(caught.value) is error, f"{type(caught.value).__name__} is not {error}"
    assert snapshot(database) == before, "a refused action changed the database"
    return caught.value


def audit_count(session: Session) -> int:
    """How many audit events the chain holds."""
    return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def audit_tags(session: Session, subject: str) -> list[str]:
    """The tags of a subject's audit events, oldest first."""
    query = select(AuditEvent.tag).where(AuditEvent.subject == subject).order_by(AuditEvent.seq)
    return list(session.scalars(query))
