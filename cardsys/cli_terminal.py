"""`cardsys terminal` and `cardsys verify`: a hospital terminal, offline.

A terminal directory is made once with `terminal init --root root.pem --dir DIR` (the pinned
root) and kept current with `terminal sync --from URL|DIR --dir DIR`. `verify qr TEXT` and
`verify image FILE.png` check a scanned code against it, print the holder data and the
verdict, and exit 0 only for a valid card. The terminal's limits (presentation window, clock
skew, status list age, the unknown-status policy) come from the settings (`CARDSYS_*`).

The replay cache of the presentation window is kept in `DIR/replay.json` between runs (under
a file lock), so the same QR shown twice at this terminal is refused even from the CLI.

`terminal serve --trust DIR [--sync-from URL]` serves the terminal page alone on a counter PC
(`web.terminal_app`: no database), verifying offline and syncing in the background; it shares
`DIR/replay.json` with `verify qr`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from cardsys.clikit import App, emit, now_utc, pass_app
from cardsys.errors import BadEncodingError, ValidationError
from verify.qr import check_qr
from verify.replay import ReplayCache
from verify.result import Verdict, VerifiedCard
from verify.sync import init_terminal, sync
from verify.trust import TerminalPolicy, TrustStore

__all__ = ["terminal_group", "verify_group"]

_REPLAY_FILE = "replay.json"
_DIRECTORY = click.Path(file_okay=False, path_type=Path)


def _policy(app: App) -> TerminalPolicy:
    return TerminalPolicy.from_settings(app.settings)


# --- terminal -------------------------------------------------------------------------------


@click.group("terminal")
def terminal_group() -> None:
    """A verification terminal's trust directory."""


@terminal_group.command("init")
@click.option("--root", "root_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The agency's root certificate (PEM), obtained out of band.")
@click.option("--dir", "directory", required=True, type=_DIRECTORY)
def terminal_init(root_file: Path, directory: Path) -> None:
    """Pin the root certificate in a new terminal directory (once per terminal)."""
    root = init_terminal(root_file.read_bytes(), directory)
    click.echo(f"terminal {directory} pins root {root.subject.rfc4514_string()}")


@terminal_group.command("sync")
@click.option("--from", "source", required=True, help="http(s)://host[:port] or a directory.")
@click.option("--dir", "directory", required=True, type=_DIRECTORY)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def terminal_sync(app: App, source: str, directory: Path, as_json: bool) -> None:
    """Fetch the trust list and status lists, verify them, then replace the held copies."""
    report = sync(source, directory, now=now_utc(), policy=_policy(app))
    lines = [f"trust list {report.trust_list_sequence}"
             + (" (updated)" if report.trust_list_updated else " (unchanged)"),
             f"status lists updated: {_numbers(report.updated)}; "
             f"unchanged: {_numbers(report.unchanged)}"]
    lines += [f"status list {n} refused, keeping the held copy: {why}"
              for n, why in report.refused]
    emit(as_json, report.as_dict(), "\n".join(lines))
    if report.refused:
        sys.exit(1)


@terminal_group.command("show")
@click.option("--dir", "directory", required=True, type=_DIRECTORY)
@pass_app
def terminal_show(app: App, directory: Path) -> None:
    """What the terminal trusts, and whether its lists are fresh."""
    now = now_utc()
    store = TrustStore.load(directory, now=now, policy=_policy(app))
    click.echo(json.dumps(store.describe(now), indent=2, sort_keys=True))


@terminal_group.command("serve")
@click.option("--trust", "directory", required=True, type=_DIRECTORY,
              help="The terminal directory (terminal init, then synced).")
@click.option("--sync-from", "source", default=None,
              help="The agency's URL (http(s)://host[:port]) or a directory to sync from in "
                   "the background; without it the terminal verifies offline only.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=click.IntRange(1, 65535))
@click.option("--sync-every", default=300, show_default=True, type=click.IntRange(10, 86400),
              help="Seconds between background syncs.")
@pass_app
def terminal_serve(app: App, directory: Path, source: str | None, host: str, port: int,
                   sync_every: int) -> None:
    """Serve the terminal page alone (no database): scan, verify offline, sync when online."""
    # The web layer is imported here only: the other terminal commands need no Flask.
    from web.terminal.setup import serve, terminal_app

    if not (directory / "root.pem").is_file():
        raise ValidationError(f"{directory} has no pinned root: run `cardsys terminal init` first")
    settings = app.settings

    def build() -> Any:
        return terminal_app(directory, sync_from=source, settings=settings,
                            test_config={"TERMINAL_SYNC_SECONDS": float(sync_every)})

    click.echo(f"terminal on http://{host}:{port}/terminal/  (trust {directory}"
               + (f", syncing from {source}" if source else ", offline only") + ")")
    serve(build, host=host, port=port)


def _numbers(numbers: tuple[int, ...]) -> str:
    return ", ".join(map(str, numbers)) or "none"


# --- verify -----------------------------------------------------------------------------------


@click.group("verify")
def verify_group() -> None:
    """Verify a scanned QR code offline against a terminal directory."""


_TRUST = click.option("--trust", "directory", required=True, type=_DIRECTORY,
                      help="The terminal directory (terminal init / sync).")
_NONCE = click.option("--nonce", help="The challenge this terminal showed (hex), if any.")


@verify_group.command("qr")
@click.argument("text")
@_TRUST
@_NONCE
@click.option("--json", "as_json", is_flag=True)
@pass_app
def verify_qr_command(app: App, text: str, directory: Path, nonce: str | None,
                      as_json: bool) -> None:
    """Verify QR text (SSP1:... or SSC1:...); exit 0 only for a valid card."""
    _report(_check(app, text, directory, nonce), as_json)


@verify_group.command("image")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_TRUST
@_NONCE
@click.option("--json", "as_json", is_flag=True)
@pass_app
def verify_image_command(app: App, image: Path, directory: Path, nonce: str | None,
                         as_json: bool) -> None:
    """Decode a QR code from an image (zxing-cpp) and verify it; exit 0 only if valid."""
    text = decode_image(image)
    if text is None:
        _report(Verdict.refused(BadEncodingError("no QR code found in the image")), as_json)
    else:
        _report(_check(app, text, directory, nonce), as_json)


def decode_image(path: Path) -> str | None:
    """The text of the first QR code in an image, or None."""
    try:
        import zxingcpp  # an optional dependency (extra "qrdecode"): only this command needs it
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise ValidationError(f"decoding images needs zxing-cpp ({exc.name} missing)") from None
    try:
        with Image.open(path) as picture:
            qr_only = zxingcpp.barcode_formats_from_str("QRCode")
            found = zxingcpp.read_barcodes(picture.convert("L"), formats=qr_only)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValidationError(f"{path} is not a readable image: {exc}") from None
    return str(found[0].text) if found else None


def _check(app: App, text: str, directory: Path, nonce: str | None) -> Verdict:
    try:
        challenge = bytes.fromhex(nonce) if nonce else None
    except ValueError:
        raise ValidationError("--nonce must be hexadecimal") from None
    now = now_utc()
    store = TrustStore.load(directory, now=now, policy=_policy(app))
    with _replay_cache(directory, int(now.timestamp())) as replay:
        return check_qr(text, store, now=now, replay=replay, nonce=challenge)


@contextlib.contextmanager
def _replay_cache(directory: Path, now: int) -> Iterator[ReplayCache]:
    """The terminal's replay cache, loaded and saved under an exclusive lock."""
    path = directory / _REPLAY_FILE
    with (directory / f".{_REPLAY_FILE}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = ReplayCache()
        try:
            saved = json.loads(path.read_text()) if path.exists() else []
            cache.restore([(bytes.fromhex(key), int(expiry)) for key, expiry in saved], now)
        except (ValueError, TypeError) as exc:
            # Starting empty would let a replay through: refuse until someone looks.
            raise ValidationError(f"{path} is damaged ({exc}); remove it to reset") from None
        yield cache
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps([[key.hex(), exp] for key, exp in cache.entries(now)]))
        os.replace(temporary, path)


def _report(verdict: Verdict, as_json: bool) -> None:
    emit(as_json, verdict.as_dict(), lambda: _text(verdict))
    if not verdict.valid:
        sys.exit(1)


def _text(verdict: Verdict) -> str:
    card = verdict.card
    if card is None:
        return f"REFUSED {verdict.reason}: {verdict.message}"
    return "\n".join([f"VALID {verdict.message}", *_holder_lines(card)])


def _holder_lines(card: VerifiedCard) -> list[str]:
    data: dict[str, Any] = card.as_dict()
    return [
        f"  card {data['card_number']}  (document {data['document_number']})",
        f"  {data['surname']}, {data['given_names']}  sex {data['sex']}  "
        f"born {data['birth_date']}  region {data['region']}",
        f"  schemes {' '.join(data['schemes']) or '-'}",
        f"  photo sha256 {data['photo_sha256'] or '-'}",
        f"  valid until {data['expires']}  signer {data['signer_kid']}  "
        f"status {data['status']}",
    ]
