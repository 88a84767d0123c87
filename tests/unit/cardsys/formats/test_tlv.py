"""BER-TLV: encodings, limits and every malformed input we refuse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardsys.errors import DecodeError
from cardsys.formats import tlv


@pytest.mark.parametrize(
    ("tag", "value", "encoded"),
    [
        (0x87, bytes.fromhex("016375432908C044F6"), "8709016375432908C044F6"),  # Doc 9303 D.4
        (0x8E, bytes.fromhex("BF8B92D635FF24F8"), "8E08BF8B92D635FF24F8"),
        (0x97, b"\x04", "970104"),
        (0x5F1F, b"AB", "5F1F024142"),
        (0x7F49, b"", "7F4900"),
        (0x5F8101, b"\x01", "5F81010101"),  # three-byte tag
        (0x04, b"\x00" * 0x80, "048180" + "00" * 0x80),
        (0x04, b"\x00" * 0x100, "04820100" + "00" * 0x100),
    ],
)
def test_encode_known_values(tag: int, value: bytes, encoded: str) -> None:
    assert tlv.encode(tag, value).hex().upper() == encoded.upper()
    assert tlv.decode(bytes.fromhex(encoded)) == tlv.Tlv(tag, value)


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, "00"),
        (0x7F, "7F"),
        (0x80, "8180"),
        (0xFF, "81FF"),
        (0x100, "820100"),
        (0x10000, "83010000"),
        (0x1000000, "8401000000"),
    ],
)
def test_length_forms(length: int, encoded: str) -> None:
    assert tlv.encode_length(length).hex().upper() == encoded


def test_non_minimal_long_length_is_accepted_as_ber() -> None:
    assert tlv.decode(bytes.fromhex("04820002AABB")).value == b"\xaa\xbb"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("04", "length missing"),
        ("0403AABB", "value cut short"),
        ("0480AA0000", "indefinite length"),
        ("0485000000000100", "5 length bytes"),
        ("0482FF", "length bytes cut short"),
        ("5F", "multi-byte tag cut short"),
        ("5F80011500", "leading zero continuation"),
        ("5F818181010100", "four-byte tag"),
        ("000100", "padding byte 00 as tag"),
        ("FF0100", "padding byte FF as tag"),
        ("040100FF", "trailing bytes"),
        ("0484FFFFFFFF00", "length over the limit / past the end"),
    ],
)
def test_malformed_input_is_refused(raw: str, reason: str) -> None:
    with pytest.raises(DecodeError):
        tlv.parse_one(bytes.fromhex(raw))


def test_nested_parse_and_find() -> None:
    inner = tlv.encode(0x80, b"x") + tlv.encode(0xA1, tlv.encode(0x81, b"y"))
    item = tlv.parse_one(tlv.encode(0x61, inner))
    assert item.constructed
    assert item.require(0x80).value == b"x"
    assert item.require(0xA1).require(0x81).value == b"y"
    assert item.find(0x99) is None
    with pytest.raises(DecodeError, match="missing"):
        item.require(0x99)


def test_depth_limit() -> None:
    data = tlv.encode(0x04, b"x")
    for _ in range(20):
        data = tlv.encode(0x30, data)
    with pytest.raises(DecodeError, match="deeper"):
        tlv.parse(data, max_depth=8)
    assert tlv.parse(data, max_depth=21)[0].tag == 0x30


def test_item_limit() -> None:
    data = tlv.encode(0x30, tlv.encode(0x04, b"") * 100)
    with pytest.raises(DecodeError, match="too many"):
        tlv.parse(data, max_items=50)


def test_value_length_limit() -> None:
    with pytest.raises(DecodeError, match="limit"):
        tlv.decode(tlv.encode(0x04, b"\x00" * 100), max_length=99)


def test_a_huge_declared_length_fails_fast() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        tlv.decode(bytes.fromhex("0484FFFFFFFE") + b"abc", max_length=1 << 40)


@pytest.mark.parametrize("tag", [0, 0x1F, 0x5F80, 0x5F8181, 0x1000000])
def test_bad_tags_cannot_be_encoded(tag: int) -> None:
    with pytest.raises(DecodeError):
        tlv.encode(tag, b"")


@given(
    st.lists(
        st.tuples(st.sampled_from([0x04, 0x80, 0x5F1F, 0x9F8101, 0x61]), st.binary(max_size=300)),
        max_size=5,
    )
)
def test_round_trip(items: list[tuple[int, bytes]]) -> None:
    encoded = tlv.encode_many(items)
    assert [(i.tag, i.value) for i in tlv.decode_all(encoded)] == items


@given(st.binary(max_size=64))
def test_random_bytes_never_crash(data: bytes) -> None:
    # Either a parse or a DecodeError: any other exception fails the test.
    try:
        items = tlv.parse(data)
    except DecodeError:
        return
    assert b"".join(item.encode() for item in items) or not data
