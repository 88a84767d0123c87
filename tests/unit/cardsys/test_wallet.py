"""The holder side: a device key and its credential make presentations and refresh requests."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.errors import ValidationError
from cardsys.formats import base45, qrtext
from cardsys.formats import credential as fmt
from cardsys.formats.cose import key_signer
from cardsys.pki import Algorithm
from cardsys.wallet import Wallet, static_text

NOW = datetime(2030, 3, 1, 9, 0, 17, 400000, tzinfo=UTC)
ISSUER = ec.generate_private_key(ec.SECP256R1())
HOLDER = fmt.Holder("SS110000000015", "Wang", "Fang", "F", date(1985, 3, 14), "110105", ())


def credential(device: ec.EllipticCurvePrivateKey | None) -> bytes:
    claims = fmt.Claims("cardsys-test", "SS110000000023", NOW, NOW + timedelta(days=7), HOLDER,
                        fmt.StatusRef("http://x/public/status/0", 1),
                        device.public_key() if device else None)
    return fmt.issue_credential(claims, sign=key_signer(ISSUER), alg=Algorithm.ES256,
                                kid=b"12345678")


@pytest.fixture(scope="module")
def device() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def wallet(device: ec.EllipticCurvePrivateKey) -> Wallet:
    return Wallet(device, credential(device))


def test_a_presentation_carries_the_credential_and_a_proof_of_now(
    wallet: Wallet, device: ec.EllipticCurvePrivateKey
) -> None:
    text = wallet.presentation(NOW)
    assert text.startswith("SSP1:")
    assert set(text) <= set(base45.ALPHABET)
    _prefix, body = qrtext.decode(text, prefixes={"SSP1:"}, max_body=fmt.MAX_PRESENTATION)
    parsed = fmt.decode_presentation(body)
    assert parsed.credential == wallet.credential
    assert parsed.digest == hashlib.sha256(wallet.credential).digest()
    # The second it was made, not rounded to the 30-second step.
    assert parsed.time == int(NOW.timestamp())
    parsed.verify_proof(device.public_key())


def test_two_presentations_differ(wallet: Wallet) -> None:
    assert wallet.presentation(NOW) != wallet.presentation(NOW + timedelta(seconds=30))
    with_nonce = fmt.decode_presentation(
        base45.decode(wallet.presentation(NOW, nonce=b"\xaa")[5:])
    )
    assert with_nonce.nonce == b"\xaa"


def test_the_wallet_refuses_a_credential_bound_to_another_key(
    device: ec.EllipticCurvePrivateKey,
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValidationError, match="another device"):
        Wallet(device, credential(other))
    with pytest.raises(ValidationError, match="not bound"):
        Wallet(device, credential(None))
    with pytest.raises(ValidationError, match="not a credential"):
        Wallet(device, b"junk")
    with pytest.raises(ValidationError, match="P-256"):
        Wallet(ec.generate_private_key(ec.SECP384R1()), credential(device))


def test_static_text_only_for_unbound_credentials(wallet: Wallet) -> None:
    static = credential(None)
    text = static_text(static)
    assert text == "SSC1:" + base45.encode(static)
    with pytest.raises(ValidationError, match="presentation"):
        static_text(wallet.credential)


def test_a_refresh_request_is_signed_by_the_device(
    wallet: Wallet, device: ec.EllipticCurvePrivateKey
) -> None:
    request = fmt.decode_refresh_request(wallet.refresh_request(NOW))
    assert request.credential == wallet.credential
    assert request.time == int(NOW.timestamp())
    request.message.verify(device.public_key())


def test_needs_refresh_a_day_ahead(wallet: Wallet) -> None:
    assert wallet.expires == (NOW + timedelta(days=7)).replace(microsecond=0)
    assert not wallet.needs_refresh(NOW)
    assert wallet.needs_refresh(NOW + timedelta(days=6, hours=1))


def test_with_credential_keeps_the_key_and_checks_the_binding(
    wallet: Wallet, device: ec.EllipticCurvePrivateKey
) -> None:
    renewed = wallet.with_credential(credential(device))
    assert renewed.device_key is wallet.device_key
    with pytest.raises(ValidationError):
        wallet.with_credential(credential(ec.generate_private_key(ec.SECP256R1())))


def test_the_wallet_round_trips_through_bytes_and_never_shows_its_key(wallet: Wallet) -> None:
    data = wallet.to_bytes()
    restored = Wallet.from_bytes(data)
    assert restored.credential == wallet.credential
    assert restored.thumbprint == wallet.thumbprint
    assert "PRIVATE KEY" not in repr(wallet)
    assert wallet.thumbprint.hex()[:16] in repr(wallet)


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", json.dumps({"version": 2}).encode(),
     json.dumps({"version": 1, "key": "x", "credential": "00"}).encode()],
)
def test_a_damaged_wallet_file_is_refused(data: bytes) -> None:
    with pytest.raises(ValidationError):
        Wallet.from_bytes(data)
