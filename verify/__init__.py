"""The terminal side: verify QR codes and chip cards offline, from a synced trust directory.

Runs with no database and no web framework: it imports `cardsys.formats`, `cardsys.chip`,
`cardsys.pki`, `cardsys.config` and `cardsys.errors`, nothing of the issuing side.

    trust = TrustStore.load(Path("terminal"), now=now)
    card = verify_qr(scanned_text, trust, now=now, replay=cache)   # raises VerificationError
    verdict = check_qr(scanned_text, trust, now=now, replay=cache)  # never raises
    card = verify_chip(PcscTransport(0), trust, access=access_key, now=now)
"""

from __future__ import annotations

from verify.chip import check_chip, verify_chip
from verify.qr import check_qr, verify_qr
from verify.replay import ReplayCache
from verify.result import Evidence, StatusCheck, Verdict, VerifiedCard
from verify.trust import TerminalPolicy, TrustStore

__all__ = [
    "Evidence",
    "ReplayCache",
    "StatusCheck",
    "TerminalPolicy",
    "TrustStore",
    "Verdict",
    "VerifiedCard",
    "check_chip",
    "check_qr",
    "verify_chip",
    "verify_qr",
]
