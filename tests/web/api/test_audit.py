"""The audit log through the API: the office's events, and the chain check."""

from __future__ import annotations

from sqlalchemy import select

from cardsys.models import AuditEvent
from tests.web.api.conftest import Api, problem


def test_events_of_the_office_only(api: Api) -> None:
    world = api.world
    api.step(world.card_a, "approve", as_=world.a.supervisor)
    events = api.get("/audit/events", as_=world.a.auditor).get_json()["events"]
    assert events
    assert {e["office"] for e in events} == {"OFF-A"}
    assert [e["seq"] for e in events] == sorted((e["seq"] for e in events), reverse=True)
    mine = api.get(f"/audit/events?subject={world.card_a}&tag=card:status:&limit=5",
                   as_=world.a.supervisor).get_json()["events"]
    assert [e["tag"] for e in mine] == ["card:status:approve", "card:status:apply"]
    assert api.get(f"/audit/events?subject={world.card_b}",
                   as_=world.a.auditor).get_json()["events"] == []
    problem(api.get("/audit/events", as_=world.a.clerk), 403, "forbidden")
    problem(api.get("/audit/events?limit=501", as_=world.a.auditor), 422)


def test_the_chain_check_names_the_broken_link(api: Api) -> None:
    world = api.world
    intact = api.get("/audit/verify", as_=world.b.auditor).get_json()
    assert intact["intact"] is True
    assert intact["events"] == intact["head_seq"] > 0
    with api.db.transaction() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.seq == 3))
        assert event is not None
        event.actor = "someone-else"
    broken = api.get("/audit/verify", as_=world.b.auditor).get_json()
    assert broken["intact"] is False
    assert "3" in broken["broken"]
    problem(api.get("/audit/verify", as_=world.b.clerk), 403)
