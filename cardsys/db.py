"""Engines, transactions and migrations.

SQLite (the embedded default) runs in WAL mode with foreign keys on, and every transaction
begins `IMMEDIATE`: writers queue on the database lock instead of failing half-way with
"database is locked" when a read turns into a write. PostgreSQL (production) runs at READ
COMMITTED; races are settled by row locks (audit head, number counters) and by optimistic
locking on cards, surfacing as `ConflictError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from cardsys.config import Settings
from cardsys.errors import ConflictError, DatabaseUnavailableError, DuplicateError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for `url` with the per-backend setup described in the module docstring."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_setup(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event own the transaction boundaries.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine and its session factory; `transaction()` is the unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(settings.database)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception.

        Database races come out as `ConflictError`, uniqueness violations as `DuplicateError`.
        """
        session = self._sessions()
        try:
            yield session
            session.commit()
        except StaleDataError as exc:
            session.rollback()
            raise ConflictError(
                "someone else changed this card at the same time; reload and try again"
            ) from exc
        except IntegrityError as exc:
            session.rollback()
            raise DuplicateError(_integrity_message(exc)) from exc
        except OperationalError as exc:
            session.rollback()
            if _is_serialization_failure(exc):
                raise ConflictError("a concurrent transaction won; try again") from exc
            raise DatabaseUnavailableError(
                f"database {self.engine.url.render_as_string(hide_password=True)} is unavailable "
                f"or not initialised ({_first_line(exc.orig)}); run `cardsys init` or "
                "`cardsys db upgrade`"
            ) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _integrity_message(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    if "uq_cards_one_active_physical" in text or "cards.resident_id" in text:
        return "the resident already has an active physical card"
    return "a record with the same unique key already exists"


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _is_serialization_failure(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40001", "40P01", "55P03")


def alembic_config(url: str) -> Any:
    """The Alembic configuration for our migrations directory and `url`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
