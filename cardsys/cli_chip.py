"""`cardsys chip ...` (card emulator, blank cards, the bureau's batches) and `cardsys verify chip`.

`chip` is a click group the lead registers on the root command; `verify_chip_command` is a
command for the terminal's `verify` group (owned by cli_terminal.py), attached as "chip".

Nothing secret is printed: the bureau's transport key is read from a file (mode 0600, 32 hex
digits) and an AA private key never leaves the personalization step.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import threading
from datetime import date, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import click

from cardsys.chip import vpcd
from cardsys.chip.bac import AccessKey
from cardsys.chip.emulator import Card
from cardsys.clikit import App, emit, now_utc, pass_app
from cardsys.errors import ConfigError, ValidationError
from cardsys.pki import Purpose

_DAY = click.DateTime(formats=["%Y-%m-%d"])
_KEY_FILE_HELP = "File with the bureau's 16-byte transport key in hex (mode 0600)."


def read_transport_key(path: Path) -> bytes:
    """The bureau's transport key from `path` (32 hex digits; the file private to its owner).

    Raises:
        ConfigError: missing, readable by others, or not 16 bytes of hex.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"cannot read the transport key file {path}") from None
    if mode & 0o077:
        raise ConfigError(f"the transport key file {path} must not be readable by others")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise ConfigError(f"the transport key file {path} must hold 32 hex digits")
    return key


def _new_transport_key(path: Path) -> bytes:
    key = secrets.token_bytes(16)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
    return key


@click.group("chip")
def chip() -> None:
    """Chip cards: the card emulator, blank cards and the bureau's personalization batches."""


@chip.command("blank")
@click.option("--image", type=click.Path(path_type=Path), required=True, help="New image file.")
@click.option("--serial", required=True, help="The chip serial (up to 32 characters).")
@click.option(
    "--transport-key-file",
    type=click.Path(path_type=Path),
    required=True,
    envvar="CARDSYS_TRANSPORT_KEY_FILE",
    help=_KEY_FILE_HELP + " Created with a random key if missing.",
)
def chip_blank(image: Path, serial: str, transport_key_file: Path) -> None:
    """Make a blank card image for the emulator (development and tests)."""
    if not 1 <= len(serial) <= 32 or not serial.isprintable():
        raise ValidationError("a chip serial is 1 to 32 printable characters")
    if transport_key_file.exists():
        key = read_transport_key(transport_key_file)
    else:
        key = _new_transport_key(transport_key_file)
        click.echo(f"created transport key file {transport_key_file}")
    Card.blank(image, serial, key)
    click.echo(f"blank card {serial} at {image}")


@chip.command("emulate")
@click.option(
    "--image", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option(
    "--blank-hopper",
    type=click.Path(file_okay=False, path_type=Path),
    help="Feed a fresh blank card (made in this folder) after each locked one.",
)
@click.option(
    "--transport-key-file",
    type=click.Path(path_type=Path),
    envvar="CARDSYS_TRANSPORT_KEY_FILE",
    help=_KEY_FILE_HELP + " Needed with --blank-hopper.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 0xFFFE),
    default=vpcd.DEFAULT_PORTS[0],
    show_default=True,
    help="Port of slot 0; slot 1 listens on the next one (vpcd's reader.conf CHANNELID).",
)
def chip_emulate(
    image: Path, blank_hopper: Path | None, transport_key_file: Path | None, port: int
) -> None:
    """Serve a card image to pcscd's vpcd driver (loopback only) until SIGTERM or Ctrl-C."""
    hopper = None
    if blank_hopper is not None:
        if transport_key_file is None:
            raise click.UsageError("--blank-hopper needs --transport-key-file")
        hopper = vpcd.BlankHopper(blank_hopper, read_transport_key(transport_key_file))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        click.echo(f"serving {image} on 127.0.0.1:{port} and :{port + 1}", err=True)
        vpcd.serve(image, (port, port + 1), stop=stop, hopper=hopper)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("emulator stopped", err=True)


@chip.command("personalize")
@click.option("--batch", "count", type=click.IntRange(min=1), required=True, help="Cards to do.")
@click.option("--reader", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--transport-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    envvar="CARDSYS_TRANSPORT_KEY_FILE",
    help=_KEY_FILE_HELP,
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a blank card in the reader.",
)
@click.option(
    "--machine",
    help="This bureau machine's name (default: host name and reader). A machine resumes only "
    "its own interrupted cards; give a dead machine's name to finish its cards.",
)
@click.option("--as", "login", metavar="LOGIN", help="Acting operator (clerk or supervisor).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def chip_personalize(
    app: App,
    count: int,
    reader: int,
    transport_key_file: Path,
    wait: float,
    machine: str | None,
    login: str | None,
    as_json: bool,
) -> None:
    """Personalize the next approved cards of your office through a PC/SC reader.

    Safe to kill at any moment: run it again and it finishes what was interrupted first.
    """
    from cardsys.chip.pcsc import PcscTransport
    from issuance.personalize import Bureau, ReaderStation
    from keys import ceremony
    from keys.store import open_key_store

    login = login or os.environ.get("CARDSYS_OPERATOR")
    if not login:
        raise click.UsageError("name the acting operator with --as LOGIN")
    key = read_transport_key(transport_key_file)
    station = ReaderStation(lambda: PcscTransport(reader), key)
    store = open_key_store(app.settings)
    done: list[dict[str, Any]] = []

    def progress(result: Any) -> None:
        entry = {
            "card": result.card_number,
            "chip_serial": result.chip_serial,
            "completion": result.completion.value,
            "resumed": result.resumed,
            "personalized": result.personalized,
        }
        done.append(entry)
        if not as_json:
            how = f"resumed, {result.completion.value}" if result.resumed else "locked"
            state = "personalized" if result.personalized else "VOID (card no longer approved)"
            click.echo(f"{result.card_number}  chip {result.chip_serial}  {state} ({how})")

    try:
        bureau = Bureau(
            app.db,
            station,
            operator=login,
            machine=machine or f"{socket.gethostname()}/reader-{reader}",
            settings=app.settings,
            signers=lambda session, now: ceremony.active_signer(
                session, store, Purpose.CHIP_DOCUMENT, now
            ),
            clock=now_utc,
            wait=wait,
        )
        bureau.run(count, progress=progress)
    finally:
        station.close()
        store.close()
        from cardsys.cli_digital import publish_changes

        publish_changes(app)
    emit(as_json, done, f"{len(done)} card(s) done")


@click.command("chip")
@click.option("--reader", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--card-number", required=True, help="As printed on the card.")
@click.option("--birth-date", type=_DAY, required=True, help="YYYY-MM-DD, as printed.")
@click.option("--expiry", type=_DAY, required=True, help="YYYY-MM-DD, as printed.")
@click.option(
    "--trust",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The terminal's trust directory (root.pem, trust-list, status/).",
)
@click.option("--ask-pin", is_flag=True, help="Ask the holder's PIN and check it on the card.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def verify_chip_command(
    app: App,
    reader: int,
    card_number: str,
    birth_date: datetime,
    expiry: datetime,
    trust: Path,
    ask_pin: bool,
    as_json: bool,
) -> None:
    """Read and verify the chip card in a PC/SC reader offline; exit 0 only when it is valid."""
    from cardsys.chip.pcsc import PcscTransport
    from verify.chip import check_chip
    from verify.trust import TerminalPolicy, TrustStore

    access = AccessKey(card_number.strip().upper(), _day(birth_date), _day(expiry))
    pin = click.prompt("PIN", hide_input=True) if ask_pin else None
    now = now_utc()
    store = TrustStore.load(trust, now=now, policy=TerminalPolicy.from_settings(app.settings))
    with PcscTransport(reader) as transport:
        verdict = check_chip(transport, store, access=access, now=now, pin=pin)
    emit(as_json, verdict.as_dict(), lambda: _verdict_text(verdict.as_dict()))
    if not verdict.valid:
        sys.exit(1)


def _day(value: datetime) -> date:
    return value.date()


def _verdict_text(data: dict[str, Any]) -> str:
    card = data["card"]
    if card is None:
        return f"REFUSED  {data['reason']}: {data['message']}"
    rows = [
        ("card number", card["card_number"]),
        ("name", f"{card['surname']}, {card['given_names']}"),
        ("sex", card["sex"]),
        ("birth date", card["birth_date"]),
        ("region", card["region"]),
        ("schemes", " ".join(card["schemes"]) or "-"),
        ("expires", card["expires"]),
        ("photo sha256", card["photo_sha256"]),
        ("signer", card["signer_kid"]),
        ("status", card["status"]),
    ]
    lines = [f"VALID  {data['message']}"]
    lines += [f"  {label:<13} {value}" for label, value in rows]
    return "\n".join(lines)
