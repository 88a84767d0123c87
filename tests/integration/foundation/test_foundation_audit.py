"""The audit chain on both backends: one event per change, in the change's transaction, and
`audit.verify` naming the right link after rows are edited, deleted or reordered by raw SQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, bindparam, text
from sqlalchemy.orm import Session

import tests.factories as f
from cardsys import audit
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import AuditChainError
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import AuditEvent
from issuance import cards
from tests.factories import NOW, Staff

# --- one event per change -----------------------------------------------------------------


def test_every_change_writes_exactly_its_events(
    database: Database, settings: Settings, staff: Staff
) -> None:
    """Walk a card's life one transaction per change; each adds exactly the events named."""
    state: dict[str, str] = {}

    def enrol(s: Session) -> object:
        holder = f.make_resident(s, staff.clerk_in(s))
        state["holder"] = holder.id_number
        return holder

    def apply(s: Session) -> object:
        card = cards.apply(s, staff.clerk_in(s), f.resident(s, state["holder"]), now=NOW,
                           settings=settings)
        state["card"] = card.number
        return card

    def replace(s: Session) -> object:
        new = cards.replace(s, staff.supervisor_in(s), f.card(s, state["card"]),
                            reason=Reason.STOLEN, now=NOW, settings=settings)
        state["old"], state["card"] = state["card"], new.number
        return new

    def on_card(act: Callable[[Session, Any], object]) -> Callable[[Session], object]:
        return lambda s: act(s, f.card(s, state["card"]))

    clerk, boss = staff.clerk, staff.supervisor
    steps: list[tuple[Callable[[Session], object], list[str]]] = [
        (enrol, ["resident:resident:enrol"]),
        (apply, ["card:status:apply"]),
        (on_card(lambda s, c: cards.approve(s, f.operator(s, boss), c, now=NOW)),
         ["card:status:approve"]),
        (on_card(lambda s, c: cards.personalize(s, f.operator(s, clerk), c, now=NOW,
                                                settings=settings)),
         ["card:status:personalize"]),
        (on_card(lambda s, c: cards.hand_over(s, f.operator(s, clerk), c, now=NOW)),
         ["card:status:hand_over"]),
        (on_card(lambda s, c: cards.activate(s, f.operator(s, clerk), c, now=NOW)),
         ["card:status:activate"]),
        (on_card(lambda s, c: cards.suspend(s, f.operator(s, clerk), c, reason=Reason.STOLEN,
                                            now=NOW)),
         ["card:status:suspend"]),
        (on_card(lambda s, c: cards.resume(s, f.operator(s, boss), c, now=NOW)),
         ["card:status:resume"]),
        # Replacement changes two cards: the old one's revoke and the new one's application.
        (replace, ["card:status:revoke", "card:status:apply"]),
        (on_card(lambda s, c: cards.revoke(s, f.operator(s, boss), c, reason=Reason.FRAUD,
                                           now=NOW)),
         ["card:status:revoke"]),
    ]
    for action, tags in steps:
        with database.transaction() as s:
            before = f.audit_count(s)
            action(s)
        with database.transaction() as s:
            added = audit.recent(s, limit=f.audit_count(s) - before) if tags else []
            assert f.audit_count(s) - before == len(tags)
            assert [e.tag for e in reversed(added)] == tags
            for event in added:
                assert event.actor in (clerk, boss)
                assert event.office == "OFF-A"
    with database.transaction() as s:
        old = audit.recent(s, subject=state["old"], limit=1)[0]
        assert old.details == {"kind": "physical", "from": "active", "to": "revoked",
                               "reason": "superseded", "replace_reason": "stolen"}
        assert audit.verify(s).events == f.audit_count(s)


def test_a_rolled_back_change_leaves_no_event(
    database: Database, settings: Settings, staff: Staff
) -> None:
    with database.transaction() as s:
        number = f.make_card(s, staff, f.make_resident(s, staff.clerk_in(s)),
                             settings=settings).number

    def suspend_then_fail(s: Session) -> None:
        cards.suspend(s, staff.clerk_in(s), f.card(s, number), reason=Reason.LOST, now=NOW)
        s.flush()  # the UPDATE and the event reach the database before the failure
        raise RuntimeError("the request failed after the change")

    f.refused(database, RuntimeError, suspend_then_fail)
    with database.transaction() as s:
        assert f.card(s, number).status is CardStatus.ACTIVE
        assert audit.verify(s).events == f.audit_count(s)


# --- tampering ----------------------------------------------------------------------------


def raw(database: Database, sql: str, **params: Any) -> None:
    """Run one statement outside the services, as someone with database access would."""
    with database.engine.begin() as connection:
        connection.execute(text(sql), params)


def rows(connection: Connection, *seqs: int) -> dict[int, dict[str, Any]]:
    result = connection.execute(
        text("SELECT * FROM audit_events WHERE seq IN :seqs").bindparams(
            bindparam("seqs", expanding=True)),
        {"seqs": list(seqs)},
    )
    return {row["seq"]: dict(row) for row in result.mappings()}


def details_sql(database: Database) -> str:
    # PostgreSQL's json column takes text only through a cast; SQLite stores the text.
    return "CAST(:details AS json)" if database.dialect == "postgresql" else ":details"


def as_json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def edit_details(database: Database, seq: int) -> None:
    raw(database, f"UPDATE audit_events SET details = {details_sql(database)} WHERE seq = :seq",
        details=json.dumps({"role": "admin", "note": "quietly changed"}), seq=seq)


def edit_actor(database: Database, seq: int) -> None:
    raw(database, "UPDATE audit_events SET actor = 'mallory' WHERE seq = :seq", seq=seq)


def edit_time(database: Database, seq: int) -> None:
    with database.engine.begin() as connection:
        at = rows(connection, seq)[seq]["at"]
    shifted = at.replace(year=at.year - 1) if not isinstance(at, str) else "2001" + at[4:]
    raw(database, "UPDATE audit_events SET at = :at WHERE seq = :seq", at=shifted, seq=seq)


def delete(database: Database, seq: int) -> None:
    raw(database, "DELETE FROM audit_events WHERE seq = :seq", seq=seq)


def swap_with_next(database: Database, seq: int) -> None:
    """Exchange the contents of two neighbours, keeping their sequence numbers."""
    columns = ["at", "actor", "office", "tag", "subject", "details", "prev_hash", "hash"]
    with database.engine.begin() as connection:
        found = rows(connection, seq, seq + 1)
        for target, source in ((seq, found[seq + 1]), (seq + 1, found[seq])):
            assignments = ", ".join(
                f"{c} = {details_sql(database)}" if c == "details" else f"{c} = :{c}"
                for c in columns
            )
            values = {c: source[c] for c in columns} | {"details": as_json_text(source["details"])}
            connection.execute(text(f"UPDATE audit_events SET {assignments} WHERE seq = :seq"),
                               values | {"seq": target})


def edit_and_rehash(database: Database, seq: int) -> None:
    """Edit an event and recompute its own hash: only the next event's link can tell."""
    with database.transaction() as s:
        event = s.get(AuditEvent, seq)
        assert event is not None
        forged = {"role": "admin"}
        digest = audit.event_hash(seq=event.seq, at=event.at, actor=event.actor,
                                  office=event.office, tag=event.tag, subject=event.subject,
                                  details=forged, prev_hash=event.prev_hash)
    raw(database, f"UPDATE audit_events SET details = {details_sql(database)}, hash = :hash "
        "WHERE seq = :seq", details=json.dumps(forged), hash=digest, seq=seq)


# (name, tamper, which event, expected message with {k} for that event and {n} for the count)
TAMPERING: list[tuple[str, Callable[[Database, int], None], str, str]] = [
    ("details edited", edit_details, "middle", "audit event {k} was altered"),
    ("actor edited", edit_actor, "middle", "audit event {k} was altered"),
    ("time edited", edit_time, "middle", "audit event {k} was altered"),
    ("first row edited", edit_actor, "first", "audit event {k} was altered"),
    ("row deleted in the middle", delete, "middle", "audit event {k} is missing"),
    ("first row deleted", delete, "first", "audit event {k} is missing"),
    ("newest row deleted", delete, "last",
     "audit events after {k_minus_1} are missing: the chain head records {k}"),
    ("two rows swapped", swap_with_next, "middle", "audit event {k} does not link"),
    ("edited and rehashed", edit_and_rehash, "middle", "audit event {k_plus_1} does not link "
     "to event {k}"),
    # The head row holds the newest hash: it is what catches a rehashed newest event.
    ("newest row edited and rehashed", edit_and_rehash, "last", "{k}"),
]


@pytest.mark.parametrize(("tamper", "where", "message"), [t[1:] for t in TAMPERING],
                         ids=[t[0] for t in TAMPERING])
def test_verify_names_the_broken_link(
    database: Database, settings: Settings, staff: Staff,
    tamper: Callable[[Database, int], None], where: str, message: str,
) -> None:
    with database.transaction() as s:
        f.make_card(s, staff, f.make_resident(s, staff.clerk_in(s)), settings=settings)
        total = f.audit_count(s)
        assert audit.verify(s).events == total
    k = {"first": 1, "middle": total // 2, "last": total}[where]
    tamper(database, k)
    with pytest.raises(AuditChainError) as caught, database.transaction() as s:
        audit.verify(s)
    expected = message.format(k=k, k_plus_1=k + 1, k_minus_1=k - 1)
    assert expected in str(caught.value)


def test_a_forged_event_appended_after_the_head_is_caught(
    database: Database, staff: Staff
) -> None:
    """Someone appends a well-formed, correctly linked event without moving the head row."""
    with database.transaction() as s:
        last = audit.recent(s, limit=1)[0]
        seq, at = last.seq + 1, last.at
        digest = audit.event_hash(seq=seq, at=at, actor="mallory", office="OFF-A",
                                  tag="card:status:resume", subject="SS110000000015",
                                  details={}, prev_hash=last.hash)
        at_value: Any = at.replace(tzinfo=None) if database.dialect == "sqlite" else at
    raw(database, "INSERT INTO audit_events (seq, at, actor, office, tag, subject, details, "
        f"prev_hash, hash) VALUES (:seq, :at, 'mallory', 'OFF-A', 'card:status:resume', "
        f"'SS110000000015', {details_sql(database)}, :prev, :hash)",
        seq=seq, at=at_value, details="{}", prev=last.hash, hash=digest)
    with pytest.raises(AuditChainError, match=rf"\b{seq}\b"), database.transaction() as s:
        audit.verify(s)
