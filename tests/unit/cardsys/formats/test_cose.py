"""cardsys.formats.cose: COSE_Sign1 against RFC 9052 / RFC 8392 vectors and an attacker."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from cardsys.errors import DecodeError, SignatureError, ValidationError
from cardsys.formats import cbor, cose
from cardsys.formats.cose import CoseAlgorithm, Sign1, key_signer, sign1
from cardsys.pki import Algorithm


def _b64(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def _ec_key(x: int, y: int, curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()


# cose-wg/Examples key "11" (P-256), used by RFC 9052 Appendix C and the sign1 tests.
KEY_11 = _ec_key(
    _b64("usWxHK2PmfnHKwXPS54m0kTcGJ90UiglWiGahtagnv8"),
    _b64("IBOL-C3BttVivg-lSreASjpkttcsz-1rb7btKLv8EX4"),
    ec.SECP256R1(),
)
# cose-wg/Examples key "P384" (ecdsa-examples/ecdsa-sig-02.json).
KEY_P384 = _ec_key(
    _b64("kTJyP2KSsBBhnb4kjWmMF7WHVsY55xUPgb7k64rDcjatChoZ1nvjKmYmPh5STRKc"),
    _b64("mM0weMVU2DKsYDxDJkEP9hZiRZtB8fPfXbzINZj_fF7YQRynNWedHEyzAJOX2e8s"),
    ec.SECP384R1(),
)
# cose-wg/Examples key "ed448" (eddsa-examples/eddsa-sig-02.json).
KEY_ED448 = ed448.Ed448PublicKey.from_public_bytes(
    bytes.fromhex(
        "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778"
        "edf124769b46c7061bd6783df1e50f6cd1fa1abeafe8256180"
    )
)
# RFC 8392 Appendix A.2.3: the ECDSA P-256 key of the signed CWT example.
KEY_RFC8392 = _ec_key(
    int("143329cce7868e416927599cf65a34f3ce2ffda55a7eca69ed8919a394d42f0f", 16),
    int("60f7f1a780d8a783bfb7a2dd6b2796e8128dbbcef9d3d168db9529971a36e7b9", 16),
    ec.SECP256R1(),
)

CONTENT = b"This is the content."

# (name, message hex, key, external aad hex, kid, expected ToBeSign hex)
VALID_VECTORS: list[tuple[str, str, Any, str, bytes, str]] = [
    (
        # RFC 9052 Appendix C.2.1 "Single ECDSA Signature".
        "rfc9052-c.2.1",
        "D28443A10126A10442313154546869732069732074686520636F6E74656E742E5840"
        "8EB33E4CA31D1C465AB05AAC34CC6B23D58FEF5C083106C4D25A91AEF0B0117E"
        "2AF9A291AA32E14AB834DC56ED2A223444547E01F11D3B0916E5A4C345CACB36",
        KEY_11,
        "",
        b"11",
        "846A5369676E61747572653143A101264054546869732069732074686520636F6E74656E742E",
    ),
    (
        "ecdsa-sig-01 (ES256, content type protected)",
        "D28445A201260300A10442313154546869732069732074686520636F6E74656E742E5840"
        "EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1"
        "72727F48461FABBBA2E343492DDECAC3983686250BC68E9F1A7A07D41225B59F",
        KEY_11,
        "",
        b"11",
        "846A5369676E61747572653145A2012603004054546869732069732074686520636F6E74656E742E",
    ),
    (
        "ecdsa-sig-02 (ES384)",
        "D28444A1013822A104445033383454546869732069732074686520636F6E74656E742E5860"
        "B8F85EFF78C88F5351CED2F1887B79B296490795594B62E41E22529BB90208B7"
        "D8CDDD4A46D0E9C986464D83D0A5D1EDF39B3E2C5750364230D0E8D76460D880"
        "8E76C83830FBBD1978CC174066EB437F17887979ECF027DCC9D51BAF6C4FD8C0",
        KEY_P384,
        "",
        b"P384",
        "846A5369676E61747572653144A10138224054546869732069732074686520636F6E74656E742E",
    ),
    (
        "sign-pass-02 (external aad)",
        "D28443A10126A10442313154546869732069732074686520636F6E74656E742E5840"
        "EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1"
        "55388B10C4F1B59A6733EAB416870A945111A4B2FBDBEF33A77234B1DEFF2F9B",
        KEY_11,
        "11aa22bb33cc44dd55006699",
        b"11",
        "846A5369676E61747572653143A101264C11AA22BB33CC44DD5500669954546869732069732074"
        "686520636F6E74656E742E",
    ),
    (
        "sign-pass-03 (untagged)",
        "8443A10126A10442313154546869732069732074686520636F6E74656E742E5840"
        "EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1"
        "9F43D6C6BA654472DA301B645B293C9BA939295B97C4BDB847782BFF384C5794",
        KEY_11,
        "",
        b"11",
        "846A5369676E61747572653143A101264054546869732069732074686520636F6E74656E742E",
    ),
    (
        "eddsa-sig-02 (Ed448)",
        "D28443A10127A10445336434343854546869732069732074686520636F6E74656E742E5872"
        "988240A3A2F189BD486DE14AA77F54686C576A09F2E7ED9BAE910DF9139C2AC3BE7C27B7E10A20FA17C9"
        "D57D3510A2CF1F634BC0345AB9BE00849842171D1E9E98B2674C0E38BFCF6C557A1692B01B71015A47AC"
        "9F7748840CAD1DA80CBB5B349309FEBB912672B377C8B2072AF1598B3700",
        KEY_ED448,
        "",
        b"3d448",
        "846A5369676E61747572653143A101274054546869732069732074686520636F6E74656E742E",
    ),
]

RFC8392_SIGNED_CWT = bytes.fromhex(
    "d28443a10126a104524173796d6d657472696345434453413235365850a70175636f"
    "61703a2f2f61732e6578616d706c652e636f6d02656572696b77037818636f61703a"
    "2f2f6c696768742e6578616d706c652e636f6d041a5612aeb0051a5610d9f0061a56"
    "10d9f007420b7158405427c1ff28d23fbad1f29c4c7c6a555e601d6fa29f9179bc3d"
    "7438bacaca5acd08c8d4d4f96131680c429a01f85951ecee743a52b9b63632c57209"
    "120e1c9e30"
)


@pytest.mark.parametrize(
    ("name", "message", "key", "aad", "kid", "to_be_signed"),
    VALID_VECTORS,
    ids=[v[0] for v in VALID_VECTORS],
)
def test_published_vectors_verify(
    name: str, message: str, key: Any, aad: str, kid: bytes, to_be_signed: str
) -> None:
    decoded = Sign1.decode(bytes.fromhex(message))
    assert decoded.payload == CONTENT
    assert decoded.kid == kid
    assert cose.sig_structure(
        decoded.protected_bytes, bytes.fromhex(aad), decoded.payload
    ) == bytes.fromhex(to_be_signed)
    decoded.verify(key, external_aad=bytes.fromhex(aad))


@pytest.mark.parametrize(
    ("name", "message", "key", "aad", "kid", "to_be_signed"),
    VALID_VECTORS,
    ids=[v[0] for v in VALID_VECTORS],
)
def test_published_vectors_re_encode_byte_for_byte(
    name: str, message: str, key: Any, aad: str, kid: bytes, to_be_signed: str
) -> None:
    raw = bytes.fromhex(message)
    decoded = Sign1.decode(raw)
    assert decoded.encode(tag=raw[0] == 0xD2) == raw


def test_rfc8392_signed_cwt_verifies_with_the_appendix_key() -> None:
    message = Sign1.decode(RFC8392_SIGNED_CWT)
    assert message.alg == CoseAlgorithm.ES256
    # A.3 carries its kid in the unprotected header only.
    assert message.kid == b"AsymmetricECDSA256"
    assert cose.KID not in message.protected
    message.verify(KEY_RFC8392)
    with pytest.raises(SignatureError):
        message.verify(KEY_11)


def test_sign_pass_01_is_refused_by_our_policy() -> None:
    # cose-wg sign-pass-01 ("Redo protected"): the signer signed an empty protected header
    # (h''), the message carries it re-encoded as h'A0', and alg sits in the unprotected
    # header. A verifier passes it only by re-encoding the protected header and trusting an
    # unprotected alg; we do neither, so it fails twice over.
    raw = bytes.fromhex(
        "D28441A0A201260442313154546869732069732074686520636F6E74656E742E5840"
        "EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1"
        "1A02E5F0344BF2D4EE5C7FD75A68A9F5E0B3CC1F1FC1409C189566586FF9D610"
    )
    message = Sign1.decode(raw)
    assert message.protected == {}
    assert message.protected_bytes == b"\xa0"
    assert message.unprotected[cose.ALG] == -7
    assert message.alg is None
    with pytest.raises(SignatureError, match="no algorithm"):
        message.verify(KEY_11)
    # The signature is genuine over the header the signer used (h'', the vector's ToBeSign),
    # and does not verify over the bytes the message actually carries.
    signed_tbs = bytes.fromhex(
        "846A5369676E617475726531404054546869732069732074686520636F6E74656E742E"
    )
    received_tbs = cose.sig_structure(message.protected_bytes, b"", message.payload)
    assert received_tbs != signed_tbs
    der = encode_dss_signature(
        int.from_bytes(message.signature[:32], "big"), int.from_bytes(message.signature[32:], "big")
    )
    KEY_11.verify(der, signed_tbs, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        KEY_11.verify(der, received_tbs, ec.ECDSA(hashes.SHA256()))


SIGN_FAILURES: list[tuple[str, str, type[Exception]]] = [
    (
        "sign-fail-01 wrong CBOR tag 998",
        "D903E68443A10126A10442313154546869732069732074686520636F6E74656E742E5840"
        "EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1"
        "9F43D6C6BA654472DA301B645B293C9BA939295B97C4BDB847782BFF384C5794",
        DecodeError,
    ),
    (
        "sign-fail-02 payload changed",
        "D28443A10126A10442313154546869732069732074686520636F6E74656E742F5840"
        "EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1"
        "9F43D6C6BA654472DA301B645B293C9BA939295B97C4BDB847782BFF384C5794",
        SignatureError,
    ),
    (
        "sign-fail-03 unknown algorithm -999",
        "D28445A1013903E6A10442313154546869732069732074686520636F6E74656E742E5840"
        "EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1"
        "9F43D6C6BA654472DA301B645B293C9BA939295B97C4BDB847782BFF384C5794",
        SignatureError,
    ),
    (
        "sign-fail-04 text algorithm",
        "D2844AA10167756E6B6E6F776EA10442313154546869732069732074686520636F6E74656E742E5840"
        "EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1"
        "9F43D6C6BA654472DA301B645B293C9BA939295B97C4BDB847782BFF384C5794",
        DecodeError,
    ),
    (
        "sign-fail-06 protected header added",
        "D28445A201260300A10442313154546869732069732074686520636F6E74656E742E5840"
        "EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1"
        "9F43D6C6BA654472DA301B645B293C9BA939295B97C4BDB847782BFF384C5794",
        SignatureError,
    ),
    (
        "sign-fail-07 protected header removed",
        "D28443A10126A10442313154546869732069732074686520636F6E74656E742E5840"
        "EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1"
        "72727F48461FABBBA2E343492DDECAC3983686250BC68E9F1A7A07D41225B59F",
        SignatureError,
    ),
]


@pytest.mark.parametrize(
    ("name", "message", "error"), SIGN_FAILURES, ids=[f[0] for f in SIGN_FAILURES]
)
def test_published_failure_vectors_are_refused(
    name: str, message: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        Sign1.decode(bytes.fromhex(message)).verify(KEY_11)


# --- our own messages ------------------------------------------------------------------


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def p384() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _message(key: ec.EllipticCurvePrivateKey, alg: Algorithm = Algorithm.ES256) -> Sign1:
    return sign1(
        b"\xa1\x01\x63abc", sign=key_signer(key), alg=alg, kid=b"kid-0001", unprotected=None
    )


@pytest.mark.parametrize("alg", [Algorithm.ES256, Algorithm.ES384])
def test_sign_then_verify(
    alg: Algorithm, p256: ec.EllipticCurvePrivateKey, p384: ec.EllipticCurvePrivateKey
) -> None:
    key = p256 if alg is Algorithm.ES256 else p384
    message = _message(key, alg)
    assert message.alg == CoseAlgorithm.from_pki(alg)
    assert message.kid == b"kid-0001"
    assert cose.KID in message.protected  # kid is protected by the signature
    assert len(message.signature) == (64 if alg is Algorithm.ES256 else 96)
    for tag in (True, False):
        decoded = Sign1.decode(message.encode(tag=tag))
        assert decoded == message
        decoded.verify(key.public_key())


def test_tag_forms(p256: ec.EllipticCurvePrivateKey) -> None:
    message = _message(p256)
    tagged, untagged = message.encode(), message.encode(tag=False)
    assert tagged[0] == 0xD2
    assert untagged[0] == 0x84
    assert tagged[1:] == untagged
    # The two-byte form of tag 18 is the same message.
    Sign1.decode(b"\xd8\x12" + untagged).verify(p256.public_key())


def test_every_single_bit_flip_is_refused(p256: ec.EllipticCurvePrivateKey) -> None:
    encoded = _message(p256).encode()
    public = p256.public_key()
    for bit in range(8 * len(encoded)):
        tampered = bytearray(encoded)
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises((DecodeError, SignatureError)):
            Sign1.decode(bytes(tampered)).verify(public)


def test_truncations_are_refused(p256: ec.EllipticCurvePrivateKey) -> None:
    encoded = _message(p256).encode()
    for length in range(len(encoded)):
        with pytest.raises(DecodeError):
            Sign1.decode(encoded[:length])


def test_wrong_key_is_refused(
    p256: ec.EllipticCurvePrivateKey, p384: ec.EllipticCurvePrivateKey
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError, match="does not verify"):
        _message(p256).verify(other.public_key())
    with pytest.raises(SignatureError):
        _message(p384, Algorithm.ES384).verify(ec.generate_private_key(ec.SECP384R1()).public_key())


def test_key_type_must_match_the_algorithm(
    p256: ec.EllipticCurvePrivateKey,
    p384: ec.EllipticCurvePrivateKey,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    es256, es384 = _message(p256), _message(p384, Algorithm.ES384)
    wrong: list[tuple[Sign1, Any]] = [
        (es256, p384.public_key()),
        (es256, rsa_key.public_key()),
        (es256, ed25519.Ed25519PrivateKey.generate().public_key()),
        (es384, p256.public_key()),
    ]
    for message, key in wrong:
        with pytest.raises(SignatureError, match="needs"):
            message.verify(key)


def _raw_message(
    protected: dict[Any, Any], payload: bytes, sign: Callable[[bytes], bytes]
) -> bytes:
    protected_bytes = cbor.dumps(protected)
    signature = sign(cose.sig_structure(protected_bytes, b"", payload))
    return b"\xd2" + cbor.dumps([protected_bytes, {}, payload, signature])


def test_eddsa_ed25519(p256: ec.EllipticCurvePrivateKey) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = _raw_message({cose.ALG: CoseAlgorithm.EDDSA}, b"payload", key.sign)
    message = Sign1.decode(raw)
    message.verify(key.public_key())
    with pytest.raises(SignatureError):
        message.verify(ed25519.Ed25519PrivateKey.generate().public_key())
    with pytest.raises(SignatureError, match="needs"):
        message.verify(p256.public_key())


def test_ps256(rsa_key: rsa.RSAPrivateKey, p256: ec.EllipticCurvePrivateKey) -> None:
    def pss(salt: int) -> Callable[[bytes], bytes]:
        mgf = padding.MGF1(hashes.SHA256())
        return lambda data: rsa_key.sign(data, padding.PSS(mgf, salt), hashes.SHA256())

    good = Sign1.decode(_raw_message({cose.ALG: CoseAlgorithm.PS256}, b"payload", pss(32)))
    good.verify(rsa_key.public_key())
    with pytest.raises(SignatureError, match="needs"):
        good.verify(p256.public_key())
    # RFC 8230 fixes the salt at the hash length; another salt length is not PS256.
    other_salt = Sign1.decode(_raw_message({cose.ALG: CoseAlgorithm.PS256}, b"payload", pss(20)))
    with pytest.raises(SignatureError):
        other_salt.verify(rsa_key.public_key())


def test_short_rsa_keys_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)

    def sign(data: bytes) -> bytes:
        mgf = padding.MGF1(hashes.SHA256())
        return small.sign(data, padding.PSS(mgf, 32), hashes.SHA256())

    message = Sign1.decode(_raw_message({cose.ALG: CoseAlgorithm.PS256}, b"x", sign))
    with pytest.raises(SignatureError, match="2048"):
        message.verify(small.public_key())


@pytest.mark.parametrize("length", [0, 63, 65, 70, 72])
def test_ecdsa_signature_of_the_wrong_length(p256: ec.EllipticCurvePrivateKey, length: int) -> None:
    message = _message(p256)
    forged = dataclasses.replace(message, signature=message.signature.ljust(length, b"\0")[:length])
    with pytest.raises(SignatureError):
        forged.verify(p256.public_key())


def test_der_signature_is_not_accepted_as_cose(p256: ec.EllipticCurvePrivateKey) -> None:
    message = _message(p256)
    tbs = cose.sig_structure(message.protected_bytes, b"", message.payload)
    der = p256.sign(tbs, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(SignatureError):
        dataclasses.replace(message, signature=der).verify(p256.public_key())


def test_external_aad_is_bound(p256: ec.EllipticCurvePrivateKey) -> None:
    message = sign1(
        b"x", sign=key_signer(p256), alg=Algorithm.ES256, kid=None, external_aad=b"nonce-1"
    )
    message.verify(p256.public_key(), external_aad=b"nonce-1")
    for aad in (b"", b"nonce-2"):
        with pytest.raises(SignatureError):
            message.verify(p256.public_key(), external_aad=aad)


def test_kid_protected_wins_and_unprotected_only_is_read(p256: ec.EllipticCurvePrivateKey) -> None:
    both = sign1(
        b"x", sign=key_signer(p256), alg=Algorithm.ES256, kid=b"protected", unprotected={99: 1}
    )
    raw = cbor.dumps([both.protected_bytes, {cose.KID: b"unprotected"}, b"x", both.signature])
    # RFC 9052 asks senders not to repeat a label; readers of other issuers' tokens meet it.
    assert Sign1.decode(raw).kid == b"protected"
    only = sign1(
        b"x", sign=key_signer(p256), alg=Algorithm.ES256, kid=None, unprotected={cose.KID: b"u"}
    )
    decoded = Sign1.decode(only.encode())
    assert cose.KID not in decoded.protected
    assert decoded.kid == b"u"
    decoded.verify(p256.public_key())
    assert Sign1.decode(_message(p256).encode()).kid == b"kid-0001"


def test_alg_only_in_unprotected_is_refused_on_verify(p256: ec.EllipticCurvePrivateKey) -> None:
    protected = cbor.dumps({cose.KID: b"k"})
    signature = _der_free_sign(p256, cose.sig_structure(protected, b"", b"x"))
    message = Sign1.decode(cbor.dumps([protected, {cose.ALG: -7}, b"x", signature]))
    assert message.alg is None
    with pytest.raises(SignatureError):
        message.verify(p256.public_key())


def _der_free_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_protected_bytes_are_verified_as_received(p256: ec.EllipticCurvePrivateKey) -> None:
    # {1: -7} with a non-minimal label (0x18 0x01): a re-encoding would change the bytes and
    # break the signature; verifying the bytes as received must still succeed.
    protected = bytes.fromhex("a1180126")
    signature = _der_free_sign(p256, cose.sig_structure(protected, b"", b"x"))
    raw = b"\xd2" + cbor.dumps([protected, {}, b"x", signature])
    message = Sign1.decode(raw)
    assert message.protected == {1: -7}
    assert message.protected_bytes == protected
    message.verify(p256.public_key())
    assert message.encode() == raw


STRUCTURE_ERRORS: list[tuple[str, Any]] = [
    ("not an array", {1: 2}),
    ("three elements", [b"", {}, b"x"]),
    ("five elements", [b"", {}, b"x", b"s", b""]),
    ("protected is a map", [{1: -7}, {}, b"x", b"s"]),
    ("protected encodes an array", [b"\x81\x01", {}, b"x", b"s"]),
    ("protected encodes trailing bytes", [b"\xa0\x00", {}, b"x", b"s"]),
    ("protected is not CBOR", [b"\xff", {}, b"x", b"s"]),
    ("unprotected is an array", [b"", [], b"x", b"s"]),
    ("unprotected is a byte string", [b"", b"", b"x", b"s"]),
    ("detached payload", [b"", {}, None, b"s"]),
    ("payload is text", [b"", {}, "x", b"s"]),
    ("signature is text", [b"", {}, b"x", "s"]),
    ("signature missing", [b"", {}, b"x", None]),
    ("kid is text", [b"", {cose.KID: "k"}, b"x", b"s"]),
    ("protected kid is an integer", [cbor.dumps({cose.KID: 1}), {}, b"x", b"s"]),
    ("alg is text", [cbor.dumps({cose.ALG: "ES256"}), {}, b"x", b"s"]),
    ("alg is true", [bytes.fromhex("a101f5"), {}, b"x", b"s"]),
    ("byte-string label", [b"", {b"l": 1}, b"x", b"s"]),
    ("crit unprotected", [cbor.dumps({cose.ALG: -7}), {cose.CRIT: [1]}, b"x", b"s"]),
    ("crit empty", [cbor.dumps({cose.ALG: -7, cose.CRIT: []}), {}, b"x", b"s"]),
    ("crit not an array", [cbor.dumps({cose.ALG: -7, cose.CRIT: 1}), {}, b"x", b"s"]),
    ("crit names a missing label", [cbor.dumps({cose.ALG: -7, cose.CRIT: [3]}), {}, b"x", b"s"]),
    (
        "crit names a label we do not understand",
        [cbor.dumps({cose.ALG: -7, cose.CRIT: [99], 99: 0}), {}, b"x", b"s"],
    ),
    ("a tag inside the message", [b"", {5: cbor.CBORTag(1, 0)}, b"x", b"s"]),
]


@pytest.mark.parametrize(("case", "value"), STRUCTURE_ERRORS, ids=[c for c, _ in STRUCTURE_ERRORS])
def test_structural_errors_are_decode_errors(case: str, value: Any) -> None:
    body = cbor.dumps(value)
    for data in (body, b"\xd2" + body):
        with pytest.raises(DecodeError):
            Sign1.decode(data)


def test_understood_crit_is_accepted(p256: ec.EllipticCurvePrivateKey) -> None:
    message = sign1(
        b"x",
        sign=key_signer(p256),
        alg=Algorithm.ES256,
        kid=b"k",
        protected_extra={cose.CRIT: [cose.TYP], cose.TYP: "application/x"},
    )
    Sign1.decode(message.encode()).verify(p256.public_key())


@pytest.mark.parametrize(
    "data",
    [b"", b"\xd2", b"\xd3\x84", b"\x84", "d284", None, b"\xd2" * 5000 + b"\x80"],
    ids=repr,
)
def test_garbage_is_a_decode_error(data: Any) -> None:
    with pytest.raises(DecodeError):
        Sign1.decode(data)


def test_oversized_message_is_refused(p256: ec.EllipticCurvePrivateKey) -> None:
    message = sign1(b"x" * 2000, sign=key_signer(p256), alg=Algorithm.ES256, kid=None)
    Sign1.decode(message.encode(), max_size=3000)
    with pytest.raises(DecodeError):
        Sign1.decode(message.encode(), max_size=1000)


def test_sign1_refuses_conflicting_headers(p256: ec.EllipticCurvePrivateKey) -> None:
    sign = key_signer(p256)
    with pytest.raises(ValidationError):
        sign1(b"x", sign=sign, alg=Algorithm.ES256, kid=b"k", protected_extra={cose.ALG: -35})
    with pytest.raises(ValidationError):
        sign1(b"x", sign=sign, alg=Algorithm.ES256, kid=b"k", protected_extra={cose.KID: b"o"})
    with pytest.raises(ValidationError):
        sign1(b"x", sign=sign, alg=Algorithm.ES256, kid=b"k", unprotected={cose.KID: b"o"})


def test_sign1_refuses_a_signer_that_does_not_return_fitting_der(
    p384: ec.EllipticCurvePrivateKey,
) -> None:
    with pytest.raises(ValidationError):
        sign1(b"x", sign=lambda data: b"\x01\x02", alg=Algorithm.ES256, kid=None)
    # A P-384 signature does not fit ES256's 32-byte r and s (almost surely).
    with pytest.raises(ValidationError):
        sign1(b"x", sign=key_signer(p384), alg=Algorithm.ES256, kid=None)


def test_key_signer_refuses_other_curves() -> None:
    with pytest.raises(ValidationError):
        key_signer(ec.generate_private_key(ec.SECP521R1()))


def test_sign1_is_immutable(p256: ec.EllipticCurvePrivateKey) -> None:
    message = _message(p256)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.payload = b"other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        message.protected[cose.ALG] = -35  # type: ignore[index]


def test_algorithm_identifiers() -> None:
    assert {a.name: int(a) for a in CoseAlgorithm} == {
        "ES256": -7,
        "ES384": -35,
        "PS256": -37,
        "EDDSA": -8,
    }
    assert CoseAlgorithm.from_pki(Algorithm.ES256) is CoseAlgorithm.ES256
    assert CoseAlgorithm.from_pki(Algorithm.ES384) is CoseAlgorithm.ES384
    assert (cose.ALG, cose.CRIT, cose.CONTENT_TYPE, cose.KID, cose.TYP) == (1, 2, 3, 4, 16)


def test_decoded_headers_cannot_poison_later_messages(p256: ec.EllipticCurvePrivateKey) -> None:
    # Small protected headers are cached by their bytes; a caller altering what it got back
    # must not change what the next message with the same header decodes to.
    message = sign1(
        b"x",
        sign=key_signer(p256),
        alg=Algorithm.ES256,
        kid=b"k",
        protected_extra={cose.CRIT: [cose.TYP], cose.TYP: "application/x"},
    )
    first = Sign1.decode(message.encode())
    first.protected[cose.CRIT].append(99)
    again = Sign1.decode(message.encode())
    assert again.protected[cose.CRIT] == [cose.TYP]
    again.verify(p256.public_key())
    plain = _message(p256).encode()
    assert Sign1.decode(plain).protected == Sign1.decode(plain).protected
    with pytest.raises(TypeError):
        Sign1.decode(plain).protected[cose.ALG] = -35  # type: ignore[index]
