"""Cards: list, apply, read, and every lifecycle step (`/api/v1/cards...`).

The steps are one table, like the office's forms: which service function each runs, who may
send it, which reasons it takes. The rules stay in `cardsys.lifecycle` and `issuance.cards`;
the roles shown in the document come from `issuance.cards.ACTION_ROLES` (admins excepted:
they hold no API tokens). Every step locks the card, compares `If-Match` with its version
(412 when stale) and answers the card as it now is, with its new ETag. Replace and renew
also create: they need an `Idempotency-Key`, and answer 201 with the NEW card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cardsys.lifecycle import REASONS, Action, CardStatus, Reason
from cardsys.models import Card, Role
from issuance import cards
from issuance.present import card_dict
from web.api import records
from web.api.routing import Call, Param, Reply, operation
from web.api.schema import ID_NUMBER, closed, string, values
from web.database import settings

TAG = "cards"


def _roles(action: Action) -> tuple[Role, ...]:
    return tuple(r for r in cards.ACTION_ROLES[action] if r is not Role.ADMIN)


@operation(
    method="GET", path="/cards", operation_id="listCards", tag=TAG, response="CardList",
    summary="Cards of the operator's office, newest first.",
    query={
        "status": Param({"type": "string", "enum": values(CardStatus)}, "Only this status."),
        "resident": Param(string(ID_NUMBER), "Only this resident's cards."),
        "limit": Param({"type": "integer", "minimum": 1, "maximum": 500}, "At most (100)."),
    },
)
def list_cards(call: Call) -> Reply:
    resident = call.query.get("resident")
    holder = records.resident_or_404(call.db, call.actor, resident) if resident else None
    status = call.query.get("status")
    found = cards.list_cards(call.db, call.actor, resident=holder,
                             status=CardStatus(status) if status else None,
                             limit=call.query.get("limit", 100))
    return Reply(200, {"cards": [card_dict(c) for c in found]})


@operation(
    method="POST", path="/cards", operation_id="applyForCard", tag=TAG, response="Card",
    status=201, roles=_roles(Action.APPLY), creates=True, headers=records.new_card_headers,
    summary="Open an application for a physical card; a supervisor other than the maker "
            "approves it.",
    body=closed(["resident"], resident=string(ID_NUMBER, description="The holder's ID "
                                                                      "number.")),
    errors=(409,),
)
def apply(call: Call) -> Reply:
    holder = records.resident_or_404(call.db, call.actor, call.body["resident"])
    card = cards.apply(call.db, call.actor, holder, now=call.at, settings=settings())
    return records.card_reply(call.db, card, 201)


@operation(
    method="GET", path="/cards/{number}", operation_id="getCard", tag=TAG, response="Card",
    path_params=records.NUMBER_PARAM, headers=records.card_headers,
    summary="A card of the operator's office; its ETag is its version, for If-Match.",
)
def get_card(call: Call) -> Reply:
    return records.card_reply(call.db, records.card_or_404(call.db, call.actor,
                                                           call.path["number"]))


#: Runs a step: (call, locked card, checked version, reason) -> the card to answer.
Run = Callable[[Call, Card, int, Reason | None], Card]


@dataclass(frozen=True)
class Step:
    """One lifecycle step of the API."""

    slug: str
    summary: str
    roles: tuple[Role, ...]
    run: Run
    reasons: tuple[Reason, ...] = ()
    #: Makes a new card (replace, renew): Idempotency-Key, 201 with the new card.
    creates: bool = False


def _simple(action: Action) -> Run:
    def run(call: Call, card: Card, version: int, reason: Reason | None) -> Card:
        return cards.perform(call.db, call.actor, card, action, now=call.at,
                             settings=settings(), reason=reason, expected_version=version)

    return run


def _replace(call: Call, card: Card, version: int, reason: Reason | None) -> Card:
    return cards.replace(call.db, call.actor, card, reason=reason, now=call.at,
                         settings=settings(), expected_version=version)


def _renew(call: Call, card: Card, version: int, reason: Reason | None) -> Card:
    return cards.renew(call.db, call.actor, card, now=call.at, settings=settings(),
                       expected_version=version)


STEPS: tuple[Step, ...] = (
    Step("approve", "Approve an application (a supervisor other than its maker).",
         _roles(Action.APPROVE), _simple(Action.APPROVE)),
    Step("personalize", "Personalize an approved card (fixes its dates).",
         _roles(Action.PERSONALIZE), _simple(Action.PERSONALIZE)),
    Step("hand-over", "Hand a personalized card over to its holder.",
         _roles(Action.HAND_OVER), _simple(Action.HAND_OVER)),
    Step("activate", "Activate a handed-over card (retires a replaced or renewed one).",
         _roles(Action.ACTIVATE), _simple(Action.ACTIVATE)),
    Step("suspend", "Suspend an active card (and its phones).", _roles(Action.SUSPEND),
         _simple(Action.SUSPEND), reasons=tuple(r for r in Reason
                                                if r in REASONS[Action.SUSPEND])),
    Step("resume", "Resume a suspended card.", _roles(Action.RESUME), _simple(Action.RESUME)),
    # Superseded is what replacement and renewal record; an operator names a real cause.
    Step("revoke", "Revoke a card for good.", _roles(Action.REVOKE), _simple(Action.REVOKE),
         reasons=tuple(r for r in Reason if r is not Reason.SUPERSEDED)),
    Step("replace", "Revoke a lost, stolen or damaged card and open the application for its "
         "successor (answers the NEW card).", (Role.SUPERVISOR,), _replace,
         reasons=tuple(r for r in Reason if r in cards.REPLACE_REASONS), creates=True),
    Step("renew", "Apply for the successor of a card before it expires (answers the NEW "
         "card; the old one stays active until the new one is activated).",
         _roles(Action.APPLY), _renew, creates=True),
)


def _step_view(step: Step) -> Callable[[Call], Reply]:
    def view(call: Call) -> Reply:
        card = records.card_or_404(call.db, call.actor, call.path["number"], for_update=True)
        version = records.check_version(card, call.version)
        reason = Reason(call.body["reason"]) if "reason" in call.body else None
        result = step.run(call, card, version, reason)
        return records.card_reply(call.db, result, 201 if step.creates else 200)

    return view


for _step in STEPS:
    operation(
        method="POST", path=f"/cards/{{number}}/{_step.slug}",
        operation_id="".join(part.title() for part in _step.slug.split("-")).join(
            ("card", "")),
        tag=TAG, response="Card", summary=_step.summary, roles=_step.roles,
        path_params=records.NUMBER_PARAM, if_match=True, creates=_step.creates,
        status=201 if _step.creates else 200,
        headers=records.new_card_headers if _step.creates else records.card_headers,
        body=(closed(["reason"], reason={"type": "string", "enum": values(_step.reasons)})
              if _step.reasons else None),
        errors=(409, 412, 428),
    )(_step_view(_step))
