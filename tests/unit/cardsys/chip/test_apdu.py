"""Command and response APDUs: every case, short and extended, and malformed layouts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardsys.chip.apdu import CommandApdu, ResponseApdu, retries_left_sw
from cardsys.errors import ApduError, DecodeError


@pytest.mark.parametrize(
    ("command", "encoded"),
    [
        (CommandApdu(0x00, 0xA4, 0x04, 0x0C), "00A4040C"),  # case 1
        (CommandApdu(0x00, 0x84, 0, 0, le=8), "0084000008"),  # case 2S
        (CommandApdu(0x00, 0xB0, 0, 0, le=256), "00B0000000"),  # Ne 256 -> Le 00
        (CommandApdu(0x00, 0xA4, 2, 0x0C, b"\x01\x1e"), "00A4020C02011E"),  # case 3S
        (CommandApdu(0x00, 0x88, 0, 0, b"\x11" * 8, le=256), "008800000811111111111111110" + "0"),
        (CommandApdu(0x00, 0xB0, 0, 0, le=65536), "00B0000000" + "0000"),  # case 2E
        (CommandApdu(0x00, 0xB0, 0, 0, le=1000), "00B00000" + "0003E8"),
        (CommandApdu(0x80, 0xD6, 0, 0, b"\xaa" * 300), "80D60000" + "00012C" + "AA" * 300),
        (
            CommandApdu(0x00, 0x88, 0, 0, b"\xaa" * 300, le=65536),
            "00880000" + "00012C" + "AA" * 300 + "0000",
        ),
        (CommandApdu(0x00, 0xB0, 0, 0, le=5, extended=True), "00B00000" + "000005"),
    ],
)
def test_encode_decode(command: CommandApdu, encoded: str) -> None:
    assert command.encode().hex().upper() == encoded.upper()
    assert CommandApdu.decode(bytes.fromhex(encoded)) == command


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "00A404",
        "00A4040C0301",
        "00A4040C0201020304",
        "00B0000000000000",
        "00B000000000",
        "00B0000000010203",
    ],
)
def test_malformed_commands(raw: str) -> None:
    with pytest.raises(DecodeError):
        CommandApdu.decode(bytes.fromhex(raw))


@pytest.mark.parametrize(
    "kwargs",
    [{"le": 0}, {"le": 65537}, {"data": b"x" * 65536}],
)
def test_out_of_range_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(DecodeError):
        CommandApdu(0, 0xB0, 0, 0, **kwargs)  # type: ignore[arg-type]


def test_header_bytes_must_be_bytes() -> None:
    with pytest.raises(DecodeError):
        CommandApdu(0x100, 0xB0, 0, 0)


def test_response() -> None:
    answer = ResponseApdu.decode(bytes.fromhex("01029000"))
    assert (answer.data, answer.sw, answer.sw1, answer.sw2, answer.ok) == (
        b"\x01\x02",
        0x9000,
        0x90,
        0,
        True,
    )
    assert answer.check() == b"\x01\x02"
    with pytest.raises(ApduError) as caught:
        ResponseApdu.decode(b"\x6a\x82").check("SELECT")
    assert caught.value.sw == 0x6A82
    with pytest.raises(DecodeError):
        ResponseApdu.decode(b"\x90")
    assert retries_left_sw(2) == 0x63C2


@given(
    st.binary(max_size=400),
    st.one_of(st.none(), st.integers(1, 65536)),
    st.booleans(),
)
def test_round_trip(data: bytes, le: int | None, extended: bool) -> None:
    command = CommandApdu(0x00, 0xB0, 1, 2, data, le, extended)
    decoded = CommandApdu.decode(command.encode())
    assert (decoded.data, decoded.le, decoded.is_extended) == (data, le, command.is_extended)
