"""Digital cards through the services: codes, provisioning, refresh, the physical card's cascade."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from cardsys.errors import (
    AuthenticationError,
    CardNotActiveError,
    DuplicateError,
    LimitExceededError,
    LockedError,
    NotFoundError,
    PermissionDeniedError,
    RevokedError,
    SuspendedError,
    ValidationError,
)
from cardsys.formats import credential as fmt
from cardsys.ids import CardNumber
from cardsys.lifecycle import CardKind, CardStatus, Reason
from cardsys.models import ActivationCode, ActivationCodeState, AuditEvent, Card
from cardsys.wallet import Wallet
from issuance import cards, digital
from tests.factories import NOW, make_card, make_resident, snapshot
from tests.integration.digital.conftest import World, point
from verify.qr import verify_qr
from verify.result import Evidence

# --- activation codes -------------------------------------------------------------------------


def test_a_code_is_shown_once_and_stored_only_as_a_salted_hash(world: World) -> None:
    code = world.code()
    assert len(code) == 14
    assert code[4] == code[9] == "-"
    assert set(code.replace("-", "")) <= set(digital.CODE_ALPHABET)
    everything = repr(snapshot(world.db))
    assert code not in everything
    assert code.replace("-", "") not in everything
    with world.db.transaction() as session:
        row = session.scalars(select(ActivationCode)).one()
        assert row.state is ActivationCodeState.LIVE
        assert row.expires_at == NOW + timedelta(seconds=world.settings.activation_code_ttl)
        tags = [e.tag for e in session.scalars(select(AuditEvent))]
    assert "digital:activation-code:create" in tags


def test_codes_are_random(world: World) -> None:
    assert len({world.code() for _ in range(20)}) == 20


def test_a_new_code_replaces_the_live_one(world: World) -> None:
    first = world.code()
    second = world.code()
    with pytest.raises(AuthenticationError):
        world.activate(first)
    world.activate(second)
    with world.db.transaction() as session:
        states = sorted(r.state.value for r in session.scalars(select(ActivationCode)))
    assert states == ["replaced", "used"]


@pytest.mark.parametrize("state", [CardStatus.SUSPENDED, CardStatus.ISSUED, CardStatus.REVOKED])
def test_only_an_active_physical_card_gets_a_code(state: CardStatus, world: World) -> None:
    with world.db.transaction() as session:
        other = make_resident(session, world.staff.clerk_in(session), 2)
        number = make_card(session, world.staff, other, settings=world.settings,
                           status=state).number
    with pytest.raises(CardNotActiveError):
        world.code(card_number=number)


def test_codes_respect_roles_and_offices(world: World) -> None:
    from tests.factories import make_office

    with world.db.transaction() as session:
        auditor = world.staff.auditor_in(session)
        with pytest.raises(PermissionDeniedError):
            digital.create_activation_code(session, auditor, world.card_number, now=NOW,
                                           settings=world.settings)
        elsewhere = make_office(session, "OFF-B", "320102")
        with pytest.raises(NotFoundError):
            digital.create_activation_code(session, elsewhere.clerk_in(session),
                                           world.card_number, now=NOW, settings=world.settings)


@pytest.mark.parametrize("typed", ["{}", "{}".lower(), " {} ", "{}".replace("-", " ")])
def test_codes_are_forgiving_to_type(typed: str, world: World) -> None:
    code = world.code()
    # Crockford: case, spaces and dashes do not matter; O reads as 0 and I or L as 1.
    variant = typed.format(code).replace("0", "O").replace("1", "l")
    world.activate(variant)


# --- attempts ---------------------------------------------------------------------------------


def test_wrong_tries_are_counted_durably_then_the_code_dies(world: World) -> None:
    code = world.code()
    wrong = "0000-0000-0000" if code != "0000-0000-0000" else "1111-1111-1111"
    for attempt in range(1, world.settings.activation_max_attempts):
        with pytest.raises(AuthenticationError, match="tries left") as caught:
            world.activate(wrong)
        assert not isinstance(caught.value, LockedError)
        with world.db.transaction() as session:  # committed although the call raised
            assert session.scalars(select(ActivationCode)).one().attempts == attempt
    with pytest.raises(LockedError):
        world.activate(wrong)
    with pytest.raises(AuthenticationError):  # now even the right code is refused
        world.activate(code)
    with world.db.transaction() as session:
        row = session.scalars(select(ActivationCode)).one()
        assert row.state is ActivationCodeState.LOCKED
        tags = [e.tag for e in session.scalars(select(AuditEvent))]
        assert session.scalar(select(Card).where(Card.kind == CardKind.DIGITAL)) is None
    assert "digital:activation-code:lock" in tags


def test_a_wrong_birth_date_is_a_wrong_try(world: World) -> None:
    code = world.code()
    with pytest.raises(AuthenticationError, match="tries left"):
        world.activate(code, birth_date=date(1999, 1, 1))
    world.activate(code)


def test_an_expired_code_is_refused(world: World) -> None:
    code = world.code()
    late = NOW + timedelta(seconds=world.settings.activation_code_ttl)
    with pytest.raises(AuthenticationError, match="expired"):
        world.activate(code, now=late)
    with world.db.transaction() as session:
        assert session.scalars(select(ActivationCode)).one().state is ActivationCodeState.EXPIRED


def test_an_unknown_card_number_looks_like_a_wrong_code(world: World) -> None:
    code = world.code()
    with pytest.raises(AuthenticationError, match="wrong activation code"):
        world.activate(code, card_number=str(CardNumber.build("SS", "11", 999)))


@pytest.mark.parametrize("bad", ["", "12345", "0000-0000-000U", "ÄÄÄÄ-0000-0000"])
def test_malformed_codes_are_refused_before_any_lookup(bad: str, world: World) -> None:
    before = snapshot(world.db)
    with pytest.raises(ValidationError):
        world.activate(bad)
    assert snapshot(world.db) == before


def test_a_device_key_off_the_curve_is_refused(world: World) -> None:
    code = world.code()
    request = digital.ProvisionRequest(code, world.card_number, date(1980, 5, 17),
                                       b"\x04" + b"\x01" * 64)
    with pytest.raises(ValidationError, match="P-256"):
        digital.provision(world.db, request, now=NOW, settings=world.settings,
                          signers=world.signers)
    assert code not in repr(request)  # the repr never shows the code


# --- provisioning -----------------------------------------------------------------------------


def test_provisioning_makes_a_bound_digital_card_whose_presentation_verifies(
    world: World,
) -> None:
    key, issued = world.activate(world.code())
    with world.db.transaction() as session:
        card = world.card(session, issued.card_number)
        parent = world.card(session, world.card_number)
        assert (card.kind, card.status, card.parent_id) == (
            CardKind.DIGITAL, CardStatus.ACTIVE, parent.id
        )
        assert card.device_thumbprint == fmt.thumbprint(key.public_key()).hex()
        assert card.status_index is not None
        assert (card.status_list, card.status_index) != (parent.status_list, parent.status_index)
        tags = [e.tag for e in session.scalars(select(AuditEvent).where(
            AuditEvent.subject.in_([card.number, parent.number])))]
    assert "card:status:provision" in tags
    assert "digital:activation-code:use" in tags
    parsed = fmt.decode_credential(issued.credential)
    assert parsed.subject == issued.card_number
    assert parsed.holder().card_number == world.card_number
    assert parsed.status.uri.endswith(f"/public/status/{card.status_list}")
    assert parsed.expires == int((NOW + timedelta(days=7)).timestamp())
    world.publish()
    verified = verify_qr(Wallet(key, issued.credential).presentation(NOW), world.terminal(),
                         now=NOW)
    assert verified.evidence is Evidence.PRESENTATION
    assert verified.card_number == world.card_number


def test_a_used_code_cannot_be_used_again(world: World) -> None:
    code = world.code()
    world.activate(code)
    with pytest.raises(AuthenticationError):
        world.activate(code)


def test_at_most_max_devices_and_never_silently_replaced(world: World) -> None:
    numbers = [world.activate(world.code())[1].card_number
               for _ in range(world.settings.max_devices)]
    code = world.code()
    with pytest.raises(LimitExceededError):
        world.activate(code)
    with world.db.transaction() as session:
        assert all(world.card(session, n).status is CardStatus.ACTIVE for n in numbers)
        boss = world.staff.supervisor_in(session)
        cards.revoke(session, boss, world.card(session, numbers[0]), reason=Reason.LOST,
                     now=NOW)
    world.activate(code)  # the refusal did not use the code up


def test_the_same_device_key_twice_is_refused(world: World) -> None:
    key, _ = world.activate(world.code())
    code = world.code()
    with pytest.raises(DuplicateError):
        world.activate(code, key)
    world.activate(code)


def test_no_credential_without_an_active_signer(world: World) -> None:
    from cardsys.errors import NoActiveSignerError

    code = world.code()

    def none(*_: object) -> object:
        raise NoActiveSignerError("no credential signer")

    request = digital.ProvisionRequest(code, world.card_number, date(1980, 5, 17),
                                       point(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(NoActiveSignerError):
        digital.provision(world.db, request, now=NOW, settings=world.settings,
                          signers=none)  # type: ignore[arg-type]
    with world.db.transaction() as session:  # all rolled back: no card, the code still live
        assert session.scalar(select(Card).where(Card.kind == CardKind.DIGITAL)) is None
    world.activate(code)


# --- refresh ----------------------------------------------------------------------------------


def test_refresh_signed_by_the_bound_key(world: World) -> None:
    key, issued = world.activate(world.code())
    wallet = Wallet(key, issued.credential)
    later = NOW + timedelta(days=6)
    with world.db.transaction() as session:
        renewed = digital.refresh(session, wallet.refresh_request(later), now=later,
                                  settings=world.settings, signers=world.signers)
    assert renewed.expires_at == later + timedelta(days=7)
    assert wallet.with_credential(renewed.credential).expires > wallet.expires


def test_refresh_is_refused_for_another_key_a_stale_request_or_too_late(world: World) -> None:
    key, issued = world.activate(world.code())
    thief = Wallet.__new__(Wallet)
    object.__setattr__(thief, "device_key", ec.generate_private_key(ec.SECP256R1()))
    object.__setattr__(thief, "credential", issued.credential)
    cases = [
        (thief.refresh_request(NOW), NOW, "not signed by this card's phone"),
        (Wallet(key, issued.credential).refresh_request(NOW), NOW + timedelta(minutes=5),
         "stale"),
        (Wallet(key, issued.credential).refresh_request(NOW + timedelta(days=40)),
         NOW + timedelta(days=40), "too long ago"),
    ]
    for request, now, message in cases:
        with world.db.transaction() as session, pytest.raises(AuthenticationError, match=message):
            digital.refresh(session, request, now=now, settings=world.settings,
                            signers=world.signers)
    with world.db.transaction() as session, pytest.raises(ValidationError):
        digital.refresh(session, b"junk", now=NOW, settings=world.settings,
                        signers=world.signers)


@pytest.mark.parametrize("which", ["digital", "physical"])
def test_refresh_is_refused_for_a_suspended_card(which: str, world: World) -> None:
    key, issued = world.activate(world.code())
    with world.db.transaction() as session:
        clerk = world.staff.clerk_in(session)
        number = issued.card_number if which == "digital" else world.card_number
        cards.suspend(session, clerk, world.card(session, number), reason=Reason.LOST, now=NOW)
    with world.db.transaction() as session, pytest.raises(CardNotActiveError):
        digital.refresh(session, Wallet(key, issued.credential).refresh_request(NOW), now=NOW,
                        settings=world.settings, signers=world.signers)


# --- the cascade ------------------------------------------------------------------------------


def statuses(world: World, *numbers: str) -> list[CardStatus]:
    with world.db.transaction() as session:
        return [world.card(session, n).status for n in numbers]


def test_the_digital_cards_follow_their_physical_card(world: World) -> None:
    phones = [world.activate(world.code())[1].card_number for _ in range(2)]
    step = NOW
    with world.db.transaction() as session:
        clerk = world.staff.clerk_in(session)
        cards.suspend(session, clerk, world.card(session, world.card_number),
                      reason=Reason.LOST, now=step)
    assert statuses(world, *phones) == [CardStatus.SUSPENDED] * 2
    with world.db.transaction() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.subject.in_(phones))
                                 .where(AuditEvent.tag == "card:status:suspend")).all()
        assert len(events) == 2
        assert all(e.details["cascade_from"] == world.card_number for e in events)
        assert all(e.actor == world.staff.clerk for e in events)
        boss = world.staff.supervisor_in(session)
        cards.resume(session, boss, world.card(session, world.card_number),
                     now=step + timedelta(hours=1))
    assert statuses(world, *phones) == [CardStatus.ACTIVE] * 2
    with world.db.transaction() as session:
        boss = world.staff.supervisor_in(session)
        cards.revoke(session, boss, world.card(session, world.card_number),
                     reason=Reason.STOLEN, now=step + timedelta(hours=2))
    assert statuses(world, *phones) == [CardStatus.REVOKED] * 2
    with world.db.transaction() as session:
        assert {world.card(session, n).status_reason for n in phones} == {Reason.STOLEN}


def test_a_phone_suspended_on_its_own_stays_suspended_when_the_card_resumes(
    world: World,
) -> None:
    (_, own), (_, other) = world.activate(world.code()), world.activate(world.code())
    with world.db.transaction() as session:
        clerk = world.staff.clerk_in(session)
        cards.suspend(session, clerk, world.card(session, own.card_number),
                      reason=Reason.HOLDER_REQUEST, now=NOW)
        parent = world.card(session, world.card_number)
        cards.suspend(session, clerk, parent, reason=Reason.LOST, now=NOW + timedelta(hours=1))
    with world.db.transaction() as session:
        cards.resume(session, world.staff.supervisor_in(session),
                     world.card(session, world.card_number), now=NOW + timedelta(hours=2))
    assert statuses(world, own.card_number, other.card_number) == [
        CardStatus.SUSPENDED, CardStatus.ACTIVE
    ]


def test_replacing_the_card_revokes_its_phones(world: World) -> None:
    _, phone = world.activate(world.code())
    with world.db.transaction() as session:
        boss = world.staff.supervisor_in(session)
        cards.replace(session, boss, world.card(session, world.card_number), reason=Reason.LOST,
                      now=NOW, settings=world.settings)
        assert world.card(session, phone.card_number).status_reason is Reason.SUPERSEDED
    assert statuses(world, phone.card_number) == [CardStatus.REVOKED]


def test_revoking_a_phone_leaves_the_card(world: World) -> None:
    _, phone = world.activate(world.code())
    with world.db.transaction() as session:
        boss = world.staff.supervisor_in(session)
        card = digital.digital_card(session, boss, phone.card_number)
        cards.revoke(session, boss, card, reason=Reason.HOLDER_REQUEST, now=NOW)
        with pytest.raises(NotFoundError, match="physical"):
            digital.digital_card(session, boss, world.card_number)
    assert statuses(world, phone.card_number, world.card_number) == [
        CardStatus.REVOKED, CardStatus.ACTIVE
    ]


def test_expiry_of_the_card_expires_its_phones(world: World) -> None:
    _, phone = world.activate(world.code())
    with world.db.transaction() as session:
        expiry = world.card(session, world.card_number).expiry_date
        assert expiry is not None
        from tests.factories import system

        expired = cards.expire_due(session, system(session), now=NOW.replace(
            year=expiry.year + 1))
    assert world.card_number in expired
    assert statuses(world, phone.card_number, world.card_number) == [CardStatus.EXPIRED] * 2


# --- end to end at a terminal -----------------------------------------------------------------


@pytest.mark.parametrize(("action", "error"), [("suspend", SuspendedError),
                                               ("revoke", RevokedError)])
def test_a_change_reaches_the_terminal_after_publication(
    action: str, error: type[Exception], world: World
) -> None:
    key, issued = world.activate(world.code())
    wallet = Wallet(key, issued.credential)
    world.publish()
    assert verify_qr(wallet.presentation(NOW), world.terminal(), now=NOW)
    later = NOW + timedelta(minutes=1)
    with world.db.transaction() as session:
        boss = world.staff.supervisor_in(session)
        parent = world.card(session, world.card_number)
        if action == "suspend":
            cards.suspend(session, boss, parent, reason=Reason.LOST, now=later)
        else:
            cards.revoke(session, boss, parent, reason=Reason.FRAUD, now=later)
    stale_terminal = world.terminal(now=later)
    assert verify_qr(wallet.presentation(later), stale_terminal, now=later)  # not yet published
    assert [p.list_number for p in world.publish(now=later)]
    with pytest.raises(error):
        verify_qr(wallet.presentation(later), world.terminal(now=later), now=later)


def test_the_printed_static_credential(world: World) -> None:
    with world.db.transaction() as session:
        credential = digital.static_credential(
            session, world.staff.clerk_in(session), world.card_number, now=NOW,
            settings=world.settings, signers=world.signers,
        )
    from cardsys.wallet import static_text

    card = verify_qr(static_text(credential), world.terminal(), now=NOW)
    assert card.evidence is Evidence.STATIC
    assert card.document_number == card.card_number == world.card_number
    with world.db.transaction() as session:
        expiry = world.card(session, world.card_number).expiry_date
    assert expiry is not None
    assert card.expires.date() == expiry + timedelta(days=1)


def test_nothing_is_left_half_done_when_a_cascade_fails(world: World) -> None:
    world.activate(world.code())
    before = snapshot(world.db)

    def crash_before_commit() -> None:
        with world.db.transaction() as session:
            clerk = world.staff.clerk_in(session)
            cards.suspend(session, clerk, world.card(session, world.card_number),
                          reason=Reason.LOST, now=NOW)
            raise RuntimeError("crash after the cascade, before the commit")

    with pytest.raises(RuntimeError):
        crash_before_commit()
    # Neither the card, nor its phone, nor the audit events, nor the shard's dirty mark.
    assert snapshot(world.db) == before
