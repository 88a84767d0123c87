"""The audit log of the operator's office, with the result of checking the whole chain."""

from __future__ import annotations

from flask import render_template, request

from cardsys import audit
from cardsys.errors import AuditChainError
from cardsys.models import Role
from web import auth
from web.database import transaction
from web.office import bp

PAGE = 100
FILTER_MAX = 128


@bp.get("/audit")
@auth.requires(Role.SUPERVISOR, Role.AUDITOR)
def audit_log() -> str:
    """The newest events of the office (filtered by exact subject or tag prefix)."""
    signed_in = auth.current()
    assert signed_in is not None
    subject = request.args.get("subject", "").strip()[:FILTER_MAX]
    tag = request.args.get("tag", "").strip()[:FILTER_MAX]
    with transaction() as db:
        events = audit.recent(
            db, limit=PAGE, subject=subject or None, tag_prefix=tag or None,
            office=signed_in.office_code,
        )
    # The chain check walks every event: its own transaction, as it detaches what it read.
    # At national scale this belongs to a scheduled job whose last result the page shows.
    report, broken = None, None
    with transaction() as db:
        try:
            report = audit.verify(db)
        except AuditChainError as exc:
            broken = str(exc)
    return render_template("office/audit.html", events=events, report=report, broken=broken,
                           subject=subject, tag=tag)
