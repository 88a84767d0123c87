"""The audit log of the operator's office, and the result of checking the whole chain."""

from __future__ import annotations

from cardsys import audit
from cardsys.errors import AuditChainError
from cardsys.models import Role
from issuance.present import event_dict
from web.api.routing import Call, Param, Reply, operation
from web.api.schema import string

TAG = "audit"
ROLES = (Role.SUPERVISOR, Role.AUDITOR)


@operation(
    method="GET", path="/audit/events", operation_id="listAuditEvents", tag=TAG,
    response="EventList", roles=ROLES,
    summary="The newest audit events of the operator's office, newest first.",
    query={
        "subject": Param(string(min_length=1, max_length=128), "Only this subject (a card or "
                         "ID number, a login)."),
        "tag": Param(string(min_length=1, max_length=64), "Only tags starting with this "
                     "(e.g. `card:status:`)."),
        "limit": Param({"type": "integer", "minimum": 1, "maximum": 500}, "At most (100)."),
    },
)
def events(call: Call) -> Reply:
    office = call.actor.office.code if call.actor.office is not None else None
    found = audit.recent(call.db, limit=call.query.get("limit", 100), office=office,
                         subject=call.query.get("subject"), tag_prefix=call.query.get("tag"))
    return Reply(200, {"events": [event_dict(e) for e in found]})


@operation(
    method="GET", path="/audit/verify", operation_id="verifyAuditChain", tag=TAG,
    response="ChainCheck", roles=ROLES,
    summary="Walk the whole hash chain: intact, or the first broken link.",
)
def verify_chain(call: Call) -> Reply:
    try:
        report = audit.verify(call.db)
    except AuditChainError as exc:
        return Reply(200, {"intact": False, "events": None, "head_seq": None,
                           "head_hash": None, "broken": str(exc)})
    return Reply(200, {"intact": True, "events": report.events, "head_seq": report.head_seq,
                       "head_hash": report.head_hash, "broken": None})
