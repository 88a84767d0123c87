"""Concurrent retries on PostgreSQL: the second claim waits on the unique index while the first
request's transaction runs, then answers the first response; a rolled-back first request
leaves the key to the second, which makes the change itself."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from cardsys.db import Database
from cardsys.models import Base
from tests.factories import NOW, make_admin
from tests.fixtures.postgres import create_database
from web.api import idempotency

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_server: str) -> Iterator[Database]:
    db = Database(create_database(postgres_server, f"api_{secrets.token_hex(4)}"))
    Base.metadata.create_all(db.engine)
    with db.transaction() as session:
        make_admin(session)
    yield db
    db.dispose()


def _admin_id(db: Database) -> int:
    with db.transaction() as session:
        return make_admin(session).id


def _wait_for_lock_wait(db: Database) -> None:
    """Until another backend waits on a lock (the second claim on the unique index)."""
    for _ in range(500):
        with db.engine.connect() as connection:
            waiting = connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            )).scalar_one()
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("the second claim never waited for the first")


@pytest.mark.parametrize("first_commits", [True, False])
def test_the_second_claim_waits_for_the_first(pg: Database, first_commits: bool) -> None:
    operator = _admin_id(pg)
    key, fingerprint = secrets.token_urlsafe(24), "f" * 64
    outcome: list[object] = []

    def second() -> None:
        with pg.transaction() as session:
            claimed = idempotency.claim(session, operator, key, fingerprint, at=NOW)
            if isinstance(claimed, idempotency.Replay):
                outcome.append(claimed)
            else:
                idempotency.settle(claimed, 201, {"by": "second"}, ())
                outcome.append("claimed")

    session = Session(pg.engine)  # the first request's transaction, held open
    try:
        first = idempotency.claim(session, operator, key, fingerprint, at=NOW)
        assert not isinstance(first, idempotency.Replay)
        idempotency.settle(first, 201, {"by": "first"}, ())
        session.flush()
        thread = threading.Thread(target=second)
        thread.start()
        _wait_for_lock_wait(pg)
        if first_commits:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()
    thread.join(timeout=60)
    if first_commits:
        assert outcome == [idempotency.Replay(201, {"by": "first"})]
    else:
        assert outcome == ["claimed"]
    with pg.transaction() as check:
        rows = check.execute(text("SELECT response_body FROM idempotency_keys")).scalars().all()
    assert rows == [{"by": "first" if first_commits else "second"}]
