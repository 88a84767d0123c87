"""LDS files round-trip; the SOD signs them and refuses every alteration."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.chip import lds, sod
from cardsys.errors import (
    DataGroupHashError,
    DecodeError,
    MissingDataGroupError,
    SignatureError,
    ValidationError,
)
from cardsys.formats import tlv
from tests.fixtures.pcsc import TestSigner, make_signer, sample_holder


@pytest.fixture(scope="module")
def signer() -> TestSigner:
    return make_signer()


@pytest.fixture(scope="module")
def aa_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_aid_is_proprietary() -> None:
    assert lds.AID[0] >> 4 == 0xF
    assert bytes.fromhex("F0434152445359530" + "1") == lds.AID


def test_data_groups_round_trip(aa_key: ec.EllipticCurvePrivateKey) -> None:
    holder = sample_holder(portrait_size=2000)
    dgs = lds.build_data_groups(holder, aa_key.public_key())
    assert sorted(dgs) == [1, 2, 11, 14, 15]
    assert [tlv.decode(dgs[dg]).tag for dg in sorted(dgs)] == [0x61, 0x75, 0x6B, 0x6E, 0x6F]
    assert lds.parse_holder(dgs) == holder
    assert lds.parse_dg14(dgs[14]) == "0.4.0.127.0.7.1.1.4.1.3"
    assert lds.parse_ef_com(lds.build_ef_com()) == (1, 2, 11, 14, 15)
    assert [lds.file_id(dg) for dg in lds.DATA_GROUPS] == [0x0101, 0x0102, 0x010B, 0x010E, 0x010F]


@pytest.mark.parametrize(
    ("dg", "data"),
    [
        (1, tlv.encode(0x61, tlv.encode(0x80, b"X"))),  # fields missing
        (1, tlv.encode(0x75, b"")),  # wrong outer tag
        (2, tlv.encode(0x75, tlv.encode(0x80, b"\x02") + tlv.encode(0x5F2E, b"x"))),  # not JPEG
        (11, tlv.encode(0x6B, tlv.encode(0x80, b"1") + tlv.encode(0x80, b"2"))),  # repeated
    ],
)
def test_malformed_data_groups(dg: int, data: bytes) -> None:
    parse = {1: lds.parse_dg1, 2: lds.parse_dg2, 11: lds.parse_dg11}[dg]
    with pytest.raises(DecodeError):
        parse(data)


def test_bad_date_in_dg1(aa_key: ec.EllipticCurvePrivateKey) -> None:
    dg1 = lds.build_dg1(sample_holder(portrait_size=10))
    with pytest.raises(DecodeError, match="date"):
        lds.parse_dg1(dg1.replace(b"19690806", b"19691306"))


def test_holder_validation() -> None:
    with pytest.raises(ValidationError):
        replace(sample_holder(portrait_size=10), sex="Q")
    with pytest.raises(ValidationError):
        replace(sample_holder(portrait_size=10), portrait=b"")


def _sod(signer: TestSigner, aa_key: ec.EllipticCurvePrivateKey) -> tuple[bytes, dict[int, bytes]]:
    dgs = lds.build_data_groups(sample_holder(portrait_size=500), aa_key.public_key())
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return sod.build_sod(dgs, signer, signing_time=when), dgs


def test_sod_round_trip(signer: TestSigner, aa_key: ec.EllipticCurvePrivateKey) -> None:
    data, dgs = _sod(signer, aa_key)
    parsed = sod.parse_sod(data)
    assert parsed.verify_signature() == signer.certificate
    assert parsed.hash_algorithm == "sha256"
    assert sorted(parsed.hashes) == [1, 2, 11, 14, 15]
    assert parsed.signing_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    parsed.check_data_groups(dgs)


def test_altered_data_group(signer: TestSigner, aa_key: ec.EllipticCurvePrivateKey) -> None:
    data, dgs = _sod(signer, aa_key)
    parsed = sod.parse_sod(data)
    altered = dict(dgs)
    altered[1] = dgs[1].replace(b"Anna", b"Anne")
    with pytest.raises(DataGroupHashError):
        parsed.check_data_groups(altered)
    with pytest.raises(MissingDataGroupError):
        parsed.check_data_groups({k: v for k, v in dgs.items() if k != 15})
    with pytest.raises(MissingDataGroupError):
        parsed.check_data_groups({**dgs, 3: b"\x63\x00"})


def test_sod_signed_by_another_key(aa_key: ec.EllipticCurvePrivateKey) -> None:
    honest = make_signer()
    forger = TestSigner(ec.generate_private_key(ec.SECP256R1()), honest.certificate, honest.root)
    data, _ = _sod(forger, aa_key)
    with pytest.raises(SignatureError):
        sod.parse_sod(data).verify_signature()


def test_no_tampering_changes_what_is_trusted(
    signer: TestSigner, aa_key: ec.EllipticCurvePrivateKey
) -> None:
    data, dgs = _sod(signer, aa_key)
    original = sod.parse_sod(data)
    key = signer.certificate.public_key()
    for position in range(len(data)):
        tampered = bytearray(data)
        tampered[position] ^= 0x04
        try:
            parsed = sod.parse_sod(bytes(tampered))
            parsed.verify_signature()
            parsed.check_data_groups(dgs)
        except (DecodeError, SignatureError, DataGroupHashError, MissingDataGroupError):
            continue
        # Bytes nobody signs (the certificate's own signature, CMS bookkeeping) may change;
        # what the terminal trusts may not. The certificate's issuer signature is checked by
        # cardsys.pki.check_signer at the terminal.
        assert parsed.hashes == original.hashes, position
        assert parsed.e_content == original.e_content, position
        assert parsed.certificate.public_key() == key, position


@pytest.mark.parametrize(
    "data",
    [b"", b"\x77\x00", b"\x77\x03\x30\x01\x00", tlv.encode(0x76, b"\x30\x00"), b"\x77\x82\xff"],
)
def test_malformed_sod(data: bytes) -> None:
    with pytest.raises(DecodeError):
        sod.parse_sod(data)


def test_sod_needs_data_groups(signer: TestSigner) -> None:
    with pytest.raises(SignatureError):
        sod.build_sod({}, signer)


@pytest.mark.parametrize(
    ("status_list", "status_index"),
    [(0, 0), (0, 255), (1, 256), (7, (1 << 20) - 1), (2**32 - 1, 0)],
)
def test_status_slot_round_trips_in_dg11(status_list: int, status_index: int) -> None:
    holder = sample_holder(portrait_size=10, status_list=status_list, status_index=status_index)
    parsed = lds.parse_dg11(lds.build_dg11(holder))
    assert (parsed.status_list, parsed.status_index) == (status_list, status_index)


def _dg11_with_slot(number: bytes, index: bytes) -> bytes:
    schemes = tlv.encode(0xA2, tlv.encode(0x80, b"basic"))
    body = tlv.encode_many(((0x80, b"1"), (0x81, b"110105")))
    return tlv.encode(0x6B, body + schemes + tlv.encode(0x83, number) + tlv.encode(0x84, index))


@pytest.mark.parametrize(
    ("number", "index"),
    [
        (b"", b"\x01"),  # empty integer
        (b"\x00\x01", b"\x01"),  # not minimal: the same slot must have one encoding
        (b"\x01", b"\x00\x00\x00\x00\x01"),  # longer than 4 bytes
    ],
)
def test_malformed_status_slot(number: bytes, index: bytes) -> None:
    assert lds.parse_dg11(_dg11_with_slot(b"\x01", b"\x02")).status_index == 2
    with pytest.raises(DecodeError):
        lds.parse_dg11(_dg11_with_slot(number, index))


def test_dg11_without_a_status_slot_is_refused() -> None:
    schemes = tlv.encode(0xA2, tlv.encode(0x80, b"basic"))
    body = tlv.encode_many(((0x80, b"1"), (0x81, b"110105"))) + schemes
    with pytest.raises(DecodeError, match="lacks tag 83"):
        lds.parse_dg11(tlv.encode(0x6B, body))


@pytest.mark.parametrize("value", [-1, 2**32, True])
def test_holder_status_slot_validation(value: int) -> None:
    with pytest.raises(ValidationError):
        replace(sample_holder(portrait_size=10), status_index=value)
