"""The migrations build exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from cardsys.db import Database, alembic_config, upgrade
from cardsys.models import Base
from tests.fixtures.postgres import create_database


@pytest.fixture
def empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database with no tables at all (not the shared, already migrated test database)."""
    if backend == "postgresql":
        server: str = request.getfixturevalue("postgres_server")
        return create_database(server, "cardsys_migrations")
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def empty_db(empty_url: str) -> Iterator[Database]:
    database = Database(empty_url)
    yield database
    database.dispose()


def differences(database: Database) -> list[Any]:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_upgrading_an_empty_database_gives_the_models_schema(empty_db: Database) -> None:
    assert inspect(empty_db.engine).get_table_names() == []
    upgrade(empty_db.url)
    assert differences(empty_db) == []
    tables = set(inspect(empty_db.engine).get_table_names())
    assert tables == {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}


def test_the_one_active_physical_card_index_is_partial_and_unique(empty_db: Database) -> None:
    upgrade(empty_db.url)
    indexes = {i["name"]: i for i in inspect(empty_db.engine).get_indexes("cards")}
    index = indexes["uq_cards_one_active_physical"]
    assert index["unique"]
    assert index["column_names"] == ["resident_id"]
    where = str(index.get("dialect_options", {}).get(f"{empty_db.dialect}_where", ""))
    assert "physical" in where
    assert "active" in where


def test_downgrade_to_base_and_upgrade_again(empty_db: Database) -> None:
    upgrade(empty_db.url)
    command.downgrade(alembic_config(empty_db.url), "base")
    assert set(inspect(empty_db.engine).get_table_names()) <= {"alembic_version"}
    upgrade(empty_db.url)
    assert differences(empty_db) == []
