"""A demonstration office for a development instance (`cardsys demo seed`, run by scripts/run).

Everything it makes is marked DEMO. Passwords are random, kept in `<instance>/demo-logins.txt`
(mode 0600) and printed on each run, so nothing secret is committed and a rerun changes nothing.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import NotFoundError
from cardsys.ids import ResidentId
from cardsys.lifecycle import CardKind, CardStatus, Reason
from cardsys.models import Card, Office, Operator, Resident, Role, Sex
from issuance import cards, digital, operators, residents

OFFICE = "DEMO-01"
LOGINS = (
    ("clerk", Role.CLERK),
    ("supervisor", Role.SUPERVISOR),
    ("supervisor2", Role.SUPERVISOR),
    ("auditor", Role.AUDITOR),
)
_RESIDENTS = (
    ("110105", date(1985, 3, 14), 11, "Wang", "Fang", Sex.FEMALE, "active"),
    ("310104", date(1990, 7, 2), 23, "Li", "Wei", Sex.MALE, "active"),
    ("440305", date(1978, 11, 30), 35, "Chen", "Jing", Sex.FEMALE, "suspended"),
    ("510107", date(2001, 1, 9), 47, "Zhang", "Min", Sex.MALE, "applied"),
    ("330106", date(1969, 5, 21), 59, "Liu", "Yang", Sex.MALE, "revoked"),
    ("420102", date(1995, 9, 17), 62, "Zhao", "Lei", Sex.FEMALE, "approved"),
)


@dataclass(frozen=True)
class DemoLogin:
    login: str
    role: Role
    password: str


def seed(session: Session, settings: Settings, *, now: datetime) -> list[DemoLogin]:
    """Create the demo office, its operators and residents with cards in several states.

    Idempotent: a second run finds what the first made and returns the same logins.
    """
    system = operators.bootstrap_system(session, now=now)
    passwords = _passwords(settings.instance_path)
    if session.scalar(select(Office).where(Office.code == OFFICE)) is None:
        operators.add_office(session, system, code=OFFICE, name="Demo Issuance Office (DEMO)",
                             region="110105", now=now)
    logins = []
    for login, role in LOGINS:
        if session.scalar(select(Operator).where(Operator.login == login)) is None:
            operators.add_operator(session, system, login=login, name=f"Demo {role.value}",
                                   role=role, office_code=OFFICE, password=passwords[login],
                                   now=now)
        logins.append(DemoLogin(login, role, passwords[login]))
    clerk = operators.get_operator(session, "clerk")
    supervisor = operators.get_operator(session, "supervisor")
    for region, born, sequence, surname, given, sex, state in _RESIDENTS:
        rid = ResidentId.build(region, born, sequence)
        if session.scalar(select(Resident).where(Resident.id_number == str(rid))) is not None:
            continue
        resident = residents.enrol(session, clerk, residents.Enrolment(
            id_number=rid, surname=surname, given_names=given, sex=sex, birth_date=born,
            region=region, schemes=("URBAN-EMP",) if sequence % 2 else ("RURAL",),
        ), now=now)
        _bring_to(session, settings, clerk, supervisor, resident, state, now)
    return logins


def _bring_to(
    session: Session,
    settings: Settings,
    clerk: Operator,
    supervisor: Operator,
    resident: Resident,
    state: str,
    now: datetime,
) -> None:
    card = cards.apply(session, clerk, resident, now=now - timedelta(days=3), settings=settings)
    if state == "applied":
        return
    cards.approve(session, supervisor, card, now=now - timedelta(days=2))
    if state == "approved":
        return
    cards.personalize(session, clerk, card, now=now - timedelta(days=2), settings=settings)
    cards.hand_over(session, clerk, card, now=now - timedelta(days=1))
    cards.activate(session, clerk, card, now=now - timedelta(days=1))
    if state == "suspended":
        cards.suspend(session, clerk, card, reason=Reason.LOST, now=now)
    elif state == "revoked":
        cards.revoke(session, supervisor, card, reason=Reason.FRAUD, now=now)


def _passwords(instance: Path) -> dict[str, str]:
    """Random demo passwords, made once and kept in a 0600 file of the instance."""
    path = instance / "demo-logins.txt"
    if path.exists():
        pairs = (line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
        return {login: password for login, password in pairs}
    passwords = {login: secrets.token_urlsafe(12) for login, _ in LOGINS}
    instance.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{login} {password}\n" for login, password in passwords.items())
    return passwords


@dataclass(frozen=True)
class DemoCode:
    """What a person needs to activate the demo phone."""

    card_number: str
    holder: str
    birth_date: date
    code: str
    expires_at: datetime


def demo_code(db: Database, settings: Settings, *, now: datetime) -> DemoCode:
    """A new activation code for the demo office's first active chip card.

    Raises:
        NotFoundError: no demo office, or no active card in it (run `cardsys demo seed`).
    """
    with db.transaction() as session:
        card = session.scalar(
            select(Card).join(Card.resident).join(Office, Resident.office_id == Office.id)
            .where(Office.code == OFFICE, Card.kind == CardKind.PHYSICAL,
                   Card.status == CardStatus.ACTIVE)
            .order_by(Card.id).limit(1)
        )
        if card is None:
            raise NotFoundError(f"no active card in the demo office {OFFICE}: run "
                                "`cardsys demo seed`")
        clerk = operators.get_operator(session, "clerk")
        issued = digital.create_activation_code(session, clerk, card.number, now=now,
                                                settings=settings)
        person = card.resident
        return DemoCode(card.number, f"{person.surname} {person.given_names}",
                        person.birth_date, issued.code, issued.expires_at)
