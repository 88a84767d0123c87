"""Status lists: what each card's state publishes, and the signed lists terminals sync.

Every card has a fixed slot (shard, index) from creation (`cards.assign_status_slot`). A shard
is an IETF Token Status List of `settings.status_list_size` entries, 2 bits each, signed by the
status-list signer and served at `<public_base_url>/public/status/<shard>`.

Republication "within seconds of a change":

1. every status change calls `mark_dirty` (a `cards.status_listeners` hook) inside the changing
   transaction: the shard's row in `status_list_dirty` is inserted or its `marks` bumped, so
   the mark commits or rolls back with the change;
2. after the commit, the caller runs `publish_dirty` (the CLI after each command; the web after
   requests or from a background thread). Each dirty shard is taken with
   `SELECT ... FOR UPDATE SKIP LOCKED` (several workers share the work, none waits on another),
   its publication row is locked (publications of one shard are strictly ordered, so an older
   build never overwrites a newer one), it is rebuilt from the cards table, signed, stored, and
   its mark deleted only if no one bumped it meanwhile. A change racing the publisher either
   committed before the rebuild (and is in it) or re-marks the shard after (and is published
   next time).

Publications are kept in `status_list_publications` (what the web serves) and written to
`<instance>/public/status/<n>` with `index.json` (what `cardsys terminal sync --from DIR`
reads), next to the latest trust list in `<instance>/public/trust-list`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cardsys.config import Settings
from cardsys.db import Database
from cardsys.formats.statuslist import Status, StatusList, sign_status_list
from cardsys.lifecycle import CardStatus
from cardsys.models import Card, StatusListDirty, StatusListPublication
from cardsys.pki import Purpose, Signer
from issuance import cards
from keys import ceremony
from keys.store import KeyStore, open_key_store

__all__ = [
    "PUBLISHED",
    "Published",
    "SignerSource",
    "build_shard",
    "key_store_signers",
    "mark_dirty",
    "publish",
    "publish_dirty",
    "published_status",
    "published_token",
    "status_uri",
    "write_trust_list",
]

#: Where the signing keys come from: (session, purpose, now) -> the active signer.
SignerSource = Callable[[Session, Purpose, datetime], Signer]

#: THE mapping from a card's lifecycle state to what its status list entry says.
PUBLISHED: Final[Mapping[CardStatus, Status]] = MappingProxyType(
    {
        CardStatus.ACTIVE: Status.VALID,
        CardStatus.SUSPENDED: Status.SUSPENDED,
        CardStatus.REVOKED: Status.REVOKED,
        CardStatus.EXPIRED: Status.REVOKED,
        # Not yet usable: a card applied for, approved, personalized or handed over but not
        # activated must not verify (a card stolen from the counter, say).
        CardStatus.APPLIED: Status.SUSPENDED,
        CardStatus.APPROVED: Status.SUSPENDED,
        CardStatus.PERSONALIZED: Status.SUSPENDED,
        CardStatus.ISSUED: Status.SUSPENDED,
    }
)
PUBLIC_DIR: Final = "public"
STATUS_DIR: Final = "status"
INDEX_FILE: Final = "index.json"
TRUST_LIST_FILE: Final = "trust-list"
ROOT_FILE: Final = "root.pem"


def key_store_signers(settings: Settings) -> SignerSource:
    """Signers from the instance's key store and the ceremony's registry (opened on first use,
    since opening a file store needs the passphrase)."""
    opened: list[KeyStore] = []

    def source(session: Session, purpose: Purpose, now: datetime) -> Signer:
        if not opened:
            opened.append(open_key_store(settings))
        return ceremony.active_signer(session, opened[0], purpose, now)

    return source


def published_status(state: CardStatus) -> Status:
    """What the status list says for a card in `state`."""
    return PUBLISHED[state]


def status_uri(settings: Settings, list_number: int) -> str:
    """Where shard `list_number` is published (the `uri` in credentials, the list's `sub`)."""
    return f"{settings.public_base_url.rstrip('/')}/public/status/{list_number}"


@dataclass(frozen=True)
class Published:
    """One shard as just published."""

    list_number: int
    revision: int
    issued_at: datetime
    sha256: str
    size: int


# --- marking (inside the changing transaction) --------------------------------------------------


def mark_dirty(session: Session, card: Card, before: CardStatus | None, now: datetime) -> None:
    """Mark the card's shard for republication, in the caller's transaction.

    A change that leaves the published value as it was (approved -> personalized: suspended
    both) marks nothing; a new card always marks, so its shard gets published at all.
    """
    if card.status_list is None:
        return
    if before is not None and PUBLISHED[before] is PUBLISHED[card.status]:
        return
    session.execute(
        _MARK[_dialect(session)], {"list_number": card.status_list, "at": now}
    )


def _mark_statement(insert: Any) -> Any:
    statement = insert(StatusListDirty).values(
        list_number=bindparam("list_number"), marks=1, marked_at=bindparam("at")
    )
    return statement.on_conflict_do_update(
        index_elements=[StatusListDirty.list_number],
        set_={"marks": StatusListDirty.marks + 1, "marked_at": bindparam("at")},
    )


#: The upsert that marks a shard, built once per dialect (every status change runs it).
_MARK: Final = {"postgresql": _mark_statement(postgresql.insert),
                "sqlite": _mark_statement(sqlite.insert)}


# Registered once, at import: every status change marks its shard (cards.status_listeners).
if mark_dirty not in cards.status_listeners:
    cards.status_listeners.append(mark_dirty)


# --- building and signing -----------------------------------------------------------------------


def build_shard(session: Session, list_number: int, settings: Settings) -> StatusList:
    """Shard `list_number` from the cards table (only cards that are not ACTIVE are read)."""
    shard = StatusList(settings.status_list_size, bits=2)
    rows = session.execute(
        select(Card.status_index, Card.status).where(
            Card.status_list == list_number, Card.status != CardStatus.ACTIVE
        )
    )
    for index, state in rows:
        value = PUBLISHED[state]
        if value is not Status.VALID and index is not None:
            shard.set(index, value)
    return shard


def _publish_one(
    session: Session,
    list_number: int,
    *,
    now: datetime,
    settings: Settings,
    signer: Signer,
) -> Published:
    """Rebuild, sign and store one shard; its publication row stays locked until commit."""
    insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    session.execute(
        insert(StatusListPublication)
        .values(list_number=list_number, revision=0)
        .on_conflict_do_nothing()
    )
    row = session.execute(
        select(StatusListPublication)
        .where(StatusListPublication.list_number == list_number)
        .with_for_update()
    ).scalar_one()
    # Terminals refuse a list older than the one they hold: issue times only move forward,
    # even when two workers' clocks disagree by a second.
    issued = now.replace(microsecond=0)
    if row.issued_at is not None and issued <= row.issued_at:
        issued = row.issued_at + timedelta(seconds=1)
    shard = build_shard(session, list_number, settings)
    token = sign_status_list(
        shard,
        uri=status_uri(settings, list_number),
        iat=issued,
        exp=issued + timedelta(seconds=settings.status_list_max_age),
        ttl=timedelta(seconds=settings.status_list_ttl),
        sign=signer.sign,
        alg=signer.algorithm,
        kid=signer.kid,
    )
    digest = hashlib.sha256(token).hexdigest()
    row.token, row.issued_at, row.sha256 = token, issued, digest
    row.expires_at = issued + timedelta(seconds=settings.status_list_max_age)
    row.revision += 1
    session.flush()
    write_atomic(_public(settings) / STATUS_DIR / str(list_number), token)
    return Published(list_number, row.revision, issued, digest, len(token))


# --- publishing (after the commit) --------------------------------------------------------------


def publish_dirty(
    db: Database, *, now: datetime, settings: Settings, signers: SignerSource
) -> list[Published]:
    """Republish every shard marked dirty, one transaction per shard (rules: module doc).

    Safe to run in several workers at once: each takes a different shard (SKIP LOCKED).
    """
    published: list[Published] = []
    done: set[int] = set()
    while True:
        with db.transaction() as session:
            query = select(StatusListDirty).order_by(StatusListDirty.list_number).limit(1)
            if done:
                query = query.where(StatusListDirty.list_number.not_in(done))
            mark = session.execute(query.with_for_update(skip_locked=True)).scalar_one_or_none()
            if mark is None:
                break
            number, marks = mark.list_number, mark.marks
            done.add(number)
            signer = signers(session, Purpose.STATUS_LIST, now)
            published.append(
                _publish_one(session, number, now=now, settings=settings, signer=signer)
            )
            _clear_mark(session, number, marks)
    if published:
        _write_index(db, settings)
    return published


def publish(
    db: Database,
    *,
    now: datetime,
    settings: Settings,
    signers: SignerSource,
    lists: Iterable[int] | None = None,
) -> list[Published]:
    """Publish the given shards, or every shard that has cards or was published before
    (`cardsys status publish --all`, and the periodic refresh before lists go stale)."""
    if lists is None:
        with db.transaction() as session:
            numbers = set(session.scalars(select(Card.status_list).distinct()))
            numbers |= set(session.scalars(select(StatusListPublication.list_number)))
            numbers.discard(None)
    else:
        numbers = set(lists)
    published = []
    for number in sorted(n for n in numbers if n is not None):
        with db.transaction() as session:
            # The same lock order as publish_dirty (mark, then publication): no deadlock.
            marks = session.scalar(
                select(StatusListDirty.marks)
                .where(StatusListDirty.list_number == number)
                .with_for_update()
            )
            signer = signers(session, Purpose.STATUS_LIST, now)
            published.append(
                _publish_one(session, number, now=now, settings=settings, signer=signer)
            )
            if marks is not None:
                _clear_mark(session, number, marks)
    if published:
        _write_index(db, settings)
    return published


def _clear_mark(session: Session, number: int, marks: int) -> None:
    # Cleared only if nobody re-marked it while we built (then it goes out next time).
    session.execute(
        delete(StatusListDirty).where(
            StatusListDirty.list_number == number, StatusListDirty.marks == marks
        )
    )


def published_token(session: Session, list_number: int) -> bytes | None:
    """The last signed list of a shard (what `/public/status/<n>` serves), if any."""
    return session.scalar(
        select(StatusListPublication.token).where(
            StatusListPublication.list_number == list_number
        )
    )


def write_trust_list(settings: Settings, document: bytes) -> Path:
    """Put the trust list where terminals sync it from (`<instance>/public/trust-list`)."""
    path = _public(settings) / TRUST_LIST_FILE
    write_atomic(path, document)
    return path


def write_root(settings: Settings, pem: bytes) -> Path:
    """Put the root certificate terminals pin in `<instance>/public/root.pem`."""
    path = _public(settings) / ROOT_FILE
    write_atomic(path, pem)
    return path


# --- files --------------------------------------------------------------------------------------


def index_document(session: Session) -> bytes:
    """`status/index.json`: every published shard with the SHA-256 of its signed list, so a
    terminal fetches only the shards that changed (the lists themselves are signed; the index
    only saves downloads)."""
    rows = session.execute(
        select(StatusListPublication.list_number, StatusListPublication.sha256)
        .where(StatusListPublication.token.is_not(None))
        .order_by(StatusListPublication.list_number)
    ).all()
    document = {"lists": [n for n, _ in rows], "sha256": {str(n): d for n, d in rows}}
    return json.dumps(document, separators=(",", ":")).encode()


def _write_index(db: Database, settings: Settings) -> None:
    with db.transaction() as session:
        document = index_document(session)
    write_atomic(_public(settings) / STATUS_DIR / INDEX_FILE, document)


def _public(settings: Settings) -> Path:
    return settings.instance_path / PUBLIC_DIR


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` (mode 0644: public) in one rename: readers see the old file
    or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.chmod(0o644)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name
