"""A `Transport` over PC/SC (pyscard), for terminals and bureau machines with a real reader.

pyscard is imported only when a reader is used, so this module (and everything importing it)
loads on machines without it. Transport-level status words are handled here, as ISO/IEC
7816-3/-4 make them the reader side's business: ``61xx`` -> GET RESPONSE until all data is in,
``6Cxx`` -> resend with Le = xx. Everything else is returned to the caller.

`ReaderError` covers: pyscard missing, pcscd not running, no such reader, no card
(`NoCardError`), and a reader or card that stopped answering.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any

from cardsys.chip.apdu import INS_GET_RESPONSE, CommandApdu
from cardsys.errors import DecodeError, NoCardError, ReaderError

#: The ATR our card emulator's empty slots show (`cardsys.chip.vpcd.EMPTY_SLOT_ATR`).
EMPTY_SLOT_ATR = bytes.fromhex("3B878001") + b"NO CARD" + bytes([0x33])

_MAX_CHAINED = 64  # GET RESPONSE rounds before we call the card broken


def _pyscard() -> tuple[ModuleType, ModuleType, ModuleType]:
    try:
        import smartcard.Exceptions as exceptions
        import smartcard.System as system
        from smartcard.pcsc import PCSCExceptions as pcsc_exceptions
    except ImportError:
        raise ReaderError("pyscard is not installed (pip install 'cardsys[pcsc]')") from None
    return system, exceptions, pcsc_exceptions


def list_readers() -> list[str]:
    """Names of the PC/SC readers pcscd knows."""
    system, _, pcsc_exceptions = _pyscard()
    try:
        return [str(reader) for reader in system.readers()]
    except pcsc_exceptions.BaseSCardException as exc:
        raise ReaderError(f"the PC/SC service is not reachable: {exc}") from None


class PcscTransport:
    """One connection to the card in PC/SC reader number `index` (or the reader named `name`)."""

    def __init__(self, index: int = 0, *, name: str | None = None) -> None:
        system, exceptions, pcsc_exceptions = _pyscard()
        self._exceptions = exceptions
        try:
            readers = system.readers()
        except pcsc_exceptions.BaseSCardException as exc:
            raise ReaderError(f"the PC/SC service is not reachable: {exc}") from None
        chosen = [r for r in readers if str(r) == name] if name is not None else readers
        if name is None and not 0 <= index < len(readers):
            raise ReaderError(f"there is no reader {index} ({len(readers)} readers found)")
        if not chosen:
            raise ReaderError(f"there is no reader named {name!r}")
        self.reader_name = str(chosen[0] if name is not None else readers[index])
        reader = chosen[0] if name is not None else readers[index]
        self._connection: Any = reader.createConnection()
        self._closed = False
        try:
            self._connection.connect()
            if self.atr == EMPTY_SLOT_ATR:
                # pcscd keeps the ATR from the last power-up; a card put into an emulator slot
                # since then only shows after a reset.
                self._reset()
            if self.atr == EMPTY_SLOT_ATR:
                raise NoCardError(f"no card in reader {self.reader_name}")
        except exceptions.NoCardException:
            self._release_quietly()
            raise NoCardError(f"no card in reader {self.reader_name}") from None
        except exceptions.CardConnectionException as exc:
            self._release_quietly()
            raise ReaderError(f"cannot connect to {self.reader_name}: {exc}") from None
        except ReaderError:
            self._release_quietly()
            raise
        self.apdu_count = 0

    def _release_quietly(self) -> None:
        # The PC/SC context must be released now, not whenever the garbage collector gets to
        # pyscard's __del__ (by then pcscd may be gone and __del__ raises into random code).
        self._closed = True
        with contextlib.suppress(self._exceptions.CardConnectionException):
            self._connection.release()

    def _reset(self) -> None:
        from smartcard.scard import SCARD_RESET_CARD

        try:
            self._connection.reconnect(disposition=SCARD_RESET_CARD)
        except self._exceptions.CardConnectionException as exc:
            raise ReaderError(f"cannot reset the card in {self.reader_name}: {exc}") from None

    @property
    def atr(self) -> bytes:
        return bytes(self._connection.getATR())

    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU; return the full response (data || SW1 SW2)."""
        data, sw1, sw2 = self._raw(apdu)
        if sw1 == 0x6C:
            try:
                command = CommandApdu.decode(apdu)
            except DecodeError as exc:
                raise ReaderError(f"cannot resend a malformed APDU: {exc}") from None
            retry = CommandApdu(
                command.cla, command.ins, command.p1, command.p2, command.data, sw2 or 256
            )
            data, sw1, sw2 = self._raw(retry.encode())
        collected = bytearray(data)
        rounds = 0
        while sw1 == 0x61:
            rounds += 1
            if rounds > _MAX_CHAINED:
                raise ReaderError("the card keeps answering 61xx: giving up")
            more = CommandApdu(apdu[0] & 0x03, INS_GET_RESPONSE, 0, 0, le=sw2 or 256)
            data, sw1, sw2 = self._raw(more.encode())
            collected += data
        return bytes(collected) + bytes([sw1, sw2])

    def _raw(self, apdu: bytes) -> tuple[bytes, int, int]:
        self.apdu_count += 1
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except self._exceptions.CardConnectionException as exc:
            raise ReaderError(f"the card in {self.reader_name} stopped answering: {exc}") from None
        return bytes(data), int(sw1), int(sw2)

    def close(self) -> None:
        """Disconnect from the card and release the PC/SC context (a second call does nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._connection.release()
        except self._exceptions.CardConnectionException as exc:
            raise ReaderError(f"cannot disconnect from {self.reader_name}: {exc}") from None

    def __enter__(self) -> PcscTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
