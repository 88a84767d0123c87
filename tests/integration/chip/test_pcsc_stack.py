"""Chip protocol through the real stack: pyscard -> pcscd -> vpcd -> our card emulator."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardsys.chip import aa, lds, perso, sod
from cardsys.chip.bac import AccessKey
from cardsys.chip.emulator import Card, CardState, Faults
from cardsys.chip.pcsc import PcscTransport
from cardsys.chip.terminal import ChipSession
from cardsys.errors import (
    AccessDeniedError,
    ApduError,
    ChipCloneError,
    PinBlockedError,
    ReaderError,
    SecureMessagingAbortedError,
    SecureMessagingError,
)
from tests.fixtures.pcsc import (
    TRANSPORT_KEY,
    PcscStack,
    TestSigner,
    blank_card,
    personalized_card,
    sample_holder,
)

pytestmark = pytest.mark.pcsc

HOLDER = sample_holder()
SEED = AccessKey(HOLDER.card_number, HOLDER.birth_date, HOLDER.expiry_date).seed


@pytest.fixture
def inserted(
    pcsc_stack: PcscStack, tmp_path: Path, chip_signer: TestSigner
) -> Iterator[tuple[Card, perso.Personalization]]:
    card, prepared = personalized_card(tmp_path, chip_signer, holder=HOLDER)
    pcsc_stack.server.insert(card)
    yield card, prepared
    pcsc_stack.server.remove()


def _transport() -> PcscTransport:
    return PcscTransport(0)


def test_readers_are_listed(pcsc_stack: PcscStack) -> None:
    assert pcsc_stack.readers[:2] == ["Virtual PCD 00 00", "Virtual PCD 00 01"]


def test_empty_reader_reports_no_card(pcsc_stack: PcscStack) -> None:
    with pytest.raises(ReaderError, match="no card"):
        PcscTransport(1)
    with pytest.raises(ReaderError, match="no reader"):
        PcscTransport(7)


def test_personalize_through_pcsc(
    pcsc_stack: PcscStack, tmp_path: Path, chip_signer: TestSigner
) -> None:
    card = blank_card(tmp_path, "CHIP-PCSC")
    pcsc_stack.server.insert(card, slot=1)
    try:
        prepared = perso.prepare(HOLDER, chip_signer, pin="2468")
        with PcscTransport(1) as transport:
            assert perso.write_card(transport, TRANSPORT_KEY, prepared) == "CHIP-PCSC"
        assert card.state is CardState.LOCKED
        with PcscTransport(1) as transport:
            assert ChipSession.open(transport, SEED).read_file(lds.FID_SOD) == prepared.sod
    finally:
        pcsc_stack.server.remove(slot=1)


def test_full_read_with_extended_length(inserted: tuple[Card, perso.Personalization]) -> None:
    _, prepared = inserted
    with _transport() as transport:
        session = ChipSession.open(transport, SEED)
        files = session.read_files(lds.ALL_FILE_IDS)
        challenge = secrets.token_bytes(8)
        answer = session.internal_authenticate(challenge)
        count = transport.apdu_count
    assert files == dict(prepared.files)
    assert len(files[0x0102]) > 15_000
    dgs = {dg: files[lds.file_id(dg)] for dg in lds.DATA_GROUPS}
    parsed = sod.parse_sod(files[lds.FID_SOD])
    assert parsed.verify_signature() == prepared_signer_cert(prepared)
    parsed.check_data_groups(dgs)
    aa.check_aa(lds.parse_dg15(dgs[15]), challenge, answer)
    assert lds.parse_holder(dgs) == HOLDER
    # SELECT AID, GET CHALLENGE, MUTUAL AUTH, 7 x (SELECT + READ BINARY), INTERNAL AUTH.
    assert count == 18
    print(f"chip full read: {count} APDUs")


def prepared_signer_cert(prepared: perso.Personalization) -> object:
    return sod.parse_sod(prepared.sod).certificate


def test_largest_extended_apdus(pcsc_stack: PcscStack, tmp_path: Path) -> None:
    """A 32767-byte file (the largest our offsets address) goes in and out in one APDU each."""
    card = blank_card(tmp_path, "CHIP-BIG")
    pcsc_stack.server.insert(card, slot=1)
    try:
        content = secrets.token_bytes(0x7FFF)
        with PcscTransport(1) as transport:
            session = ChipSession.open(transport, TRANSPORT_KEY)
            from cardsys.chip.apdu import CommandApdu

            assert session.command(CommandApdu(0x80, 0xE0, 0x02, 0x01, b"\x7f\xff")).ok
            wrapped = session.sm.protect(CommandApdu(0x80, 0xD6, 0, 0, content).encode())
            answer = session.sm.unprotect(transport.transmit(wrapped))
            assert answer == b"\x90\x00"
            before = transport.apdu_count
            assert session.read_file(0x0201) == content
            assert transport.apdu_count - before == 2
        print(f"largest protected command through pcscd: {len(wrapped)} bytes")
    finally:
        pcsc_stack.server.remove(slot=1)


def test_wrong_access_key_refused(inserted: tuple[Card, perso.Personalization]) -> None:
    wrong = AccessKey(HOLDER.card_number, HOLDER.birth_date, HOLDER.expiry_date.replace(day=24))
    with _transport() as transport, pytest.raises(AccessDeniedError):
        ChipSession.open(transport, wrong.seed)


def test_wrong_mac_gets_6988(inserted: tuple[Card, perso.Personalization]) -> None:
    card, _ = inserted
    with _transport() as transport:
        session = ChipSession.open(transport, SEED)
        from cardsys.chip.apdu import CommandApdu

        wrapped = bytearray(session.sm.protect(CommandApdu(0, 0xB0, 0, 0, le=4).encode()))
        wrapped[-3] ^= 0x01
        raw = transport.transmit(bytes(wrapped))
        assert raw == b"\x69\x88"
        with pytest.raises(SecureMessagingAbortedError) as caught:
            session.sm.unprotect(raw)
        assert caught.value.sw == 0x6988
        assert card.session is None


@pytest.mark.parametrize(
    "faults",
    [Faults(wrong_response_mac=True), Faults(wrong_ssc=True), Faults(truncate_response=True)],
)
def test_card_side_faults_are_detected(
    inserted: tuple[Card, perso.Personalization], faults: Faults
) -> None:
    card, _ = inserted
    with _transport() as transport:
        session = ChipSession.open(transport, SEED)
        card.faults = faults
        with pytest.raises(SecureMessagingError):
            session.read_file(lds.FID_COM)


def test_clone_fails_active_authentication(inserted: tuple[Card, perso.Personalization]) -> None:
    card, prepared = inserted
    card.faults = Faults(clone_aa_key=True)
    with _transport() as transport:
        session = ChipSession.open(transport, SEED)
        challenge = secrets.token_bytes(8)
        answer = session.internal_authenticate(challenge)
    with pytest.raises(ChipCloneError):
        aa.check_aa(prepared.aa_public_key_info, challenge, answer)


def test_pin_blocking(inserted: tuple[Card, perso.Personalization]) -> None:
    with _transport() as transport:
        session = ChipSession.open(transport, SEED)
        for _ in range(2):
            with pytest.raises(ApduError):
                session.verify_pin("000000")
        with pytest.raises(PinBlockedError):
            session.verify_pin("000000")
        with pytest.raises(PinBlockedError):
            session.verify_pin("123456")
