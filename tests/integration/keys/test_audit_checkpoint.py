"""Signed checkpoints catch what the hash chain alone cannot: a chain rebuilt from scratch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from cardsys import audit
from cardsys.config import Settings
from cardsys.db import Database
from cardsys.errors import AuditChainError, NoActiveSignerError, PermissionDeniedError
from cardsys.models import AuditCheckpoint, AuditEvent, AuditHead, SignerRecord
from cardsys.pki import Purpose
from keys import checkpoint
from keys.store import KeyStore
from tests.factories import ADMIN, NOW, make_office, operator
from tests.integration.keys.test_ceremony import setup_pki


def signed_chain(database: Database, store: KeyStore, settings: Settings) -> None:
    setup_pki(database, store, settings, Purpose.AUDIT, Purpose.CREDENTIAL)
    with database.transaction() as session:
        make_office(session, "CP-01")
        checkpoint.sign_head(session, store, operator(session, ADMIN), now=NOW)


def test_a_signed_head_verifies(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    signed_chain(keys_db, key_store, keys_settings)
    with keys_db.transaction() as session:
        report = checkpoint.verify_checkpoints(session, now=NOW)
        signed = session.scalars(select(AuditCheckpoint)).one()
        assert (report.checkpoints, report.last_seq) == (1, signed.seq)
        assert audit.recent(session, tag_prefix="audit:head:sign")[0].subject == str(signed.seq)


def test_a_chain_rebuilt_from_scratch_passes_the_chain_check_but_not_the_checkpoint(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    signed_chain(keys_db, key_store, keys_settings)
    with keys_db.transaction() as session:
        # The attacker edits the first event and recomputes every hash and the head.
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        events[0].actor = "mallory"
        previous = audit.GENESIS
        for event in events:
            event.prev_hash = previous
            event.hash = audit.event_hash(
                seq=event.seq, at=event.at, actor=event.actor, office=event.office,
                tag=event.tag, subject=event.subject, details=event.details,
                prev_hash=previous,
            )
            previous = event.hash
        session.scalars(select(AuditHead)).one().hash = previous
    with keys_db.transaction() as session:
        assert audit.verify(session).events == len(events)
        with pytest.raises(AuditChainError, match="rewritten"):
            checkpoint.verify_checkpoints(session, now=NOW)


def test_a_tampered_checkpoint_signature_is_refused(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    signed_chain(keys_db, key_store, keys_settings)
    with keys_db.transaction() as session:
        session.execute(text("UPDATE audit_checkpoints SET at = :at"),
                        {"at": (NOW + timedelta(seconds=1)).replace(tzinfo=None)})
    with keys_db.transaction() as session, pytest.raises(AuditChainError, match="signature"):
        checkpoint.verify_checkpoints(session, now=NOW)


def test_a_checkpoint_by_a_signer_of_another_purpose_is_refused(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    signed_chain(keys_db, key_store, keys_settings)
    with keys_db.transaction() as session:
        credential = session.scalars(
            select(SignerRecord).where(SignerRecord.purpose == Purpose.CREDENTIAL)
        ).one()
        session.scalars(select(AuditCheckpoint)).one().kid = credential.kid
    with keys_db.transaction() as session, pytest.raises(AuditChainError, match="not trusted"):
        checkpoint.verify_checkpoints(session, now=NOW)


def test_signing_needs_an_admin_and_an_audit_signer(
    keys_db: Database, key_store: KeyStore, keys_settings: Settings
) -> None:
    setup_pki(keys_db, key_store, keys_settings)
    with keys_db.transaction() as session:
        staff = make_office(session, "CP-02")
        with pytest.raises(PermissionDeniedError):
            checkpoint.sign_head(session, key_store, operator(session, staff.clerk), now=NOW)
        with pytest.raises(NoActiveSignerError):
            checkpoint.sign_head(session, key_store, operator(session, ADMIN), now=NOW)
