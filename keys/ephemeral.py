"""An in-memory key store and a complete throwaway PKI, for tests and benchmarks only.

Nothing here is ever persisted: the keys vanish with the process. `open_key_store` never returns
this store, so production code cannot end up on it by configuration. Other parts of cardsys use
`ephemeral_pki()` in their tests to get a root, signers of every purpose and a CRL in one call,
built by the same `keys.ca` functions the ceremony uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.config import KeyStoreKind
from cardsys.errors import NotFoundError
from cardsys.pki import Algorithm, Purpose, hash_for
from keys import ca
from keys.store import Curve, KeyRef, KeyStore, StoreSigner, checked_ref, new_ref


class EphemeralKeyStore(KeyStore):
    """Keys held in memory for the life of the object (tests and benchmarks only)."""

    kind = KeyStoreKind.FILE  # never chosen by settings; the nearest kind for registries

    def __init__(self) -> None:
        self._keys: dict[KeyRef, ec.EllipticCurvePrivateKey] = {}

    def __repr__(self) -> str:
        return f"EphemeralKeyStore({len(self._keys)} keys)"

    def generate(self, label: str, curve: Curve) -> KeyRef:
        ref = new_ref(label)
        self._keys[ref] = ec.generate_private_key(curve.ec_curve)
        return ref

    def contains(self, ref: KeyRef) -> bool:
        return checked_ref(ref) in self._keys

    def public_key(self, ref: KeyRef) -> ec.EllipticCurvePublicKey:
        return self._private(ref).public_key()

    def _sign_unchecked(self, ref: KeyRef, data: bytes, algorithm: Algorithm) -> bytes:
        return self._private(ref).sign(data, ec.ECDSA(hash_for(algorithm)))

    def _private(self, ref: KeyRef) -> ec.EllipticCurvePrivateKey:
        try:
            return self._keys[checked_ref(ref)]
        except KeyError:
            raise NotFoundError(f"no key {ref} in the ephemeral store") from None


@dataclass(frozen=True)
class EphemeralPki:
    """A root, one signer per requested purpose and the root's CRL."""

    store: EphemeralKeyStore
    root: StoreSigner
    signers: Mapping[Purpose, StoreSigner]
    crl: x509.CertificateRevocationList
    now: datetime
    revoked: tuple[ca.Revocation, ...] = field(default=())

    def issue(
        self, purpose: Purpose, *, now: datetime | None = None, usage_months: int = 6
    ) -> StoreSigner:
        """Another signer of `purpose` issued by this PKI's root."""
        return _issue(self.store, self.root, purpose, now or self.now, usage_months)

    def revoke(
        self,
        *signers: StoreSigner,
        reason: ca.RevocationReason = ca.RevocationReason.KEY_COMPROMISE,
        now: datetime | None = None,
    ) -> EphemeralPki:
        """A copy whose CRL (numbered one higher) also lists `signers`."""
        moment = now or self.now
        revoked = self.revoked + tuple(
            ca.Revocation(s.certificate.serial_number, moment, reason) for s in signers
        )
        crl = ca.create_crl(
            self.root,
            revoked,
            number=ca.crl_number(self.crl) + 1,
            now=moment,
            next_update=moment + timedelta(days=30),
        )
        return EphemeralPki(self.store, self.root, self.signers, crl, self.now, revoked)


def ephemeral_pki(
    now: datetime,
    purposes: Iterable[Purpose] = tuple(Purpose),
    *,
    issuer: str = "cardsys-test",
    root_curve: Curve = Curve.P384,
) -> EphemeralPki:
    """A fresh development PKI in memory: root, one signer per purpose, an empty CRL."""
    store = EphemeralKeyStore()
    root_ref = store.generate("root", root_curve)
    certificate = ca.create_root_certificate(
        store.public_key(root_ref),
        lambda data: store.sign(root_ref, data),
        issuer=issuer,
        now=now,
        validity_years=25,
        development=True,
    )
    root = store.signer(root_ref, certificate)
    signers = {purpose: _issue(store, root, purpose, now, 6) for purpose in purposes}
    crl = ca.create_crl(root, (), number=1, now=now, next_update=now + timedelta(days=30))
    return EphemeralPki(store, root, signers, crl, now)


def _issue(
    store: EphemeralKeyStore,
    root: StoreSigner,
    purpose: Purpose,
    now: datetime,
    usage_months: int,
) -> StoreSigner:
    ref = store.generate(purpose.value, Curve.P256)
    certificate = ca.issue_signer_certificate(
        root,
        store.public_key(ref),
        purpose,
        now=now,
        usage_months=usage_months,
        validity_years=12,
    )
    return store.signer(ref, certificate)
