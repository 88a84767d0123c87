"""THE card state machine: one transition table, no I/O.

```
(new) --apply--> applied --approve--> approved --personalize--> personalized --hand_over--> issued
issued --activate--> active --suspend--> suspended --resume--> active
any non-terminal --revoke--> revoked            issued/active/suspended --expire--> expired
(new) --provision--> active                     (digital cards, bound to a phone)
```

`next_state` is the only place that decides whether an action is allowed from a state; the
`issuance` services call it and add what needs the database (maker-checker, office scope, one
active physical card, audit events, status lists). Replacement and renewal are compositions of
these actions done by `issuance.cards` in one transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from cardsys.errors import IllegalTransitionError, ReasonRequiredError


class CardKind(enum.StrEnum):
    PHYSICAL = "physical"
    DIGITAL = "digital"


class CardStatus(enum.StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"
    PERSONALIZED = "personalized"
    ISSUED = "issued"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({CardStatus.REVOKED, CardStatus.EXPIRED})


class Action(enum.StrEnum):
    APPLY = "apply"
    PROVISION = "provision"
    APPROVE = "approve"
    PERSONALIZE = "personalize"
    HAND_OVER = "hand_over"
    ACTIVATE = "activate"
    SUSPEND = "suspend"
    RESUME = "resume"
    REVOKE = "revoke"
    EXPIRE = "expire"


class Reason(enum.StrEnum):
    """Why a card was suspended, revoked or replaced."""

    LOST = "lost"
    STOLEN = "stolen"
    DAMAGED = "damaged"
    DECEASED = "deceased"
    FRAUD = "fraud"
    SUPERSEDED = "superseded"
    HOLDER_REQUEST = "holder_request"


#: The one transition table: (state or None for a new card, action) -> new state.
TRANSITIONS: Mapping[tuple[CardStatus | None, Action], CardStatus] = {
    (None, Action.APPLY): CardStatus.APPLIED,
    (None, Action.PROVISION): CardStatus.ACTIVE,
    (CardStatus.APPLIED, Action.APPROVE): CardStatus.APPROVED,
    (CardStatus.APPROVED, Action.PERSONALIZE): CardStatus.PERSONALIZED,
    (CardStatus.PERSONALIZED, Action.HAND_OVER): CardStatus.ISSUED,
    (CardStatus.ISSUED, Action.ACTIVATE): CardStatus.ACTIVE,
    (CardStatus.ACTIVE, Action.SUSPEND): CardStatus.SUSPENDED,
    (CardStatus.SUSPENDED, Action.RESUME): CardStatus.ACTIVE,
    (CardStatus.ISSUED, Action.EXPIRE): CardStatus.EXPIRED,
    (CardStatus.ACTIVE, Action.EXPIRE): CardStatus.EXPIRED,
    # DESIGN.md names issued and active; a suspended card past its date expires as well,
    # or it would stay "suspended" for ever.
    (CardStatus.SUSPENDED, Action.EXPIRE): CardStatus.EXPIRED,
    **{
        (state, Action.REVOKE): CardStatus.REVOKED
        for state in CardStatus
        if state not in TERMINAL
    },
}

#: Actions that only one kind of card knows.
KIND_ONLY: Mapping[Action, CardKind] = {
    Action.APPLY: CardKind.PHYSICAL,
    Action.APPROVE: CardKind.PHYSICAL,
    Action.PERSONALIZE: CardKind.PHYSICAL,
    Action.HAND_OVER: CardKind.PHYSICAL,
    Action.ACTIVATE: CardKind.PHYSICAL,
    Action.PROVISION: CardKind.DIGITAL,
}

#: Actions that must carry a reason, and the reasons each accepts.
REASONS: Mapping[Action, frozenset[Reason]] = {
    Action.SUSPEND: frozenset({Reason.LOST, Reason.STOLEN, Reason.FRAUD, Reason.HOLDER_REQUEST}),
    Action.REVOKE: frozenset(Reason),
}


def next_state(
    state: CardStatus | None, action: Action, *, kind: CardKind, reason: Reason | None = None
) -> CardStatus:
    """The state a card of `kind` reaches by `action` from `state`.

    Raises:
        IllegalTransitionError: the table has no such transition for this kind of card.
        ReasonRequiredError: the action needs a reason and none, or one it does not accept,
            was given.
    """
    target = TRANSITIONS.get((state, action))
    only = KIND_ONLY.get(action)
    if target is None or (only is not None and only is not kind):
        where = "a new card" if state is None else f"a {state.value} card"
        raise IllegalTransitionError(f"cannot {action.value} {where} ({kind.value})")
    allowed = REASONS.get(action)
    if allowed is not None and reason not in allowed:
        if reason is None:
            raise ReasonRequiredError(f"{action.value} needs a reason")
        names = ", ".join(sorted(r.value for r in allowed))
        raise ReasonRequiredError(f"{action.value} does not accept {reason.value} (use: {names})")
    return target
