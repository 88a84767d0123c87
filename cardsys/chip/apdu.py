"""Command and response APDUs (ISO/IEC 7816-3 §12.1, 7816-4 §5.1), short and extended.

`CommandApdu.le` is Ne, the number of response bytes the terminal expects: ``None`` (case 1/3),
or 1..256 (short) / 1..65536 (extended). Encoded as 7816-4 says: Ne 256 is the short Le byte
``00`` and Ne 65536 the extended Le ``0000``; both mean "as many as are available".

Decoding accepts exactly the byte layouts of cases 1, 2S, 3S, 4S, 2E, 3E and 4E and refuses
anything else (an Lc that disagrees with the length, Lc 0, a lone extended marker) with
`DecodeError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cardsys.errors import ApduError, DecodeError

# --- status words (ISO/IEC 7816-4 §5.6, Doc 9303 Part 11 §9.8.7) -------------------------
SW_OK = 0x9000
SW_END_OF_FILE = 0x6282  # fewer bytes than Ne: the end of the file was reached
SW_VERIFICATION_FAILED = 0x6300  # mutual authentication failed
SW_RETRIES_LEFT_BASE = 0x63C0  # 63Cx: wrong PIN, x tries left
SW_MEMORY_FAILURE = 0x6581
SW_WRONG_LENGTH = 0x6700
SW_SM_NOT_SUPPORTED = 0x6882
SW_SECURITY_STATUS_NOT_SATISFIED = 0x6982
SW_AUTH_METHOD_BLOCKED = 0x6983
SW_SM_DATA_MISSING = 0x6987
SW_SM_DATA_INCORRECT = 0x6988
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_COMMAND_NOT_ALLOWED = 0x6986
SW_WRONG_DATA = 0x6A80
SW_FUNCTION_NOT_SUPPORTED = 0x6A81
SW_FILE_NOT_FOUND = 0x6A82
SW_NOT_ENOUGH_MEMORY = 0x6A84
SW_INCORRECT_P1P2 = 0x6A86
SW_REFERENCED_DATA_NOT_FOUND = 0x6A88
SW_FILE_EXISTS = 0x6A89
SW_WRONG_P1P2 = 0x6B00
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_UNKNOWN = 0x6F00

# --- instructions -------------------------------------------------------------------------
INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_UPDATE_BINARY = 0xD6
INS_GET_CHALLENGE = 0x84
INS_EXTERNAL_AUTHENTICATE = 0x82  # = MUTUAL AUTHENTICATE in Doc 9303
INS_INTERNAL_AUTHENTICATE = 0x88
INS_VERIFY = 0x20
INS_GET_RESPONSE = 0xC0
INS_GET_DATA = 0xCA

MAX_SHORT_LC = 255
MAX_SHORT_LE = 256
MAX_EXTENDED_LC = 65535
MAX_EXTENDED_LE = 65536


def retries_left_sw(tries: int) -> int:
    """The 63Cx status word for `tries` PIN attempts left (0..15)."""
    return SW_RETRIES_LEFT_BASE | max(0, min(tries, 15))


@dataclass(frozen=True)
class CommandApdu:
    """A command APDU; `extended` forces extended length even when short would do."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise DecodeError(f"APDU {name} {value!r} is not a byte")
        if len(self.data) > MAX_EXTENDED_LC:
            raise DecodeError(f"APDU data of {len(self.data)} bytes exceeds 65535")
        if self.le is not None and not 1 <= self.le <= MAX_EXTENDED_LE:
            raise DecodeError(f"APDU Ne {self.le} is outside 1..65536")
        object.__setattr__(self, "data", bytes(self.data))

    @property
    def is_extended(self) -> bool:
        """Whether `encode` uses the extended length fields."""
        if not self.data and self.le is None:
            return False  # case 1 has no length fields at all
        return (
            self.extended
            or len(self.data) > MAX_SHORT_LC
            or (self.le is not None and self.le > MAX_SHORT_LE)
        )

    @property
    def header(self) -> bytes:
        return bytes([self.cla, self.ins, self.p1, self.p2])

    def encode(self) -> bytes:
        """The APDU bytes (case chosen from data and Ne)."""
        out = bytearray(self.header)
        if self.is_extended:
            if self.data:
                out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                le = self.le % MAX_EXTENDED_LE  # 65536 -> 0000
                out += (b"" if self.data else b"\x00") + le.to_bytes(2, "big")
        else:
            if self.data:
                out += bytes([len(self.data)]) + self.data
            if self.le is not None:
                out.append(self.le % MAX_SHORT_LE)  # 256 -> 00
        return bytes(out)

    @classmethod
    def decode(cls, raw: bytes) -> CommandApdu:
        """Parse an APDU of case 1, 2, 3 or 4, short or extended."""
        raw = bytes(raw)
        if len(raw) < 4:
            raise DecodeError(f"APDU of {len(raw)} bytes is shorter than its header")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or MAX_SHORT_LE)
        if body[0] != 0:
            return cls._decode_short(cla, ins, p1, p2, body)
        return cls._decode_extended(cla, ins, p1, p2, body)

    @classmethod
    def _decode_short(cls, cla: int, ins: int, p1: int, p2: int, body: bytes) -> CommandApdu:
        lc = body[0]
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, body[1:])
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, body[1:-1], le=body[-1] or MAX_SHORT_LE)
        raise DecodeError(f"short APDU Lc {lc} does not match a body of {len(body)} bytes")

    @classmethod
    def _decode_extended(cls, cla: int, ins: int, p1: int, p2: int, body: bytes) -> CommandApdu:
        if len(body) == 3:
            le = int.from_bytes(body[1:3], "big") or MAX_EXTENDED_LE
            return cls._extended(cla, ins, p1, p2, b"", le)
        if len(body) < 3:
            raise DecodeError("extended APDU length field cut short")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise DecodeError("extended APDU with Lc 0")
        data_end = 3 + lc
        if len(body) == data_end:
            return cls._extended(cla, ins, p1, p2, body[3:], None)
        if len(body) == data_end + 2:
            le = int.from_bytes(body[data_end:], "big") or MAX_EXTENDED_LE
            return cls._extended(cla, ins, p1, p2, body[3:data_end], le)
        raise DecodeError(f"extended APDU Lc {lc} does not match a body of {len(body)} bytes")

    @classmethod
    def _extended(
        cls, cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None
    ) -> CommandApdu:
        # `extended` records only a *forced* extended encoding, so decode(encode(x)) == x.
        needed = len(data) > MAX_SHORT_LC or (le is not None and le > MAX_SHORT_LE)
        return cls(cla, ins, p1, p2, data, le, extended=not needed)


@dataclass(frozen=True)
class ResponseApdu:
    """A response APDU: data and the two status bytes."""

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    def encode(self) -> bytes:
        return bytes(self.data) + self.sw.to_bytes(2, "big")

    @classmethod
    def decode(cls, raw: bytes) -> ResponseApdu:
        """Split a response; DecodeError when the status bytes are missing."""
        raw = bytes(raw)
        if len(raw) < 2:
            raise DecodeError(f"response of {len(raw)} bytes has no status word")
        return cls(raw[:-2], int.from_bytes(raw[-2:], "big"))

    def check(self, what: str = "command", *, allow: frozenset[int] = frozenset()) -> bytes:
        """The data when the status is 9000 (or in `allow`); ApduError with the SW otherwise."""
        if self.sw != SW_OK and self.sw not in allow:
            raise ApduError(f"{what} failed: SW {self.sw:04X}", self.sw)
        return self.data


class Transport(Protocol):
    """Something that carries one command APDU to a card and brings back its response."""

    def transmit(self, apdu: bytes) -> bytes:
        """Send `apdu`; return the response including SW1 SW2."""
        ...


def response(data: bytes = b"", sw: int = SW_OK) -> bytes:
    """Encode a response (card side helper)."""
    return bytes(data) + sw.to_bytes(2, "big")
