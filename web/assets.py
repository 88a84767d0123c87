"""Static files under cache-busting names: the content's hash is part of the URL.

`asset_url("office.css")` gives `/static/<first 12 hex of SHA-256>/office.css`. Such a URL
never changes its content, so it is served `immutable` for a year; a changed file gets a new
URL the moment the app restarts. A request with an old or made-up hash is a 404, never a stale
or wrong file. The manifest is built once at start.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask, Response, abort, current_app, send_from_directory, url_for

STATIC = Path(__file__).resolve().parent / "static"
HASH_CHARS = 12
MAX_AGE = 365 * 86400


def build_manifest(root: Path) -> dict[str, str]:
    """Relative POSIX path -> short content hash, for every file under `root`."""
    manifest = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:HASH_CHARS]
            manifest[path.relative_to(root).as_posix()] = digest
    return manifest


def init_app(app: Flask) -> None:
    """Hash the static files and serve them at `/static/<hash>/<path>`."""
    app.extensions["cardsys_assets"] = build_manifest(STATIC)
    app.add_url_rule("/static/<digest>/<path:filename>", "static", serve)
    app.add_template_global(asset_url)


def asset_url(filename: str) -> str:
    """The URL of a static file, with its content hash.

    Raises:
        KeyError: there is no such static file (a template bug, caught by the tests).
    """
    manifest: dict[str, str] = current_app.extensions["cardsys_assets"]
    return url_for("static", digest=manifest[filename], filename=filename)


def serve(digest: str, filename: str) -> Response:
    """Serve a static file if `digest` is its current hash."""
    manifest: dict[str, str] = current_app.extensions["cardsys_assets"]
    if manifest.get(filename) != digest:
        abort(404)
    response = send_from_directory(STATIC, filename, max_age=MAX_AGE)
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}, immutable"
    return response
