"""Personalization service and bureau batch, in-process: emulated cards fed by a hopper, no PC/SC.

Crashes are simulated by an exception thrown from the reader (before a command reaches the
card, or after the card processed it and before its answer comes back) or from the clock (just
before the lifecycle step); the real SIGKILL through pcscd is in tests/integration/chip.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image
from sqlalchemy import func, select

from cardsys.chip import aa, lds, sod
from cardsys.chip.bac import AccessKey
from cardsys.chip.emulator import Card, CardState
from cardsys.chip.terminal import ChipSession
from cardsys.chip.vpcd import BlankHopper
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import (
    ChipError,
    NotFoundError,
    PermissionDeniedError,
    ReaderError,
    ValidationError,
)
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import AuditEvent, ChipCompletion, ChipPersonalization, ChipRecordState
from cardsys.pki import Purpose, Signer
from issuance import cards
from issuance.personalize import (
    PORTRAIT_LIMIT,
    BatchResult,
    Bureau,
    ChipPresence,
    Probe,
    ReaderStation,
    card_dates,
    chip_holder,
    portrait_jpeg,
)
from keys.ephemeral import ephemeral_pki
from tests.factories import audit_tags, card
from tests.fixtures.pcsc import (
    TRANSPORT_KEY,
    approved_cards,
    bureau_settings,
    photo_jpeg,
    sample_holder,
)

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


class Crash(BaseException):
    """A simulated power cut: not an Exception, so nothing on the way catches it."""


@dataclass
class HopperReader:
    """A reader with a blank-card hopper, in-process: ejects each card once it is locked."""

    hopper: BlankHopper
    card: Card = field(init=False)
    ejected: list[Card] = field(default_factory=list)
    apdus: int = 0
    #: Called with (APDU number, command, answer or None) and may raise `Crash`.
    watch: Callable[[int, bytes, bytes | None], None] | None = None

    def __post_init__(self) -> None:
        self.card = self.hopper.take()

    def connect(self) -> HopperReader:
        return self

    def transmit(self, command: bytes) -> bytes:
        self.apdus += 1
        if self.watch is not None:
            self.watch(self.apdus, command, None)
        was_locked = self.card.state is CardState.LOCKED
        answer = self.card.process(command)
        if not was_locked and self.card.state is CardState.LOCKED:
            self.ejected.append(self.card)
            self.card = self.hopper.take()
        if self.watch is not None:
            self.watch(self.apdus, command, answer)
        return answer

    def all_cards(self) -> list[Card]:
        return [*self.ejected, self.card]


@pytest.fixture(scope="module")
def chip_signer() -> Signer:
    return ephemeral_pki(NOW - timedelta(days=1)).signers[Purpose.CHIP_DOCUMENT]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return bureau_settings(tmp_path / "instance")


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = Database.from_settings(settings)
    yield db
    db.dispose()


@pytest.fixture
def reader(tmp_path: Path) -> HopperReader:
    return HopperReader(BlankHopper(tmp_path / "hopper", TRANSPORT_KEY))


def _bureau(
    database: Database,
    reader: HopperReader,
    settings: Settings,
    signer: Signer,
    login: str = "off-a.clerk",
    clock: Callable[[], datetime] = lambda: NOW,
    machine: str = "bureau-1",
) -> Bureau:
    return Bureau(
        database,
        ReaderStation(reader.connect, TRANSPORT_KEY),
        operator=login,
        machine=machine,
        settings=settings,
        signers=lambda session, now: signer,
        clock=clock,
        wait=0,
    )


# --- what the chip carries ---------------------------------------------------------------------


def test_card_dates_are_the_ones_the_lifecycle_step_sets(
    database: Database, settings: Settings
) -> None:
    staff, (number,) = approved_cards(database, settings, 1, now=NOW)
    moment = datetime(2032, 2, 29, 23, 30, tzinfo=UTC)  # a leap day: the expiry moves to 28 Feb
    dates = card_dates(moment, settings)
    with database.transaction() as session:
        personalized = cards.personalize(
            session, staff.clerk_in(session), card(session, number), now=moment, settings=settings
        )
        assert (personalized.issue_date, personalized.expiry_date) == (dates.issue, dates.expiry)
    assert str(dates.expiry) == "2042-02-28"


def test_dates_given_to_the_lifecycle_step_are_the_card_dates(
    database: Database, settings: Settings
) -> None:
    """Dates fixed before the step (the bureau's, when it wrote the chip) are the ones the card
    gets; the step and its audit event keep their own moment."""
    staff, (number,) = approved_cards(database, settings, 1, now=NOW)
    written = datetime(2031, 12, 31, 23, 59, 59, tzinfo=UTC)
    step = written + timedelta(seconds=2)  # the next day, and the next year
    fixed = cards.card_dates(written, settings)
    with database.transaction() as session:
        row = cards.personalize(
            session, staff.clerk_in(session), card(session, number), now=step,
            settings=settings, dates=fixed,
        )  # fmt: skip
        assert (row.issue_date, row.expiry_date) == (fixed.issue, fixed.expiry)
        assert row.status_changed_at == step
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.subject == number, AuditEvent.tag == "card:status:personalize"
            )
        ).one()
        assert event.at == step
        assert event.details["expiry"] == fixed.expiry.isoformat()
    assert fixed != cards.card_dates(step, settings)


@pytest.mark.parametrize("expiry_days", [0, -1])
def test_card_dates_refuse_an_expiry_not_after_the_issue(expiry_days: int) -> None:
    issue = NOW.date()
    with pytest.raises(ValidationError, match="cannot be issued"):
        cards.CardDates(issue, issue + timedelta(days=expiry_days))


def test_portrait_is_shrunk_to_a_clean_jpeg() -> None:
    source = Image.frombytes("RGB", (1200, 1600), bytes(range(256)) * 22500)
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker-secret"
    raw = io.BytesIO()
    source.save(raw, "PNG", exif=exif)
    out = portrait_jpeg(raw.getvalue())
    assert out.startswith(b"\xff\xd8\xff")
    assert len(out) <= PORTRAIT_LIMIT
    assert b"CameraMaker-secret" not in out
    with Image.open(io.BytesIO(out)) as image:
        assert image.format == "JPEG"
        assert max(image.size) <= 540


def test_noisy_photo_still_fits() -> None:
    big = photo_jpeg(7, (1000, 1300))
    assert len(big) > 100_000
    assert len(portrait_jpeg(big)) <= PORTRAIT_LIMIT


def test_small_jpeg_is_kept_as_it_is() -> None:
    small = photo_jpeg(1, (60, 80))
    assert len(small) <= PORTRAIT_LIMIT
    assert portrait_jpeg(small) is small


@pytest.mark.parametrize(
    "photo",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,  # a PNG header and nothing behind it
        b"\xff\xd8\xff" + b"not really" * 2000,  # JPEG magic, garbage, too big to keep
        b"GIF89a",
    ],
)
def test_unreadable_photo_is_refused(photo: bytes) -> None:
    with pytest.raises(ValidationError, match="not a readable image"):
        portrait_jpeg(photo)


@pytest.mark.parametrize("side", [8_000, 20_000])
def test_decompression_bomb_is_refused_before_decoding(side: int) -> None:
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    assert len(out.getvalue()) < 100_000  # small enough to pass enrolment
    with pytest.raises(ValidationError, match="too many pixels"):
        portrait_jpeg(out.getvalue())


def test_chip_holder_from_the_database(database: Database, settings: Settings) -> None:
    _, (number,) = approved_cards(database, settings, 1, now=NOW)
    dates = card_dates(NOW, settings)
    with database.transaction() as session:
        row = card(session, number)
        holder = chip_holder(row, dates, settings)
        resident = row.resident
        assert holder.card_number == number
        assert (holder.surname, holder.given_names) == (resident.surname, resident.given_names)
        assert holder.sex == resident.sex.value
        assert holder.birth_date == resident.birth_date
        assert holder.expiry_date == dates.expiry
        assert holder.id_number == resident.id_number
        assert holder.schemes == ("BASIC-MEDICAL", "PENSION")
        assert (holder.status_list, holder.status_index) == (row.status_list, row.status_index)
        assert len(holder.portrait) <= PORTRAIT_LIMIT
        assert holder.issuer == settings.issuer


def test_chip_holder_needs_a_photo(database: Database, settings: Settings) -> None:
    _, (number,) = approved_cards(database, settings, 1, now=NOW)
    with database.transaction() as session:
        row = card(session, number)
        row.resident.photo = None
        with pytest.raises(ValidationError, match="no photo"):
            chip_holder(row, card_dates(NOW, settings), settings)


# --- the batch ----------------------------------------------------------------------------------


def _check_outcome(database: Database, reader: HopperReader, numbers: list[str]) -> None:
    """Every card personalized exactly once, every locked chip bound to exactly one card, and
    each chip holding what its record says."""
    locked = {c.serial: c for c in reader.all_cards() if c.state is CardState.LOCKED}
    with database.transaction() as session:
        records = session.scalars(select(ChipPersonalization)).all()
        assert len(records) == len(numbers)
        assert {r.card.number for r in records} == set(numbers)
        assert {r.chip_serial for r in records} == set(locked)
        for record in records:
            row = record.card
            assert record.state is ChipRecordState.DONE
            assert row.status is CardStatus.PERSONALIZED
            assert (row.chip_serial, row.sod_sha256) == (record.chip_serial, record.sod_sha256)
            assert row.aa_public_key == record.aa_public_key
            assert (row.issue_date, row.expiry_date) == (record.issue_date, record.expiry_date)
            tags = audit_tags(session, row.number)
            assert tags.count("card:status:personalize") == 1
            event = session.scalars(
                select(AuditEvent).where(
                    AuditEvent.subject == row.number, AuditEvent.tag == "card:status:personalize"
                )
            ).one()
            assert event.details["chip_serial"] == record.chip_serial
            assert event.details["sod_sha256"] == record.sod_sha256
            assert event.at == record.finished_at  # the step's own moment
            _check_chip(locked[record.chip_serial], record, row.resident.birth_date)


def _check_chip(chip: Card, record: ChipPersonalization, birth_date: object) -> None:
    access = AccessKey(record.card.number, birth_date, record.expiry_date)  # type: ignore[arg-type]
    from tests.fixtures.pcsc import CardTransport

    chip.reset()
    session = ChipSession.open(CardTransport(chip), access.seed)
    files = session.read_files(lds.ALL_FILE_IDS)
    assert hashlib.sha256(files[lds.FID_SOD]).hexdigest() == record.sod_sha256
    parsed = sod.parse_sod(files[lds.FID_SOD])
    parsed.verify_signature()
    dgs = {dg: files[lds.file_id(dg)] for dg in lds.DATA_GROUPS}
    parsed.check_data_groups(dgs)
    holder = lds.parse_holder(dgs)
    assert (holder.status_list, holder.status_index) == (
        record.card.status_list,
        record.card.status_index,
    )
    assert lds.parse_dg15(dgs[15]) == record.aa_public_key
    challenge = b"\x42" * 8
    aa.check_aa(record.aa_public_key, challenge, session.internal_authenticate(challenge))


def test_batch_personalizes_in_order(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer
) -> None:
    _, numbers = approved_cards(database, settings, 3, now=NOW)
    seen: list[BatchResult] = []
    results = _bureau(database, reader, settings, chip_signer).run(2, progress=seen.append)
    assert [r.card_number for r in results] == numbers[:2]
    assert seen == results
    assert all(r.completion is ChipCompletion.LOCKED and not r.resumed for r in results)
    assert [r.chip_serial for r in results] == ["HOP-000001", "HOP-000002"]
    more = _bureau(database, reader, settings, chip_signer).run(5)
    assert [r.card_number for r in more] == numbers[2:]
    _check_outcome(database, reader, numbers)
    assert reader.card.state is CardState.BLANK


def test_aa_private_key_is_nowhere_but_on_the_chip(
    database: Database,
    settings: Settings,
    reader: HopperReader,
    chip_signer: Signer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, numbers = approved_cards(database, settings, 2, now=NOW)
    caplog.set_level(logging.DEBUG)
    _bureau(database, reader, settings, chip_signer).run(2)
    database.dispose()
    stored = b"".join(
        path.read_bytes() for path in settings.instance_path.iterdir() if path.is_file()
    )
    for chip in reader.ejected:
        scalar = bytes.fromhex(json.loads(chip.path.read_text())["aa_key"])
        key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
        assert key.public_key().public_bytes  # the chip really holds a usable key
        for form in (scalar, scalar.hex().encode(), scalar.hex().upper().encode()):
            assert form not in stored
            assert form.decode("latin-1") not in caplog.text
    assert len(reader.ejected) == len(numbers)


def test_operator_of_another_office_gets_none_of_the_cards(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer
) -> None:
    approved_cards(database, settings, 1, now=NOW)
    approved_cards(database, settings, 0, now=NOW, office="OFF-B")
    assert _bureau(database, reader, settings, chip_signer, "off-b.clerk").run(3) == []
    with pytest.raises(PermissionDeniedError):
        _bureau(database, reader, settings, chip_signer, "off-a.auditor").run(1)


@pytest.mark.parametrize("count", [0, 101])
def test_batch_size_is_bounded(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer, count: int
) -> None:
    with pytest.raises(ValidationError):
        _bureau(database, reader, settings, chip_signer).run(count)


def test_card_without_photo_stops_the_batch_there(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer
) -> None:
    _, numbers = approved_cards(database, settings, 3, now=NOW)
    with database.transaction() as session:
        card(session, numbers[1]).resident.photo = None
    with pytest.raises(ValidationError, match="no photo"):
        _bureau(database, reader, settings, chip_signer).run(3)
    with database.transaction() as session:
        assert card(session, numbers[0]).status is CardStatus.PERSONALIZED
        assert card(session, numbers[1]).status is CardStatus.APPROVED
        assert card(session, numbers[2]).status is CardStatus.APPROVED


def test_locked_card_in_the_reader_is_not_overwritten(
    database: Database, settings: Settings, tmp_path: Path, chip_signer: Signer
) -> None:
    approved_cards(database, settings, 2, now=NOW)
    reader = HopperReader(BlankHopper(tmp_path / "hopper", TRANSPORT_KEY))
    # No hopper refill: the locked card stays in the reader.
    reader.hopper.take = lambda: reader.ejected[-1]  # type: ignore[method-assign]
    with pytest.raises(ReaderError, match="locked card"):
        _bureau(database, reader, settings, chip_signer).run(2)
    with database.transaction() as session:
        done = session.scalar(select(func.count()).select_from(ChipPersonalization))
    assert done == 1


_LOCK = 0x44


@pytest.mark.parametrize("after", [False, True], ids=["before-card", "after-card"])
@pytest.mark.parametrize("crash_at", range(1, 30))
def test_crash_at_any_apdu_then_resume(
    database: Database,
    settings: Settings,
    reader: HopperReader,
    chip_signer: Signer,
    crash_at: int,
    after: bool,
) -> None:
    _, numbers = approved_cards(database, settings, 2, now=NOW)

    def watch(number: int, command: bytes, answer: bytes | None) -> None:
        if number == crash_at and (answer is not None) == after:
            raise Crash

    reader.watch = watch
    with pytest.raises(Crash):
        _bureau(database, reader, settings, chip_signer).run(2)
    reader.watch = None
    results = _bureau(database, reader, settings, chip_signer).run(2)
    # The resumed batch did what the first one left, in order (once the first card was
    # finished, only the second remains).
    assert [r.card_number for r in results] == numbers[len(numbers) - len(results) :]
    _check_outcome(database, reader, numbers)


@pytest.mark.parametrize(
    ("after", "expected"),
    [(False, ChipCompletion.LOCKED), (True, ChipCompletion.FROM_RECORD)],
    ids=["record-then-crash", "lock-then-crash"],
)
def test_crash_around_the_lock(
    database: Database,
    settings: Settings,
    reader: HopperReader,
    chip_signer: Signer,
    after: bool,
    expected: ChipCompletion,
) -> None:
    """Killed with the record committed: the chip still in the reader unlocked is locked on
    resume; killed after the card locked (the hopper then ejected it): finished from the record."""
    _, numbers = approved_cards(database, settings, 2, now=NOW)

    def watch(number: int, command: bytes, answer: bytes | None) -> None:
        if command[1] == _LOCK and command[0] & 0xF0 == 0x80 and (answer is not None) == after:
            raise Crash

    reader.watch = watch
    with pytest.raises(Crash):
        _bureau(database, reader, settings, chip_signer).run(2)
    with database.transaction() as session:
        pending = session.scalars(select(ChipPersonalization)).one()
        assert pending.state is ChipRecordState.LOCK_PENDING
        assert card(session, numbers[0]).status is CardStatus.APPROVED
    reader.watch = None
    results = _bureau(database, reader, settings, chip_signer).run(2)
    assert [(r.card_number, r.resumed) for r in results] == [
        (numbers[0], True),
        (numbers[1], False),
    ]
    assert results[0].completion is expected
    _check_outcome(database, reader, numbers)


def test_another_machine_leaves_a_pending_record_alone(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer
) -> None:
    """A pending record of another machine is in flight (its chip about to be locked in that
    machine's reader): only its own machine, or a batch run under its name, finishes it."""
    _, numbers = approved_cards(database, settings, 2, now=NOW)

    def watch(number: int, command: bytes, answer: bytes | None) -> None:
        if command[1] == _LOCK and command[0] & 0xF0 == 0x80 and answer is None:
            raise Crash

    reader.watch = watch
    with pytest.raises(Crash):
        _bureau(database, reader, settings, chip_signer, machine="bureau-1").run(2)
    reader.watch = None
    other = HopperReader(
        BlankHopper(reader.hopper.directory.parent / "other", TRANSPORT_KEY, prefix="OTH-")
    )
    (second,) = _bureau(database, other, settings, chip_signer, machine="bureau-2").run(2)
    assert second.card_number == numbers[1]
    with database.transaction() as session:
        assert card(session, numbers[0]).status is CardStatus.APPROVED
    (first,) = _bureau(database, reader, settings, chip_signer, machine="bureau-1").run(2)
    assert (first.card_number, first.completion) == (numbers[0], ChipCompletion.LOCKED)


def test_crash_before_the_lifecycle_step_with_the_chip_still_in_the_reader(
    database: Database, settings: Settings, tmp_path: Path, chip_signer: Signer
) -> None:
    """A reader without a hopper keeps the locked chip: resume opens it with the card's
    access key, finds it locked, and finishes."""
    _, numbers = approved_cards(database, settings, 1, now=NOW)
    reader = HopperReader(BlankHopper(tmp_path / "hopper", TRANSPORT_KEY))
    reader.hopper.take = lambda: reader.ejected[-1]  # type: ignore[method-assign]
    calls = 0

    def clock() -> datetime:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first call dates the chip, the second closes the record
            raise Crash
        return NOW

    with pytest.raises(Crash):
        _bureau(database, reader, settings, chip_signer, clock=clock).run(1)
    assert reader.card.state is CardState.LOCKED
    (result,) = _bureau(database, reader, settings, chip_signer).run(1)
    assert result.completion is ChipCompletion.FOUND_LOCKED
    assert result.resumed
    _check_outcome(database, reader, numbers)


def test_dates_are_fixed_when_the_chip_is_written(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer
) -> None:
    """The chip is written just before midnight at the end of a year and the lifecycle step
    happens just after: the card keeps the dates its chip holds, the step its own moment."""
    _, (number,) = approved_cards(database, settings, 1, now=NOW)
    written_at = datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC)
    finished_at = datetime(2031, 1, 1, tzinfo=UTC)
    moments = iter([written_at, finished_at])  # the chip's moment, then the step's
    _bureau(database, reader, settings, chip_signer, clock=lambda: next(moments)).run(1)
    dates = cards.card_dates(written_at, settings)
    with database.transaction() as session:
        row = card(session, number)
        record = session.scalars(select(ChipPersonalization)).one()
        assert (record.written_at, record.finished_at) == (written_at, finished_at)
        assert (row.issue_date, row.expiry_date) == (dates.issue, dates.expiry)
        assert (record.issue_date, record.expiry_date) == (dates.issue, dates.expiry)
        assert row.status_changed_at == finished_at
        birth_date = row.resident.birth_date
    (chip,) = reader.ejected
    chip.reset()
    from tests.fixtures.pcsc import CardTransport

    access = AccessKey(number, birth_date, dates.expiry)
    files = ChipSession.open(CardTransport(chip), access.seed).read_files((lds.file_id(1),))
    assert lds.parse_dg1(files[lds.file_id(1)]).expiry_date == dates.expiry
    _check_outcome(database, reader, [number])


def test_card_revoked_while_its_chip_is_written_is_voided(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer
) -> None:
    staff, numbers = approved_cards(database, settings, 2, now=NOW)

    def watch(number: int, command: bytes, answer: bytes | None) -> None:
        if command[1] == _LOCK and command[0] & 0xF0 == 0x80 and answer is None:
            raise Crash

    reader.watch = watch
    with pytest.raises(Crash):
        _bureau(database, reader, settings, chip_signer).run(1)
    reader.watch = None
    with database.transaction() as session:
        cards.revoke(
            session,
            staff.supervisor_in(session),
            card(session, numbers[0]),
            reason=Reason.DAMAGED,
            now=NOW,
        )
    first, second = _bureau(database, reader, settings, chip_signer).run(2)
    assert not first.personalized
    assert second.card_number == numbers[1]
    with database.transaction() as session:
        assert audit_tags(session, numbers[0])[-1] == "card:chip:void"
        assert card(session, numbers[0]).status is CardStatus.REVOKED


_UPDATE_BINARY = 0xD6


def _while_writing(reader: HopperReader, action: Callable[[], None]) -> None:
    """Run `action` once, as the first file content goes onto a chip (another machine or an
    office acting on the database meanwhile: the batch holds no database lock then)."""
    done = False

    def watch(number: int, command: bytes, answer: bytes | None) -> None:
        nonlocal done
        if not done and command[1] == _UPDATE_BINARY and command[0] & 0xF0 == 0x80:
            done = True
            action()

    reader.watch = watch


def test_card_revoked_before_its_record_is_skipped_and_its_chip_reused(
    database: Database,
    settings: Settings,
    reader: HopperReader,
    chip_signer: Signer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    staff, numbers = approved_cards(database, settings, 2, now=NOW)

    def revoke() -> None:
        with database.transaction() as session:
            cards.revoke(session, staff.supervisor_in(session), card(session, numbers[0]),
                         reason=Reason.DAMAGED, now=NOW)  # fmt: skip

    _while_writing(reader, revoke)
    (result,) = _bureau(database, reader, settings, chip_signer).run(2)
    assert (result.card_number, result.chip_serial) == (numbers[1], "HOP-000001")
    assert "changed while its chip was written" in caplog.text
    with database.transaction() as session:
        (record,) = session.scalars(select(ChipPersonalization)).all()
        assert record.card.number == numbers[1]
        assert card(session, numbers[0]).status is CardStatus.REVOKED
        assert card(session, numbers[0]).chip_serial is None
    _check_outcome(database, reader, numbers[1:])


def test_card_another_machine_recorded_first_is_left_to_it(
    database: Database,
    settings: Settings,
    reader: HopperReader,
    chip_signer: Signer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    staff, numbers = approved_cards(database, settings, 2, now=NOW)

    def record_elsewhere() -> None:
        with database.transaction() as session:
            row = card(session, numbers[0])
            session.add(
                ChipPersonalization(
                    card_id=row.id, chip_serial="OTHER-1", sod_sha256="00" * 32,
                    aa_public_key=b"key", state=ChipRecordState.LOCK_PENDING, completion=None,
                    written_at=NOW, issue_date=NOW.date(), expiry_date=date(2040, 3, 1),
                    operator_id=staff.clerk_in(session).id, machine="bureau-2",
                    finished_at=None,
                )
            )  # fmt: skip

    _while_writing(reader, record_elsewhere)
    (result,) = _bureau(database, reader, settings, chip_signer).run(2)
    assert (result.card_number, result.chip_serial) == (numbers[1], "HOP-000001")
    assert "recorded by another batch" in caplog.text
    with database.transaction() as session:
        theirs = session.scalars(
            select(ChipPersonalization).where(ChipPersonalization.machine == "bureau-2")
        ).one()
        assert (theirs.card.number, theirs.state) == (numbers[0], ChipRecordState.LOCK_PENDING)
        assert card(session, numbers[0]).status is CardStatus.APPROVED
        assert card(session, numbers[1]).status is CardStatus.PERSONALIZED


def test_operator_deactivated_during_a_run_plans_no_more_cards(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer
) -> None:
    """A run plans again when a planned card dropped out; that plan checks the operator
    afresh, not as the run's session remembers them."""
    staff, numbers = approved_cards(database, settings, 3, now=NOW)

    def revoke_and_deactivate() -> None:
        with database.transaction() as session:
            cards.revoke(session, staff.supervisor_in(session), card(session, numbers[0]),
                         reason=Reason.DAMAGED, now=NOW)  # fmt: skip
            staff.clerk_in(session).active = False

    _while_writing(reader, revoke_and_deactivate)
    with pytest.raises(NotFoundError, match="no active operator"):
        _bureau(database, reader, settings, chip_signer).run(2)
    with database.transaction() as session:
        assert card(session, numbers[1]).status is CardStatus.PERSONALIZED  # planned before
        assert card(session, numbers[2]).status is CardStatus.APPROVED


def test_chip_finished_from_its_record_that_comes_back_unlocked_is_locked(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer
) -> None:
    """Killed before the LOCK; the resume does not find the chip (finished from the record);
    then, in the same run, the chip is put back unlocked: it is checked and locked."""
    _, numbers = approved_cards(database, settings, 2, now=NOW)

    def watch(number: int, command: bytes, answer: bytes | None) -> None:
        if command[1] == _LOCK and command[0] & 0xF0 == 0x80 and answer is None:
            raise Crash

    reader.watch = watch
    with pytest.raises(Crash):
        _bureau(database, reader, settings, chip_signer).run(1)
    reader.watch = None
    written = reader.card
    reader.card = reader.hopper.take()  # the written chip went astray

    def put_back(result: BatchResult) -> None:
        if result.resumed:
            reader.card = written

    first, second = _bureau(database, reader, settings, chip_signer).run(2, progress=put_back)
    assert (first.card_number, first.resumed) == (numbers[0], True)
    assert first.completion is ChipCompletion.FROM_RECORD
    assert (second.card_number, second.resumed) == (numbers[1], False)
    assert written.state is CardState.LOCKED
    assert second.chip_serial != written.serial
    with database.transaction() as session:
        record = session.scalars(
            select(ChipPersonalization).where(ChipPersonalization.chip_serial == written.serial)
        ).one()
        assert (record.state, record.completion) == (ChipRecordState.DONE, ChipCompletion.LOCKED)
    _check_outcome(database, reader, numbers)


def test_chip_that_does_not_hold_its_record_is_not_locked(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer
) -> None:
    approved_cards(database, settings, 1, now=NOW)

    def watch(number: int, command: bytes, answer: bytes | None) -> None:
        if command[1] == _LOCK and command[0] & 0xF0 == 0x80 and answer is None:
            raise Crash

    reader.watch = watch
    with pytest.raises(Crash):
        _bureau(database, reader, settings, chip_signer).run(1)
    reader.watch = None
    # Someone swaps EF.SOD on the unlocked chip before the batch resumes.
    reader.card._image.files[lds.FID_SOD][-1] ^= 0x01
    with pytest.raises(ChipError, match="recorded security object"):
        _bureau(database, reader, settings, chip_signer).run(1)
    assert reader.card.state is CardState.PERSONALIZED


def test_probe_tells_what_is_in_the_reader(tmp_path: Path, chip_signer: Signer) -> None:
    from cardsys.chip import perso

    reader = HopperReader(BlankHopper(tmp_path / "hopper", TRANSPORT_KEY))
    station = ReaderStation(reader.connect, TRANSPORT_KEY)
    assert station.probe() == Probe(ChipPresence.OPEN, "HOP-000001", written=False)
    prepared = perso.prepare(sample_holder(portrait_size=100), chip_signer)
    station.write(prepared, "HOP-000001")
    # Written completely: it may be bound to a card, so a batch asks its database.
    assert station.probe() == Probe(ChipPresence.OPEN, "HOP-000001", written=True)
    station.check_and_lock(
        "HOP-000001",
        sod_sha256=hashlib.sha256(prepared.sod).digest(),
        aa_public_key=prepared.aa_public_key_info,
    )
    assert reader.ejected[0].state is CardState.LOCKED
    reader.card = reader.ejected[0]  # put the locked card back
    assert station.probe() == Probe(ChipPresence.LOCKED)
    holder = sample_holder(portrait_size=100)
    access = AccessKey(holder.card_number, holder.birth_date, holder.expiry_date)
    assert station.opens(access) == "HOP-000001"
    wrong = AccessKey(holder.card_number, holder.birth_date, holder.birth_date)
    assert station.opens(wrong) is None
    reader.card = reader.hopper.take()
    with pytest.raises(ReaderError, match="no longer chip HOP-000001"):
        station.write(prepared, "HOP-000001")


def test_events_are_in_one_chain(
    database: Database, settings: Settings, reader: HopperReader, chip_signer: Signer
) -> None:
    from cardsys import audit

    _, numbers = approved_cards(database, settings, 2, now=NOW)
    with database.transaction() as session:
        before = audit.verify(session).events
    _bureau(database, reader, settings, chip_signer).run(2)
    with database.transaction() as session:
        report = audit.verify(session)
        tags = [audit_tags(session, number)[-1] for number in numbers]
    # One event a card: the lifecycle step, which names the chip.
    assert report.events == before + 2
    assert tags == ["card:status:personalize"] * 2
