"""How many QR codes a terminal verifies per second on one core, against the signature limit.

Setup: an in-memory PKI, a warm trust store (trust list and a 2^20-entry status list loaded),
and N credentials, each from its own device key with its own holder data and status index,
each shown as one presentation: every presentation is distinct and from a distinct
credential, so no cache can skip a signature. A fresh replay cache per round keeps the full
path (including the replay check) on every verification.

The limit is 1 / (time of the raw ECDSA P-256 verifications a QR needs, with `cryptography`,
on the same data, keys already loaded): two for a presentation (agency signature over the
credential, device signature over the proof), one for a static QR. Both are measured in the
same run, alternating chunk by chunk, and each chunk's fastest time on each side is kept, so
a busy machine affects both sides alike.

    .venv/bin/python bench/verify_qr.py [N]

Last two lines:
    static_qr: N/s, ratio R to the signature limit      (target R >= 0.85)
    verify_qr: N/s, ratio R to the signature limit      (target R >= 0.80)
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from cardsys.formats import credential as fmt
from cardsys.formats import qrtext
from cardsys.formats.cose import sig_structure
from cardsys.formats.statuslist import StatusList, sign_status_list
from cardsys.formats.trustlist import build_trust_list, parse_trust_list
from cardsys.pki import Purpose
from cardsys.wallet import Wallet, static_text
from keys.ephemeral import ephemeral_pki
from verify.qr import verify_qr
from verify.replay import ReplayCache
from verify.trust import TrustStore

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
URI = "http://127.0.0.1:8000/public/status/0"
ROUNDS = 9
CHUNK = 50
RawCheck = tuple[ec.EllipticCurvePublicKey, bytes, bytes]


def trust_store() -> tuple[TrustStore, object]:
    pki = ephemeral_pki(NOW - timedelta(days=1))
    document = build_trust_list(
        sequence=1,
        issuer="bench",
        issued_at=NOW - timedelta(hours=1),
        next_update=NOW + timedelta(days=7),
        root=pki.root.certificate,
        signers=[(purpose, signer.certificate) for purpose, signer in pki.signers.items()],
        crl=pki.crl,
        signer=pki.root,
    )
    trust_list = parse_trust_list(
        document, root=pki.root.certificate, now=NOW, previous_sequence=None,
        grace=timedelta(days=3),
    )
    status_signer = pki.signers[Purpose.STATUS_LIST]
    statuses = StatusList(1 << 20)
    token = sign_status_list(
        statuses, uri=URI, iat=NOW - timedelta(minutes=5), exp=NOW + timedelta(days=1),
        ttl=timedelta(hours=1), sign=status_signer.sign, alg=status_signer.algorithm,
        kid=status_signer.kid,
    )
    return TrustStore.build(trust_list, [("0", token)], now=NOW), pki


def credential(pki: object, index: int, device: ec.EllipticCurvePrivateKey | None) -> bytes:
    signer = pki.signers[Purpose.CREDENTIAL]  # type: ignore[attr-defined]
    holder = fmt.Holder(
        card_number=f"SS11{index:09d}0", surname=f"Surname{index}", given_names="Given Names",
        sex="F", birth_date=date(1980, 1, 1) + timedelta(days=index), region="110105",
        schemes=("URBAN-EMP",), photo_sha256=index.to_bytes(32, "big"),
    )
    claims = fmt.Claims(
        issuer="cardsys-bench", subject=f"SS11{index + 500000:09d}0",
        issued_at=NOW - timedelta(hours=1), expires=NOW + timedelta(days=7), holder=holder,
        status=fmt.StatusRef(URI, index),
        device_key=device.public_key() if device is not None else None,
    )
    return fmt.issue_credential(claims, sign=signer.sign, alg=signer.algorithm, kid=signer.kid)


def raw_checks(text: str, trust: TrustStore) -> list[RawCheck]:
    """The signatures a QR carries, as (key, DER signature, signed bytes), pre-loaded."""
    prefix, body = qrtext.decode(text, prefixes=("SSP1:", "SSC1:"), max_body=4096)
    presentation = fmt.decode_presentation(body) if prefix == "SSP1:" else None
    parsed = fmt.decode_credential(presentation.credential if presentation else body)
    issuer_key = trust.signer(parsed.kid, Purpose.CREDENTIAL, now=int(NOW.timestamp())).public_key
    protected, payload = parsed.message.protected_bytes, parsed.payload
    checks = [(issuer_key, _der(parsed.signed[1]), sig_structure(protected, b"", payload))]
    if presentation is not None:
        checks.append((parsed.device_key(), _der(presentation.proof_signature),
                       sig_structure(fmt.PROOF_PROTECTED, b"", presentation.proof_payload)))
    return checks


def _der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def measure(texts: list[str], trust: TrustStore, *, replay: bool) -> tuple[float, float]:
    """(seconds per QR through verify_qr, seconds per QR of raw signature checks).

    The QRs are timed in chunks of CHUNK, each chunk through verify_qr and then through the
    raw checks, ROUNDS times over; each chunk keeps its fastest time on each side. Other load
    on the machine then inflates neither side (and never only one of them).
    """
    checks = [raw_checks(text, trust) for text in texts]
    ecdsa = ec.ECDSA(hashes.SHA256())
    moment = NOW + timedelta(seconds=10)

    def verify_chunk(chunk: list[str]) -> None:
        cache = ReplayCache() if replay else None
        for text in chunk:
            verify_qr(text, trust, now=moment, replay=cache)

    def raw_chunk(groups: list[list[RawCheck]]) -> None:
        for group in groups:
            for key, signature, data in group:
                key.verify(signature, data, ecdsa)

    verify_chunk(texts)  # fail loudly before timing if anything is wrong
    starts = range(0, len(texts), CHUNK)
    best_verify = [float("inf")] * len(starts)
    best_raw = [float("inf")] * len(starts)
    for _ in range(ROUNDS):
        gc.collect()
        for n, start in enumerate(starts):
            best_verify[n] = min(best_verify[n], timed(verify_chunk, texts[start : start + CHUNK]))
            best_raw[n] = min(best_raw[n], timed(raw_chunk, checks[start : start + CHUNK]))
    return sum(best_verify) / len(texts), sum(best_raw) / len(texts)


def timed(run: Callable[[Any], None], argument: Any) -> float:
    start = time.perf_counter()
    run(argument)
    return time.perf_counter() - start


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    trust, pki = trust_store()
    presentations = []
    statics = []
    for index in range(count):
        device = ec.generate_private_key(ec.SECP256R1())
        wallet = Wallet(device, credential(pki, index, device))
        presentations.append(wallet.presentation(NOW + timedelta(seconds=index % 30)))
        statics.append(static_text(credential(pki, index, None)))
    print(f"{count} distinct credentials, {sum(map(len, presentations)) // count} characters "
          "per presentation QR")
    static_time, static_raw = measure(statics, trust, replay=False)
    verify_time, verify_raw = measure(presentations, trust, replay=True)
    print(f"raw ECDSA P-256 verify: {static_raw * 1e6:.1f} us (static), "
          f"{verify_raw * 1e6:.1f} us for the two of a presentation")
    print(f"static_qr: {1 / static_time:.0f}/s, ratio {static_raw / static_time:.2f} "
          "to the signature limit")
    print(f"verify_qr: {1 / verify_time:.0f}/s, ratio {verify_raw / verify_time:.2f} "
          "to the signature limit")


if __name__ == "__main__":
    main()
