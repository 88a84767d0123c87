"""The vpcd wire protocol of our server, spoken by a test client (no pcscd needed)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from cardsys.chip import vpcd
from cardsys.chip.emulator import ATR
from cardsys.chip.lds import AID
from cardsys.errors import ChipError
from tests.fixtures.pcsc import blank_card


def _exchange(conn: socket.socket, payload: bytes) -> bytes:
    conn.sendall(len(payload).to_bytes(2, "big") + payload)
    size = int.from_bytes(conn.recv(2, socket.MSG_WAITALL), "big")
    return conn.recv(size, socket.MSG_WAITALL) if size else b""


def test_protocol_and_card_swap(tmp_path: Path) -> None:
    card = blank_card(tmp_path)
    with vpcd.VpcdServer((0, 0)) as server:
        assert len(server.ports) == 2
        with socket.create_connection(("127.0.0.1", server.ports[0]), timeout=5) as conn:
            assert _exchange(conn, b"\x04") == vpcd.EMPTY_SLOT_ATR
            assert _exchange(conn, b"\x00\xa4\x04\x0c") == b"\x6a\x82"
            server.insert(card)
            assert _exchange(conn, b"\x04") == ATR
            conn.sendall(b"\x00\x01\x01")  # power on: no answer expected
            select = b"\x00\xa4\x04\x0c" + bytes([len(AID)]) + AID
            assert _exchange(conn, select) == b"\x90\x00"
            assert server.remove() is card
            assert _exchange(conn, b"\x04") == vpcd.EMPTY_SLOT_ATR


def test_serve_stops_on_the_event(tmp_path: Path) -> None:
    card = blank_card(tmp_path)
    stop = threading.Event()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    thread = threading.Thread(target=vpcd.serve, args=(card.path, (port,)), kwargs={"stop": stop})
    thread.start()
    try:
        for _ in range(50):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                stop.wait(0.05)
        with conn:
            assert _exchange(conn, b"\x04") == ATR
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_loopback_only() -> None:
    with pytest.raises(ChipError):
        vpcd.VpcdServer((0,), host="0.0.0.0")


def test_hopper_feeds_a_blank_after_each_lock(tmp_path: Path) -> None:
    from cardsys.chip import perso
    from tests.fixtures.pcsc import TRANSPORT_KEY, make_signer, sample_holder

    hopper = vpcd.BlankHopper(tmp_path / "hopper", TRANSPORT_KEY, prefix="T-")
    seen: list[tuple[bytes, bytes | None]] = []
    with vpcd.VpcdServer((0,)) as server:
        server.attach_hopper(hopper)
        first = server.card()
        assert first is not None
        assert first.serial == "T-000001"
        server.observe(lambda card, command, answer: seen.append((command, answer)))
        with socket.create_connection(("127.0.0.1", server.ports[0]), timeout=5) as conn:

            class Wire:
                def transmit(self, apdu: bytes) -> bytes:
                    return _exchange(conn, apdu)

            prepared = perso.prepare(sample_holder(portrait_size=100), make_signer())
            assert perso.write_card(Wire(), TRANSPORT_KEY, prepared) == "T-000001"
            second = server.card()
            assert second is not None
            assert second.serial == "T-000002"
            assert hopper.ejected == [first]
            assert perso.read_serial(Wire()) == "T-000002"
    # Every APDU was seen before (no answer yet) and after (with its answer).
    assert [answer for _, answer in seen[::2]] == [None] * (len(seen) // 2)
    assert all(answer is not None for _, answer in seen[1::2])
    # A restarted hopper goes on numbering after the images already there.
    assert vpcd.BlankHopper(tmp_path / "hopper", TRANSPORT_KEY, prefix="T-").take().serial == (
        "T-000003"
    )


def test_hopper_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ChipError):
        vpcd.BlankHopper(tmp_path, b"short")
    with pytest.raises(ChipError):
        vpcd.BlankHopper(tmp_path, bytes(16), prefix="../x")


def test_observer_can_keep_a_command_from_the_card(tmp_path: Path) -> None:
    card = blank_card(tmp_path)
    with vpcd.VpcdServer((0,)) as server:
        server.insert(card)
        server.observe(lambda chip, command, answer: False if answer is None else None)
        with socket.create_connection(("127.0.0.1", server.ports[0]), timeout=5) as conn:
            select = b"\x00\xa4\x04\x0c" + bytes([len(AID)]) + AID
            assert _exchange(conn, select) == b"\x6f\x00"
            assert card.apdu_count == 0
            server.observe(None)
            assert _exchange(conn, select) == b"\x90\x00"
            assert card.apdu_count == 1
