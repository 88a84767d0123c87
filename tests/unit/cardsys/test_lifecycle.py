"""The card state machine against a table written here, independently, from DESIGN.md.

Every (state or new card, action, kind) triple is checked: the allowed ones reach the state the
design names, every other one raises IllegalTransitionError. Reasons are checked per action.
"""

from __future__ import annotations

import itertools

import pytest

from cardsys.errors import IllegalTransitionError, LifecycleError, ReasonRequiredError
from cardsys.lifecycle import (
    TERMINAL,
    Action,
    CardKind,
    CardStatus,
    Reason,
    next_state,
)

A, AP, PE, IS, AC, SU, RV, EX = (
    "applied", "approved", "personalized", "issued", "active", "suspended", "revoked", "expired"
)
P, D = "physical", "digital"
NON_TERMINAL = (A, AP, PE, IS, AC, SU)

# DESIGN.md, "The card lifecycle", as (from, action) -> (to, kinds that may take it):
#   applied --approve--> approved --personalize--> personalized --hand over--> issued
#   issued --activate--> active <--resume-- suspended <--suspend-- active
#   any non-terminal --revoke(reason)--> revoked;  active/issued --(time)--> expired
#   (and suspended --(time)--> expired, which DESIGN.md leaves out: see cardsys/lifecycle.py)
# A new physical card starts by an application; a digital card is provisioned to a phone
# already active ("a resident activates a digital card" on the phone).
EXPECTED: dict[tuple[str | None, str], tuple[str, frozenset[str]]] = {
    (None, "apply"): (A, frozenset({P})),
    (None, "provision"): (AC, frozenset({D})),
    (A, "approve"): (AP, frozenset({P})),
    (AP, "personalize"): (PE, frozenset({P})),
    (PE, "hand_over"): (IS, frozenset({P})),
    (IS, "activate"): (AC, frozenset({P})),
    (AC, "suspend"): (SU, frozenset({P, D})),
    (SU, "resume"): (AC, frozenset({P, D})),
    (IS, "expire"): (EX, frozenset({P, D})),
    (AC, "expire"): (EX, frozenset({P, D})),
    (SU, "expire"): (EX, frozenset({P, D})),
    **{(state, "revoke"): (RV, frozenset({P, D})) for state in NON_TERMINAL},
}

# Reasons each action accepts; actions not listed take none. Suspension is temporary: a card
# that is damaged, superseded or whose holder died is revoked, never suspended.
ACCEPTED_REASONS: dict[str, frozenset[str]] = {
    "suspend": frozenset({"lost", "stolen", "fraud", "holder_request"}),
    "revoke": frozenset(
        {"lost", "stolen", "damaged", "deceased", "fraud", "superseded", "holder_request"}
    ),
}

STATES: list[str | None] = [None, A, AP, PE, IS, AC, SU, RV, EX]
ACTIONS = ["apply", "provision", "approve", "personalize", "hand_over", "activate", "suspend",
           "resume", "revoke", "expire"]
KINDS = [P, D]
TRIPLES = list(itertools.product(STATES, ACTIONS, KINDS))


def test_the_enums_are_the_ones_the_design_names() -> None:
    # If a state, action, kind or reason is added, the table above has to be extended first.
    assert {s.value for s in CardStatus} == {s for s in STATES if s is not None}
    assert {a.value for a in Action} == set(ACTIONS)
    assert {k.value for k in CardKind} == set(KINDS)
    assert {r.value for r in Reason} == ACCEPTED_REASONS["revoke"]


def test_terminal_states() -> None:
    assert {s.value for s in TERMINAL} == {RV, EX}
    assert {s.value for s in CardStatus if s.terminal} == {RV, EX}


def _status(value: str | None) -> CardStatus | None:
    return None if value is None else CardStatus(value)


def _a_reason(action: str) -> Reason | None:
    accepted = ACCEPTED_REASONS.get(action)
    return Reason(sorted(accepted)[0]) if accepted else None


@pytest.mark.parametrize(("state", "action", "kind"), TRIPLES)
def test_every_state_action_kind_triple(state: str | None, action: str, kind: str) -> None:
    allowed = EXPECTED.get((state, action))
    args = (_status(state), Action(action))
    if allowed is not None and kind in allowed[1]:
        result = next_state(*args, kind=CardKind(kind), reason=_a_reason(action))
        assert result is CardStatus(allowed[0])
    else:
        # Refused with a valid reason and without one: the transition itself is illegal.
        for reason in (_a_reason(action), None):
            with pytest.raises(IllegalTransitionError):
                next_state(*args, kind=CardKind(kind), reason=reason)


def test_the_table_is_walked_in_full() -> None:
    allowed = [t for t in TRIPLES if t[2] in EXPECTED.get((t[0], t[1]), ("", frozenset()))[1]]
    # 9 states-or-new x 10 actions x 2 kinds; 5 physical-only + 1 digital-only + 2 x (2 + 3 + 6).
    assert (len(TRIPLES), len(allowed)) == (180, 28)


REASON_CASES = [
    (action, reason)
    for action in ("suspend", "revoke")
    for reason in [r.value for r in Reason]
]


@pytest.mark.parametrize(("action", "reason"), REASON_CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_reasons_accepted_per_action(action: str, reason: str, kind: str) -> None:
    state = CardStatus.ACTIVE
    if reason in ACCEPTED_REASONS[action]:
        result = next_state(state, Action(action), kind=CardKind(kind), reason=Reason(reason))
        assert result is (CardStatus.SUSPENDED if action == "suspend" else CardStatus.REVOKED)
    else:
        with pytest.raises(ReasonRequiredError, match=reason):
            next_state(state, Action(action), kind=CardKind(kind), reason=Reason(reason))


@pytest.mark.parametrize("action", ["suspend", "revoke"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_reason_is_refused(action: str, kind: str) -> None:
    with pytest.raises(ReasonRequiredError, match="needs a reason"):
        next_state(CardStatus.ACTIVE, Action(action), kind=CardKind(kind), reason=None)


@pytest.mark.parametrize(
    ("state", "action", "kind"),
    [t for t in TRIPLES if t[1] not in ACCEPTED_REASONS
     and t[2] in EXPECTED.get((t[0], t[1]), ("", frozenset()))[1]],
)
def test_actions_without_a_reason_need_none(state: str | None, action: str, kind: str) -> None:
    result = next_state(_status(state), Action(action), kind=CardKind(kind))
    assert result is CardStatus(EXPECTED[(state, action)][0])


def test_an_illegal_transition_wins_over_a_missing_reason() -> None:
    # Revoking a revoked card is wrong whatever the reason: say that, not "reason missing".
    with pytest.raises(IllegalTransitionError, match="revoked"):
        next_state(CardStatus.REVOKED, Action.REVOKE, kind=CardKind.PHYSICAL)


def test_lifecycle_errors_share_a_base() -> None:
    assert issubclass(IllegalTransitionError, LifecycleError)
    assert issubclass(ReasonRequiredError, LifecycleError)
