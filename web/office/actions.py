"""The card forms as one table: which service function each runs, who may send it, its reasons.

The lifecycle rules stay in `cardsys.lifecycle` and `issuance.cards`; this table only says how a
form maps onto them and which buttons a page offers (a hidden button is a courtesy, not a
guard: the service refuses whatever the table would not offer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l  # type: ignore[import-untyped]
from sqlalchemy.orm import Session

from cardsys.errors import ConflictError
from cardsys.lifecycle import KIND_ONLY, REASONS, TRANSITIONS, Action, CardKind, CardStatus, Reason
from cardsys.models import Card, Operator, Role
from issuance import cards
from web.database import now, settings
from web.labels import ACTION

#: Runs the service call: (transaction, actor, card, expected version, reason) -> resulting card.
Run = Callable[[Session, Operator, Card, int, Reason | None], Card]


@dataclass(frozen=True)
class CardForm:
    """One button on a card: its URL slug, label, roles, states and reasons."""

    slug: str
    label: Any
    roles: tuple[Role, ...]
    states: frozenset[CardStatus]
    kinds: frozenset[CardKind]
    run: Run
    #: The reasons the form offers; empty when it takes none.
    reasons: tuple[Reason, ...] = ()
    #: Supervisors only see the approve button on applications they did not prepare.
    maker_checker: bool = False
    #: Irreversible: the page asks again before sending.
    danger: bool = False


def _states(action: Action) -> frozenset[CardStatus]:
    return frozenset(state for (state, act) in TRANSITIONS if act is action and state is not None)


def _kinds(action: Action) -> frozenset[CardKind]:
    only = KIND_ONLY.get(action)
    return frozenset({only}) if only is not None else frozenset(CardKind)


def _office_roles(action: Action) -> tuple[Role, ...]:
    return tuple(r for r in cards.ACTION_ROLES[action] if r is not Role.ADMIN)


def _transition(action: Action, **extra: Any) -> CardForm:
    """A form for one transition of the table."""
    def run(db: Session, actor: Operator, card: Card, version: int, reason: Reason | None) -> Card:
        return cards.perform(db, actor, card, action, now=now(), settings=settings(),
                             reason=reason, expected_version=version)

    return CardForm(
        slug=action.value.replace("_", "-"), label=ACTION[action], roles=_office_roles(action),
        states=_states(action), kinds=_kinds(action), run=run, **extra,
    )


def _replace(db: Session, actor: Operator, card: Card, version: int, reason: Reason | None) -> Card:
    return cards.replace(db, actor, card, reason=reason, now=now(), settings=settings(),
                         expected_version=version)


def _renew(db: Session, actor: Operator, card: Card, version: int, reason: Reason | None) -> Card:
    # `cards.renew` takes no expected version (reported): compare here so a stale form is
    # refused like every other one.
    if card.version != version:
        raise ConflictError(f"card {card.number} changed since the form was drawn")
    return cards.renew(db, actor, card, now=now(), settings=settings())


_OPEN = frozenset(s for s in CardStatus if not s.terminal)
_PHYSICAL = frozenset({CardKind.PHYSICAL})
# Superseded is what replacement and renewal record; an operator picks a real cause.
_REVOKE_REASONS = tuple(r for r in Reason if r in REASONS[Action.REVOKE]
                        and r is not Reason.SUPERSEDED)

FORMS: tuple[CardForm, ...] = (
    _transition(Action.APPROVE, maker_checker=True),
    _transition(Action.PERSONALIZE),
    _transition(Action.HAND_OVER),
    _transition(Action.ACTIVATE),
    _transition(Action.SUSPEND,
                reasons=tuple(r for r in Reason if r in REASONS[Action.SUSPEND])),
    _transition(Action.RESUME),
    _transition(Action.REVOKE, reasons=_REVOKE_REASONS, danger=True),
    CardForm(slug="replace", label=_l("Replace"), roles=(Role.SUPERVISOR,), states=_OPEN,
             kinds=_PHYSICAL, run=_replace,
             reasons=tuple(r for r in Reason if r in cards.REPLACE_REASONS), danger=True),
    CardForm(slug="renew", label=_l("Renew"), roles=_office_roles(Action.APPLY),
             states=frozenset({CardStatus.ISSUED, CardStatus.ACTIVE, CardStatus.SUSPENDED}),
             kinds=_PHYSICAL, run=_renew),
)
BY_SLUG = {form.slug: form for form in FORMS}


@dataclass(frozen=True)
class Offer:
    """A button the page shows for a card: enabled, or disabled with the reason why."""

    form: CardForm
    blocked: Any = None


def actions_for(card: Card, role: Role, operator_id: int | None = None) -> list[Offer]:
    """The forms that apply to `card` for an operator of `role` (and id, for maker-checker)."""
    offers = []
    for form in FORMS:
        if role not in form.roles or card.status not in form.states or card.kind not in form.kinds:
            continue
        blocked = None
        if form.maker_checker and operator_id is not None and card.maker_id == operator_id:
            blocked = _l("You prepared this application: another supervisor approves it.")
        offers.append(Offer(form, blocked))
    return offers
