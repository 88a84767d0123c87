"""The key ceremony service, from the custodian's side and from a terminal's side."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from sqlalchemy import select

from cardsys import audit
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import (
    ConflictError,
    DuplicateError,
    KeyStoreError,
    NoActiveSignerError,
    NotFoundError,
    PermissionDeniedError,
    SignatureError,
    UntrustedSignerError,
    WrongPurposeError,
)
from cardsys.formats import cose
from cardsys.formats.trustlist import TrustList, parse_trust_list
from cardsys.models import AuditEvent, PkiState, Role, SignerRecord, SignerStatus
from cardsys.pki import Purpose, RevocationReason, Signer, kid
from keys import ca, ceremony
from keys.ephemeral import EphemeralKeyStore
from keys.store import FileKeyStore, KeyRef, KeyStore
from tests.factories import ADMIN, NOW, make_office, operator

GRACE = timedelta(days=3)


def sign_document(signer: Signer, payload: bytes) -> bytes:
    """What an issuing service does: a COSE_Sign1 by the signer, kid in the header."""
    return cose.sign1(payload, sign=signer.sign, alg=signer.algorithm, kid=signer.kid).encode()


def terminal_verify(
    trust: TrustList, document: bytes, purpose: Purpose, *, now: datetime = NOW
) -> bytes:
    """What a terminal does: find the kid's certificates in its trust list, verify."""
    message = cose.Sign1.decode(document)
    assert message.kid is not None
    failures: list[Exception] = []
    for certificate in trust.certificates_for(message.kid, purpose, now=now):
        try:
            message.verify(certificate.public_key())  # type: ignore[arg-type]
        except SignatureError as exc:
            failures.append(exc)
        else:
            return message.payload
    raise failures[0]


def sync(database: Database, previous: TrustList | None = None, *, now: object = NOW) -> TrustList:
    """A terminal's sync: fetch the latest trust list and check it against the pinned root."""
    with database.transaction() as session:
        document = ceremony.latest_trust_list(session)
        root = ceremony.root_certificate(session)
    return parse_trust_list(
        document,
        root=root,
        now=now,  # type: ignore[arg-type]
        previous_sequence=previous.sequence if previous else None,
        previous_digest=previous.digest if previous else None,
        grace=GRACE,
    )


def setup_pki(database: Database, store: KeyStore, settings: Settings, *purposes: Purpose) -> None:
    with database.transaction() as session:
        admin = operator(session, ADMIN)
        ceremony.init_root(session, store, admin, settings=settings, now=NOW)
        for purpose in purposes:
            ceremony.issue_signer(session, store, admin, purpose, settings=settings, now=NOW)


def export(database: Database, store: KeyStore, settings: Settings, *, now: object = NOW) -> bytes:
    with database.transaction() as session:
        return ceremony.export_trust_list(
            session,
            store,
            operator(session, ADMIN),
            settings=settings,
            now=now,  # type: ignore[arg-type]
        )


# --- the root ---------------------------------------------------------------------------------


def test_init_root_records_state_and_audit(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    with keys_db.transaction() as session:
        info = ceremony.init_root(
            session, key_store, operator(session, ADMIN), settings=keys_settings, now=NOW
        )
    with keys_db.transaction() as session:
        root = ceremony.root_certificate(session)
        assert info.kid == kid(root).hex()
        assert info.development is False
        assert not ca.is_development(root)
        assert "Test Agency" in info.subject
        assert info.store_kind == key_store.kind.value
        events = audit.recent(session, tag_prefix="keys:root:create")
        assert [e.subject for e in events] == [info.kid]
        assert audit.verify(session).events >= 1


def test_second_root_is_refused(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings)
    with keys_db.transaction() as session, pytest.raises(DuplicateError):
        ceremony.init_root(
            session, key_store, operator(session, ADMIN), settings=keys_settings, now=NOW
        )


@pytest.mark.parametrize("role", ["clerk", "supervisor", "auditor"])
def test_only_admins_run_the_ceremony(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings, role: str
) -> None:
    with keys_db.transaction() as session:
        staff = make_office(session)
    login = {"clerk": staff.clerk, "supervisor": staff.supervisor, "auditor": staff.auditor}[role]
    with keys_db.transaction() as session, pytest.raises(PermissionDeniedError):
        ceremony.init_root(
            session, key_store, operator(session, login), settings=keys_settings, now=NOW
        )
    setup_pki(keys_db, key_store, keys_settings)
    with keys_db.transaction() as session, pytest.raises(PermissionDeniedError):
        ceremony.issue_signer(
            session,
            key_store,
            operator(session, login),
            Purpose.CREDENTIAL,
            settings=keys_settings,
            now=NOW,
        )
    with keys_db.transaction() as session:
        actor = operator(session, login)
        if actor.role in (Role.AUDITOR, Role.SUPERVISOR):
            # They watch key status (the office keys page); nothing in it is secret.
            assert ceremony.list_signers(session, actor) == []
        else:
            with pytest.raises(PermissionDeniedError):
                ceremony.list_signers(session, actor)


def test_ceremony_without_root_is_not_found(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    with keys_db.transaction() as session, pytest.raises(NotFoundError, match="init-root"):
        ceremony.issue_signer(
            session,
            key_store,
            operator(session, ADMIN),
            Purpose.CREDENTIAL,
            settings=keys_settings,
            now=NOW,
        )
    with keys_db.transaction() as session, pytest.raises(NotFoundError):
        ceremony.latest_trust_list(session)


def test_root_key_must_be_in_the_store_used(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings)
    other = EphemeralKeyStore()
    other.kind = key_store.kind  # same kind, different store: the root ref is not in it
    with keys_db.transaction() as session, pytest.raises((KeyStoreError, NotFoundError)):
        ceremony.issue_signer(
            session,
            other,
            operator(session, ADMIN),
            Purpose.CREDENTIAL,
            settings=keys_settings,
            now=NOW,
        )


# --- signers ----------------------------------------------------------------------------------


def test_issue_signer_and_sign_with_the_active_signer(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings, *Purpose)
    with keys_db.transaction() as session:
        records = session.scalars(select(SignerRecord)).all()
        assert {r.purpose for r in records} == set(Purpose)
        assert {r.status for r in records} == {SignerStatus.ACTIVE}
        for record in records:
            signer = ceremony.active_signer(session, key_store, record.purpose, NOW)
            assert signer.kid.hex() == record.kid
            assert record.usage_end == ca.add_months(NOW, keys_settings.signer_usage_months)
            assert record.not_after == ca.add_months(NOW, 12 * keys_settings.signer_validity_years)
        assert len(audit.recent(session, tag_prefix="keys:signer:issue")) == len(Purpose)
    export(keys_db, key_store, keys_settings)
    trust = sync(keys_db)
    with keys_db.transaction() as session:
        for purpose in Purpose:
            signer = ceremony.active_signer(session, key_store, purpose, NOW)
            assert terminal_verify(trust, sign_document(signer, b"doc"), purpose) == b"doc"


def test_second_active_signer_is_refused(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings, Purpose.CREDENTIAL)
    with keys_db.transaction() as session, pytest.raises(DuplicateError, match="rotate"):
        ceremony.issue_signer(
            session,
            key_store,
            operator(session, ADMIN),
            Purpose.CREDENTIAL,
            settings=keys_settings,
            now=NOW,
        )


def test_no_active_signer(keys_db: Database, key_store: KeyStore, keys_settings: Settings) -> None:
    setup_pki(keys_db, key_store, keys_settings, Purpose.CREDENTIAL)
    with keys_db.transaction() as session:
        with pytest.raises(NoActiveSignerError):
            ceremony.active_signer(session, key_store, Purpose.STATUS_LIST, NOW)
        # The key signs for six months; afterwards it must be rotated, not used.
        later = ca.add_months(NOW, keys_settings.signer_usage_months) + timedelta(seconds=1)
        with pytest.raises(NoActiveSignerError, match="rotate"):
            ceremony.active_signer(session, key_store, Purpose.CREDENTIAL, later)
        with pytest.raises(NoActiveSignerError):
            ceremony.active_signer(session, key_store, Purpose.CREDENTIAL, NOW - timedelta(days=1))


def test_rotation_from_a_terminals_point_of_view(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings, Purpose.CREDENTIAL)
    with keys_db.transaction() as session:
        old = ceremony.active_signer(session, key_store, Purpose.CREDENTIAL, NOW)
    signed_before = sign_document(old, b"signed by the old key")

    later = NOW + timedelta(days=150)
    with keys_db.transaction() as session:
        info = ceremony.rotate(
            session,
            key_store,
            operator(session, ADMIN),
            Purpose.CREDENTIAL,
            settings=keys_settings,
            now=later,
        )
    with keys_db.transaction() as session:
        new = ceremony.active_signer(session, key_store, Purpose.CREDENTIAL, later)
        statuses = {r.kid: r.status for r in session.scalars(select(SignerRecord))}
        event = audit.recent(session, tag_prefix="keys:signer:rotate")[0]
    assert new.kid.hex() == info.kid != old.kid.hex()
    assert statuses == {old.kid.hex(): SignerStatus.RETIRED, new.kid.hex(): SignerStatus.ACTIVE}
    assert event.details["retired"] == [old.kid.hex()]
    signed_after = sign_document(new, b"signed by the new key")

    export(keys_db, key_store, keys_settings, now=later)
    trust = sync(keys_db, now=later)  # the terminal syncs once, after the rotation
    assert terminal_verify(trust, signed_before, Purpose.CREDENTIAL, now=later) == (
        b"signed by the old key"
    )
    assert terminal_verify(trust, signed_after, Purpose.CREDENTIAL, now=later) == (
        b"signed by the new key"
    )
    # The retired key signs no more through the system.
    with keys_db.transaction() as session:
        assert ceremony.active_signer(session, key_store, Purpose.CREDENTIAL, later).kid == new.kid


def test_revocation_from_a_terminals_point_of_view(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings, Purpose.CREDENTIAL, Purpose.STATUS_LIST)
    with keys_db.transaction() as session:
        victim = ceremony.active_signer(session, key_store, Purpose.CREDENTIAL, NOW)
        bystander = ceremony.active_signer(session, key_store, Purpose.STATUS_LIST, NOW)
    credential = sign_document(victim, b"credential")
    status_list = sign_document(bystander, b"status list")
    export(keys_db, key_store, keys_settings)
    first = sync(keys_db)
    assert terminal_verify(first, credential, Purpose.CREDENTIAL) == b"credential"

    with keys_db.transaction() as session:
        info = ceremony.revoke_signer(
            session,
            key_store,
            operator(session, ADMIN),
            victim.kid.hex(),
            RevocationReason.KEY_COMPROMISE,
            now=NOW + timedelta(hours=1),
        )
        assert info.status is SignerStatus.REVOKED
        with pytest.raises(NoActiveSignerError):
            ceremony.active_signer(session, key_store, Purpose.CREDENTIAL, NOW + timedelta(hours=2))
    # Until the next sync the terminal still trusts it (that is what the sync interval means).
    assert terminal_verify(first, credential, Purpose.CREDENTIAL) == b"credential"

    export(keys_db, key_store, keys_settings, now=NOW + timedelta(hours=2))
    second = sync(keys_db, first, now=NOW + timedelta(hours=2))
    assert second.sequence == first.sequence + 1
    entry = second.crl.get_revoked_certificate_by_serial_number(victim.certificate.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    with pytest.raises(UntrustedSignerError, match="revoked"):
        terminal_verify(second, credential, Purpose.CREDENTIAL)
    assert terminal_verify(second, status_list, Purpose.STATUS_LIST) == b"status list"


def test_revoke_twice_or_unknown(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings, Purpose.AUDIT)
    with keys_db.transaction() as session:
        target = ceremony.active_signer(session, key_store, Purpose.AUDIT, NOW).kid.hex()
        ceremony.revoke_signer(
            session,
            key_store,
            operator(session, ADMIN),
            target.upper(),
            RevocationReason.CESSATION_OF_OPERATION,
            now=NOW,
        )
    with keys_db.transaction() as session, pytest.raises(ConflictError):
        ceremony.revoke_signer(
            session,
            key_store,
            operator(session, ADMIN),
            target,
            RevocationReason.KEY_COMPROMISE,
            now=NOW,
        )
    with keys_db.transaction() as session, pytest.raises(NotFoundError):
        ceremony.revoke_signer(
            session,
            key_store,
            operator(session, ADMIN),
            "00" * 8,
            RevocationReason.KEY_COMPROMISE,
            now=NOW,
        )


def test_crl_numbers_grow_and_keep_every_revocation(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings, Purpose.AUDIT, Purpose.CHIP_DOCUMENT)
    with keys_db.transaction() as session:
        kids = [r.kid for r in session.scalars(select(SignerRecord))]
    for number, signer_kid in enumerate(kids, start=2):
        with keys_db.transaction() as session:
            ceremony.revoke_signer(
                session,
                key_store,
                operator(session, ADMIN),
                signer_kid,
                RevocationReason.SUPERSEDED,
                now=NOW,
            )
            assert ceremony.root_info(session).crl_number == number
    export(keys_db, key_store, keys_settings)
    trust = sync(keys_db)
    assert len(trust.crl) == 2
    assert ca.crl_number(trust.crl) == 3
    assert trust.signers == ()


# --- the trust list ---------------------------------------------------------------------------


def test_trust_list_signed_by_root_until_a_trust_list_signer_exists(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings, Purpose.CREDENTIAL)
    export(keys_db, key_store, keys_settings)
    first = sync(keys_db)
    with keys_db.transaction() as session:
        root_kid = kid(ceremony.root_certificate(session))
        ceremony.issue_signer(
            session,
            key_store,
            operator(session, ADMIN),
            Purpose.TRUST_LIST,
            settings=keys_settings,
            now=NOW,
        )
        tl_kid = ceremony.active_signer(session, key_store, Purpose.TRUST_LIST, NOW).kid
    export(keys_db, key_store, keys_settings)
    second = sync(keys_db, first)
    assert first.signed_by == root_kid
    assert second.signed_by == tl_kid
    assert second.sequence == 2
    assert second.next_update == NOW + timedelta(days=keys_settings.trust_list_validity_days)
    with keys_db.transaction() as session:
        events = audit.recent(session, tag_prefix="keys:trustlist:export")
        assert [e.details["sequence"] for e in events] == [2, 1]


def test_expired_signers_leave_the_trust_list(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings, Purpose.CREDENTIAL)
    with keys_db.transaction() as session:
        record = session.scalars(select(SignerRecord)).one()
        expiry = record.not_after
    after = expiry + timedelta(days=1)
    document = export(keys_db, key_store, keys_settings, now=after)
    with keys_db.transaction() as session:
        root = ceremony.root_certificate(session)
    trust = parse_trust_list(document, root=root, now=after, previous_sequence=None, grace=GRACE)
    assert trust.signers == ()


def test_a_status_list_signer_cannot_pass_for_a_credential_signer(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings, Purpose.CREDENTIAL, Purpose.STATUS_LIST)
    with keys_db.transaction() as session:
        wrong = ceremony.active_signer(session, key_store, Purpose.STATUS_LIST, NOW)
    export(keys_db, key_store, keys_settings)
    with pytest.raises(WrongPurposeError):
        terminal_verify(sync(keys_db), sign_document(wrong, b"fake credential"), Purpose.CREDENTIAL)


def test_whole_ceremony_leaves_an_intact_audit_chain(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings, *Purpose)
    with keys_db.transaction() as session:
        admin = operator(session, ADMIN)
        ceremony.rotate(
            session, key_store, admin, Purpose.CREDENTIAL, settings=keys_settings, now=NOW
        )
        target = ceremony.active_signer(session, key_store, Purpose.AUDIT, NOW).kid.hex()
        ceremony.revoke_signer(
            session, key_store, admin, target, RevocationReason.KEY_COMPROMISE, now=NOW
        )
    export(keys_db, key_store, keys_settings)
    with keys_db.transaction() as session:
        tags = [e.tag for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        assert audit.verify(session).events == len(tags)
    assert tags.count("keys:signer:issue") == len(Purpose)
    assert {
        "keys:root:create",
        "keys:signer:rotate",
        "keys:signer:revoke",
        "keys:trustlist:export",
    } <= set(tags)


# --- development instances --------------------------------------------------------------------


def test_development_pki_is_marked_and_idempotent(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    for round_number in (1, 2):
        with keys_db.transaction() as session:
            ceremony.ensure_development_pki(
                session, key_store, operator(session, ADMIN), settings=keys_settings, now=NOW
            )
        with keys_db.transaction() as session:
            assert ceremony.root_info(session).development
            assert ceremony.root_info(session).trust_list_sequence == round_number
            assert len(session.scalars(select(SignerRecord)).all()) == len(Purpose)
            assert ca.is_development(ceremony.root_certificate(session))
    later = ca.add_months(NOW, keys_settings.signer_usage_months) + timedelta(days=1)
    with keys_db.transaction() as session:
        ceremony.ensure_development_pki(
            session, key_store, operator(session, ADMIN), settings=keys_settings, now=later
        )
        for purpose in Purpose:
            ceremony.active_signer(session, key_store, purpose, later)
        assert len(session.scalars(select(SignerRecord)).all()) == 2 * len(Purpose)


def test_development_pki_leaves_a_production_root_alone(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings)
    with keys_db.transaction() as session, pytest.raises(ConflictError, match="production"):
        ceremony.ensure_development_pki(
            session, key_store, operator(session, ADMIN), settings=keys_settings, now=NOW
        )


def test_servers_run_without_the_root_key_once_it_is_taken_offline(
    keys_db: Database, file_store: FileKeyStore, keys_settings: Settings, key_passphrase: str
) -> None:
    setup_pki(keys_db, file_store, keys_settings, Purpose.CREDENTIAL, Purpose.TRUST_LIST)
    with keys_db.transaction() as session:
        state_ref = session.get(PkiState, 1).root_key_ref  # type: ignore[union-attr]
    root_file = file_store.path(KeyRef(state_ref))
    offline = root_file.with_name("offline-media")
    root_file.rename(offline)
    server = FileKeyStore(file_store.directory, key_passphrase)  # a fresh process: nothing cached
    export(keys_db, server, keys_settings)  # signed by the trust-list signer
    with keys_db.transaction() as session:
        assert ceremony.active_signer(session, server, Purpose.CREDENTIAL, NOW)
    with keys_db.transaction() as session, pytest.raises(NotFoundError):
        ceremony.rotate(
            session,
            server,
            operator(session, ADMIN),
            Purpose.CREDENTIAL,
            settings=keys_settings,
            now=NOW,
        )
    offline.rename(root_file)  # back for the ceremony
    with keys_db.transaction() as session:
        ceremony.rotate(
            session,
            server,
            operator(session, ADMIN),
            Purpose.CREDENTIAL,
            settings=keys_settings,
            now=NOW,
        )
