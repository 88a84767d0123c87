"""verify_qr on the less common forms of a valid QR: the canonical reader's whole-message
patterns cover the usual ones, its field-by-field walkers the rest, and a terminal must accept
both alike (the readers themselves are compared in tests/unit/cardsys/formats)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.formats import credential as fmt
from cardsys.formats import qrtext
from cardsys.formats.cose import key_signer
from cardsys.wallet import Wallet, static_text
from tests.unit.verify.conftest import HOLDER, NOW, Agency
from verify.qr import verify_qr
from verify.replay import ReplayCache
from verify.result import Evidence
from verify.trust import TrustStore

LATER = NOW + timedelta(seconds=20)

UNUSUAL_HOLDERS = {
    # Names of more than 255 bytes: the long text head (0x79), read by the walker.
    "long names": fmt.Holder("SS110000000015", "欧阳" * 60, "娜" * 90, "F", HOLDER.birth_date,
                             "110105", ("URBAN-EMP",)),
    # Names of 24 to 255 bytes and scheme codes of 24 to 32: the one-byte length head (0x78).
    "medium names and codes": fmt.Holder("SS110000000015", "Wolfeschlegelsteinhausen",
                                         "Anna-Maria Elisabeth Charlotte", "X",
                                         HOLDER.birth_date, "110105",
                                         ("A" * 24, "B-" * 16, "URBAN-EMP")),
    # The most schemes, no photo, shortest names.
    "many schemes": fmt.Holder("SS11000000001Z", "L", "W", "M", HOLDER.birth_date, "110105",
                               tuple(f"S{n}" for n in range(16))),
}


@pytest.mark.parametrize("name", list(UNUSUAL_HOLDERS))
def test_unusual_holder_claims_verify_with_their_data(
    name: str, agency: Agency, store: TrustStore, device: ec.EllipticCurvePrivateKey
) -> None:
    holder = UNUSUAL_HOLDERS[name]
    wallet = Wallet(device, agency.credential(device, holder=holder))
    for text, evidence in (
        (wallet.presentation(NOW), Evidence.PRESENTATION),
        (static_text(agency.credential(None, holder=holder)), Evidence.STATIC),
    ):
        card = verify_qr(text, store, now=LATER, replay=ReplayCache())
        assert card.evidence is evidence
        read = (card.card_number, card.surname, card.given_names, card.sex, card.birth_date,
                card.region, card.schemes, card.photo_sha256)
        assert read == (holder.card_number, holder.surname, holder.given_names, holder.sex,
                        holder.birth_date, holder.region, holder.schemes, holder.photo_sha256)


def test_a_proof_with_a_nonce_and_an_untagged_credential_verify(
    agency: Agency, store: TrustStore, device: ec.EllipticCurvePrivateKey
) -> None:
    untagged = agency.credential(device)[1:]  # COSE_Sign1 without tag 18: still accepted
    body = fmt.encode_presentation(untagged, sign=key_signer(device),
                                   time=int(NOW.timestamp()), nonce=b"\x07" * 24)
    text = qrtext.encode(qrtext.PRESENTATION, body)
    card = verify_qr(text, store, now=LATER, nonce=b"\x07" * 24)
    assert card.surname == HOLDER.surname
