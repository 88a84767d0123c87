"""The key ceremony: the root, purpose-bound signers, rotation, revocation and the trust list.

Every function runs inside the caller's transaction, checks that the actor is an admin (the
key custodian role), and writes one audit event (`keys:<subject>:<action>`) in that same
transaction, so a change and its record commit or roll back together. Private keys stay in the
`KeyStore`; the database holds certificates, key references and the PKI's public state.

Rules this service keeps:

* one root per instance; a development root says so in its subject and cannot be mistaken for
  a production one;
* at most one ACTIVE signer per purpose; `rotate` makes a new one and RETIRES the old one, which
  stops signing but stays in the trust list (everything it signed keeps verifying);
* `revoke_signer` puts the certificate on a new CRL (higher number), so terminals drop it from
  the trust list at their next sync and what it signed stops verifying;
* `active_signer` is the only way the rest of the system gets a key to sign with: the newest
  ACTIVE signer of the purpose inside its private-key usage period, checked against the root
  and the CRL as a terminal would check it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsys import audit
from cardsys.access import require_role
from cardsys.config import Settings
from cardsys.errors import (
    ConflictError,
    DuplicateError,
    KeyStoreError,
    NoActiveSignerError,
    NotFoundError,
    ValidationError,
    VerificationError,
)
from cardsys.formats.trustlist import build_trust_list
from cardsys.models import Operator, PkiState, Role, SignerRecord, SignerStatus
from cardsys.pki import Purpose, RevocationReason, Signer, check_signer, kid, usage_period
from keys import ca
from keys.store import Curve, KeyRef, KeyStore, StoreSigner, checked_ref

log = logging.getLogger(__name__)

#: How long a CRL is declared valid. The root is offline, so a CRL is re-issued at ceremonies
#: (every revocation issues one at once), not on a timer.
CRL_VALIDITY = timedelta(days=180)
_STATE_ID = 1


@dataclass(frozen=True)
class RootInfo:
    """The root as a custodian sees it."""

    kid: str
    subject: str
    not_after: datetime
    development: bool
    store_kind: str
    crl_number: int
    trust_list_sequence: int

    def as_dict(self) -> dict[str, object]:
        return {
            "kid": self.kid,
            "subject": self.subject,
            "not_after": self.not_after.isoformat(),
            "development": self.development,
            "store": self.store_kind,
            "crl_number": self.crl_number,
            "trust_list_sequence": self.trust_list_sequence,
        }


@dataclass(frozen=True)
class SignerInfo:
    """One signer of the registry (no key material)."""

    kid: str
    purpose: Purpose
    status: SignerStatus
    serial: str
    usage_start: datetime
    usage_end: datetime
    not_after: datetime
    store_kind: str
    key_ref: str
    revoked_at: datetime | None
    revocation_reason: RevocationReason | None

    @classmethod
    def of(cls, record: SignerRecord) -> SignerInfo:
        return cls(
            kid=record.kid,
            purpose=record.purpose,
            status=record.status,
            serial=record.serial,
            usage_start=record.usage_start,
            usage_end=record.usage_end,
            not_after=record.not_after,
            store_kind=record.store_kind.value,
            key_ref=record.key_ref,
            revoked_at=record.revoked_at,
            revocation_reason=record.revocation_reason,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "kid": self.kid,
            "purpose": self.purpose.value,
            "status": self.status.value,
            "serial": self.serial,
            "usage_start": self.usage_start.isoformat(),
            "usage_end": self.usage_end.isoformat(),
            "not_after": self.not_after.isoformat(),
            "store": self.store_kind,
            "key_ref": self.key_ref,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revocation_reason": self.revocation_reason.value if self.revocation_reason else None,
        }


# --- the root ----------------------------------------------------------------------------------


def init_root(
    session: Session,
    store: KeyStore,
    actor: Operator,
    *,
    settings: Settings,
    now: datetime,
    development: bool = False,
) -> RootInfo:
    """Create the root key (P-384) in `store`, its self-signed certificate and a first CRL.

    Raises:
        PermissionDeniedError: the actor is not an admin.
        DuplicateError: this instance already has a root.
    """
    require_role(actor, Role.ADMIN)
    if session.get(PkiState, _STATE_ID, with_for_update=True) is not None:
        raise DuplicateError("this instance already has a root CA")
    ref = store.generate("root", Curve.P384)
    certificate = ca.create_root_certificate(
        store.public_key(ref),
        lambda data: store.sign(ref, data),
        issuer=settings.issuer,
        now=now,
        validity_years=settings.root_validity_years,
        development=development,
    )
    root = store.signer(ref, certificate)
    crl = ca.create_crl(root, (), number=1, now=now, next_update=now + CRL_VALIDITY)
    state = PkiState(
        id=_STATE_ID,
        root_certificate=certificate.public_bytes(Encoding.DER),
        root_kid=root.kid.hex(),
        root_store_kind=store.kind,
        root_key_ref=ref,
        development=development,
        created_at=now,
        crl=crl.public_bytes(Encoding.DER),
        crl_number=1,
        crl_next_update=crl.next_update_utc or now + CRL_VALIDITY,
        trust_list_sequence=0,
        trust_list=None,
        trust_list_issued_at=None,
    )
    session.add(state)
    session.flush()
    audit.record(
        session,
        at=now,
        actor=actor.login,
        office=None,
        tag="keys:root:create",
        subject=root.kid.hex(),
        details={
            "subject": certificate.subject.rfc4514_string(),
            "not_after": certificate.not_valid_after_utc.isoformat(),
            "store": store.kind.value,
            "development": development,
        },
    )
    log.info("root CA created: %s", ca.describe(certificate))
    return _root_info(state)


def root_crl(session: Session) -> x509.CertificateRevocationList:
    """The root's current CRL."""
    return x509.load_der_x509_crl(_state(session).crl)


def root_info(session: Session) -> RootInfo:
    """The root of this instance.

    Raises:
        NotFoundError: no root yet (run `cardsys keys init-root`).
    """
    return _root_info(_state(session))


def root_certificate(session: Session) -> x509.Certificate:
    """The root certificate terminals pin."""
    return x509.load_der_x509_certificate(_state(session).root_certificate)


# --- signers -----------------------------------------------------------------------------------


def issue_signer(
    session: Session,
    store: KeyStore,
    actor: Operator,
    purpose: Purpose,
    *,
    settings: Settings,
    now: datetime,
) -> SignerInfo:
    """A new ACTIVE signer of `purpose` (refused while one is active: use `rotate`).

    Raises:
        DuplicateError: an active signer of this purpose exists.
        NotFoundError: no root yet.
        KeyStoreError: the root key is not in `store`.
    """
    require_role(actor, Role.ADMIN)
    state = _state(session, lock=True)
    if _active_records(session, purpose):
        raise DuplicateError(f"an active {purpose.value} signer exists; rotate it instead")
    record = _new_signer(session, store, state, purpose, settings=settings, now=now)
    audit.record(
        session,
        at=now,
        actor=actor.login,
        office=None,
        tag="keys:signer:issue",
        subject=record.kid,
        details=_signer_details(record),
    )
    return SignerInfo.of(record)


def rotate(
    session: Session,
    store: KeyStore,
    actor: Operator,
    purpose: Purpose,
    *,
    settings: Settings,
    now: datetime,
) -> SignerInfo:
    """A new ACTIVE signer of `purpose`; the previous ones are RETIRED (they keep verifying)."""
    require_role(actor, Role.ADMIN)
    state = _state(session, lock=True)
    previous = _active_records(session, purpose)
    for record in previous:
        record.status = SignerStatus.RETIRED
        record.retired_at = now
    session.flush()
    new = _new_signer(session, store, state, purpose, settings=settings, now=now)
    audit.record(
        session,
        at=now,
        actor=actor.login,
        office=None,
        tag="keys:signer:rotate",
        subject=new.kid,
        details=_signer_details(new) | {"retired": [r.kid for r in previous]},
    )
    return SignerInfo.of(new)


def revoke_signer(
    session: Session,
    store: KeyStore,
    actor: Operator,
    signer_kid: str,
    reason: RevocationReason,
    *,
    now: datetime,
) -> SignerInfo:
    """Revoke a signer: a new CRL (signed by the root) lists it; the trust list drops it.

    Raises:
        NotFoundError: no signer with that kid.
        ConflictError: it is already revoked.
        KeyStoreError: the root key is not in `store` (revocation needs the root).
    """
    require_role(actor, Role.ADMIN)
    state = _state(session, lock=True)
    record = session.scalar(select(SignerRecord).where(SignerRecord.kid == signer_kid.lower()))
    if record is None:
        raise NotFoundError(f"no signer with kid {signer_kid[:32]}")
    if record.status is SignerStatus.REVOKED:
        raise ConflictError(f"signer {record.kid} is already revoked")
    record.status = SignerStatus.REVOKED
    record.revoked_at = now
    record.revocation_reason = reason
    session.flush()
    revoked = session.scalars(
        select(SignerRecord).where(SignerRecord.status == SignerStatus.REVOKED)
    ).all()
    entries = [
        ca.Revocation(int(r.serial, 16), r.revoked_at or now, r.revocation_reason or reason)
        for r in revoked
    ]
    root = _root_signer(store, state)
    crl = ca.create_crl(
        root, entries, number=state.crl_number + 1, now=now, next_update=now + CRL_VALIDITY
    )
    state.crl = crl.public_bytes(Encoding.DER)
    state.crl_number += 1
    state.crl_next_update = crl.next_update_utc or now + CRL_VALIDITY
    audit.record(
        session,
        at=now,
        actor=actor.login,
        office=None,
        tag="keys:signer:revoke",
        subject=record.kid,
        details={
            "purpose": record.purpose.value,
            "reason": reason.value,
            "crl_number": state.crl_number,
        },
    )
    log.warning("signer %s (%s) revoked: %s", record.kid, record.purpose.value, reason.value)
    return SignerInfo.of(record)


def list_signers(session: Session, actor: Operator) -> list[SignerInfo]:
    """Every signer, newest first (admins, and the office supervisors and auditors who watch
    key status: the registry holds certificates, key references and dates, nothing secret)."""
    require_role(actor, Role.ADMIN, Role.AUDITOR, Role.SUPERVISOR)
    records = session.scalars(select(SignerRecord).order_by(SignerRecord.id.desc())).all()
    return [SignerInfo.of(record) for record in records]


@dataclass(frozen=True)
class KeyStatus:
    """The PKI at a glance: root, signers, when each purpose must rotate, the trust list."""

    root: RootInfo | None
    trust_list_issued_at: datetime | None
    signers: tuple[SignerInfo, ...]
    #: Per purpose, when its active signer stops signing (None: no active signer).
    next_rotation: tuple[tuple[Purpose, datetime | None], ...]


def key_status(session: Session, actor: Operator) -> KeyStatus:
    """What the office's key page shows (read-only)."""
    signers = tuple(list_signers(session, actor))
    state = session.get(PkiState, _STATE_ID)
    root = _root_info(state) if state is not None else None
    rotation = []
    for purpose in Purpose:
        ends = [s.usage_end for s in signers
                if s.purpose is purpose and s.status is SignerStatus.ACTIVE]
        rotation.append((purpose, min(ends) if ends else None))
    return KeyStatus(root, state.trust_list_issued_at if state else None, signers,
                     tuple(rotation))


def active_signer(session: Session, store: KeyStore, purpose: Purpose, now: datetime) -> Signer:
    """The key the system signs `purpose` documents with at `now`.

    The newest ACTIVE signer whose private-key usage period contains `now`, whose key is in
    `store`, and whose certificate passes the same check a terminal makes.

    Raises:
        NoActiveSignerError: none (none issued, its usage period is over, or it fails checks).
    """
    state = _state(session)
    root = x509.load_der_x509_certificate(state.root_certificate)
    crl = x509.load_der_x509_crl(state.crl)
    records = session.scalars(
        select(SignerRecord)
        .where(
            SignerRecord.purpose == purpose,
            SignerRecord.status == SignerStatus.ACTIVE,
            SignerRecord.store_kind == store.kind,
        )
        .order_by(SignerRecord.usage_start.desc(), SignerRecord.id.desc())
    ).all()
    for record in records:
        if not record.usage_start <= now <= record.usage_end:
            continue
        certificate = x509.load_der_x509_certificate(record.certificate)
        try:
            check_signer(certificate, root=root, purpose=purpose, now=now, crl=crl)
        except VerificationError:
            log.error("active signer %s fails its certificate checks", record.kid, exc_info=True)
            continue
        return store.signer(checked_ref(record.key_ref), certificate)
    raise NoActiveSignerError(
        f"no {purpose.value} signer may sign now: issue one or rotate (cardsys keys rotate)"
    )


# --- the trust list ----------------------------------------------------------------------------


def export_trust_list(
    session: Session,
    store: KeyStore,
    actor: Operator,
    *,
    settings: Settings,
    now: datetime,
) -> bytes:
    """A new trust list (next sequence number) for terminals, kept in the PKI state.

    It lists every signer whose certificate is still valid, and the current CRL; it is signed
    by the active trust-list signer, or by the root when there is none. Revoked signers stay
    in the document so a terminal can say "revoked" rather than "unknown key", but the CRL
    beside them makes every terminal drop them from what it trusts.
    """
    require_role(actor, Role.ADMIN)
    state = _state(session, lock=True)
    root = x509.load_der_x509_certificate(state.root_certificate)
    records = session.scalars(select(SignerRecord).order_by(SignerRecord.id)).all()
    signers = [
        (record.purpose, x509.load_der_x509_certificate(record.certificate))
        for record in records
        if record.not_after >= now
    ]
    signer = _trust_list_signer(session, store, state, now)
    sequence = state.trust_list_sequence + 1
    document = build_trust_list(
        sequence=sequence,
        issuer=settings.issuer,
        issued_at=now,
        next_update=now + timedelta(days=settings.trust_list_validity_days),
        root=root,
        signers=signers,
        crl=x509.load_der_x509_crl(state.crl),
        signer=signer,
    )
    state.trust_list_sequence = sequence
    state.trust_list = document
    state.trust_list_issued_at = now
    audit.record(
        session,
        at=now,
        actor=actor.login,
        office=None,
        tag="keys:trustlist:export",
        subject=f"trust-list-{sequence}",
        details={
            "sequence": sequence,
            "signers": len(signers),
            "signed_by": signer.kid.hex(),
            "sha256": hashlib.sha256(document).hexdigest(),
            "crl_number": state.crl_number,
        },
    )
    return document


def latest_trust_list(session: Session) -> bytes:
    """The last exported trust list (what `/trust-list` serves).

    Raises:
        NotFoundError: none exported yet.
    """
    document = _state(session).trust_list
    if document is None:
        raise NotFoundError("no trust list has been exported yet")
    return document


# --- development instances --------------------------------------------------------------------


def ensure_development_pki(
    session: Session,
    store: KeyStore,
    actor: Operator,
    *,
    settings: Settings,
    now: datetime,
) -> bytes:
    """Make (or top up) a development PKI and export a fresh trust list; safe to rerun.

    Creates a development root if there is none, gives every purpose a signer that may sign
    now (issuing or rotating as needed) and exports a trust list.

    Raises:
        ConflictError: the instance has a production root (never touched by this).
    """
    state = session.get(PkiState, _STATE_ID)
    if state is None:
        init_root(session, store, actor, settings=settings, now=now, development=True)
    elif not state.development:
        raise ConflictError("this instance has a production root; dev-pki leaves it alone")
    for purpose in Purpose:
        try:
            active_signer(session, store, purpose, now)
        except NoActiveSignerError:
            if _active_records(session, purpose):
                rotate(session, store, actor, purpose, settings=settings, now=now)
            else:
                issue_signer(session, store, actor, purpose, settings=settings, now=now)
    return export_trust_list(session, store, actor, settings=settings, now=now)


# --- helpers -----------------------------------------------------------------------------------


def _state(session: Session, *, lock: bool = False) -> PkiState:
    state = session.get(PkiState, _STATE_ID, with_for_update=lock)
    if state is None:
        raise NotFoundError("this instance has no root CA yet (cardsys keys init-root)")
    return state


def _root_info(state: PkiState) -> RootInfo:
    certificate = x509.load_der_x509_certificate(state.root_certificate)
    return RootInfo(
        kid=state.root_kid,
        subject=certificate.subject.rfc4514_string(),
        not_after=certificate.not_valid_after_utc,
        development=state.development,
        store_kind=state.root_store_kind.value,
        crl_number=state.crl_number,
        trust_list_sequence=state.trust_list_sequence,
    )


def _root_signer(store: KeyStore, state: PkiState) -> StoreSigner:
    if state.root_store_kind is not store.kind:
        raise KeyStoreError(
            f"the root key lives in the {state.root_store_kind.value} store, "
            f"not in this {store.kind.value} store"
        )
    certificate = x509.load_der_x509_certificate(state.root_certificate)
    return store.signer(checked_ref(state.root_key_ref), certificate)


def _active_records(session: Session, purpose: Purpose) -> list[SignerRecord]:
    return list(
        session.scalars(
            select(SignerRecord).where(
                SignerRecord.purpose == purpose, SignerRecord.status == SignerStatus.ACTIVE
            )
        ).all()
    )


def _new_signer(
    session: Session,
    store: KeyStore,
    state: PkiState,
    purpose: Purpose,
    *,
    settings: Settings,
    now: datetime,
) -> SignerRecord:
    root = _root_signer(store, state)
    ref: KeyRef = store.generate(purpose.value, Curve.P256)
    certificate = ca.issue_signer_certificate(
        root,
        store.public_key(ref),
        purpose,
        now=now,
        usage_months=settings.signer_usage_months,
        validity_years=settings.signer_validity_years,
    )
    store.signer(ref, certificate)  # proves the certificate and the stored key belong together
    period = usage_period(certificate)
    if period is None:
        raise ValidationError("the signer certificate has no private-key usage period")
    record = SignerRecord(
        kid=kid(certificate).hex(),
        purpose=purpose,
        certificate=certificate.public_bytes(Encoding.DER),
        serial=format(certificate.serial_number, "x"),
        store_kind=store.kind,
        key_ref=ref,
        usage_start=period[0],
        usage_end=period[1],
        not_after=certificate.not_valid_after_utc,
        status=SignerStatus.ACTIVE,
        created_at=now,
        retired_at=None,
        revoked_at=None,
        revocation_reason=None,
    )
    session.add(record)
    session.flush()
    log.info("%s signer issued: %s", purpose.value, ca.describe(certificate))
    return record


def _signer_details(record: SignerRecord) -> dict[str, object]:
    return {
        "purpose": record.purpose.value,
        "serial": record.serial,
        "usage_start": record.usage_start.isoformat(),
        "usage_end": record.usage_end.isoformat(),
        "not_after": record.not_after.isoformat(),
        "store": record.store_kind.value,
    }


def _trust_list_signer(session: Session, store: KeyStore, state: PkiState, now: datetime) -> Signer:
    try:
        return active_signer(session, store, Purpose.TRUST_LIST, now)
    except NoActiveSignerError:
        return _root_signer(store, state)
