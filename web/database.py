"""What a request uses of the app: its settings, its clock and its database transactions.

A view opens `transaction()` around exactly the work that must commit or roll back together
(the service call and its audit event); a service error raised inside rolls everything back
before the view turns it into a message. There is no session that lives across a request, so
nothing half-done can be committed by a teardown hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import cast

from flask import current_app
from sqlalchemy.orm import Session

from cardsys.config import Settings
from cardsys.db import Database


def settings() -> Settings:
    """The cardsys settings of the running app."""
    return cast(Settings, current_app.config["CARDSYS_SETTINGS"])


def database() -> Database:
    """The app's one `Database` (engine and session factory)."""
    return cast(Database, current_app.extensions["cardsys_db"])


def now() -> datetime:
    """The current time, from the app's clock (tests replace it to move time)."""
    clock = cast(Callable[[], datetime], current_app.config["CARDSYS_CLOCK"])
    return clock()


@contextmanager
def transaction() -> Iterator[Session]:
    """A unit of work: commits when the block ends, rolls back when it raises.

    Database races surface as `ConflictError`, uniqueness violations as `DuplicateError`
    (see `cardsys.db.Database.transaction`).
    """
    with database().transaction() as session:
        yield session
