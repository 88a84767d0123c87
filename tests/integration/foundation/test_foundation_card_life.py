"""A card's whole life through the services, on SQLite and PostgreSQL.

Enrol, apply, approve, personalize, hand over, activate, suspend (lost), replace, renew, expire:
each step's state, the numbers allocated, the links between cards and the audit trail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import tests.factories as f
from cardsys import audit
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import DuplicateError, MakerCheckerError, ValidationError
from cardsys.ids import CardNumber
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import Card, Photo
from issuance import cards, residents
from tests.factories import NOW, Staff

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
LATER = NOW + timedelta(days=30)


def test_enrol_stores_the_resident_and_the_photo_once(database: Database, staff: Staff) -> None:
    with database.transaction() as s:
        clerk = staff.clerk_in(s)
        enrolment = dataclasses.replace(
            f.enrolment(1, surname="Zhāng 张", given_names="  Wěi   伟 "),
            photo=JPEG, schemes=("urban-emp", "URBAN-EMP", " B "),
        )
        first = residents.enrol(s, clerk, enrolment, now=NOW)
        # The same portrait again (a second card's chip, say) is the same row.
        assert residents.store_photo(s, JPEG).id == first.photo_id
    with database.transaction() as s:
        stored = f.resident(s, str(enrolment.id_number))
        assert (stored.surname, stored.given_names) == ("Zhāng 张", "Wěi 伟")
        assert stored.schemes == "B URBAN-EMP"
        assert stored.office.code == "OFF-A"
        assert stored.review_required is False
        assert s.scalar(select(func.count()).select_from(Photo)) == 1
        assert stored.photo is not None
        assert stored.photo.media_type == "image/jpeg"
        assert f.audit_tags(s, stored.id_number) == ["resident:resident:enrol"]
        assert audit.verify(s).events == f.audit_count(s)


def test_a_full_card_life(database: Database, settings: Settings, staff: Staff) -> None:
    with database.transaction() as s:
        holder = f.make_resident(s, staff.clerk_in(s), surname="Wáng 王", given_names="Lì 丽")
        first = cards.apply(s, staff.clerk_in(s), holder, now=NOW, settings=settings)
        number1, holder_id = first.number, holder.id_number
    # The first card of province 11 (the resident's region 110101) with agency prefix SS.
    assert number1 == str(CardNumber.build("SS", "11", 1)) == "SS110000000017"

    with database.transaction() as s:
        card = f.card(s, number1)
        assert (card.status, card.issue_date) == (CardStatus.APPLIED, None)
        version = card.version
        assert card.maker_id == staff.clerk_in(s).id
        cards.approve(s, staff.supervisor_in(s), card, now=NOW)
        assert card.approver_id == staff.supervisor_in(s).id
        cards.personalize(s, staff.clerk_in(s), card, now=NOW, settings=settings)
        assert (card.issue_date, card.expiry_date) == (NOW.date(), date(2040, 3, 1))
        assert cards.hand_over(s, staff.clerk_in(s), card, now=NOW).status is CardStatus.ISSUED
        assert cards.activate(s, staff.clerk_in(s), card, now=NOW).status is CardStatus.ACTIVE
    with database.transaction() as s:
        card = f.card(s, number1)
        assert card.version >= version + 4  # every change bumped the optimistic lock
        cards.suspend(s, staff.clerk_in(s), card, reason=Reason.LOST, now=LATER)
        assert (card.status, card.status_reason) == (CardStatus.SUSPENDED, Reason.LOST)

    # Replace: the old card revoked as superseded, a new application with a new number.
    with database.transaction() as s:
        old = f.card(s, number1)
        new = cards.replace(s, staff.supervisor_in(s), old, reason=Reason.LOST, now=LATER,
                            settings=settings)
        number2 = new.number
    assert CardNumber(number2).serial == 2
    with database.transaction() as s:
        old, new = f.card(s, number1), f.card(s, number2)
        assert (old.status, old.status_reason) == (CardStatus.REVOKED, Reason.SUPERSEDED)
        assert (new.status, new.predecessor_id, new.resident.id_number) == (
            CardStatus.APPLIED, old.id, holder_id)
        assert f.audit_tags(s, number1) == [
            "card:status:apply", "card:status:approve", "card:status:personalize",
            "card:status:hand_over", "card:status:activate", "card:status:suspend",
            "card:status:revoke",
        ]
        revoke_event = audit.recent(s, subject=number1, limit=1)[0]
        assert revoke_event.details["reason"] == "superseded"
        assert revoke_event.details["replace_reason"] == "lost"
        apply_event = audit.recent(s, subject=number2, limit=1)[0]
        assert apply_event.details["replaces"] == number1

    # The supervisor who replaced it made the new application: another one approves.
    f.refused(database, MakerCheckerError, lambda s: cards.approve(
        s, staff.supervisor_in(s), f.card(s, number2), now=LATER))
    with database.transaction() as s:
        new = f.card(s, number2)
        cards.approve(s, staff.supervisor2_in(s), new, now=LATER)
        cards.personalize(s, staff.clerk_in(s), new, now=LATER, settings=settings)
        cards.hand_over(s, staff.clerk_in(s), new, now=LATER)
        cards.activate(s, staff.clerk_in(s), new, now=LATER)
        assert new.status is CardStatus.ACTIVE
        assert new.expiry_date == date(2040, 3, 31)

    with database.transaction() as s:
        report = audit.verify(s)
        assert report.events == f.audit_count(s)


def test_renewal_keeps_the_old_card_active_until_the_new_one_is_activated(
    database: Database, settings: Settings, staff: Staff
) -> None:
    with database.transaction() as s:
        holder = f.make_resident(s, staff.clerk_in(s))
        old_number = f.make_card(s, staff, holder, settings=settings).number
    renew_at = f.at_day(date(2039, 12, 1))
    with database.transaction() as s:
        successor = cards.renew(s, staff.clerk_in(s), f.card(s, old_number), now=renew_at,
                                settings=settings)
        new_number = successor.number
        assert successor.predecessor_id == f.card(s, old_number).id
    assert new_number != old_number

    def statuses() -> tuple[CardStatus, CardStatus]:
        with database.transaction() as s:
            return f.card(s, old_number).status, f.card(s, new_number).status

    steps: list[tuple[Callable[[Session, Card], object], CardStatus]] = [
        (lambda s, c: cards.approve(s, staff.supervisor_in(s), c, now=renew_at),
         CardStatus.APPROVED),
        (lambda s, c: cards.personalize(s, staff.clerk_in(s), c, now=renew_at,
                                        settings=settings), CardStatus.PERSONALIZED),
        (lambda s, c: cards.hand_over(s, staff.clerk_in(s), c, now=renew_at),
         CardStatus.ISSUED),
    ]
    assert statuses() == (CardStatus.ACTIVE, CardStatus.APPLIED)
    for step, expected in steps:
        with database.transaction() as s:
            step(s, f.card(s, new_number))
        assert statuses() == (CardStatus.ACTIVE, expected)
    with database.transaction() as s:
        cards.activate(s, staff.clerk_in(s), f.card(s, new_number), now=renew_at)
    assert statuses() == (CardStatus.REVOKED, CardStatus.ACTIVE)
    with database.transaction() as s:
        old = f.card(s, old_number)
        assert old.status_reason is Reason.SUPERSEDED
        event = audit.recent(s, subject=old_number, limit=1)[0]
        assert (event.tag, event.details["successor"]) == ("card:status:revoke", new_number)
        assert f.card(s, new_number).expiry_date == date(2049, 12, 1)
        assert audit.verify(s).events == f.audit_count(s)


def test_resume_a_suspended_card(database: Database, settings: Settings, staff: Staff) -> None:
    with database.transaction() as s:
        holder = f.make_resident(s, staff.clerk_in(s))
        number = f.make_card(s, staff, holder, settings=settings,
                             status=CardStatus.SUSPENDED, reason=Reason.HOLDER_REQUEST).number
    with database.transaction() as s:
        card = cards.resume(s, staff.supervisor_in(s), f.card(s, number), now=LATER)
        assert (card.status, card.status_reason) == (CardStatus.ACTIVE, None)
        assert f.audit_tags(s, number)[-2:] == ["card:status:suspend", "card:status:resume"]


def test_revoking_for_death_marks_the_resident_and_blocks_new_cards(
    database: Database, settings: Settings, staff: Staff
) -> None:
    with database.transaction() as s:
        holder = f.make_resident(s, staff.clerk_in(s))
        number = f.make_card(s, staff, holder, settings=settings).number
        id_number = holder.id_number
    with database.transaction() as s:
        cards.revoke(s, staff.supervisor_in(s), f.card(s, number), reason=Reason.DECEASED,
                     now=LATER)
    with database.transaction() as s:
        assert f.resident(s, id_number).deceased is True
        assert f.card(s, number).status_reason is Reason.DECEASED
    f.refused(database, ValidationError, lambda s: cards.apply(
        s, staff.clerk_in(s), f.resident(s, id_number), now=LATER, settings=settings),
        match="deceased")


def test_the_expiry_job(database: Database, settings: Settings, staff: Staff) -> None:
    wanted = [CardStatus.ISSUED, CardStatus.ACTIVE, CardStatus.SUSPENDED, CardStatus.APPROVED,
              CardStatus.REVOKED]
    with database.transaction() as s:
        numbers = {}
        for sequence, status in enumerate(wanted, start=1):
            holder = f.make_resident(s, staff.clerk_in(s), sequence)
            numbers[status] = f.make_card(s, staff, holder, settings=settings,
                                          status=status).number
        expiry = f.card(s, numbers[CardStatus.ACTIVE]).expiry_date
    assert expiry == date(2040, 3, 1)
    with database.transaction() as s:
        # A card is valid through its expiry date.
        assert cards.expire_due(s, f.system(s), now=f.at_day(expiry)) == []
    with database.transaction() as s:
        expired = cards.expire_due(s, f.system(s), now=f.at_day(expiry + timedelta(days=1)),
                                   batch=1)
    assert sorted(expired) == sorted(
        [numbers[CardStatus.ISSUED], numbers[CardStatus.ACTIVE], numbers[CardStatus.SUSPENDED]]
    )
    with database.transaction() as s:
        after = {status: f.card(s, number).status for status, number in numbers.items()}
        assert after == {
            CardStatus.ISSUED: CardStatus.EXPIRED,
            CardStatus.ACTIVE: CardStatus.EXPIRED,
            CardStatus.SUSPENDED: CardStatus.EXPIRED,
            CardStatus.APPROVED: CardStatus.APPROVED,
            CardStatus.REVOKED: CardStatus.REVOKED,
        }
        for number in expired:
            event = audit.recent(s, subject=number, limit=1)[0]
            assert (event.tag, event.actor, event.office) == ("card:status:expire", "system",
                                                              "OFF-A")
        assert audit.verify(s).events == f.audit_count(s)
    with database.transaction() as s:
        # Run again: nothing left to expire, no event written.
        count = f.audit_count(s)
        assert cards.expire_due(s, f.system(s), now=f.at_day(expiry + timedelta(days=2))) == []
        assert f.audit_count(s) == count


def test_numbers_are_allocated_per_province_without_gaps(
    database: Database, settings: Settings, staff: Staff
) -> None:
    with database.transaction() as s:
        clerk = staff.clerk_in(s)
        made = []
        for sequence, region in enumerate(["110101", "110102", "320102", "110101"], start=1):
            holder = f.make_resident(s, clerk, sequence, region=region)
            made.append(CardNumber(cards.apply(s, clerk, holder, now=NOW,
                                               settings=settings).number))
    assert [(n.province, n.serial) for n in made] == [("11", 1), ("11", 2), ("32", 1), ("11", 3)]


def test_the_schema_holds_one_active_physical_card_a_resident(
    database: Database, settings: Settings, staff: Staff
) -> None:
    """The partial unique index refuses a second active physical card even when a bug (or a
    hand-written UPDATE) bypasses the services."""
    with database.transaction() as s:
        holder = f.make_resident(s, staff.clerk_in(s))
        active = f.make_card(s, staff, holder, settings=settings)
        twin = {c.name: getattr(active, c.key) for c in Card.__table__.columns
                if c.name not in ("id", "number", "status_list", "status_index", "version")}
        active_id = active.id

    def insert_second(s: Session) -> None:
        s.add(Card(**twin, number=str(CardNumber.build("SS", "11", 999)), version=1))

    error = f.refused(database, DuplicateError, insert_second)
    assert "active physical card" in str(error)
    with database.transaction() as s:
        assert s.get(Card, active_id) is not None
