"""The holder side of a digital card: a device key and a credential make the QR text.

No I/O and no clock: the phone (or the CLI, or a test) passes `now`. This module is the
reference the browser wallet is ported from; the exact bytes are documented in
`cardsys.formats.credential`.

The phone redraws the QR every `presentation_step` seconds (30 by default) with a proof made
at that moment. A proof carries the second it was made, not a rounded time: it says when it
was made, and a verifier accepts it within its presentation window (90 s by default, clock
skew included), so a screenshot is worthless a minute or two later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.errors import DecodeError, ValidationError
from cardsys.formats import credential as fmt
from cardsys.formats import cwt, qrtext
from cardsys.formats.cose import key_signer

__all__ = ["Wallet", "static_text"]

_FILE_VERSION: Final = 1


def static_text(credential: bytes) -> str:
    """The `SSC1:` QR text of a static card credential (printed on the card back).

    Raises:
        ValidationError: the credential is bound to a device (it needs a presentation).
    """
    try:
        parsed = fmt.decode_credential(credential)
    except DecodeError as exc:
        raise ValidationError(f"not a credential: {exc}") from None
    if parsed.bound:
        raise ValidationError("a device-bound credential is shown only as a presentation")
    return qrtext.encode(qrtext.STATIC_CARD, credential)


@dataclass(frozen=True)
class Wallet:
    """A device key and the credential bound to it."""

    device_key: ec.EllipticCurvePrivateKey
    credential: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.device_key.curve, ec.SECP256R1):
            raise ValidationError("a device key is an ECDSA P-256 key")
        try:
            parsed = fmt.decode_credential(self.credential)
        except DecodeError as exc:
            raise ValidationError(f"not a credential: {exc}") from None
        if not parsed.bound:
            raise ValidationError("the credential is not bound to a device key")
        if fmt.thumbprint(parsed.device_key()) != self.thumbprint:
            raise ValidationError("the credential is bound to another device key")

    @property
    def parsed(self) -> fmt.Credential:
        """The credential's claims (as issued; the wallet does not verify the agency key)."""
        return fmt.decode_credential(self.credential)

    @property
    def thumbprint(self) -> bytes:
        """The RFC 9679 thumbprint of the device key."""
        return fmt.thumbprint(self.device_key.public_key())

    @property
    def expires(self) -> datetime:
        return cwt.from_numeric_date(self.parsed.expires)

    def needs_refresh(self, now: datetime, *, ahead: timedelta = timedelta(days=1)) -> bool:
        """Whether to ask for a new credential: less than `ahead` before it expires."""
        return now + ahead >= self.expires

    def presentation(self, now: datetime, nonce: bytes | None = None) -> str:
        """The `SSP1:` QR text: the credential and a proof made at `now` (whole seconds)."""
        body = fmt.encode_presentation(
            self.credential,
            sign=key_signer(self.device_key),
            time=cwt.to_numeric_date(now),
            nonce=nonce,
        )
        return qrtext.encode(qrtext.PRESENTATION, body)

    def refresh_request(self, now: datetime) -> bytes:
        """A request for a new credential, signed by the device key at `now`."""
        return fmt.encode_refresh_request(
            self.credential, sign=key_signer(self.device_key), time=cwt.to_numeric_date(now)
        )

    def with_credential(self, credential: bytes) -> Wallet:
        """The same device key with a refreshed credential (checked to be bound to it)."""
        return Wallet(self.device_key, credential)

    # --- a wallet as bytes (the CLI keeps it in a 0600 file; the browser uses IndexedDB) ---

    def to_bytes(self) -> bytes:
        """The wallet as JSON: the key as unencrypted PKCS#8 PEM and the credential in hex.

        Whoever stores these bytes must protect them like the key they contain.
        """
        pem = self.device_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        document = {"version": _FILE_VERSION, "key": pem, "credential": self.credential.hex()}
        return json.dumps(document, indent=1).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Wallet:
        """Read what `to_bytes` wrote.

        Raises:
            ValidationError: not a wallet document, or its parts do not belong together.
        """
        try:
            document = json.loads(data.decode("utf-8"))
            if not isinstance(document, dict) or document.get("version") != _FILE_VERSION:
                raise ValueError("unknown wallet version")
            key = serialization.load_pem_private_key(document["key"].encode("ascii"), None)
            credential = bytes.fromhex(document["credential"])
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ValidationError(f"not a wallet file: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValidationError("the wallet key is not an ECDSA key")
        return cls(key, credential)

    def __repr__(self) -> str:
        return f"Wallet(thumbprint={self.thumbprint.hex()[:16]}, expires={self.expires:%Y-%m-%d})"

