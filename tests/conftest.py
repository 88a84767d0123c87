"""Shared fixtures. Service fixtures live in tests/fixtures/ and are loaded as plugins."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.database",
    "tests.fixtures.pcsc",
    "tests.fixtures.softhsm",
]
