"""Chromium with the phone's QR encoder (web/static/qr/qr.js) loaded, for tests/browser.

The module is served from a throwaway HTTP server on 127.0.0.1 (module scripts need http, not
file://), next to a blank page whose only script imports it and exposes a few test helpers on
`window.qrTest`. Debian's chromium is driven by Playwright (its own browser download does not
work here); without chromium or Playwright the tests skip, and fail under CI=true.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import unavailable

QR_MODULE = Path(__file__).resolve().parents[2] / "web" / "static" / "qr" / "qr.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Test helpers that run in the page. They return plain JSON (module matrices as "0"/"1"
# strings, row after row) so a whole batch crosses to Python in one call.
HELPERS_JS = """
import * as qr from "/qr.js";

function bits(symbol) {
  return symbol.modules.map((row) => row.map((dark) => (dark ? "1" : "0")).join("")).join("");
}

function summary(symbol) {
  return {version: symbol.version, size: symbol.size, ecl: symbol.ecl, mode: symbol.mode,
          mask: symbol.mask, bits: bits(symbol)};
}

function attempt(work) {
  try {
    return {ok: work()};
  } catch (error) {
    return {error: error.name, message: String(error.message)};
  }
}

window.qrTest = {
  encodeMany(cases) {
    return cases.map(([text, options]) => attempt(() => summary(qr.encode(text, options))));
  },
  canvasPng(text, options, drawOptions) {
    return attempt(() => {
      const symbol = qr.encode(text, options);
      const canvas = document.createElement("canvas");
      qr.drawCanvas(canvas, symbol, drawOptions);
      return {...summary(symbol), width: canvas.width, png: canvas.toDataURL("image/png")};
    });
  },
  svg(text, options, svgOptions) {
    return attempt(() => {
      const symbol = qr.encode(text, options);
      return {...summary(symbol), svg: qr.toSvg(symbol, svgOptions)};
    });
  },
  penalties(matrices) {
    return matrices.map((rows) => qr.penalty(rows.map((row) => [...row].map((c) => c === "1"))));
  },
};
window.qrReady = true;
"""

PAGE_HTML = (
    "<!doctype html><html><head><meta charset='utf-8'><title>qr.js</title></head><body>"
    f"<script type='module'>{HELPERS_JS}</script></body></html>"
)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves the test page at / and the encoder at /qr.js, nothing else."""

    def do_GET(self) -> None:
        if self.path == "/":
            self._send(PAGE_HTML.encode(), "text/html; charset=utf-8")
        elif self.path == "/qr.js":
            self._send(QR_MODULE.read_bytes(), "text/javascript; charset=utf-8")
        else:
            self.send_error(404)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture(scope="module")
def qr_server() -> Iterator[str]:
    """The base URL of a local HTTP server holding the encoder and its test page."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def qr_page(qr_server: str) -> Iterator[Any]:
    """A chromium page with qr.js imported and `window.qrTest` ready."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} not found (apt-get install -y --no-install-recommends chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(qr_server + "/")
            page.wait_for_function("window.qrReady === true", timeout=10_000)
            yield page
            assert errors == [], f"uncaught errors in the page: {errors}"
        finally:
            browser.close()
