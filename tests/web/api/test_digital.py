"""Activation codes and phone provisioning through the API, and verifying the phone's QR."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select

from cardsys.lifecycle import CardKind
from cardsys.models import ActivationCode, Card
from cardsys.wallet import Wallet
from tests.web.api.conftest import Api, Terminal, new_key, problem, walk_to_active
from web.throttle import activation_try


def point(key: ec.EllipticCurvePrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def digital_cards(api: Api) -> int:
    with api.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Card)
                                  .where(Card.kind == CardKind.DIGITAL)) or 0)


@pytest.fixture
def active(api: Api) -> str:
    walk_to_active(api, api.world.card_a)
    return api.world.card_a


def code_for(api: Api, number: str) -> str:
    response = api.create(f"/cards/{number}/activation-codes")
    assert response.status_code == 201, response.get_json()
    code: str = response.get_json()["code"]
    return code


def provision_body(api: Api, number: str, code: str, key: ec.EllipticCurvePrivateKey,
                   **more: Any) -> dict[str, Any]:
    return {"code": code, "card_number": number, "birth_date": "1980-05-17",
            "device_public_key": point(key), **more}


def test_an_activation_code_is_shown_once(api: Api, active: str) -> None:
    key = new_key()
    first = api.post(f"/cards/{active}/activation-codes", key=key)
    assert first.status_code == 201
    body = first.get_json()
    assert body["card_number"] == active
    again = problem(api.post(f"/cards/{active}/activation-codes", key=key), 409, "shown_once")
    assert body["code"] not in again["detail"]
    with api.db.transaction() as session:
        stored = [str(row) for row in session.execute(select(ActivationCode.__table__)).all()]
    assert not any(body["code"].replace("-", "") in text for text in stored)
    problem(api.create(f"/cards/{api.world.card_b}/activation-codes"), 404)
    problem(api.create(f"/cards/{active}/activation-codes", as_=api.world.a.auditor), 403)


def test_no_code_for_a_card_that_is_not_active(api: Api) -> None:
    problem(api.create(f"/cards/{api.world.card_a}/activation-codes"), 409, "card_not_active")


def test_provisioning_and_its_retry(api: Api, active: str) -> None:
    device = ec.generate_private_key(ec.SECP256R1())
    body = provision_body(api, active, code_for(api, active), device)
    key = new_key()
    # The phone's call carries no operator token.
    first = api.post("/digital/provision", body, key=key, as_=None, token=None)
    assert first.status_code == 201, first.get_json()
    issued = first.get_json()
    credential = base64.urlsafe_b64decode(issued["credential"] + "==")
    assert Wallet(device, credential).parsed.subject == issued["card_number"]
    again = api.post("/digital/provision", body, key=key)
    assert again.status_code == 201
    assert again.get_json() == issued
    assert again.headers["Idempotent-Replayed"] == "true"
    assert digital_cards(api) == 1
    # A new key is a new request: the code is used up.
    problem(api.post("/digital/provision", body, key=new_key()), 401, "unauthenticated")
    problem(api.post("/digital/provision", {**body, "birth_date": "1980-05-18"}, key=key), 422,
            "idempotency_key_reused")


def test_a_wrong_try_counts_once_however_often_it_is_retried(api: Api, active: str) -> None:
    code = code_for(api, active)
    device = ec.generate_private_key(ec.SECP256R1())
    wrong = provision_body(api, active, "ABCD-EFGH-JKMN", device)
    key = new_key()
    first = api.post("/digital/provision", wrong, key=key)
    problem(first, 401, "unauthenticated")
    assert first.headers["WWW-Authenticate"] == 'ActivationCode realm="cardsys"'
    for _ in range(5):
        retried = api.post("/digital/provision", wrong, key=key)
        assert retried.get_json() == first.get_json()
        assert retried.headers["Idempotent-Replayed"] == "true"
    with api.db.transaction() as session:
        attempts = session.scalar(select(ActivationCode.attempts))
    assert attempts == 1
    for _ in range(3):
        problem(api.post("/digital/provision", wrong, key=new_key()), 401)
    problem(api.post("/digital/provision", wrong, key=new_key()), 423, "locked")
    # Dead for good, even with the right code.
    problem(api.post("/digital/provision", provision_body(api, active, code, device),
                     key=new_key()), 401)
    assert digital_cards(api) == 0


def test_provisioning_refusals(api: Api, active: str) -> None:
    device = ec.generate_private_key(ec.SECP256R1())
    body = provision_body(api, active, code_for(api, active), device)
    problem(api.post("/digital/provision", body), 400, "idempotency_key_required")
    not_on_curve = base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).rstrip(b"=").decode()
    problem(api.post("/digital/provision", {**body, "device_public_key": not_on_curve},
                     key=new_key()), 422, "invalid")
    problem(api.post("/digital/provision", {**body, "code": "!!!!"}, key=new_key()), 422,
            "invalid_body")
    problem(api.post("/digital/provision", {**body, "birth_date": "1980-02-30"},
                     key=new_key()), 422)
    assert digital_cards(api) == 0


def test_the_phones_qr_verifies_then_replays_then_is_revoked(
    api: Api, active: str, terminal: Terminal
) -> None:
    device = ec.generate_private_key(ec.SECP256R1())
    issued = api.post("/digital/provision",
                      provision_body(api, active, code_for(api, active), device),
                      key=new_key()).get_json()
    wallet = Wallet(device, base64.urlsafe_b64decode(issued["credential"] + "=="))
    terminal.sync(api.clock.now)
    text = wallet.presentation(api.clock.now)
    verdict = api.post("/verify/qr", {"text": text}, as_=api.world.a.auditor).get_json()
    assert verdict["valid"] is True, verdict
    assert verdict["card"]["card_number"] == active
    assert verdict["card"]["document_number"] == issued["card_number"]
    replayed = api.post("/verify/qr", {"text": text}).get_json()
    assert (replayed["valid"], replayed["reason"]) == (False, "replayed")
    api.step(active, "revoke", json={"reason": "stolen"}, as_=api.world.a.supervisor)
    api.clock.advance(seconds=40)
    terminal.sync(api.clock.now)
    revoked = api.post("/verify/qr", {"text": wallet.presentation(api.clock.now)}).get_json()
    assert (revoked["valid"], revoked["reason"]) == (False, "revoked")


@pytest.mark.parametrize(("text", "reason"), [
    ("SSP1:", "bad_encoding"), ("hello", "bad_encoding"), ("SSC1:" + "A" * 400, "bad_encoding"),
])
def test_garbage_is_a_verdict_not_an_error(api: Api, terminal: Terminal, text: str,
                                           reason: str) -> None:
    terminal.sync(api.clock.now)
    response = api.post("/verify/qr", {"text": text})
    assert response.status_code == 200
    assert (response.get_json()["valid"], response.get_json()["reason"]) == (False, reason)


def test_verify_needs_a_token_and_a_text(api: Api, terminal: Terminal) -> None:
    problem(api.post("/verify/qr", {"text": "x"}, token="cst_" + "B" * 43), 401)
    problem(api.post("/verify/qr", {"text": ""}), 422, "invalid_body")
    problem(api.post("/verify/qr", {"text": "x" * 9000}), 422)


def test_the_throttle_fences_a_card(api: Api, active: str) -> None:
    api.app.config["PORTAL_CARD_LIMIT"] = (2, 600)
    api.app.extensions.pop("cardsys_throttle_card", None)
    device = ec.generate_private_key(ec.SECP256R1())
    wrong = provision_body(api, active, "ABCD-EFGH-JKMN", device)
    for _ in range(2):
        problem(api.post("/digital/provision", wrong, key=new_key()), 401)
    throttled = problem(api.post("/digital/provision", wrong, key=new_key()), 429, "throttled")
    assert "wait" in throttled["detail"]
    assert int(api.post("/digital/provision", wrong, key=new_key()).headers["Retry-After"]) > 0



def test_the_throttle_counts_a_card_however_it_is_spelled(api: Api) -> None:
    # One window for both doors (portal and API), and for 'ss11-...' and 'SS11...' alike.
    api.app.config["PORTAL_CARD_LIMIT"] = (2, 600)
    api.app.extensions.pop("cardsys_throttle_card", None)
    with api.app.app_context():
        assert activation_try("10.0.0.1", "SS110000000017", 1000.0) == 0
        assert activation_try("10.0.0.2", "ss11-0000-0000-17", 1001.0) == 0
        assert activation_try("10.0.0.3", " SS11 0000 0000 17", 1002.0) > 0
