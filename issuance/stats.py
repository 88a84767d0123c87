"""Counts from the card register for an office's statistics: read-only, scoped to the
operator's office like every service query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardsys.access import require_role
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import Card, Operator, Resident, Role

DAYS = 30
TOP_REGIONS = 15


@dataclass(frozen=True)
class OfficeCounts:
    """What the dashboard shows, for one office."""

    issued_per_day: tuple[tuple[date, int], ...]
    by_status: tuple[tuple[CardStatus, int], ...]
    by_region: tuple[tuple[str, int], ...]
    revocations: tuple[tuple[Reason | None, int], ...]


def count(db: Session, actor: Operator, *, today: date, days: int = DAYS) -> OfficeCounts:
    """Card counts of the actor's office: issued per day (the last `days`, by issue date), by
    status, by the holder's region, and revoked cards by reason."""
    require_role(actor, Role.SUPERVISOR, Role.AUDITOR)
    cards = select(Card).join(Card.resident).where(Resident.office_id == actor.office_id)
    scoped = cards.subquery()
    first = today - timedelta(days=days - 1)
    per_day: dict[date, int] = {day: n for day, n in db.execute(
        select(scoped.c.issue_date, func.count())
        .where(scoped.c.issue_date >= first, scoped.c.issue_date <= today)
        .group_by(scoped.c.issue_date)
    )}
    by_status: dict[CardStatus, int] = {status: n for status, n in db.execute(
        select(scoped.c.status, func.count()).group_by(scoped.c.status)
    )}
    by_region = db.execute(
        select(Resident.region, func.count(Card.id))
        .join(Card.resident)
        .where(Resident.office_id == actor.office_id)
        .group_by(Resident.region)
        .order_by(func.count(Card.id).desc(), Resident.region)
        .limit(TOP_REGIONS)
    ).all()
    revoked = db.execute(
        select(scoped.c.status_reason, func.count())
        .where(scoped.c.status == CardStatus.REVOKED)
        .group_by(scoped.c.status_reason)
    ).all()
    return OfficeCounts(
        issued_per_day=tuple((first + timedelta(days=i), per_day.get(first + timedelta(days=i), 0))
                             for i in range(days)),
        by_status=tuple((status, by_status.get(status, 0)) for status in CardStatus),
        by_region=tuple((region, n) for region, n in by_region),
        revocations=tuple(sorted(((r, n) for r, n in revoked), key=lambda rn: -rn[1])),
    )
