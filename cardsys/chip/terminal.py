"""The terminal's view of one card: select our application, open BAC, read files, run AA.

`ChipSession` is the layer `verify/chip.py` builds on; it does no trust decisions (SOD,
certificates, status lists), only the card conversation. Reading a file costs two APDUs:
SELECT with an FCP (which carries the file size) and one READ BINARY for the whole file with
extended length; with ``extended=False`` it falls back to short reads of at most 223 bytes, so
that each protected response still fits in 256 bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

from cardsys.chip import apdu
from cardsys.chip.apdu import CommandApdu, ResponseApdu, Transport
from cardsys.chip.bac import BacTerminal
from cardsys.chip.emulator import GET_DATA_SERIAL, MAX_EXTENDED_CHUNK
from cardsys.chip.lds import AID
from cardsys.chip.sm import SecureMessaging
from cardsys.errors import ApduError, DecodeError, PinBlockedError, SecureMessagingError
from cardsys.formats import tlv

SHORT_CHUNK = 0xDF


def select_application(transport: Transport) -> None:
    """SELECT our AID in plain (ApduError when the card does not have it)."""
    answer = ResponseApdu.decode(
        transport.transmit(CommandApdu(0x00, apdu.INS_SELECT, 0x04, 0x0C, AID).encode())
    )
    answer.check("SELECT application")


class ChipSession:
    """A Secure Messaging session with our application on one card."""

    def __init__(self, transport: Transport, sm: SecureMessaging, *, extended: bool = True):
        self.transport = transport
        self.sm = sm
        self.extended = extended

    @classmethod
    def open(
        cls,
        transport: Transport,
        seed: bytes,
        *,
        extended: bool = True,
        rnd_ifd: bytes | None = None,
        k_ifd: bytes | None = None,
    ) -> ChipSession:
        """SELECT the application and run BAC with `seed` (AccessDeniedError on a wrong key)."""
        select_application(transport)
        sm = BacTerminal(seed, rnd_ifd=rnd_ifd, k_ifd=k_ifd).authenticate(transport)
        return cls(transport, sm, extended=extended)

    def command(self, command: CommandApdu) -> ResponseApdu:
        """Send `command` under Secure Messaging; return the verified plain response."""
        raw = self.transport.transmit(self.sm.protect(command.encode()))
        try:
            return ResponseApdu.decode(self.sm.unprotect(raw))
        except DecodeError as exc:
            raise SecureMessagingError(f"protected response is malformed: {exc}") from None

    def select(self, fid: int) -> int:
        """SELECT a file by FID; return its size from the FCP."""
        answer = self.command(
            CommandApdu(0x00, apdu.INS_SELECT, 0x02, 0x04, fid.to_bytes(2, "big"), le=256)
        )
        data = answer.check(f"SELECT file {fid:04X}")
        try:
            fcp = tlv.parse_one(data, max_depth=2)
            size = fcp.require(0x80).value
        except DecodeError as exc:
            raise ApduError(f"SELECT file {fid:04X}: malformed FCP ({exc})", answer.sw) from None
        if fcp.tag != 0x62 or not 1 <= len(size) <= 3:
            raise ApduError(f"SELECT file {fid:04X}: FCP without a file size", answer.sw)
        return int.from_bytes(size, "big")

    def read_file(self, fid: int) -> bytes:
        """The whole content of a file."""
        size = self.select(fid)
        chunk = MAX_EXTENDED_CHUNK if self.extended else SHORT_CHUNK
        out = bytearray()
        while len(out) < size:
            wanted = min(chunk, size - len(out))
            offset = len(out)
            if offset > 0x7FFF:
                raise ApduError(f"file {fid:04X} is larger than READ BINARY can address")
            answer = self.command(
                CommandApdu(
                    0x00,
                    apdu.INS_READ_BINARY,
                    offset >> 8,
                    offset & 0xFF,
                    le=wanted,
                    extended=self.extended and wanted > SHORT_CHUNK,
                )
            )
            data = answer.check(f"READ BINARY {fid:04X}")
            if not data:
                raise ApduError(f"file {fid:04X} ended after {offset} of {size} bytes")
            out += data[:wanted]
        return bytes(out)

    def read_files(self, fids: Iterable[int]) -> dict[int, bytes]:
        """Several files, keyed by FID."""
        return {fid: self.read_file(fid) for fid in fids}

    def internal_authenticate(self, challenge: bytes) -> bytes:
        """The card's Active Authentication signature over `challenge`."""
        answer = self.command(
            CommandApdu(0x00, apdu.INS_INTERNAL_AUTHENTICATE, 0, 0, challenge, le=256)
        )
        return answer.check("INTERNAL AUTHENTICATE")

    def serial(self) -> str:
        """The chip serial (GET DATA)."""
        answer = self.command(
            CommandApdu(0x00, apdu.INS_GET_DATA, GET_DATA_SERIAL >> 8, 0x01, le=256)
        )
        return answer.check("GET DATA serial").decode("utf-8", "replace")

    def verify_pin(self, pin: str) -> None:
        """VERIFY the PIN.

        Raises:
            PinBlockedError: the PIN is blocked (6983, or the last try was just used: 63C0).
            ApduError: wrong PIN (63Cx, x tries left) or another failure.
        """
        answer = self.command(CommandApdu(0x00, apdu.INS_VERIFY, 0x00, 0x81, pin.encode("ascii")))
        if answer.sw in (apdu.SW_AUTH_METHOD_BLOCKED, apdu.SW_RETRIES_LEFT_BASE):
            raise PinBlockedError("the card's PIN is blocked")
        if answer.sw & 0xFFF0 == apdu.SW_RETRIES_LEFT_BASE:
            raise ApduError(f"wrong PIN: {answer.sw & 0x0F} tries left", answer.sw)
        answer.check("VERIFY")
