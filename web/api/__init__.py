"""The JSON API (`/api/v1`): every lifecycle operation, digital activation, QR verification
and the audit log, for operators' programs.

    routing      the one table of operations and the request pipeline (auth, role, params,
                 If-Match, Idempotency-Key, body, one transaction)
    openapi      the OpenAPI 3.1 document, built from that table (`/api/v1/openapi.json`)
    schema       the JSON Schemas, and the validator that holds requests to them
    problems     errors as RFC 9457 problem documents, one status mapping
    idempotency  keys claimed with the change, responses replayed on a retry
    tokens       operator API tokens (hashed at rest, expiry, revocation, last use)
    commands     `cardsys operator token create|list|revoke`
    residents, cards, digital, verification, audit, meta: the operations

Requests carry a bearer token, not a cookie, so the form CSRF check does not apply to this
blueprint; errors raised in its views are problem documents, never HTML pages.
"""

from __future__ import annotations

from flask import Blueprint, Response
from werkzeug.exceptions import HTTPException, NotFound

from cardsys.errors import CardsysError
from web.api import problems
from web.api.problems import Problem
from web.api.routing import METHODS
from web.security import csrf

bp = Blueprint("api", __name__)
csrf.exempt(bp)


@bp.errorhandler(Problem)
def _protocol_problem(error: Problem) -> Response:
    return problems.from_protocol(error)


@bp.errorhandler(CardsysError)
def _service_problem(error: CardsysError) -> Response:
    return problems.from_service(error)


@bp.errorhandler(HTTPException)
def _http_problem(error: HTTPException) -> Response:
    return problems.from_http(error)


@bp.route("/<path:anything>", methods=list(METHODS), provide_automatic_options=False)
def unknown(anything: str) -> Response:
    """Any other address under /api/v1: a problem document, not the site's HTML page."""
    raise NotFound(f"no API resource /api/v1/{anything}")


# The operation modules fill the table when imported; then it becomes routes.
from web.api import audit, cards, digital, meta, residents, verification  # noqa: E402
from web.api.routing import install  # noqa: E402

install(bp)

__all__ = ["audit", "bp", "cards", "digital", "meta", "residents", "verification"]
