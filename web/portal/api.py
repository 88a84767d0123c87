"""The portal's two JSON endpoints: provision a phone, refresh its credential.

    POST /portal/api/provision  {"card_number", "birth_date": "YYYY-MM-DD", "code",
                                 "public_key": base64url of the raw P-256 point (65 bytes)}
    POST /portal/api/refresh    {"request": base64url of a refresh request signed by the
                                 phone's key (cardsys.formats.credential)}

Both answer `{"card_number", "digital_card", "credential" (base64url), "expires_at",
"issued_at", "holder": {...}}`, or `{"error": code, "message": words}` with a status: 400 bad
input, 403 refused (wrong code, card number or birth date; a refresh not signed by the phone),
409 the card is not active or the phone limit is reached, 423 the code is dead, 429 too many
tries (with Retry-After).

No session, no cookie, so no CSRF token: nothing here acts on ambient authority. The code and
the birth date authorise a provisioning, the phone's signature a refresh. Requests must be
`application/json` (a cross-site form cannot send that without a CORS preflight, which this
app never grants) and, when the browser names an Origin, come from this one.

Brute force: every try counts in `web.throttle.activation_try` (per client address and per
card number, in-process, shared with the API), and the service counts wrong tries durably:
the code dies after `activation_max_attempts`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime
from typing import Any, Final

from flask import Response, current_app, jsonify, request
from flask_babel import gettext as _  # type: ignore[import-untyped]
from flask_babel import lazy_gettext as _l

from cardsys.errors import (
    AuthenticationError,
    CardNotActiveError,
    CardsysError,
    DuplicateError,
    LimitExceededError,
    LockedError,
    ValidationError,
)
from cardsys.formats import credential as fmt
from issuance import digital
from web.database import database, now, settings, transaction
from web.portal import bp
from web.publication import signers
from web.throttle import activation_try

_MAX_BODY: Final = 8192
#: Tries per client address and per card number in ten minutes (module docstring).


class _Refused(Exception):
    """An answer other than success (status, code, words)."""

    def __init__(self, status: int, code: str, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


@bp.post("/api/provision")
def provision() -> tuple[Response, int]:
    """Bind this phone's key to a new digital card (module docstring)."""
    try:
        fields = _json_fields("card_number", "birth_date", "code", "public_key")
        _count_try(fields["card_number"])
        born = _birth_date(fields["birth_date"])
        key = _base64url(fields["public_key"], _("The phone's key could not be read."))
        try:
            issued = digital.provision(
                database(),
                digital.ProvisionRequest(code=fields["code"], card_number=fields["card_number"],
                                         birth_date=born, device_public_key=key),
                now=now(), settings=settings(), signers=signers(), channel="portal",
            )
        except CardsysError as exc:
            raise _refusal(exc) from None
    except _Refused as refused:
        return _error(refused)
    return _issued(issued), 201


@bp.post("/api/refresh")
def refresh() -> tuple[Response, int]:
    """A new credential for the phone that signed the request."""
    try:
        fields = _json_fields("request")
        signed = _base64url(fields["request"], _("The refresh request could not be read."))
        try:
            with transaction() as db:
                issued = digital.refresh(db, signed, now=now(), settings=settings(),
                                         signers=signers())
        except CardsysError as exc:
            raise _refusal(exc) from None
    except _Refused as refused:
        return _error(refused)
    return _issued(issued), 200


# --- reading the request ------------------------------------------------------------------------


def _json_fields(*names: str) -> dict[str, str]:
    """The named string fields of a JSON object body (checks: module docstring)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") != request.host_url.rstrip("/"):
        raise _Refused(403, "origin", _("This request did not come from the portal."))
    if not request.is_json or (request.content_length or 0) > _MAX_BODY:
        raise _Refused(400, "invalid", _("The request could not be understood."))
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _Refused(400, "invalid", _("The request could not be understood."))
    fields = {}
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value or len(value) > _MAX_BODY:
            raise _Refused(400, "invalid", _("Some input is missing."))
        fields[name] = value.strip()
    return fields


def _count_try(card_number: str) -> None:
    wait = activation_try(request.remote_addr or "unknown", card_number, now().timestamp())
    if wait:
        raise _Refused(429, "throttled", _("Too many tries: wait a few minutes."), wait)


def _birth_date(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise _Refused(400, "invalid", _("The birth date must be a date (YYYY-MM-DD).")) from None


def _base64url(text: str, message: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _Refused(400, "invalid", message) from None


# --- answering ----------------------------------------------------------------------------------

#: Most specific first: (error class, status, words).
_REFUSALS: Final[tuple[tuple[type[CardsysError], int, Any], ...]] = (
    (LockedError, 423, _l("Too many wrong tries: this activation code no longer works. Ask "
                          "the office for a new one.")),
    (AuthenticationError, 403, _l("The activation code, card number or birth date is wrong, "
                                  "or the code has expired.")),
    (CardNotActiveError, 409, _l("The card is not active (suspended, revoked or not yet "
                                 "handed over).")),
    (LimitExceededError, 409, _l("This card already has the most phones allowed: the office "
                                 "can remove one.")),
    (DuplicateError, 409, _l("This phone is already activated.")),
    (ValidationError, 400, _l("Some input is not acceptable.")),
)


def _refusal(error: CardsysError) -> _Refused:
    for kind, status, words in _REFUSALS:
        if isinstance(error, kind):
            return _Refused(status, error.code, str(words))
    current_app.logger.error("portal: unexpected service error", exc_info=error)
    return _Refused(500, "error", _("The server could not finish the request."))


def _error(refused: _Refused) -> tuple[Response, int]:
    response = jsonify({"error": refused.code, "message": refused.message})
    response.headers["Cache-Control"] = "no-store"
    if refused.retry_after:
        response.headers["Retry-After"] = str(refused.retry_after)
    return response, refused.status


def _issued(issued: digital.Provisioned) -> Response:
    """The credential and what the phone shows of it (read back from the credential)."""
    # The issuer read it back before signing it off (issue_credential): this cannot fail.
    parsed = fmt.decode_credential(issued.credential)
    holder = parsed.holder()
    response = jsonify({
        "digital_card": issued.card_number,
        "card_number": holder.card_number,
        "credential": base64.urlsafe_b64encode(issued.credential).rstrip(b"=").decode(),
        "issued_at": _iso(parsed.issued_at),
        "expires_at": issued.expires_at.isoformat(),
        "holder": {
            "card_number": holder.card_number, "surname": holder.surname,
            "given_names": holder.given_names, "sex": holder.sex,
            "birth_date": holder.birth_date.isoformat(), "region": holder.region,
            "schemes": list(holder.schemes),
        },
    })
    response.headers["Cache-Control"] = "no-store"
    return response


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()
