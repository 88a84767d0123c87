"""The bureau through the real stack: approved cards personalized through pcscd onto blank
emulated cards fed by a hopper, then read and verified at a terminal through pcscd; and
`cardsys chip personalize` SIGKILLed at several points (mid-APDU sequence, around the LOCK,
between cards) and resumed, ending with every card personalized exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cardsys import audit
from cardsys.chip import lds
from cardsys.chip.bac import AccessKey
from cardsys.chip.emulator import Card, CardState, Faults
from cardsys.chip.pcsc import PcscTransport
from cardsys.chip.vpcd import BlankHopper
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import ChipCloneError, RevokedError, SuspendedError
from cardsys.formats.trustlist import parse_trust_list
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import ChipCompletion, ChipPersonalization, ChipRecordState
from cardsys.pki import Purpose
from issuance import cards
from issuance.personalize import Bureau, ReaderStation
from keys import ceremony
from keys.store import FileKeyStore
from tests.factories import audit_tags, card, make_admin, operator
from tests.fixtures.pcsc import PcscStack, approved_cards, bureau_settings
from verify.chip import verify_chip
from verify.result import StatusCheck
from verify.trust import TrustStore

pytestmark = pytest.mark.pcsc

PASSPHRASE = "bureau test passphrase"
OPERATOR = "off-a.clerk"
BUREAU_SLOT = 1
LIST_SIZE = 1024
_LOCK = 0x44
# The `cardsys` entry point, with this interpreter.
RUNNER = "import sys; from cardsys.cli import main; main(sys.argv[1:])"


@dataclass
class Instance:
    """A bureau instance: database, development PKI, approved cards, a hopper in slot 1."""

    directory: Path
    settings: Settings
    database: Database
    numbers: list[str]
    hopper: BlankHopper
    key_file: Path
    now: datetime
    trust_list: bytes = b""
    root_pem: bytes = b""
    outputs: list[str] = field(default_factory=list)

    @property
    def transport_key(self) -> bytes:
        return bytes.fromhex(self.key_file.read_text().strip())

    def store(self) -> FileKeyStore:
        return FileKeyStore(self.directory / "keys", PASSPHRASE, scrypt_log2_n=14)


@pytest.fixture
def instance(pcsc_stack: PcscStack, tmp_path: Path) -> Iterator[Instance]:
    now = datetime.now(UTC).replace(microsecond=0)
    directory = tmp_path / "instance"
    settings = bureau_settings(directory, status_list_size=LIST_SIZE, key_passphrase=PASSPHRASE)
    database = Database.from_settings(settings)
    _, numbers = approved_cards(database, settings, 4, now=now)
    key_file = tmp_path / "transport.key"
    key_file.write_text(os.urandom(16).hex() + "\n")
    key_file.chmod(0o600)
    found = Instance(directory, settings, database, numbers, None, key_file, now)  # type: ignore[arg-type]
    found.hopper = BlankHopper(tmp_path / "hopper", found.transport_key)
    with found.store() as store, database.transaction() as session:
        found.trust_list = ceremony.ensure_development_pki(
            session, store, make_admin(session), settings=settings, now=now
        )
        from cryptography.hazmat.primitives.serialization import Encoding

        found.root_pem = ceremony.root_certificate(session).public_bytes(Encoding.PEM)
    pcsc_stack.server.attach_hopper(found.hopper, BUREAU_SLOT)
    yield found
    pcsc_stack.server.observe(None, BUREAU_SLOT)
    pcsc_stack.server.attach_hopper(None, BUREAU_SLOT)
    pcsc_stack.server.remove(BUREAU_SLOT)
    pcsc_stack.server.remove(0)
    database.dispose()


def _terminal(instance: Instance) -> TrustStore:
    """The terminal's trust: the exported trust list and the status list as the issuing side
    publishes it now (`issuance.status`: only ACTIVE cards are valid)."""
    from cryptography import x509

    from issuance import status

    with instance.store() as store:
        status.publish(
            instance.database,
            now=instance.now,
            settings=instance.settings,
            signers=lambda session, purpose, now: ceremony.active_signer(
                session, store, purpose, now
            ),
            lists=[0],
        )
    with instance.database.transaction() as session:
        token = status.published_token(session, 0)
    assert token is not None
    root = x509.load_pem_x509_certificate(instance.root_pem)
    parsed = parse_trust_list(
        instance.trust_list,
        root=root,
        now=instance.now,
        previous_sequence=None,
        grace=timedelta(days=3),
    )
    return TrustStore.build(parsed, [("0", token)], now=instance.now)


def _hand_over(instance: Instance, numbers: list[str]) -> None:
    """The office hands the cards over and activates them."""
    with instance.database.transaction() as session:
        clerk = operator(session, OPERATOR)
        for number in numbers:
            cards.hand_over(session, clerk, card(session, number), now=instance.now)
            cards.activate(session, clerk, card(session, number), now=instance.now)


def _chips(instance: Instance) -> dict[str, Card]:
    """Every card image the hopper made, by serial."""
    return {
        c.serial: c
        for c in (Card.open(path) for path in sorted(instance.hopper.directory.glob("*.card")))
    }


def _check_outcome(instance: Instance, numbers: list[str]) -> dict[str, str]:
    """Each card personalized exactly once and each locked chip bound to exactly one card;
    returns card number -> chip serial."""
    chips = _chips(instance)
    locked = {serial for serial, chip in chips.items() if chip.state is CardState.LOCKED}
    bound: dict[str, str] = {}
    with instance.database.transaction() as session:
        records = session.scalars(select(ChipPersonalization)).all()
        assert sorted(r.card.number for r in records) == sorted(numbers)
        assert {r.chip_serial for r in records} == locked
        for record in records:
            row = record.card
            assert record.state is ChipRecordState.DONE
            assert row.status is CardStatus.PERSONALIZED
            assert row.chip_serial == record.chip_serial
            tags = audit_tags(session, row.number)
            assert tags.count("card:status:personalize") == 1
            image = chips[record.chip_serial]
            assert (
                hashlib.sha256(bytes(image._image.files[lds.FID_SOD])).hexdigest()
                == record.sod_sha256
            )
            bound[row.number] = record.chip_serial
        audit.verify(session)
    return bound


def _verify_at_terminal(
    pcsc_stack: PcscStack, instance: Instance, chip: Card, number: str, trust: TrustStore
) -> StatusCheck:
    with instance.database.transaction() as session:
        row = card(session, number)
        assert row.expiry_date is not None
        access = AccessKey(number, row.resident.birth_date, row.expiry_date)
    pcsc_stack.server.insert(chip, 0)
    with PcscTransport(0) as transport:
        return verify_chip(transport, trust, access=access, now=instance.now).status


def test_personalized_through_pcsc_then_verified_through_pcsc(
    pcsc_stack: PcscStack, instance: Instance
) -> None:
    station = ReaderStation(lambda: PcscTransport(BUREAU_SLOT), instance.transport_key)
    with instance.store() as store:
        bureau = Bureau(
            instance.database,
            station,
            operator=OPERATOR,
            machine="bureau-1",
            settings=instance.settings,
            signers=lambda session, now: ceremony.active_signer(
                session, store, Purpose.CHIP_DOCUMENT, now
            ),
            clock=lambda: instance.now,
            wait=5,
        )
        results = bureau.run(2)
    station.close()
    assert [r.card_number for r in results] == instance.numbers[:2]
    assert all(r.completion is ChipCompletion.LOCKED for r in results)
    bound = _check_outcome(instance, instance.numbers[:2])
    chips = _chips(instance)
    first, second = instance.numbers[:2]
    # Personalized but not handed over: the published list says suspended (a card stolen
    # from the counter does not verify).
    with pytest.raises(SuspendedError):
        _verify_at_terminal(pcsc_stack, instance, chips[bound[first]], first, _terminal(instance))
    _hand_over(instance, [first, second])
    trust = _terminal(instance)
    for number in (first, second):
        assert _verify_at_terminal(pcsc_stack, instance, chips[bound[number]], number, trust) is (
            StatusCheck.GOOD
        )
    # A revoked card is refused at the terminal as soon as the status list says so ...
    with instance.database.transaction() as session:
        boss = operator(session, "off-a.super")
        cards.revoke(session, boss, card(session, first), reason=Reason.STOLEN, now=instance.now)
    with pytest.raises(RevokedError):
        _verify_at_terminal(pcsc_stack, instance, chips[bound[first]], first, _terminal(instance))
    # ... and a clone of the other (same data, another chip key) fails Active Authentication.
    clone = chips[bound[second]]
    clone.faults = Faults(clone_aa_key=True)
    with pytest.raises(ChipCloneError):
        _verify_at_terminal(pcsc_stack, instance, clone, second, trust)


@dataclass
class Killer:
    """Kills the batch subprocess at a chosen APDU of the bureau slot."""

    process: subprocess.Popen[bytes] | None = None
    #: Decides from (this killer, command, answer or None) whether to kill now.
    when: Callable[[Killer, bytes, bytes | None], bool] | None = None
    #: Whether the command that triggered the kill still reaches the card.
    deliver: bool = True
    #: In the current run: APDUs seen and LOCKs answered.
    count: int = 0
    locks: int = 0
    fired: bool = False

    def __call__(self, chip: Card, command: bytes, answer: bytes | None) -> bool | None:
        if answer is None:
            self.count += 1
        elif _is_lock(command):
            self.locks += 1
        if self.fired or self.when is None or self.process is None:
            return None
        if self.when(self, command, answer):
            self.fired = True
            self.process.send_signal(signal.SIGKILL)
            if answer is None and not self.deliver:
                return False
        return None


def _is_lock(command: bytes) -> bool:
    return command[1] == _LOCK and command[0] & 0xF0 == 0x80


def _run_batch(instance: Instance, killer: Killer, count: int) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CARDSYS_DATABASE_URL": instance.settings.database,
        "CARDSYS_KEY_PASSPHRASE": PASSPHRASE,
        "CARDSYS_STATUS_LIST_SIZE": str(LIST_SIZE),
    }
    env.pop("CARDSYS_CONFIG", None)
    command = [
        sys.executable, "-c", RUNNER, "--instance", str(instance.directory),
        "chip", "personalize", "--batch", str(count), "--reader", str(BUREAU_SLOT),
        "--as", OPERATOR, "--transport-key-file", str(instance.key_file), "--wait", "5", "--json",
    ]  # fmt: skip
    killer.count, killer.locks, killer.fired = 0, 0, False
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path.cwd()
    )
    killer.process = process
    out, err = process.communicate(timeout=120)
    killer.process = None
    instance.outputs += [out.decode(errors="replace"), err.decode(errors="replace")]
    return subprocess.CompletedProcess(command, process.returncode, out.decode(), err.decode())


def _plain_get_data(command: bytes) -> bool:
    return command[:2] == b"\x00\xca"


#: Where each batch run is killed, in this order: (what, when, command delivered to the card).
KILLS: list[tuple[str, Callable[[Killer, bytes, bytes | None], bool], bool]] = [
    # Card 1: killed while its files go in; nothing recorded, the chip is re-used.
    ("mid-write, the card got the command", lambda k, c, a: k.count == 9 and a is None, True),
    # Card 1 again: recorded, but the LOCK never reached the chip (still in the reader).
    ("record committed, LOCK lost", lambda k, c, a: _is_lock(c) and a is None, False),
    # The resume locks card 1's chip and finishes it; killed as it looks for card 2's chip.
    ("between two cards", lambda k, c, a: k.locks > 0 and _plain_get_data(c), True),
    # Card 2: killed after a command, before its answer came back.
    ("mid-write, answer lost", lambda k, c, a: k.count == 14 and a is not None, True),
    # Card 2 again: the chip locked (the hopper ejects it), the answer never arrived.
    ("card locked, answer lost", lambda k, c, a: _is_lock(c) and a is not None, True),
]


def test_killed_batch_resumes_without_duplicates_or_lost_cards(
    pcsc_stack: PcscStack, instance: Instance
) -> None:
    killer = Killer()
    pcsc_stack.server.observe(killer, BUREAU_SLOT)
    for what, when, deliver in KILLS:
        killer.when, killer.deliver = when, deliver
        result = _run_batch(instance, killer, 4)
        assert killer.fired, f"the batch finished before the kill point: {what}"
        assert result.returncode == -signal.SIGKILL, what
    killer.when = None
    result = _run_batch(instance, killer, 4)
    assert result.returncode == 0, result.stderr
    bound = _check_outcome(instance, instance.numbers)
    assert len(set(bound.values())) == len(instance.numbers)
    with instance.database.transaction() as session:
        completions = {
            r.card.number: r.completion for r in session.scalars(select(ChipPersonalization)).all()
        }
    first, second, *rest = instance.numbers
    # Card 1's chip was still in the reader, unlocked: the resume checked and locked it.
    # Card 2's chip was locked and ejected before the batch knew: finished from the record.
    assert completions == {
        first: ChipCompletion.LOCKED,
        second: ChipCompletion.FROM_RECORD,
        **{number: ChipCompletion.LOCKED for number in rest},
    }
    # Every chip verifies at a terminal once its card is handed over.
    chips = _chips(instance)
    _hand_over(instance, instance.numbers)
    trust = _terminal(instance)
    for number, serial in bound.items():
        assert _verify_at_terminal(pcsc_stack, instance, chips[serial], number, trust) is (
            StatusCheck.GOOD
        )
    _no_aa_key_outside_the_chips(instance, chips)


def _no_aa_key_outside_the_chips(instance: Instance, chips: dict[str, Card]) -> None:
    instance.database.dispose()
    stored = b"".join(path.read_bytes() for path in instance.directory.rglob("*") if path.is_file())
    logs = "\n".join(instance.outputs)
    scalars = [
        bytes.fromhex(data["aa_key"])
        for chip in chips.values()
        if (data := json.loads(chip.path.read_text()))["aa_key"] is not None
    ]
    assert scalars
    for scalar in scalars:
        for form in (scalar, scalar.hex().encode(), scalar.hex().upper().encode()):
            assert form not in stored
            assert form.decode("latin-1") not in logs


def test_batch_output(pcsc_stack: PcscStack, instance: Instance) -> None:
    result = _run_batch(instance, Killer(), 2)
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert [entry["card"] for entry in done] == instance.numbers[:2]
    assert {entry["completion"] for entry in done} == {"locked"}
    assert [entry["chip_serial"] for entry in done] == ["HOP-000001", "HOP-000002"]
