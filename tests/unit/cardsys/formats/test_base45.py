"""cardsys.formats.base45: RFC 9285, strict decoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsys.errors import DecodeError
from cardsys.formats import base45


def reference_decode(text: str) -> bytes:
    """A plain per-group decoder written straight from RFC 9285 §4, to compare against."""
    out = bytearray()
    for start in range(0, len(text), 3):
        group = text[start : start + 3]
        if len(group) == 1 or any(c not in base45.ALPHABET for c in group):
            raise DecodeError("invalid")
        value = sum(base45.ALPHABET.index(c) * 45**i for i, c in enumerate(group))
        if value > (0xFFFF if len(group) == 3 else 0xFF):
            raise DecodeError("invalid")
        out += value.to_bytes(len(group) - 1, "big")
    return bytes(out)


# RFC 9285 §4.3 (encoding examples) and §4.4 (decoding example).
RFC9285_EXAMPLES = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
]


@pytest.mark.parametrize(("data", "text"), RFC9285_EXAMPLES)
def test_rfc9285_examples_encode(data: bytes, text: str) -> None:
    assert base45.encode(data) == text


@pytest.mark.parametrize(("data", "text"), RFC9285_EXAMPLES)
def test_rfc9285_examples_decode(data: bytes, text: str) -> None:
    assert base45.decode(text) == data


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", ""),
        (b"\x00", "00"),
        (b"\xff", "U5"),  # 255 = 30 + 45*5: the largest pair
        (b"\x00\x00", "000"),
        (b"\xff\xff", "FGW"),  # 65535 = 15 + 45*16 + 2025*32: the largest triplet
        (b"\x01\x00\xff", "V50U5"),
    ],
)
def test_edges(data: bytes, text: str) -> None:
    assert base45.encode(data) == text
    assert base45.decode(text) == data


def test_alphabet_is_rfc9285_and_qr_alphanumeric() -> None:
    assert base45.ALPHABET == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
    assert len(set(base45.ALPHABET)) == 45


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_round_trip(data: bytes) -> None:
    text = base45.encode(data)
    assert set(text) <= set(base45.ALPHABET)
    assert len(text) == 3 * (len(data) // 2) + 2 * (len(data) % 2)
    assert base45.decode(text) == data


@settings(max_examples=500)
@given(st.text(alphabet=base45.ALPHABET, max_size=60))
def test_agrees_with_the_reference_decoder(text: str) -> None:
    try:
        expected = reference_decode(text)
    except DecodeError:
        with pytest.raises(DecodeError):
            base45.decode(text)
    else:
        assert base45.decode(text) == expected
        # Strict decoding: every accepted text is the one encoding of its bytes.
        assert base45.encode(expected) == text


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_arbitrary_text_decodes_or_raises_decode_error(text: str) -> None:
    try:
        data = base45.decode(text)
    except DecodeError:
        return
    assert base45.encode(data) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "length"),
        ("0000", "length"),
        ("BB8B", "length"),
        ("bb8", "character"),  # lower case is not in the alphabet
        ("BB8\n", "length"),
        ("BB8\n0", "character"),
        ("BB_", "character"),
        ("BB8=", "length"),
        ("BB=00", "character"),
        ("#00", "character"),
        ("\u00c400", "non-ASCII"),
        ("00\u0660", "non-ASCII"),  # an Arabic-Indic digit zero
        ("GGW", "above 65535"),  # 65536
        ("ZZZ", "above 65535"),
        (":::", "above 65535"),  # 91124, the largest three digits can say
        ("000GGW", "above 65535"),  # the second group is the bad one
        ("V5", "above 255"),  # 256
        ("::", "above 255"),
        ("000::", "above 255"),
    ],
)
def test_invalid_input_is_refused(text: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        base45.decode(text)


def test_error_names_the_position_of_a_bad_character() -> None:
    with pytest.raises(DecodeError, match="position 5"):
        base45.decode("000 0a")
    with pytest.raises(DecodeError, match="position 3"):
        base45.decode("000GGW000")


@pytest.mark.parametrize("value", [b"BB8", None, 123])
def test_non_text_input_is_refused(value: object) -> None:
    with pytest.raises(DecodeError):
        base45.decode(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [4095, 4096, 4097, 10_001])
def test_long_bodies_follow_the_same_rules(size: int) -> None:
    # Past 2048 groups the lane masks are built per call rather than prebuilt.
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    text = base45.encode(data)
    assert base45.decode(text) == data
    bad_at = 3 * (len(data) // 2 - 1)
    with pytest.raises(DecodeError, match=f"position {bad_at} "):
        base45.decode(text[:bad_at] + "GGW" + text[bad_at + 3 :])
