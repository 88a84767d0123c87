"""Status lists: one mapping from lifecycle state, marked dirty with the change, republished
after it, safely from several workers at once."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from cardsys.formats.statuslist import Status, parse_status_list
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import Card, StatusListDirty, StatusListPublication
from issuance import cards, status
from tests.factories import NOW, make_card, make_resident
from tests.integration.digital.conftest import World

EXPECTED = {
    CardStatus.ACTIVE: Status.VALID,
    CardStatus.SUSPENDED: Status.SUSPENDED,
    CardStatus.REVOKED: Status.REVOKED,
    CardStatus.EXPIRED: Status.REVOKED,
    CardStatus.APPLIED: Status.SUSPENDED,
    CardStatus.APPROVED: Status.SUSPENDED,
    CardStatus.PERSONALIZED: Status.SUSPENDED,
    CardStatus.ISSUED: Status.SUSPENDED,
}


def test_the_mapping_covers_every_state_exactly_as_designed() -> None:
    assert set(status.PUBLISHED) == set(CardStatus)
    assert dict(status.PUBLISHED) == EXPECTED
    for state, value in EXPECTED.items():
        assert status.published_status(state) is value


@pytest.mark.parametrize("state", list(CardStatus))
def test_each_state_is_published_as_mapped(state: CardStatus, world: World) -> None:
    with world.db.transaction() as session:
        holder = make_resident(session, world.staff.clerk_in(session), 2)
        card = make_card(session, world.staff, holder, settings=world.settings, status=state)
        slot = (card.status_list, card.status_index)
    status.publish(world.db, now=NOW, settings=world.settings, signers=world.signers)
    assert slot[0] is not None
    assert slot[1] is not None
    token = (world.settings.instance_path / "public" / "status" / str(slot[0])).read_bytes()
    parsed = parse_status_list(token)
    assert parsed.lookup(slot[1]) is EXPECTED[state]
    assert parsed.uri == f"{world.settings.public_base_url}/public/status/{slot[0]}"
    assert parsed.size == world.settings.status_list_size


def test_a_change_marks_its_shard_and_publication_clears_the_mark(world: World) -> None:
    assert world.publish() == []  # the fixture published everything
    with world.db.transaction() as session:
        card = world.card(session, world.card_number)
        cards.suspend(session, world.staff.clerk_in(session), card, reason=Reason.LOST, now=NOW)
        shard = card.status_list
    with world.db.transaction() as session:
        marks = session.scalars(select(StatusListDirty)).all()
        assert [m.list_number for m in marks] == [shard]
    published = world.publish(now=NOW + timedelta(seconds=1))
    assert [(p.list_number, p.revision) for p in published] == [(shard, 2)]
    with world.db.transaction() as session:
        assert session.scalars(select(StatusListDirty)).all() == []
        row = session.get(StatusListPublication, shard)
        assert row is not None
        assert row.token is not None
        assert status.published_token(session, shard) == row.token
    assert world.publish() == []


def test_a_rolled_back_change_leaves_no_mark(world: World) -> None:
    def change_then_fail() -> None:
        with world.db.transaction() as session:
            cards.suspend(session, world.staff.clerk_in(session),
                          world.card(session, world.card_number), reason=Reason.LOST, now=NOW)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        change_then_fail()
    with world.db.transaction() as session:
        assert session.scalars(select(StatusListDirty)).all() == []


def test_issue_times_only_move_forward(world: World) -> None:
    first = status.publish(world.db, now=NOW, settings=world.settings, signers=world.signers)
    again = status.publish(world.db, now=NOW - timedelta(minutes=5), settings=world.settings,
                           signers=world.signers)
    assert again[0].issued_at > first[0].issued_at


def test_files_and_index_for_terminals(world: World) -> None:
    public = world.settings.instance_path / "public"
    index = json.loads((public / "status" / "index.json").read_text())
    with world.db.transaction() as session:
        shards = sorted({c.status_list for c in session.scalars(select(Card))})
    assert index["lists"] == shards
    for shard in shards:  # each list's digest, so a terminal fetches only what changed
        token = (public / "status" / str(shard)).read_bytes()
        assert index["sha256"][str(shard)] == hashlib.sha256(token).hexdigest()
    assert status.write_trust_list(world.settings, b"doc") == public / "trust-list"
    assert not list(public.rglob("*.tmp"))


def test_a_mark_made_while_publishing_is_not_lost(world: World) -> None:
    # A change that re-marks the shard after the publisher read the mark: the publisher must
    # not clear it (it did not build that change in).
    with world.db.transaction() as session:
        cards.suspend(session, world.staff.clerk_in(session),
                      world.card(session, world.card_number), reason=Reason.LOST, now=NOW)
    original = status._publish_one

    def publish_then_change(session, number, **kwargs):  # type: ignore[no-untyped-def]
        result = original(session, number, **kwargs)
        session.execute(
            StatusListDirty.__table__.update()
            .where(StatusListDirty.list_number == number)
            .values(marks=StatusListDirty.marks + 1)
        )
        return result

    status._publish_one = publish_then_change  # type: ignore[assignment]
    try:
        world.publish()
    finally:
        status._publish_one = original  # type: ignore[assignment]
    with world.db.transaction() as session:
        assert len(session.scalars(select(StatusListDirty)).all()) == 1
    assert len(world.publish()) == 1


@pytest.mark.parametrize("workers", [4])
def test_several_workers_publish_every_change_once_each(workers: int, world: World) -> None:
    # PostgreSQL: row locks and SKIP LOCKED share the shards out; SQLite: one writer at a time.
    # Cards in several shards (4096 slots each), each changed.
    settings = world.settings
    numbers = []
    with world.db.transaction() as session:
        clerk = world.staff.clerk_in(session)
        for sequence in range(2, 8):
            holder = make_resident(session, clerk, sequence)
            card = make_card(session, world.staff, holder, settings=settings)
            card.status_list = sequence  # spread over shards
            numbers.append(card.number)
    with world.db.transaction() as session:
        for number in numbers:
            cards.suspend(session, world.staff.clerk_in(session), world.card(session, number),
                          reason=Reason.LOST, now=NOW)
    barrier = threading.Barrier(workers)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            done = status.publish_dirty(world.db, now=NOW, settings=settings,
                                        signers=world.signers)
            results.append([p.list_number for p in done])
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    published = sorted(n for done in results for n in done)
    assert set(published) >= set(range(2, 8))
    assert len(published) == len(set(published))  # no shard twice
    with world.db.transaction() as session:
        assert session.scalars(select(StatusListDirty)).all() == []
        for number in numbers:
            card = world.card(session, number)
            token = status.published_token(session, card.status_list or 0)
            assert token is not None
            assert parse_status_list(token).lookup(card.status_index or 0) is Status.SUSPENDED
