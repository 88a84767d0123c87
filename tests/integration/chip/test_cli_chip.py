"""The chip commands: `cardsys chip blank|emulate|personalize` and `cardsys verify chip`."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cardsys.chip.emulator import ATR, Card, CardState
from cardsys.cli import cli
from cardsys.cli_chip import read_transport_key
from cardsys.errors import ConfigError
from cardsys.formats.statuslist import Status
from tests.fixtures.pcsc import ChipTerminal, PcscStack, personalized_card, sample_holder

HOLDER = sample_holder(status_index=9)
ACCESS_ARGS = [
    "--card-number", HOLDER.card_number,
    "--birth-date", HOLDER.birth_date.isoformat(),
    "--expiry", HOLDER.expiry_date.isoformat(),
]  # fmt: skip


def _invoke(*args: str, tmp_path: Path, input: str | None = None) -> Result:
    """`cardsys --instance DIR ARGS...`, the commands as registered in cardsys.cli."""
    instance = ["--instance", str(tmp_path / "instance")]
    return CliRunner().invoke(cli, [*instance, *args], input=input)


def test_blank_makes_an_image_and_a_private_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "bureau" / "transport.key"
    image = tmp_path / "card.card"
    result = _invoke(
        "chip", "blank", "--image", str(image), "--serial", "CHIP-9",
        "--transport-key-file", str(key_file), tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "created transport key file" in result.output
    assert key_file.stat().st_mode & 0o777 == 0o600
    card = Card.open(image)
    assert (card.serial, card.state) == ("CHIP-9", CardState.BLANK)
    key = read_transport_key(key_file)
    assert json.loads(image.read_text())["transport_key"] == key.hex()
    assert key.hex() not in result.output
    again = _invoke(
        "chip", "blank", "--image", str(tmp_path / "other.card"), "--serial", "CHIP-10",
        "--transport-key-file", str(key_file), tmp_path=tmp_path,
    )  # fmt: skip
    assert again.exit_code == 0
    assert again.output.startswith("blank card CHIP-10")
    assert json.loads((tmp_path / "other.card").read_text())["transport_key"] == key.hex()


@pytest.mark.parametrize(
    ("content", "mode", "match"),
    [
        ("00" * 16, 0o644, "readable by others"),
        ("00" * 15, 0o600, "32 hex digits"),
        ("zz" * 16, 0o600, "32 hex digits"),
    ],
)
def test_transport_key_file_is_checked(tmp_path: Path, content: str, mode: int, match: str) -> None:
    path = tmp_path / "key"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(ConfigError, match=match):
        read_transport_key(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_transport_key(tmp_path / "missing")


def test_personalize_needs_an_operator(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("00" * 16)
    key.chmod(0o600)
    result = _invoke(
        "chip", "personalize", "--batch", "1", "--transport-key-file", str(key),
        tmp_path=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--as LOGIN" in result.output


def _exchange(conn: socket.socket, payload: bytes) -> bytes:
    conn.sendall(len(payload).to_bytes(2, "big") + payload)
    size = int.from_bytes(conn.recv(2, socket.MSG_WAITALL), "big")
    return conn.recv(size, socket.MSG_WAITALL)


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    key_file = tmp_path / "transport.key"
    key_file.write_text("11" * 16)
    key_file.chmod(0o600)
    Card.blank(tmp_path / "first.card", "FIRST", bytes.fromhex("11" * 16))
    port = _free_port_pair()
    runner = "import sys; from cardsys.cli import main; main(sys.argv[1:])"
    process = subprocess.Popen(
        [
            sys.executable, "-c", runner,
            "chip", "emulate", "--image", str(tmp_path / "first.card"),
            "--blank-hopper", str(tmp_path / "hopper"), "--transport-key-file", str(key_file),
            "--port", str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_emulate_serves_until_a_signal(
    emulator: tuple[subprocess.Popen[str], int], sig: signal.Signals
) -> None:
    process, port = emulator
    deadline = time.monotonic() + 20
    while True:
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the emulator did not start listening"
            time.sleep(0.05)
    with conn:
        assert _exchange(conn, b"\x04") == ATR
        assert _exchange(conn, b"\x00\xca\x01\x01\x00") == b"FIRST\x90\x00"
    process.send_signal(sig)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "emulator stopped" in err


@pytest.mark.pcsc
def test_verify_chip_prints_the_holder_and_the_verdict(
    pcsc_stack: PcscStack, tmp_path: Path
) -> None:
    terminal = ChipTerminal(datetime.now(UTC).replace(microsecond=0))
    trust_dir = terminal.write(tmp_path / "terminal")
    card, _ = personalized_card(
        tmp_path, terminal.signer(), holder=HOLDER, signing_time=terminal.now
    )
    pcsc_stack.server.insert(card)
    try:
        result = _invoke(
            "verify", "chip", "--reader", "0", *ACCESS_ARGS, "--trust", str(trust_dir),
            tmp_path=tmp_path,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].startswith("VALID")
        assert f"card number   {HOLDER.card_number}" in result.output
        assert f"name          {HOLDER.surname}, {HOLDER.given_names}" in result.output
        as_json = _invoke(
            "verify", "chip", *ACCESS_ARGS, "--trust", str(trust_dir), "--json",
            "--ask-pin", tmp_path=tmp_path, input="123456\n",
        )  # fmt: skip
        assert as_json.exit_code == 0, as_json.output
        verdict = json.loads(as_json.output[as_json.output.index("{") :])
        assert verdict["valid"] is True
        assert verdict["card"]["status"] == "good"
        terminal.statuses.set(HOLDER.status_index, Status.REVOKED)
        terminal.write(trust_dir)
        refused = _invoke(
            "verify", "chip", *ACCESS_ARGS, "--trust", str(trust_dir), tmp_path=tmp_path
        )
        assert refused.exit_code == 1
        assert refused.output.startswith("REFUSED  revoked:")
    finally:
        pcsc_stack.server.remove()
