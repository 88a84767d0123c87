"""cardsys.formats.cbor: deterministic encoding and a decoder that treats input as hostile."""

from __future__ import annotations

import datetime
import decimal
import math
import tracemalloc
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsys.errors import DecodeError
from cardsys.formats import cbor

# RFC 8949 Appendix A (the deterministic subset: shortest forms, definite lengths).
RFC8949_EXAMPLES: list[tuple[Any, str]] = [
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (0.0, "f90000"),
    (-0.0, "f98000"),
    (1.0, "f93c00"),
    (1.1, "fb3ff199999999999a"),
    (1.5, "f93e00"),
    (65504.0, "f97bff"),
    (100000.0, "fa47c35000"),
    (3.4028234663852886e38, "fa7f7fffff"),
    (1.0e300, "fb7e37e43c8800759c"),
    (5.960464477539063e-8, "f90001"),
    (0.00006103515625, "f90400"),
    (-4.0, "f9c400"),
    (-4.1, "fbc010666666666666"),
    (math.inf, "f97c00"),
    (-math.inf, "f9fc00"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    (
        {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
        "a56161614161626142616361436164614461656145",
    ),
]


@pytest.mark.parametrize(("value", "expected"), RFC8949_EXAMPLES)
def test_dumps_matches_rfc8949_examples(value: Any, expected: str) -> None:
    assert cbor.dumps(value).hex() == expected


@pytest.mark.parametrize(("value", "encoded"), RFC8949_EXAMPLES)
def test_loads_reads_rfc8949_examples(value: Any, encoded: str) -> None:
    assert cbor.loads(bytes.fromhex(encoded)) == value


def test_nan_is_the_canonical_half_precision_nan() -> None:
    assert cbor.dumps(math.nan).hex() == "f97e00"
    assert math.isnan(cbor.loads(bytes.fromhex("f97e00")))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 8949 §4.2.1: bytewise order of encoded keys. cbor2's canonical mode puts the
        # shorter "a" (0x6161) first; the integer key 1000 (0x1903e8) sorts before it.
        ({"a": 1, 1000: 2}, "a21903e802616101"),
        # 100000 (0x1a..) < -1 (0x20) < h'0102' (0x42..) < "a" (0x61..)
        ({b"\x01\x02": 1, "a": 2, -1: 3, 100000: 4}, "a41a000186a004200342010201616102"),
        ({10: 0, 100: 0, -1: 0, "z": 0, "aa": 0}, "a50a001864002000617a0062616100"),
    ],
)
def test_map_keys_sort_bytewise_not_length_first(value: dict[Any, int], expected: str) -> None:
    assert cbor.dumps(value).hex() == expected


def test_cbor2_canonical_mode_is_not_rfc8949_deterministic() -> None:
    # Why dumps is our own: this is the behaviour we must not inherit.
    assert cbor2.dumps({"a": 1, 1000: 2}, canonical=True) != cbor.dumps({"a": 1, 1000: 2})


def test_insertion_order_does_not_change_the_encoding() -> None:
    assert cbor.dumps({2: "b", 1: "a", "x": 0}) == cbor.dumps({"x": 0, 1: "a", 2: "b"})


def test_tuples_encode_as_arrays_and_tags_as_tags() -> None:
    assert cbor.dumps((1, 2)) == cbor.dumps([1, 2])
    assert cbor.dumps(cbor.CBORTag(18, [])).hex() == "d280"


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        frozenset({1}),
        datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        datetime.date(2024, 1, 1),
        decimal.Decimal("1.5"),
        1j,
        object(),
        bytearray(b"x"),
        2**64,
        -(2**64) - 1,
        {(1, 2): 0},
        {1.5: 0},
        {True: 0},
        {None: 0},
    ],
    ids=repr,
)
def test_dumps_refuses_types_we_must_not_emit(value: object) -> None:
    with pytest.raises(TypeError):
        cbor.dumps(value)


def test_dumps_refuses_lone_surrogates_and_excess_depth() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        cbor.dumps("\ud800")
    deep: list[Any] = []
    for _ in range(20):
        deep = [deep]
    with pytest.raises(ValueError, match="nesting"):
        cbor.dumps(deep)
    assert cbor.dumps(deep, max_depth=21).startswith(b"\x81" * 20)


# --- values for property tests ------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
keys = (
    st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300)
@given(values)
def test_round_trip_and_determinism(value: Any) -> None:
    encoded = cbor.dumps(value)
    decoded = cbor.loads(encoded)
    assert decoded == value
    # Re-encoding what we decoded gives the same bytes: one encoding per value.
    assert cbor.dumps(decoded) == encoded
    # An independent decoder reads it the same way.
    assert cbor2.loads(encoded) == value


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    _decodes_to_emittable_or_refuses(data)


def _decodes_to_emittable_or_refuses(data: bytes) -> None:
    """Either DecodeError, or a value we can emit again, stable under a round trip."""
    try:
        value = cbor.loads(data)
    except DecodeError:
        return
    encoded = cbor.dumps(value)
    assert cbor.dumps(cbor.loads(encoded)) == encoded


@settings(max_examples=200)
@given(values, st.data())
def test_bit_flips_never_crash(value: Any, data: st.DataObject) -> None:
    encoded = bytearray(cbor.dumps(value))
    bit = data.draw(st.integers(min_value=0, max_value=8 * len(encoded) - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    _decodes_to_emittable_or_refuses(bytes(encoded))


# --- refusals -------------------------------------------------------------------------------

MALFORMED: list[tuple[str, str]] = [
    ("empty", ""),
    ("truncated 1-byte argument", "18"),
    ("truncated 2-byte argument", "1901"),
    ("truncated 8-byte argument", "1b000000"),
    ("truncated byte string", "4301"),
    ("truncated text string", "6261"),
    ("truncated array", "8201"),
    ("truncated map value", "a101"),
    ("truncated float", "fa4000"),
    ("trailing byte", "0000"),
    ("trailing item after map", "a0a0"),
    ("indefinite byte string", "5f4100ff"),
    ("indefinite text string", "7f6161ff"),
    ("indefinite array", "9f01ff"),
    ("indefinite map", "bf0101ff"),
    ("lone break", "ff"),
    ("reserved additional info 28", "1c"),
    ("reserved additional info 29 on bytes", "5d"),
    ("reserved additional info 30 on map", "be"),
    ("undefined", "f7"),
    ("unassigned simple 0", "e0"),
    ("unassigned simple 19", "f3"),
    ("one-byte simple", "f820"),
    ("one-byte simple below 32", "f801"),
    ("datetime string tag 0", "c0781c323032342d30312d30315430303a30303a30305a"),
    ("epoch tag 1", "c100"),
    ("bignum tag 2", "c249010000000000000000"),
    ("decimal fraction tag 4", "c482210f"),
    ("shareable tag 28", "d81c80"),
    ("shared reference tag 29", "d81d00"),
    ("regex tag 35", "d82361"),
    ("set tag 258", "d9010280"),
    ("COSE tag 18 where no tag is allowed", "d280"),
    ("self-describe tag 55799", "d9d9f700"),
    ("array as map key", "a18000"),
    ("map as map key", "a1a000"),
    ("null as map key", "a1f600"),
    ("float as map key", "a1f93c0000"),
    ("tagged map key", "a1c10000"),
    ("duplicate integer keys", "a201000100"),
    ("duplicate text keys", "a2616100616101"),
    ("invalid UTF-8", "62c328"),
    ("lone continuation byte", "6180"),
    ("encoded surrogate", "63eda080"),
    ("2^63-element array", "9b7fffffffffffffff"),
    ("2^64-1-element array", "9bffffffffffffffff"),
    ("2^63-byte byte string", "5b7fffffffffffffff"),
    ("2^63-byte text string", "7b7fffffffffffffff"),
    ("2^63-pair map", "bb7fffffffffffffff"),
    ("2^32-1 array", "9affffffff00"),
    ("map count doubled beyond input", "a30000000000"),
    ("array count one beyond input", "830000"),
]


@pytest.mark.parametrize(("case", "hex_data"), MALFORMED, ids=[c for c, _ in MALFORMED])
def test_malformed_input_raises_decode_error(case: str, hex_data: str) -> None:
    with pytest.raises(DecodeError):
        cbor.loads(bytes.fromhex(hex_data))


@pytest.mark.parametrize("header", ["9b", "5b", "7b", "bb"])
def test_huge_declared_lengths_fail_without_allocating(header: str) -> None:
    data = bytes.fromhex(header + "7fffffffffffffff") + b"\x00" * 64
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="exceeds the input"):
            cbor.loads(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


@pytest.mark.parametrize("opener", [b"\x81", b"\xa1\x00"])
def test_ten_thousand_levels_of_nesting_are_refused(opener: bytes) -> None:
    with pytest.raises(DecodeError, match="deeper"):
        cbor.loads(opener * 10_000 + b"\x00")


def test_depth_limit_is_exact() -> None:
    assert cbor.loads(b"\x81" * 16 + b"\x00") is not None
    with pytest.raises(DecodeError, match="deeper"):
        cbor.loads(b"\x81" * 17 + b"\x00")
    assert cbor.loads(b"\x81" * 4 + b"\x00", max_depth=4) == [[[[0]]]]
    with pytest.raises(DecodeError):
        cbor.loads(b"\x81" * 5 + b"\x00", max_depth=4)


def test_tag_bombs_are_refused_even_for_allowed_tags() -> None:
    with pytest.raises(DecodeError, match="deeper"):
        cbor.loads(b"\xd2" * 10_000 + b"\x00", tags={18})
    with pytest.raises(DecodeError, match="tag"):
        cbor.loads(b"\xd2\x00")
    tagged = cbor.loads(b"\xd2\x80", tags={18})
    assert isinstance(tagged, cbor2.CBORTag)
    assert tagged.tag == 18
    assert list(tagged.value) == []


def test_item_count_limit() -> None:
    # An array header plus 49 items is 50 items.
    data = cbor.dumps([0] * 49)
    assert cbor.loads(data, max_items=50) == [0] * 49
    with pytest.raises(DecodeError, match="items"):
        cbor.loads(data, max_items=49)


def test_size_limit() -> None:
    data = cbor.dumps(b"x" * 1000)
    assert cbor.loads(data, max_size=len(data)) == b"x" * 1000
    with pytest.raises(DecodeError, match="exceeds"):
        cbor.loads(data, max_size=len(data) - 1)
    with pytest.raises(DecodeError):
        cbor.loads(cbor.dumps(b"x" * cbor.DEFAULT_MAX_SIZE))


@pytest.mark.parametrize("value", ["a0", 160, None, ["a0"]])
def test_non_bytes_input_is_a_decode_error(value: object) -> None:
    with pytest.raises(DecodeError):
        cbor.loads(value)  # type: ignore[arg-type]


def test_bytearray_and_memoryview_are_accepted() -> None:
    assert cbor.loads(bytearray(b"\x82\x01\x02")) == [1, 2]
    assert cbor.loads(memoryview(b"\x82\x01\x02")) == [1, 2]


def test_each_call_uses_a_fresh_decoder() -> None:
    # CVE-2025-68131 leaked decoder state between messages. Decoding the same bytes after a
    # failed, hostile message gives the same result as before it.
    good = cbor.dumps({"k": [1, b"v"]})
    before = cbor.loads(good)
    with pytest.raises(DecodeError):
        cbor.loads(bytes.fromhex("d81c81d81d00"))
    with pytest.raises(DecodeError):
        cbor.loads(b"\x81" * 40 + b"\x00")
    assert cbor.loads(good) == before


def test_encode_head_uses_the_shortest_form() -> None:
    assert cbor.encode_head(2, 23) == b"\x57"
    assert cbor.encode_head(2, 24) == b"\x58\x18"
    assert cbor.encode_head(2, 256) == b"\x59\x01\x00"
    assert cbor.encode_head(4, 65536) == b"\x9a\x00\x01\x00\x00"
    assert cbor.encode_head(0, 2**32) == b"\x1b\x00\x00\x00\x01\x00\x00\x00\x00"
