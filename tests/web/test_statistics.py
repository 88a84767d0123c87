"""The statistics dashboard: right counts for the office only, drawn as SVG with no inline style."""

from __future__ import annotations

import re
from datetime import date, timedelta

from flask import Flask
from flask.testing import FlaskClient
from markupsafe import Markup
from sqlalchemy import select

from cardsys.config import Settings
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import Operator
from issuance.stats import count
from tests.factories import NOW, make_card, make_resident
from tests.web.conftest import World, enter
from web.charts import Bar, bar_chart, column_chart


def _populate(app: Flask, world: World) -> None:
    """More cards in office A: two active (issued on NOW's day), one revoked, one suspended."""
    settings: Settings = app.config["CARDSYS_SETTINGS"]
    with app.extensions["cardsys_db"].transaction() as session:
        clerk = world.a.clerk_in(session)
        for sequence, status in ((11, CardStatus.ACTIVE), (12, CardStatus.ACTIVE),
                                 (13, CardStatus.REVOKED), (14, CardStatus.SUSPENDED)):
            holder = make_resident(session, clerk, sequence, region="110102" if sequence % 2
                                   else "110101")
            make_card(session, world.a, holder, settings=settings, status=status,
                      reason=Reason.STOLEN)


def test_counts_are_right_and_scoped_to_the_office(app: Flask, world: World) -> None:
    _populate(app, world)
    with app.extensions["cardsys_db"].transaction() as session:
        auditor = session.scalar(select(Operator).where(Operator.login == world.a.auditor))
        assert auditor is not None
        counts = count(session, auditor, today=NOW.date() + timedelta(days=1))
    by_status = dict(counts.by_status)
    # Office A: the seeded application and active card plus the four above; office B's card
    # is not counted.
    assert by_status[CardStatus.APPLIED] == 1
    assert by_status[CardStatus.ACTIVE] == 3
    assert by_status[CardStatus.REVOKED] == 1
    assert by_status[CardStatus.SUSPENDED] == 1
    assert sum(by_status.values()) == 6
    assert dict(counts.revocations) == {Reason.STOLEN: 1}
    assert dict(counts.by_region) == {"110101": 4, "110102": 2}
    per_day = dict(counts.issued_per_day)
    assert len(per_day) == 30
    assert per_day[NOW.date()] == 5
    assert sum(per_day.values()) == 5
    assert max(per_day) == NOW.date() + timedelta(days=1)


def test_dashboard_draws_svg_charts(app: Flask, client: FlaskClient, world: World) -> None:
    _populate(app, world)
    enter(client, world.a.supervisor)
    response = client.get("/office/statistics")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert page.count("<svg class=\"chart\"") == 4
    assert "<title>Cards by status</title>" in page
    assert "<title>Revocations by reason</title>" in page
    assert re.search(r'<text class="chart-label"[^>]*>stolen</text>', page)
    assert ">110102</text>" in page
    assert " style=" not in page
    assert "<script>" not in page


def test_bar_chart_escapes_labels_and_scales_bars() -> None:
    svg = bar_chart("T<itle>", [Bar("<b>x</b>", 10), Bar("y", 5), Bar("z", 0)])
    assert isinstance(svg, Markup)
    assert "<b>" not in svg
    assert "&lt;b&gt;x&lt;/b&gt;" in svg
    assert "<title>T&lt;itle&gt;</title>" in svg
    widths = [int(w) for w in re.findall(r'<rect class="chart-bar"[^>]*width="(\d+)"', svg)]
    assert widths[0] == 2 * widths[1]
    assert widths[2] == 0


def test_charts_of_nothing_still_draw() -> None:
    assert "—" in bar_chart("empty", [])
    svg = column_chart("days", [Bar((date(2030, 1, 1) + timedelta(days=i)).isoformat(), 0)
                                for i in range(30)])
    assert svg.count("<rect") == 30
    assert 'height="0"' in svg


def test_column_chart_labels_the_last_day_and_every_seventh_before_it() -> None:
    days = [Bar(f"d{i}", i % 3) for i in range(30)]
    svg = column_chart("x", days)
    labels = re.findall(r'<text class="chart-label"[^>]*>(d\d+)</text>', svg)
    assert labels == ["d1", "d8", "d15", "d22", "d29"]
    # The newest label ends at the right edge instead of running past it.
    assert re.search(r'x="640" y="\d+" text-anchor="end">d29<', svg)
