"""The offline QR verifier, from the attacker's side: every way a QR can be wrong is refused
with its own error, and nothing crashes."""

from __future__ import annotations

import zlib
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsys.config import UnknownStatusPolicy
from cardsys.errors import (
    BadEncodingError,
    BadSignatureError,
    ExpiredError,
    HolderBindingError,
    NotYetValidError,
    ReplayedError,
    RevokedError,
    StaleProofError,
    StaleTrustError,
    StatusUnknownError,
    SuspendedError,
    UnknownKeyError,
    UntrustedSignerError,
    ValidationError,
    VerificationError,
    WrongPurposeError,
)
from cardsys.formats import base45, qrtext
from cardsys.formats import credential as fmt
from cardsys.formats.cose import key_signer
from cardsys.formats.statuslist import Status
from cardsys.pki import Purpose
from cardsys.wallet import Wallet, static_text
from keys.ephemeral import ephemeral_pki
from tests.unit.verify.conftest import HOLDER, NOW, Agency
from verify.qr import check_qr, verify_qr
from verify.replay import ReplayCache
from verify.result import Evidence, StatusCheck
from verify.trust import TerminalPolicy, TrustStore

LATER = NOW + timedelta(seconds=20)


def body_of(text: str) -> bytes:
    return base45.decode(text[5:])


def presentation(credential: bytes, key: ec.EllipticCurvePrivateKey, *, time: int,
                 nonce: bytes | None = None) -> str:
    body = fmt.encode_presentation(credential, sign=key_signer(key), time=time, nonce=nonce)
    return qrtext.encode(qrtext.PRESENTATION, body)


# --- what passes -----------------------------------------------------------------------------


def test_a_live_presentation_verifies_with_the_holder_data(
    wallet: Wallet, store: TrustStore
) -> None:
    card = verify_qr(wallet.presentation(NOW), store, now=LATER, replay=ReplayCache())
    assert card.evidence is Evidence.PRESENTATION
    assert (card.card_number, card.surname, card.given_names) == ("SS110000000015", "Wang", "Fang")
    assert (card.sex, card.birth_date, card.region) == ("F", HOLDER.birth_date, "110105")
    assert card.schemes == ("URBAN-EMP",)
    assert card.photo_sha256 == HOLDER.photo_sha256
    assert card.document_number == "SS110000000023"
    assert card.status is StatusCheck.GOOD
    assert card.expires == NOW + timedelta(days=7)
    assert card.checked_at == LATER


def test_a_static_card_qr_verifies(agency: Agency, store: TrustStore) -> None:
    card = verify_qr(static_text(agency.credential(None)), store, now=LATER)
    assert card.evidence is Evidence.STATIC
    assert card.card_number == "SS110000000015"


def test_a_zlib_compressed_body_is_read_like_the_plain_one(
    wallet: Wallet, store: TrustStore
) -> None:
    body = body_of(wallet.presentation(NOW))
    text = qrtext.PRESENTATION + base45.encode(zlib.compress(body))
    assert verify_qr(text, store, now=LATER).evidence is Evidence.PRESENTATION


def test_check_qr_gives_a_valid_verdict(wallet: Wallet, store: TrustStore) -> None:
    verdict = check_qr(wallet.presentation(NOW), store, now=LATER)
    assert verdict.valid
    assert verdict.reason == "valid"
    assert verdict.card is not None
    assert verdict.as_dict()["card"]["surname"] == "Wang"


# --- tampering ---------------------------------------------------------------------------------


def flips(data: bytes):  # type: ignore[no-untyped-def]
    for position in range(len(data)):
        for bit in range(8):
            changed = bytearray(data)
            changed[position] ^= 1 << bit
            yield bytes(changed)


@pytest.mark.parametrize("kind", ["presentation", "static"])
def test_every_single_bit_flip_of_the_qr_body_is_refused(
    kind: str, agency: Agency, wallet: Wallet, store: TrustStore
) -> None:
    text = wallet.presentation(NOW) if kind == "presentation" else static_text(
        agency.credential(None)
    )
    prefix, body = text[:5], body_of(text)
    reasons: set[str] = set()
    tried = 0
    for changed in flips(body):
        tried += 1
        with pytest.raises(VerificationError) as caught:
            verify_qr(prefix + base45.encode(changed), store, now=LATER)
        reasons.add(caught.value.reason)
    assert tried == 8 * len(body)
    # Flips land in the structure, the claims, the signatures, the times...: several reasons.
    # In a presentation any change to the credential also breaks the proof's digest of it,
    # which is checked before the (costlier) signatures.
    expected = {"bad_encoding", "holder_binding" if kind == "presentation" else "bad_signature"}
    assert expected <= reasons


def test_every_character_substitution_of_the_text_is_refused(
    wallet: Wallet, store: TrustStore
) -> None:
    text = wallet.presentation(NOW)
    for position in range(5, len(text)):
        replacement = "0" if text[position] != "0" else "1"
        changed = text[:position] + replacement + text[position + 1 :]
        assert not check_qr(changed, store, now=LATER).valid


@pytest.mark.parametrize("kind", ["presentation", "static"])
def test_every_truncation_is_refused(
    kind: str, agency: Agency, wallet: Wallet, store: TrustStore
) -> None:
    text = wallet.presentation(NOW) if kind == "presentation" else static_text(
        agency.credential(None)
    )
    body = body_of(text)
    for length in range(len(body)):
        with pytest.raises(BadEncodingError):
            verify_qr(text[:5] + base45.encode(body[:length]), store, now=LATER)
    for length in range(len(text)):
        assert check_qr(text[:length], store, now=LATER).reason == "bad_encoding"


def test_oversized_input_is_refused_without_decoding(store: TrustStore) -> None:
    with pytest.raises(BadEncodingError):
        verify_qr("SSP1:" + "A" * 1_000_000, store, now=LATER)


@pytest.mark.parametrize(
    "text",
    [
        "SSP1:abc",  # lower case is not Base45
        "SSP1:ABC#DEF",
        "SSP1:ÄBCDEF",
        "SSP1:AB\x00CD",
        "SSP1:ABCD",  # length 1 mod 3
        "SSP1:GGW",  # a triplet above 65535
        "XXX1:" + "0" * 30,
        "",
        "SSP1:",
    ],
)
def test_non_base45_text_and_unknown_prefixes_are_bad_encoding(
    text: str, store: TrustStore
) -> None:
    with pytest.raises(BadEncodingError):
        verify_qr(text, store, now=LATER)


BOMBS = [
    b"\x81" * 5000 + b"\x00",  # deep nesting
    b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",  # an array of 2^64 - 1 items
    b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # a byte string of 2^64 - 1 bytes
    b"\xbb\x00\x00\x00\x01\x00\x00\x00\x00",  # a map of 2^32 pairs
    b"\x9f" * 100 + b"\xff" * 100,  # indefinite lengths
    b"\xd8\x1c\x81\xd8\x1d\x00",  # shared-reference tags
    b"\xc1\x1a\x70\x00\x00\x00",  # a datetime tag
    zlib.compress(b"\x00" * 10_000_000),  # a zip bomb
]


@pytest.mark.parametrize("bomb", BOMBS, ids=range(len(BOMBS)))
@pytest.mark.parametrize("prefix", ["SSP1:", "SSC1:"])
def test_cbor_bombs_are_refused(bomb: bytes, prefix: str, store: TrustStore) -> None:
    with pytest.raises(BadEncodingError):
        verify_qr(prefix + base45.encode(bomb), store, now=LATER)


@pytest.mark.parametrize("bomb", BOMBS[:6], ids=range(6))
def test_cbor_bombs_in_place_of_the_credential_or_proof_are_refused(
    bomb: bytes, wallet: Wallet, store: TrustStore
) -> None:
    presentation_ = fmt.decode_presentation(body_of(wallet.presentation(NOW)))
    proof = fmt.PROOF_PROTECTED
    for body in (
        b"\x82" + _bstr(bomb) + _bstr(b"\x84\x43" + proof + b"\xa0\x40\x40"),
        b"\x82" + _bstr(presentation_.credential) + _bstr(bomb),
    ):
        with pytest.raises(BadEncodingError):
            verify_qr("SSP1:" + base45.encode(body), store, now=LATER)


def _bstr(data: bytes) -> bytes:
    from cardsys.formats.cbor import encode_head

    return encode_head(2, len(data)) + data


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300))
def test_check_qr_never_raises_for_any_text(text: str, store: TrustStore) -> None:
    for prefix in ("", "SSP1:", "SSC1:"):
        assert not check_qr(prefix + text, store, now=LATER).valid


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_any_bytes_as_a_body_are_refused_cleanly(data: bytes, store: TrustStore) -> None:
    for prefix in ("SSP1:", "SSC1:"):
        assert not check_qr(prefix + base45.encode(data), store, now=LATER).valid


# --- keys and signers ----------------------------------------------------------------------------


def test_a_credential_signed_by_an_unknown_key_is_refused(
    other_agency: Agency, store: TrustStore, device: ec.EllipticCurvePrivateKey
) -> None:
    forged = Wallet(device, other_agency.credential(device))
    with pytest.raises(UnknownKeyError):
        verify_qr(forged.presentation(NOW), store, now=LATER)


def test_a_chip_document_signer_cannot_sign_credentials(
    agency: Agency, store: TrustStore, device: ec.EllipticCurvePrivateKey
) -> None:
    wrong = agency.credential(device, signer=agency.signer(Purpose.CHIP_DOCUMENT))
    with pytest.raises(WrongPurposeError):
        verify_qr(Wallet(device, wrong).presentation(NOW), store, now=LATER)
    with pytest.raises(WrongPurposeError):
        verify_qr(static_text(agency.credential(None, signer=agency.signer(
            Purpose.STATUS_LIST))), store, now=LATER)


def test_a_credential_signed_with_the_right_kid_but_another_key_is_a_bad_signature(
    agency: Agency, other_agency: Agency, store: TrustStore
) -> None:
    genuine = agency.signer(Purpose.CREDENTIAL)
    impostor = other_agency.signer(Purpose.CREDENTIAL)
    claims = fmt.Claims("x", "SS110000000023", NOW - timedelta(hours=1), NOW + timedelta(days=1),
                        HOLDER, fmt.StatusRef("http://127.0.0.1:8000/public/status/0", 5))
    forged = fmt.issue_credential(claims, sign=impostor.sign, alg=impostor.algorithm,
                                  kid=genuine.kid)
    with pytest.raises(BadSignatureError):
        verify_qr(static_text(forged), store, now=LATER)


def test_a_revoked_signer_is_untrusted(agency: Agency) -> None:
    signer = agency.pki.issue(Purpose.CREDENTIAL)
    revoked = agency.pki.revoke(signer)
    with_signer = Agency(revoked, [(Purpose.CREDENTIAL, signer)])
    terminal = with_signer.store()
    with pytest.raises(UntrustedSignerError):
        verify_qr(static_text(agency.credential(None, signer=signer)), terminal, now=LATER)


def test_a_retired_key_cannot_sign_new_credentials() -> None:
    # Signers issued 400 days ago signed for six months: still trusted for what they signed
    # then, not for anything dated today.
    old = Agency(ephemeral_pki(NOW - timedelta(days=400)))
    status_signer = old.pki.issue(Purpose.STATUS_LIST, now=NOW - timedelta(days=1))
    old.extra_signers.append((Purpose.STATUS_LIST, status_signer))
    terminal = old.store([old.status_list(signer=status_signer)])
    with pytest.raises(UntrustedSignerError, match="signing period"):
        verify_qr(static_text(old.credential(None)), terminal, now=LATER)
    back_then = old.credential(None, issued_at=NOW - timedelta(days=300),
                               expires=NOW + timedelta(days=300))
    assert verify_qr(static_text(back_then), terminal, now=LATER).evidence is Evidence.STATIC


# --- times ------------------------------------------------------------------------------------


def test_an_expired_credential_is_refused_after_the_skew(
    agency: Agency, store: TrustStore, device: ec.EllipticCurvePrivateKey
) -> None:
    expires = NOW - timedelta(minutes=10)
    credential = agency.credential(device, issued_at=NOW - timedelta(days=7), expires=expires)
    old = Wallet(device, credential)
    with pytest.raises(ExpiredError):
        verify_qr(old.presentation(NOW), store, now=NOW)
    # Within the clock-skew allowance (300 s) of exp it still passes.
    edge = expires + timedelta(seconds=299)
    assert verify_qr(old.presentation(edge), store, now=edge)


@pytest.mark.parametrize("field", ["issued_at"])
def test_a_credential_from_the_future_is_not_yet_valid(
    field: str, agency: Agency, store: TrustStore, device: ec.EllipticCurvePrivateKey
) -> None:
    future = agency.credential(device, issued_at=NOW + timedelta(hours=1),
                               expires=NOW + timedelta(days=8))
    with pytest.raises(NotYetValidError):
        verify_qr(Wallet(device, future).presentation(NOW), store, now=NOW)


@pytest.mark.parametrize("age", [91, 600, -91, -3600])
def test_a_proof_outside_the_window_is_stale(
    age: int, wallet: Wallet, store: TrustStore
) -> None:
    with pytest.raises(StaleProofError):
        verify_qr(wallet.presentation(NOW), store, now=NOW + timedelta(seconds=age))


@pytest.mark.parametrize("age", [0, 30, 90, -90])
def test_a_proof_inside_the_window_passes(age: int, wallet: Wallet, store: TrustStore) -> None:
    assert verify_qr(wallet.presentation(NOW), store, now=NOW + timedelta(seconds=age))


def test_a_stale_trust_list_refuses_everything(agency: Agency, wallet: Wallet) -> None:
    terminal = agency.store()
    much_later = NOW + timedelta(days=11)  # next update 7 days + 3 days grace
    with pytest.raises(StaleTrustError):
        verify_qr(wallet.presentation(much_later), terminal, now=much_later)


# --- status ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "error"), [(Status.REVOKED, RevokedError), (Status.SUSPENDED, SuspendedError)]
)
def test_revoked_and_suspended_cards_are_refused(
    entry: Status, error: type[VerificationError], agency: Agency, wallet: Wallet
) -> None:
    terminal = agency.store([agency.status_list({5: entry})])
    with pytest.raises(error):
        verify_qr(wallet.presentation(NOW), terminal, now=LATER)
    with pytest.raises(error):
        verify_qr(static_text(agency.credential(None)), terminal, now=LATER)
    # Only that entry: the card next to it is fine.
    neighbour = static_text(agency.credential(None, index=6))
    assert verify_qr(neighbour, terminal, now=LATER).status is StatusCheck.GOOD


@pytest.mark.parametrize("policy", list(UnknownStatusPolicy))
def test_a_stale_status_list_means_unknown_status_decided_by_policy(
    policy: UnknownStatusPolicy, agency: Agency, wallet: Wallet
) -> None:
    old = agency.status_list(iat=NOW - timedelta(days=2), exp=NOW + timedelta(days=2))
    terminal = agency.store([old], policy=TerminalPolicy(unknown_status=policy))
    text = wallet.presentation(NOW)
    if policy is UnknownStatusPolicy.REJECT:
        with pytest.raises(StatusUnknownError):
            verify_qr(text, terminal, now=LATER)
    else:
        assert verify_qr(text, terminal, now=LATER).status is StatusCheck.UNKNOWN


def test_an_expired_or_missing_status_list_is_unknown(agency: Agency, wallet: Wallet) -> None:
    expired = agency.status_list(iat=NOW - timedelta(hours=5), exp=NOW - timedelta(hours=1))
    for terminal in (agency.store([expired]), agency.store([])):
        with pytest.raises(StatusUnknownError):
            verify_qr(wallet.presentation(NOW), terminal, now=LATER)


def test_an_index_outside_the_list_is_refused_even_when_unknown_is_accepted(
    agency: Agency, device: ec.EllipticCurvePrivateKey
) -> None:
    terminal = agency.store(policy=TerminalPolicy(unknown_status=UnknownStatusPolicy.ACCEPT))
    beyond = Wallet(device, agency.credential(device, index=1 << 20))
    with pytest.raises(StatusUnknownError):
        verify_qr(beyond.presentation(NOW), terminal, now=LATER)


def test_a_status_list_signed_by_a_non_status_signer_is_not_used(
    agency: Agency, wallet: Wallet
) -> None:
    forged = agency.status_list(signer=agency.signer(Purpose.CREDENTIAL))
    terminal = agency.store([forged])
    assert len(terminal.refused_lists) == 1
    assert "wrong_purpose" in terminal.refused_lists[0][1]
    with pytest.raises(StatusUnknownError):
        verify_qr(wallet.presentation(NOW), terminal, now=LATER)


# --- the holder binding ---------------------------------------------------------------------------


def test_the_same_presentation_twice_at_one_terminal_is_a_replay(
    wallet: Wallet, store: TrustStore
) -> None:
    text = wallet.presentation(NOW)
    here, there = ReplayCache(), ReplayCache()
    assert verify_qr(text, store, now=LATER, replay=here)
    with pytest.raises(ReplayedError):
        verify_qr(text, store, now=LATER + timedelta(seconds=5), replay=here)
    assert verify_qr(text, store, now=LATER, replay=there)  # another terminal
    # A new proof of the same credential is a new presentation.
    assert verify_qr(wallet.presentation(NOW + timedelta(seconds=1)), store, now=LATER,
                     replay=here)


def test_a_replay_with_a_malleated_signature_is_still_a_replay(
    wallet: Wallet, store: TrustStore
) -> None:
    # (r, s) and (r, n - s) are both valid ECDSA signatures: the cache keys on the payload.
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    text = wallet.presentation(NOW)
    body = body_of(text)
    r, s = body[-64:-32], int.from_bytes(body[-32:], "big")
    twin = body[:-64] + r + (order - s).to_bytes(32, "big")
    cache = ReplayCache()
    assert verify_qr(text, store, now=LATER, replay=cache)
    with pytest.raises(ReplayedError):
        verify_qr("SSP1:" + base45.encode(twin), store, now=LATER, replay=cache)


def test_a_proof_signed_by_another_device_is_refused(
    wallet: Wallet, store: TrustStore
) -> None:
    thief = ec.generate_private_key(ec.SECP256R1())
    stolen = presentation(wallet.credential, thief, time=int(NOW.timestamp()))
    with pytest.raises(HolderBindingError):
        verify_qr(stolen, store, now=LATER)


def test_another_residents_credential_with_a_valid_proof_of_my_key_is_refused(
    agency: Agency, store: TrustStore, device: ec.EllipticCurvePrivateKey
) -> None:
    someone = ec.generate_private_key(ec.SECP256R1())
    other = fmt.Holder("SS110000000031", "Li", "Wei", "M", HOLDER.birth_date, "110105", ())
    theirs = agency.credential(someone, holder=other, subject="SS110000000049", index=9)
    mine = presentation(theirs, device, time=int(NOW.timestamp()))
    with pytest.raises(HolderBindingError):
        verify_qr(mine, store, now=LATER)


def test_a_proof_for_another_credential_is_refused(
    agency: Agency, wallet: Wallet, store: TrustStore, device: ec.EllipticCurvePrivateKey
) -> None:
    # My key signs a proof over my first credential; the QR carries my second credential.
    second = agency.credential(device, subject="SS110000000056")
    body = fmt.encode_presentation(wallet.credential, sign=key_signer(device),
                                   time=int(NOW.timestamp()))
    parsed = fmt.decode_presentation(body)
    swapped = b"\x82" + _bstr(second) + body[len(_bstr(parsed.credential)) + 1 :]
    with pytest.raises(HolderBindingError):
        verify_qr("SSP1:" + base45.encode(swapped), store, now=LATER)


def test_a_screenshot_of_the_credential_shown_as_a_static_qr_is_refused(
    wallet: Wallet, store: TrustStore
) -> None:
    text = qrtext.encode(qrtext.STATIC_CARD, wallet.credential)
    with pytest.raises(HolderBindingError):
        verify_qr(text, store, now=LATER)


def test_a_static_credential_inside_a_presentation_is_refused(
    agency: Agency, store: TrustStore, device: ec.EllipticCurvePrivateKey
) -> None:
    text = presentation(agency.credential(None), device, time=int(NOW.timestamp()))
    with pytest.raises(HolderBindingError):
        verify_qr(text, store, now=LATER)


def test_the_terminal_nonce_must_be_answered(wallet: Wallet, store: TrustStore) -> None:
    challenge = b"\x01\x02\x03\x04"
    answered = wallet.presentation(NOW, nonce=challenge)
    assert verify_qr(answered, store, now=LATER, nonce=challenge)
    for text in (wallet.presentation(NOW), wallet.presentation(NOW, nonce=b"\x09")):
        with pytest.raises(StaleProofError):
            verify_qr(text, store, now=LATER, nonce=challenge)


def test_a_full_replay_cache_fails_closed(wallet: Wallet, store: TrustStore) -> None:
    cache = ReplayCache(capacity=1)
    assert verify_qr(wallet.presentation(NOW), store, now=LATER, replay=cache)
    with pytest.raises(ReplayedError, match="full"):
        verify_qr(wallet.presentation(NOW + timedelta(seconds=1)), store, now=LATER,
                  replay=cache)


def test_a_naive_now_is_a_callers_bug_not_a_verdict(wallet: Wallet, store: TrustStore) -> None:
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(ValidationError, match="timezone"):
        verify_qr(wallet.presentation(NOW), store, now=naive)
    with pytest.raises(ValidationError, match="timezone"):
        check_qr(wallet.presentation(NOW), store, now=naive)
