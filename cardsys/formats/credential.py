"""Digital-card credentials, static card credentials, presentations and refresh requests.

Pure functions: no I/O, no clock (times are parameters), randomness only inside ECDSA.

Credential (stored on the phone; DESIGN.md "Digital cards")
-----------------------------------------------------------
A COSE_Sign1 (RFC 9052 §4.2), tagged 18, ES256, protected header `{1: -7, 4: kid}` where kid
is the credential signer certificate's key id, unprotected header `{}`, over CWT claims
(RFC 8392) in deterministic CBOR (RFC 8949 §4.2.1):

    {1: iss (text), 2: sub (text: the digital card's number), 4: exp, 5: nbf, 6: iat,
     8: cnf {1: COSE_Key of the phone's P-256 key}          (RFC 8747 §3.1; absent: static)
     65535: status {"status_list": {"idx": i, "uri": "<base>/public/status/<list>"}}
                                                            (Token Status List §6.3)
     -65537: holder {1: physical card number, 2: surname, 3: given names, 4: sex "F"/"M"/"X",
                     5: birth date "YYYY-MM-DD", 6: region (6 digits),
                     7: [insurance scheme codes], 8: SHA-256 of the photo (optional)}}

`-65537` (`HOLDER`) is our one private claim: RFC 8392 §9.1 reserves integer keys below
-65536 for private use. It carries what a counter needs to recognise the holder and nothing
more. The COSE_Key is `{1: 2 (EC2), -1: 1 (P-256), -2: x, -3: y}` (RFC 9053 §7.1.1), x and y
32 bytes each; its RFC 9679 thumbprint identifies the device. Times are integer seconds.

The static card credential (`SSC1:` printed on the card back) is the same without `cnf`: `sub`
is the physical card number and `exp` the physical card's expiry. A verifier tells the two
apart by `cnf` alone: a credential with `cnf` is worthless without a proof of its device key,
and one without `cnf` is never accepted inside a presentation.

Presentation (the `SSP1:` QR body), written for a 100-line browser port
----------------------------------------------------------------------
    presentation = 0x82 || bstr(credential) || bstr(proof)           CBOR array of two bstr
    proof        = 0x84 0x43 A1 01 26 0xA0 || bstr(payload) || 0x58 0x40 || r || s
    payload      = {1: time, 2: SHA-256(credential bytes)}           or with 3: nonce (bstr)
    signed bytes = 0x84 0x6A "Signature1" 0x43 A1 01 26 0x40 || bstr(payload)

where bstr(x) is a CBOR byte-string head (0x40+len below 24, 0x58 len below 256, 0x59 len16
below 65536) followed by x, `time` is the unsigned integer second the proof was made (0x1A
and 4 bytes big-endian for present-day times), and r || s is the raw 64-byte ECDSA P-256 /
SHA-256 signature exactly as WebCrypto's `sign({name: "ECDSA", hash: "SHA-256"})` returns
it. The proof's protected header is always the three bytes A1 01 26 (`{1: -7}`, no kid), its
unprotected header empty. Example, time 1898586000 (2030-03-01T09:00:00Z) and a credential
whose SHA-256 is e3b0c442...b855 (that of the empty string):

    payload      a2 01 1a712a1f90 02 5820 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c
                                          a495991b7852b855
    signed bytes 84 6a 5369676e617475726531 43 a10126 40 582a <the 42 payload bytes>
    proof        84 43 a10126 a0 582a <payload> 5840 <r||s>

The phone makes a new proof each time it redraws the QR (every `presentation_step` seconds),
stamped with the current second, not rounded: the time says when it was made, and two proofs
are never the same presentation. A verifier accepts it within its presentation window and
remembers SHA-256(payload) for that window (the signature is not the replay key: ECDSA
signatures are malleable, the signed payload is not).

Refresh request
---------------
A COSE_Sign1 by the device key with protected header `{1: -7, 16: REFRESH_TYPE}` over
`{1: time, 2: the current credential}`. The content type keeps it from ever being taken for a
presentation proof, and vice versa.

Parsing rules (every failure a `DecodeError`): sizes capped (`MAX_*`); credentials and
presentations are read by `cardsys.formats.canonical` (the verifier's hot path: the canonical
form only, every head shortest, no general CBOR decoder), a non-canonical COSE envelope by the
bounded decoder of `cardsys.formats.cbor`; exactly the fields above, with their types; no
other claims; text fields bounded; the holder claim is parsed only on request
(`Credential.holder()`), so a verifier reports nothing about holder data before it has
checked the signature over it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardsys.errors import DecodeError, SignatureError, ValidationError
from cardsys.formats import cbor, cwt
from cardsys.formats.canonical import (
    MAX_CREDENTIAL,
    MAX_NONCE,
    MAX_PRESENTATION,
    MAX_SCHEMES,
    MAX_TEXT,
    PROOF_PROTECTED,
    der_signature,
    read_credential,
    read_holder,
    read_presentation,
)
from cardsys.formats.cose import ALG, KID, TYP, CoseAlgorithm, Sign1, sign1
from cardsys.pki import Algorithm

__all__ = [
    "HOLDER",
    "MAX_CREDENTIAL",
    "MAX_PRESENTATION",
    "PROOF_PROTECTED",
    "REFRESH_TYPE",
    "Claims",
    "Credential",
    "Holder",
    "Presentation",
    "RefreshRequest",
    "StatusRef",
    "cose_key",
    "decode_credential",
    "decode_presentation",
    "decode_refresh_request",
    "encode_presentation",
    "encode_refresh_request",
    "issue_credential",
    "public_key_from_point",
    "thumbprint",
]

#: The private claim holding the holder data (RFC 8392 §9.1: below -65536 is private use).
HOLDER: Final = -65537
_MAX_REFRESH: Final = MAX_CREDENTIAL + 256
#: Content type of a refresh request's protected header.
REFRESH_TYPE: Final = "application/cardsys-refresh+cbor"

# Holder map keys.
H_CARD, H_SURNAME, H_GIVEN, H_SEX, H_BIRTH, H_REGION, H_SCHEMES, H_PHOTO = range(1, 9)
# Proof payload keys.
P_TIME, P_DIGEST, P_NONCE = 1, 2, 3
# COSE_Key labels and values (RFC 9052 §7.1, RFC 9053 §7.1.1).
_KTY, _CRV, _X, _Y = 1, -1, -2, -3
_KTY_EC2, _CRV_P256 = 2, 1
_CNF_COSE_KEY: Final = 1
_P256: Final = ec.SECP256R1()

_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())
_SEXES: Final = frozenset({"F", "M", "X"})
_DIGITS: Final = frozenset("0123456789")
#: A card number's last character: ISO 7064 MOD 37,36 (cardsys.ids), a digit or a letter.
_CHECK_CHARS: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCHEME_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


# --- values --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holder:
    """The holder data a counter needs (the private claim `HOLDER`)."""

    card_number: str
    surname: str
    given_names: str
    sex: str
    birth_date: date
    region: str
    schemes: tuple[str, ...]
    photo_sha256: bytes | None = None

    def __post_init__(self) -> None:
        # Plain string tests, not regular expressions: this runs for every verified QR.
        for name in ("surname", "given_names"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
                raise ValidationError(f"the holder's {name.replace('_', ' ')} must be text")
        card = self.card_number
        if not (
            isinstance(card, str)
            and len(card) == 14
            and card[:2].isascii()
            and card[:2].isupper()
            and card[:2].isalpha()
            and _DIGITS.issuperset(card[2:13])
            and card[13] in _CHECK_CHARS
        ):
            raise ValidationError("the holder's card number is malformed")
        if self.sex not in _SEXES:
            raise ValidationError("the holder's sex must be F, M or X")
        region = self.region
        if not isinstance(region, str) or len(region) != 6 or not _DIGITS.issuperset(region):
            raise ValidationError("the holder's region must be 6 digits")
        if not isinstance(self.birth_date, date):
            raise ValidationError("the holder's birth date must be a date")
        if len(self.schemes) > MAX_SCHEMES:
            raise ValidationError(f"at most {MAX_SCHEMES} insurance schemes")
        for scheme in self.schemes:
            if not (
                isinstance(scheme, str)
                and 0 < len(scheme) <= 32
                and _SCHEME_CHARS.issuperset(scheme)
            ):
                raise ValidationError(f"insurance scheme code {scheme!r} is malformed")
        photo = self.photo_sha256
        if photo is not None and (not isinstance(photo, bytes) or len(photo) != 32):
            raise ValidationError("the photo digest must be 32 bytes (SHA-256)")

    def to_claim(self) -> dict[int, Any]:
        """The holder claim's CBOR map."""
        claim: dict[int, Any] = {
            H_CARD: self.card_number,
            H_SURNAME: self.surname,
            H_GIVEN: self.given_names,
            H_SEX: self.sex,
            H_BIRTH: self.birth_date.isoformat(),
            H_REGION: self.region,
            H_SCHEMES: list(self.schemes),
        }
        if self.photo_sha256 is not None:
            claim[H_PHOTO] = self.photo_sha256
        return claim


@dataclass(frozen=True, slots=True)
class StatusRef:
    """Where a credential's status is published: list URI and index (Token Status List)."""

    uri: str
    index: int

    def to_claim(self) -> dict[str, Any]:
        return {"status_list": {"idx": self.index, "uri": self.uri}}


@dataclass(frozen=True, slots=True)
class Claims:
    """What the agency asserts in a credential (input to `issue_credential`)."""

    issuer: str
    subject: str
    issued_at: datetime
    expires: datetime
    holder: Holder
    status: StatusRef
    #: The phone's key for a digital card; None for the static card credential.
    device_key: ec.EllipticCurvePublicKey | None = None


@dataclass(frozen=True, slots=True)
class Credential:
    """A structurally checked credential. Its signature is NOT verified here (the trust layer
    does, with the key `kid` names; `verify_signature`); nor is the holder claim parsed
    (`holder`)."""

    raw: bytes
    kid: bytes
    #: The COSE Sig_structure the signature covers (RFC 9052 §4.4), built from the bytes
    #: as received, and the raw r||s signature.
    signed: tuple[bytes, bytes] = field(repr=False)
    payload: bytes = field(repr=False)
    issuer: str
    subject: str
    issued_at: int
    not_before: int
    expires: int
    status: StatusRef
    #: The cnf key's x and y coordinates (digital cards); None for static card credentials.
    device_point: tuple[bytes, bytes] | None
    #: The encoded holder claim, parsed only by `holder()`.
    holder_claim: bytes = field(repr=False)

    @property
    def bound(self) -> bool:
        """Whether the credential is bound to a device key (a digital card)."""
        return self.device_point is not None

    @property
    def message(self) -> Sign1:
        """The credential as a general COSE_Sign1 (decoded again: not for the hot path)."""
        return Sign1.decode(self.raw, max_size=MAX_CREDENTIAL)

    def verify_signature(self, public_key: ec.EllipticCurvePublicKey) -> None:
        """Raise `SignatureError` unless `public_key` (P-256) signed the credential."""
        _verify_es256(public_key, *self.signed)

    def holder(self) -> Holder:
        """The holder data. Raises `DecodeError` when the claim is malformed."""
        fields = read_holder(self.holder_claim)
        try:
            return Holder(*fields)
        except ValidationError as exc:  # the reader checks every rule Holder checks
            raise DecodeError(f"the holder data is malformed: {exc}") from None

    def device_key(self) -> ec.EllipticCurvePublicKey:
        """The device's public key. Raises `DecodeError` for a static credential or a key
        that is not a point on P-256."""
        if self.device_point is None:
            raise DecodeError("the credential is not bound to a device key")
        x, y = self.device_point
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(_P256, b"\x04" + x + y)
        except ValueError:
            raise DecodeError("the device key is not a point on P-256") from None


@dataclass(frozen=True, slots=True)
class Presentation:
    """A decoded presentation: the credential bytes and the holder's proof (not verified)."""

    credential: bytes
    #: The proof's payload, the Sig_structure its signature covers, and the raw r||s signature.
    proof_payload: bytes
    proof_signed: bytes = field(repr=False)
    proof_signature: bytes = field(repr=False)
    time: int
    digest: bytes
    nonce: bytes | None

    @property
    def replay_key(self) -> bytes:
        """What a replay cache remembers: SHA-256 of the signed proof payload."""
        return hashlib.sha256(self.proof_payload).digest()

    def verify_proof(self, device_key: ec.EllipticCurvePublicKey) -> None:
        """Raise `SignatureError` unless `device_key` signed the proof."""
        _verify_es256(device_key, self.proof_signed, self.proof_signature)


def _verify_es256(
    public_key: ec.EllipticCurvePublicKey, to_be_signed: bytes, signature: bytes
) -> None:
    # The hot path's COSE_Sign1 check (RFC 9052 §4.4): ES256 only, so none of
    # `Sign1.verify`'s per-call dispatch; the Sig_structure is cut from the bytes received.
    if not isinstance(public_key.curve, ec.SECP256R1) or len(signature) != 64:
        raise SignatureError("an ES256 signature is 64 bytes, checked with a P-256 key")
    try:
        public_key.verify(der_signature(signature), to_be_signed, _ECDSA_SHA256)
    except InvalidSignature:
        raise SignatureError("the signature does not verify with this key") from None


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    """A decoded refresh request (signature not verified)."""

    message: Sign1
    time: int
    credential: bytes


# --- COSE_Key ------------------------------------------------------------------------------


def cose_key(public_key: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """The COSE_Key map of a P-256 public key (RFC 9053 §7.1.1).

    Raises:
        ValidationError: a key on another curve.
    """
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise ValidationError("device keys are ECDSA P-256 keys")
    point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {_KTY: _KTY_EC2, _CRV: _CRV_P256, _X: point[1:33], _Y: point[33:]}


def thumbprint(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The RFC 9679 COSE Key thumbprint (SHA-256) of a P-256 public key."""
    # RFC 9679 §3: the required parameters only (kty, crv, x, y), deterministically encoded.
    return hashlib.sha256(cbor.dumps(cose_key(public_key))).digest()


def public_key_from_point(point: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its uncompressed SEC 1 encoding (65 bytes, 0x04 || x || y).

    Raises:
        ValidationError: wrong length or prefix, or not a point on the curve.
    """
    if not isinstance(point, bytes) or len(point) != 65 or point[0] != 4:
        raise ValidationError("a device key is an uncompressed P-256 point of 65 bytes")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise ValidationError("the device key is not a point on P-256") from None


# --- credentials ---------------------------------------------------------------------------


def issue_credential(
    claims: Claims, *, sign: Callable[[bytes], bytes], alg: Algorithm, kid: bytes
) -> bytes:
    """Sign a credential (digital when `claims.device_key` is set, else static).

    Args:
        claims: what to assert.
        sign, alg, kid: the credential signer (`cardsys.pki.Signer` parts), as `cose.sign1`.

    Raises:
        ValidationError: times out of order, or the credential would exceed `MAX_CREDENTIAL`.
    """
    issued = cwt.to_numeric_date(claims.issued_at)
    expires = cwt.to_numeric_date(claims.expires)
    if expires <= issued:
        raise ValidationError("a credential must expire after it is issued")
    if not claims.issuer or not claims.subject:
        raise ValidationError("a credential needs an issuer and a subject")
    body: dict[int | str, Any] = {
        cwt.ISS: claims.issuer,
        cwt.SUB: claims.subject,
        cwt.EXP: expires,
        cwt.NBF: issued,
        cwt.IAT: issued,
        cwt.STATUS: claims.status.to_claim(),
        HOLDER: claims.holder.to_claim(),
    }
    if claims.device_key is not None:
        body[cwt.CNF] = {_CNF_COSE_KEY: cose_key(claims.device_key)}
    if alg is not Algorithm.ES256 or len(kid) != 8:
        raise ValidationError("credentials are signed with ES256 by a signer with an 8-byte kid")
    message = sign1(cwt.encode_claims(body), sign=sign, alg=alg, kid=kid)
    data = message.encode(tag=True)
    if len(data) > MAX_CREDENTIAL:
        raise ValidationError(f"the credential would exceed {MAX_CREDENTIAL} bytes")
    # Read it back as a verifier will: what leaves the issuer is exactly the canonical form.
    try:
        decoded = decode_credential(data)
        if decoded.holder() != claims.holder:
            raise DecodeError("the holder data does not read back unchanged")
    except DecodeError as exc:
        raise ValidationError(f"the credential does not read back: {exc}") from None
    return data


def decode_credential(data: bytes) -> Credential:
    """Decode a credential and check its structure (rules: module docstring).

    The holder claim is located but not parsed (`Credential.holder`).

    Raises:
        DecodeError: oversized, not an ES256 COSE_Sign1 with a kid, or claims that are not
            exactly the documented ones in deterministic encoding.
    """
    data = cbor.as_bytes(data)
    fields = read_credential(data)
    point = fields.device_point
    return Credential(
        raw=data,
        kid=fields.kid,
        signed=(fields.to_be_signed, fields.signature),
        payload=fields.payload,
        issuer=fields.issuer,
        subject=fields.subject,
        issued_at=fields.issued_at,
        not_before=fields.not_before,
        expires=fields.expires,
        status=StatusRef(fields.status_uri, fields.status_index),
        device_point=None if point is None else (point[1:33], point[33:]),
        holder_claim=fields.payload[fields.holder_at :],
    )


# --- presentations -------------------------------------------------------------------------


def encode_presentation(
    credential: bytes,
    *,
    sign: Callable[[bytes], bytes],
    time: int,
    nonce: bytes | None = None,
) -> bytes:
    """The presentation body: the credential and a proof signed by the device key.

    Args:
        credential: the credential bytes as issued.
        sign: the device key's signer (DER ECDSA over SHA-256, e.g. `cose.key_signer(key)`).
        time: the second the proof is made (NumericDate).
        nonce: a verifier's challenge, when it gave one (1 to 64 bytes).

    Raises:
        ValidationError: a bad time or nonce.
    """
    if isinstance(time, bool) or not isinstance(time, int) or time < 0:
        raise ValidationError("the proof time is a non-negative integer of seconds")
    payload: dict[int, Any] = {P_TIME: time, P_DIGEST: hashlib.sha256(credential).digest()}
    if nonce is not None:
        if not isinstance(nonce, bytes) or not 0 < len(nonce) <= MAX_NONCE:
            raise ValidationError(f"a nonce is 1 to {MAX_NONCE} bytes")
        payload[P_NONCE] = nonce
    proof = sign1(cbor.dumps(payload), sign=sign, alg=Algorithm.ES256, kid=None)
    return cbor.dumps([credential, proof.encode(tag=False)])


def decode_presentation(body: bytes) -> Presentation:
    """Split a presentation body into the credential bytes and the decoded proof.

    The credential itself is decoded separately (`decode_credential`).

    Raises:
        DecodeError: anything but `[bstr, bstr]` with a proof of exactly the documented form.
    """
    return Presentation(*read_presentation(cbor.as_bytes(body)))


# --- refresh requests ------------------------------------------------------------------------


def encode_refresh_request(
    credential: bytes, *, sign: Callable[[bytes], bytes], time: int
) -> bytes:
    """A refresh request for `credential`, signed by its device key at `time`."""
    if isinstance(time, bool) or not isinstance(time, int) or time < 0:
        raise ValidationError("the request time is a non-negative integer of seconds")
    payload = cbor.dumps({1: time, 2: credential})
    message = sign1(
        payload, sign=sign, alg=Algorithm.ES256, kid=None, protected_extra={TYP: REFRESH_TYPE}
    )
    return message.encode(tag=False)


def decode_refresh_request(data: bytes) -> RefreshRequest:
    """Decode a refresh request (its signature is checked by the issuer with the bound key).

    Raises:
        DecodeError: oversized, or not a refresh request of the documented form.
    """
    data = cbor.as_bytes(data)
    if len(data) > _MAX_REFRESH:
        raise DecodeError(f"a refresh request is at most {_MAX_REFRESH} bytes")
    message = Sign1.decode(data, max_size=_MAX_REFRESH)
    if (
        dict(message.protected) != {ALG: int(CoseAlgorithm.ES256), TYP: REFRESH_TYPE}
        or KID in message.unprotected
    ):
        raise DecodeError("not a refresh request (wrong protected header)")
    fields = cbor.loads(message.payload, max_size=_MAX_REFRESH, max_depth=1)
    if not isinstance(fields, dict) or set(fields) != {1, 2}:
        raise DecodeError("a refresh request holds time (1) and the credential (2)")
    time, credential = fields[1], fields[2]
    if isinstance(time, bool) or not isinstance(time, int) or not isinstance(credential, bytes):
        raise DecodeError("a refresh request's time is an integer, its credential bytes")
    cwt.from_numeric_date(time)
    return RefreshRequest(message, time, credential)
