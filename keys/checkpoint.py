"""Signed checkpoints of the audit chain.

The hash chain (cardsys.audit) shows any edit, deletion or reordering, but someone with write
access to the database could rebuild the whole chain from some event on. A checkpoint closes
that gap: the AUDIT signer signs the chain head (sequence number, hash, time), and
`verify_checkpoints` checks every checkpoint's signature and purpose against the root and that
the chain still holds the signed hash at the signed sequence number. Only events after the last
checkpoint rely on the chain alone, so `cardsys audit sign` runs as a scheduled job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsys import audit
from cardsys.access import require_role
from cardsys.errors import AuditChainError, VerificationError
from cardsys.models import AuditCheckpoint, AuditEvent, AuditHead, Operator, Role, SignerRecord
from cardsys.pki import Purpose, algorithm_for_key, check_signer, hash_for
from keys import ceremony
from keys.store import KeyStore


def checkpoint_message(seq: int, digest: str, at: datetime) -> bytes:
    """The bytes a checkpoint signature covers (domain-separated, unambiguous)."""
    return f"cardsys audit checkpoint\n{seq}\n{digest}\n{at.isoformat()}".encode()


def sign_head(
    session: Session, store: KeyStore, actor: Operator, *, now: datetime
) -> AuditCheckpoint:
    """Sign the current chain head with the active AUDIT signer and record the checkpoint."""
    require_role(actor, Role.ADMIN)
    head = session.execute(select(AuditHead).with_for_update()).scalar_one_or_none()
    if head is None or head.seq == 0:
        raise AuditChainError("the audit chain is empty: nothing to sign yet")
    signer = ceremony.active_signer(session, store, Purpose.AUDIT, now)
    checkpoint = AuditCheckpoint(
        seq=head.seq, hash=head.hash, at=now, kid=signer.kid.hex(),
        signature=signer.sign(checkpoint_message(head.seq, head.hash, now)),
    )
    session.add(checkpoint)
    session.flush()
    audit.record(
        session, at=now, actor=actor.login, office=None, tag="audit:head:sign",
        subject=str(head.seq), details={"hash": head.hash, "kid": checkpoint.kid},
    )
    return checkpoint


@dataclass(frozen=True)
class CheckpointReport:
    checkpoints: int
    last_seq: int | None


def verify_checkpoints(session: Session, *, now: datetime) -> CheckpointReport:
    """Check every checkpoint against the root, the signer's purpose and the chain.

    Raises:
        AuditChainError: naming the first checkpoint whose signature, signer or hash fails.
    """
    checkpoints = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).all()
    if not checkpoints:
        return CheckpointReport(0, None)
    root = ceremony.root_certificate(session)
    crl = ceremony.root_crl(session)
    for checkpoint in checkpoints:
        where = f"audit checkpoint at event {checkpoint.seq} ({checkpoint.at:%Y-%m-%d %H:%M})"
        record = session.scalar(select(SignerRecord).where(SignerRecord.kid == checkpoint.kid))
        if record is None:
            raise AuditChainError(f"{where}: signed by an unknown key {checkpoint.kid}")
        certificate = x509.load_der_x509_certificate(record.certificate)
        try:
            check_signer(certificate, root=root, purpose=Purpose.AUDIT, now=checkpoint.at, crl=crl)
        except VerificationError as exc:
            raise AuditChainError(f"{where}: its signer is not trusted ({exc})") from exc
        public_key = certificate.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        message = checkpoint_message(checkpoint.seq, checkpoint.hash, checkpoint.at)
        try:
            public_key.verify(
                checkpoint.signature, message, ec.ECDSA(hash_for(algorithm_for_key(public_key)))
            )
        except InvalidSignature as exc:
            raise AuditChainError(f"{where}: the signature does not verify") from exc
        event = session.get(AuditEvent, checkpoint.seq)
        if event is None or event.hash != checkpoint.hash:
            raise AuditChainError(
                f"{where}: the chain no longer holds the signed hash there (rewritten)"
            )
    return CheckpointReport(len(checkpoints), checkpoints[-1].seq)
