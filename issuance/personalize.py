"""Chip personalization: approved physical cards written onto blank chips, in crash-safe batches.

For one card, `chip_holder` builds what the chip carries from the database (the resident, the
portrait as a JPEG of at most `PORTRAIT_LIMIT` bytes, the card number, the dates from
`card_dates`, and the card's status-list slot, which goes into the signed DG11), and
`cardsys.chip.perso.prepare` adds a fresh Active Authentication key and the SOD signed by the
active CHIP_DOCUMENT signer. The AA private key lives only in that in-memory value and on the
chip: it is never stored, logged, put in an exception message or written to a batch file.

`Bureau.run(n)` is the batch of a bureau machine. For each of the next `n` approved cards of
the operator's office, in order, skipping none:

1. prepare (data, AA key, SOD);
2. write the blank chip in the reader through APDUs (erased first, so a chip whose earlier
   writing was interrupted is simply re-used) and check that it answers INTERNAL
   AUTHENTICATE with the new key;
3. RECORD, committed: chip serial, SOD hash, AA public key, the card's dates, state
   "lock pending" (`ChipPersonalization`, unique per card and per chip serial);
4. LOCK the chip;
5. finish the lifecycle step in one transaction: the record DONE, the card PERSONALIZED
   (`issuance.cards.personalize`, whose audit event names the chip serial and SOD hash).

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

import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import exists, insert, select, update
from sqlalchemy.orm import Session, selectinload

from cardsys import audit
from cardsys.access import require_role
from cardsys.chip import perso
from cardsys.chip.bac import AccessKey
from cardsys.chip.lds import ChipHolder
from cardsys.chip.station import ChipPresence, ChipStation, Probe, ReaderStation
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import ChipError, ConflictError, DuplicateError, ReaderError, ValidationError
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


@dataclass(frozen=True)
class CardDates:
    """A card's issue and expiry dates, fixed once when its chip is written."""

    issue: date
    expiry: date


def card_dates(now: datetime, settings: Settings) -> CardDates:
    """The dates a card personalized at `now` gets: the one place they are computed.

    They are the same `issuance.cards.personalize` sets for `now`, which the batch calls with
    the recorded moment of writing; the chip's DG1 carries the expiry.
    """
    issue = now.date()
    return CardDates(issue, cards.add_years(issue, settings.card_validity_years))


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


def holder_template(card: Card, settings: Settings) -> HolderTemplate:
    """What the chip of `card` carries, from the database (see `chip_holder`)."""
    if card.kind is not CardKind.PHYSICAL:
        raise ValidationError(f"card {card.number} is not a physical card")
    resident = card.resident
    if resident.photo is None:
        raise ValidationError(
            f"resident {resident.id_number} has no photo: card {card.number} cannot get a chip"
        )
    if card.status_list is None or card.status_index is None:
        raise ValidationError(f"card {card.number} has no status-list slot")
    return HolderTemplate(
        card_number=card.number,
        surname=resident.surname,
        given_names=resident.given_names,
        sex=resident.sex.value,
        birth_date=resident.birth_date,
        id_number=resident.id_number,
        region=resident.region,
        schemes=tuple(resident.schemes.split()),
        portrait=portrait_jpeg(resident.photo.content),
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

    card_id: int
    number: str
    office: str
    template: HolderTemplate | None
    problem: ValidationError | None


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
    approved cards with their chip data) and then needs two commits per card: the record, and
    the lifecycle step. The acting operator is checked when a run is planned.

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
        self._signer: Signer | None = None
        self._operator: Operator | None = None

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
        return results

    # --- one card ----------------------------------------------------------------------------

    def _personalize(self, job: _Job, template: HolderTemplate) -> BatchResult | None:
        serial = self._blank_chip()
        now = self._clock()
        dates = card_dates(now, self._settings)
        prepared = perso.prepare(template.holder(dates), self._signer_for(now), signing_time=now)
        sod_sha256 = hashlib.sha256(prepared.sod).hexdigest()
        aa_public_key = prepared.aa_public_key_info
        self._station.write(prepared, serial)
        del prepared  # the AA private key is on the chip now; keep no reference to it
        try:
            written = self._record(job, serial, sod_sha256, aa_public_key, now, dates)
        except DuplicateError:
            # Another machine recorded this card first: our chip stays unlocked and unbound,
            # and is erased and re-used for the next card.
            log.warning(
                "card %s was recorded by another batch; chip %s re-used", job.number, serial
            )
            return None
        if written is None:
            return None
        self._station.lock()
        return self._finish(written, ChipCompletion.LOCKED, resumed=False)

    def _resume(self, record_id: int) -> BatchResult:
        with self._db.transaction() as session:
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
        with self._db.transaction() as session:
            record = self._load_record(session, record_id)
            if record.state is ChipRecordState.LOCK_PENDING:
                raise ReaderError(
                    f"chip {record.chip_serial} in the reader belongs to another batch's card"
                )
            serial, sod_hex, key = record.chip_serial, record.sod_sha256, record.aa_public_key
        self._station.check_and_lock(serial, sod_sha256=bytes.fromhex(sod_hex), aa_public_key=key)
        with self._db.transaction() as session:
            self._load_record(session, record_id).completion = ChipCompletion.LOCKED
        log.warning("chip %s was finished from its record and came back unlocked: locked", serial)

    # --- the database --------------------------------------------------------------------------

    def _plan(self, count: int) -> tuple[list[int], list[_Job]]:
        """The office's pending records, then its next approved cards with their chip data."""
        with self._db.transaction() as session:
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
                .options(selectinload(Card.resident).selectinload(Resident.photo))
                .order_by(Card.id)
                .limit(count - len(pending))
            ).all()
            return pending, [self._job(card) for card in approved]

    def _job(self, card: Card) -> _Job:
        try:
            template, problem = holder_template(card, self._settings), None
        except ValidationError as exc:
            template, problem = None, exc
        return _Job(card.id, card.number, card.office.code, template, problem)

    def _actor(self, session: Session | None = None) -> Operator:
        """The operator checked when the run was planned (merged into `session`, unloaded)."""
        if self._operator is None:
            raise ChipError("a batch run acts only after it was planned")
        return self._operator if session is None else session.merge(self._operator, load=False)

    def _record_of_chip(self, serial: str) -> int | None:
        with self._db.transaction() as session:
            return session.scalar(
                select(ChipPersonalization.id).where(ChipPersonalization.chip_serial == serial)
            )

    @staticmethod
    def _load_record(session: Session, record_id: int) -> ChipPersonalization:
        record = session.get(ChipPersonalization, record_id, with_for_update=True)
        if record is None:
            raise ChipError(f"personalization record {record_id} vanished")
        return record

    def _signer_for(self, now: datetime) -> Signer:
        """The active chip-document signer, looked up once and again only when `now` leaves
        its usage period (a lookup checks the certificate chain: too slow per card)."""
        signer = self._signer
        if signer is not None:
            period = usage_period(signer.certificate)
            if period is not None and period[0] <= now <= period[1]:
                return signer
        with self._db.transaction() as session:
            self._signer = self._signers(session, now)
        return self._signer

    def _record(
        self,
        job: _Job,
        serial: str,
        sod_sha256: str,
        aa_public_key: bytes,
        now: datetime,
        dates: CardDates,
    ) -> _Written | None:
        """Commit the record of a written chip (None when the card is no longer approved).

        The record is the batch's journal, not yet a change of the card: its audit event is
        the lifecycle step's (`card:status:personalize`, with chip serial and SOD hash), or
        `card:chip:void`, written when the record is closed.
        """
        with self._db.transaction() as session:
            status = session.scalar(
                select(Card.status).where(Card.id == job.card_id).with_for_update()
            )
            if status is not CardStatus.APPROVED:
                log.warning(
                    "card %s changed while its chip was written; chip %s re-used",
                    job.number,
                    serial,
                )
                return None
            record_id = session.scalar(
                insert(ChipPersonalization)
                .values(
                    card_id=job.card_id,
                    chip_serial=serial,
                    sod_sha256=sod_sha256,
                    aa_public_key=aa_public_key,
                    state=ChipRecordState.LOCK_PENDING,
                    completion=None,
                    written_at=now,
                    issue_date=dates.issue,
                    expiry_date=dates.expiry,
                    operator_id=self._actor().id,
                    machine=self._machine,
                    finished_at=None,
                )
                .returning(ChipPersonalization.id)
            )
        if record_id is None:
            raise ChipError(f"the chip record of card {job.number} was not stored")
        return _Written(record_id, job.card_id, serial, sod_sha256, aa_public_key, now, dates)

    def _finish(
        self, written: _Written, completion: ChipCompletion, *, resumed: bool
    ) -> BatchResult:
        """Close the record and take the lifecycle step, in one transaction."""
        finished_at = self._clock()
        with self._db.transaction() as session:
            actor = self._actor(session)
            # OF cards: PostgreSQL locks no row on the nullable side of the eager outer joins.
            card = session.get(Card, written.card_id, with_for_update={"of": Card})
            if card is None:
                raise ChipError(f"card {written.card_id} vanished")
            closed = session.scalar(
                update(ChipPersonalization)
                .where(
                    ChipPersonalization.id == written.record_id,
                    ChipPersonalization.state == ChipRecordState.LOCK_PENDING,
                )
                .values(state=ChipRecordState.DONE, completion=completion, finished_at=finished_at)
                .returning(ChipPersonalization.id)
            )
            if closed is None:
                raise ConflictError(f"the chip record of card {card.number} was already closed")
            if card.status is not CardStatus.APPROVED:
                audit.record(
                    session, at=finished_at, actor=actor.login, office=card.office.code,
                    tag="card:chip:void", subject=card.number,
                    details={"chip_serial": written.serial, "card_status": card.status.value},
                )  # fmt: skip
                return BatchResult(card.number, written.serial, completion, resumed, False)
            chip = cards.ChipRecord(written.serial, written.sod_sha256, written.aa_public_key)
            # The moment the chip was written fixes the card's dates (the same ones DG1 holds).
            cards.personalize(
                session, actor, card, now=written.written_at, settings=self._settings, chip=chip
            )
            dates = written.dates
            if (card.issue_date, card.expiry_date) != (dates.issue, dates.expiry):
                # Only when card_validity_years changed between writing and a resume: the
                # locked chip is what the holder carries, so its dates win.
                card.issue_date, card.expiry_date = dates.issue, dates.expiry
            return BatchResult(card.number, written.serial, completion, resumed)
