"""Every refusal the foundation issue names: a specific error and an unchanged database.

Maker-checker, a second open physical card, transitions from terminal states, a missing or
wrong reason, another office's records, roles, duplicate residents, stale versions. Each case
runs through `tests.factories.refused`, which compares every row of every table before and after.
Cases that share a starting point run as subtests of one test, so the cards are built once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import tests.factories as f
from cardsys import audit
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import (
    ActiveCardExistsError,
    ConflictError,
    DuplicateError,
    IllegalTransitionError,
    InvalidCardNumberError,
    InvalidIdNumberError,
    MakerCheckerError,
    NotFoundError,
    PermissionDeniedError,
    PossibleDuplicateError,
    ReasonRequiredError,
    ReviewPendingError,
    ValidationError,
)
from cardsys.ids import CardNumber
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import Card, Operator
from issuance import cards, residents
from tests.factories import NOW, Staff

Act = Callable[[Session, Operator, Card, Settings], object]

#: Every service that acts on a card (or, for apply/enrol/clear_review, on its holder).
ACTS: dict[str, Act] = {
    "apply": lambda s, o, c, st: cards.apply(s, o, c.resident, now=NOW, settings=st),
    "approve": lambda s, o, c, st: cards.approve(s, o, c, now=NOW),
    "personalize": lambda s, o, c, st: cards.personalize(s, o, c, now=NOW, settings=st),
    "hand_over": lambda s, o, c, st: cards.hand_over(s, o, c, now=NOW),
    "activate": lambda s, o, c, st: cards.activate(s, o, c, now=NOW),
    "suspend": lambda s, o, c, st: cards.suspend(s, o, c, reason=Reason.LOST, now=NOW),
    "resume": lambda s, o, c, st: cards.resume(s, o, c, now=NOW),
    "revoke": lambda s, o, c, st: cards.revoke(s, o, c, reason=Reason.FRAUD, now=NOW),
    "replace": lambda s, o, c, st: cards.replace(s, o, c, reason=Reason.LOST, now=NOW,
                                                 settings=st),
    "renew": lambda s, o, c, st: cards.renew(s, o, c, now=NOW, settings=st),
    "expire": lambda s, o, c, st: cards.expire_due(s, o, now=f.at_day(date(2041, 1, 1))),
    "enrol": lambda s, o, c, st: residents.enrol(s, o, f.enrolment(77), now=NOW),
    "clear_review": lambda s, o, c, st: residents.clear_review(
        s, o, c.resident.id_number, now=NOW),
}
SUPERVISOR_ACTS = frozenset({"approve", "resume", "revoke", "replace", "clear_review"})
CARD_ACTS = ["approve", "personalize", "hand_over", "activate", "suspend", "resume", "revoke",
             "replace", "renew"]
#: The states, in life order, that the shared `numbers` fixture builds one card for.
BUILT = [CardStatus.APPLIED, CardStatus.APPROVED, CardStatus.PERSONALIZED, CardStatus.ISSUED,
         CardStatus.ACTIVE, CardStatus.SUSPENDED, CardStatus.REVOKED]


def login_for(staff: Staff, action: str) -> str:
    """The operator of `staff`'s office whose role may take `action`."""
    return staff.supervisor if action in SUPERVISOR_ACTS else staff.clerk


def attempt(
    settings: Settings, action: str, login: str, number: str
) -> Callable[[Session], object]:
    """`action` on card `number` by `login`, ready for `f.refused`."""
    return lambda s: ACTS[action](s, f.operator(s, login), f.card(s, number), settings)


@pytest.fixture
def holder(database: Database, staff: Staff) -> str:
    """The ID number of a resident of OFF-A."""
    with database.transaction() as s:
        return f.make_resident(s, staff.clerk_in(s)).id_number


@pytest.fixture
def numbers(database: Database, settings: Settings, staff: Staff) -> dict[CardStatus, str]:
    """One OFF-A resident per state in BUILT, each with one card in that state."""
    with database.transaction() as s:
        made = {}
        for sequence, status in enumerate(BUILT, start=10):
            holder = f.make_resident(s, staff.clerk_in(s), sequence)
            made[status] = f.make_card(s, staff, holder, settings=settings, status=status).number
        return made


def card_in(database: Database, settings: Settings, staff: Staff, id_number: str,
            status: CardStatus) -> str:
    with database.transaction() as s:
        return f.make_card(s, staff, f.resident(s, id_number), settings=settings,
                           status=status).number


# --- maker-checker and stale versions -----------------------------------------------------


def test_the_maker_cannot_approve(database: Database, settings: Settings, staff: Staff,
                                  holder: str) -> None:
    with database.transaction() as s:
        number = cards.apply(s, staff.supervisor_in(s), f.resident(s, holder), now=NOW,
                             settings=settings).number
    f.refused(database, MakerCheckerError, attempt(settings, "approve", staff.supervisor, number))
    with database.transaction() as s:
        card = cards.approve(s, staff.supervisor2_in(s), f.card(s, number), now=NOW)
        assert card.status is CardStatus.APPROVED


def test_a_stale_version_is_a_conflict(database: Database, settings: Settings, staff: Staff,
                                       holder: str) -> None:
    number = card_in(database, settings, staff, holder, CardStatus.ACTIVE)
    with database.transaction() as s:
        seen = f.card(s, number).version
        cards.suspend(s, staff.clerk_in(s), f.card(s, number), reason=Reason.LOST, now=NOW)
    f.refused(database, ConflictError, lambda s: cards.resume(
        s, staff.supervisor_in(s), f.card(s, number), now=NOW, expected_version=seen))


# --- one open physical card ---------------------------------------------------------------


def test_a_second_open_physical_card_is_refused(
    database: Database, settings: Settings, staff: Staff, numbers: dict[CardStatus, str],
    subtests: pytest.Subtests,
) -> None:
    for status, number in numbers.items():
        with subtests.test(status=status.value):
            if status.terminal:
                continue  # tested below: a terminal card does not block a new one
            f.refused(database, ActiveCardExistsError,
                      attempt(settings, "apply", staff.clerk, number))


@pytest.mark.parametrize("status", [CardStatus.REVOKED, CardStatus.EXPIRED])
def test_a_new_card_after_a_terminal_one_is_allowed(
    database: Database, settings: Settings, staff: Staff, holder: str, status: CardStatus
) -> None:
    card_in(database, settings, staff, holder, status)
    with database.transaction() as s:
        card = cards.apply(s, staff.clerk_in(s), f.resident(s, holder), now=NOW,
                           settings=settings)
        assert card.status is CardStatus.APPLIED


def test_a_card_is_renewed_only_once(database: Database, settings: Settings, staff: Staff,
                                     holder: str) -> None:
    number = card_in(database, settings, staff, holder, CardStatus.ACTIVE)
    with database.transaction() as s:
        cards.renew(s, staff.clerk_in(s), f.card(s, number), now=NOW, settings=settings)
    f.refused(database, ActiveCardExistsError, attempt(settings, "renew", staff.clerk, number))
    f.refused(database, ActiveCardExistsError, attempt(settings, "apply", staff.clerk, number))


def test_activating_a_second_card_while_one_is_active_is_refused(
    database: Database, settings: Settings, staff: Staff, holder: str
) -> None:
    """The services never open a second card, but records merged by hand can hold one:
    activation checks again instead of relying on the flow that led there."""
    first = card_in(database, settings, staff, holder, CardStatus.ISSUED)
    with database.transaction() as s:
        other = f.make_resident(s, staff.clerk_in(s), 2)
        second = f.make_card(s, staff, other, settings=settings, status=CardStatus.ACTIVE)
        # Merge by hand: the second resident's active card now belongs to the first holder.
        second.resident_id = f.resident(s, holder).id
    f.refused(database, ActiveCardExistsError, attempt(settings, "activate", staff.clerk, first))


# --- transitions from terminal states, and out of order -----------------------------------


@pytest.mark.parametrize("status", [CardStatus.REVOKED, CardStatus.EXPIRED])
def test_no_action_leaves_a_terminal_state(
    database: Database, settings: Settings, staff: Staff, holder: str, status: CardStatus,
    subtests: pytest.Subtests,
) -> None:
    number = card_in(database, settings, staff, holder, status)
    for action in CARD_ACTS:
        with subtests.test(action=action):
            f.refused(database, IllegalTransitionError,
                      attempt(settings, action, login_for(staff, action), number))


OUT_OF_ORDER = [(CardStatus.APPLIED, "personalize"), (CardStatus.APPLIED, "activate"),
                (CardStatus.APPLIED, "suspend"), (CardStatus.APPLIED, "renew"),
                (CardStatus.APPROVED, "approve"), (CardStatus.APPROVED, "hand_over"),
                (CardStatus.PERSONALIZED, "activate"), (CardStatus.ISSUED, "suspend"),
                (CardStatus.ISSUED, "resume"), (CardStatus.ACTIVE, "approve"),
                (CardStatus.ACTIVE, "resume"), (CardStatus.ACTIVE, "activate"),
                (CardStatus.SUSPENDED, "activate"), (CardStatus.SUSPENDED, "suspend")]


def test_out_of_order_actions_are_refused(
    database: Database, settings: Settings, staff: Staff, numbers: dict[CardStatus, str],
    subtests: pytest.Subtests,
) -> None:
    for status, action in OUT_OF_ORDER:
        with subtests.test(status=status.value, action=action):
            f.refused(database, IllegalTransitionError,
                      attempt(settings, action, login_for(staff, action), numbers[status]))


def test_renewing_an_expired_card_is_refused(
    database: Database, settings: Settings, staff: Staff, holder: str
) -> None:
    # Past its expiry date but not yet swept by the job: apply for a new card instead.
    number = card_in(database, settings, staff, holder, CardStatus.ACTIVE)
    f.refused(database, IllegalTransitionError, lambda s: cards.renew(
        s, staff.clerk_in(s), f.card(s, number), now=f.at_day(date(2040, 3, 2)),
        settings=settings), match="expired")


# --- reasons ------------------------------------------------------------------------------

REASON_CASES: list[tuple[str, Reason | None]] = [
    ("suspend", None), ("suspend", Reason.DAMAGED), ("suspend", Reason.SUPERSEDED),
    ("suspend", Reason.DECEASED),
    ("revoke", None),
    ("replace", None), ("replace", Reason.FRAUD), ("replace", Reason.SUPERSEDED),
    ("replace", Reason.DECEASED), ("replace", Reason.HOLDER_REQUEST),
]


def test_a_missing_or_wrong_reason_is_refused(
    database: Database, settings: Settings, staff: Staff, holder: str,
    subtests: pytest.Subtests,
) -> None:
    number = card_in(database, settings, staff, holder, CardStatus.ACTIVE)

    def act(action: str, reason: Reason | None) -> Callable[[Session], object]:
        def run(s: Session) -> object:
            card, boss = f.card(s, number), staff.supervisor_in(s)
            if action == "suspend":
                return cards.suspend(s, boss, card, reason=reason, now=NOW)
            if action == "revoke":
                return cards.revoke(s, boss, card, reason=reason, now=NOW)
            return cards.replace(s, boss, card, reason=reason, now=NOW, settings=settings)
        return run

    for action, reason in REASON_CASES:
        with subtests.test(action=action, reason=reason):
            f.refused(database, ReasonRequiredError, act(action, reason))


# --- office scope -------------------------------------------------------------------------


def test_another_office_cannot_find_the_records(
    database: Database, settings: Settings, staff: Staff, other_staff: Staff, holder: str
) -> None:
    number = card_in(database, settings, staff, holder, CardStatus.ACTIVE)
    for login in (other_staff.clerk, other_staff.supervisor, other_staff.auditor):

        def get_card(s: Session, who: str = login) -> object:
            return cards.get(s, f.operator(s, who), number)

        def get_resident(s: Session, who: str = login) -> object:
            return residents.get(s, f.operator(s, who), holder)

        f.refused(database, NotFoundError, get_card)
        f.refused(database, NotFoundError, get_resident)
    with database.transaction() as s:
        clerk_b = other_staff.clerk_in(s)
        assert cards.list_cards(s, clerk_b) == []
        assert residents.find(s, clerk_b, "Zhang") == []
        assert residents.find(s, clerk_b, holder[:10]) == []
        assert [c.number for c in cards.list_cards(s, staff.auditor_in(s))] == [number]


def test_not_found_in_another_office_reads_like_not_found_at_all(
    database: Database, settings: Settings, staff: Staff, other_staff: Staff, holder: str
) -> None:
    """Whether a card or resident exists in another office must not leak through the text."""
    number = card_in(database, settings, staff, holder, CardStatus.ACTIVE)
    absent_card = str(CardNumber.build("SS", "11", 999_999_999))
    absent_resident = f.enrolment(99).id_number.value
    clerk = other_staff.clerk

    def message(action: Callable[[Session], object], shown: str) -> str:
        return str(f.refused(database, NotFoundError, action)).replace(shown, "<number>")

    assert message(lambda s: cards.get(s, f.operator(s, clerk), number), number) == message(
        lambda s: cards.get(s, f.operator(s, clerk), absent_card), absent_card)
    assert message(lambda s: residents.get(s, f.operator(s, clerk), holder), holder) == message(
        lambda s: residents.get(s, f.operator(s, clerk), absent_resident), absent_resident)


# (action, the state of the card it is tried on)
OFFICE_CASES = [("approve", CardStatus.APPLIED), ("personalize", CardStatus.APPROVED),
                ("hand_over", CardStatus.PERSONALIZED), ("activate", CardStatus.ISSUED),
                ("suspend", CardStatus.ACTIVE), ("resume", CardStatus.SUSPENDED),
                ("revoke", CardStatus.ACTIVE), ("replace", CardStatus.SUSPENDED),
                ("renew", CardStatus.ACTIVE), ("apply", CardStatus.REVOKED),
                ("clear_review", CardStatus.APPLIED)]


def test_another_office_cannot_act(
    database: Database, settings: Settings, other_staff: Staff,
    numbers: dict[CardStatus, str], subtests: pytest.Subtests,
) -> None:
    """Even handed the record itself, another office's operator of the right role gets
    NotFoundError (the services check scope, not only the lookups)."""
    for action, status in OFFICE_CASES:
        with subtests.test(action=action, status=status.value):
            f.refused(database, NotFoundError,
                      attempt(settings, action, login_for(other_staff, action), numbers[status]))


def test_another_office_cannot_enrol_a_known_id_number(
    database: Database, other_staff: Staff, holder: str
) -> None:
    # The register is national: the same person enrolled twice, anywhere, is a duplicate.
    f.refused(database, DuplicateError, lambda s: f.make_resident(s, other_staff.clerk_in(s)),
              exact=True)


# --- roles --------------------------------------------------------------------------------

# (action, the state of the card it is tried on): what an auditor or admin may never do.
CHANGES = [("apply", CardStatus.REVOKED), ("approve", CardStatus.APPLIED),
           ("personalize", CardStatus.APPROVED), ("hand_over", CardStatus.PERSONALIZED),
           ("activate", CardStatus.ISSUED), ("suspend", CardStatus.ACTIVE),
           ("resume", CardStatus.SUSPENDED), ("revoke", CardStatus.ACTIVE),
           ("replace", CardStatus.ACTIVE), ("renew", CardStatus.ACTIVE),
           ("enrol", CardStatus.ACTIVE), ("clear_review", CardStatus.APPLIED)]


@pytest.mark.parametrize("who", ["auditor", "admin"])
def test_auditors_and_admins_change_nothing(
    database: Database, settings: Settings, staff: Staff, numbers: dict[CardStatus, str],
    who: str, subtests: pytest.Subtests,
) -> None:
    login = staff.auditor if who == "auditor" else f.ADMIN
    for action, status in CHANGES:
        with subtests.test(action=action):
            f.refused(database, PermissionDeniedError,
                      attempt(settings, action, login, numbers[status]))


def test_clerks_cannot_approve_revoke_resume_replace_clear_or_expire(
    database: Database, settings: Settings, staff: Staff, numbers: dict[CardStatus, str],
    subtests: pytest.Subtests,
) -> None:
    for action, status in [("approve", CardStatus.APPLIED), ("revoke", CardStatus.ACTIVE),
                           ("resume", CardStatus.SUSPENDED), ("replace", CardStatus.SUSPENDED),
                           ("expire", CardStatus.ACTIVE), ("clear_review", CardStatus.ACTIVE)]:
        with subtests.test(action=action):
            f.refused(database, PermissionDeniedError,
                      attempt(settings, action, staff.clerk, numbers[status]))


def test_auditors_read(database: Database, settings: Settings, staff: Staff,
                       holder: str) -> None:
    number = card_in(database, settings, staff, holder, CardStatus.ACTIVE)
    with database.transaction() as s:
        auditor = staff.auditor_in(s)
        assert cards.get(s, auditor, number).number == number
        assert [c.number for c in cards.list_cards(s, auditor)] == [number]
        assert residents.get(s, auditor, holder).id_number == holder
        assert [r.id_number for r in residents.find(s, auditor, "zhang")] == [holder]


def test_a_deactivated_operator_can_do_nothing(
    database: Database, settings: Settings, staff: Staff, holder: str
) -> None:
    number = card_in(database, settings, staff, holder, CardStatus.ACTIVE)
    with database.transaction() as s:
        f.operator(s, staff.supervisor).active = False
    f.refused(database, NotFoundError, lambda s: f.operator(s, staff.supervisor))

    def revoke_as_deactivated(s: Session) -> object:
        boss = s.scalars(select(Operator).where(Operator.login == staff.supervisor)).one()
        return cards.revoke(s, boss, f.card(s, number), reason=Reason.FRAUD, now=NOW)

    f.refused(database, PermissionDeniedError, revoke_as_deactivated, match="deactivated")


# --- duplicates and review ----------------------------------------------------------------


def enrol(staff: Staff, sequence: int, **fields: Any) -> Callable[[Session], object]:
    return lambda s: f.make_resident(s, staff.clerk_in(s), sequence, **fields)


def enrol_data(staff: Staff, data: residents.Enrolment) -> Callable[[Session], object]:
    return lambda s: residents.enrol(s, staff.clerk_in(s), data, now=NOW)


def look_up(
    get: Callable[[Session, Operator, str], object], staff: Staff, text: str
) -> Callable[[Session], object]:
    return lambda s: get(s, staff.clerk_in(s), text)


def test_the_same_id_number_twice_is_a_duplicate(database: Database, staff: Staff,
                                                 holder: str) -> None:
    # Even under another name: the ID number is the key.
    f.refused(database, DuplicateError, lambda s: f.make_resident(
        s, staff.clerk_in(s), surname="Other", given_names="Name"), exact=True)


def test_same_name_birth_date_and_region_is_a_possible_duplicate(
    database: Database, staff: Staff, holder: str, subtests: pytest.Subtests
) -> None:
    # Names compare without case and with spaces collapsed, as enrolment stores them.
    for surname, given in [("Zhang", "Test001"), ("ZHANG", "test001"), (" zhang ", "TEST001")]:
        with subtests.test(surname=surname, given=given):
            error = f.refused(database, PossibleDuplicateError,
                              enrol(staff, 2, surname=surname, given_names=given))
            assert holder in str(error)


def test_a_different_person_is_not_flagged(
    database: Database, staff: Staff, holder: str, subtests: pytest.Subtests
) -> None:
    changes: list[dict[str, Any]] = [{"region": "110102"}, {"birth_date": date(1980, 5, 18)},
                                     {"given_names": "Test002"}]
    for sequence, change in enumerate(changes, start=2):
        with subtests.test(change=change), database.transaction() as s:
            fields: dict[str, Any] = {"surname": "Zhang", "given_names": "Test001"} | change
            other = f.make_resident(s, staff.clerk_in(s), sequence, **fields)
            assert other.review_required is False


def test_a_confirmed_possible_duplicate_waits_for_review(
    database: Database, settings: Settings, staff: Staff, holder: str
) -> None:
    with database.transaction() as s:
        twin = f.make_resident(s, staff.clerk_in(s), 2, given_names="Test001",
                               confirm_distinct=True)
        twin_id = twin.id_number
        assert twin.review_required is True
        event = audit.recent(s, subject=twin_id, limit=1)[0]
        assert event.details["possible_duplicate_of"] == holder
        number = cards.apply(s, staff.clerk_in(s), twin, now=NOW, settings=settings).number
    f.refused(database, ReviewPendingError, lambda s: cards.approve(
        s, staff.supervisor_in(s), f.card(s, number), now=NOW))
    f.refused(database, PermissionDeniedError, lambda s: residents.clear_review(
        s, staff.clerk_in(s), twin_id, now=NOW))
    with database.transaction() as s:
        residents.clear_review(s, staff.supervisor_in(s), twin_id, now=NOW)
    f.refused(database, ValidationError, lambda s: residents.clear_review(
        s, staff.supervisor_in(s), twin_id, now=NOW), match="not waiting")
    with database.transaction() as s:
        card = cards.approve(s, staff.supervisor_in(s), f.card(s, number), now=NOW)
        assert card.status is CardStatus.APPROVED
        assert f.audit_tags(s, twin_id) == ["resident:resident:enrol", "resident:review:clear"]


# --- malformed input at the service boundary ----------------------------------------------


def test_malformed_numbers_are_refused(
    database: Database, staff: Staff, subtests: pytest.Subtests
) -> None:
    for text in ["110105194912310021", "11010519990230002X", "not a number"]:
        with subtests.test(id_number=text):
            f.refused(database, InvalidIdNumberError, look_up(residents.get, staff, text))
    for text in ["SS110000000014", "SS11", "SS11000000001x5"]:
        with subtests.test(card_number=text):
            f.refused(database, InvalidCardNumberError, look_up(cards.get, staff, text))


BAD_ENROLMENTS: list[tuple[str, Any, str]] = [
    ("birth_date", date(1980, 5, 18), "differs from the one in the ID number"),
    ("surname", "   ", "surname"),
    ("given_names", "x" * 101, "given names"),
    ("surname", "Zhang\x00", "control"),
    ("region", "11010", "region"),
    ("schemes", ("URBAN EMP",), "scheme"),
    ("photo", b"GIF89a....", "JPEG or PNG"),
    ("photo", b"", "photo"),
    ("photo", b"\xff\xd8\xff" + bytes(100_000), "photo"),
]


def test_bad_enrolment_data_is_refused(
    database: Database, staff: Staff, subtests: pytest.Subtests
) -> None:
    for field, value, match in BAD_ENROLMENTS:
        with subtests.test(field=field, match=match):
            data = dataclasses.replace(f.enrolment(3), **{field: value})
            f.refused(database, ValidationError, enrol_data(staff, data), match=match)
    future = f.enrolment(3, birth_date=date(2031, 1, 1))
    f.refused(database, ValidationError, enrol_data(staff, future), match="future")
