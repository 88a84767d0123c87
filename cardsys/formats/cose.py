"""COSE_Sign1 (RFC 9052 §4.2) on cbor2 + cryptography, without pycose.

    COSE_Sign1 = [ protected: bstr .cbor header_map / bstr .size 0,
                   unprotected: header_map, payload: bstr, signature: bstr ]

Rules `Sign1.decode` enforces (every failure a `DecodeError`):

1. tag 18 (one-byte or two-byte head) or no tag; no other tag anywhere in the message;
2. a 4-element array; protected is a byte string that is empty or holds a CBOR map;
   unprotected is a map; payload is a byte string (we never use detached payloads, so nil is
   refused); signature is a byte string;
3. header labels are integers or text strings; `alg` is an integer, `kid` a byte string;
4. `crit` (RFC 9052 §3.1) is allowed only in the protected header, must be a non-empty array of
   labels present in the protected header, and may only name labels we process (alg, kid,
   content type, typ); any other critical label means "you must not accept what you do not
   understand", so the message is refused.

Rules `Sign1.verify` enforces (every failure a `SignatureError`):

1. `alg` comes from the protected header only: an `alg` in the unprotected header alone is
   ignored, so the message has no algorithm and is refused;
2. the key type matches the algorithm (an EC key with PS256 is refused, so is a P-384 key with
   ES256), RSA keys are at least 2048 bits;
3. the signature covers Sig_structure ["Signature1", protected_bytes, external_aad, payload]
   (RFC 9052 §4.4) built over the protected bytes *as received*, never re-encoded;
4. ECDSA signatures are raw r||s of exactly twice the curve size (RFC 9053 §2.1).
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from cardsys.errors import DecodeError, SignatureError, ValidationError
from cardsys.formats import cbor
from cardsys.pki import Algorithm

__all__ = [
    "ALG",
    "CONTENT_TYPE",
    "COSE_SIGN1_TAG",
    "CRIT",
    "KID",
    "MAX_MESSAGE",
    "TYP",
    "CoseAlgorithm",
    "PublicKey",
    "Sign1",
    "key_signer",
    "sig_structure",
    "sign1",
]

# Header parameter labels (RFC 9052 §3.1; typ: RFC 9596).
ALG: Final = 1
CRIT: Final = 2
CONTENT_TYPE: Final = 3
KID: Final = 4
TYP: Final = 16

#: CBOR tag of a COSE_Sign1 message (RFC 9052 §2).
COSE_SIGN1_TAG: Final = 18

# Labels we process, so the only ones a `crit` header may name.
_UNDERSTOOD: Final = frozenset({ALG, CONTENT_TYPE, KID, TYP})

#: Largest COSE message `Sign1.decode` accepts by default (a status list is the biggest).
MAX_MESSAGE: Final = 256 * 1024
# Headers are small; nothing legitimate nests deeper than this inside a header map.
_HEADER_DEPTH: Final = 8
# Protected headers up to this size are decoded once and cached (see _decode_protected).
_CACHED_HEADER_SIZE: Final = 128
_CACHED_HEADERS: Final = 256
_header_cache: dict[bytes, Mapping[Any, Any]] = {}
_SCALARS: Final = frozenset({int, str, bytes, bool, float, type(None)})
_EMPTY: Final[Mapping[Any, Any]] = types.MappingProxyType({})


class CoseAlgorithm(enum.IntEnum):
    """COSE algorithm identifiers (IANA "COSE Algorithms"; RFC 9053, RFC 8230)."""

    ES256 = -7
    ES384 = -35
    PS256 = -37
    EDDSA = -8

    @classmethod
    def from_pki(cls, algorithm: Algorithm) -> CoseAlgorithm:
        """The COSE identifier of one of our signer algorithms."""
        return _FROM_PKI[algorithm]


_FROM_PKI: Final = {Algorithm.ES256: CoseAlgorithm.ES256, Algorithm.ES384: CoseAlgorithm.ES384}

# ECDSA algorithms: (curve type, hash, bytes in each of r and s).
_ECDSA: Final[dict[int, tuple[type[ec.EllipticCurve], Callable[[], hashes.HashAlgorithm], int]]] = {
    CoseAlgorithm.ES256: (ec.SECP256R1, hashes.SHA256, 32),
    CoseAlgorithm.ES384: (ec.SECP384R1, hashes.SHA384, 48),
}
_MIN_RSA_BITS: Final = 2048

PublicKey = (
    ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


@dataclass(frozen=True)
class Sign1:
    """A decoded (or freshly signed) COSE_Sign1 message.

    `protected_bytes` is the protected header exactly as received: the signature covers these
    bytes, so they are what `verify` uses, never a re-encoding of `protected`.
    """

    protected: Mapping[int | str, Any]
    unprotected: Mapping[int | str, Any]
    payload: bytes
    signature: bytes
    protected_bytes: bytes

    @property
    def kid(self) -> bytes | None:
        """The key id; the protected header wins over the unprotected one."""
        value = self.protected.get(KID, self.unprotected.get(KID))
        return value if isinstance(value, bytes) else None

    @property
    def alg(self) -> int | None:
        """The algorithm, from the protected header only (an unprotected `alg` is ignored)."""
        value = self.protected.get(ALG)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @classmethod
    def decode(cls, data: bytes, *, max_size: int = MAX_MESSAGE) -> Sign1:
        """Decode a tagged or untagged COSE_Sign1 message (rules: module docstring).

        Raises:
            DecodeError: malformed, oversized, or not a COSE_Sign1 structure.
        """
        data = cbor.as_bytes(data)
        # Tag 18 is accepted only as the outermost item, so we strip it here and let the CBOR
        # layer refuse any tag inside.
        if data[:1] == b"\xd2":
            data = data[1:]
        elif data[:2] == b"\xd8\x12":
            data = data[2:]
        message = cbor.loads(data, max_size=max_size)
        if not isinstance(message, list) or len(message) != 4:
            raise DecodeError("a COSE_Sign1 message is an array of 4 elements")
        protected_bytes, unprotected, payload, signature = message
        if not isinstance(protected_bytes, bytes):
            raise DecodeError("the COSE protected header must be a byte string")
        if not isinstance(unprotected, dict):
            raise DecodeError("the COSE unprotected header must be a map")
        if payload is None:
            raise DecodeError("detached COSE payloads are not accepted")
        if not isinstance(payload, bytes):
            raise DecodeError("the COSE payload must be a byte string")
        if not isinstance(signature, bytes):
            raise DecodeError("the COSE signature must be a byte string")
        protected = _decode_protected(protected_bytes)
        _check_headers(protected, unprotected)
        return cls(
            protected=protected,
            unprotected=types.MappingProxyType(unprotected),
            payload=payload,
            signature=signature,
            protected_bytes=protected_bytes,
        )

    def encode(self, *, tag: bool = True) -> bytes:
        """The message as CBOR, tagged 18 by default (the protected bytes are kept verbatim)."""
        body = cbor.dumps(
            [self.protected_bytes, dict(self.unprotected), self.payload, self.signature]
        )
        return b"\xd2" + body if tag else body

    def verify(self, public_key: PublicKey, *, external_aad: bytes = b"") -> None:
        """Raise `SignatureError` unless `public_key` signed this message (rules: module doc)."""
        alg = self.alg
        if alg is None:
            raise SignatureError("the COSE message has no algorithm in its protected header")
        to_be_signed = sig_structure(self.protected_bytes, external_aad, self.payload)
        try:
            _verify(alg, public_key, self.signature, to_be_signed)
        except InvalidSignature:
            raise SignatureError("the COSE signature does not verify with this key") from None


def sig_structure(protected_bytes: bytes, external_aad: bytes, payload: bytes) -> bytes:
    """The deterministic encoding of ["Signature1", protected, external_aad, payload]."""
    return b"".join(
        (
            b"\x84\x6aSignature1",
            cbor.encode_head(2, len(protected_bytes)),
            protected_bytes,
            cbor.encode_head(2, len(external_aad)),
            external_aad,
            cbor.encode_head(2, len(payload)),
            payload,
        )
    )


def _verify(alg: int, public_key: object, signature: bytes, data: bytes) -> None:
    ecdsa = _ECDSA.get(alg)
    if ecdsa is not None:
        curve, hash_type, size = ecdsa
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, curve
        ):
            raise SignatureError(f"COSE algorithm {alg} needs an ECDSA {curve.name} key")
        if len(signature) != 2 * size:
            raise SignatureError(f"an ECDSA signature for COSE algorithm {alg} is {2 * size} bytes")
        der = encode_dss_signature(
            int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        )
        public_key.verify(der, data, ec.ECDSA(hash_type()))
    elif alg == CoseAlgorithm.PS256:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignatureError("COSE algorithm PS256 needs an RSA key")
        if public_key.key_size < _MIN_RSA_BITS:
            raise SignatureError(f"RSA keys under {_MIN_RSA_BITS} bits are refused")
        # RFC 8230 §2: PSS with SHA-256, MGF1 with SHA-256, salt as long as the hash.
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        public_key.verify(signature, data, pss, hashes.SHA256())
    elif alg == CoseAlgorithm.EDDSA:
        if not isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            raise SignatureError("COSE algorithm EdDSA needs an Ed25519 or Ed448 key")
        public_key.verify(signature, data)
    else:
        raise SignatureError(f"COSE algorithm {alg} is not supported")


def _decode_protected(protected_bytes: bytes) -> Mapping[Any, Any]:
    # RFC 9052 §3: an empty protected header is a zero-length bstr; recipients also accept an
    # encoded empty map.
    if not protected_bytes:
        return _EMPTY
    cached = _header_cache.get(protected_bytes)
    if cached is not None:
        return cached
    header = cbor.loads(protected_bytes, max_depth=_HEADER_DEPTH)
    if not isinstance(header, dict):
        raise DecodeError("the COSE protected header must encode a map")
    proxy = types.MappingProxyType(header)
    # A terminal meets the same few protected headers ({alg, kid, typ} of each signer) over
    # and over, and decoding is a pure function of the bytes, so small ones are kept. Only
    # headers whose values are all immutable scalars are shared: a list inside (crit) could be
    # altered by a caller and would then poison later messages.
    if len(protected_bytes) <= _CACHED_HEADER_SIZE and all(
        type(value) in _SCALARS for value in header.values()
    ):
        if len(_header_cache) >= _CACHED_HEADERS:
            _header_cache.clear()
        _header_cache[protected_bytes] = proxy
    return proxy


def _check_headers(protected: Mapping[Any, Any], unprotected: Mapping[Any, Any]) -> None:
    for header in (protected, unprotected):
        for label in header:
            if isinstance(label, bytes):
                raise DecodeError("COSE header labels are integers or text strings")
        if KID in header and not isinstance(header[KID], bytes):
            raise DecodeError("the COSE kid must be a byte string")
    alg = protected.get(ALG)
    if ALG in protected and (not isinstance(alg, int) or isinstance(alg, bool)):
        raise DecodeError("the COSE alg must be an integer")
    if CRIT in unprotected:
        raise DecodeError("the COSE crit header must be protected")
    if CRIT in protected:
        crit = protected[CRIT]
        if not isinstance(crit, list) or not crit:
            raise DecodeError("the COSE crit header must be a non-empty array")
        for label in crit:
            if label not in protected:
                raise DecodeError(f"critical COSE header {label!r} is missing")
            if label not in _UNDERSTOOD:
                raise DecodeError(f"critical COSE header {label!r} is not understood")


def sign1(
    payload: bytes,
    *,
    sign: Callable[[bytes], bytes],
    alg: Algorithm,
    kid: bytes | None,
    protected_extra: Mapping[Any, Any] | None = None,
    unprotected: Mapping[Any, Any] | None = None,
    external_aad: bytes = b"",
) -> Sign1:
    """Build and sign a COSE_Sign1 message over `payload` with an ECDSA signer.

    Args:
        payload: the bytes to sign (typically encoded CWT claims).
        sign: returns a DER ECDSA signature over its argument, hashed per `alg`
            (`cardsys.pki.Signer.sign`, or `key_signer(private_key)`).
        alg: ES256 or ES384; goes in the protected header.
        kid: the signer's key id, put in the protected header (None: no kid).
        protected_extra: further protected headers (e.g. typ); may not repeat alg or kid.
        unprotected: unprotected headers; may not repeat a protected label.
        external_aad: application data covered by the signature but not carried.

    Raises:
        ValidationError: a header repeats alg/kid, or the signer returned a signature that
            does not fit the algorithm's size.
    """
    protected: dict[int | str, Any] = {ALG: int(CoseAlgorithm.from_pki(alg))}
    if kid is not None:
        protected[KID] = kid
    for label, value in (protected_extra or {}).items():
        if label in protected:
            raise ValidationError(f"protected_extra may not set header {label!r}")
        protected[label] = value
    unprotected_map = dict(unprotected or {})
    if set(unprotected_map) & set(protected):
        raise ValidationError("a header label may not be both protected and unprotected")
    protected_bytes = cbor.dumps(protected)
    to_be_signed = sig_structure(protected_bytes, external_aad, payload)
    signature = _der_to_raw(sign(to_be_signed), _ECDSA[CoseAlgorithm.from_pki(alg)][2])
    return Sign1(
        protected=types.MappingProxyType(protected),
        unprotected=types.MappingProxyType(unprotected_map),
        payload=payload,
        signature=signature,
        protected_bytes=protected_bytes,
    )


def _der_to_raw(der: bytes, size: int) -> bytes:
    # RFC 9053 §2.1: r and s as big-endian integers, each left-padded to the curve size.
    try:
        r, s = decode_dss_signature(der)
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    except (ValueError, OverflowError):
        raise ValidationError(
            f"the signer did not return a DER ECDSA signature fitting {size}-byte r and s"
        ) from None


def key_signer(private_key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    """A `sign` callable for `sign1` from a P-256 or P-384 private key (hash by its curve).

    Raises:
        ValidationError: a key on any other curve.
    """
    if isinstance(private_key.curve, ec.SECP256R1):
        hash_type: Callable[[], hashes.HashAlgorithm] = hashes.SHA256
    elif isinstance(private_key.curve, ec.SECP384R1):
        hash_type = hashes.SHA384
    else:
        raise ValidationError(f"no COSE algorithm of ours uses curve {private_key.curve.name}")

    def sign(data: bytes) -> bytes:
        return private_key.sign(data, ec.ECDSA(hash_type()))

    return sign
