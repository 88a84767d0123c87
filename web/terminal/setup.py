"""Where a terminal's trust comes from: inside the full app, or alone on a counter PC.

* `for_instance`: the full app's terminal trusts `<instance>/terminal`, synced from the app's
  own public files `<instance>/public`. Before each sync those files are refreshed from the
  database (the trust list, every published status list, the shard index: exactly what
  `/public/...` serves) and the instance's root is pinned, so the page verifies what any
  other terminal syncing from this app would.
* `terminal_app`: a Flask app with the terminal blueprint and static files only: no database,
  no office, no portal (`cardsys terminal serve`). It verifies offline against its directory
  and, given a URL, syncs in a background thread whenever the network is there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask, redirect, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from cardsys.config import Settings, load_settings
from cardsys.db import Database
from cardsys.models import Photo, StatusListPublication
from issuance import status
from keys import ceremony
from verify.sync import init_terminal
from verify.trust import TerminalPolicy
from web.terminal.state import TerminalState, http_photos

__all__ = ["for_instance", "install", "mirror_public", "terminal_app"]

#: Seconds between background syncs of a standalone terminal (and before a verification in
#: the full app, whose files are local).
STANDALONE_SYNC_SECONDS = 300.0
INSTANCE_SYNC_SECONDS = 30.0


def for_instance(db: Database, settings: Settings) -> TerminalState:
    """The full app's own terminal (module docstring)."""
    directory = settings.instance_path / "terminal"
    public = settings.instance_path / status.PUBLIC_DIR

    def prepare() -> None:
        root_pem = mirror_public(db, settings)
        init_terminal(root_pem, directory)

    def photos(digest: str) -> bytes | None:
        with db.transaction() as session:
            found = session.scalar(select(Photo.content).where(Photo.sha256 == digest))
        return found

    return TerminalState(
        directory=directory, policy=TerminalPolicy.from_settings(settings), source=public,
        prepare=prepare, photos=photos, sync_every=INSTANCE_SYNC_SECONDS,
    )


def mirror_public(db: Database, settings: Settings) -> bytes:
    """Write the database's trust list and status lists into `<instance>/public`, as the
    `/public/` routes serve them; returns the root certificate (PEM).

    Raises:
        NotFoundError: the instance has no root or no trust list yet.
    """
    public = settings.instance_path / status.PUBLIC_DIR
    with db.transaction() as session:
        root_pem = ceremony.root_certificate(session).public_bytes(Encoding.PEM)
        document = ceremony.latest_trust_list(session)
        shards = session.execute(
            select(StatusListPublication.list_number, StatusListPublication.token)
            .where(StatusListPublication.token.is_not(None))
            .order_by(StatusListPublication.list_number)
        ).all()
    _write_if_changed(public / status.TRUST_LIST_FILE, document)
    _write_if_changed(public / status.ROOT_FILE, root_pem)
    for number, token in shards:
        if token is not None:
            _write_if_changed(public / status.STATUS_DIR / str(number), token)
    index = ('{"lists":[' + ",".join(str(n) for n, _ in shards) + "]}").encode()
    _write_if_changed(public / status.STATUS_DIR / status.INDEX_FILE, index)
    return root_pem


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest():
            return
    except FileNotFoundError:
        pass
    status.write_atomic(path, data)


def terminal_app(
    trust_dir: Path,
    *,
    sync_from: str | None = None,
    settings: Settings | None = None,
    test_config: dict[str, Any] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Flask:
    """A Flask app serving the terminal alone (module docstring).

    Args:
        trust_dir: the terminal directory (`cardsys terminal init`, then synced).
        sync_from: the agency's URL (or a directory) to sync from; None: offline only.
        settings: the terminal's limits (presentation window, skew, unknown-status policy);
            its instance path is not used: the app keeps its own files under
            `<trust_dir>/web` (secret key, compiled catalogs).
    """
    from web import DEFAULTS, assets, errors, i18n, security, templating
    from web.terminal import bp

    trust_dir = Path(trust_dir)
    base = settings or load_settings()
    local = base.replace(instance_path=trust_dir / "web", database_url="sqlite://")
    app = Flask("web", static_folder=None)
    app.config.update(DEFAULTS)
    app.config.update(test_config or {})
    app.config["CARDSYS_SETTINGS"] = local
    app.config["CARDSYS_CLOCK"] = clock or (lambda: datetime.now(UTC))
    # A standalone terminal syncs in the background: a page never waits on the network.
    app.config.setdefault("TERMINAL_SYNC_IN_REQUEST", False)
    local.instance_path.mkdir(parents=True, exist_ok=True)
    security.init_app(app, local)
    i18n.init_app(app, local)
    assets.init_app(app)
    errors.init_app(app)
    templating.init_app(app)
    is_url = sync_from is not None and sync_from.startswith(("http://", "https://"))
    terminal = TerminalState(
        directory=trust_dir, policy=TerminalPolicy.from_settings(base),
        source=sync_from, photos=http_photos(sync_from) if is_url and sync_from else None,
        sync_every=float(app.config.get("TERMINAL_SYNC_SECONDS", STANDALONE_SYNC_SECONDS)),
    )
    app.extensions["cardsys_terminal"] = terminal
    app.register_blueprint(bp, url_prefix="/terminal")

    @app.get("/")
    def home() -> Response:
        return redirect(url_for("terminal.index"))

    if not app.config.get("TESTING"):
        terminal.start_background_sync()
    return app


def install(app: Flask, db: Database, settings: Settings) -> None:
    """Give the full app its terminal (`for_instance`)."""
    app.extensions["cardsys_terminal"] = for_instance(db, settings)


def serve(app_factory: Callable[[], Flask], *, host: str, port: int, threads: int = 4) -> None:
    """Serve a terminal app with gunicorn: ONE worker process (the replay cache and the sync
    thread live in it), a few threads (a scanner and a camera at once)."""
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    class _Terminal(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", 1)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("accesslog", "-")

        def load(self) -> Flask:
            return app_factory()

    _Terminal().run()
