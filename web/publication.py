"""Status lists republished from the web app within seconds of a change.

`issuance.status` marks a card's shard dirty inside the transaction that changed the card (its
listener registers when the module is imported, which `init_app` makes sure of). The web app
then publishes, after the commit, in two ways:

1. after every request that changed a card's status: a second listener notes the change on the
   request (`g`), and an `after_request` hook runs `publish_dirty` once the view's transaction
   has committed;
2. from one background thread per worker, every `PUBLISH_POLL_SECONDS`, for changes made
   elsewhere (the CLI, another worker whose publication failed, a shard re-marked while it
   was being built).

Both are safe with several gunicorn workers: `publish_dirty` takes each dirty shard with
`SELECT ... FOR UPDATE SKIP LOCKED`, so workers share the shards and none waits on another.
A publication that fails (no status-list key available, say) is logged and leaves the mark
for the next try; it never fails the request that caused it.

The signing keys come from `CARDSYS_SIGNERS` in the app config (a `SignerSource`; tests pass
an in-memory PKI), else from the instance's key store (`status.key_store_signers`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Final, cast

from flask import Flask, Response, current_app, g, has_request_context
from sqlalchemy.orm import Session

from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import CardsysError
from cardsys.lifecycle import CardStatus
from cardsys.models import Card
from issuance import cards, status

__all__ = ["init_app", "publish_now", "publish_pending", "signers"]

log = logging.getLogger(__name__)

_CHANGED: Final = "cardsys_status_changed"
#: Seconds between two background polls; 0 turns the thread off (tests do).
DEFAULT_POLL_SECONDS: Final = 5.0


def _note_change(
    session: Session, card: Card, before: CardStatus | None, now: datetime
) -> None:
    """A status listener: remember that this request changed a card (published after it)."""
    if has_request_context():
        setattr(g, _CHANGED, True)


# Registered once per process, like `status.mark_dirty` (cards.status_listeners is global).
if _note_change not in cards.status_listeners:
    cards.status_listeners.append(_note_change)


def init_app(app: Flask, settings: Settings) -> None:
    """Install the signer source, the after-request publication and the background poll."""
    source = app.config.get("CARDSYS_SIGNERS") or status.key_store_signers(settings)
    app.extensions["cardsys_signers"] = source
    poll = float(app.config.get("PUBLISH_POLL_SECONDS",
                                0 if app.config.get("TESTING") else DEFAULT_POLL_SECONDS))

    @app.after_request
    def publish_after_change(response: Response) -> Response:
        if g.get(_CHANGED):
            setattr(g, _CHANGED, False)
            publish_now()
        return response

    if poll > 0:
        poller = _Poller(app, poll)
        app.extensions["cardsys_poller"] = poller
        poller.start()


def signers() -> status.SignerSource:
    """The app's source of signing keys."""
    return cast(status.SignerSource, current_app.extensions["cardsys_signers"])


def publish_now() -> list[status.Published]:
    """Republish every dirty shard now (inside an app context); failures are logged."""
    from web.database import database, now, settings

    return publish_pending(database(), settings(), signers(), now())


def publish_pending(
    db: Database, settings: Settings, source: status.SignerSource, at: datetime
) -> list[status.Published]:
    """Republish every dirty shard of `db` (failures are logged, not raised)."""
    try:
        published = status.publish_dirty(db, now=at, settings=settings, signers=source)
    except CardsysError as exc:
        # The marks stay: the next request or poll tries again.
        log.warning("status lists not republished: %s", exc)
        return []
    for entry in published:
        log.info("status list %d republished (revision %d)", entry.list_number, entry.revision)
    return published


class _Poller(threading.Thread):
    """One daemon thread per worker process: publish what other processes left marked."""

    def __init__(self, app: Flask, interval: float) -> None:
        super().__init__(name="cardsys-status-publisher", daemon=True)
        self._app = app
        self._interval = interval
        self._stopping = threading.Event()

    def stop(self) -> None:
        """End the loop after the current poll (tests; a worker's exit ends it anyway)."""
        self._stopping.set()

    def run(self) -> None:
        # The app's database, signers and clock (the wall clock, unless a test moved it).
        db = cast(Database, self._app.extensions["cardsys_db"])
        settings = cast(Settings, self._app.config["CARDSYS_SETTINGS"])
        source = cast(status.SignerSource, self._app.extensions["cardsys_signers"])
        clock = cast(Callable[[], datetime], self._app.config["CARDSYS_CLOCK"])
        while not self._stopping.wait(self._interval):
            try:
                publish_pending(db, settings, source, clock())
            except Exception:  # a poller that dies silently is worse than one that logs
                log.exception("status list poll failed; retrying at the next poll")
