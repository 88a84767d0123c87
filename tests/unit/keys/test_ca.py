"""The root CA profile, signer certificates, the CRL, and `check_signer` from an attacker's side."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardsys.errors import CertificateError, UntrustedSignerError, WrongPurposeError
from cardsys.pki import Purpose, check_signer, kid, purposes_of, usage_period
from keys import ca
from keys.ephemeral import EphemeralKeyStore, EphemeralPki, ephemeral_pki
from keys.store import Curve

NOW = datetime(2025, 3, 31, 12, 0, 30, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def pki() -> EphemeralPki:
    return ephemeral_pki(NOW)


def ext(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> Any:
    return certificate.extensions.get_extension_for_class(kind)


# --- the root ---------------------------------------------------------------------------------


def test_root_is_a_self_signed_p384_ca(pki: EphemeralPki) -> None:
    root = pki.root.certificate
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp384r1"
    assert isinstance(root.signature_hash_algorithm, hashes.SHA384)
    assert root.issuer == root.subject
    root.verify_directly_issued_by(root)
    constraints = ext(root, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    usage = ext(root, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = ext(root, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(root.public_key())


def test_root_validity_and_whole_seconds(pki: EphemeralPki) -> None:
    root = pki.root.certificate
    assert root.not_valid_before_utc == NOW.replace(microsecond=0) - ca.BACKDATE
    assert root.not_valid_after_utc == NOW.replace(year=2050, microsecond=0)


@pytest.mark.parametrize(
    ("development", "marked"),
    [(True, True), (False, False)],
)
def test_development_roots_are_marked_in_the_subject(development: bool, marked: bool) -> None:
    store = EphemeralKeyStore()
    ref = store.generate("root", Curve.P384)
    root = ca.create_root_certificate(
        store.public_key(ref),
        lambda data: store.sign(ref, data),
        issuer="National Agency",
        now=NOW,
        validity_years=20,
        development=development,
    )
    organisation = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert organisation.startswith("National Agency")
    assert ca.is_development(root) is marked
    assert ("(DEVELOPMENT)" in organisation) is marked


def test_root_refuses_a_sign_function_of_another_key() -> None:
    store = EphemeralKeyStore()
    ref, other = store.generate("root", Curve.P384), store.generate("other", Curve.P384)
    with pytest.raises(CertificateError):
        ca.create_root_certificate(
            store.public_key(ref),
            lambda data: store.sign(other, data),
            issuer="x",
            now=NOW,
            validity_years=20,
            development=True,
        )


def test_root_refuses_naive_times_and_empty_issuer() -> None:
    store = EphemeralKeyStore()
    ref = store.generate("root", Curve.P384)
    for issuer, now in (("x", NOW.replace(tzinfo=None)), ("  ", NOW)):
        with pytest.raises(CertificateError):
            ca.create_root_certificate(
                store.public_key(ref),
                lambda data: store.sign(ref, data),
                issuer=issuer,
                now=now,
                validity_years=20,
                development=True,
            )


# --- signers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", list(Purpose))
def test_signer_profile(pki: EphemeralPki, purpose: Purpose) -> None:
    certificate = pki.signers[purpose].certificate
    root = pki.root.certificate
    certificate.verify_directly_issued_by(root)
    assert certificate.public_key().curve.name == "secp256r1"
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA384)
    assert purposes_of(certificate) == {purpose}
    assert list(ext(certificate, x509.ExtendedKeyUsage).value) == [purpose.oid]
    assert not ext(certificate, x509.BasicConstraints).value.ca
    usage = ext(certificate, x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_cert_sign
    assert not usage.crl_sign
    aki = ext(certificate, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(root, x509.SubjectKeyIdentifier).value.digest
    period = ext(certificate, x509.PrivateKeyUsagePeriod)
    assert period.critical is False
    assert period.oid.dotted_string == "2.5.29.16"
    assert certificate.issuer == root.subject
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) == (
        root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )


def test_usage_period_covers_signing_months_and_certificate_outlives_it(pki: EphemeralPki) -> None:
    certificate = pki.signers[Purpose.CREDENTIAL].certificate
    period = usage_period(certificate)
    assert period is not None
    start, end = period
    assert start == NOW.replace(microsecond=0)
    assert end == datetime(2025, 9, 30, 12, 0, 30, tzinfo=UTC)
    assert certificate.not_valid_after_utc == datetime(2037, 3, 31, 12, 0, 30, tzinfo=UTC)
    assert certificate.not_valid_after_utc > end


def test_signer_validity_never_exceeds_the_root(pki: EphemeralPki) -> None:
    store = pki.store
    ref = store.generate("long", Curve.P256)
    certificate = ca.issue_signer_certificate(
        pki.root,
        store.public_key(ref),
        Purpose.AUDIT,
        now=NOW,
        usage_months=400,
        validity_years=60,
    )
    assert certificate.not_valid_after_utc == pki.root.certificate.not_valid_after_utc
    period = usage_period(certificate)
    assert period is not None
    assert period[1] == pki.root.certificate.not_valid_after_utc


def test_signer_cannot_be_issued_outside_the_root_validity(pki: EphemeralPki) -> None:
    ref = pki.store.generate("late", Curve.P256)
    with pytest.raises(CertificateError):
        ca.issue_signer_certificate(
            pki.root,
            pki.store.public_key(ref),
            Purpose.CREDENTIAL,
            now=NOW + timedelta(days=365 * 30),
            usage_months=6,
            validity_years=12,
        )


@pytest.mark.parametrize(("months", "years"), [(0, 12), (6, 0), (-1, 12)])
def test_signer_periods_must_be_positive(pki: EphemeralPki, months: int, years: int) -> None:
    ref = pki.store.generate("bad", Curve.P256)
    with pytest.raises(CertificateError):
        ca.issue_signer_certificate(
            pki.root,
            pki.store.public_key(ref),
            Purpose.CREDENTIAL,
            now=NOW,
            usage_months=months,
            validity_years=years,
        )


def test_every_signer_has_its_own_serial_and_kid(pki: EphemeralPki) -> None:
    certificates = [signer.certificate for signer in pki.signers.values()]
    assert len({c.serial_number for c in certificates}) == len(certificates)
    assert len({kid(c) for c in certificates}) == len(certificates)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2025, 1, 31, tzinfo=UTC), 1, datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 1, 31, tzinfo=UTC), 1, datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2025, 8, 31, tzinfo=UTC), 6, datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2025, 12, 15, tzinfo=UTC), 1, datetime(2026, 1, 15, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), 12, datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2025, 3, 31, tzinfo=UTC), 0, datetime(2025, 3, 31, tzinfo=UTC)),
        (datetime(2025, 3, 31, tzinfo=UTC), 300, datetime(2050, 3, 31, tzinfo=UTC)),
    ],
)
def test_add_months(start: datetime, months: int, expected: datetime) -> None:
    assert ca.add_months(start, months) == expected


# --- the CRL ----------------------------------------------------------------------------------


def test_crl_lists_revoked_signers_with_number_and_reason(pki: EphemeralPki) -> None:
    victim = pki.signers[Purpose.CREDENTIAL]
    later = pki.revoke(victim, reason=ca.RevocationReason.KEY_COMPROMISE, now=NOW)
    crl = later.crl
    assert crl.is_signature_valid(pki.root.certificate.public_key())
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA384)
    assert crl.issuer == pki.root.certificate.subject
    assert ca.crl_number(crl) == ca.crl_number(pki.crl) + 1 == 2
    entry = crl.get_revoked_certificate_by_serial_number(victim.certificate.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert crl.next_update_utc == NOW.replace(microsecond=0) + timedelta(days=30)
    assert len(pki.crl) == 0


@pytest.mark.parametrize(
    ("number", "next_update"),
    [(0, NOW + timedelta(1)), (-5, NOW + timedelta(1)), (3, NOW), (3, NOW - timedelta(1))],
)
def test_crl_refuses_bad_numbers_and_next_updates(
    pki: EphemeralPki, number: int, next_update: datetime
) -> None:
    with pytest.raises(CertificateError):
        ca.create_crl(pki.root, (), number=number, now=NOW, next_update=next_update)


@pytest.mark.parametrize("reason", list(ca.RevocationReason))
def test_every_revocation_reason_maps_to_a_crl_reason(reason: ca.RevocationReason) -> None:
    assert isinstance(reason.flag, x509.ReasonFlags)


# --- check_signer: what a terminal relies on -------------------------------------------------


def test_check_signer_accepts_a_good_signer(pki: EphemeralPki) -> None:
    signer = pki.signers[Purpose.CREDENTIAL].certificate
    check_signer(
        signer, root=pki.root.certificate, purpose=Purpose.CREDENTIAL, now=NOW, crl=pki.crl
    )


@pytest.mark.parametrize(
    ("holder", "asked"),
    [
        (Purpose.STATUS_LIST, Purpose.CREDENTIAL),
        (Purpose.CREDENTIAL, Purpose.CHIP_DOCUMENT),
        (Purpose.AUDIT, Purpose.TRUST_LIST),
        (Purpose.TRUST_LIST, Purpose.STATUS_LIST),
    ],
)
def test_check_signer_refuses_the_wrong_purpose(
    pki: EphemeralPki, holder: Purpose, asked: Purpose
) -> None:
    with pytest.raises(WrongPurposeError):
        check_signer(
            pki.signers[holder].certificate,
            root=pki.root.certificate,
            purpose=asked,
            now=NOW,
            crl=pki.crl,
        )


@pytest.mark.parametrize(
    "moment",
    [
        NOW - timedelta(days=1),  # before the certificate (and the root) existed
        datetime(2037, 4, 1, tzinfo=UTC),  # after the signer certificate expired
        datetime(2051, 1, 1, tzinfo=UTC),  # after the root expired
    ],
)
def test_check_signer_refuses_outside_validity(pki: EphemeralPki, moment: datetime) -> None:
    with pytest.raises(UntrustedSignerError):
        check_signer(
            pki.signers[Purpose.CREDENTIAL].certificate,
            root=pki.root.certificate,
            purpose=Purpose.CREDENTIAL,
            now=moment,
            crl=None,
        )


def test_check_signer_refuses_a_revoked_signer(pki: EphemeralPki) -> None:
    victim = pki.signers[Purpose.CREDENTIAL]
    crl = pki.revoke(victim).crl
    with pytest.raises(UntrustedSignerError, match="revoked"):
        check_signer(
            victim.certificate,
            root=pki.root.certificate,
            purpose=Purpose.CREDENTIAL,
            now=NOW,
            crl=crl,
        )


def test_check_signer_refuses_a_signer_of_another_root(pki: EphemeralPki) -> None:
    stranger = ephemeral_pki(NOW, [Purpose.CREDENTIAL], issuer="cardsys-test")
    # Same subject name, different key: only the signature tells them apart.
    assert stranger.root.certificate.subject == pki.root.certificate.subject
    with pytest.raises(UntrustedSignerError):
        check_signer(
            stranger.signers[Purpose.CREDENTIAL].certificate,
            root=pki.root.certificate,
            purpose=Purpose.CREDENTIAL,
            now=NOW,
            crl=pki.crl,
        )


def test_check_signer_refuses_a_crl_signed_by_another_key(pki: EphemeralPki) -> None:
    stranger = ephemeral_pki(NOW, [], issuer="cardsys-test")
    assert stranger.crl.issuer == pki.root.certificate.subject
    with pytest.raises(UntrustedSignerError, match="CRL"):
        check_signer(
            pki.signers[Purpose.CREDENTIAL].certificate,
            root=pki.root.certificate,
            purpose=Purpose.CREDENTIAL,
            now=NOW,
            crl=stranger.crl,
        )


def test_check_signer_refuses_the_root_itself(pki: EphemeralPki) -> None:
    with pytest.raises(WrongPurposeError):
        check_signer(
            pki.root.certificate,
            root=pki.root.certificate,
            purpose=Purpose.TRUST_LIST,
            now=NOW,
            crl=pki.crl,
        )


def _forged(
    pki, *, eku: list[x509.ObjectIdentifier], ca_flag: bool, sign_usage: bool
) -> x509.Certificate:
    """A certificate the real root key signs, with a profile our CA would never issue."""
    key = ec.generate_private_key(ec.SECP256R1())
    root = pki.root.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=forged"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(
            x509.KeyUsage(sign_usage, False, False, False, False, False, False, False, False),
            critical=True,
        )
    )
    return ca._signed_certificate(builder, pki.root.sign, pki.root.algorithm, root.public_key())


@pytest.mark.parametrize(
    ("eku", "ca_flag", "sign_usage"),
    [
        ([ExtendedKeyUsageOID.CODE_SIGNING], False, True),  # someone else's EKU
        ([Purpose.CREDENTIAL.oid], True, True),  # a CA cannot sign documents
        ([Purpose.CREDENTIAL.oid], False, False),  # key usage forbids signatures
    ],
)
def test_check_signer_refuses_odd_profiles(
    pki: EphemeralPki, eku: list[x509.ObjectIdentifier], ca_flag: bool, sign_usage: bool
) -> None:
    certificate = _forged(pki, eku=eku, ca_flag=ca_flag, sign_usage=sign_usage)
    with pytest.raises(WrongPurposeError):
        check_signer(
            certificate,
            root=pki.root.certificate,
            purpose=Purpose.CREDENTIAL,
            now=NOW,
            crl=pki.crl,
        )


def test_forged_profile_helper_is_otherwise_acceptable(pki: EphemeralPki) -> None:
    # Guards the test above: with a sane profile the same construction passes.
    certificate = _forged(pki, eku=[Purpose.CREDENTIAL.oid], ca_flag=False, sign_usage=True)
    check_signer(
        certificate, root=pki.root.certificate, purpose=Purpose.CREDENTIAL, now=NOW, crl=pki.crl
    )
