"""The real app on 127.0.0.1 and Debian's chromium, for the end-to-end browser tests.

`server` builds a fresh instance exactly as `scripts/run` does (`cardsys init`, `keys dev-pki`,
`demo seed`), then serves `web:create_app()` with gunicorn (two workers, a free port) and stops
it by its PID. `browser` is chromium driven by Playwright (`executable_path=/usr/bin/chromium`,
the flags of FACTS.md; Playwright's own browser download does not work here). Without chromium
or Playwright the tests skip, and under CI=true they fail. Screenshots and the server's log go
to `tests/e2e/artifacts/` (git-ignored).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The phone redraws its QR every few seconds here (30 in production), so the offline redraw
#: is seen without a long wait.
STEP_SECONDS = 4


@dataclass(frozen=True)
class Server:
    """The app under test."""

    base: str
    instance: Path
    logins: dict[str, str]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _cardsys(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from cardsys.cli import main; main()", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"cardsys {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A fresh development instance served by gunicorn on a free 127.0.0.1 port."""
    instance = tmp_path_factory.mktemp("e2e") / "instance"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDSYS_")}
    env.update({
        "CARDSYS_INSTANCE_PATH": str(instance),
        "CARDSYS_KEY_PASSPHRASE_FILE": str(instance / "dev-key-passphrase"),
        "CARDSYS_PUBLIC_BASE_URL": base,
        "CARDSYS_PRESENTATION_STEP": str(STEP_SECONDS),
    })
    _cardsys(env, "init")
    _cardsys(env, "keys", "dev-pki")
    _cardsys(env, "demo", "seed")
    logins = dict(line.split(" ", 1) for line in
                  (instance / "demo-logins.txt").read_text().splitlines() if " " in line)
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--access-logfile", "-", "web:create_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_up(base + "/healthz", process)
        yield Server(base, instance, logins)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}: see "
                                 f"{ARTIFACTS / 'server.log'}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"the app did not answer at {url}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} not found (apt-get install -y --no-install-recommends chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def decode_qr(png: bytes) -> str:
    """The text of the one QR code in a screenshot (zxing-cpp)."""
    import zxingcpp
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.barcode_formats_from_str("QRCode"))
    assert len(found) == 1, f"expected one QR code in the screenshot, found {len(found)}"
    return str(found[0].text)


def shot(page: Any, name: str, **options: Any) -> bytes:
    """A screenshot kept as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    data: bytes = page.screenshot(path=str(ARTIFACTS / f"{name}.png"), **options)
    return data
