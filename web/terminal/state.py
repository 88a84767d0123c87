"""A verification terminal inside a web process: its trust directory, store, replay cache, sync.

The terminal page verifies through `verify.check_qr` against a `verify.TrustStore` loaded from
a synced trust directory (`verify.sync`), with one `ReplayCache` for the process. Nothing here
touches a database: the full app hands in a `prepare` step (refresh its own public files from
the database and pin its root) and a photo lookup, the standalone terminal an HTTP source.

Rules:

* the store is loaded from disk, checked as `TrustStore.load` checks it, and reloaded only when
  a sync changed the directory (`state.json` is rewritten by every sync);
* a sync is due when the last one is older than `sync_every` seconds; a due sync runs before a
  verification (the full app: its files are local) or in a background thread (the standalone
  terminal: `start_background_sync`); a failed sync keeps the held lists and is reported on
  the page, never hidden;
* every verification runs under the lock of `<dir>/replay.json` (the lock file `cardsys verify
  qr` uses): the entries saved there are merged into the process's replay cache first, and an
  accepted presentation is written back before the lock is released. So a QR passes once per
  terminal directory, across the workers of a gunicorn, restarts and the CLI.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from cardsys.errors import CardsysError, TrustListError, VerificationError
from verify.qr import check_qr
from verify.replay import ReplayCache
from verify.result import Evidence, Verdict
from verify.sync import SyncReport, sync
from verify.trust import STATE_FILE, TerminalPolicy, TrustStore

__all__ = ["PhotoSource", "TerminalState", "http_photos"]

log = logging.getLogger(__name__)

#: Looks up a portrait by the SHA-256 (hex) a verified credential carries.
PhotoSource = Callable[[str], bytes | None]

REPLAY_FILE: Final = "replay.json"
_MAX_PHOTO: Final = 512 * 1024
_PHOTO_TIMEOUT: Final = 5.0


@dataclass
class TerminalState:
    """One terminal: where it trusts from, how it syncs, what it has seen."""

    directory: Path
    policy: TerminalPolicy
    #: Where `sync` fetches from: an http(s) base URL or a directory; None: never syncs.
    source: str | Path | None = None
    #: Runs before every sync (the full app refreshes `<instance>/public` and pins its root).
    prepare: Callable[[], None] | None = None
    photos: PhotoSource | None = None
    sync_every: float = 60.0
    replay: ReplayCache = field(default_factory=ReplayCache)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _store: TrustStore | None = field(default=None, repr=False)
    _stamp: int | None = field(default=None, repr=False)
    _last_attempt: datetime | None = field(default=None, repr=False)
    last_error: str | None = None

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._replay_file() as saved:
            now = int(datetime.now(UTC).timestamp())
            self.replay.restore(saved, now)

    # --- trust ----------------------------------------------------------------------------

    def store(self, now: datetime) -> TrustStore:
        """The trust store as the directory holds it now.

        Raises:
            TrustListError: no pinned root or trust list yet, or one that fails its checks.
        """
        stamp = self._state_stamp()
        with self._lock:
            if self._store is None or stamp != self._stamp:
                self._store = TrustStore.load(self.directory, now=now, policy=self.policy)
                self._stamp = stamp
            return self._store

    def sync(self, now: datetime) -> SyncReport:
        """Sync now; the outcome is also kept for the page (`last_error`).

        Raises:
            CardsysError: the source could not be read or its trust list was refused; the
                directory is unchanged.
        """
        self._last_attempt = now
        if self.source is None:
            raise TrustListError("this terminal has no sync source")
        try:
            if self.prepare is not None:
                self.prepare()
            report = sync(self.source, self.directory, now=now, policy=self.policy)
        except CardsysError as exc:
            self.last_error = f"{exc.code}: {exc}"
            log.warning("terminal sync failed: %s", self.last_error)
            raise
        self.last_error = (
            "; ".join(f"status list {n}: {why}" for n, why in report.refused) or None
        )
        return report

    def sync_if_due(self, now: datetime) -> None:
        """Sync when the last attempt is older than `sync_every` (errors kept, not raised)."""
        if self.source is None or self.sync_every <= 0:
            return
        last = self._last_attempt
        if last is not None and (now - last).total_seconds() < self.sync_every:
            return
        with contextlib.suppress(CardsysError):  # recorded in last_error by sync()
            self.sync(now)

    def start_background_sync(self) -> threading.Thread | None:
        """A daemon thread that syncs every `sync_every` seconds (the standalone terminal)."""
        if self.source is None or self.sync_every <= 0:
            return None
        thread = threading.Thread(target=self._sync_forever, name="cardsys-terminal-sync",
                                  daemon=True)
        thread.start()
        return thread

    def _sync_forever(self) -> None:
        stop = threading.Event()
        while True:
            self.sync_if_due(datetime.now(UTC))
            stop.wait(self.sync_every)

    def last_sync(self) -> datetime | None:
        """When the directory was last synced successfully (from its `state.json`)."""
        try:
            state = json.loads((self.directory / STATE_FILE).read_bytes())
            return datetime.fromisoformat(state["synced_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # --- verification ---------------------------------------------------------------------

    def verify(self, text: str, now: datetime) -> Verdict:
        """The verdict on scanned QR text (never raises for bad input or a missing store)."""
        try:
            store = self.store(now)
        except VerificationError as exc:  # TrustListError, StaleTrustError
            return Verdict.refused(exc)
        moment = int(now.timestamp())
        # Under the replay file's lock: what another worker process (or `cardsys verify qr`)
        # accepted is merged in before the check, and what this one accepts is written out
        # before the lock is released, so a QR passes once per terminal directory.
        with self._replay_file() as saved:
            self.replay.restore(saved, moment)
            verdict = check_qr(text, store, now=now, replay=self.replay)
            card = verdict.card
            if verdict.valid and card is not None and card.evidence is Evidence.PRESENTATION:
                self._write_replay(moment)
        return verdict

    def photo(self, digest: str) -> bytes | None:
        """The portrait whose SHA-256 is `digest`, when a source has it (checked)."""
        if self.photos is None or len(digest) != 64:
            return None
        try:
            content = self.photos(digest)
        except CardsysError as exc:
            log.info("photo %s unavailable: %s", digest[:12], exc)
            return None
        if content is None or hashlib.sha256(content).hexdigest() != digest:
            return None
        return content

    # --- files ----------------------------------------------------------------------------

    def _state_stamp(self) -> int | None:
        try:
            return (self.directory / STATE_FILE).stat().st_mtime_ns
        except OSError:
            return None

    @contextlib.contextmanager
    def _replay_file(self) -> Iterator[list[tuple[bytes, int]]]:
        """The saved replay entries, read and (on exit) rewritten under the lock file."""
        path = self.directory / REPLAY_FILE
        with (self.directory / f".{REPLAY_FILE}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                raw = json.loads(path.read_text()) if path.exists() else []
                saved = [(bytes.fromhex(key), int(expiry)) for key, expiry in raw]
            except (ValueError, TypeError) as exc:
                # Starting empty would let a replay through: refuse until someone looks.
                raise TrustListError(f"{path} is damaged ({exc}); remove it to reset") from None
            yield saved

    def _write_replay(self, now: int) -> None:
        """Write the live entries (call with the replay file's lock held)."""
        path = self.directory / REPLAY_FILE
        entries = [[key.hex(), expiry] for key, expiry in self.replay.entries(now)]
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entries))
        os.replace(temporary, path)


def http_photos(base_url: str) -> PhotoSource:
    """Portraits fetched from an agency web app (`<base>/terminal/photo/<sha256>`)."""
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https"):
        raise TrustListError(f"photos come from an http(s) URL, not {base_url!r}")
    base = base_url.rstrip("/") + "/terminal/photo/"

    def fetch(digest: str) -> bytes | None:
        request = urllib.request.Request(base + digest,  # noqa: S310 - scheme checked above
                                         headers={"User-Agent": "cardsys-terminal"})
        try:
            with urllib.request.urlopen(request, timeout=_PHOTO_TIMEOUT) as answer:  # noqa: S310
                data: bytes = answer.read(_MAX_PHOTO + 1)
        except (urllib.error.URLError, OSError):
            return None
        return data if len(data) <= _MAX_PHOTO else None

    return fetch
