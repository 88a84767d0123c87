"""Signer purposes, their certificate OIDs, key ids and the rules a signer certificate must meet.

This module is shared by the issuing side (`keys/`) and the terminal side (`verify/`): it does no
I/O and reads no clock. The rules `check_signer` enforces, in order:

1. the certificate is signed by the pinned root (ECDSA with SHA-256 or SHA-384);
2. it is not on the root's CRL, and the CRL itself is signed by the root;
3. `now` lies inside the certificate's validity (and the root's);
4. its extended key usage contains the purpose's OID, it is not a CA, and its key usage (when
   present) allows digital signatures.

Our OIDs live under one private arc, `2.25.<uuid>` (ITU-T X.667: an arc derived from a UUID
needs no registration), so they cannot collide with anyone else's.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from cardsys.errors import CertificateError, UntrustedSignerError, WrongPurposeError

#: The project's private OID arc (ITU-T X.667 UUID arc).
ARC = "2.25.22967142429479263824594819197239230324"


class Purpose(enum.StrEnum):
    """What a signer key may sign. Each has its own extended key usage OID."""

    CHIP_DOCUMENT = "chip-document"
    CREDENTIAL = "credential"
    STATUS_LIST = "status-list"
    TRUST_LIST = "trust-list"
    AUDIT = "audit"

    @property
    def oid(self) -> x509.ObjectIdentifier:
        return _PURPOSE_OIDS[self]

    @classmethod
    def from_oid(cls, oid: x509.ObjectIdentifier) -> Purpose | None:
        for purpose, candidate in _PURPOSE_OIDS.items():
            if candidate == oid:
                return purpose
        return None


_PURPOSE_OIDS = {
    Purpose.CHIP_DOCUMENT: x509.ObjectIdentifier(f"{ARC}.1.1"),
    Purpose.CREDENTIAL: x509.ObjectIdentifier(f"{ARC}.1.2"),
    Purpose.STATUS_LIST: x509.ObjectIdentifier(f"{ARC}.1.3"),
    Purpose.TRUST_LIST: x509.ObjectIdentifier(f"{ARC}.1.4"),
    Purpose.AUDIT: x509.ObjectIdentifier(f"{ARC}.1.5"),
}


class RevocationReason(enum.StrEnum):
    """Why a signer certificate was revoked (a subset of RFC 5280 §5.3.1 CRLReason)."""

    KEY_COMPROMISE = "key-compromise"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation-of-operation"
    AFFILIATION_CHANGED = "affiliation-changed"
    UNSPECIFIED = "unspecified"

    @property
    def flag(self) -> x509.ReasonFlags:
        """The CRL entry's reason code."""
        return _REASON_FLAGS[self]


_REASON_FLAGS = {
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.UNSPECIFIED: x509.ReasonFlags.unspecified,
}


class Algorithm(enum.StrEnum):
    """Signature algorithms, named as in COSE (RFC 9053)."""

    ES256 = "ES256"
    ES384 = "ES384"


def algorithm_for_key(public_key: object) -> Algorithm:
    """The algorithm a key signs with: ES256 for P-256, ES384 for P-384.

    Raises:
        CertificateError: any other key type or curve.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if isinstance(public_key.curve, ec.SECP256R1):
            return Algorithm.ES256
        if isinstance(public_key.curve, ec.SECP384R1):
            return Algorithm.ES384
    raise CertificateError("only ECDSA keys on P-256 or P-384 are supported")


def kid(certificate: x509.Certificate) -> bytes:
    """Key id: the first 8 bytes of SHA-256 over the certificate's DER encoding."""
    der = certificate.public_bytes(Encoding.DER)
    return hashlib.sha256(der).digest()[:8]


@runtime_checkable
class Signer(Protocol):
    """A private key of one purpose, wherever it lives (file, HSM).

    `sign` returns a DER-encoded ECDSA signature (as X.509 and CMS carry it) over `data`
    hashed with the algorithm's hash; COSE code converts it to raw r||s.
    """

    @property
    def certificate(self) -> x509.Certificate: ...

    @property
    def kid(self) -> bytes: ...

    @property
    def algorithm(self) -> Algorithm: ...

    def sign(self, data: bytes) -> bytes: ...


def purposes_of(certificate: x509.Certificate) -> frozenset[Purpose]:
    """The purposes a certificate's extended key usage grants (empty when it has none)."""
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return frozenset()
    found = (Purpose.from_oid(oid) for oid in eku)
    return frozenset(p for p in found if p is not None)


def usage_period(certificate: x509.Certificate) -> tuple[datetime, datetime] | None:
    """The private-key usage period (RFC 3280 §4.2.1.4, OID 2.5.29.16) as aware UTC datetimes.

    Signer certificates outlive the months their key signs; this extension says which months.
    None when the certificate has no such extension or leaves either end open.
    """
    try:
        period = certificate.extensions.get_extension_for_class(x509.PrivateKeyUsagePeriod).value
    except x509.ExtensionNotFound:
        return None
    if period.not_before is None or period.not_after is None:
        return None
    # cryptography returns naive datetimes for this extension; they are UTC (GeneralizedTime Z).
    return period.not_before.replace(tzinfo=UTC), period.not_after.replace(tzinfo=UTC)


def signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer`'s key made `certificate`'s signature (and the names match)."""
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def check_crl(crl: x509.CertificateRevocationList, root: x509.Certificate) -> None:
    """Raise `UntrustedSignerError` unless the CRL is issued and signed by the root."""
    public_key = root.public_key()
    if crl.issuer != root.subject or not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise UntrustedSignerError("the CRL is not issued by the pinned root")
    if not crl.is_signature_valid(public_key):
        raise UntrustedSignerError("the CRL's signature does not verify with the root key")


def check_signer(
    certificate: x509.Certificate,
    *,
    root: x509.Certificate,
    purpose: Purpose,
    now: datetime,
    crl: x509.CertificateRevocationList | None,
) -> None:
    """Raise unless `certificate` may sign documents of `purpose` at `now` (rules: module doc).

    Raises:
        UntrustedSignerError: not chained to the root, revoked, or outside its validity.
        WrongPurposeError: chained and valid, but not issued for this purpose.
    """
    if not signed_by(certificate, root):
        raise UntrustedSignerError("the signer certificate is not issued by the pinned root")
    if crl is not None:
        check_crl(crl, root)
        if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
            raise UntrustedSignerError(
                f"the signer certificate {kid(certificate).hex()} is revoked by the root"
            )
    if not root.not_valid_before_utc <= now <= root.not_valid_after_utc:
        raise UntrustedSignerError("the pinned root certificate is outside its validity")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise UntrustedSignerError(
            f"the signer certificate {kid(certificate).hex()} is outside its validity"
        )
    if _is_ca(certificate) or not _may_sign(certificate) or purpose not in purposes_of(certificate):
        raise WrongPurposeError(f"the signer is not authorised to sign {purpose.value} documents")


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _may_sign(certificate: x509.Certificate) -> bool:
    # A key usage that leaves out digitalSignature forbids signing documents (RFC 5280 4.2.1.3).
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(usage.digital_signature)


def hash_for(algorithm: Algorithm) -> hashes.SHA256 | hashes.SHA384:
    """The hash an algorithm signs with."""
    return hashes.SHA384() if algorithm is Algorithm.ES384 else hashes.SHA256()
