"""Serve emulated cards to pcscd through the vsmartcard ``vpcd`` reader driver.

Wire protocol (vsmartcard ``vpcd.c``): every message, either way, is a 2-byte big-endian length
and a payload. A 1-byte payload from vpcd is a control code: 0 power off, 1 power on, 2 reset,
4 get ATR (answered with the ATR). Any longer payload is a command APDU, answered with the
response APDU. An empty answer to "get ATR" means "no card": vpcd closes the connection and
polls again.

We run in **reverse mode** (reader.conf ``DEVICENAME 127.0.0.1:0x8C7B``): vpcd connects out to
us, one connection per slot, slot *n* on port 35963 + *n*. Every slot's port must be listening
before pcscd starts (pcscd aborted with "bit out of range 0 - FD_SETSIZE" when one was closed),
so `VpcdServer.start` binds all of them at once, card or no card. `insert` / `remove` swap the
card in a slot like a hand at a reader; the connection to vpcd stays open (see
`EMPTY_SLOT_ATR` for why), so stop pcscd before stopping the server.

A slot may have a `BlankHopper`, as a bureau machine has a stack of blank cards: when a card
in that slot answers the LOCK that ends its personalization, it is taken out (its image file
stays where it is) and a fresh blank card from the hopper goes in, before the next APDU.

Tests may watch the APDUs of a slot (`VpcdServer.observe`): the observer is called with the
card and the command before the card processes it (returning False there keeps the command
from the card, which answers 6F00 instead) and again with the response before it is sent, so
a test can kill a personalization process at a chosen APDU, on either side of the card.

Only loopback addresses are accepted as the listening host: a card emulator is a test and
bureau tool, never a network service.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import select
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from cardsys.chip.emulator import Card, CardState, build_atr
from cardsys.errors import ChipError

DEFAULT_PORTS = (35963, 35964)
CONTROL_POWER_OFF = 0
CONTROL_POWER_ON = 1
CONTROL_RESET = 2
CONTROL_ATR = 4
#: What an empty slot shows. In reverse mode vpcd cannot be told "no card": an empty ATR makes
#: it drop the connection, and Debian's vpcd 3.3 then hands pcscd 1.9.9 an invalid descriptor
#: (pcscd aborts: "bit out of range 0 - FD_SETSIZE"). So a slot always holds *something*:
#: this ATR ("NO CARD" in its historical bytes) and 6A82 to every APDU. `PcscTransport`
#: reports a reader showing it as having no card.
EMPTY_SLOT_ATR = build_atr(b"NO CARD")
EMPTY_SLOT_SW = b"\x6a\x82"
_POLL = 0.1
_IO_TIMEOUT = 10.0

log = logging.getLogger(__name__)

#: Called with (card, command, None) before a card processes a command (False: drop it) and
#: with (card, command, response) before the response is sent.
Observer = Callable[[Card, bytes, bytes | None], bool | None]


class BlankHopper:
    """A stack of blank cards in `directory`: `<prefix><n>.card`, serial `<prefix><n>`.

    Numbers continue after the highest image already in the directory, so serials stay
    unique across emulator restarts. Taken-out (locked) cards are listed in `ejected`.
    """

    def __init__(self, directory: Path, transport_key: bytes, *, prefix: str = "HOP-") -> None:
        if not re.fullmatch(r"[A-Z0-9-]{1,16}", prefix):
            raise ChipError("a hopper serial prefix is 1-16 of A-Z, 0-9 and '-'")
        if len(transport_key) != 16:
            raise ChipError("the transport key is a 16-byte BAC seed")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = bytes(transport_key)
        self._prefix = prefix
        self._lock = threading.Lock()
        pattern = re.compile(re.escape(prefix) + r"([0-9]{6,})\.card")
        numbers = [
            int(found.group(1))
            for path in self.directory.iterdir()
            if (found := pattern.fullmatch(path.name)) is not None
        ]
        self._next = max(numbers, default=0) + 1
        self.ejected: list[Card] = []

    def take(self) -> Card:
        """A new blank card image."""
        with self._lock:
            serial = f"{self._prefix}{self._next:06d}"
            self._next += 1
        return Card.blank(self.directory / f"{serial}.card", serial, self._key)


class _Closed(Exception):
    """The peer closed the connection."""


def _quick_ack(conn: socket.socket) -> None:
    # vpcd writes the 2-byte length and the payload in two send() calls; with Nagle on its side
    # and delayed ACKs on ours every exchange would stall ~40 ms. Linux resets QUICKACK after
    # each receive, so it is set again every time.
    option = getattr(socket, "TCP_QUICKACK", None)
    if option is not None:
        conn.setsockopt(socket.IPPROTO_TCP, option, 1)


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        _quick_ack(conn)
        part = conn.recv(size - len(chunks))
        if not part:
            raise _Closed
        chunks += part
    _quick_ack(conn)
    return bytes(chunks)


def _send(conn: socket.socket, payload: bytes) -> None:
    if len(payload) > 0xFFFF:
        raise ChipError(f"a vpcd frame holds at most 65535 bytes, not {len(payload)}")
    conn.sendall(len(payload).to_bytes(2, "big") + payload)


class _Slot:
    def __init__(self, index: int, listener: socket.socket) -> None:
        self.index = index
        self.listener = listener
        self.card: Card | None = None
        self.conn: socket.socket | None = None
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.hopper: BlankHopper | None = None
        self.observer: Observer | None = None

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def drop_connection(self) -> None:
        with self.lock:
            conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


class VpcdServer:
    """Listens on every slot port and answers vpcd for the card in each slot."""

    def __init__(self, ports: Sequence[int] = DEFAULT_PORTS, host: str = "127.0.0.1") -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ChipError(f"the card emulator listens on loopback only, not {host}")
        if not ports:
            raise ChipError("the card emulator needs at least one slot port")
        self._host = host
        self._wanted = tuple(ports)
        self._slots: list[_Slot] = []
        self._stop = threading.Event()

    @property
    def ports(self) -> tuple[int, ...]:
        """The bound ports, slot by slot (useful when port 0 asked for any free port)."""
        return tuple(slot.port for slot in self._slots)

    def start(self) -> VpcdServer:
        """Bind every port, then serve each slot in a daemon thread."""
        if self._slots:
            raise ChipError("the card emulator is already running")
        try:
            for index, port in enumerate(self._wanted):
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((self._host, port))
                listener.listen(1)
                self._slots.append(_Slot(index, listener))
        except OSError as exc:
            self._close_listeners()
            raise ChipError(f"cannot listen on {self._host}:{port}: {exc.strerror}") from None
        for slot in self._slots:
            slot.thread = threading.Thread(
                target=self._serve_slot, args=(slot,), name=f"vpcd-slot-{slot.index}", daemon=True
            )
            slot.thread.start()
        return self

    def insert(self, card: Card, slot: int = 0) -> None:
        """Put `card` into a slot (replacing any card there); the reader sees a new card."""
        target = self._slot(slot)
        card.reset()
        target.card = card  # the connection stays: closing it would abort pcscd (see above)

    def remove(self, slot: int = 0) -> Card | None:
        """Take the card out of a slot; return it."""
        target = self._slot(slot)
        card, target.card = target.card, None
        return card

    def card(self, slot: int = 0) -> Card | None:
        """The card in a slot, if any."""
        return self._slot(slot).card

    def attach_hopper(self, hopper: BlankHopper | None, slot: int = 0) -> None:
        """Feed a slot from `hopper` (None detaches); an empty slot gets a blank card now."""
        target = self._slot(slot)
        target.hopper = hopper
        if hopper is not None and target.card is None:
            self.insert(hopper.take(), slot)

    def observe(self, observer: Observer | None, slot: int = 0) -> None:
        """Watch a slot's APDUs (see the module docstring); None stops watching."""
        self._slot(slot).observer = observer

    def stop(self) -> None:
        """Stop serving: close every connection and listener, join the threads."""
        self._stop.set()
        for slot in self._slots:
            slot.drop_connection()
        for slot in self._slots:
            if slot.thread is not None:
                slot.thread.join(timeout=5)
        self._close_listeners()

    def __enter__(self) -> VpcdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _slot(self, index: int) -> _Slot:
        if not 0 <= index < len(self._slots):
            raise ChipError(f"there is no slot {index}")
        return self._slots[index]

    def _close_listeners(self) -> None:
        for slot in self._slots:
            slot.listener.close()
        self._slots.clear()

    # --- serving -------------------------------------------------------------------------

    def _serve_slot(self, slot: _Slot) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([slot.listener], [], [], _POLL)
            if not ready:
                continue
            try:
                conn, _ = slot.listener.accept()
            except OSError:
                continue
            conn.settimeout(_IO_TIMEOUT)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with slot.lock:
                slot.conn = conn
            try:
                self._serve_connection(slot, conn)
            except (_Closed, OSError, ValueError):
                pass  # vpcd went away or the card was swapped: wait for the next connection
            finally:
                slot.drop_connection()
                conn.close()

    def _serve_connection(self, slot: _Slot, conn: socket.socket) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([conn], [], [], _POLL)
            if not ready:
                continue
            size = int.from_bytes(_recv_exact(conn, 2), "big")
            payload = _recv_exact(conn, size) if size else b""
            card = slot.card
            if len(payload) == 1:
                self._control(conn, card, payload[0])
            elif card is None:
                _send(conn, EMPTY_SLOT_SW)
            else:
                _send(conn, self._exchange(slot, card, payload))

    @staticmethod
    def _control(conn: socket.socket, card: Card | None, code: int) -> None:
        if code == CONTROL_ATR:
            _send(conn, card.atr if card is not None else EMPTY_SLOT_ATR)
        elif code in (CONTROL_POWER_OFF, CONTROL_POWER_ON, CONTROL_RESET):
            if card is not None:
                card.reset()
        else:
            log.warning("unknown vpcd control code %d ignored", code)

    def _exchange(self, slot: _Slot, card: Card, payload: bytes) -> bytes:
        observer = slot.observer
        if observer is not None and observer(card, payload, None) is False:
            return b"\x6f\x00"  # cut off on its way to the card
        was_locked = card.state is CardState.LOCKED
        answer = self._process(card, payload)
        hopper = slot.hopper
        if hopper is not None and not was_locked and card.state is CardState.LOCKED:
            # The bureau machine ejects a card once it is locked and feeds the next blank.
            hopper.ejected.append(card)
            self.insert(hopper.take(), slot.index)
        if observer is not None:
            observer(card, payload, answer)
        return answer

    @staticmethod
    def _process(card: Card, payload: bytes) -> bytes:
        try:
            return card.process(payload)
        except Exception:
            log.exception("the emulated card failed on an APDU")
            return b"\x6f\x00"


@contextlib.contextmanager
def serving(
    card: Card | None, ports: Sequence[int] = DEFAULT_PORTS, host: str = "127.0.0.1"
) -> Iterator[VpcdServer]:
    """A running server with `card` in slot 0 (stopped on exit)."""
    server = VpcdServer(ports, host).start()
    try:
        if card is not None:
            server.insert(card)
        yield server
    finally:
        server.stop()


def serve(
    image: Path,
    ports: Sequence[int] = DEFAULT_PORTS,
    *,
    host: str = "127.0.0.1",
    stop: threading.Event | None = None,
    hopper: BlankHopper | None = None,
) -> None:
    """Serve the card image in slot 0 (other slots stay empty) until `stop` is set.

    With a `hopper`, slot 0 gets a fresh blank card each time its card is locked. This is what
    ``cardsys chip emulate --image FILE [--blank-hopper DIR]`` runs; the CLI sets `stop` from
    its SIGTERM/SIGINT handler. Returns once every socket is closed.
    """
    card = Card.open(image)
    stop = stop or threading.Event()
    with serving(card, ports, host) as server:
        server.attach_hopper(hopper)
        log.info("card %s served on %s:%s", card.serial, host, server.ports)
        while not stop.wait(0.2):
            pass
