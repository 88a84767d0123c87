"""What a counter clerk reads for each verdict: the reason codes of `verify` in words (zh/en).

`verify.Verdict.reason` is "valid" or the `code` of the `VerificationError` that refused the
card; a code not listed here (a new check added later) still shows, with a general sentence.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l  # type: ignore[import-untyped]

from verify.result import Evidence, Verdict

REASONS: dict[str, Any] = {
    "valid": _l("The card is valid."),
    "bad_encoding": _l("This is not a readable card code. Scan it again."),
    "unknown_key": _l("The code was signed by a key this terminal does not know."),
    "bad_signature": _l("The signature does not verify: the code was altered or forged."),
    "wrong_purpose": _l("The code was signed by a key not meant for cards."),
    "untrusted_signer": _l("The signer of this code is no longer trusted."),
    "expired": _l("The card's credential has expired: the holder must go online to refresh "
                  "it."),
    "not_yet_valid": _l("The credential is not valid yet: check the clocks."),
    "revoked": _l("The card is revoked."),
    "suspended": _l("The card is suspended."),
    "status_unknown": _l("The card's status cannot be checked: sync the terminal."),
    "stale_proof": _l("The code is not live: ask the holder to show the current code."),
    "replayed": _l("This code was already shown here: ask for the current code."),
    "holder_binding": _l("The code does not come from the phone the card belongs to."),
    "bad_trust_list": _l("The terminal's trust list is missing or invalid: sync the "
                         "terminal."),
    "stale_trust": _l("The terminal's trust list is too old: sync the terminal."),
    "trust_list_rollback": _l("An older trust list was refused: contact the agency."),
    "chip_clone": _l("The chip failed its authenticity check: possibly a cloned card."),
    "dg_hash_mismatch": _l("The chip's data was altered."),
    "dg_missing": _l("The chip's data is incomplete."),
}
GENERAL = _l("The card was refused.")
EVIDENCE: dict[Evidence, Any] = {
    Evidence.PRESENTATION: _l("phone (live code)"),
    Evidence.STATIC: _l("printed card code: compare the photo"),
    Evidence.CHIP: _l("chip"),
}


def reason_text(verdict: Verdict) -> str:
    """The sentence for a verdict, in the request's language."""
    return str(REASONS.get(verdict.reason, GENERAL))
