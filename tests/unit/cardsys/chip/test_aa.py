"""Active Authentication: plain ECDSA signatures, DG14 info, and clones."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cardsys.chip import aa
from cardsys.errors import ChipCloneError, DecodeError


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_sign_and_check(key: ec.EllipticCurvePrivateKey) -> None:
    challenge = os.urandom(8)
    signature = aa.sign_challenge(key, challenge)
    assert len(signature) == 64
    aa.check_aa(aa.public_key_info(key.public_key()), challenge, signature)


def test_clone_with_another_key(key: ec.EllipticCurvePrivateKey) -> None:
    clone = ec.generate_private_key(ec.SECP256R1())
    challenge = os.urandom(8)
    with pytest.raises(ChipCloneError):
        aa.check_aa(
            aa.public_key_info(key.public_key()), challenge, aa.sign_challenge(clone, challenge)
        )


def test_replayed_answer_to_an_old_challenge(key: ec.EllipticCurvePrivateKey) -> None:
    old = os.urandom(8)
    answer = aa.sign_challenge(key, old)
    with pytest.raises(ChipCloneError):
        aa.check_aa(aa.public_key_info(key.public_key()), os.urandom(8), answer)


@pytest.mark.parametrize("response", [b"", b"\x01" * 63, b"\x00" * 64, b"\x01" * 72])
def test_malformed_responses(key: ec.EllipticCurvePrivateKey, response: bytes) -> None:
    with pytest.raises(ChipCloneError):
        aa.check_aa(aa.public_key_info(key.public_key()), os.urandom(8), response)


def test_challenge_length(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(DecodeError):
        aa.sign_challenge(key, b"1234567")
    with pytest.raises(ChipCloneError):
        aa.check_aa(aa.public_key_info(key.public_key()), b"123456789", b"\x01" * 64)


def test_dg15_must_be_an_ec_p256_key() -> None:
    from cryptography.hazmat.primitives import serialization

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    der = rsa_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(DecodeError):
        aa.load_public_key_info(der)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(DecodeError):
        aa.load_public_key_info(aa.public_key_info(p384))
    with pytest.raises(DecodeError):
        aa.load_public_key_info(b"\x30\x03\x02\x01\x01")


def test_security_infos_round_trip() -> None:
    der = aa.active_authentication_info()
    assert aa.parse_security_infos(der) == aa.ECDSA_PLAIN_SHA256


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"\x31\x00",  # no infos
        bytes.fromhex("31123010060667810801010502010206032a0304"),  # version 2
        bytes.fromhex("310f300d06066781080101020201010600"),  # other protocol
        b"\x31\x05\x30\x03\x02\x01",  # truncated
    ],
)
def test_bad_security_infos(der: bytes) -> None:
    with pytest.raises(DecodeError):
        aa.parse_security_infos(der)
