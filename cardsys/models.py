"""The database model: SQLAlchemy 2.x typed ORM, one module.

Timestamps are UTC-aware on every backend (`UtcDateTime`). Enums are stored as their string
values (not native enum types) so adding a member needs no schema migration.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cardsys.config import KeyStoreKind
from cardsys.lifecycle import CardKind, CardStatus, Reason
from cardsys.pki import Purpose, RevocationReason


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(enum_class: type[enum.Enum], length: int = 24) -> Any:
    from sqlalchemy import Enum

    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
    }


class Role(enum.StrEnum):
    CLERK = "clerk"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    #: Operator management and the key ceremony; no card transitions (separation of duties).
    ADMIN = "admin"


class Sex(enum.StrEnum):
    FEMALE = "F"
    MALE = "M"
    UNSPECIFIED = "X"


class Office(Base):
    __tablename__ = "offices"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(6))
    created_at: Mapped[datetime]


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role))
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"))
    #: argon2id hash; None for an operator who only uses the CLI on the office machine.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]

    office: Mapped[Office | None] = relationship(lazy="joined")


class Photo(Base):
    """A portrait, stored once however many cards show it."""

    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    media_type: Mapped[str] = mapped_column(String(32))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Resident(Base):
    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    surname: Mapped[str] = mapped_column(String(100))
    given_names: Mapped[str] = mapped_column(String(100))
    sex: Mapped[Sex] = mapped_column(_enum(Sex, 1))
    birth_date: Mapped[date] = mapped_column(Date)
    #: Current region of residence (6-digit code); the ID number keeps the one at birth.
    region: Mapped[str] = mapped_column(String(6))
    #: Insurance schemes the resident belongs to, space separated codes.
    schemes: Mapped[str] = mapped_column(String(200), default="")
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id"))
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    #: Set when enrolled despite a possible duplicate; cards wait for a supervisor's review.
    review_required: Mapped[bool] = mapped_column(Boolean, default=False)
    deceased: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    created_by_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))

    photo: Mapped[Photo | None] = relationship(lazy="select")
    office: Mapped[Office] = relationship(lazy="joined")
    cards: Mapped[list[Card]] = relationship(
        back_populates="resident", order_by="Card.id", lazy="select"
    )

    __table_args__ = (Index("ix_residents_lookup", "surname", "birth_date", "region"),)


class Card(Base):
    __tablename__ = "cards"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(14), unique=True)
    kind: Mapped[CardKind] = mapped_column(_enum(CardKind, 8))
    status: Mapped[CardStatus] = mapped_column(_enum(CardStatus, 16))
    #: Optimistic locking: every UPDATE checks and bumps it; a lost race raises ConflictError.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id"))
    maker_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    #: The card this one replaces or renews.
    predecessor_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"))
    #: Digital cards: the physical card whose holder they belong to.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"))
    status_reason: Mapped[Reason | None] = mapped_column(_enum(Reason))
    created_at: Mapped[datetime]
    status_changed_at: Mapped[datetime]
    issue_date: Mapped[date | None] = mapped_column(Date)
    expiry_date: Mapped[date | None] = mapped_column(Date)
    #: Position in the published status lists (shard number, index inside the shard).
    status_list: Mapped[int | None] = mapped_column(Integer)
    status_index: Mapped[int | None] = mapped_column(Integer)
    #: Chip cards: what personalization wrote (never the AA private key).
    chip_serial: Mapped[str | None] = mapped_column(String(32))
    sod_sha256: Mapped[str | None] = mapped_column(String(64))
    aa_public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: Digital cards: the phone's public key (COSE_Key, CBOR) and its thumbprint.
    device_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    device_thumbprint: Mapped[str | None] = mapped_column(String(64), unique=True)

    resident: Mapped[Resident] = relationship(back_populates="cards", lazy="joined")
    office: Mapped[Office] = relationship(lazy="joined")
    maker: Mapped[Operator] = relationship(foreign_keys=[maker_id], lazy="select")
    approver: Mapped[Operator | None] = relationship(foreign_keys=[approver_id], lazy="select")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy reads it)
    __table_args__ = (
        # The database itself holds the rule "at most one active physical card a resident".
        Index(
            "uq_cards_one_active_physical",
            "resident_id",
            unique=True,
            sqlite_where=text("kind = 'physical' AND status = 'active'"),
            postgresql_where=text("kind = 'physical' AND status = 'active'"),
        ),
        Index("ix_cards_resident", "resident_id"),
        Index("ix_cards_status_expiry", "status", "expiry_date"),
        UniqueConstraint("status_list", "status_index", name="uq_cards_status_slot"),
    )


class CardNumberCounter(Base):
    """The next serial per (agency prefix, province): allocated in the card's own transaction,
    so a rolled-back card leaves no gap and two transactions never get the same serial."""

    __tablename__ = "card_number_counters"

    prefix: Mapped[str] = mapped_column(String(2), primary_key=True)
    province: Mapped[str] = mapped_column(String(2), primary_key=True)
    next_serial: Mapped[int] = mapped_column(BigInteger)


class AuditEvent(Base):
    """One link of the append-only, hash-chained audit log (see cardsys.audit)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    office: Mapped[str | None] = mapped_column(String(16))
    tag: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(128), index=True)
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head, one row: locked while a transaction appends, so the sequence has no
    gaps and no forks; it also reveals deletion of the newest events."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signature by the audit key over the chain head at some point."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    kid: Mapped[str] = mapped_column(String(16))
    signature: Mapped[bytes] = mapped_column(LargeBinary)


# --- web application: operator sessions and idempotency keys (owned by web/) ----------------


class OperatorSession(Base):
    """A signed-in browser of an office operator.

    The cookie holds a random token; only its SHA-256 is stored, so a leaked database does not
    hand out sessions. Logout (or an idle or absolute timeout) ends the row, and a replayed
    cookie is then worthless, which a signed cookie alone could not promise.
    """

    __tablename__ = "operator_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    operator: Mapped[Operator] = relationship(lazy="joined")


class IdempotencyKey(Base):
    """A key an operator's request carried, claimed in the transaction of the change it made.

    Office forms carry a fresh key each time they are shown and API clients send one with
    every creating POST; a second request with the same key finds the claim and gets the first
    outcome again instead of making a second card.
    """

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    key: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of what the request asked for (method, path, body): a reused key with another
    #: request is refused rather than answered with the wrong outcome.
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    #: Where the first request led (a page) ...
    location: Mapped[str | None] = mapped_column(String(300))
    #: ... or what it answered (API): status and JSON body.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None]

    __table_args__ = (UniqueConstraint("operator_id", "key", name="uq_idempotency_keys"),)


# --- keys: the signer registry and the PKI state (owned by keys/) ----------------------------


class SignerStatus(enum.StrEnum):
    """Where a signer is in its life. Only an ACTIVE signer signs; RETIRED ones still verify."""

    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


class SignerRecord(Base):
    """A purpose-bound signer: its certificate and where its private key lives (never the key).

    The certificate is the source of truth for purpose and periods; the copies here make the
    registry searchable.
    """

    __tablename__ = "signers"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: First 8 bytes of SHA-256 over the certificate's DER, in hex (cardsys.pki.kid).
    kid: Mapped[str] = mapped_column(String(16), unique=True)
    purpose: Mapped[Purpose] = mapped_column(_enum(Purpose))
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    #: The certificate's serial number in hex (what the CRL lists).
    serial: Mapped[str] = mapped_column(String(42))
    store_kind: Mapped[KeyStoreKind] = mapped_column(_enum(KeyStoreKind, 8))
    key_ref: Mapped[str] = mapped_column(String(64))
    #: The private-key usage period: the months this key signs.
    usage_start: Mapped[datetime]
    usage_end: Mapped[datetime]
    not_after: Mapped[datetime]
    status: Mapped[SignerStatus] = mapped_column(_enum(SignerStatus, 8))
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[RevocationReason | None] = mapped_column(_enum(RevocationReason))

    __table_args__ = (Index("ix_signers_purpose_status", "purpose", "status"),)


class PkiState(Base):
    """The one row describing this instance's PKI: its root, the root's CRL, the trust list."""

    __tablename__ = "pki_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_certificate: Mapped[bytes] = mapped_column(LargeBinary)
    root_kid: Mapped[str] = mapped_column(String(16))
    root_store_kind: Mapped[KeyStoreKind] = mapped_column(_enum(KeyStoreKind, 8))
    root_key_ref: Mapped[str] = mapped_column(String(64))
    development: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    crl: Mapped[bytes] = mapped_column(LargeBinary)
    crl_number: Mapped[int] = mapped_column(BigInteger)
    crl_next_update: Mapped[datetime]
    #: Sequence number of the last trust list exported (0: none yet) and that document.
    trust_list_sequence: Mapped[int] = mapped_column(BigInteger)
    trust_list: Mapped[bytes | None] = mapped_column(LargeBinary)
    trust_list_issued_at: Mapped[datetime | None]


# --- chip personalization: the bureau's crash-safe record (owned by issuance/personalize.py) ---


class ChipRecordState(enum.StrEnum):
    """Where a card's chip is between writing and the lifecycle step."""

    #: Written and checked (AA answers with the recorded key); the LOCK may not have happened.
    LOCK_PENDING = "lock-pending"
    #: Locked (or finished from the record, see `ChipCompletion`); the card is personalized.
    DONE = "done"


class ChipCompletion(enum.StrEnum):
    """How the lock of a recorded chip was established."""

    #: The batch sent LOCK and the card answered 9000.
    LOCKED = "locked"
    #: On resume the chip was in the reader and already locked (opened with its access key).
    FOUND_LOCKED = "found-locked"
    #: On resume the chip had left the reader; a bureau machine ejects only locked cards.
    FROM_RECORD = "from-record"


class ChipPersonalization(Base):
    """One card's chip as the bureau wrote it: committed BEFORE the chip is locked, so a crash
    at any point is finished on resume from here. Never holds the AA private key."""

    __tablename__ = "chip_personalizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: One chip per card and one card per chip: a resumed batch can neither personalize a
    #: card twice nor bind one chip to two cards.
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"), unique=True)
    chip_serial: Mapped[str] = mapped_column(String(32), unique=True)
    sod_sha256: Mapped[str] = mapped_column(String(64))
    #: SubjectPublicKeyInfo DER of the chip's Active Authentication key (DG15).
    aa_public_key: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[ChipRecordState] = mapped_column(_enum(ChipRecordState, 16))
    completion: Mapped[ChipCompletion | None] = mapped_column(_enum(ChipCompletion, 16))
    #: The moment the chip's data was fixed; the card's dates derive from it.
    written_at: Mapped[datetime]
    issue_date: Mapped[date] = mapped_column(Date)
    expiry_date: Mapped[date] = mapped_column(Date)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    #: The bureau machine (and reader) that wrote the chip: only it resumes the record, since
    #: only its reader can hold the chip; another machine's pending records are in flight.
    machine: Mapped[str] = mapped_column(String(64))
    finished_at: Mapped[datetime | None]

    card: Mapped[Card] = relationship(lazy="select")

    __table_args__ = (Index("ix_chip_personalizations_pending", "state", "machine"),)


# --- digital cards: activation codes and status-list publication (owned by issuance/digital.py
#     and issuance/status.py) ------------------------------------------------------------------


class ActivationCodeState(enum.StrEnum):
    """Where a one-time activation code is in its short life."""

    LIVE = "live"
    #: Redeemed: it provisioned `digital_card_id`.
    USED = "used"
    #: Dead after too many wrong tries.
    LOCKED = "locked"
    #: Past its expiry when someone tried it.
    EXPIRED = "expired"
    #: A newer code for the same card was made: one live code per card.
    REPLACED = "replaced"


class ActivationCode(Base):
    """A one-time code that lets a resident bind a phone to their active physical card.

    Only a salted SHA-256 of the code is kept; the code itself is shown once."""

    __tablename__ = "activation_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The physical card the code was made for.
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"))
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    code_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[ActivationCodeState] = mapped_column(_enum(ActivationCodeState, 16))
    #: Wrong tries so far (committed even though the try itself fails).
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime | None]
    #: The digital card it provisioned, once used.
    digital_card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"))

    __table_args__ = (
        # One live code per card, held by the database too.
        Index(
            "uq_activation_codes_live",
            "card_id",
            unique=True,
            sqlite_where=text("state = 'live'"),
            postgresql_where=text("state = 'live'"),
        ),
    )


class StatusListPublication(Base):
    """The signed Token Status List last published for one shard (served at
    `/public/status/<list_number>`). The row is also the lock that orders publications."""

    __tablename__ = "status_list_publications"

    list_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: The signed token (COSE_Sign1 CWT); None until the first publication.
    token: Mapped[bytes | None] = mapped_column(LargeBinary)
    issued_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    sha256: Mapped[str | None] = mapped_column(String(64))
    #: How many times the shard was published.
    revision: Mapped[int] = mapped_column(BigInteger)


class StatusListDirty(Base):
    """A shard whose cards changed since its last publication (marked in the changing
    transaction, cleared by the publisher that rebuilt it)."""

    __tablename__ = "status_list_dirty"

    list_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: Bumped by every mark, so a publisher clears only the marks it has seen.
    marks: Mapped[int] = mapped_column(BigInteger)
    marked_at: Mapped[datetime]


# --- JSON API: operator API tokens (owned by web/api/) -------------------------------------


class ApiToken(Base):
    """A bearer token an operator's program uses on `/api/v1`, acting as that operator.

    The token is 256 random bits shown once; only its SHA-256 is stored. A fast hash is enough
    here (unlike passwords): nobody can search a 256-bit space, so there is nothing for a slow
    hash to slow down, and the digest is looked up through a unique index on every request.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: The token's first characters, so its owner can tell tokens apart (not a secret).
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    #: Written at most once a minute, so reading does not write on every request.
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(64))

    operator: Mapped[Operator] = relationship(lazy="joined")
