"""The resident portal: its pages, and the provisioning and refresh endpoints.

Provisioning is attacked from the resident's side: a wrong code five times kills it (durably,
in the service), a wrong birth date counts as a wrong try, key bytes that are not a P-256
point are refused, the phone limit holds, and the throttle answers 429 before the service is
even asked. A refresh must be signed by the phone the credential is bound to.
"""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from cardsys.formats import credential as fmt
from cardsys.models import ActivationCode, ActivationCodeState, Card
from cardsys.wallet import Wallet
from tests.web.conftest import Clock, World, enter, post, terminal_store
from tests.web.test_activation_codes import issue_code
from verify.qr import verify_qr
from web.database import transaction

PROVISION = "/portal/api/provision"
REFRESH = "/portal/api/refresh"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def activate(client: FlaskClient, world: World, code: str, /, *,
             key: ec.EllipticCurvePrivateKey | None = None, **changes: Any) -> Any:
    """POST the activation form's JSON as the page does."""
    body = {"card_number": world.active_card, "birth_date": world.active_birth, "code": code,
            "public_key": b64(point(key or ec.generate_private_key(ec.SECP256R1())))}
    body.update(changes)
    return client.post(PROVISION, json=body)


def phone(client: FlaskClient, world: World) -> tuple[Wallet, dict[str, Any]]:
    """A phone activated through the portal: its wallet and the server's answer."""
    code = issue_code(client, world)
    key = ec.generate_private_key(ec.SECP256R1())
    answer = activate(client, world, code, key=key)
    assert answer.status_code == 201, answer.get_json()
    data = answer.get_json()
    return Wallet(key, base64.urlsafe_b64decode(data["credential"] + "==")), data


# --- pages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/portal/", "/portal/activate"])
def test_pages_have_no_inline_script_and_set_no_cookie(app: Flask, path: str) -> None:
    client = app.test_client()
    response = client.get(path)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    # Every script is an external file of this site; nothing inline, no CDN.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts
    assert all(body.strip() == "" and 'src="/static/' in attrs
                           for attrs, body in scripts)
    assert "http://" not in page.replace("http://127.0.0.1", "").split("<body")[0]
    assert 'name="viewport"' in page


def test_activation_page_takes_the_card_number_from_the_link(client: FlaskClient,
                                                             world: World) -> None:
    page = client.get("/portal/activate", query_string={"card": world.active_card})
    assert f'value="{world.active_card}"' in page.get_data(as_text=True)
    hostile = client.get("/portal/activate", query_string={"card": '"><script>x'})
    assert "<script>x" not in hostile.get_data(as_text=True)


def test_service_worker_keeps_the_portal_offline(client: FlaskClient) -> None:
    response = client.get("/portal/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Service-Worker-Allowed"] == "/portal/"
    assert response.headers["Cache-Control"] == "no-cache"
    body = response.get_data(as_text=True)
    for asset in ("portal/card.js", "portal/wallet.js", "qr/qr.js", "portal/portal.css"):
        assert re.search(rf'"/static/[0-9a-f]{{12}}/{re.escape(asset)}"', body), asset
    # Every precached URL exists.
    for url in re.findall(r'"(/static/[0-9a-f]{12}/[^"]+)"', body):
        assert client.get(url).status_code == 200, url


def test_language_switch_is_a_cookie_only(client: FlaskClient) -> None:
    response = client.get("/portal/language/zh_Hans")
    assert response.status_code == 303
    assert response.headers["Location"] == "/portal/"
    assert "lang=zh_Hans" in response.headers["Set-Cookie"]
    assert "我的社保卡" in client.get("/portal/").get_data(as_text=True)


# --- provisioning ------------------------------------------------------------------------------


def test_provisioning_binds_the_phone_and_the_credential_verifies(
    app: Flask, client: FlaskClient, world: World, clock: Clock
) -> None:
    wallet, data = phone(client, world)
    assert data["card_number"] == world.active_card
    assert data["digital_card"] != world.active_card
    assert data["holder"]["surname"] == "Chen"
    assert data["holder"]["birth_date"] == world.active_birth
    parsed = fmt.decode_credential(wallet.credential)
    assert parsed.subject == data["digital_card"]
    assert parsed.device_key().public_numbers() == wallet.device_key.public_key().public_numbers()
    # The new digital card's status reached the published list with the request.
    text = wallet.presentation(clock.now)
    card = verify_qr(text, terminal_store(app), now=clock.now)
    assert card.card_number == world.active_card
    assert card.document_number == data["digital_card"]


def test_wrong_code_five_times_kills_it(app: Flask, client: FlaskClient, world: World) -> None:
    code = issue_code(client, world)
    wrong = "0000-0000-0000" if code != "0000-0000-0000" else "1111-1111-1111"
    statuses = [activate(client, world, wrong).status_code for _ in range(5)]
    assert statuses == [403, 403, 403, 403, 423]
    # The right code is dead now too.
    late = activate(client, world, code)
    assert late.status_code == 403
    with app.app_context(), transaction() as db:
        states = db.scalars(select(ActivationCode.state)).all()
    assert ActivationCodeState.LOCKED in states


def test_wrong_birth_date_is_a_wrong_try(app: Flask, client: FlaskClient, world: World) -> None:
    code = issue_code(client, world)
    answer = activate(client, world, code, birth_date="1980-05-18")
    assert answer.status_code == 403
    assert answer.get_json()["error"] == "unauthenticated"
    with app.app_context(), transaction() as db:
        row = db.scalars(select(ActivationCode).where(
            ActivationCode.state == ActivationCodeState.LIVE)).one()
        assert row.attempts == 1
    assert activate(client, world, code).status_code == 201


@pytest.mark.parametrize(("key", "why"), [
    (b"\x04" + b"\x01" * 64, "not on the curve"),
    (b"\x02" + b"\x01" * 32, "compressed"),
    (b"\x04" + b"\x00" * 63, "short"),
    (b"", "empty"),
])
def test_bad_key_bytes_are_refused(app: Flask, client: FlaskClient, world: World, key: bytes,
                                   why: str) -> None:
    code = issue_code(client, world)
    answer = activate(client, world, code, public_key=b64(key) or "=")
    assert answer.status_code == 400, why
    with app.app_context(), transaction() as db:
        row = db.scalars(select(ActivationCode).where(
            ActivationCode.state == ActivationCodeState.LIVE)).one()
        assert row.attempts == 0  # refused before the code was even looked at


@pytest.mark.parametrize("body", [
    {"card_number": "x"},
    {"card_number": 1, "birth_date": "1980-05-17", "code": "x", "public_key": "x"},
    ["a", "list"],
])
def test_malformed_requests_are_400(client: FlaskClient, body: Any) -> None:
    assert client.post(PROVISION, json=body).status_code == 400


def test_bad_birth_date_and_card_number_are_400(client: FlaskClient, world: World) -> None:
    code = issue_code(client, world)
    for changes in ({"birth_date": "17.05.1980"}, {"birth_date": "1980-02-30"},
                    {"card_number": "SS11000000002X"}, {"code": "not a code!"},
                    {"public_key": "@@@"}):
        assert activate(client, world, code, **changes).status_code == 400, changes


def test_a_form_post_or_another_origin_is_refused(client: FlaskClient, world: World) -> None:
    code = issue_code(client, world)
    form = client.post(PROVISION, data={"card_number": world.active_card, "code": code})
    assert form.status_code == 400
    foreign = client.post(PROVISION, headers={"Origin": "https://evil.example"},
                          json={"card_number": world.active_card,
                                "birth_date": world.active_birth, "code": code,
                                "public_key": "x"})
    assert foreign.status_code == 403


def test_the_phone_limit_holds(make_app: Any, world: World) -> None:
    app: Flask = make_app(max_devices=1)
    client = app.test_client()
    phone(client, world)
    second = activate(client, world, issue_code(client, world))
    assert second.status_code == 409
    assert second.get_json()["error"] == "limit_exceeded"


def test_the_same_phone_twice_is_refused(client: FlaskClient, world: World) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert activate(client, world, issue_code(client, world), key=key).status_code == 201
    again = activate(client, world, issue_code(client, world), key=key)
    assert again.status_code == 409


def test_the_throttle_answers_429_per_card(make_app: Any, world: World) -> None:
    app: Flask = make_app()
    app.config["PORTAL_CARD_LIMIT"] = (3, 600)
    client = app.test_client()
    code = issue_code(client, world)
    for _ in range(3):
        assert activate(client, world, "0000-0000-0000").status_code == 403
    throttled = activate(client, world, code)
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
    # The card's own code was not even tried: it still has its wrong tries counted, not more.
    with app.app_context(), transaction() as db:
        row = db.scalars(select(ActivationCode).where(
            ActivationCode.state == ActivationCodeState.LIVE)).one()
        assert row.attempts == 3


def test_the_throttle_answers_429_per_address(make_app: Any, world: World) -> None:
    app: Flask = make_app()
    app.config["PORTAL_ADDRESS_LIMIT"] = (2, 600)
    client = app.test_client()
    for number in ("SS110000000017", "SS31000000001I"):
        assert activate(client, world, "0000-0000-0000", card_number=number).status_code == 403
    assert activate(client, world, issue_code(client, world)).status_code == 429


# --- refresh -------------------------------------------------------------------------------------


def test_a_refresh_signed_by_the_phone_gives_a_new_credential(
    client: FlaskClient, world: World, clock: Clock
) -> None:
    wallet, data = phone(client, world)
    clock.advance(days=3)
    answer = client.post(REFRESH, json={"request": b64(wallet.refresh_request(clock.now))})
    assert answer.status_code == 200, answer.get_json()
    fresh = base64.urlsafe_b64decode(answer.get_json()["credential"] + "==")
    assert fresh != wallet.credential
    assert wallet.with_credential(fresh).expires > wallet.expires
    assert answer.get_json()["digital_card"] == data["digital_card"]


def test_a_refresh_signed_by_another_key_is_refused(client: FlaskClient, world: World,
                                                    clock: Clock) -> None:
    wallet, _ = phone(client, world)
    from cardsys.formats.cose import key_signer
    from cardsys.formats.cwt import to_numeric_date

    thief = ec.generate_private_key(ec.SECP256R1())
    forged = fmt.encode_refresh_request(wallet.credential, sign=key_signer(thief),
                                        time=to_numeric_date(clock.now))
    answer = client.post(REFRESH, json={"request": b64(forged)})
    assert answer.status_code == 403
    for junk in (b"", b"\x84", wallet.credential):
        assert client.post(REFRESH, json={"request": b64(junk) or "A"}).status_code == 400


def test_a_stale_refresh_request_is_refused(client: FlaskClient, world: World,
                                            clock: Clock) -> None:
    wallet, _ = phone(client, world)
    old = wallet.refresh_request(clock.now - timedelta(minutes=10))
    assert client.post(REFRESH, json={"request": b64(old)}).status_code == 403


def test_no_refresh_for_a_revoked_card(app: Flask, client: FlaskClient, world: World,
                                       clock: Clock) -> None:
    wallet, data = phone(client, world)
    enter(client, world.a.supervisor)
    with app.app_context(), transaction() as db:
        version = db.scalars(select(Card.version).where(
            Card.number == data["digital_card"])).one()
    response = post(client, f"/office/cards/{data['digital_card']}/revoke",
                    {"version": str(version), "reason": "lost", "confirm": "yes"})
    assert response.status_code == 303
    answer = client.post(REFRESH, json={"request": b64(wallet.refresh_request(clock.now))})
    assert answer.status_code == 409
    assert answer.get_json()["error"] == "card_not_active"
