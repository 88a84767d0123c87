"""Passphrase-encrypted PKCS#8 private keys: PBES2 with scrypt and AES-256-CBC.

Why not cryptography's `BestAvailableEncryption`: it derives the key with PBKDF2 at 2048
iterations, which an attacker with the file tests passphrases against cheaply. scrypt
(RFC 7914) is memory-hard; its PBES2 form is defined in RFC 7914 §7 (PBES2 itself in RFC 8018
§6.2 and A.4). We only *write* the structure here; reading goes through cryptography's own
PKCS#8 parser after we have checked the structure and bounded the scrypt cost a file may ask
for (a file demanding N = 2^30 would otherwise make every start-up eat memory and time).

Note: OpenSSL's command line caps scrypt at 32 MiB when it reads PBES2 files, so it can read
files written with `log2_n <= 14` only; cardsys itself reads every cost up to `MAX_LOG2_N`.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from asn1crypto import core, pem
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from cardsys.errors import KeyStoreError, WrongPassphraseError

PBES2 = "1.2.840.113549.1.5.13"  # RFC 8018 A.4
SCRYPT = "1.3.6.1.4.1.11591.4.11"  # RFC 7914 §7
AES256_CBC = "2.16.840.1.101.3.4.1.42"  # NIST CSOR, RFC 3565 §4.1

#: 2^17 x r=8 needs 128 MiB and ~0.3 s: the passphrase guards long-lived signing keys.
DEFAULT_LOG2_N = 17
#: Below this the KDF stops being a real obstacle; tests use it to stay fast.
MIN_LOG2_N = 14
MAX_LOG2_N = 20
BLOCK_SIZE = 8
PARALLELISM = 1
PEM_LABEL = "ENCRYPTED PRIVATE KEY"
#: An encrypted P-384 key is about 300 bytes; anything far larger is not ours.
MAX_FILE_SIZE = 8192


class _ScryptParams(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("salt", core.OctetString),
        ("cost_parameter", core.Integer),
        ("block_size", core.Integer),
        ("parallelization_parameter", core.Integer),
        ("key_length", core.Integer, {"optional": True}),
    ]


class _KeyDerivation(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("algorithm", core.ObjectIdentifier),
        ("parameters", _ScryptParams),
    ]


class _EncryptionScheme(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("algorithm", core.ObjectIdentifier),
        ("parameters", core.OctetString),
    ]


class _Pbes2Params(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("key_derivation_func", _KeyDerivation),
        ("encryption_scheme", _EncryptionScheme),
    ]


class _EncryptionAlgorithm(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("algorithm", core.ObjectIdentifier),
        ("parameters", _Pbes2Params),
    ]


class _EncryptedPrivateKeyInfo(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("encryption_algorithm", _EncryptionAlgorithm),
        ("encrypted_data", core.OctetString),
    ]


def encrypt_private_key(
    key: ec.EllipticCurvePrivateKey, passphrase: bytes, *, log2_n: int = DEFAULT_LOG2_N
) -> bytes:
    """The key as PEM `ENCRYPTED PRIVATE KEY` (PKCS#8, PBES2/scrypt/AES-256-CBC).

    Raises:
        KeyStoreError: an empty passphrase or a cost outside [MIN_LOG2_N, MAX_LOG2_N].
    """
    if not passphrase:
        raise KeyStoreError("refusing to encrypt a key with an empty passphrase")
    if not MIN_LOG2_N <= log2_n <= MAX_LOG2_N:
        raise KeyStoreError(f"scrypt cost 2^{log2_n} is outside 2^{MIN_LOG2_N}..2^{MAX_LOG2_N}")
    salt, iv = os.urandom(16), os.urandom(16)
    wrapping_key = _derive(passphrase, salt, 1 << log2_n)
    plain = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(wrapping_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    document = _EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": PBES2,
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": SCRYPT,
                        "parameters": {
                            "salt": salt,
                            "cost_parameter": 1 << log2_n,
                            "block_size": BLOCK_SIZE,
                            "parallelization_parameter": PARALLELISM,
                            "key_length": 32,
                        },
                    },
                    "encryption_scheme": {"algorithm": AES256_CBC, "parameters": iv},
                },
            },
            "encrypted_data": ciphertext,
        }
    )
    armored: bytes = pem.armor(PEM_LABEL, document.dump())
    return armored


def decrypt_private_key(data: bytes, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    """The EC private key inside an encrypted PEM written by `encrypt_private_key`.

    Raises:
        KeyStoreError: the file is not an encrypted key of the expected form (a key in the
            clear is refused too), or asks for an excessive scrypt cost.
        WrongPassphraseError: the passphrase does not decrypt it.
    """
    der = _unarmor(data)
    _check_structure(der)
    try:
        key = serialization.load_der_private_key(der, passphrase)
    except ValueError as exc:
        # CBC carries no authentication tag: a wrong passphrase and a corrupted ciphertext
        # look the same. The structure was checked above, so the passphrase is the suspect.
        raise WrongPassphraseError("the passphrase does not decrypt the key file") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyStoreError("the key file does not hold an ECDSA key")
    return key


def _derive(passphrase: bytes, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=BLOCK_SIZE, p=PARALLELISM).derive(passphrase)


def _unarmor(data: bytes) -> bytes:
    if len(data) > MAX_FILE_SIZE:
        raise KeyStoreError("the key file is too large to be a key")
    if not pem.detect(data):
        raise KeyStoreError("the key file is not PEM")
    try:
        label, _headers, der = pem.unarmor(data)
    except ValueError as exc:
        raise KeyStoreError("the key file's PEM armour is damaged") from exc
    if label != PEM_LABEL:
        raise KeyStoreError(f"the key file holds {label!r}, not an encrypted private key")
    result: bytes = der
    return result


def _check_structure(der: bytes) -> None:
    try:
        document = _EncryptedPrivateKeyInfo.load(der, strict=True)
        algorithm = document["encryption_algorithm"]
        kdf = algorithm["parameters"]["key_derivation_func"]
        scheme = algorithm["parameters"]["encryption_scheme"]
        params = kdf["parameters"]
        n, r, p = (
            params["cost_parameter"].native,
            params["block_size"].native,
            params["parallelization_parameter"].native,
        )
        oids = (algorithm["algorithm"].dotted, kdf["algorithm"].dotted, scheme["algorithm"].dotted)
        iv = scheme["parameters"].native
        ciphertext = document["encrypted_data"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise KeyStoreError("the key file is not a PBES2/scrypt encrypted PKCS#8 key") from exc
    if oids != (PBES2, SCRYPT, AES256_CBC):
        raise KeyStoreError("the key file is not encrypted with PBES2, scrypt and AES-256-CBC")
    if not (
        isinstance(n, int)
        and n.bit_count() == 1
        and MIN_LOG2_N <= n.bit_length() - 1 <= MAX_LOG2_N
        and r == BLOCK_SIZE
        and p == PARALLELISM
    ):
        raise KeyStoreError("the key file asks for scrypt parameters outside the allowed range")
    if len(iv) != 16 or not ciphertext or len(ciphertext) % 16:
        raise KeyStoreError("the key file's ciphertext is malformed")
