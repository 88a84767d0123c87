"""Where a QR verification's time goes beyond its signature checks (companion of verify_qr.py).

Same setup as bench/verify_qr.py (distinct credentials, device keys and presentations, warm
trust store). Each step of `verify_qr` is timed on its own over all the QRs, fastest of
ROUNDS passes (a busy machine inflates every pass; the fastest is the least disturbed), and
compared with the whole `verify_qr` and the raw signature checks measured the same way. The
steps do not add up exactly to the whole: what is left is the call overhead between them and
the cost of running the signature checks among other work (caches) rather than back to back.

    .venv/bin/python bench/verify_qr_breakdown.py [N]

Last line: `verify_qr_breakdown: static S us, presentation P us beyond the signatures`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.formats import base45, canonical, qrtext
from cardsys.pki import Purpose
from cardsys.wallet import Wallet, static_text
from verify import qr
from verify.replay import ReplayCache
from verify.result import Evidence

ROUNDS = 15
_spec = importlib.util.spec_from_file_location("verify_qr_bench", Path(__file__).with_name(
    "verify_qr.py"))
assert _spec is not None
assert _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
ECDSA = ec.ECDSA(hashes.SHA256())


def fastest(step: Callable[..., object], arguments: Sequence[tuple[Any, ...]]) -> float:
    """Microseconds per call: the fastest of ROUNDS passes over all the arguments."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for args in arguments:
            step(*args)
        best = min(best, time.perf_counter() - start)
    return best / len(arguments) * 1e6


def raw(checks: list[bench.RawCheck]) -> None:  # type: ignore[name-defined]
    for key, signature, data in checks:
        key.verify(signature, data, ECDSA)


def first_use(point: bytes, signature: bytes, data: bytes) -> None:
    """A device key loaded from its point and used once: what a presentation needs."""
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point).verify(
        signature, data, ECDSA)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    trust, pki = bench.trust_store()
    texts = {"static": [], "presentation": []}
    for index in range(count):
        device = ec.generate_private_key(ec.SECP256R1())
        wallet = Wallet(device, bench.credential(pki, index, device))
        texts["presentation"].append(wallet.presentation(bench.NOW + timedelta(seconds=index % 30)))
        texts["static"].append(static_text(bench.credential(pki, index, None)))
    moment = bench.NOW + timedelta(seconds=10)
    now = int(moment.timestamp())
    beyond = {}
    for kind, qrs in texts.items():
        bodies = [qrtext.decode(text, prefixes=qr.PREFIXES, max_body=4096)[1] for text in qrs]
        proofs = [canonical.read_presentation(body) for body in bodies] if kind != "static" else []
        creds = [canonical.read_credential(p.credential) for p in proofs] if proofs else [
            canonical.read_credential(body) for body in bodies]
        key = trust.signer(creds[0].kid, Purpose.CREDENTIAL, now=now)
        checks = [bench.raw_checks(text, trust) for text in qrs]
        rows: list[tuple[str, float]] = [
            ("prefix + Base45 (qrtext.decode)", fastest(
                lambda t: qrtext.decode(t, prefixes=qr.PREFIXES, max_body=4096),
                [(t,) for t in qrs])),
            ("  of which Base45 alone", fastest(base45.decode, [(t[5:],) for t in qrs])),
        ]
        if proofs:
            rows.append(("presentation envelope and proof", fastest(
                canonical.read_presentation, [(b,) for b in bodies])))
        rows += [
            ("credential envelope and claims", fastest(
                canonical.read_credential, [(p.credential,) for p in proofs] or [
                    (b,) for b in bodies])),
            ("signer, freshness, usage, times", fastest(
                lambda c: qr._signer_and_times(c, trust, now), [(c,) for c in creds])),
            ("raw r||s to DER", fastest(canonical.der_signature, [(c.signature,) for c in creds])
             * (2 if proofs else 1)),
            ("holder claim", fastest(canonical.read_holder,
                                     [(c.payload, c.holder_at) for c in creds])),
            ("status list lookup", fastest(lambda c: trust.status(
                c.status_uri, c.status_index, now=now), [(c,) for c in creds])),
        ]
        verified = fastest(
            lambda c, key=key: qr._verified(c, key, trust, moment, now, Evidence.STATIC),
            [(c,) for c in creds])
        rows.append(("holder + status + result object (_verified)", verified))
        if proofs:
            rows += [
                ("SHA-256 of the credential and of the proof payload", fastest(
                    lambda p: (hashlib.sha256(p.credential).digest(),
                               hashlib.sha256(p.proof_payload).digest()), [(p,) for p in proofs])),
                ("replay cache: seen + add (and a new cache)", fastest(lambda p: _replay(p, now),
                                                     [(p,) for p in proofs])),
            ]
            device = [(c.device_point, check[1][1], check[1][2]) for c, check in zip(
                creds, checks, strict=True)]
            loaded = fastest(lambda point: ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), point), [(d[0],) for d in device])
            fresh = fastest(first_use, device)
            warm_keys = [(check[1],) for check in checks]
            warm = fastest(lambda c: c[0].verify(c[1], c[2], ECDSA), warm_keys)
            rows += [
                ("device key: from_encoded_point", loaded),
                ("device key: first verify with a new key, beyond a warm one",
                 fresh - loaded - warm),
            ]
        whole = fastest(lambda t: qr.verify_qr(t, trust, now=moment), [(t,) for t in qrs])
        signatures = fastest(raw, [(c,) for c in checks])
        print(f"\n{kind}: verify_qr {whole:.1f} us, raw signatures {signatures:.1f} us, "
              f"beyond them {whole - signatures:.1f} us")
        for name, value in rows:
            print(f"  {value:6.2f} us  {name}")
        beyond[kind] = whole - signatures
    print(f"verify_qr_breakdown: static {beyond['static']:.1f} us, presentation "
          f"{beyond['presentation']:.1f} us beyond the signatures")


def _replay(presentation: canonical.PresentationFields, now: int) -> None:
    cache = ReplayCache()
    key = hashlib.sha256(presentation.proof_payload).digest()
    cache.seen(key, now)
    cache.add(key, expires=now + 91, now=now)


if __name__ == "__main__":
    main()
