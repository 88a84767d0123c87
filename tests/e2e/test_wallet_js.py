"""The phone's wallet (web/static/portal/wallet.js) in chromium, byte for byte against Python.

The presentation and refresh formats are documented in `cardsys.formats.credential` with a
worked example; the JavaScript must produce exactly those bytes (deterministic CBOR, COSE
Sig_structure, Base45), and its WebCrypto signatures must verify in Python.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.formats import base45, cbor
from cardsys.formats import credential as fmt
from tests.e2e.conftest import Server

pytestmark = pytest.mark.browser

#: The worked example of cardsys/formats/credential.py: time 1898586000 (2030-03-01T09:00Z)
#: and the SHA-256 of the empty string.
EXAMPLE_TIME = 1898586000
EXAMPLE_PAYLOAD = ("a2011a712a1f90025820"
                   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
EXAMPLE_SIGNED = "846a5369676e61747572653143a1012640582a" + EXAMPLE_PAYLOAD
UINTS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1]
BLOBS = [b"", b"\x00", b"ab", b"abc", os.urandom(23), os.urandom(24), os.urandom(255),
         os.urandom(256), os.urandom(1000)]

RUN = """async ([credentials, uints, blobs, time]) => {
  const w = await import(document.body.dataset.walletModule);
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const bytes = (h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
  const pair = await w.newDeviceKey();
  const out = {
    payload: hex(w.proofPayload(time, await w.sha256(new Uint8Array(0)))),
    point: hex(await w.publicPoint(pair.publicKey)),
    extractable: pair.privateKey.extractable,
    uints: uints.map((n) => hex(w.cbor.uint(n))),
    minus7: hex(w.cbor.negative(-7)),
    base45: blobs.map((b) => w.base45(bytes(b))),
    bstr: blobs.map((b) => hex(w.cbor.bytes(bytes(b)))),
    map: hex(w.cbor.map([[w.cbor.uint(16), w.cbor.text("z")], [w.cbor.uint(1), w.cbor.uint(2)]])),
    presentations: [], refreshes: [], texts: [],
  };
  out.signed = hex(w.sigStructure(w.PROOF_PROTECTED, bytes(out.payload)));
  for (const c of credentials) {
    out.presentations.push(hex(await w.presentation(bytes(c), pair.privateKey, time)));
    out.refreshes.push(hex(await w.refreshRequest(bytes(c), pair.privateKey, time)));
    out.texts.push(await w.presentationText(bytes(c), pair.privateKey, time));
  }
  return out;
}"""


@pytest.fixture(scope="module")
def wallet_run(browser: Any, server: Server) -> dict[str, Any]:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.base + "/portal/")
    credentials = [os.urandom(20).hex(), os.urandom(200).hex(), os.urandom(600).hex()]
    result: dict[str, Any] = page.evaluate(
        RUN, [credentials, UINTS, [b.hex() for b in BLOBS], EXAMPLE_TIME])
    result["credentials"] = [bytes.fromhex(c) for c in credentials]
    context.close()
    assert not errors, errors
    return result


def test_proof_payload_and_signed_bytes_are_the_documented_ones(
    wallet_run: dict[str, Any]
) -> None:
    assert wallet_run["payload"] == EXAMPLE_PAYLOAD
    assert wallet_run["signed"] == EXAMPLE_SIGNED


def test_cbor_heads_are_the_shortest_forms(wallet_run: dict[str, Any]) -> None:
    assert wallet_run["uints"] == [cbor.dumps(n).hex() for n in UINTS]
    assert wallet_run["minus7"] == cbor.dumps(-7).hex()
    assert wallet_run["bstr"] == [cbor.dumps(b).hex() for b in BLOBS]
    assert wallet_run["map"] == cbor.dumps({16: "z", 1: 2}).hex()


def test_base45_matches_rfc_9285(wallet_run: dict[str, Any]) -> None:
    assert wallet_run["base45"] == [base45.encode(b) for b in BLOBS]


def test_device_key_is_not_extractable(wallet_run: dict[str, Any]) -> None:
    assert wallet_run["extractable"] is False
    point = bytes.fromhex(wallet_run["point"])
    assert len(point) == 65
    assert point[0] == 4
    fmt.public_key_from_point(point)


def test_presentations_decode_strictly_and_verify(wallet_run: dict[str, Any]) -> None:
    key = fmt.public_key_from_point(bytes.fromhex(wallet_run["point"]))
    for credential, body, text in zip(wallet_run["credentials"], wallet_run["presentations"],
                                      wallet_run["texts"], strict=True):
        presentation = fmt.decode_presentation(bytes.fromhex(body))
        assert presentation.credential == credential
        assert presentation.time == EXAMPLE_TIME
        assert presentation.digest == hashlib.sha256(credential).digest()
        assert presentation.nonce is None
        presentation.verify_proof(key)
        # The QR text: the prefix and the Base45 of a presentation (signed anew: ECDSA is
        # randomised, so the bytes differ from `body` in the signature only).
        assert text.startswith("SSP1:")
        again = fmt.decode_presentation(base45.decode(text.removeprefix("SSP1:")))
        assert again.credential == credential
        again.verify_proof(key)
        # The same structure Python's wallet writes (only the ECDSA signature differs).
        proof = cbor.loads(bytes.fromhex(body))[1]
        assert proof[:6] == fmt.PROOF_PROTECTED.join([b"\x84\x43", b"\xa0"])
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    from cardsys.errors import SignatureError

    with pytest.raises(SignatureError):
        fmt.decode_presentation(bytes.fromhex(wallet_run["presentations"][0])).verify_proof(other)


def test_refresh_requests_decode_and_verify(wallet_run: dict[str, Any]) -> None:
    key = fmt.public_key_from_point(bytes.fromhex(wallet_run["point"]))
    for credential, data in zip(wallet_run["credentials"], wallet_run["refreshes"],
                                strict=True):
        request = fmt.decode_refresh_request(bytes.fromhex(data))
        assert request.time == EXAMPLE_TIME
        assert request.credential == credential
        request.message.verify(key)
        # The protected header is exactly the deterministic {1: -7, 16: REFRESH_TYPE}.
        assert request.message.protected_bytes == cbor.dumps(
            {1: -7, 16: fmt.REFRESH_TYPE})
