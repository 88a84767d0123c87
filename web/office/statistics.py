"""The statistics dashboard of an office: the counts of `issuance.stats`, drawn as SVG."""

from __future__ import annotations

from flask import render_template
from flask_babel import format_date  # type: ignore[import-untyped]
from flask_babel import gettext as _

from cardsys.models import Role
from issuance.stats import count
from web import auth
from web.charts import Bar, bar_chart, column_chart
from web.database import now, transaction
from web.labels import REASON, STATUS
from web.office import bp


@bp.get("/statistics")
@auth.requires(Role.SUPERVISOR, Role.AUDITOR)
def statistics() -> str:
    """The dashboard."""
    with transaction() as db:
        counts = count(db, auth.acting(db), today=now().date())
    charts = {
        "per_day": column_chart(
            _("Cards issued per day"),
            [Bar(format_date(day, "MM-dd"), n) for day, n in counts.issued_per_day],
        ),
        "status": bar_chart(
            _("Cards by status"), [Bar(str(STATUS[s]), n) for s, n in counts.by_status]
        ),
        "region": bar_chart(_("Cards by region"), [Bar(r, n) for r, n in counts.by_region]),
        "revocations": bar_chart(
            _("Revocations by reason"),
            [Bar(str(REASON[r]) if r is not None else "—", n) for r, n in counts.revocations],
        ),
    }
    return render_template("office/statistics.html", charts=charts, counts=counts)
