"""The audit chain's own rules: hashing, appending, verifying, reading (on SQLite).

Tampering with rows through raw SQL, on both backends, is in
tests/integration/foundation/test_foundation_audit.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cardsys import audit
from cardsys.db import Database
from cardsys.errors import ValidationError
from cardsys.models import AuditEvent, AuditHead, Base

AT = datetime(2030, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)
BASE_EVENT: dict[str, Any] = {
    "seq": 1, "at": AT, "actor": "alice", "office": "OFF-A", "tag": "card:status:revoke",
    "subject": "SS110000000015", "details": {"reason": "lost", "n": 1}, "prev_hash": audit.GENESIS,
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def append(db: Database, n: int, **fields: Any) -> None:
    with db.transaction() as session:
        for i in range(n):
            audit.record(
                session, at=fields.get("at", AT + timedelta(seconds=i)),
                actor=fields.get("actor", "alice"), office=fields.get("office", "OFF-A"),
                tag=fields.get("tag", "card:status:apply"), subject=fields.get("subject", f"s{i}"),
                details=fields.get("details", {"i": i}),
            )


def test_event_hash_is_a_sha256_hex_digest_and_deterministic() -> None:
    digest = audit.event_hash(**BASE_EVENT)
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert audit.event_hash(**BASE_EVENT) == digest


def test_event_hash_ignores_the_order_of_detail_keys() -> None:
    reordered = BASE_EVENT | {"details": {"n": 1, "reason": "lost"}}
    assert audit.event_hash(**reordered) == audit.event_hash(**BASE_EVENT)


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 2), ("at", AT + timedelta(microseconds=1)), ("actor", "mallory"), ("office", None),
     ("office", "OFF-B"), ("tag", "card:status:resume"), ("subject", "SS110000000023"),
     ("details", {"reason": "stolen", "n": 1}), ("details", {"reason": "lost", "n": 2}),
     ("details", {"reason": "lost"}), ("prev_hash", "1" * 64)],
)
def test_every_field_is_covered_by_the_hash(field: str, value: Any) -> None:
    assert audit.event_hash(**(BASE_EVENT | {field: value})) != audit.event_hash(**BASE_EVENT)


def test_fields_cannot_be_shifted_into_each_other() -> None:
    # The canonical form is a JSON array, so "ab" + "c" and "a" + "bc" differ.
    left = BASE_EVENT | {"actor": "ab", "subject": "c"}
    right = BASE_EVENT | {"actor": "a", "subject": "bc"}
    assert audit.event_hash(**left) != audit.event_hash(**right)


def test_the_first_events_link_from_genesis_without_gaps(db: Database) -> None:
    append(db, 3)
    append(db, 2)
    with db.transaction() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        head = session.get(AuditHead, 1)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == audit.GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert head is not None
    assert (head.seq, head.hash) == (5, events[-1].hash)
    for event in events:
        assert event.hash == audit.event_hash(
            seq=event.seq, at=event.at, actor=event.actor, office=event.office, tag=event.tag,
            subject=event.subject, details=event.details, prev_hash=event.prev_hash,
        )


def test_verify_an_empty_chain(db: Database) -> None:
    with db.transaction() as session:
        report = audit.verify(session)
    assert (report.events, report.head_seq, report.head_hash) == (0, 0, audit.GENESIS)


def test_verify_an_intact_chain_across_batches(db: Database) -> None:
    append(db, 7)
    with db.transaction() as session:
        report = audit.verify(session, batch=3)
        head_hash = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == 7))
    assert (report.events, report.head_seq, report.head_hash) == (7, 7, head_hash)


def test_a_rolled_back_change_leaves_no_event(db: Database) -> None:
    append(db, 2)

    def failing_change() -> None:
        with db.transaction() as session:
            audit.record(session, at=AT, actor="alice", office="OFF-A",
                         tag="card:status:apply", subject="x", details={})
            raise RuntimeError("the change this event describes failed")

    with pytest.raises(RuntimeError):
        failing_change()
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 2
        assert audit.verify(session).head_seq == 2


def test_details_are_normalised_to_json(db: Database) -> None:
    append(db, 1, details={"list": (1, "two", True, None), "nested": {3: "x"}, "名": "张"})
    with db.transaction() as session:
        event = session.scalars(select(AuditEvent)).one()
        assert event.details == {"list": [1, "two", True, None], "nested": {"3": "x"}, "名": "张"}
        assert audit.verify(session).events == 1


@pytest.mark.parametrize("value", [1.5, b"bytes", AT, {1, 2}, object()])
def test_details_that_do_not_round_trip_are_refused(db: Database, value: object) -> None:
    with pytest.raises(ValidationError), db.transaction() as session:
        audit.record(session, at=AT, actor="a", office=None, tag="card:status:apply",
                     subject="s", details={"v": [value]})
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


@pytest.mark.parametrize("tag", ["card", "card:revoke", "card:status:revoke:again", ""])
def test_a_tag_must_have_three_parts(db: Database, tag: str) -> None:
    with pytest.raises(ValueError, match="source:subject:action"), db.transaction() as session:
        audit.record(session, at=AT, actor="a", office=None, tag=tag, subject="s")


def test_an_event_stamped_in_another_time_zone_still_verifies(db: Database) -> None:
    """A caller may pass an aware time in any zone (a web worker in local time); the stored
    UTC value must hash to the same digest, or the intact chain reads as tampered."""
    beijing = timezone(timedelta(hours=8))
    append(db, 1, at=AT.astimezone(beijing))
    with db.transaction() as session:
        assert audit.verify(session).events == 1


def test_recent_newest_first_with_filters(db: Database) -> None:
    with db.transaction() as session:
        for i, (tag, subject, office) in enumerate([
            ("card:status:apply", "SS1", "OFF-A"),
            ("card:status:approve", "SS1", "OFF-A"),
            ("resident:resident:enrol", "110", "OFF-B"),
            ("card_status:x:y", "SS2", "OFF-A"),  # "_" must not match as a LIKE wildcard
        ]):
            audit.record(session, at=AT + timedelta(seconds=i), actor="a", office=office,
                         tag=tag, subject=subject)
    with db.transaction() as session:
        assert [e.seq for e in audit.recent(session)] == [4, 3, 2, 1]
        assert [e.seq for e in audit.recent(session, limit=2)] == [4, 3]
        assert [e.seq for e in audit.recent(session, subject="SS1")] == [2, 1]
        assert [e.seq for e in audit.recent(session, tag_prefix="card:status")] == [2, 1]
        assert [e.seq for e in audit.recent(session, office="OFF-B")] == [3]
