"""The append-only, hash-chained audit log.

Each event's hash is SHA-256 over a canonical JSON array of its sequence number, time, actor,
office, tag, subject, details and the previous event's hash. Appending locks the single head
row (`SELECT ... FOR UPDATE`), so sequence numbers have no gaps and the chain has no forks,
even with many web workers; the lock is released when the surrounding transaction ends, and the
event commits or rolls back with the change it describes.

`verify` walks the chain and names the first broken link: a missing sequence number (deleted
row), an event that does not link to its predecessor (reordered rows, or an edited predecessor
whose hash was recomputed), an event whose content does not match its hash (edited row), and
events missing after the last one the head records (deleted tail). Rewriting the whole chain
from some point on is what the signed checkpoints catch (see `keys` and `cardsys audit sign`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from cardsys.errors import AuditChainError, ValidationError
from cardsys.models import AuditEvent, AuditHead

GENESIS = "0" * 64
_HEAD_ID = 1
# Core tables, not the ORM: every change appends here, and the unit of work costs 3-5x more.
_EVENTS = cast(Table, AuditEvent.__table__)
_HEAD = cast(Table, AuditHead.__table__)
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == _HEAD_ID).with_for_update()
_MOVE_HEAD = (
    _HEAD.update()
    .where(_HEAD.c.id == _HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_JSON_SCALARS = (str, int, bool, type(None))


def event_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    office: str | None,
    tag: str,
    subject: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """The hash of one event's content and its predecessor's hash."""
    canonical = json.dumps(
        [seq, at.isoformat(), actor, office, tag, subject, details, prev_hash],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Recorded:
    """The place an appended event took in the chain."""

    seq: int
    hash: str


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    office: str | None,
    tag: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
) -> Recorded:
    """Append an event to the chain inside the caller's transaction.

    Plain SQL statements, not the ORM unit of work: every change of the system passes here, and
    three statements (lock the head, insert the event, move the head) are all it needs.

    Args:
        tag: `source:subject:action`, e.g. `card:status:revoke`.
        details: JSON values only (no floats: they do not round-trip exactly).
    """
    at = at.astimezone(UTC)  # the database gives UTC back; hash what it will give
    if tag.count(":") != 2:
        raise ValueError(f"audit tag {tag!r} must have the form source:subject:action")
    clean = _json_only(dict(details or {}))
    head_row = session.execute(_LOCK_HEAD).first()
    if head_row is None:
        session.execute(_HEAD.insert(), {"id": _HEAD_ID, "seq": 0, "hash": GENESIS})
        head_seq, head_hash = 0, GENESIS
    else:
        head_seq, head_hash = head_row
    seq = head_seq + 1
    digest = event_hash(
        seq=seq, at=at, actor=actor, office=office, tag=tag, subject=subject,
        details=clean, prev_hash=head_hash,
    )
    session.execute(_EVENTS.insert(), {
        "seq": seq, "at": at, "actor": actor, "office": office, "tag": tag,
        "subject": subject, "details": clean, "prev_hash": head_hash, "hash": digest,
    })
    session.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": digest})
    return Recorded(seq, digest)


def _json_only(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_only(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_only(v) for v in value]
    if isinstance(value, _JSON_SCALARS):
        return value
    raise ValidationError(f"audit details must be JSON strings, integers or booleans: {value!r}")


@dataclass(frozen=True)
class ChainReport:
    """What `verify` found on an intact chain."""

    events: int
    head_seq: int
    head_hash: str


def verify(session: Session, *, batch: int = 5000) -> ChainReport:
    """Walk the whole chain in sequence order.

    Raises:
        AuditChainError: naming the first broken or missing link.
    """
    expected_seq, prev_hash, count = 1, GENESIS, 0
    for event in _events(session, batch):
        if event.seq != expected_seq:
            raise AuditChainError(
                f"audit event {expected_seq} is missing (the next one is {event.seq})"
            )
        if event.prev_hash != prev_hash:
            raise AuditChainError(
                f"audit event {event.seq} does not link to event {event.seq - 1}: "
                "an earlier event was changed, or events were reordered"
            )
        digest = event_hash(
            seq=event.seq, at=event.at, actor=event.actor, office=event.office, tag=event.tag,
            subject=event.subject, details=event.details, prev_hash=event.prev_hash,
        )
        if digest != event.hash:
            raise AuditChainError(f"audit event {event.seq} was altered: its hash does not match")
        expected_seq, prev_hash, count = expected_seq + 1, event.hash, count + 1
    head = session.get(AuditHead, _HEAD_ID)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq > count:
        raise AuditChainError(
            f"audit events after {count} are missing: the chain head records {head_seq}"
        )
    if head_seq < count:
        raise AuditChainError(
            f"audit events after {head_seq} were added outside the chain head (found {count})"
        )
    if head_hash != prev_hash:
        raise AuditChainError(
            f"audit event {count} was altered: the chain head records another hash"
        )
    return ChainReport(events=count, head_seq=head_seq, head_hash=head_hash)


def _events(session: Session, batch: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def recent(
    session: Session,
    *,
    limit: int = 50,
    subject: str | None = None,
    tag_prefix: str | None = None,
    office: str | None = None,
) -> list[AuditEvent]:
    """The newest events first, optionally filtered."""
    query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    if subject is not None:
        query = query.where(AuditEvent.subject == subject)
    if tag_prefix is not None:
        query = query.where(AuditEvent.tag.startswith(tag_prefix, autoescape=True))
    if office is not None:
        query = query.where(AuditEvent.office == office)
    return list(session.scalars(query))
