"""The reader of a personalization machine: what a bureau batch asks of the card in its reader.

`ReaderStation` implements `ChipStation` over any `Transport` factory (a PC/SC reader in
production, an emulated card in tests). Every step opens a fresh connection, because the card
in the reader may have been swapped in between: a bureau machine ejects each locked card and
feeds the next blank one.

`probe` tells an empty reader, a locked card, and an unlocked one (serial by plain GET DATA);
for an unlocked card it also says whether it holds EF.COM (`written`): a chip can be bound to a
card only after its files were written completely, so a chip without EF.COM is certainly not
bound to any card, and a batch need not ask its database about it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cardsys.chip import apdu, lds, perso
from cardsys.chip.apdu import CommandApdu, ResponseApdu, Transport
from cardsys.chip.bac import AccessKey
from cardsys.chip.terminal import ChipSession, select_application
from cardsys.errors import (
    AccessDeniedError,
    ApduError,
    ChipError,
    NoCardError,
    ReaderError,
    ValidationError,
)

log = logging.getLogger(__name__)


class ChipPresence(enum.StrEnum):
    """What a probe of the reader found."""

    EMPTY = "empty"
    #: A card that is not locked yet (blank, partly or completely written).
    OPEN = "open"
    LOCKED = "locked"


@dataclass(frozen=True)
class Probe:
    """The reader's content: for an unlocked chip its serial and whether it holds EF.COM."""

    presence: ChipPresence
    serial: str | None = None
    written: bool = False


class ChipStation(Protocol):
    """The reader of a personalization machine (see `ReaderStation`)."""

    def probe(self) -> Probe:
        """What is in the reader now."""
        ...

    def write(self, prepared: perso.Personalization, serial: str) -> None:
        """Erase the unlocked chip `serial`, write `prepared` and check its AA key (no LOCK)."""
        ...

    def lock(self) -> None:
        """LOCK the chip just written."""
        ...

    def check_and_lock(self, serial: str, *, sod_sha256: bytes, aa_public_key: bytes) -> None:
        """LOCK the unlocked chip `serial` after checking it holds what was recorded."""
        ...

    def opens(self, access: AccessKey) -> str | None:
        """The serial of the locked chip in the reader if `access` opens it, else None."""
        ...


class ReaderStation:
    """A `ChipStation` over a reader: `connect` opens a fresh connection to its card."""

    def __init__(self, connect: Callable[[], Transport], transport_key: bytes) -> None:
        if len(transport_key) != 16:
            raise ValidationError("the bureau transport key is 16 bytes")
        self._connect_to = connect
        self._transport_key = bytes(transport_key)
        self._transport: Transport | None = None
        self._session: ChipSession | None = None

    def _connect(self) -> Transport:
        self.close()
        self._transport = self._connect_to()
        return self._transport

    def close(self) -> None:
        """Drop the current connection."""
        transport, self._transport, self._session = self._transport, None, None
        close = getattr(transport, "close", None)
        if close is not None:
            try:
                close()
            except ReaderError:
                log.warning("could not disconnect from the reader cleanly")

    def probe(self) -> Probe:
        try:
            transport = self._connect()
        except NoCardError:
            return Probe(ChipPresence.EMPTY)
        try:
            serial = perso.read_serial(transport)
        except ApduError as exc:
            if exc.sw == apdu.SW_SECURITY_STATUS_NOT_SATISFIED:
                return Probe(ChipPresence.LOCKED)
            raise ReaderError(f"the card in the reader is not a card of ours: {exc}") from None
        return Probe(ChipPresence.OPEN, serial, _holds_ef_com(transport))

    def _open(self, serial: str) -> ChipSession:
        transport = self._connect()
        if perso.read_serial(transport) != serial:
            raise ReaderError(f"the card in the reader is no longer chip {serial}")
        return perso.open_bureau_session(transport, self._transport_key)

    def write(self, prepared: perso.Personalization, serial: str) -> None:
        session = self._open(serial)
        perso.erase(session)
        perso.write_files(session, prepared)
        self._session = session

    def lock(self) -> None:
        if self._session is None:
            raise ChipError("no chip was written on this connection")
        perso.lock(self._session)
        self._session = None

    def check_and_lock(self, serial: str, *, sod_sha256: bytes, aa_public_key: bytes) -> None:
        session = self._open(serial)
        perso.check_written(session, sod_sha256=sod_sha256, aa_public_key_info=aa_public_key)
        perso.lock(session)

    def opens(self, access: AccessKey) -> str | None:
        transport = self._connect()
        try:
            return ChipSession.open(transport, access.seed).serial()
        except (AccessDeniedError, ApduError):
            return None


def _holds_ef_com(transport: Transport) -> bool:
    """Whether an unlocked card has EF.COM (plain SELECT, no data read)."""
    try:
        select_application(transport)
    except ApduError:
        return False
    command = CommandApdu(0x00, apdu.INS_SELECT, 0x02, 0x0C, lds.FID_COM.to_bytes(2, "big"))
    answer = ResponseApdu.decode(transport.transmit(command.encode()))
    if answer.sw == apdu.SW_FILE_NOT_FOUND:
        return False
    answer.check("SELECT EF.COM")
    return True
