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

Parsing rules (every failure a `DecodeError`): sizes capped (`MAX_*`); envelopes decoded with
the bounded decoder of `cardsys.formats.cbor`; exactly the fields above, with their types;
no other claims; text fields bounded; the holder claim is parsed only on request
(`Credential.holder()`), so a verifier reports nothing about holder data before it has
checked the signature over it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardsys.errors import DecodeError, SignatureError, ValidationError
from cardsys.formats import cbor, cwt
from cardsys.formats.cose import ALG, KID, TYP, CoseAlgorithm, Sign1, sig_structure, sign1
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
#: Largest credential accepted or issued, in bytes (long CJK names fit with room to spare).
MAX_CREDENTIAL: Final = 1536
#: Largest presentation body accepted (a version-40 QR at level M holds about 2,260 bytes).
MAX_PRESENTATION: Final = 2048
_MAX_REFRESH: Final = MAX_CREDENTIAL + 256
#: The only protected header a presentation proof may have: {1: -7}.
PROOF_PROTECTED: Final = b"\xa1\x01\x26"
#: Content type of a refresh request's protected header.
REFRESH_TYPE: Final = "application/cardsys-refresh+cbor"

# Holder map keys.
H_CARD, H_SURNAME, H_GIVEN, H_SEX, H_BIRTH, H_REGION, H_SCHEMES, H_PHOTO = range(1, 9)
# Proof payload keys.
P_TIME, P_DIGEST, P_NONCE = 1, 2, 3
_MAX_NONCE: Final = 64
# COSE_Key labels and values (RFC 9052 §7.1, RFC 9053 §7.1.1).
_KTY, _CRV, _X, _Y = 1, -1, -2, -3
_KTY_EC2, _CRV_P256 = 2, 1
_CNF_COSE_KEY: Final = 1
_P256: Final = ec.SECP256R1()
_ES256: Final = int(CoseAlgorithm.ES256)

# The constant stretches of the canonical encodings (module docstring), as bytes.
#: D2 84 | 4D A2 01 26 04 48: tag 18, array of 4, protected bstr(13) {1: -7, 4: bstr(8)}.
_ENVELOPE: Final = b"\x84\x4d\xa2\x01\x26\x04\x48"
#: cnf (8): {1: {1: 2, -1: 1, -2: bstr(32) ...
_CNF_X: Final = b"\x08\xa1\x01\xa4\x01\x02\x20\x01\x21\x58\x20"
#: ... -3: bstr(32)}}
_CNF_Y: Final = b"\x22\x58\x20"
#: status (65535): {"status_list": {"idx": ...
_STATUS_IDX: Final = b"\x19\xff\xff\xa1\x6bstatus_list\xa2\x63idx"
#: ... "uri": text}}
_STATUS_URI: Final = b"\x63uri"
#: the holder claim's key, -65537
_HOLDER_KEY: Final = b"\x3a\x00\x01\x00\x00"
#: a proof: array of 4, protected bstr(3) {1: -7}, unprotected {}
_PROOF_HEAD: Final = b"\x84\x43\xa1\x01\x26\xa0"
#: Sig_structure's opening: array of 4, "Signature1" (RFC 9052 §4.4)
_SIG1: Final = b"\x84\x6aSignature1"
#: ... and for a proof, followed by its protected bstr and the empty external_aad
_SIG1_PROOF: Final = _SIG1 + b"\x43\xa1\x01\x26\x40"

_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())
_SEXES: Final = frozenset({"F", "M", "X"})
_MAX_TEXT: Final = 256
#: A text of _MAX_TEXT characters may take up to 4 bytes each in UTF-8.
_MAX_TEXT_BYTES: Final = 4 * _MAX_TEXT
_MAX_SCHEMES: Final = 16
#: 9999-12-31T23:59:59Z: the last NumericDate a datetime can hold.
_MAX_TIME: Final = 253402300799
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
            if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
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
        if len(self.schemes) > _MAX_SCHEMES:
            raise ValidationError(f"at most {_MAX_SCHEMES} insurance schemes")
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
        return _read_holder(self.holder_claim)

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
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public_key.verify(der, to_be_signed, _ECDSA_SHA256)
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
    if len(data) > MAX_CREDENTIAL:
        raise DecodeError(f"a credential is at most {MAX_CREDENTIAL} bytes")
    try:
        return _read_credential(data)
    except IndexError:  # the reader indexes freely; running off the end means truncated
        raise DecodeError("the credential is truncated") from None


def _read_credential(data: bytes) -> Credential:
    to_be_signed, kid, payload, signature = _credential_envelope(data)
    head = payload[0]
    if head != 0xA8 and head != 0xA7:
        raise DecodeError("the credential's claims must be a map of 7 or 8 claims")
    (issuer, subject), pos = _texts(payload, 1, 2, first_key=1)  # iss (1), sub (2)
    times = _TIMES.unpack_from(payload, pos)
    if times[0] != b"\x04\x1a" or times[2] != b"\x05\x1a" or times[4] != b"\x06\x1a":
        raise DecodeError("exp, nbf and iat must follow sub, as 32-bit NumericDates")
    pos += _TIMES.size
    device: tuple[bytes, bytes] | None = None
    if head == 0xA8:
        pos = _expect(payload, pos, _CNF_X, "cnf")
        x = payload[pos : pos + 32]
        pos = _expect(payload, pos + 32, _CNF_Y, "cnf")
        y = payload[pos : pos + 32]
        pos += 32
        device = (x, y)
    index, pos = _uint(payload, _expect(payload, pos, _STATUS_IDX, "status"))
    uri, pos = _tstr(payload, _expect(payload, pos, _STATUS_URI, "status uri"))
    pos = _expect(payload, pos, _HOLDER_KEY, "holder")
    if not uri or not issuer or not subject or (device is not None and len(device[1]) != 32):
        raise DecodeError("the credential's iss, sub, cnf or status uri is empty or truncated")
    return Credential(
        raw=data,
        kid=kid,
        signed=(to_be_signed, signature),
        payload=payload,
        issuer=issuer,
        subject=subject,
        issued_at=times[5],
        not_before=times[3],
        expires=times[1],
        status=StatusRef(uri, index),
        device_point=device,
        holder_claim=payload[pos:],
    )


def _credential_envelope(data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(Sig_structure, kid, payload, signature) of the credential's COSE_Sign1.

    Ours has one exact form, read without a CBOR decoder: D2 84 4D <A2 01 26 04 48 kid> A0
    <bstr payload> 58 40 <r||s>. Anything else (untagged, kid unprotected, ...) goes through
    the general `Sign1.decode`, and must still be ES256 with a kid.
    """
    pos = 1 if data[0] == 0xD2 else 0
    if data[pos : pos + 7] == _ENVELOPE and data[pos + 15] == 0xA0:
        payload, end = _bstr(data, pos + 16)
        if data[end : end + 2] == b"\x58\x40" and len(data) == end + 66:
            # Sig_structure = ["Signature1", protected, h'', payload]: the protected and the
            # payload byte strings, heads included, are slices of what we received.
            to_be_signed = _SIG1 + data[pos + 1 : pos + 15] + b"\x40" + data[pos + 16 : end]
            return to_be_signed, data[pos + 7 : pos + 15], payload, data[end + 2 :]
    message = Sign1.decode(data, max_size=MAX_CREDENTIAL)
    if message.alg != _ES256 or message.kid is None:
        raise DecodeError("a credential is signed with ES256 and names its signer (kid)")
    to_be_signed = sig_structure(message.protected_bytes, b"", message.payload)
    return to_be_signed, message.kid, message.payload, message.signature


def _read_holder(data: bytes) -> Holder:
    try:
        head = data[0]
        if head != 0xA7 and head != 0xA8:
            raise DecodeError("the holder claim must be a map of 7 or 8 fields")
        # card number, surname, given names, sex, birth date, region: keys 1 to 6
        fields, pos = _texts(data, 1, 6, first_key=1)
        count, pos = _arg(data, _expect(data, pos, b"\x07", "holder schemes"), 4)
        if count > _MAX_SCHEMES:
            raise DecodeError(f"at most {_MAX_SCHEMES} insurance schemes")
        schemes, pos = _texts(data, pos, count)
        photo = None
        if head == 0xA8:
            pos = _expect(data, pos, b"\x08\x58\x20", "holder photo digest")
            photo, pos = data[pos : pos + 32], pos + 32
    except IndexError:
        raise DecodeError("the holder claim is truncated") from None
    if pos != len(data):
        raise DecodeError("the holder claim is truncated or has trailing bytes")
    card, surname, given, sex, birth, region = fields
    try:
        if len(birth) != 10 or birth[4] != "-" or birth[7] != "-":
            raise ValueError("not YYYY-MM-DD")
        birth_date = date.fromisoformat(birth)
        return Holder(card, surname, given, sex, birth_date, region, tuple(schemes), photo)
    except (ValueError, ValidationError) as exc:  # a bad date, or Holder's own checks
        raise DecodeError(f"the holder data is malformed: {exc}") from None


# --- the canonical reader ------------------------------------------------------------------
# Credentials, proofs and presentations are deterministic CBOR (RFC 8949 §4.2.1) of one fixed
# shape, so the verifier reads them by walking that shape: every head in its shortest form,
# every key the expected one in the expected order, texts valid UTF-8, nothing left over.
# Each message therefore has exactly one accepted encoding, and no general CBOR decoder (tags,
# nesting, allocation by declared length) ever sees the untrusted bytes of the hot path.
# The readers index freely: callers turn IndexError (ran off the end) into DecodeError.

_SHORTEST: Final = (24, 1 << 8, 1 << 16, 1 << 32)
#: exp, nbf, iat: keys 4, 5, 6, each a 32-bit unsigned integer (head 0x1A), as 2036 needs.
_TIMES: Final = struct.Struct(">2sI2sI2sI")


def _arg(data: bytes, pos: int, major: int) -> tuple[int, int]:
    """The argument of the head at `pos`, which must have `major` type and shortest form."""
    initial = data[pos]
    info = initial & 0x1F
    if initial >> 5 != major or info > 27:
        raise DecodeError(f"expected a CBOR item of major type {major} at byte {pos}")
    if info < 24:
        return info, pos + 1
    end = pos + 1 + (1 << (info - 24))
    if end > len(data):
        raise DecodeError("truncated CBOR head")
    value = int.from_bytes(data[pos + 1 : end], "big")
    if value < _SHORTEST[info - 24]:
        raise DecodeError("a CBOR head not in its shortest form (RFC 8949 §4.2.1)")
    return value, end


def _uint(data: bytes, pos: int) -> tuple[int, int]:
    return _arg(data, pos, 0)


def _bstr(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = _arg(data, pos, 2)
    end = pos + length
    if end > len(data):
        raise DecodeError("truncated byte string")
    return data[pos:end], end


def _texts(
    data: bytes, pos: int, count: int, *, first_key: int | None = None
) -> tuple[list[str], int]:
    """`count` consecutive text strings; with `first_key`, each is preceded by its one-byte
    map key, counting up from `first_key`. (One loop, inline: this is the hot path.)"""
    size = len(data)
    texts = []
    key = first_key
    for _ in range(count):
        if key is not None:
            if data[pos] != key:
                raise DecodeError(f"field {key} is missing or out of order")
            pos += 1
            key += 1
        initial = data[pos]
        if 0x60 <= initial < 0x78:  # a text under 24 bytes: the length is in the head
            start = pos + 1
            end = start + initial - 0x60
        else:
            length, start = _arg(data, pos, 3)
            end = start + length
            if length > _MAX_TEXT_BYTES:
                raise DecodeError("a text field is too long")
        if end > size:
            raise DecodeError("a text field is truncated")
        try:
            texts.append(data[start:end].decode("utf-8"))
        except UnicodeDecodeError:
            raise DecodeError("a text field is not valid UTF-8") from None
        pos = end
    return texts, pos


def _tstr(data: bytes, pos: int) -> tuple[str, int]:
    texts, pos = _texts(data, pos, 1)
    return texts[0], pos


def _expect(data: bytes, pos: int, constant: bytes, what: str) -> int:
    end = pos + len(constant)
    if data[pos:end] != constant:
        raise DecodeError(f"the {what} field is missing or not in its canonical form")
    return end


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
        if not isinstance(nonce, bytes) or not 0 < len(nonce) <= _MAX_NONCE:
            raise ValidationError(f"a nonce is 1 to {_MAX_NONCE} bytes")
        payload[P_NONCE] = nonce
    proof = sign1(cbor.dumps(payload), sign=sign, alg=Algorithm.ES256, kid=None)
    return cbor.dumps([credential, proof.encode(tag=False)])


def decode_presentation(body: bytes) -> Presentation:
    """Split a presentation body into the credential bytes and the decoded proof.

    The credential itself is decoded separately (`decode_credential`).

    Raises:
        DecodeError: anything but `[bstr, bstr]` with a proof of exactly the documented form.
    """
    body = cbor.as_bytes(body)
    if len(body) > MAX_PRESENTATION:
        raise DecodeError(f"a presentation is at most {MAX_PRESENTATION} bytes")
    try:
        return _read_presentation(body)
    except IndexError:
        raise DecodeError("the presentation is truncated") from None


def _read_presentation(body: bytes) -> Presentation:
    if body[0] != 0x82:
        raise DecodeError("a presentation is an array of two byte strings")
    credential, pos = _bstr(body, 1)
    proof, pos = _bstr(body, pos)
    if pos != len(body):
        raise DecodeError("trailing bytes after the presentation")
    payload, pos = _bstr(proof, _expect(proof, 0, _PROOF_HEAD, "proof header"))
    signed = _SIG1_PROOF + proof[6:pos]
    if proof[pos : pos + 2] != b"\x58\x40" or len(proof) != pos + 66:
        raise DecodeError("the proof's signature must be 64 bytes and end the proof")
    head = payload[0]
    if (head != 0xA2 and head != 0xA3) or payload[1] != 0x01:
        raise DecodeError("a proof payload holds time (1), digest (2) and optionally nonce (3)")
    time, pos = _uint(payload, 2)
    digest = payload[pos + 3 : pos + 35]
    if time > _MAX_TIME or payload[pos : pos + 3] != b"\x02\x58\x20" or len(digest) != 32:
        raise DecodeError("the proof's time or digest is malformed")
    pos += 35
    nonce = None
    if head == 0xA3:
        nonce, pos = _bstr(payload, _expect(payload, pos, b"\x03", "proof nonce"))
        if not 0 < len(nonce) <= _MAX_NONCE:
            raise DecodeError(f"the proof nonce must be 1 to {_MAX_NONCE} bytes")
    if pos != len(payload):
        raise DecodeError("the proof payload has trailing bytes")
    return Presentation(credential, payload, signed, proof[-64:], time, digest, nonce)


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
