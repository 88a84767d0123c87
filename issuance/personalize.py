"""Chip personalization: approved physical cards written onto blank chips, in crash-safe batches.

For one card, `chip_holder` builds what the chip carries from the database (the resident, the
portrait as a JPEG of at most `PORTRAIT_LIMIT` bytes, the card number, the dates from
`issuance.cards.card_dates`, and the card's status-list slot, which goes into the signed
DG11), and `cardsys.chip.perso.prepare` adds a fresh Active Authentication key and the SOD
signed by the active CHIP_DOCUMENT signer. The AA private key lives only in that in-memory
value and on the chip: it is never stored, logged, put in an exception message or written to
a batch file.

`Bureau.run(n)` is the batch of a bureau machine. For each of the next `n` approved cards of
the operator's office, in order, skipping none:

1. prepare (the card's dates, fixed here once; data, AA key, SOD);
2. write the blank chip in the reader through APDUs (erased first, so a chip whose earlier
   writing was interrupted is simply re-used) and check that it answers INTERNAL
   AUTHENTICATE with the new key;
3. RECORD, committed: chip serial, SOD hash, AA public key, the card's dates, state
   "lock pending" (`ChipPersonalization`, unique per card and per chip serial);
4. LOCK the chip;
5. finish the lifecycle step in one transaction: the record DONE, the card PERSONALIZED
   (`issuance.cards.personalize` with the recorded dates, the ones the chip holds; its audit
   event, at the time of the step, names the chip serial and SOD hash).

Resuming after a crash (a batch starts by finishing every "lock pending" record that its machine
left in its office):

* crash before 3: nothing was recorded; the chip in the reader is unlocked and bound to no
  card, so the next card (the same one) erases and re-uses it;
* crash between 3 and 4: the record is finished. If the recorded chip is in the reader and
  unlocked, we check that it holds the recorded SOD and AA key and LOCK it; if it is in the
  reader and locked (its access key opens it), the LOCK went through; if it is not in the
  reader, we finish from the record (`ChipCompletion.FROM_RECORD`): a bureau machine (and the
  emulator's hopper) ejects a card only once it is locked, so a chip gone from the reader was
  locked; and should one ever be found unlocked, it is worthless at a terminal (an unlocked
  chip opens only with the bureau's transport key, never with the card's access key) and
  bound to this card alone by its serial, SOD and AA key;
* crash between 4 and 5: as above; the chip is either still in the reader, locked, or gone.

A card whose status changed while its chip was being written (revoked meanwhile) gets its
record closed with an audit event `card:chip:void` and no lifecycle step.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from sqlalchemy import Insert, Table, bindparam, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, lazyload, selectinload

from cardsys import audit
from cardsys.access import require_role
from cardsys.chip import perso
from cardsys.chip.bac import AccessKey
from cardsys.chip.lds import ChipHolder
from cardsys.chip.station import ChipPresence, ChipStation, Probe, ReaderStation
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import ChipError, ConflictError, ReaderError, ValidationError
from cardsys.lifecycle import Action, CardKind, CardStatus
from cardsys.models import (
    Card,
    ChipCompletion,
    ChipPersonalization,
    ChipRecordState,
    Operator,
    Resident,
)
from cardsys.pki import Signer, usage_period
from issuance import cards, operators
from issuance.cards import CardDates, card_dates

__all__ = [
    "PORTRAIT_LIMIT",
    "BatchResult",
    "Bureau",
    "CardDates",
    "ChipPresence",
    "ChipStation",
    "HolderTemplate",
    "Probe",
    "ReaderStation",
    "SignerSource",
    "card_dates",
    "chip_holder",
    "holder_template",
    "portrait_jpeg",
]

log = logging.getLogger(__name__)

#: The most bytes of portrait a chip carries (DG2): reads stay fast and cards small.
PORTRAIT_LIMIT = 15_000
#: The largest portrait in pixels (width, height): ICAO-like head-and-shoulders at ~300 dpi.
PORTRAIT_BOX = (420, 540)
#: Photos larger than this (in pixels) are refused before decoding (decompression bombs).
MAX_PHOTO_PIXELS = 40_000_000
_JPEG = b"\xff\xd8\xff"

#: Gives the key that signs SODs at `now`, e.g. `keys.ceremony.active_signer` bound to a store.
SignerSource = Callable[[Session, datetime], Signer]


# --- what the chip carries ---------------------------------------------------------------------


def portrait_jpeg(photo: bytes, *, limit: int = PORTRAIT_LIMIT) -> bytes:
    """The photo as a JPEG of at most `limit` bytes (kept as it is when it already is one).

    Raises:
        ValidationError: not an image Pillow can read, too large, or not reducible to `limit`.
    """
    if photo.startswith(_JPEG) and len(photo) <= limit:
        return photo
    from PIL import Image, UnidentifiedImageError  # imported here: only the bureau needs it

    try:
        source = Image.open(io.BytesIO(photo))
        width, height = source.size
        if width * height > MAX_PHOTO_PIXELS:
            raise ValidationError(f"the photo has too many pixels ({width}x{height})")
        source.draft("RGB", PORTRAIT_BOX)  # JPEG: decode at a reduced scale, much faster
        image = source.convert("RGB")
    except Image.DecompressionBombError:
        raise ValidationError("the photo has too many pixels") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ValidationError("the resident's photo is not a readable image") from None
    image.thumbnail(PORTRAIT_BOX)
    while min(image.size) >= 32:
        for quality in (85, 75, 65, 55, 45, 35):
            out = io.BytesIO()
            # A new encoding carries no metadata of the original (no EXIF, no GPS).
            image.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= limit:
                return out.getvalue()
        image = image.resize((image.width * 4 // 5, image.height * 4 // 5))
    raise ValidationError(f"the photo cannot be reduced to a {limit}-byte JPEG")


@dataclass(frozen=True)
class HolderTemplate:
    """A card's chip data from the database, all but the dates (fixed when it is written)."""

    card_number: str
    surname: str
    given_names: str
    sex: str
    birth_date: date
    id_number: str
    region: str
    schemes: tuple[str, ...]
    portrait: bytes
    issuer: str
    status_list: int
    status_index: int

    def holder(self, dates: CardDates) -> ChipHolder:
        """The chip holder for a card written with these dates."""
        return ChipHolder(
            card_number=self.card_number,
            surname=self.surname,
            given_names=self.given_names,
            sex=self.sex,
            birth_date=self.birth_date,
            expiry_date=dates.expiry,
            id_number=self.id_number,
            region=self.region,
            schemes=self.schemes,
            portrait=self.portrait,
            issuer=self.issuer,
            status_list=self.status_list,
            status_index=self.status_index,
        )


def holder_template(
    card: Card, settings: Settings, portraits: MutableMapping[str, bytes] | None = None
) -> HolderTemplate:
    """What the chip of `card` carries, from the database (see `chip_holder`).

    Args:
        portraits: chip portraits already made, by the photo's SHA-256 (a photo is stored once
            however many cards show it, so a batch reduces each one once); filled in here.
    """
    if card.kind is not CardKind.PHYSICAL:
        raise ValidationError(f"card {card.number} is not a physical card")
    resident = card.resident
    if resident.photo is None:
        raise ValidationError(
            f"resident {resident.id_number} has no photo: card {card.number} cannot get a chip"
        )
    if card.status_list is None or card.status_index is None:
        raise ValidationError(f"card {card.number} has no status-list slot")
    photo = resident.photo
    portrait = portraits.get(photo.sha256) if portraits is not None else None
    if portrait is None:
        portrait = portrait_jpeg(photo.content)
        if portraits is not None:
            portraits[photo.sha256] = portrait
    return HolderTemplate(
        card_number=card.number,
        surname=resident.surname,
        given_names=resident.given_names,
        sex=resident.sex.value,
        birth_date=resident.birth_date,
        id_number=resident.id_number,
        region=resident.region,
        schemes=tuple(resident.schemes.split()),
        portrait=portrait,
        issuer=settings.issuer,
        status_list=card.status_list,
        status_index=card.status_index,
    )


def chip_holder(card: Card, dates: CardDates, settings: Settings) -> ChipHolder:
    """What the chip of `card` carries, from the database.

    Raises:
        ValidationError: not a physical card, no photo, or no status-list slot.
    """
    return holder_template(card, settings).holder(dates)


# --- the batch ----------------------------------------------------------------------------------

# Core statements of the batch's journal, built once and run on the session's connection: they
# run twice a card, and an ORM unit of work (or a statement rebuilt per call) costs several
# times the database's own work. None of them depends on pending ORM changes.
_CARDS = cast(Table, Card.__table__)
_RESIDENTS = cast(Table, Resident.__table__)
_RECORDS = cast(Table, ChipPersonalization.__table__)
_CARD_STATUS = select(_CARDS.c.status).where(_CARDS.c.id == bindparam("card_id"))
# What the lifecycle step's checks read: a card's version moves with every change of its row.
_LOCK_CARD = (
    select(_CARDS.c.version, _CARDS.c.status, _RESIDENTS.c.office_id)
    .join(_RESIDENTS, _RESIDENTS.c.id == _CARDS.c.resident_id)
    .where(_CARDS.c.id == bindparam("card_id"))
    .with_for_update(of=_CARDS)
)
_CLOSE_RECORD = (
    update(_RECORDS)
    .where(
        _RECORDS.c.id == bindparam("record_id"),
        _RECORDS.c.state == ChipRecordState.LOCK_PENDING,
    )
    .values(
        state=ChipRecordState.DONE,
        completion=bindparam("how"),
        finished_at=bindparam("at"),
    )
)
_RECORD_OF_CHIP = select(_RECORDS.c.id).where(_RECORDS.c.chip_serial == bindparam("serial"))


#: What a chip record holds besides its card (the values are bound per record).
_RECORD_VALUES = (
    "chip_serial", "sod_sha256", "aa_public_key", "state", "written_at", "issue_date",
    "expiry_date", "operator_id", "machine",
)  # fmt: skip


def _record_insert(dialect: str) -> Insert:
    """INSERT of a chip record for a card that is still approved, in one statement: it yields
    no id when the card is not approved any more, or already has a record (another machine
    recorded it first). A chip serial recorded twice still fails (DuplicateError)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    source = select(
        _CARDS.c.id, *(bindparam(name, type_=_RECORDS.c[name].type) for name in _RECORD_VALUES)
    ).where(_CARDS.c.id == bindparam("card_id"), _CARDS.c.status == CardStatus.APPROVED)
    return (
        insert(_RECORDS)
        .from_select(["card_id", *_RECORD_VALUES], source)
        .on_conflict_do_nothing(index_elements=[_RECORDS.c.card_id])
        .returning(_RECORDS.c.id)
    )


@dataclass(frozen=True)
class BatchResult:
    """One card the batch finished."""

    card_number: str
    chip_serial: str
    completion: ChipCompletion
    #: True when the card was finished from a record an interrupted batch left.
    resumed: bool
    #: False when the card's status changed meanwhile and its chip was voided.
    personalized: bool = True


@dataclass(frozen=True)
class _Job:
    """An approved card planned for this run, with its chip data or why it has none."""

    #: Held here so that it stays in the run's session (whose identity map keeps only what is
    #: referenced) until its lifecycle step.
    card: Card
    template: HolderTemplate | None
    problem: ValidationError | None

    @property
    def card_id(self) -> int:
        return self.card.id

    @property
    def number(self) -> str:
        return self.card.number


@dataclass(frozen=True)
class _Written:
    """A recorded chip, as its record says."""

    record_id: int
    card_id: int
    serial: str
    sod_sha256: str
    aa_public_key: bytes
    written_at: datetime
    dates: CardDates


class Bureau:
    """The batch of a personalization machine (steps and crash recovery: module docstring).

    A run plans its work in one read (this machine's pending records, then the office's next
    approved cards with their chip data) and then commits twice a card: the record, and the
    lifecycle step. The acting operator is checked when a run is planned.

    A run keeps one database session: what the plan loaded (cards, residents, the operator)
    stays loaded across the per-card commits, so the lifecycle step re-reads only what it must
    lock and check (the card's version, status and office). Every step commits before the
    batch goes back to the reader: no database lock is held while a chip is written.

    `machine` names the bureau machine and its reader. Only that machine resumes its records:
    another machine's pending record is in flight (written, about to be locked), and only the
    reader that wrote a chip can hold it. To finish the records of a machine that is gone for
    good, run a batch under its name. Several machines may share an office's queue: when two
    write the same card, the first record wins and the other machine re-uses its chip.
    """

    def __init__(
        self,
        database: Database,
        station: ChipStation,
        *,
        operator: str,
        machine: str,
        settings: Settings,
        signers: SignerSource,
        clock: Callable[[], datetime],
        wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._db = database
        self._station = station
        self._login = operator
        if not 1 <= len(machine) <= 64:
            raise ValidationError("a bureau machine name is 1 to 64 characters")
        self._machine = machine
        self._settings = settings
        self._signers = signers
        self._clock = clock
        self._wait = wait
        self._sleep = sleep
        self._insert_record = _record_insert(database.dialect)
        self._signer: Signer | None = None
        self._signer_period: tuple[datetime, datetime] | None = None
        self._operator: Operator | None = None
        self._session: Session | None = None

    def run(
        self, count: int, *, progress: Callable[[BatchResult], None] | None = None
    ) -> list[BatchResult]:
        """Finish pending records, then personalize approved cards: `count` in all (fewer when
        the office has no more approved cards)."""
        if count <= 0:
            raise ValidationError("a batch has at least one card")
        if count > self._settings.batch_size:
            raise ValidationError(f"a batch has at most {self._settings.batch_size} cards")
        results: list[BatchResult] = []

        def done(result: BatchResult | None) -> None:
            if result is not None:
                results.append(result)
                if progress is not None:
                    progress(result)

        # The run's session: `transaction` rolls back what is not committed yet and maps
        # database errors when anything fails; each step below commits its own work.
        with self._db.transaction() as session:
            self._session = session
            try:
                while len(results) < count:
                    pending, jobs = self._plan(count - len(results))
                    if not pending and not jobs:
                        break
                    for record_id in pending:
                        done(self._resume(record_id))
                    for job in jobs:
                        if len(results) >= count:
                            break
                        if job.problem is not None:
                            raise job.problem
                        assert job.template is not None
                        done(self._personalize(job, job.template))
            finally:
                self._session = None
        return results

    @contextlib.contextmanager
    def _step(self) -> Iterator[Session]:
        """One transaction of the run's session, committed when the block ends without error
        (an error ends the run, and the run's `transaction` rolls the step back)."""
        if self._session is None:
            raise ChipError("a batch step runs only inside `run`")
        yield self._session
        self._session.commit()

    # --- one card ----------------------------------------------------------------------------

    def _personalize(self, job: _Job, template: HolderTemplate) -> BatchResult | None:
        serial = self._blank_chip()
        now = self._clock()
        # The dates are fixed here, once: DG1 carries the expiry, the record and the card both.
        dates = card_dates(now, self._settings)
        prepared = perso.prepare(template.holder(dates), self._signer_for(now), signing_time=now)
        sod_sha256 = hashlib.sha256(prepared.sod).hexdigest()
        aa_public_key = prepared.aa_public_key_info
        self._station.write(prepared, serial)
        del prepared  # the AA private key is on the chip now; keep no reference to it
        written = self._record(job, serial, sod_sha256, aa_public_key, now, dates)
        if written is None:
            return None
        self._station.lock()
        return self._finish(written, ChipCompletion.LOCKED, resumed=False)

    def _resume(self, record_id: int) -> BatchResult:
        with self._step() as session:
            record = self._load_record(session, record_id)
            written = _Written(
                record.id,
                record.card_id,
                record.chip_serial,
                record.sod_sha256,
                record.aa_public_key,
                record.written_at,
                CardDates(record.issue_date, record.expiry_date),
            )
            access = AccessKey(
                record.card.number, record.card.resident.birth_date, record.expiry_date
            )
        serial = written.serial
        probe = self._station.probe()
        if probe.presence is ChipPresence.OPEN and probe.serial == serial:
            self._station.check_and_lock(
                serial,
                sod_sha256=bytes.fromhex(written.sod_sha256),
                aa_public_key=written.aa_public_key,
            )
            completion = ChipCompletion.LOCKED
        elif probe.presence is ChipPresence.LOCKED and self._station.opens(access) == serial:
            completion = ChipCompletion.FOUND_LOCKED
        else:
            completion = ChipCompletion.FROM_RECORD
        log.info("resumed chip %s: %s", serial, completion.value)
        return self._finish(written, completion, resumed=True)

    def _blank_chip(self) -> str:
        """The serial of an unlocked chip in the reader that no card is bound to (waiting up
        to `wait` seconds for one)."""
        deadline = time.monotonic() + self._wait
        while True:
            probe = self._station.probe()
            if probe.presence is ChipPresence.OPEN and probe.serial is not None:
                bound = self._record_of_chip(probe.serial) if probe.written else None
                if bound is None:
                    return probe.serial
                self._relock(bound)
                continue
            if time.monotonic() >= deadline:
                found = "a locked card" if probe.presence is ChipPresence.LOCKED else "no card"
                raise ReaderError(f"the reader holds {found}: put a blank card in")
            self._sleep(0.2)

    def _relock(self, record_id: int) -> None:
        """A recorded chip came back into the reader unlocked: check it and lock it."""
        with self._step() as session:
            record = self._load_record(session, record_id)
            if record.state is ChipRecordState.LOCK_PENDING:
                raise ReaderError(
                    f"chip {record.chip_serial} in the reader belongs to another batch's card"
                )
            serial, sod_hex, key = record.chip_serial, record.sod_sha256, record.aa_public_key
        self._station.check_and_lock(serial, sod_sha256=bytes.fromhex(sod_hex), aa_public_key=key)
        with self._step() as session:
            self._load_record(session, record_id).completion = ChipCompletion.LOCKED
        log.warning("chip %s was finished from its record and came back unlocked: locked", serial)

    # --- the database --------------------------------------------------------------------------

    def _plan(self, count: int) -> tuple[list[int], list[_Job]]:
        """The office's pending records, then its next approved cards with their chip data."""
        with self._step() as session:
            # Each plan reads afresh (the operator may have been deactivated meanwhile): the
            # run's session would otherwise hand back what an earlier plan loaded, unchanged.
            session.expire_all()
            actor = operators.get_operator(session, self._login)
            require_role(actor, *cards.ACTION_ROLES[Action.PERSONALIZE])
            self._operator = actor
            pending = list(
                session.scalars(
                    select(ChipPersonalization.id)
                    .join(Card, Card.id == ChipPersonalization.card_id)
                    .where(
                        ChipPersonalization.state == ChipRecordState.LOCK_PENDING,
                        ChipPersonalization.machine == self._machine,
                        Card.office_id == actor.office_id,
                    )
                    .order_by(ChipPersonalization.id)
                    .limit(count)
                )
            )
            recorded = exists().where(ChipPersonalization.card_id == Card.id)
            approved = session.scalars(
                select(Card)
                .where(
                    Card.kind == CardKind.PHYSICAL,
                    Card.status == CardStatus.APPROVED,
                    Card.office_id == actor.office_id,
                    ~recorded,
                )
                # The resident's office row is not needed (its id is): not loaded.
                .options(
                    selectinload(Card.resident).options(
                        lazyload(Resident.office), selectinload(Resident.photo)
                    )
                )
                .order_by(Card.id)
                .limit(count - len(pending))
            ).all()
            portraits: dict[str, bytes] = {}
            return pending, [self._job(card, portraits) for card in approved]

    def _job(self, card: Card, portraits: dict[str, bytes]) -> _Job:
        try:
            template, problem = holder_template(card, self._settings, portraits), None
        except ValidationError as exc:
            template, problem = None, exc
        return _Job(card, template, problem)

    def _actor(self) -> Operator:
        """The operator checked when the run was planned."""
        if self._operator is None:
            raise ChipError("a batch run acts only after it was planned")
        return self._operator

    def _record_of_chip(self, serial: str) -> int | None:
        with self._step() as session:
            return session.execute(_RECORD_OF_CHIP, {"serial": serial}).scalar()

    @staticmethod
    def _load_record(session: Session, record_id: int) -> ChipPersonalization:
        # populate_existing: a record this run loaded before may have been closed since.
        record = session.get(
            ChipPersonalization, record_id, with_for_update=True, populate_existing=True
        )
        if record is None:
            raise ChipError(f"personalization record {record_id} vanished")
        return record

    def _signer_for(self, now: datetime) -> Signer:
        """The active chip-document signer, looked up once and again only when `now` leaves
        its usage period (a lookup checks the certificate chain: too slow per card)."""
        period = self._signer_period
        if self._signer is not None and period is not None and period[0] <= now <= period[1]:
            return self._signer
        # A session of its own: the keys' state (CRL, signer records) read afresh, and the
        # run's session left as it is. Between steps the run's session holds no transaction,
        # so on SQLite this one does not wait for it.
        if self._session is not None and self._session.in_transaction():
            raise ChipError("the signer is looked up between a batch's steps, not inside one")
        with self._db.transaction() as session:
            signer = self._signers(session, now)
        self._signer, self._signer_period = signer, usage_period(signer.certificate)
        return signer

    def _record(
        self,
        job: _Job,
        serial: str,
        sod_sha256: str,
        aa_public_key: bytes,
        now: datetime,
        dates: CardDates,
    ) -> _Written | None:
        """Commit the record of a written chip (None when the card is no longer approved, or
        another machine recorded it first: our chip then stays unlocked and unbound, and is
        erased and re-used for the next card).

        The record is the batch's journal, not yet a change of the card: its audit event is
        the lifecycle step's (`card:status:personalize`, with chip serial and SOD hash), or
        `card:chip:void`, written when the record is closed.
        """
        with self._step() as session:
            journal = session.connection()
            record_id = journal.execute(
                self._insert_record,
                {
                    "card_id": job.card_id,
                    "chip_serial": serial,
                    "sod_sha256": sod_sha256,
                    "aa_public_key": aa_public_key,
                    "state": ChipRecordState.LOCK_PENDING,
                    "written_at": now,
                    "issue_date": dates.issue,
                    "expiry_date": dates.expiry,
                    "operator_id": self._actor().id,
                    "machine": self._machine,
                },
            ).scalar()
            if record_id is None:
                status = journal.execute(_CARD_STATUS, {"card_id": job.card_id}).scalar()
        if record_id is None:
            if status is CardStatus.APPROVED:
                why = "was recorded by another batch"
            else:
                why = "changed while its chip was written"
            log.warning("card %s %s; chip %s re-used", job.number, why, serial)
            return None
        return _Written(record_id, job.card_id, serial, sod_sha256, aa_public_key, now, dates)

    def _finish(
        self, written: _Written, completion: ChipCompletion, *, resumed: bool
    ) -> BatchResult:
        """Close the record and take the lifecycle step, in one transaction."""
        finished_at = self._clock()
        with self._step() as session:
            actor = self._actor()
            card = self._locked_card(session, written.card_id)
            close = {"record_id": written.record_id, "how": completion, "at": finished_at}
            if session.connection().execute(_CLOSE_RECORD, close).rowcount != 1:
                raise ConflictError(f"the chip record of card {card.number} was already closed")
            if card.status is not CardStatus.APPROVED:
                audit.record(
                    session, at=finished_at, actor=actor.login, office=card.office.code,
                    tag="card:chip:void", subject=card.number,
                    details={"chip_serial": written.serial, "card_status": card.status.value},
                )  # fmt: skip
                return BatchResult(card.number, written.serial, completion, resumed, False)
            chip = cards.ChipRecord(written.serial, written.sod_sha256, written.aa_public_key)
            # The dates fixed when the chip was written (DG1 holds them); the step itself, and
            # its audit event, happen now.
            cards.personalize(
                session, actor, card, now=finished_at, settings=self._settings,
                dates=written.dates, chip=chip,
            )  # fmt: skip
            return BatchResult(card.number, written.serial, completion, resumed)

    @staticmethod
    def _locked_card(session: Session, card_id: int) -> Card:
        """The card with its row locked until the step commits, as the database has it now.

        The copy this run loaded is used as it is unless the card's version, status or
        resident's office moved since (every change of a card's row bumps its version);
        otherwise the card is read again.
        """
        card = session.get(Card, card_id)  # no query when this run planned the card
        row = session.connection().execute(_LOCK_CARD, {"card_id": card_id}).first()
        if card is None or row is None:
            raise ChipError(f"card {card_id} vanished")
        loaded = (card.version, card.status, card.resident.office_id)
        if (row.version, row.status, row.office_id) != loaded:
            # OF cards: PostgreSQL locks no row on the nullable side of the eager outer joins.
            card = session.get(
                Card, card_id, with_for_update={"of": Card}, populate_existing=True
            )
            if card is None:
                raise ChipError(f"card {card_id} vanished")
        return card
