"""Digital cards: activation codes (office) and provisioning a phone (the wallet's call).

`POST /cards/{number}/activation-codes` makes a one-time code for an active physical card.
The code is shown once: the idempotency record keeps the answer without it, so a retry with
the same key is told so (409 `shown_once`) and the client asks for a new code, which
replaces the first (one live code per card).

`POST /digital/provision` is the phone's, not an operator's: no token; the activation code,
the card number and the birth date authorise it (`issuance.digital.provision` counts wrong
tries durably: the code dies after `activation_max_attempts`; the same in-process throttle as
the portal's form fences the address and the card number). It creates a digital card, so it
needs an `Idempotency-Key`, scoped to the card number (a phone's key never meets another
card's). The service runs its own transactions, so that a wrong try is committed although the
call fails; the key is claimed inside that same transaction (`_ClaimingDatabase`), and the
answer - the credential, or the refusal of a counted try - is recorded right after. A retry
gets that answer again and never spends another try or makes a second card.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, Final, cast

from flask import Response, request
from sqlalchemy.orm import Session

from cardsys.db import Database
from cardsys.errors import CardsysError, ValidationError
from cardsys.models import IdempotencyKey, Role
from issuance import digital
from issuance.operators import SYSTEM_LOGIN, get_operator
from web.api import idempotency, problems, records
from web.api.problems import Problem
from web.api.routing import Call, Operation, Raw, Reply, operation, raw_operation, respond
from web.api.schema import CARD_NUMBER, closed, string
from web.database import database, settings, transaction
from web.publication import signers
from web.throttle import activation_try

TAG = "digital"
CHALLENGE: Final = 'ActivationCode realm="cardsys"'


@operation(
    method="POST", path="/cards/{number}/activation-codes", operation_id="createActivationCode",
    tag=TAG, response="ActivationCode", status=201, roles=(Role.CLERK, Role.SUPERVISOR),
    creates=True, secret=("code",), path_params=records.NUMBER_PARAM, errors=(409,),
    summary="A one-time activation code for the holder of an active physical card: shown "
            "once, it replaces any live code of the card.",
)
def create_code(call: Call) -> Reply:
    card = records.card_or_404(call.db, call.actor, call.path["number"])
    issued = digital.create_activation_code(call.db, call.actor, card.number, now=call.at,
                                            settings=settings())
    return Reply(201, {"code": issued.code, "card_number": issued.card_number,
                       "expires_at": issued.expires_at.isoformat()})


PROVISION = closed(
    ["code", "card_number", "birth_date", "device_public_key"],
    code=string("^[0-9A-Za-z -]{12,24}$", description="The activation code as typed."),
    card_number=string(CARD_NUMBER, description="The physical card's number."),
    birth_date=string("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", format="date"),
    device_public_key=string("^[A-Za-z0-9_-]{87}$", description="The phone's P-256 public "
                             "key: the uncompressed point (65 bytes), base64url without "
                             "padding."),
)


class _Replayed(Exception):
    def __init__(self, replay: idempotency.Replay) -> None:
        super().__init__("replayed")
        self.replay = replay


class _ClaimingDatabase:
    """The app's database for `digital.provision`, claiming the key in its transaction."""

    def __init__(self, db: Database, key: str, fingerprint: str, raw: Raw) -> None:
        self._db, self._key, self._fingerprint, self._raw = db, key, fingerprint, raw
        #: The claim, once its transaction committed.
        self.claim_id: int | None = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._db.transaction() as session:
            system = get_operator(session, SYSTEM_LOGIN)
            claimed = idempotency.claim(session, system.id, self._key, self._fingerprint,
                                        at=self._raw.at)
            if isinstance(claimed, idempotency.Replay):
                raise _Replayed(claimed)
            yield session
            session.flush()
            claim_id = claimed.id
        self.claim_id = claim_id


@raw_operation(
    method="POST", path="/digital/provision", operation_id="provisionDigitalCard", tag=TAG,
    response="Provisioned", status=201, creates=True, body=PROVISION, challenge=CHALLENGE,
    errors=(401, 409, 423, 429),
    summary="The phone's call: redeem an activation code, bind the phone's key to a new "
            "digital card and receive its credential. No token: the code authorises it.",
)
def provision(raw: Raw) -> Response:
    op = raw.op
    body = raw.body
    assert raw.key is not None
    assert raw.fingerprint is not None
    scoped = hashlib.sha256(f"provision {body['card_number']} {raw.key}".encode()).hexdigest()
    with transaction() as db:
        earlier = idempotency.lookup(db, get_operator(db, SYSTEM_LOGIN).id, scoped,
                                     raw.fingerprint)
    if earlier is not None:  # a retry is answered, and is no new try for the throttle
        return _answer(op, earlier.status, earlier.body, replayed=True)
    _count_try(body["card_number"], raw.at.timestamp())
    claiming = _ClaimingDatabase(database(), scoped, raw.fingerprint, raw)
    try:
        issued = digital.provision(
            cast(Database, claiming),  # duck-typed: provision only opens transactions
            digital.ProvisionRequest(code=body["code"], card_number=body["card_number"],
                                     birth_date=_date(body["birth_date"]),
                                     device_public_key=_point(body["device_public_key"])),
            now=raw.at, settings=settings(), signers=signers(), channel="api",
        )
    except _Replayed as replayed:
        return _answer(op, replayed.replay.status, replayed.replay.body, replayed=True)
    except CardsysError as exc:
        if claiming.claim_id is None:
            raise  # nothing committed: no claim, the key may be retried
        answer = problems.from_service(exc)
        _record(claiming.claim_id, answer.status_code, json.loads(answer.get_data()))
        return _answer(op, answer.status_code, json.loads(answer.get_data()))
    assert claiming.claim_id is not None
    data = {"card_number": issued.card_number,
            "credential": base64.urlsafe_b64encode(issued.credential).rstrip(b"=").decode(),
            "expires_at": issued.expires_at.isoformat()}
    _record(claiming.claim_id, 201, data)
    return respond(op, Reply(201, data))


def _answer(
    op: Operation, status: int, body: dict[str, Any], *, replayed: bool = False
) -> Response:
    """A recorded answer: the credential, or the problem of a counted try."""
    if status < 400:
        return respond(op, Reply(status, body), replayed=replayed)
    response = Response(json.dumps(body, ensure_ascii=False), status=status,
                        mimetype=problems.MEDIA_TYPE)
    if status == 401:
        response.headers["WWW-Authenticate"] = CHALLENGE
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _record(claim_id: int, status: int, body: dict[str, Any]) -> None:
    with transaction() as db:
        row = db.get(IdempotencyKey, claim_id)
        assert row is not None
        idempotency.settle(row, status, body, ())


def _count_try(card_number: str, at: float) -> None:
    wait = activation_try(request.remote_addr or "unknown", card_number, at)
    if wait:
        raise Problem("throttled", "too many tries: wait a few minutes",
                      headers={"Retry-After": str(wait)})


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError("birth_date must be a date (YYYY-MM-DD)") from None


def _point(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError):
        raise ValidationError("device_public_key is not base64url") from None

