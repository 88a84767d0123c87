"""A shard is marked for republication only when a card's published value changes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from cardsys.db import Database
from cardsys.lifecycle import CardKind, CardStatus
from cardsys.models import Card, StatusListDirty
from issuance import status

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


def card(status_list: int, state: CardStatus) -> Card:
    return Card(number="SS110000000017", kind=CardKind.PHYSICAL, status=state,
                status_list=status_list, status_index=0)


def test_only_changes_of_the_published_value_mark_the_shard(db: Database) -> None:
    with db.transaction() as session:
        # approved -> personalized: suspended before and after; nothing to republish
        status.mark_dirty(session, card(4, CardStatus.PERSONALIZED), CardStatus.APPROVED, NOW)
        assert session.scalars(select(StatusListDirty)).all() == []
        # issued -> active: suspended -> valid
        status.mark_dirty(session, card(4, CardStatus.ACTIVE), CardStatus.ISSUED, NOW)
        # a new card (before None) marks its shard, so a new shard gets published at all
        status.mark_dirty(session, card(5, CardStatus.ACTIVE), None, NOW)
        status.mark_dirty(session, card(4, CardStatus.SUSPENDED), CardStatus.ACTIVE, NOW)
        rows = {r.list_number: r.marks for r in session.scalars(select(StatusListDirty))}
    assert rows == {4: 2, 5: 1}
