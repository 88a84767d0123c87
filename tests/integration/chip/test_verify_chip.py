"""The terminal's chip verification through the real stack: pyscard -> pcscd -> vpcd -> card.

Every attack from the issue's "Must hold" list is refused with its own error; a genuine card
verifies.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from cardsys.chip import lds, perso, sod
from cardsys.chip.bac import AccessKey
from cardsys.chip.emulator import Card, Faults
from cardsys.chip.lds import ChipHolder
from cardsys.chip.pcsc import PcscTransport
from cardsys.errors import (
    BadEncodingError,
    BadSignatureError,
    ChipAccessError,
    ChipCloneError,
    ChipPinBlockedError,
    ChipPinError,
    DataGroupHashError,
    ExpiredError,
    MissingDataGroupError,
    NoCardError,
    NotYetValidError,
    RevokedError,
    StatusUnknownError,
    SuspendedError,
    UnknownKeyError,
    UntrustedSignerError,
    VerificationError,
    WrongPurposeError,
)
from cardsys.formats import tlv
from cardsys.formats.statuslist import Status
from cardsys.pki import Purpose, Signer
from tests.fixtures.pcsc import (
    TRANSPORT_KEY,
    CardTransport,
    ChipTerminal,
    PcscStack,
    blank_card,
    make_signer,
    personalized_card,
    sample_holder,
)
from verify.chip import check_chip, verify_chip
from verify.result import Evidence, StatusCheck, VerifiedCard
from verify.trust import TrustStore

pytestmark = pytest.mark.pcsc

HOLDER = sample_holder(status_list=0, status_index=5)
ACCESS = AccessKey(HOLDER.card_number, HOLDER.birth_date, HOLDER.expiry_date)


@pytest.fixture
def terminal() -> ChipTerminal:
    return ChipTerminal(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def reader(pcsc_stack: PcscStack) -> Iterator[Callable[[Card], None]]:
    """Put a card into reader 0 (taken out again after the test)."""
    yield lambda card: pcsc_stack.server.insert(card)
    pcsc_stack.server.remove()


def _card(
    tmp_path: Path,
    terminal: ChipTerminal,
    *,
    signer: Signer | None = None,
    holder: ChipHolder = HOLDER,
) -> tuple[Card, perso.Personalization]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return personalized_card(
        tmp_path, signer or terminal.signer(), holder=holder, signing_time=terminal.now
    )


def _verify(
    trust: TrustStore, now: datetime, *, access: AccessKey = ACCESS, pin: str | None = None
) -> VerifiedCard:
    with PcscTransport(0) as transport:
        return verify_chip(transport, trust, access=access, now=now, pin=pin)


def _written(tmp_path: Path, files: dict[int, bytes], template: perso.Personalization) -> Card:
    """A locked card holding exactly `files` (and the template's secrets)."""
    card = blank_card(tmp_path, "CHIP-EDIT")
    perso.write_card(CardTransport(card), TRANSPORT_KEY, dataclasses.replace(template, files=files))
    card.reset()
    return card


# --- a genuine card ------------------------------------------------------------------------------


def test_genuine_card_verifies(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, prepared = _card(tmp_path, terminal)
    reader(card)
    with PcscTransport(0) as transport:
        verified = verify_chip(transport, terminal.trust(), access=ACCESS, now=terminal.now)
        apdus = transport.apdu_count
    assert verified.evidence is Evidence.CHIP
    assert verified.card_number == verified.document_number == HOLDER.card_number
    assert (verified.surname, verified.given_names) == (HOLDER.surname, HOLDER.given_names)
    assert (verified.sex, verified.birth_date) == (HOLDER.sex, HOLDER.birth_date)
    assert (verified.region, verified.schemes) == (HOLDER.region, HOLDER.schemes)
    assert verified.photo_sha256 == hashlib.sha256(HOLDER.portrait).digest()
    assert verified.expires == datetime(2034, 6, 24, tzinfo=UTC)
    assert verified.signer_kid == terminal.signer().kid
    assert verified.status is StatusCheck.GOOD
    assert verified.checked_at == terminal.now
    # SELECT, GET CHALLENGE, MUTUAL AUTH, 7 files x (SELECT + READ BINARY), INTERNAL AUTH.
    assert apdus == 18
    assert len(prepared.files[lds.file_id(2)]) > 15_000


def test_genuine_card_with_its_pin(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, _ = _card(tmp_path, terminal)
    reader(card)
    assert _verify(terminal.trust(), terminal.now, pin="123456").card_number == HOLDER.card_number
    assert card.pin_tries_left == 3


def test_check_chip_gives_verdicts(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, _ = _card(tmp_path, terminal)
    reader(card)
    with PcscTransport(0) as transport:
        good = check_chip(transport, terminal.trust(), access=ACCESS, now=terminal.now)
    assert good.valid
    assert good.reason == "valid"
    assert good.card is not None
    wrong = dataclasses.replace(ACCESS, birth_date=date(1969, 8, 7))
    with PcscTransport(0) as transport:
        bad = check_chip(transport, terminal.trust(), access=wrong, now=terminal.now)
    assert (bad.valid, bad.reason, bad.card) == (False, "chip_access", None)


def test_empty_reader_is_a_reader_error_not_a_verdict(
    pcsc_stack: PcscStack, terminal: ChipTerminal
) -> None:
    with pytest.raises(NoCardError):
        PcscTransport(1)
    trust = terminal.trust()

    class Gone:
        def transmit(self, apdu: bytes) -> bytes:
            raise NoCardError("the card was pulled out")

    with pytest.raises(NoCardError):
        verify_chip(Gone(), trust, access=ACCESS, now=terminal.now)
    verdict = check_chip(Gone(), trust, access=ACCESS, now=terminal.now)
    assert (verdict.valid, verdict.reason) == (False, "chip_access")


# --- passive authentication -----------------------------------------------------------------------


def test_data_group_altered_after_signing(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    _, prepared = _card(tmp_path / "genuine", terminal)
    files = dict(prepared.files)
    files[lds.file_id(11)] = lds.build_dg11(dataclasses.replace(HOLDER, region="310104"))
    reader(_written(tmp_path, files, prepared))
    with pytest.raises(DataGroupHashError, match="data group 11"):
        _verify(terminal.trust(), terminal.now)


def test_swapped_data_groups(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, _ = _card(tmp_path, terminal)
    card.faults = Faults(swap_files=(lds.file_id(1), lds.file_id(11)))
    reader(card)
    with pytest.raises(DataGroupHashError):
        _verify(terminal.trust(), terminal.now)


def test_listed_data_group_missing(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    _, prepared = _card(tmp_path / "genuine", terminal)
    files = {fid: data for fid, data in prepared.files.items() if fid != lds.file_id(11)}
    files[lds.FID_COM] = lds.build_ef_com((1, 2, 14, 15))
    reader(_written(tmp_path, files, prepared))
    with pytest.raises(MissingDataGroupError, match="data group 11 listed in the SOD"):
        _verify(terminal.trust(), terminal.now)


def test_data_group_present_but_not_signed(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    _, prepared = _card(tmp_path / "genuine", terminal)
    dgs = {dg: prepared.files[lds.file_id(dg)] for dg in lds.DATA_GROUPS if dg != 2}
    files = dict(prepared.files)
    files[lds.FID_SOD] = sod.build_sod(dgs, terminal.signer(), signing_time=terminal.now)
    files[lds.FID_COM] = lds.build_ef_com((1, 11, 14, 15))  # hides DG2 from the index too
    reader(_written(tmp_path, files, prepared))
    with pytest.raises(MissingDataGroupError, match="data group 2 is not listed"):
        _verify(terminal.trust(), terminal.now)


def test_sod_signed_by_an_unknown_signer(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, _ = _card(tmp_path, terminal, signer=make_signer())
    reader(card)
    with pytest.raises(UnknownKeyError):
        _verify(terminal.trust(), terminal.now)


def test_sod_signed_by_a_credential_signer(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, _ = _card(tmp_path, terminal, signer=terminal.signer(Purpose.CREDENTIAL))
    reader(card)
    with pytest.raises(WrongPurposeError):
        _verify(terminal.trust(), terminal.now)


def test_sod_signed_by_a_revoked_signer(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, _ = _card(tmp_path, terminal)
    reader(card)
    assert _verify(terminal.trust(), terminal.now).status is StatusCheck.GOOD
    terminal.ca = terminal.ca.revoke(terminal.ca.signers[Purpose.CHIP_DOCUMENT])
    with pytest.raises(UntrustedSignerError, match="revoked"):
        _verify(terminal.trust(), terminal.now)


def test_sod_signed_by_a_root_signer_missing_from_the_trust_list(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    """Chained to the root and of the right purpose, but not published: not trusted."""
    unlisted = terminal.ca.issue(Purpose.CHIP_DOCUMENT)
    card, _ = _card(tmp_path, terminal, signer=unlisted)
    reader(card)
    with pytest.raises(UnknownKeyError):
        _verify(terminal.trust(), terminal.now)


def test_sod_signature_altered(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    _, prepared = _card(tmp_path / "genuine", terminal)
    files = dict(prepared.files)
    raw = bytearray(files[lds.FID_SOD])
    raw[-5] ^= 0x01  # inside the signature, the last field of the SignerInfo
    files[lds.FID_SOD] = bytes(raw)
    reader(_written(tmp_path, files, prepared))
    with pytest.raises(BadSignatureError):
        _verify(terminal.trust(), terminal.now)


def _sod_without_time(prepared: perso.Personalization, signer: Signer) -> bytes:
    dgs = {dg: prepared.files[lds.file_id(dg)] for dg in lds.DATA_GROUPS}
    return sod.build_sod(dgs, signer)


def test_sod_without_signing_time(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    _, prepared = _card(tmp_path / "genuine", terminal)
    files = dict(prepared.files)
    files[lds.FID_SOD] = _sod_without_time(prepared, terminal.signer())
    reader(_written(tmp_path, files, prepared))
    with pytest.raises(BadEncodingError, match="signing time"):
        _verify(terminal.trust(), terminal.now)


def test_sod_dated_in_the_future(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    _, prepared = _card(tmp_path / "genuine", terminal)
    dgs = {dg: prepared.files[lds.file_id(dg)] for dg in lds.DATA_GROUPS}
    files = dict(prepared.files)
    later = terminal.now + timedelta(hours=2)
    files[lds.FID_SOD] = sod.build_sod(dgs, terminal.signer(), signing_time=later)
    reader(_written(tmp_path, files, prepared))
    with pytest.raises(NotYetValidError):
        _verify(terminal.trust(), terminal.now)


def test_malformed_data_group(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    """Signed garbage is still garbage: refused as bad encoding, never a crash."""
    _, prepared = _card(tmp_path / "genuine", terminal)
    files = dict(prepared.files)
    files[lds.file_id(11)] = tlv.encode(0x6B, tlv.encode(0x80, b"\xff\xfe"))
    dgs = {dg: files[lds.file_id(dg)] for dg in lds.DATA_GROUPS}
    files[lds.FID_SOD] = sod.build_sod(dgs, terminal.signer(), signing_time=terminal.now)
    reader(_written(tmp_path, files, prepared))
    with pytest.raises(BadEncodingError):
        _verify(terminal.trust(), terminal.now)


# --- active authentication and access -------------------------------------------------------------


def test_clone_fails_active_authentication(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, _ = _card(tmp_path, terminal)
    card.faults = Faults(clone_aa_key=True)
    reader(card)
    with pytest.raises(ChipCloneError):
        _verify(terminal.trust(), terminal.now)


def test_replayed_aa_answer_is_refused(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, _ = _card(tmp_path, terminal)
    reader(card)
    trust = terminal.trust()
    _verify(trust, terminal.now)  # the card signed this terminal's challenge once
    card.faults = Faults(replay_aa=True)
    with pytest.raises(ChipCloneError):
        _verify(trust, terminal.now)


@pytest.mark.parametrize(
    "access",
    [
        dataclasses.replace(ACCESS, expiry_date=date(2034, 6, 24)),
        dataclasses.replace(ACCESS, birth_date=date(1970, 8, 6)),
        dataclasses.replace(ACCESS, card_number="SS110000000025"),
    ],
    ids=["expiry", "birth", "number"],
)
def test_wrong_access_key(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None], access: AccessKey
) -> None:
    card, _ = _card(tmp_path, terminal)
    reader(card)
    with pytest.raises(ChipAccessError, match="access key"):
        _verify(terminal.trust(), terminal.now, access=access)


@pytest.mark.parametrize(
    "faults",
    [Faults(wrong_response_mac=True), Faults(wrong_ssc=True), Faults(truncate_response=True)],
    ids=["mac", "ssc", "truncated"],
)
def test_tampered_secure_messaging(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None], faults: Faults
) -> None:
    card, _ = _card(tmp_path, terminal)
    card.faults = faults
    reader(card)
    with pytest.raises(ChipAccessError):
        _verify(terminal.trust(), terminal.now)


def test_wrong_pins_block_the_card(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, _ = _card(tmp_path, terminal)
    reader(card)
    trust = terminal.trust()
    for left in (2, 1):
        with pytest.raises(ChipPinError, match=f"{left} tries left") as caught:
            _verify(trust, terminal.now, pin="000000")
        assert type(caught.value) is ChipPinError
    with pytest.raises(ChipPinBlockedError):
        _verify(trust, terminal.now, pin="000000")
    with pytest.raises(ChipPinBlockedError):
        _verify(trust, terminal.now, pin="123456")
    assert card.pin_tries_left == 0
    # Without a PIN the card still proves who it is (the counter decides what a PIN guards).
    assert _verify(trust, terminal.now).card_number == HOLDER.card_number


# --- validity and status ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"), [(Status.REVOKED, RevokedError), (Status.SUSPENDED, SuspendedError)]
)
def test_card_status_from_the_list(
    tmp_path: Path,
    terminal: ChipTerminal,
    reader: Callable[[Card], None],
    status: Status,
    error: type[VerificationError],
) -> None:
    card, _ = _card(tmp_path, terminal)
    reader(card)
    terminal.statuses.set(HOLDER.status_index, status)
    with pytest.raises(error):
        _verify(terminal.trust(), terminal.now)


def test_status_is_looked_up_at_the_signed_slot(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None]
) -> None:
    card, _ = _card(tmp_path, terminal, holder=dataclasses.replace(HOLDER, status_index=6))
    reader(card)
    terminal.statuses.set(5, Status.REVOKED)
    assert _verify(terminal.trust(), terminal.now).status is StatusCheck.GOOD
    terminal.statuses.set(6, Status.REVOKED)
    with pytest.raises(RevokedError):
        _verify(terminal.trust(), terminal.now)


@pytest.mark.parametrize(
    "holder",
    [
        HOLDER,
        dataclasses.replace(HOLDER, status_list=3),
        dataclasses.replace(HOLDER, status_index=5000),
    ],
    ids=["no-list", "other-list", "outside-list"],
)
def test_status_unknown(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None], holder: ChipHolder
) -> None:
    card, _ = _card(tmp_path, terminal, holder=holder)
    reader(card)
    with pytest.raises(StatusUnknownError):
        _verify(terminal.trust(with_status=holder != HOLDER), terminal.now)


@pytest.mark.parametrize(("days", "valid"), [(0, True), (-1, False)], ids=["last-day", "expired"])
def test_expiry_from_dg1(
    tmp_path: Path, terminal: ChipTerminal, reader: Callable[[Card], None], days: int, valid: bool
) -> None:
    expiry = terminal.now.date() + timedelta(days=days)
    card, _ = _card(tmp_path, terminal, holder=dataclasses.replace(HOLDER, expiry_date=expiry))
    reader(card)
    access = dataclasses.replace(ACCESS, expiry_date=expiry)
    if valid:
        assert _verify(terminal.trust(), terminal.now, access=access).expires > terminal.now
    else:
        with pytest.raises(ExpiredError):
            _verify(terminal.trust(), terminal.now, access=access)
