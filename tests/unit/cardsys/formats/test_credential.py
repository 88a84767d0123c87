"""Credential, presentation and refresh-request formats: exact bytes, strict parsing."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsys.errors import DecodeError, SignatureError, ValidationError
from cardsys.formats import cbor, cwt
from cardsys.formats import credential as fmt
from cardsys.formats.cose import Sign1, key_signer, sig_structure, sign1
from cardsys.pki import Algorithm

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
KID = b"\x01\x02\x03\x04\x05\x06\x07\x08"
ISSUER_KEY = ec.generate_private_key(ec.SECP256R1())
DEVICE = ec.generate_private_key(ec.SECP256R1())
HOLDER = fmt.Holder("SS110000000015", "王", "芳", "F", date(1985, 3, 14), "110105",
                    ("URBAN-EMP", "DENTAL"), bytes(32))
STATUS = fmt.StatusRef("http://127.0.0.1:8000/public/status/3", 70000)


def issue(device: ec.EllipticCurvePrivateKey | None = DEVICE, **changes: object) -> bytes:
    fields: dict[str, object] = {
        "issuer": "cardsys-test", "subject": "SS110000000023", "issued_at": NOW,
        "expires": NOW + timedelta(days=7), "holder": HOLDER, "status": STATUS,
        "device_key": device.public_key() if device is not None else None,
    }
    fields.update(changes)
    claims = fmt.Claims(**fields)  # type: ignore[arg-type]
    return fmt.issue_credential(claims, sign=key_signer(ISSUER_KEY), alg=Algorithm.ES256,
                                kid=KID)


# --- vectors -----------------------------------------------------------------------------------


def test_rfc_9679_cose_key_thumbprint_example() -> None:
    # RFC 9679 §6: the example EC2 key and its SHA-256 thumbprint.
    x = bytes.fromhex("65eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d")
    y = bytes.fromhex("1e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c")
    key = fmt.public_key_from_point(b"\x04" + x + y)
    assert fmt.thumbprint(key).hex() == (
        "496bd8afadf307e5b08c64b0421bf9dc01528a344a43bda88fadd1669da253ec"
    )


def test_proof_bytes_are_exactly_as_documented() -> None:
    # The example in the module docstring, which the browser wallet is ported from.
    empty = b""
    body = fmt.encode_presentation(empty, sign=key_signer(DEVICE), time=1898586000)
    parsed = fmt.decode_presentation(body)
    payload = bytes.fromhex(
        "a2011a712a1f90025820e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert parsed.proof_payload == payload
    assert body[:2] == b"\x82\x40"  # [h'' (the empty credential), ...
    assert body[2:11] == b"\x58\x74\x84\x43\xa1\x01\x26\xa0\x58"  # proof: 116 bytes, headers
    assert body[11] == 42
    assert body[12:54] == payload
    assert body[54:56] == b"\x58\x40"
    signed = bytes.fromhex("846a5369676e61747572653143a1012640582a") + payload
    assert parsed.proof_signed == signed == sig_structure(fmt.PROOF_PROTECTED, b"", payload)
    parsed.verify_proof(DEVICE.public_key())


def test_a_credential_is_a_tagged_cose_sign1_over_the_documented_claims() -> None:
    data = issue()
    message = Sign1.decode(data)
    assert data[0] == 0xD2
    assert message.protected_bytes == b"\xa2\x01\x26\x04\x48" + KID
    assert message.unprotected == {}
    claims = cbor.loads(message.payload)
    assert set(claims) == {1, 2, 4, 5, 6, 8, 65535, fmt.HOLDER}
    assert claims[cwt.ISS] == "cardsys-test"
    assert claims[cwt.IAT] == claims[cwt.NBF] == int(NOW.timestamp())
    point = DEVICE.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert claims[cwt.CNF] == {1: {1: 2, -1: 1, -2: point[1:33], -3: point[33:]}}
    assert claims[cwt.STATUS] == {"status_list": {"idx": 70000, "uri": STATUS.uri}}
    assert claims[fmt.HOLDER] == {1: "SS110000000015", 2: "王", 3: "芳", 4: "F",
                                  5: "1985-03-14", 6: "110105", 7: ["URBAN-EMP", "DENTAL"],
                                  8: bytes(32)}
    assert cbor.dumps(claims) == message.payload  # deterministic


def test_decode_round_trip_digital_and_static() -> None:
    digital = fmt.decode_credential(issue())
    assert digital.bound
    assert digital.kid == KID
    assert (digital.issuer, digital.subject) == ("cardsys-test", "SS110000000023")
    assert digital.expires == int((NOW + timedelta(days=7)).timestamp())
    assert digital.status == STATUS
    assert digital.holder() == HOLDER
    assert fmt.thumbprint(digital.device_key()) == fmt.thumbprint(DEVICE.public_key())
    digital.verify_signature(ISSUER_KEY.public_key())
    static = fmt.decode_credential(issue(None))
    assert not static.bound
    assert static.holder() == HOLDER
    with pytest.raises(DecodeError):
        static.device_key()


def test_a_signature_by_another_key_does_not_verify() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError):
        fmt.decode_credential(issue()).verify_signature(other.public_key())


def test_the_general_cose_forms_are_accepted_too() -> None:
    # Untagged, and kid in the unprotected header (DESIGN: verifiers accept both).
    canonical = fmt.decode_credential(issue())
    payload = Sign1.decode(canonical.raw).payload
    unprotected_kid = sign1(payload, sign=key_signer(ISSUER_KEY), alg=Algorithm.ES256, kid=None,
                            unprotected={4: KID})
    for data in (canonical.raw[1:], unprotected_kid.encode(tag=False)):
        decoded = fmt.decode_credential(data)
        assert decoded.kid == KID
        assert decoded.holder() == HOLDER
        decoded.verify_signature(ISSUER_KEY.public_key())


def test_an_es384_credential_is_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    payload = Sign1.decode(issue()).payload
    message = sign1(payload, sign=key_signer(p384), alg=Algorithm.ES384, kid=KID)
    with pytest.raises(DecodeError, match="ES256"):
        fmt.decode_credential(message.encode())


# --- strict parsing ------------------------------------------------------------------------------


def resigned(payload: bytes) -> bytes:
    """A credential with these claim bytes, validly signed (so only the parser can object)."""
    return sign1(payload, sign=key_signer(ISSUER_KEY), alg=Algorithm.ES256, kid=KID).encode()


def claims_of(**changes: object) -> dict[int | str, object]:
    claims: dict[int | str, object] = cbor.loads(Sign1.decode(issue()).payload)
    for key, value in changes.items():
        label: int | str = {"iss": 1, "sub": 2, "exp": 4, "nbf": 5, "iat": 6, "cnf": 8,
                            "status": 65535, "holder": fmt.HOLDER, "extra": 99}[key]
        if value is None:
            claims.pop(label)
        else:
            claims[label] = value
    return claims


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": None},
        {"sub": 12},
        {"exp": None},
        {"exp": "2030-01-01"},
        {"exp": 2**40},  # beyond 32 bits
        {"nbf": None},
        {"extra": 1},  # no other claims
        {"cnf": {1: {1: 2, -1: 1, -2: b"x" * 32}}},
        {"cnf": {1: {1: 2, -1: 2, -2: b"x" * 32, -3: b"y" * 32}}},  # P-384 label
        {"status": {"status_list": {"idx": -1, "uri": "u"}}},
        {"status": {"status_list": {"uri": "u"}}},
        {"status": {"list": {"idx": 1, "uri": "u"}}},
        {"holder": None},
        {"iss": ""},
    ],
)
def test_claims_other_than_the_documented_ones_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(DecodeError):
        fmt.decode_credential(resigned(cbor.dumps(claims_of(**changes))))


@pytest.mark.parametrize(
    "holder",
    [
        {1: "SS110000000015"},  # fields missing
        {1: "SS11", 2: "a", 3: "b", 4: "F", 5: "1985-03-14", 6: "110105", 7: []},
        {1: "SS110000000015", 2: "a", 3: "b", 4: "Q", 5: "1985-03-14", 6: "110105", 7: []},
        {1: "SS110000000015", 2: "a", 3: "b", 4: "F", 5: "1985-02-30", 6: "110105", 7: []},
        {1: "SS110000000015", 2: "a", 3: "b", 4: "F", 5: "19850314", 6: "110105", 7: []},
        {1: "SS110000000015", 2: "a", 3: "b", 4: "F", 5: "1985-03-14", 6: "1101", 7: []},
        {1: "SS110000000015", 2: "a", 3: "b", 4: "F", 5: "1985-03-14", 6: "110105", 7: ["x y"]},
        {1: "SS110000000015", 2: "a", 3: "b", 4: "F", 5: "1985-03-14", 6: "110105", 7: [],
         8: b"short"},
        {1: "SS110000000015", 2: "", 3: "b", 4: "F", 5: "1985-03-14", 6: "110105", 7: []},
        ["not", "a", "map"],
    ],
)
def test_bad_holder_data_is_found_only_when_the_holder_is_read(holder: object) -> None:
    credential = fmt.decode_credential(resigned(cbor.dumps(claims_of(holder=holder))))
    with pytest.raises(DecodeError):
        credential.holder()


def test_non_shortest_heads_are_refused() -> None:
    payload = Sign1.decode(issue()).payload
    # iss "cardsys-test" is 0x6c + 12 bytes; spell its length with an extra byte (0x78 0x0c).
    assert payload[1:3] == b"\x01\x6c"
    longer = payload[:2] + b"\x78\x0c" + payload[3:]
    assert cbor.loads(longer) == cbor.loads(payload)  # a general decoder takes it
    with pytest.raises(DecodeError, match="shortest"):
        fmt.decode_credential(resigned(longer))


def test_invalid_utf8_is_refused() -> None:
    payload = bytearray(Sign1.decode(issue()).payload)
    payload[3] = 0xFF  # inside "cardsys-test"
    with pytest.raises(DecodeError, match="UTF-8"):
        fmt.decode_credential(resigned(bytes(payload)))


def test_a_device_point_off_the_curve_is_refused() -> None:
    claims = claims_of(cnf={1: {1: 2, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 32}})
    credential = fmt.decode_credential(resigned(cbor.dumps(claims)))
    with pytest.raises(DecodeError, match="not a point on P-256"):
        credential.device_key()


@pytest.mark.parametrize("cut", [0, 1, 5, 20, 100, -65, -1])
def test_truncated_credentials_are_refused(cut: int) -> None:
    data = issue()
    with pytest.raises(DecodeError):
        fmt.decode_credential(data[:cut])


def test_every_truncation_and_extension_is_refused() -> None:
    data = issue()
    for length in range(len(data)):
        with pytest.raises(DecodeError):
            fmt.decode_credential(data[:length])
    for extra in (b"\x00", b"\xff" * 3):
        with pytest.raises(DecodeError):
            fmt.decode_credential(data + extra)


def test_oversized_credentials_are_refused_and_never_issued() -> None:
    with pytest.raises(DecodeError, match="at most"):
        fmt.decode_credential(b"\xd2" + b"\x00" * fmt.MAX_CREDENTIAL)
    long_name = fmt.Holder("SS110000000015", "名" * 250, "字" * 250, "F", date(1985, 3, 14),
                           "110105", ())
    with pytest.raises(ValidationError, match="exceed"):
        issue(holder=long_name)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=fmt.MAX_PRESENTATION + 10))
def test_random_bytes_only_ever_raise_decode_error(data: bytes) -> None:
    for decode in (fmt.decode_credential, fmt.decode_presentation, fmt.decode_refresh_request):
        try:
            decode(data)
        except DecodeError:
            continue


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_credentials_only_ever_raise_decode_error(data: st.DataObject) -> None:
    original = bytearray(issue())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    try:
        credential = fmt.decode_credential(bytes(original))
        credential.holder()
    except DecodeError:
        return


# --- issuing ----------------------------------------------------------------------------------


def test_issuing_needs_es256_an_8_byte_kid_and_ordered_times() -> None:
    claims = fmt.Claims("i", "SS110000000023", NOW, NOW + timedelta(days=1), HOLDER, STATUS)
    with pytest.raises(ValidationError):
        fmt.issue_credential(claims, sign=key_signer(ISSUER_KEY), alg=Algorithm.ES384, kid=KID)
    with pytest.raises(ValidationError):
        fmt.issue_credential(claims, sign=key_signer(ISSUER_KEY), alg=Algorithm.ES256, kid=b"x")
    with pytest.raises(ValidationError, match="expire"):
        issue(expires=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"card_number": "SS11"}, {"card_number": "ss110000000015"}, {"sex": "female"},
        {"region": "11010"}, {"schemes": ("lower",)}, {"schemes": ("A",) * 17},
        {"photo_sha256": b"short"}, {"surname": " "}, {"given_names": "x" * 257},
    ],
)
def test_holder_values_are_checked_on_construction(changes: dict[str, object]) -> None:
    fields = {"card_number": "SS110000000015", "surname": "Wang", "given_names": "Fang",
              "sex": "F", "birth_date": date(1985, 3, 14), "region": "110105",
              "schemes": (), "photo_sha256": None}
    fields.update(changes)
    with pytest.raises(ValidationError):
        fmt.Holder(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "point",
    [b"", b"\x04" + b"\x00" * 64, b"\x02" + b"\x01" * 32, b"\x04" + b"\x01" * 63],
)
def test_device_points_are_validated(point: bytes) -> None:
    with pytest.raises(ValidationError):
        fmt.public_key_from_point(point)


def test_device_keys_must_be_p256() -> None:
    with pytest.raises(ValidationError):
        fmt.cose_key(ec.generate_private_key(ec.SECP384R1()).public_key())


# --- presentations and refresh requests ----------------------------------------------------------


def test_presentation_round_trip_with_and_without_nonce() -> None:
    credential = issue()
    for nonce in (None, b"\x00\x01", b"n" * 64):
        body = fmt.encode_presentation(credential, sign=key_signer(DEVICE), time=1898586000,
                                       nonce=nonce)
        parsed = fmt.decode_presentation(body)
        assert parsed.credential == credential
        assert parsed.time == 1898586000
        assert parsed.nonce == nonce
        assert parsed.digest == hashlib.sha256(credential).digest()
        assert parsed.replay_key == hashlib.sha256(parsed.proof_payload).digest()
        parsed.verify_proof(DEVICE.public_key())


@pytest.mark.parametrize("nonce", [b"", b"n" * 65])
def test_nonces_are_1_to_64_bytes(nonce: bytes) -> None:
    with pytest.raises(ValidationError):
        fmt.encode_presentation(issue(), sign=key_signer(DEVICE), time=1, nonce=nonce)


@pytest.mark.parametrize(
    "body",
    [
        b"\x83\x40\x40\x40",
        b"\x82\x40",
        b"\x82\x40\x40",
        b"\x82\x40\x44\x84\x40\xa0\x40",
        b"\x82\x40" + cbor.dumps(b"\x84\x43\xa1\x01\x27\xa0\x40\x58\x40" + b"\x00" * 64),  # ES384
        b"\x82\x40" + cbor.dumps(b"\x84\x43\xa1\x01\x26\xa1\x04\x41\x00\x40" + b"\x00" * 64),
    ],
)
def test_malformed_presentations_are_refused(body: bytes) -> None:
    with pytest.raises(DecodeError):
        fmt.decode_presentation(body)


def test_a_refresh_request_is_not_a_proof_and_vice_versa() -> None:
    credential = issue()
    request = fmt.encode_refresh_request(credential, sign=key_signer(DEVICE), time=1898586000)
    parsed = fmt.decode_refresh_request(request)
    assert (parsed.time, parsed.credential) == (1898586000, credential)
    parsed.message.verify(DEVICE.public_key())
    body = fmt.encode_presentation(credential, sign=key_signer(DEVICE), time=1898586000)
    proof = cbor.loads(body)[1]
    with pytest.raises(DecodeError, match="not a refresh request"):
        fmt.decode_refresh_request(proof)
    with pytest.raises(DecodeError):
        fmt.decode_presentation(b"\x82" + cbor.dumps(credential) + cbor.dumps(request))
