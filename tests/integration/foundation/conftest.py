"""Fixtures for the foundation's integration tests: offices with staff, on both backends."""

from __future__ import annotations

import pytest

from cardsys.db import Database
from tests.factories import Staff, make_office


@pytest.fixture
def staff(database: Database) -> Staff:
    """Office OFF-A (region 110101) with a clerk, two supervisors and an auditor."""
    with database.transaction() as session:
        return make_office(session, "OFF-A", "110101")


@pytest.fixture
def other_staff(database: Database, staff: Staff) -> Staff:
    """A second office, OFF-B (region 320102), whose operators must not see OFF-A's records."""
    with database.transaction() as session:
        return make_office(session, "OFF-B", "320102")
