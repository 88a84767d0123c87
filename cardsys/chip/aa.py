"""Active Authentication with ECDSA P-256 (Doc 9303 Part 11 §6.1, BSI TR-03111 §5.2.1).

The card proves it holds the private key whose public half is in DG15 by signing the
terminal's fresh 8-byte challenge on INTERNAL AUTHENTICATE. The signature is the plain format
``r || s`` (32 + 32 bytes) of TR-03111 ``ecdsa-plain-SHA256``
(OID 0.4.0.127.0.7.1.1.4.1.3), hash SHA-256 over the challenge. DG14 announces this with an
ActiveAuthenticationInfo (OID 2.23.136.1.1.5, version 1, signatureAlgorithm = that OID).

`check_aa` is the terminal's check: any mismatch is a `ChipCloneError`.
"""

from __future__ import annotations

from asn1crypto import core
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from cardsys.errors import ChipCloneError, DecodeError

ID_AA = "2.23.136.1.1.5"
ECDSA_PLAIN_SHA256 = "0.4.0.127.0.7.1.1.4.1.3"
CHALLENGE_LENGTH = 8
_COORDINATE = 32


class SecurityInfo(core.Sequence):  # type: ignore[misc]
    """Doc 9303 Part 11 §9.2: protocol, requiredData, optionalData."""

    _fields = [  # noqa: RUF012 - asn1crypto's declarative schema
        ("protocol", core.ObjectIdentifier),
        ("required_data", core.Any),
        ("optional_data", core.Any, {"optional": True}),
    ]


class SecurityInfos(core.SetOf):  # type: ignore[misc]
    _child_spec = SecurityInfo


def active_authentication_info() -> bytes:
    """DER of the SecurityInfos for DG14: one ActiveAuthenticationInfo (ECDSA plain SHA-256)."""
    info = SecurityInfo(
        {
            "protocol": ID_AA,
            "required_data": core.Integer(1),
            "optional_data": core.ObjectIdentifier(ECDSA_PLAIN_SHA256),
        }
    )
    return bytes(SecurityInfos([info]).dump())


def parse_security_infos(der: bytes) -> str:
    """The AA signature algorithm OID announced in DG14's SecurityInfos.

    Raises:
        DecodeError: malformed DER, no ActiveAuthenticationInfo, or a version other than 1.
    """
    try:
        infos = SecurityInfos.load(bytes(der), strict=True)
        for info in infos:
            if info["protocol"].dotted != ID_AA:
                continue
            version = info["required_data"].parse(core.Integer).native
            if version != 1:
                raise DecodeError(f"ActiveAuthenticationInfo version {version} is not 1")
            algorithm = info["optional_data"]
            if algorithm.contents is None:
                raise DecodeError("ActiveAuthenticationInfo without signature algorithm")
            return str(algorithm.parse(core.ObjectIdentifier).dotted)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise DecodeError(f"DG14 SecurityInfos are malformed: {exc}") from None
    raise DecodeError("DG14 has no ActiveAuthenticationInfo")


def public_key_info(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo DER (what DG15 carries)."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key_info(der: bytes) -> ec.EllipticCurvePublicKey:
    """Parse DG15's SubjectPublicKeyInfo; DecodeError unless it is an EC P-256 key."""
    try:
        key = serialization.load_der_public_key(bytes(der))
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"DG15 public key is malformed: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DecodeError("DG15 public key is not ECDSA P-256")
    return key


def sign_challenge(private_key: ec.EllipticCurvePrivateKey, challenge: bytes) -> bytes:
    """The card's answer: ECDSA-SHA256 over the challenge, plain r || s."""
    if len(challenge) != CHALLENGE_LENGTH:
        raise DecodeError(f"AA challenge must be {CHALLENGE_LENGTH} bytes")
    der = private_key.sign(bytes(challenge), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(_COORDINATE, "big") + s.to_bytes(_COORDINATE, "big")


def check_aa(public_key_info: bytes, challenge: bytes, response: bytes) -> None:
    """Raise `ChipCloneError` unless `response` signs `challenge` with DG15's key.

    Raises:
        DecodeError: DG15 does not hold an EC P-256 SubjectPublicKeyInfo.
        ChipCloneError: wrong length, or the signature does not verify.
    """
    key = load_public_key_info(public_key_info)
    if len(challenge) != CHALLENGE_LENGTH:
        raise ChipCloneError(f"AA challenge must be {CHALLENGE_LENGTH} bytes")
    if len(response) != 2 * _COORDINATE:
        raise ChipCloneError("AA response is not a 64-byte plain ECDSA signature")
    r = int.from_bytes(response[:_COORDINATE], "big")
    s = int.from_bytes(response[_COORDINATE:], "big")
    if r == 0 or s == 0:
        raise ChipCloneError("AA signature has a zero component")
    try:
        key.verify(encode_dss_signature(r, s), bytes(challenge), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ChipCloneError(
            "Active Authentication failed: the chip does not hold the DG15 private key"
        ) from None
