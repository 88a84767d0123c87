"""The same signing tests against every key store (encrypted files and PKCS#11)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from cardsys.errors import CertificateError, KeyStoreError, NotFoundError
from cardsys.pki import Algorithm, Purpose, Signer, kid
from keys import ca
from keys.ephemeral import EphemeralKeyStore, ephemeral_pki
from keys.store import Curve, KeyRef, KeyStore, checked_ref

NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)


def _root(store: KeyStore) -> Signer:
    ref = store.generate("root", Curve.P384)
    certificate = ca.create_root_certificate(
        store.public_key(ref),
        lambda data: store.sign(ref, data),
        issuer="cardsys-test",
        now=NOW,
        validity_years=25,
        development=True,
    )
    return store.signer(ref, certificate)


def _signer(store: KeyStore, root: Signer, purpose: Purpose = Purpose.CREDENTIAL) -> Signer:
    ref = store.generate(purpose.value, Curve.P256)
    certificate = ca.issue_signer_certificate(
        root, store.public_key(ref), purpose, now=NOW, usage_months=6, validity_years=12
    )
    return store.signer(ref, certificate)


@pytest.mark.parametrize(
    ("curve", "algorithm", "hash_type", "size"),
    [
        (Curve.P256, Algorithm.ES256, hashes.SHA256, 256),
        (Curve.P384, Algorithm.ES384, hashes.SHA384, 384),
    ],
)
def test_generated_keys_sign_der_ecdsa_with_the_curve_hash(
    key_store: KeyStore, curve: Curve, algorithm: Algorithm, hash_type: type, size: int
) -> None:
    ref = key_store.generate("test", curve)
    public_key = key_store.public_key(ref)
    assert public_key.curve.key_size == size
    signature = key_store.sign(ref, b"a document")
    r, s = decode_dss_signature(signature)  # DER, not raw r||s
    assert r > 0
    assert s > 0
    public_key.verify(signature, b"a document", ec.ECDSA(hash_type()))
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, b"another document", ec.ECDSA(hash_type()))
    assert curve.algorithm is algorithm


def test_signatures_are_randomised_and_all_verify(key_store: KeyStore) -> None:
    ref = key_store.generate("test", Curve.P256)
    signatures = {key_store.sign(ref, b"same data") for _ in range(5)}
    assert len(signatures) == 5
    for signature in signatures:
        key_store.public_key(ref).verify(signature, b"same data", ec.ECDSA(hashes.SHA256()))


def test_each_generate_makes_a_distinct_key(key_store: KeyStore) -> None:
    refs = [key_store.generate("credential", Curve.P256) for _ in range(3)]
    assert len(set(refs)) == 3
    assert all(ref.startswith("credential-") for ref in refs)
    keys = {key_store.public_key(ref).public_numbers() for ref in refs}
    assert len(keys) == 3
    assert all(key_store.contains(ref) for ref in refs)


def test_signer_binds_key_and_certificate(key_store: KeyStore) -> None:
    root = _root(key_store)
    signer = _signer(key_store, root)
    assert isinstance(signer, Signer)
    assert signer.kid == kid(signer.certificate)
    assert signer.algorithm is Algorithm.ES256
    assert root.algorithm is Algorithm.ES384
    data = b"credential payload"
    signer.certificate.public_key().verify(signer.sign(data), data, ec.ECDSA(hashes.SHA256()))
    root.certificate.public_key().verify(root.sign(data), data, ec.ECDSA(hashes.SHA384()))


def test_signer_refuses_a_certificate_for_another_key(key_store: KeyStore) -> None:
    root = _root(key_store)
    signer = _signer(key_store, root)
    other = key_store.generate("other", Curve.P256)
    with pytest.raises(CertificateError):
        key_store.signer(other, signer.certificate)


def test_the_whole_ca_works_on_the_store(key_store: KeyStore) -> None:
    root = _root(key_store)
    signer = _signer(key_store, root, Purpose.STATUS_LIST)
    crl = ca.create_crl(
        root,
        [ca.Revocation(signer.certificate.serial_number, NOW, ca.RevocationReason.SUPERSEDED)],
        number=7,
        now=NOW,
        next_update=ca.add_months(NOW, 1),
    )
    assert crl.is_signature_valid(root.certificate.public_key())
    signer.certificate.verify_directly_issued_by(root.certificate)


@pytest.mark.parametrize("ref", ["nosuchkey-000000000000", "root-ffffffffffff"])
def test_unknown_key_is_not_found(key_store: KeyStore, ref: str) -> None:
    assert not key_store.contains(KeyRef(ref))
    with pytest.raises(NotFoundError):
        key_store.public_key(KeyRef(ref))
    with pytest.raises(NotFoundError):
        key_store.sign(KeyRef(ref), b"x")


@pytest.mark.parametrize(
    "ref", ["../etc/passwd", "a/b", "", "UPPER", "-leading", "x" * 64, "nul\x00", "dot.dot"]
)
def test_malformed_references_are_refused(key_store: KeyStore, ref: str) -> None:
    with pytest.raises(KeyStoreError, match="invalid key reference"):
        key_store.public_key(KeyRef(ref))
    with pytest.raises(KeyStoreError, match="invalid key reference"):
        checked_ref(ref)


@pytest.mark.parametrize("label", ["Chip Document", "../../x", "", "ÄÖ"])
def test_labels_become_safe_references(key_store: KeyStore, label: str) -> None:
    ref = key_store.generate(label, Curve.P256)
    assert checked_ref(ref) == ref
    assert key_store.contains(ref)


class _FaultyStore(EphemeralKeyStore):
    """A store whose signing primitive goes wrong (a broken HSM, a flipped bit)."""

    def _sign_unchecked(self, ref: KeyRef, data: bytes, algorithm: Algorithm) -> bytes:
        return super()._sign_unchecked(ref, data + b"!", algorithm)


def test_a_signature_that_does_not_verify_never_leaves_the_store() -> None:
    store = _FaultyStore()
    ref = store.generate("credential", Curve.P256)
    with pytest.raises(KeyStoreError, match="does not verify"):
        store.sign(ref, b"data")


def test_ephemeral_pki_covers_every_purpose() -> None:
    pki = ephemeral_pki(NOW)
    assert set(pki.signers) == set(Purpose)
    assert len(pki.crl) == 0
