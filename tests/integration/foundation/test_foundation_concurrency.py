"""Real concurrency on PostgreSQL: racing approvals and card-number allocation.

Threads each hold their own session and connection; processes each hold their own engine. A
barrier lines them up so the critical statements really overlap.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

import tests.factories as f
from cardsys import audit
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import ConflictError
from cardsys.ids import CardNumber
from cardsys.lifecycle import CardStatus
from cardsys.models import CardNumberCounter
from issuance import cards
from tests.factories import NOW, Staff

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
REPO = Path(__file__).resolve().parents[3]
WAIT = 60.0  # seconds a barrier waits before the test fails instead of hanging


def enrol_many(database: Database, staff: Staff, count: int) -> list[str]:
    """`count` residents of OFF-A in one province, so their cards share one number counter."""
    with database.transaction() as s:
        return [f.make_resident(s, staff.clerk_in(s), n).id_number for n in range(1, count + 1)]


def assert_gap_free(database: Database, numbers: list[str], expected: int) -> None:
    parsed = [CardNumber(n) for n in numbers]
    assert len(set(numbers)) == len(numbers) == expected
    assert {(n.prefix, n.province) for n in parsed} == {("SS", "11")}
    assert sorted(n.serial for n in parsed) == list(range(1, expected + 1))
    with database.transaction() as s:
        counter = s.scalars(select(CardNumberCounter)).one()
        assert counter.next_serial == expected + 1
        assert audit.verify(s).events == f.audit_count(s)


def test_two_simultaneous_approvals_one_wins(
    database: Database, settings: Settings, staff: Staff
) -> None:
    with database.transaction() as s:
        number = cards.apply(s, staff.clerk_in(s), f.make_resident(s, staff.clerk_in(s)),
                             now=NOW, settings=settings).number
    barrier = threading.Barrier(2, timeout=WAIT)
    outcome: dict[str, object] = {}

    def approve(login: str) -> None:
        try:
            with database.transaction() as s:
                card, boss = f.card(s, number), f.operator(s, login)
                assert card.resident.review_required is False  # loaded before the race
                barrier.wait()
                cards.approve(s, boss, card, now=NOW)
            outcome[login] = "approved"
        except ConflictError as exc:
            outcome[login] = exc

    threads = [threading.Thread(target=approve, args=(login,))
               for login in (staff.supervisor, staff.supervisor2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    winners = [login for login, result in outcome.items() if result == "approved"]
    losers = [result for result in outcome.values() if isinstance(result, ConflictError)]
    assert (len(winners), len(losers)) == (1, 1), outcome
    with database.transaction() as s:
        card = f.card(s, number)
        assert card.status is CardStatus.APPROVED
        assert card.approver_id == f.operator(s, winners[0]).id
        assert f.audit_tags(s, number) == ["card:status:apply", "card:status:approve"]
        assert audit.verify(s).events == f.audit_count(s)


def test_eight_threads_allocate_distinct_gap_free_numbers(
    database: Database, settings: Settings, staff: Staff
) -> None:
    holders = enrol_many(database, staff, 8)
    barrier = threading.Barrier(len(holders), timeout=WAIT)
    numbers: list[str] = []
    errors: list[BaseException] = []

    def apply(id_number: str) -> None:
        try:
            with database.transaction() as s:
                clerk, holder = staff.clerk_in(s), f.resident(s, id_number)
                barrier.wait()
                numbers.append(cards.apply(s, clerk, holder, now=NOW, settings=settings).number)
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=apply, args=(h,)) for h in holders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert errors == []
    assert_gap_free(database, numbers, 8)


# A worker process: waits for the start file, then applies for a card for each ID number.
WORKER = """
import sys, time
from datetime import datetime
from pathlib import Path
from cardsys.config import load_settings
from cardsys.db import Database
from issuance import cards, operators, residents

url, login, start = sys.argv[1], sys.argv[2], Path(sys.argv[3])
now, ids = datetime.fromisoformat(sys.argv[4]), sys.argv[5:]
settings = load_settings(env={}, overrides={"database_url": url})
database = Database(url)
with database.transaction() as session:  # connect before the start, not during the race
    operators.get_operator(session, login)
Path(str(start) + "." + ids[0]).touch()
deadline = time.monotonic() + 60
while not start.exists():
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.002)
for id_number in ids:
    with database.transaction() as session:
        clerk = operators.get_operator(session, login)
        holder = residents.get(session, clerk, id_number)
        print(cards.apply(session, clerk, holder, now=now, settings=settings).number)
"""


def test_four_processes_allocate_distinct_gap_free_numbers(
    database: Database, staff: Staff, tmp_path: Path
) -> None:
    holders = enrol_many(database, staff, 8)
    start = tmp_path / "start"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, database.url, staff.clerk, str(start),
             NOW.isoformat(), *holders[i::4]],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(4)
    ]
    try:
        deadline = time.monotonic() + WAIT
        while len(list(tmp_path.glob("start.*"))) < len(workers):
            assert time.monotonic() < deadline, "workers did not get ready"
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            time.sleep(0.01)
        start.touch()
        results = [w.communicate(timeout=WAIT) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [w.returncode for w in workers] == [0, 0, 0, 0], [err for _, err in results]
    numbers = [line for out, _ in results for line in out.split()]
    assert_gap_free(database, numbers, 8)
