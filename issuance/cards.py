"""The card lifecycle service: the only caller of `cardsys.lifecycle`.

Every public function takes the acting operator and `now`, works inside the caller's
transaction, checks role and office scope, applies one transition of the table, and writes its
audit event in the same transaction. Replacement and renewal compose several transitions and
commit or roll back as one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cardsys import audit
from cardsys.access import require_office, require_role
from cardsys.config import Settings
from cardsys.errors import (
    ActiveCardExistsError,
    CardNotActiveError,
    ConflictError,
    DuplicateError,
    IllegalTransitionError,
    LimitExceededError,
    MakerCheckerError,
    NotFoundError,
    ReasonRequiredError,
    ReviewPendingError,
    ValidationError,
)
from cardsys.ids import CardNumber
from cardsys.lifecycle import TRANSITIONS, Action, CardKind, CardStatus, Reason, next_state
from cardsys.models import Card, CardNumberCounter, Operator, Resident, Role

#: Who may take each action (admin acts only through the system operator's jobs).
ACTION_ROLES: dict[Action, tuple[Role, ...]] = {
    Action.APPLY: (Role.CLERK, Role.SUPERVISOR),
    Action.PROVISION: (Role.CLERK, Role.SUPERVISOR, Role.ADMIN),
    Action.APPROVE: (Role.SUPERVISOR,),
    Action.PERSONALIZE: (Role.CLERK, Role.SUPERVISOR),
    Action.HAND_OVER: (Role.CLERK, Role.SUPERVISOR),
    Action.ACTIVATE: (Role.CLERK, Role.SUPERVISOR),
    Action.SUSPEND: (Role.CLERK, Role.SUPERVISOR),
    Action.RESUME: (Role.SUPERVISOR,),
    Action.REVOKE: (Role.SUPERVISOR,),
    Action.EXPIRE: (Role.ADMIN,),
}
REPLACE_REASONS = frozenset({Reason.LOST, Reason.STOLEN, Reason.DAMAGED})
OPEN_STATES = frozenset(s for s in CardStatus if not s.terminal)
#: What a physical card's digital cards follow, in the same transaction (suspended, resumed,
#: revoked and expired with it; replacement and renewal revoke the old card, so them too).
CASCADE = frozenset({Action.SUSPEND, Action.RESUME, Action.REVOKE, Action.EXPIRE})

#: Functions called after every status change inside the same transaction, with the state
#: before (None for a new card), e.g. to mark the card's status-list shard for republication.
#: Registered once at import by those modules.
status_listeners: list[Callable[[Session, Card, CardStatus | None, datetime], None]] = []


@dataclass(frozen=True)
class ChipRecord:
    """What personalization wrote to a chip, kept with the card (never the AA private key)."""

    chip_serial: str
    sod_sha256: str
    aa_public_key: bytes


def get(session: Session, actor: Operator, number: str, *, for_update: bool = False) -> Card:
    """A card of the actor's office by number."""
    require_role(actor, Role.CLERK, Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN)
    parsed = str(CardNumber.parse(number))
    query = select(Card).where(Card.number == parsed)
    if for_update:
        query = query.with_for_update(of=Card)
    card = session.scalar(query)
    if card is None:
        raise NotFoundError("not found in your office")
    if actor.role is not Role.ADMIN:
        require_office(actor, card.resident.office_id)
    return card


def list_cards(
    session: Session,
    actor: Operator,
    *,
    status: CardStatus | None = None,
    resident: Resident | None = None,
    limit: int = 100,
) -> list[Card]:
    """Cards of the actor's office, newest first."""
    require_role(actor, Role.CLERK, Role.SUPERVISOR, Role.AUDITOR)
    query = (
        select(Card)
        .join(Card.resident)
        .where(Resident.office_id == actor.office_id)
        .order_by(Card.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(Card.status == status)
    if resident is not None:
        query = query.where(Card.resident_id == resident.id)
    return list(session.scalars(query))


def apply(
    session: Session,
    actor: Operator,
    resident: Resident,
    *,
    now: datetime,
    settings: Settings,
    predecessor: Card | None = None,
    details: dict[str, Any] | None = None,
) -> Card:
    """Open an application for a physical card with a freshly allocated number.

    Raises:
        ActiveCardExistsError: the resident already has an open physical card (other than the
            predecessor of a replacement or renewal).
    """
    require_role(actor, *ACTION_ROLES[Action.APPLY])
    require_office(actor, resident.office_id)
    if resident.deceased:
        raise ValidationError(f"resident {resident.id_number} is recorded as deceased")
    open_card = _open_physical(session, resident, exclude=predecessor)
    if open_card is not None:
        raise ActiveCardExistsError(
            f"resident {resident.id_number} already has card {open_card.number} "
            f"({open_card.status.value}); replace or renew it instead"
        )
    status = next_state(None, Action.APPLY, kind=CardKind.PHYSICAL)
    card = Card(
        number=str(allocate_number(session, settings.agency_prefix, resident.region[:2])),
        kind=CardKind.PHYSICAL, status=status, resident=resident,
        office_id=resident.office_id, maker_id=actor.id, predecessor_id=(
            predecessor.id if predecessor is not None else None
        ),
        created_at=now, status_changed_at=now,
    )
    session.add(card)
    session.flush()
    assign_status_slot(card, settings)
    _audit(session, actor, card, Action.APPLY, now, None, None,
           {"resident": resident.id_number, **(details or {})})
    return card


def approve(
    session: Session,
    actor: Operator,
    card: Card,
    *,
    now: datetime,
    expected_version: int | None = None,
) -> Card:
    """A supervisor other than the maker approves an application (maker-checker)."""
    _check_version(card, expected_version)
    require_role(actor, *ACTION_ROLES[Action.APPROVE])
    require_office(actor, card.resident.office_id)
    if card.maker_id == actor.id:
        raise MakerCheckerError(
            f"{actor.login} prepared application {card.number}: another supervisor must approve"
        )
    if card.resident.review_required:
        raise ReviewPendingError(
            f"resident {card.resident.id_number} is flagged as a possible duplicate: "
            "clear the review first"
        )
    _change(session, actor, card, Action.APPROVE, now=now)
    card.approver_id = actor.id
    return card


@dataclass(frozen=True)
class CardDates:
    """A card's issue and expiry dates, fixed once when it is personalized."""

    issue: date
    expiry: date

    def __post_init__(self) -> None:
        if self.expiry <= self.issue:
            raise ValidationError(f"a card expiring {self.expiry} cannot be issued {self.issue}")


def card_dates(now: datetime, settings: Settings) -> CardDates:
    """The dates a card personalized at `now` gets: the one place they are computed."""
    issue = now.date()
    return CardDates(issue, add_years(issue, settings.card_validity_years))


def personalize(
    session: Session,
    actor: Operator,
    card: Card,
    *,
    now: datetime,
    settings: Settings,
    dates: CardDates | None = None,
    chip: ChipRecord | None = None,
    expected_version: int | None = None,
) -> Card:
    """Fix the card's dates (and, for a chip, what was written to it).

    Args:
        now: the moment of the step (its audit event and the status change).
        dates: the card's dates when they were fixed earlier, e.g. by the bureau before it
            wrote them onto the chip; `card_dates(now, settings)` when not given.
    """
    _check_version(card, expected_version)
    fixed = dates if dates is not None else card_dates(now, settings)
    card.issue_date, card.expiry_date = fixed.issue, fixed.expiry
    details: dict[str, Any] = {"expiry": card.expiry_date.isoformat()}
    if chip is not None:
        card.chip_serial, card.sod_sha256 = chip.chip_serial, chip.sod_sha256
        card.aa_public_key = chip.aa_public_key
        details |= {"chip_serial": chip.chip_serial, "sod_sha256": chip.sod_sha256}
    _change(session, actor, card, Action.PERSONALIZE, now=now, details=details)
    return card


def hand_over(
    session: Session,
    actor: Operator,
    card: Card,
    *,
    now: datetime,
    expected_version: int | None = None,
) -> Card:
    _check_version(card, expected_version)
    _change(session, actor, card, Action.HAND_OVER, now=now)
    return card


def activate(
    session: Session,
    actor: Operator,
    card: Card,
    *,
    now: datetime,
    expected_version: int | None = None,
) -> Card:
    """Activate a handed-over card; a renewed or replaced predecessor is retired first."""
    _check_version(card, expected_version)
    if card.kind is CardKind.PHYSICAL:
        predecessor = session.get(Card, card.predecessor_id) if card.predecessor_id else None
        if predecessor is not None and predecessor.status in OPEN_STATES:
            _change(session, actor, predecessor, Action.REVOKE, now=now,
                    reason=Reason.SUPERSEDED, details={"successor": card.number},
                    roles=ACTION_ROLES[Action.ACTIVATE])
            session.flush()
        other = session.scalar(
            select(Card).where(
                Card.resident_id == card.resident_id, Card.kind == CardKind.PHYSICAL,
                Card.status == CardStatus.ACTIVE, Card.id != card.id,
            )
        )
        if other is not None:
            raise ActiveCardExistsError(
                f"resident already has active card {other.number}; revoke it first"
            )
    _change(session, actor, card, Action.ACTIVATE, now=now)
    return card


def suspend(
    session: Session,
    actor: Operator,
    card: Card,
    *,
    reason: Reason | None,
    now: datetime,
    expected_version: int | None = None,
) -> Card:
    _check_version(card, expected_version)
    _change(session, actor, card, Action.SUSPEND, now=now, reason=reason)
    return card


def resume(
    session: Session,
    actor: Operator,
    card: Card,
    *,
    now: datetime,
    expected_version: int | None = None,
) -> Card:
    _check_version(card, expected_version)
    _change(session, actor, card, Action.RESUME, now=now)
    card.status_reason = None
    return card


def revoke(
    session: Session,
    actor: Operator,
    card: Card,
    *,
    reason: Reason | None,
    now: datetime,
    expected_version: int | None = None,
) -> Card:
    _check_version(card, expected_version)
    if reason is Reason.SUPERSEDED:
        raise ReasonRequiredError(
            "superseded is set by replace and renewal, not given by hand: use replace or renew"
        )
    _change(session, actor, card, Action.REVOKE, now=now, reason=reason)
    if reason is Reason.DECEASED:
        card.resident.deceased = True
    return card


def replace(
    session: Session,
    actor: Operator,
    card: Card,
    *,
    reason: Reason | None,
    now: datetime,
    settings: Settings,
    expected_version: int | None = None,
) -> Card:
    """Revoke a lost, stolen or damaged card as superseded and open the new application.

    Both happen in the caller's transaction: a crash leaves the old state or the new, never half.
    """
    _check_version(card, expected_version)
    require_role(actor, Role.SUPERVISOR)
    if reason not in REPLACE_REASONS:
        raise ReasonRequiredError("replace needs a reason: lost, stolen or damaged")
    if card.kind is not CardKind.PHYSICAL:
        raise IllegalTransitionError("only physical cards are replaced; revoke a digital card")
    _change(session, actor, card, Action.REVOKE, now=now, reason=Reason.SUPERSEDED,
            details={"replace_reason": reason.value})
    session.flush()
    return apply(session, actor, card.resident, now=now, settings=settings, predecessor=card,
                 details={"replaces": card.number, "replace_reason": reason.value})


def renew(
    session: Session,
    actor: Operator,
    card: Card,
    *,
    now: datetime,
    settings: Settings,
    expected_version: int | None = None,
) -> Card:
    """Apply for the successor of a card that has not expired; it stays active until the
    successor is activated."""
    _check_version(card, expected_version)
    require_role(actor, *ACTION_ROLES[Action.APPLY])
    require_office(actor, card.resident.office_id)
    if card.kind is not CardKind.PHYSICAL or card.status not in (
        CardStatus.ACTIVE, CardStatus.ISSUED, CardStatus.SUSPENDED
    ):
        raise IllegalTransitionError(f"cannot renew a {card.status.value} {card.kind.value} card")
    if card.expiry_date is None or card.expiry_date <= now.date():
        raise IllegalTransitionError(f"card {card.number} has expired: apply for a new card")
    pending = session.scalar(select(Card).where(Card.predecessor_id == card.id))
    if pending is not None and pending.status in OPEN_STATES:
        raise ActiveCardExistsError(
            f"card {card.number} is already being renewed by {pending.number}"
        )
    return apply(session, actor, card.resident, now=now, settings=settings, predecessor=card,
                 details={"renews": card.number})


def perform(
    session: Session,
    actor: Operator,
    card: Card,
    action: Action,
    *,
    now: datetime,
    settings: Settings,
    reason: Reason | None = None,
    expected_version: int | None = None,
) -> Card:
    """One lifecycle step on an existing card, by action (what forms and the API dispatch on).

    Raises:
        IllegalTransitionError: the action is not a step on an existing card (apply,
            provision, expire, and replace/renew have their own functions).
    """
    common: dict[str, Any] = {"now": now, "expected_version": expected_version}
    if action is Action.APPROVE:
        return approve(session, actor, card, **common)
    if action is Action.PERSONALIZE:
        return personalize(session, actor, card, settings=settings, **common)
    if action is Action.HAND_OVER:
        return hand_over(session, actor, card, **common)
    if action is Action.ACTIVATE:
        return activate(session, actor, card, **common)
    if action is Action.SUSPEND:
        return suspend(session, actor, card, reason=reason, **common)
    if action is Action.RESUME:
        return resume(session, actor, card, **common)
    if action is Action.REVOKE:
        return revoke(session, actor, card, reason=reason, **common)
    raise IllegalTransitionError(f"{action.value} is not a step on an existing card")


def expire_due(session: Session, actor: Operator, *, now: datetime, batch: int = 1000) -> list[str]:
    """Expire issued, active and suspended cards past their expiry date; returns their numbers."""
    require_role(actor, *ACTION_ROLES[Action.EXPIRE])
    expired: list[str] = []
    while True:
        due = session.scalars(
            select(Card)
            .where(Card.status.in_((CardStatus.ISSUED, CardStatus.ACTIVE, CardStatus.SUSPENDED)))
            .where(Card.expiry_date < now.date())
            .order_by(Card.id)
            .limit(batch)
        ).all()
        if not due:
            return expired
        for card in due:
            if (card.status, Action.EXPIRE) not in TRANSITIONS:
                continue  # a digital card that already expired with its physical card
            _change(session, actor, card, Action.EXPIRE, now=now, scoped=False)
            expired.append(card.number)
        session.flush()


def provision(
    session: Session,
    actor: Operator,
    parent: Card,
    *,
    device_key: bytes,
    device_thumbprint: str,
    now: datetime,
    settings: Settings,
    details: dict[str, Any] | None = None,
) -> Card:
    """A new digital card for the holder of an ACTIVE physical card, bound to a phone's key.

    Raises:
        CardNotActiveError: the physical card is not active.
        LimitExceededError: the resident already has `settings.max_devices` open digital cards
            (a new device never silently replaces one).
        DuplicateError: this device key is already bound to a card.
    """
    require_role(actor, *ACTION_ROLES[Action.PROVISION])
    if actor.role is not Role.ADMIN:
        require_office(actor, parent.resident.office_id)
    # The parent's row lock queues concurrent provisionings for one resident (the count below).
    session.execute(select(Card.id).where(Card.id == parent.id).with_for_update())
    if parent.kind is not CardKind.PHYSICAL or parent.status is not CardStatus.ACTIVE:
        raise CardNotActiveError(f"card {parent.number} is not an active physical card")
    devices = session.scalar(
        select(func.count()).select_from(Card).where(
            Card.resident_id == parent.resident_id, Card.kind == CardKind.DIGITAL,
            Card.status.in_(OPEN_STATES),
        )
    )
    if (devices or 0) >= settings.max_devices:
        raise LimitExceededError(
            f"the holder already has {devices} digital cards (at most {settings.max_devices}): "
            "revoke one first"
        )
    if session.scalar(select(Card.id).where(Card.device_thumbprint == device_thumbprint)):
        raise DuplicateError("this device is already bound to a digital card")
    card = Card(
        number=str(allocate_number(session, settings.agency_prefix, parent.number[2:4])),
        kind=CardKind.DIGITAL, resident=parent.resident, office_id=parent.office_id,
        status=next_state(None, Action.PROVISION, kind=CardKind.DIGITAL),
        maker_id=actor.id, parent_id=parent.id, created_at=now, status_changed_at=now,
        issue_date=now.date(), expiry_date=parent.expiry_date,
        device_key=device_key, device_thumbprint=device_thumbprint,
    )
    session.add(card)
    session.flush()
    assign_status_slot(card, settings)
    _audit(session, actor, card, Action.PROVISION, now, None, None,
           {"parent": parent.number, "thumbprint": device_thumbprint, **(details or {})})
    for listener in status_listeners:
        listener(session, card, None, now)
    return card


def allocate_number(session: Session, prefix: str, province: str) -> CardNumber:
    """The next card number for (prefix, province), inside the caller's transaction.

    The counter row is locked by the UPDATE until the transaction ends: concurrent
    allocations queue instead of colliding, and a rollback returns the serial (no gaps).
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(CardNumberCounter)
        .values(prefix=prefix, province=province, next_serial=1)
        .on_conflict_do_nothing()
    )
    serial = session.execute(
        update(CardNumberCounter)
        .where(CardNumberCounter.prefix == prefix, CardNumberCounter.province == province)
        .values(next_serial=CardNumberCounter.next_serial + 1)
        .returning(CardNumberCounter.next_serial - 1)
    ).scalar_one()
    return CardNumber.build(prefix, province, serial)


def assign_status_slot(card: Card, settings: Settings) -> None:
    """Give the card its fixed place in the status lists, derived from its row id."""
    card.status_list, card.status_index = divmod(card.id - 1, settings.status_list_size)


def add_years(day: date, years: int) -> date:
    """`day` plus whole years; 29 February becomes 28 February in common years."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _open_physical(session: Session, resident: Resident, *, exclude: Card | None) -> Card | None:
    query = select(Card).where(
        Card.resident_id == resident.id,
        Card.kind == CardKind.PHYSICAL,
        Card.status.in_(OPEN_STATES),
    )
    if exclude is not None:
        query = query.where(Card.id != exclude.id)
    return session.scalar(query.limit(1))


def _check_version(card: Card, expected: int | None) -> None:
    if expected is not None and card.version != expected:
        raise ConflictError(
            f"card {card.number} changed since you loaded it (version {card.version}, "
            f"you had {expected}); reload and try again"
        )


def _change(
    session: Session,
    actor: Operator,
    card: Card,
    action: Action,
    *,
    now: datetime,
    reason: Reason | None = None,
    details: dict[str, Any] | None = None,
    roles: tuple[Role, ...] | None = None,
    scoped: bool = True,
) -> None:
    require_role(actor, *(roles or ACTION_ROLES[action]))
    if scoped:
        require_office(actor, card.resident.office_id)
    before, changed_before = card.status, card.status_changed_at
    card.status = next_state(before, action, kind=card.kind, reason=reason)
    card.status_changed_at = now
    if reason is not None:
        card.status_reason = reason
    _audit(session, actor, card, action, now, before, reason, details or {})
    for listener in status_listeners:
        listener(session, card, before, now)
    if card.kind is CardKind.PHYSICAL and action in CASCADE:
        _cascade(session, actor, card, action, now=now, reason=reason, since=changed_before)


def _cascade(
    session: Session,
    actor: Operator,
    parent: Card,
    action: Action,
    *,
    now: datetime,
    reason: Reason | None,
    since: datetime,
) -> None:
    """Apply the parent's action to its digital cards, each with its own audit event.

    A resume wakes only the digital cards suspended together with the parent (at `since`, the
    parent's suspension); one the holder had suspended on its own stays suspended.
    """
    children = session.scalars(
        select(Card).where(Card.parent_id == parent.id).order_by(Card.id)
    ).all()
    for child in children:
        if (child.status, action) not in TRANSITIONS:
            continue
        if action is Action.RESUME and child.status_changed_at != since:
            continue
        _change(session, actor, child, action, now=now, reason=reason,
                details={"cascade_from": parent.number}, roles=(actor.role,), scoped=False)
        if action is Action.RESUME:
            child.status_reason = None


def _audit(
    session: Session,
    actor: Operator,
    card: Card,
    action: Action,
    now: datetime,
    before: CardStatus | None,
    reason: Reason | None,
    details: dict[str, Any] | None,
) -> None:
    audit.record(
        session, at=now, actor=actor.login, office=card.office.code,
        tag=f"card:status:{action.value}", subject=card.number,
        details={
            "kind": card.kind.value,
            "from": before.value if before is not None else None,
            "to": card.status.value,
            "reason": reason.value if reason is not None else None,
            **(details or {}),
        },
    )
