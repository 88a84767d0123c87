"""A test agency for the terminal side: an in-memory PKI, and helpers that issue trust lists,
status lists and credentials with it exactly as the issuing side does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from cardsys.formats import credential as fmt
from cardsys.formats.statuslist import Status, StatusList, sign_status_list
from cardsys.formats.trustlist import build_trust_list, parse_trust_list
from cardsys.pki import Purpose, Signer
from cardsys.wallet import Wallet
from keys.ephemeral import EphemeralPki, ephemeral_pki
from verify.trust import STATUS_DIR, TRUST_LIST_FILE, TerminalPolicy, TrustStore

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
BASE = "http://127.0.0.1:8000/public/status"
URI = f"{BASE}/0"
HOLDER = fmt.Holder(
    card_number="SS110000000015",
    surname="Wang",
    given_names="Fang",
    sex="F",
    birth_date=date(1985, 3, 14),
    region="110105",
    schemes=("URBAN-EMP",),
    photo_sha256=bytes(range(32)),
)


@dataclass
class Agency:
    """An agency in memory: its PKI and what it signs."""

    pki: EphemeralPki
    extra_signers: list[tuple[Purpose, Signer]] = field(default_factory=list)

    def signer(self, purpose: Purpose) -> Signer:
        return self.pki.signers[purpose]

    def trust_list(
        self,
        *,
        sequence: int = 1,
        issued_at: datetime = NOW - timedelta(hours=1),
        next_update: datetime = NOW + timedelta(days=7),
        pki: EphemeralPki | None = None,
    ) -> bytes:
        pki = pki or self.pki
        signers = [(p, s.certificate) for p, s in pki.signers.items()]
        signers += [(p, s.certificate) for p, s in self.extra_signers]
        return build_trust_list(
            sequence=sequence, issuer="test", issued_at=issued_at, next_update=next_update,
            root=pki.root.certificate, signers=signers, crl=pki.crl, signer=pki.root,
        )

    def status_list(
        self,
        entries: Mapping[int, Status] | None = None,
        *,
        uri: str = URI,
        iat: datetime = NOW - timedelta(minutes=5),
        exp: datetime = NOW + timedelta(days=1),
        signer: Signer | None = None,
        size: int = 1 << 12,
    ) -> bytes:
        statuses = StatusList(size)
        for index, value in (entries or {}).items():
            statuses.set(index, value)
        signer = signer or self.signer(Purpose.STATUS_LIST)
        return sign_status_list(
            statuses, uri=uri, iat=iat, exp=exp, ttl=timedelta(hours=1), sign=signer.sign,
            alg=signer.algorithm, kid=signer.kid,
        )

    def credential(
        self,
        device: ec.EllipticCurvePrivateKey | None,
        *,
        index: int = 5,
        holder: fmt.Holder = HOLDER,
        subject: str = "SS110000000023",
        issued_at: datetime = NOW - timedelta(hours=1),
        expires: datetime = NOW + timedelta(days=7),
        signer: Signer | None = None,
        uri: str = URI,
    ) -> bytes:
        signer = signer or self.signer(Purpose.CREDENTIAL)
        claims = fmt.Claims(
            issuer="cardsys-test", subject=subject, issued_at=issued_at, expires=expires,
            holder=holder, status=fmt.StatusRef(uri, index),
            device_key=device.public_key() if device is not None else None,
        )
        return fmt.issue_credential(claims, sign=signer.sign, alg=signer.algorithm,
                                    kid=signer.kid)

    def store(
        self,
        lists: Sequence[bytes] | None = None,
        *,
        now: datetime = NOW,
        policy: TerminalPolicy | None = None,
        trust_list: bytes | None = None,
    ) -> TrustStore:
        parsed = parse_trust_list(
            trust_list or self.trust_list(), root=self.pki.root.certificate, now=now,
            previous_sequence=None, grace=timedelta(days=3),
        )
        tokens = [(str(n), token) for n, token in enumerate(
            lists if lists is not None else [self.status_list()]
        )]
        return TrustStore.build(parsed, tokens, now=now, policy=policy)

    def write_directory(self, directory: Path, lists: Mapping[int, bytes] | None = None) -> Path:
        """A terminal directory (as `terminal init` + `sync` leave it)."""
        (directory / STATUS_DIR).mkdir(parents=True, exist_ok=True)
        (directory / "root.pem").write_bytes(self.pki.root.certificate.public_bytes(Encoding.PEM))
        (directory / TRUST_LIST_FILE).write_bytes(self.trust_list())
        for number, token in (lists if lists is not None else {0: self.status_list()}).items():
            (directory / STATUS_DIR / str(number)).write_bytes(token)
        return directory


@pytest.fixture(scope="session")
def agency() -> Agency:
    return Agency(ephemeral_pki(NOW - timedelta(days=30)))


@pytest.fixture(scope="session")
def other_agency() -> Agency:
    """Another PKI entirely: its keys are unknown to the first agency's terminals."""
    return Agency(ephemeral_pki(NOW - timedelta(days=30), issuer="impostor"))


@pytest.fixture(scope="session")
def device() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def wallet(agency: Agency, device: ec.EllipticCurvePrivateKey) -> Wallet:
    return Wallet(device, agency.credential(device))


@pytest.fixture(scope="session")
def store(agency: Agency) -> TrustStore:
    return agency.store()
