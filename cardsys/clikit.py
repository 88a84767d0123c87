"""What every `cardsys` command module shares: the App (settings and database, opened on first
use), the `--as`/`--json` options, output, and the clock. Command modules import this, never
`cardsys.cli`, so the command tree has no import cycle."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session

from cardsys.config import Settings, load_settings
from cardsys.db import Database
from cardsys.models import Operator
from issuance import operators

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    """What every command shares: settings and the database, opened on first use."""

    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None
    _db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(overrides=self.overrides)
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database.from_settings(self.settings)
        return self._db

    @contextmanager
    def acting(self, login: str | None) -> Iterator[tuple[Session, Operator]]:
        """A transaction and the operator named by `--as`."""
        login = login or os.environ.get("CARDSYS_OPERATOR")
        if not login:
            raise click.UsageError("name the acting operator with --as LOGIN")
        with self.db.transaction() as session:
            yield session, operators.get_operator(session, login)


#: Passes the shared `App` to a command (typed: click.make_pass_decorator is not).
pass_app: Callable[[Callable[..., Any]], Callable[..., Any]] = click.make_pass_decorator(App)


def now_utc() -> datetime:
    return datetime.now(UTC)


def acting_options(func: F) -> F:
    """`--as LOGIN` and `--json` for a command that acts as an operator."""
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)
    func = click.option("--as", "login", metavar="LOGIN", help="Acting operator.")(func)
    return func


def emit(as_json: bool, data: Any, text: str | Callable[[], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        click.echo(text() if callable(text) else text)
