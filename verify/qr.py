"""Verifying a scanned QR offline: a phone's presentation (`SSP1:`) or a card's static QR
(`SSC1:`). Formats: `cardsys.formats.credential`, read by `cardsys.formats.canonical`.

`verify_qr` returns a `VerifiedCard` or raises the `VerificationError` subclass that names
the first failed check. The checks run cheapest first, so that a rejection never costs a
signature verification it did not need, and nothing about the holder data is reported before
the signature over it verified:

1. text and structure: prefix, Base45, sizes, the presentation, proof and credential
   envelopes and the credential's registered claims (`BadEncodingError`);
2. the trust list is still fresh (`StaleTrustError`);
3. the credential signer: known kid, CREDENTIAL purpose, valid now, the credential dated
   inside its key's usage period (`UnknownKeyError`, `WrongPurposeError`,
   `UntrustedSignerError`);
4. the credential's times: exp, nbf and iat against `now` with the clock-skew allowance
   (`ExpiredError`, `NotYetValidError`);
5. presentations only: the credential is device-bound and the proof is for this credential
   (digest) (`HolderBindingError`); the proof's time is inside the presentation window and it
   answers this terminal's nonce when one was asked (`StaleProofError`); it was not already
   accepted here (`ReplayedError`). A static QR must NOT carry a device-bound credential: that
   credential is only valid with a live proof (`HolderBindingError`);
6. the credential's signature (`BadSignatureError`);
7. presentations only: the proof's signature with the device key of the credential's `cnf`
   (`HolderBindingError`);
8. the holder data (`BadEncodingError`) and the status list (`RevokedError`, `SuspendedError`,
   `StatusUnknownError` per policy);
9. presentations only: the replay cache takes the presentation atomically (`ReplayedError`
   when another thread took it first).

`check_qr` is the same for user interfaces: it never raises for bad input and returns a
`Verdict` with a reason code.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.errors import (
    DecodeError,
    ExpiredError,
    FormatError,
    HolderBindingError,
    NotYetValidError,
    ReplayedError,
    SignatureError,
    StaleProofError,
    ValidationError,
    VerificationError,
)
from cardsys.formats import qrtext
from cardsys.formats.canonical import (
    MAX_PRESENTATION,
    CredentialFields,
    der_signature,
    read_credential,
    read_holder,
    read_presentation,
)
from cardsys.pki import Purpose
from verify.replay import ReplayCache
from verify.result import Evidence, StatusCheck, Verdict, VerifiedCard
from verify.trust import SignerKey, TrustStore, bad_encoding, bad_signature

__all__ = ["PREFIXES", "check_qr", "verify_qr"]

#: The QR prefixes a terminal reads.
PREFIXES: Final = (qrtext.PRESENTATION, qrtext.STATIC_CARD)

# Built once: every verification uses the same curve, hash and loader.
_P256: Final = ec.SECP256R1()
_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())
_load_point: Final = ec.EllipticCurvePublicKey.from_encoded_point
_sha256: Final = hashlib.sha256


def verify_qr(
    text: str,
    trust: TrustStore,
    *,
    now: datetime,
    replay: ReplayCache | None = None,
    nonce: bytes | None = None,
) -> VerifiedCard:
    """Verify scanned QR text offline (checks and their order: module docstring).

    Args:
        text: what the scanner read (surrounding whitespace is ignored).
        trust: the terminal's trust store.
        now: the terminal's current time (timezone-aware).
        replay: the terminal's replay cache; without one, a presentation is not remembered.
        nonce: the challenge this terminal showed, when it asked the phone for one.

    Raises:
        VerificationError: the subclass naming the first failed check.
    """
    if now.tzinfo is None:
        raise ValidationError("now must be a timezone-aware datetime")
    now_ts = int(now.timestamp())
    try:
        prefix, body = qrtext.decode(text, prefixes=PREFIXES, max_body=MAX_PRESENTATION)
    except DecodeError as exc:
        raise bad_encoding(exc, "QR code") from None
    if prefix == qrtext.PRESENTATION:
        return _presentation(body, trust, now, now_ts, replay, nonce)
    return _static(body, trust, now, now_ts)


def check_qr(
    text: str,
    trust: TrustStore,
    *,
    now: datetime,
    replay: ReplayCache | None = None,
    nonce: bytes | None = None,
) -> Verdict:
    """`verify_qr` for user interfaces: the verdict with a reason code, never an exception
    for bad input."""
    try:
        return Verdict.accepted(verify_qr(text, trust, now=now, replay=replay, nonce=nonce))
    except VerificationError as exc:
        return Verdict.refused(exc)
    except FormatError as exc:
        # Every failure should already be a VerificationError; if a format error slipped
        # through, the card is still refused, as malformed. (A caller's bug, such as a naive
        # `now`, is not bad input: it propagates.)
        return Verdict.refused(bad_encoding(DecodeError(str(exc)), "QR code"))


def _presentation(
    body: bytes,
    trust: TrustStore,
    now: datetime,
    now_ts: int,
    replay: ReplayCache | None,
    nonce: bytes | None,
) -> VerifiedCard:
    try:
        presentation = read_presentation(body)
        credential = read_credential(presentation.credential)
    except DecodeError as exc:
        raise bad_encoding(exc, "presentation") from None
    key = _signer_and_times(credential, trust, now_ts)
    point = credential.device_point
    if point is None:
        raise HolderBindingError("the credential in this presentation is not bound to a phone")
    if _sha256(presentation.credential).digest() != presentation.digest:
        raise HolderBindingError("the proof was made for another credential")
    window = trust.window
    age = now_ts - presentation.time
    if age > window:
        raise StaleProofError(f"the QR is {age} s old: ask the holder to show the live code")
    if -age > window:
        raise StaleProofError("the QR is dated in the future: check the phone's clock")
    if nonce is not None and presentation.nonce != nonce:
        raise StaleProofError("the QR does not answer this terminal's challenge")
    # The replay key is the signed payload's digest: ECDSA signatures are malleable.
    replay_key = _sha256(presentation.proof_payload).digest()
    if replay is not None and replay.seen(replay_key, now_ts):
        raise ReplayedError("this QR was already shown at this terminal")
    _verify_credential_signature(credential, key)
    try:
        device_key = _load_point(_P256, point)
    except ValueError:
        error = DecodeError("the device key is not a point on P-256")
        raise bad_encoding(error, "credential") from None
    try:
        device_key.verify(
            der_signature(presentation.proof_signature), presentation.proof_signed, _ECDSA_SHA256
        )
    except InvalidSignature:
        raise HolderBindingError(
            "the proof is not signed by the phone this credential belongs to"
        ) from None
    card = _verified(credential, key, trust, now, now_ts, Evidence.PRESENTATION)
    if replay is not None and not replay.add(
        replay_key, expires=presentation.time + window + 1, now=now_ts
    ):
        if replay.seen(replay_key, now_ts):
            raise ReplayedError("this QR was already shown at this terminal")
        raise ReplayedError("the terminal's replay cache is full: try again in a minute")
    return card


def _static(body: bytes, trust: TrustStore, now: datetime, now_ts: int) -> VerifiedCard:
    try:
        credential = read_credential(body)
    except DecodeError as exc:
        raise bad_encoding(exc, "card QR") from None
    key = _signer_and_times(credential, trust, now_ts)
    if credential.device_point is not None:
        raise HolderBindingError(
            "this credential belongs to a phone: ask the holder to show the live QR"
        )
    _verify_credential_signature(credential, key)
    return _verified(credential, key, trust, now, now_ts, Evidence.STATIC)


def _signer_and_times(credential: CredentialFields, trust: TrustStore, now_ts: int) -> SignerKey:
    key = trust.document_signer(
        credential.kid, Purpose.CREDENTIAL, signed_at=credential.issued_at, now=now_ts
    )
    skew = trust.skew
    if now_ts >= credential.expires + skew:
        raise ExpiredError(f"the credential expired at {_iso(credential.expires)}")
    if credential.not_before > now_ts + skew:
        moment = _iso(credential.not_before)
        raise NotYetValidError(f"the credential is not valid before {moment} (nbf)")
    if credential.issued_at > now_ts + skew:
        moment = _iso(credential.issued_at)
        raise NotYetValidError(f"the credential is not valid before {moment} (iat)")
    return key


def _verify_credential_signature(credential: CredentialFields, key: SignerKey) -> None:
    # ES256 (RFC 9053 §2.1): a P-256 key, SHA-256, the raw r||s as DER for `cryptography`.
    if not key.p256:
        error = SignatureError("an ES256 signature is checked with a P-256 key")
        raise bad_signature(error, "credential")
    try:
        key.public_key.verify(
            der_signature(credential.signature), credential.to_be_signed, _ECDSA_SHA256
        )
    except InvalidSignature:
        error = SignatureError("the signature does not verify with this key")
        raise bad_signature(error, "credential") from None


def _verified(
    credential: CredentialFields,
    key: SignerKey,
    trust: TrustStore,
    now: datetime,
    now_ts: int,
    evidence: Evidence,
) -> VerifiedCard:
    # Only now, with the signature over it verified, is the holder claim read.
    try:
        holder = read_holder(credential.payload, credential.holder_at)
    except DecodeError as exc:
        raise bad_encoding(exc, "holder data") from None
    status: StatusCheck = trust.status(credential.status_uri, credential.status_index, now=now_ts)
    # Positional, in the field order (keywords cost a third of the construction).
    return VerifiedCard(
        evidence,
        holder.card_number,
        credential.subject,  # the document number
        holder.surname,
        holder.given_names,
        holder.sex,
        holder.birth_date,
        holder.region,
        holder.schemes,
        holder.photo_sha256,
        datetime.fromtimestamp(credential.expires, UTC),
        key.kid,
        status,
        now,
    )


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()
