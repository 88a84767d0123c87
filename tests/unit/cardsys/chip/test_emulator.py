"""The card emulator in-process: lifecycle, access rules, PIN, faults and persistence."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import pytest

from cardsys.chip import apdu, lds, perso
from cardsys.chip.apdu import CommandApdu, ResponseApdu
from cardsys.chip.bac import AccessKey
from cardsys.chip.emulator import Card, CardState, Faults, Session
from cardsys.chip.terminal import ChipSession, select_application
from cardsys.errors import (
    AccessDeniedError,
    ApduError,
    ChipCloneError,
    ChipError,
    DecodeError,
    PinBlockedError,
    SecureMessagingError,
)
from tests.fixtures.pcsc import (
    TRANSPORT_KEY,
    CardTransport,
    TestSigner,
    blank_card,
    make_signer,
    personalized_card,
    sample_holder,
)


@pytest.fixture(scope="module")
def signer() -> TestSigner:
    return make_signer()


@pytest.fixture
def card(tmp_path: Path, signer: TestSigner) -> Card:
    return personalized_card(tmp_path, signer)[0]


def _seed() -> bytes:
    holder = sample_holder(portrait_size=10)
    return AccessKey(holder.card_number, holder.birth_date, holder.expiry_date).seed


def _open(card: Card) -> ChipSession:
    return ChipSession.open(CardTransport(card), _seed())


def _sw(card: Card, command: CommandApdu) -> int:
    return ResponseApdu.decode(card.process(command.encode())).sw


def test_personalization_locks_and_persists(tmp_path: Path, signer: TestSigner) -> None:
    card, prepared = personalized_card(tmp_path, signer)
    assert card.state is CardState.LOCKED
    reopened = Card.open(card.path)
    assert reopened.state is CardState.LOCKED
    image = json.loads(card.path.read_text())
    assert image["transport_key"] is None
    session = _open(reopened)
    assert session.read_file(lds.FID_SOD) == prepared.sod
    assert session.serial() == "CHIP-0001"


def test_blank_card_refuses_overwrite(tmp_path: Path) -> None:
    blank_card(tmp_path)
    with pytest.raises(ChipError):
        blank_card(tmp_path)


def test_corrupt_image(tmp_path: Path) -> None:
    path = tmp_path / "bad.card"
    path.write_text('{"format": "cardsys-card-image", "version": 1}')
    with pytest.raises(DecodeError):
        Card.open(path)
    path.write_text("not json")
    with pytest.raises(DecodeError):
        Card.open(path)


def test_plain_reads_are_refused_after_lock(card: Card) -> None:
    select_application(CardTransport(card))
    assert _sw(card, CommandApdu(0, apdu.INS_SELECT, 2, 0x0C, b"\x01\x01")) == 0x9000
    assert _sw(card, CommandApdu(0, apdu.INS_READ_BINARY, 0, 0, le=256)) == 0x6982
    assert _sw(card, CommandApdu(0, apdu.INS_INTERNAL_AUTHENTICATE, 0, 0, b"1" * 8)) == 0x6982
    assert _sw(card, CommandApdu(0, apdu.INS_GET_DATA, 1, 1, le=256)) == 0x6982


def test_personalization_commands_after_lock_answer_6e00(card: Card) -> None:
    session = _open(card)
    answer = session.command(CommandApdu(0x80, 0xE0, 0x01, 0x05, b"\x00\x10"))
    assert answer.sw == apdu.SW_CLA_NOT_SUPPORTED
    assert _sw(card, CommandApdu(0x80, 0x44, 0, 0)) == apdu.SW_CLA_NOT_SUPPORTED


def test_a_locked_card_cannot_be_personalized_again(card: Card, signer: TestSigner) -> None:
    prepared = perso.prepare(sample_holder(portrait_size=10), signer)
    with pytest.raises(ApduError) as caught:  # even the plain serial read is refused now
        perso.write_card(CardTransport(card), TRANSPORT_KEY, prepared)
    assert caught.value.sw == 0x6982
    with pytest.raises(AccessDeniedError):  # and the transport key is gone after the lock
        ChipSession.open(CardTransport(card), TRANSPORT_KEY)


def test_wrong_access_key(card: Card) -> None:
    with pytest.raises(AccessDeniedError):
        ChipSession.open(CardTransport(card), b"\x01" * 16)
    assert card.session is None


def test_personalization_needs_transport_session(tmp_path: Path) -> None:
    blank = blank_card(tmp_path)
    assert _sw(blank, CommandApdu(0x80, 0xE0, 0x01, 0x01, b"\x00\x10")) == 0x6982
    assert blank.state is CardState.BLANK
    session = ChipSession.open(CardTransport(blank), TRANSPORT_KEY)
    assert blank.session is Session.TRANSPORT
    assert session.command(CommandApdu(0x80, 0x44, 0, 0)).sw == 0x6985  # incomplete: no lock
    assert session.command(CommandApdu(0x80, 0xE0, 0x01, 0x01, b"\x00\x10")).ok
    assert session.command(CommandApdu(0x80, 0xE0, 0x01, 0x01, b"\x00\x10")).sw == 0x6A89
    assert blank.state is CardState.PERSONALIZED


def test_wrong_mac_gives_6988_and_ends_the_session(card: Card) -> None:
    session = _open(card)
    wrapped = bytearray(session.sm.protect(CommandApdu(0, 0xB0, 0, 0, le=4).encode()))
    wrapped[-3] ^= 0x01
    assert card.process(bytes(wrapped)) == b"\x69\x88"
    assert card.session is None


@pytest.mark.parametrize(
    "faults",
    [Faults(wrong_response_mac=True), Faults(wrong_ssc=True), Faults(truncate_response=True)],
)
def test_terminal_detects_response_faults(card: Card, faults: Faults) -> None:
    session = _open(card)
    card.faults = faults
    with pytest.raises(SecureMessagingError):
        session.read_file(lds.FID_COM)


def test_swapped_file_is_served(card: Card) -> None:
    session = _open(card)
    normal = session.read_file(0x0101)
    card.faults = Faults(swap_files=(0x0101, 0x010B))
    assert session.read_file(0x0101) != normal
    assert session.read_file(0x010B) == normal


def test_clone_key_fails_active_authentication(tmp_path: Path, signer: TestSigner) -> None:
    from cardsys.chip import aa

    card, prepared = personalized_card(tmp_path, signer)
    session = _open(card)
    challenge = secrets.token_bytes(8)
    aa.check_aa(prepared.aa_public_key_info, challenge, session.internal_authenticate(challenge))
    card.faults = Faults(clone_aa_key=True)
    with pytest.raises(ChipCloneError):
        aa.check_aa(
            prepared.aa_public_key_info, challenge, session.internal_authenticate(challenge)
        )


def test_pin_blocks_after_three_wrong_tries(card: Card) -> None:
    session = _open(card)
    session.verify_pin("123456")
    for left in (2, 1):
        with pytest.raises(ApduError) as caught:
            session.verify_pin("000000")
        assert caught.value.sw == 0x63C0 | left
    with pytest.raises(PinBlockedError):
        session.verify_pin("000000")
    with pytest.raises(PinBlockedError):
        session.verify_pin("123456")  # the right PIN no longer helps
    assert Card.open(card.path).pin_tries_left == 0


def test_correct_pin_resets_the_counter(card: Card) -> None:
    session = _open(card)
    with pytest.raises(ApduError):
        session.verify_pin("999999")
    session.verify_pin("123456")
    assert card.pin_tries_left == 3


def test_short_length_reads(card: Card, signer: TestSigner) -> None:
    session = ChipSession.open(CardTransport(card), _seed(), extended=False)
    transport = session.transport
    assert isinstance(transport, CardTransport)
    before = transport.apdu_count
    content = session.read_file(0x0102)
    assert len(content) > 15_000
    assert transport.apdu_count - before == 1 + -(-len(content) // 0xDF)


@pytest.mark.parametrize(
    ("raw", "sw"),
    [
        ("00", 0x6700),
        ("00A4", 0x6700),
        ("00A4040C0501", 0x6700),
        ("00A4040C03010203", 0x6A82),
        ("0012000000", 0x6D00),
        ("4000000000", 0x6E00),
        ("00A4040C09F0434152445359530F", 0x6A82),
        ("0084000004", 0x6700),
        ("0082000028" + "00" * 40 + "28", 0x6985),  # no challenge first
    ],
)
def test_garbage_gets_a_status_word(card: Card, raw: str, sw: int) -> None:
    assert ResponseApdu.decode(card.process(bytes.fromhex(raw))).sw == sw


def test_erase_returns_an_unlocked_card_to_blank(tmp_path: Path, signer: TestSigner) -> None:
    card = blank_card(tmp_path)
    prepared = perso.prepare(sample_holder(portrait_size=100), signer)
    session = perso.open_bureau_session(CardTransport(card), TRANSPORT_KEY)
    perso.write_files(session, prepared)
    assert card.state is CardState.PERSONALIZED
    perso.erase(session)
    assert card.state is CardState.BLANK
    image = json.loads(card.path.read_text())
    assert image["files"] == {}
    assert image["aa_key"] is None
    assert image["bac_seed"] is None
    assert image["transport_key"] == TRANSPORT_KEY.hex()
    # The same card takes a new personalization and locks.
    again = perso.prepare(sample_holder(portrait_size=100), signer)
    perso.write_files(session, again)
    perso.lock(session)
    assert card.state is CardState.LOCKED


def test_erase_is_refused_after_lock(card: Card) -> None:
    assert _sw(card, CommandApdu(0x80, 0x0E, 0, 0)) == apdu.SW_CLA_NOT_SUPPORTED
    assert card.state is CardState.LOCKED


def test_check_written_refuses_another_cards_record(tmp_path: Path, signer: TestSigner) -> None:
    card = blank_card(tmp_path)
    prepared = perso.prepare(sample_holder(portrait_size=100), signer)
    other = perso.prepare(sample_holder(portrait_size=100), signer)
    session = perso.open_bureau_session(CardTransport(card), TRANSPORT_KEY)
    perso.write_files(session, prepared)
    digest = hashlib.sha256(prepared.sod).digest()
    perso.check_written(session, sod_sha256=digest, aa_public_key_info=prepared.aa_public_key_info)
    with pytest.raises(ChipError, match="security object"):
        perso.check_written(
            session,
            sod_sha256=hashlib.sha256(other.sod).digest(),
            aa_public_key_info=prepared.aa_public_key_info,
        )
    with pytest.raises(ChipCloneError):
        perso.check_written(session, sod_sha256=digest, aa_public_key_info=other.aa_public_key_info)


def test_replayed_aa_answer(card: Card) -> None:
    session = _open(card)
    first = session.internal_authenticate(b"\x01" * 8)
    card.faults = Faults(replay_aa=True)
    assert session.internal_authenticate(b"\x02" * 8) == first
    card.faults = Faults()
    assert session.internal_authenticate(b"\x02" * 8) != first
