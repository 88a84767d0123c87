"""The root certificate authority: the root certificate, signer certificates and the CRL.

Every function here is a pure builder: keys are not created or stored here (that is the key
store's job), time is the `now=` parameter, and signing goes through a callable or a
`cardsys.pki.Signer`, so the root key may live in a file or inside an HSM.

Profile (what a verifier may rely on):

* root: ECDSA P-384, self-signed, BasicConstraints CA (path length 0), KeyUsage keyCertSign and
  cRLSign, subject and authority key identifiers; a development root says so in its subject;
* signer: ECDSA P-256, issued by the root, exactly one extended key usage (its `Purpose`),
  KeyUsage digitalSignature, not a CA, a PrivateKeyUsagePeriod (OID 2.5.29.16) covering the
  months the key signs, and a validity long enough to outlive everything it signed;
* CRL: issued by the root with an increasing crlNumber and a nextUpdate.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import core as asn1_core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cardsys.errors import CertificateError
from cardsys.pki import (
    Algorithm,
    Purpose,
    RevocationReason,
    Signer,
    algorithm_for_key,
    hash_for,
    kid,
)

#: Certificates start this long before the ceremony, so a terminal whose clock runs a little
#: behind does not see a freshly issued signer as "not yet valid".
BACKDATE = timedelta(hours=1)

#: Marks a development PKI in every subject it names (never trust such a root in production).
DEVELOPMENT_MARK = "(DEVELOPMENT)"

SignFunction = Callable[[bytes], bytes]

__all__ = [
    "BACKDATE",
    "DEVELOPMENT_MARK",
    "Revocation",
    "RevocationReason",
    "add_months",
    "create_crl",
    "create_root_certificate",
    "crl_number",
    "describe",
    "is_development",
    "issue_signer_certificate",
    "root_name",
]


@dataclass(frozen=True)
class Revocation:
    """One entry of the root's CRL."""

    serial_number: int
    revoked_at: datetime
    reason: RevocationReason


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus whole calendar months, the day clamped to the target month's length."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def root_name(issuer: str, *, development: bool) -> x509.Name:
    """The root's subject: the agency's name, marked when the PKI is for development."""
    if not issuer.strip():
        raise CertificateError("the issuer name must not be empty")
    organisation = f"{issuer} {DEVELOPMENT_MARK}" if development else issuer
    common_name = f"{issuer} Root CA" + (f" {DEVELOPMENT_MARK}" if development else "")
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def is_development(certificate: x509.Certificate) -> bool:
    """Whether a certificate's subject carries the development mark."""
    return DEVELOPMENT_MARK in certificate.subject.rfc4514_string()


def create_root_certificate(
    public_key: ec.EllipticCurvePublicKey,
    sign: SignFunction,
    *,
    issuer: str,
    now: datetime,
    validity_years: int,
    development: bool,
) -> x509.Certificate:
    """A self-signed root certificate for `public_key`, signed through `sign`.

    `sign` returns a DER ECDSA signature with the hash of the key's algorithm (SHA-384 for P-384).

    Raises:
        CertificateError: the key is not P-256/P-384, or `sign` does not match `public_key`.
    """
    if validity_years <= 0:
        raise CertificateError("the root validity must be a positive number of years")
    name = root_name(issuer, development=development)
    start = _second(now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - BACKDATE)
        .not_valid_after(add_months(start, 12 * validity_years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
    )
    return _signed_certificate(builder, sign, algorithm_for_key(public_key), public_key)


def issue_signer_certificate(
    root: Signer,
    public_key: ec.EllipticCurvePublicKey,
    purpose: Purpose,
    *,
    now: datetime,
    usage_months: int,
    validity_years: int,
) -> x509.Certificate:
    """A purpose-bound signer certificate for `public_key`, issued by the root.

    The key signs for `usage_months` from `now` (PrivateKeyUsagePeriod); the certificate stays
    valid `validity_years` (never past the root's own end).

    Raises:
        CertificateError: bad periods, or a `public_key` that is not P-256/P-384.
    """
    if usage_months <= 0 or validity_years <= 0:
        raise CertificateError("usage months and validity years must be positive")
    algorithm_for_key(public_key)
    root_certificate = root.certificate
    start = _second(now)
    end = min(add_months(start, 12 * validity_years), root_certificate.not_valid_after_utc)
    usage_end = min(add_months(start, usage_months), end)
    if not root_certificate.not_valid_before_utc <= start < end:
        raise CertificateError("the root certificate is not valid at the time of issue")
    subject = x509.Name(
        [
            *root_certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"{purpose.value} signer {start:%Y-%m-%d %H%M%S}"
            ),
        ]
    )
    root_key_id = root_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - BACKDATE)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose.oid]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_key_id.value),
            critical=False,
        )
        .add_extension(x509.PrivateKeyUsagePeriod(start, usage_end), critical=False)
    )
    return _signed_certificate(builder, root.sign, root.algorithm, _root_key(root))


def create_crl(
    root: Signer,
    revoked: Sequence[Revocation],
    *,
    number: int,
    now: datetime,
    next_update: datetime,
) -> x509.CertificateRevocationList:
    """The root's CRL listing `revoked`, numbered `number` (must grow with every issue).

    Raises:
        CertificateError: a non-positive number or a next update not after `now`.
    """
    if number <= 0:
        raise CertificateError("the CRL number must be positive")
    start = _second(now)
    if _second(next_update) <= start:
        raise CertificateError("the CRL's next update must lie after its issue time")
    root_key_id = root.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.certificate.subject)
        .last_update(start)
        .next_update(_second(next_update))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_key_id.value),
            critical=False,
        )
    )
    for entry in sorted(revoked, key=lambda item: item.serial_number):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial_number)
            .revocation_date(_second(entry.revoked_at))
            .add_extension(x509.CRLReason(entry.reason.flag), critical=False)
            .build()
        )
    draft = builder.sign(_placeholder_key(), hash_for(root.algorithm))
    signature = root.sign(draft.tbs_certlist_bytes)
    document = asn1_crl.CertificateList.load(draft.public_bytes(Encoding.DER))
    document["signature"] = asn1_core.OctetBitString(signature)
    crl = x509.load_der_x509_crl(document.dump(force=False))
    if crl.tbs_certlist_bytes != draft.tbs_certlist_bytes or not crl.is_signature_valid(
        _root_key(root)
    ):
        raise CertificateError("the root key's signature on the CRL does not verify")
    return crl


def crl_number(crl: x509.CertificateRevocationList) -> int:
    """The CRL's crlNumber extension (0 when it has none)."""
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def describe(certificate: x509.Certificate) -> str:
    """One line naming a certificate for logs and listings (never anything secret)."""
    return f"kid={kid(certificate).hex()} subject={certificate.subject.rfc4514_string()}"


# --- signing through an external key -----------------------------------------------------


# cryptography's builders sign only with key objects in memory. To sign with a key in an HSM we
# let the builder sign with a throwaway key (the hash fixes the signatureAlgorithm field, which
# is the same for any ECDSA key), take the to-be-signed bytes, have the real key sign them and
# put that signature in place of the throwaway one. The result is checked before it is returned.
def _placeholder_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _signed_certificate(
    builder: x509.CertificateBuilder,
    sign: SignFunction,
    algorithm: Algorithm,
    issuer_key: ec.EllipticCurvePublicKey,
) -> x509.Certificate:
    draft = builder.sign(_placeholder_key(), hash_for(algorithm))
    signature = sign(draft.tbs_certificate_bytes)
    document = asn1_x509.Certificate.load(draft.public_bytes(Encoding.DER))
    document["signature_value"] = asn1_core.OctetBitString(signature)
    certificate = x509.load_der_x509_certificate(document.dump(force=False))
    if certificate.tbs_certificate_bytes != draft.tbs_certificate_bytes:
        raise CertificateError("re-signing changed the certificate body")
    try:
        issuer_key.verify(
            certificate.signature,
            certificate.tbs_certificate_bytes,
            ec.ECDSA(hash_for(algorithm)),
        )
    except InvalidSignature as exc:
        raise CertificateError("the issuing key's signature does not verify") from exc
    return certificate


def _root_key(root: Signer) -> ec.EllipticCurvePublicKey:
    key = root.certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateError("the root key is not an ECDSA key")
    return key


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _second(moment: datetime) -> datetime:
    # X.509 times carry whole seconds; aware UTC in, aware UTC out.
    if moment.tzinfo is None:
        raise CertificateError("times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)
