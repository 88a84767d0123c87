"""cardsys.formats.statuslist: the IETF Token Status List in CWT form."""

from __future__ import annotations

import random
import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsys.errors import DecodeError, SignatureError, ValidationError
from cardsys.formats import cbor, cose, cwt
from cardsys.formats.statuslist import (
    MEDIA_TYPE,
    Status,
    StatusList,
    StatusReference,
    inflate,
    parse_status_list,
    sign_status_list,
    status_reference,
)
from cardsys.pki import Algorithm

IAT = datetime(2025, 1, 1, tzinfo=UTC)
EXP = IAT + timedelta(days=1)
URI = "https://cards.example/status/7"

# draft-ietf-oauth-status-list §4.1: the two byte-array examples and their compressed forms.
ONE_BIT = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
TWO_BIT = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]
# draft §5.2: the example Status List Token (ES256, kid "12"), 1 bit, the ONE_BIT list.
DRAFT_TOKEN = bytes.fromhex(
    "d2845820a2012610781a6170706c69636174696f6e2f7374617475736c6973742b63"
    "7774a1044231325850a502782168747470733a2f2f6578616d706c652e636f6d2f73"
    "74617475736c697374732f31061a648c5bea041a8898dfea19fffe19a8c019fffda2"
    "646269747301636c73744a78dadbb918000217015d584093fa4d01032b18c35e2fe1"
    "101b77fd6cc9440022caa4694450c4e4e9feab4e99d1fa6d9772ce2bf3a12e0323de"
    "d7c982c5e101a5e67f0cbc1e2b6f57ce99c279"
)


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_status_values() -> None:
    assert {s.name: int(s) for s in Status} == {"VALID": 0, "REVOKED": 1, "SUSPENDED": 2}


def test_draft_one_bit_example() -> None:
    lst = StatusList(16, bits=1)
    for index, value in enumerate(ONE_BIT):
        lst.set(index, Status(value))
    assert lst.to_bytes() == bytes([0xB9, 0xA3])
    # Our tuned zlib parameters reproduce the draft's compressed array byte for byte.
    assert lst.compress().hex() == "78dadbb918000217015d"
    assert [lst.get(i) for i in range(16)] == ONE_BIT


def test_draft_two_bit_example_layout() -> None:
    lst = StatusList.decompress(bytes.fromhex("78da3be9f2130003df0207"), bits=2)
    assert lst.to_bytes() == bytes([0xC9, 0x44, 0xF9])
    assert lst.size == 12
    for index, value in enumerate(TWO_BIT):
        if value == 3:
            # 3 is application-specific in the draft; we give it no meaning.
            with pytest.raises(DecodeError):
                lst.get(index)
        else:
            assert lst.get(index) == value
    rebuilt = StatusList(12, bits=2)
    for index, value in enumerate(TWO_BIT):
        if value != 3:
            rebuilt.set(index, Status(value))
    assert rebuilt.to_bytes() == bytes([0xC9 & ~0xC0, 0x44, 0xF9 & ~0xF0])


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_entry_layout_from_the_least_significant_bit(bits: int) -> None:
    lst = StatusList(64, bits=bits)
    lst.set(5, Status.REVOKED)
    raw = lst.to_bytes()
    position = 5 * bits
    expected = bytearray(len(raw))
    expected[position // 8] = 1 << (position % 8)
    assert raw == bytes(expected)
    assert len(raw) == 64 * bits // 8


@settings(max_examples=100)
@given(
    st.sampled_from([1, 2, 4, 8]),
    st.lists(st.tuples(st.integers(0, 499), st.sampled_from(list(Status))), max_size=60),
)
def test_set_get_against_a_model(bits: int, updates: list[tuple[int, Status]]) -> None:
    lst = StatusList(500, bits=bits)
    model: dict[int, Status] = {}
    for index, status in updates:
        if status > (1 << bits) - 1:
            with pytest.raises(ValidationError):
                lst.set(index, status)
            continue
        lst.set(index, status)
        model[index] = status
    for index in range(500):
        assert lst.get(index) == model.get(index, Status.VALID)
    again = StatusList.decompress(lst.compress(), bits=bits)
    assert again.to_bytes() == lst.to_bytes()


def test_setting_back_to_valid_clears_only_that_entry() -> None:
    lst = StatusList(8)
    for index in range(8):
        lst.set(index, Status.SUSPENDED)
    lst.set(3, Status.VALID)
    assert [lst.get(i) for i in range(8)] == [Status.SUSPENDED] * 3 + [Status.VALID] + [
        Status.SUSPENDED
    ] * 4


@pytest.mark.parametrize(
    ("size", "bits"), [(0, 2), (-1, 2), (8, 3), (8, 0), (8, 16)], ids=["0", "-1", "b3", "b0", "b16"]
)
def test_bad_construction(size: int, bits: int) -> None:
    with pytest.raises(ValidationError):
        StatusList(size, bits=bits)


def test_index_bounds() -> None:
    lst = StatusList(10)
    for index in (-1, 10, 2**40):
        with pytest.raises(ValidationError):
            lst.set(index, Status.REVOKED)
        with pytest.raises(ValidationError):
            lst.get(index)
    with pytest.raises(ValidationError):
        StatusList(10, bits=1).set(0, Status.SUSPENDED)


def test_two_to_the_twenty_entries_with_one_percent_revoked_fit_20_kb() -> None:
    size = 1 << 20
    lst = StatusList(size)
    for index in random.Random(7).sample(range(size), size // 100):
        lst.set(index, Status.REVOKED)
    compressed = lst.compress()
    assert len(compressed) <= 20 * 1024
    # Still plain zlib that any inflater reads.
    assert zlib.decompress(compressed) == lst.to_bytes()


# --- inflating hostile input -----------------------------------------------------------


def test_zip_bomb_stops_at_the_cap() -> None:
    bomb = zlib.compress(bytes(50 * 1024 * 1024), 9)  # 50 MiB of zeros in about 50 KB
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="beyond"):
            inflate(bomb, 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("empty", b""),
        ("truncated", zlib.compress(bytes(1000))[:-3]),
        ("header only", b"\x78\xda"),
        ("trailing data", zlib.compress(b"\x01" * 10) + b"\x00"),
        ("two streams", zlib.compress(b"a") + zlib.compress(b"b")),
        ("raw deflate", zlib.compressobj(9, zlib.DEFLATED, -15).compress(b"abc") + b"\x03\x00"),
        ("gzip", zlib.compressobj(9, zlib.DEFLATED, 31).compress(b"") + b"\x03\x00"),
        ("bad checksum", zlib.compress(b"status")[:-1] + b"\x00"),
        ("bad header check", b"\x78\xdb" + zlib.compress(b"x")[2:]),
        ("preset dictionary", zlib.compressobj(zdict=b"dictionary").compress(b"d") + b""),
        ("not zlib", b"\xd2\x84\x40\xa0"),
    ],
)
def test_bad_zlib_is_refused(case: str, data: bytes) -> None:
    with pytest.raises(DecodeError):
        inflate(data, 1 << 20)


def test_decompress_refuses_empty_and_oversized_lists() -> None:
    with pytest.raises(DecodeError):
        StatusList.decompress(zlib.compress(b""), bits=2)
    with pytest.raises(DecodeError):
        StatusList.decompress(zlib.compress(bytes(101)), bits=2, max_size=100)
    assert StatusList.decompress(zlib.compress(bytes(100)), bits=2, max_size=100).size == 400


# --- signed tokens -------------------------------------------------------------------


def _published(key: ec.EllipticCurvePrivateKey, lst: StatusList) -> bytes:
    return sign_status_list(
        lst,
        uri=URI,
        iat=IAT,
        exp=EXP,
        ttl=timedelta(hours=1),
        sign=cose.key_signer(key),
        alg=Algorithm.ES256,
        kid=b"statuskd",
    )


def test_sign_and_parse(key: ec.EllipticCurvePrivateKey) -> None:
    lst = StatusList(1 << 12)
    lst.set(0, Status.REVOKED)
    lst.set(4095, Status.SUSPENDED)
    parsed = parse_status_list(_published(key, lst))
    assert (parsed.uri, parsed.iat, parsed.exp) == (URI, IAT, EXP)
    assert parsed.ttl == timedelta(hours=1)
    assert (parsed.bits, parsed.size) == (2, 1 << 12)
    assert parsed.lookup(0) is Status.REVOKED
    assert parsed.lookup(4095) is Status.SUSPENDED
    assert parsed.lookup(1) is Status.VALID
    assert parsed.message.protected[cose.TYP] == MEDIA_TYPE
    assert parsed.message.kid == b"statuskd"
    # Parsing checks structure only; the signature is the trust layer's to verify.
    parsed.message.verify(key.public_key())
    with pytest.raises(SignatureError):
        parsed.message.verify(ec.generate_private_key(ec.SECP256R1()).public_key())


def test_every_bit_flip_is_refused_by_parse_or_signature(key: ec.EllipticCurvePrivateKey) -> None:
    lst = StatusList(64)
    lst.set(9, Status.REVOKED)
    token = _published(key, lst)
    for bit in range(8 * len(token)):
        tampered = bytearray(token)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises((DecodeError, SignatureError)):
            parse_status_list(bytes(tampered)).message.verify(key.public_key())


def test_draft_example_token_parses() -> None:
    parsed = parse_status_list(DRAFT_TOKEN)
    assert parsed.uri == "https://example.com/statuslists/1"
    assert parsed.iat == datetime.fromtimestamp(1686920170, tz=UTC)
    assert parsed.exp == datetime.fromtimestamp(2291720170, tz=UTC)
    assert parsed.ttl == timedelta(seconds=43200)
    assert parsed.bits == 1
    assert [parsed.lookup(i) for i in range(16)] == ONE_BIT
    assert parsed.message.kid == b"12"


def test_lookup_bounds_and_unknown_values() -> None:
    parsed = parse_status_list(DRAFT_TOKEN)
    for index in (-1, 16, 1 << 30):
        with pytest.raises(DecodeError, match="outside"):
            parsed.lookup(index)


def _token(
    key: ec.EllipticCurvePrivateKey,
    claims: dict[int | str, Any],
    protected: dict[int | str, Any] | None = None,
    *,
    tag: bool = True,
) -> bytes:
    # Plain CBOR, not encode_claims: an attacker is not bound by our encoder's checks.
    message = cose.sign1(
        cbor.dumps(claims),
        sign=cose.key_signer(key),
        alg=Algorithm.ES256,
        kid=b"k",
        protected_extra={cose.TYP: MEDIA_TYPE} if protected is None else protected,
    )
    return message.encode(tag=tag)


def _claims(**changes: Any) -> dict[int | str, Any]:
    claims: dict[int | str, Any] = {
        cwt.SUB: URI,
        cwt.IAT: cwt.to_numeric_date(IAT),
        cwt.EXP: cwt.to_numeric_date(EXP),
        cwt.TTL: 3600,
        cwt.STATUS_LIST: {"bits": 2, "lst": zlib.compress(bytes(8))},
    }
    names = {"sub": cwt.SUB, "iat": cwt.IAT, "exp": cwt.EXP, "ttl": cwt.TTL, "sl": cwt.STATUS_LIST}
    for name, value in changes.items():
        if value is None:
            del claims[names[name]]
        else:
            claims[names[name]] = value
    return claims


def test_a_well_formed_hand_built_token_parses(key: ec.EllipticCurvePrivateKey) -> None:
    assert parse_status_list(_token(key, _claims())).size == 32
    assert parse_status_list(_token(key, _claims(ttl=None))).ttl is None


@pytest.mark.parametrize(
    ("case", "changes"),
    [
        ("no sub", {"sub": None}),
        ("empty sub", {"sub": ""}),
        ("no iat", {"iat": None}),
        ("no exp", {"exp": None}),
        ("zero ttl", {"ttl": 0}),
        ("negative ttl", {"ttl": -5}),
        ("absurd ttl", {"ttl": 2**40}),
        ("no status_list", {"sl": None}),
        ("status_list not a map", {"sl": [2, b""]}),
        ("bits 3", {"sl": {"bits": 3, "lst": zlib.compress(b"\0")}}),
        ("bits true", {"sl": {"bits": True, "lst": zlib.compress(b"\0")}}),
        ("bits missing", {"sl": {"lst": zlib.compress(b"\0")}}),
        ("integer keys", {"sl": {1: 2, 2: zlib.compress(b"\0")}}),
        ("lst text", {"sl": {"bits": 2, "lst": "eNrbuRgAAhcBXQ"}}),
        ("lst not zlib", {"sl": {"bits": 2, "lst": b"\x00\x01"}}),
        ("lst empty list", {"sl": {"bits": 2, "lst": zlib.compress(b"")}}),
        ("lst zip bomb", {"sl": {"bits": 2, "lst": zlib.compress(bytes(4 << 20), 9)}}),
    ],
)
def test_structural_errors(
    key: ec.EllipticCurvePrivateKey, case: str, changes: dict[str, Any]
) -> None:
    with pytest.raises(DecodeError):
        parse_status_list(_token(key, _claims(**changes)))


@pytest.mark.parametrize(
    "protected",
    [{}, {cose.TYP: "application/cwt"}, {cose.TYP: 61}, {cose.CONTENT_TYPE: MEDIA_TYPE}],
    ids=["none", "other", "integer", "as content type"],
)
def test_typ_must_be_statuslist_cwt(
    key: ec.EllipticCurvePrivateKey, protected: dict[int | str, Any]
) -> None:
    with pytest.raises(DecodeError, match="typ"):
        parse_status_list(_token(key, _claims(), protected))


def test_typ_in_the_unprotected_header_does_not_count(key: ec.EllipticCurvePrivateKey) -> None:
    message = cose.sign1(
        cwt.encode_claims(_claims()),
        sign=cose.key_signer(key),
        alg=Algorithm.ES256,
        kid=b"k",
        unprotected={cose.TYP: MEDIA_TYPE},
    )
    with pytest.raises(DecodeError, match="typ"):
        parse_status_list(message.encode())


def test_untagged_token_is_refused(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(DecodeError, match="tag"):
        parse_status_list(_token(key, _claims(), tag=False))


@pytest.mark.parametrize("data", [b"", b"\xd2", b"\xd2\x84", DRAFT_TOKEN[:-1], "d284"], ids=repr)
def test_garbage_is_refused(data: Any) -> None:
    with pytest.raises(DecodeError):
        parse_status_list(data)


def test_parse_caps_the_inflated_size(key: ec.EllipticCurvePrivateKey) -> None:
    token = _token(key, _claims(sl={"bits": 2, "lst": zlib.compress(bytes(4096))}))
    assert parse_status_list(token, max_size=4096).size == 4096 * 4
    with pytest.raises(DecodeError):
        parse_status_list(token, max_size=4095)


def test_sign_status_list_refuses_bad_times(key: ec.EllipticCurvePrivateKey) -> None:
    lst = StatusList(8)
    sign = cose.key_signer(key)
    common: dict[str, Any] = {"uri": URI, "sign": sign, "alg": Algorithm.ES256, "kid": None}
    with pytest.raises(ValidationError):
        sign_status_list(lst, iat=EXP, exp=IAT, ttl=timedelta(hours=1), **common)
    with pytest.raises(ValidationError):
        sign_status_list(lst, iat=IAT, exp=EXP, ttl=timedelta(0), **common)
    with pytest.raises(ValidationError):
        sign_status_list(lst, iat=IAT, exp=EXP, ttl=timedelta(seconds=1.5), **common)


def test_status_reference_round_trip() -> None:
    reference = StatusReference(idx=123456, uri=URI)
    claims = {cwt.EXP: 2_000_000_000, cwt.STATUS: reference.claim()}
    decoded = cwt.decode_claims(cwt.encode_claims(claims))
    assert status_reference(decoded) == reference


def test_draft_referenced_token_status_claim() -> None:
    # draft §6.3: the example Referenced Token in CWT form (its payload).
    message = cose.Sign1.decode(
        bytes.fromhex(
            "d28443a10126a1044231325866a502653132333435017368747470733a2f2f657861"
            "6d706c652e636f6d061a648c5bea041a8898dfea19ffffa16b7374617475735f6c69"
            "7374a2636964780063757269782168747470733a2f2f6578616d706c652e636f6d2f"
            "7374617475736c697374732f315840340f7efea10f1a36dc4797636a17b4dd4848b6"
            "8997d1d10e8cceb3a38ff33b3dda72964a83989f6cf98560c2fc97a08bc8977cc6b0"
            "f84cfedab93d3e4481e938"
        )
    )
    claims = cwt.decode_claims(message.payload)
    assert status_reference(claims) == StatusReference(0, "https://example.com/statuslists/1")


@pytest.mark.parametrize(
    "status",
    [
        None,
        [],
        {},
        {"status_list": []},
        {"status_list": {"uri": URI}},
        {"status_list": {"idx": 0}},
        {"status_list": {"idx": -1, "uri": URI}},
        {"status_list": {"idx": True, "uri": URI}},
        {"status_list": {"idx": "7", "uri": URI}},
        {"status_list": {"idx": 7, "uri": ""}},
        {"status_list": {"idx": 7, "uri": b"https://x"}},
    ],
    ids=repr,
)
def test_bad_status_references_are_refused(status: Any) -> None:
    claims: dict[int, Any] = {cwt.EXP: 2_000_000_000}
    if status is not None:
        claims[cwt.STATUS] = status
    with pytest.raises(DecodeError):
        status_reference(claims)
