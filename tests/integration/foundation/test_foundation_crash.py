"""A process killed in the middle of `card replace` leaves the old state, never half.

The child process runs the real replacement service; `issuance.cards.apply` (called after the
old card's revoke has been flushed to the database, before the commit) is swapped for a
function that records what the transaction sees and then SIGKILLs its own process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

import tests.factories as f
from cardsys import audit
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import Card
from issuance import cards
from tests.factories import NOW, Staff

REPO = Path(__file__).resolve().parents[3]

CHILD = """
import os, signal, sys
from datetime import datetime
from pathlib import Path
from sqlalchemy import select
from cardsys.config import load_settings
from cardsys.db import Database
from cardsys.lifecycle import Reason
from cardsys.models import Card
from issuance import cards, operators

url, login, number, marker, now = sys.argv[1:6]
settings = load_settings(env={}, overrides={"database_url": url})
database = Database(url)

def crash(session, *args, **kwargs):
    # Inside the replacement's transaction: the old card's revoke is already in the database.
    status = session.scalar(select(Card.status).where(Card.number == number))
    Path(marker).write_text(status.value)
    os.kill(os.getpid(), signal.SIGKILL)

cards.apply = crash
with database.transaction() as session:
    actor = operators.get_operator(session, login)
    card = cards.get(session, actor, number)
    cards.replace(session, actor, card, reason=Reason.LOST,
                  now=datetime.fromisoformat(now), settings=settings)
print("not killed")
"""


def test_a_replacement_killed_before_commit_leaves_the_old_state(
    database: Database, settings: Settings, staff: Staff, tmp_path: Path
) -> None:
    with database.transaction() as s:
        holder = f.make_resident(s, staff.clerk_in(s))
        number = f.make_card(s, staff, holder, settings=settings,
                             status=CardStatus.SUSPENDED, reason=Reason.LOST).number
    before = f.snapshot(database)
    marker = tmp_path / "seen"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, database.url, staff.supervisor, number, str(marker),
         NOW.isoformat()],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    # The kill came after the old card's revoke had reached the database ...
    assert marker.read_text() == "revoked"
    # ... and none of it survived: every table is as before, the chain intact.
    assert f.snapshot(database) == before
    with database.transaction() as s:
        card = f.card(s, number)
        assert (card.status, card.status_reason) == (CardStatus.SUSPENDED, Reason.LOST)
        assert s.scalars(select(Card)).all() == [card]
        assert audit.verify(s).events == f.audit_count(s)
    # The database is usable afterwards: the replacement goes through.
    with database.transaction() as s:
        new = cards.replace(s, staff.supervisor_in(s), f.card(s, number), reason=Reason.LOST,
                            now=NOW, settings=settings)
        assert new.status is CardStatus.APPLIED
