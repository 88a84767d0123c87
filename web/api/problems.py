"""Errors as RFC 9457 problem documents (`application/problem+json`).

One mapping turns an error into an HTTP status: `STATUS_BY_ERROR`, which extends the web
app's (`web.errors.STATUS_BY_ERROR`) with what an API client needs told apart: a locked
account or code is 423, bad input 422 (a request body that is not JSON at all is 400),
a missing key or database 503. A lifecycle rule, a duplicate, a lost race and a configured
limit (e.g. devices a resident) are 409: the request is well formed but the record's state
refuses it. (429 is kept for request rates: a client that backs off and retries would never
get a fourth phone.)

Every problem has `type` (a URI per error code, resolvable at `/api/v1/problems/<code>`),
`title` (fixed per code), `status`, `detail` (this occurrence, in English), `instance` (the
request path) and the extension member `code`. A validation problem adds `errors`, a list of
`{pointer, message}` (RFC 6901 JSON pointers into the request body or a parameter name).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from flask import Response, current_app, request, url_for
from werkzeug.exceptions import HTTPException

from cardsys.errors import (
    CardsysError,
    DatabaseUnavailableError,
    FormatError,
    KeyManagementError,
    LockedError,
    ValidationError,
)
from web import errors

MEDIA_TYPE: Final = "application/problem+json"

#: Most specific first; the web app's table follows the API's refinements.
STATUS_BY_ERROR: Final[tuple[tuple[type[CardsysError], int], ...]] = (
    (LockedError, 423),  # before AuthenticationError, its parent
    (ValidationError, 422),
    (FormatError, 422),
    (DatabaseUnavailableError, 503),
    (KeyManagementError, 503),
    *errors.STATUS_BY_ERROR,
)

#: Problems of the HTTP exchange itself (no service error behind them): code -> status, title.
PROTOCOL: Final[Mapping[str, tuple[int, str]]] = {
    "bad_request": (400, "The request could not be understood."),
    "malformed_json": (400, "The request body is not JSON."),
    "idempotency_key_required": (400, "A creating request needs an Idempotency-Key header."),
    "bad_header": (400, "A request header does not have the required form."),
    "invalid_parameters": (422, "The query parameters are not valid."),
    "invalid_body": (422, "The request body does not match the operation's schema."),
    "precondition_failed": (412, "The card changed since the version named in If-Match."),
    "precondition_required": (428, "A change to a card needs an If-Match header."),
    "idempotency_key_reused": (422, "This Idempotency-Key was used for another request."),
    "idempotency_key_in_use": (409, "A request with this Idempotency-Key is still running."),
    "shown_once": (
        409, "The request already succeeded; its answer held a secret, shown only once."),
    "throttled": (429, "Too many tries: wait a few minutes."),
    "unsupported_media_type": (415, "The request body must be application/json."),
    "method_not_allowed": (405, "This address does not accept that method."),
    "not_found": (404, "There is no such resource, or it belongs to another office."),
    "too_large": (413, "The request body is too large."),
    "unavailable": (503, "A service the request needs is not available."),
    "internal": (500, "The server could not finish the request. It has been logged."),
}
#: RFC 3986 `pchar` without the percent sign, and the slash.
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"
_HTTP_CODES: Final[Mapping[int, str]] = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
    415: "unsupported_media_type", 503: "unavailable",
}


@dataclass
class Problem(Exception):
    """A refusal of the API layer itself (headers, media type, idempotency, versions)."""

    code: str
    detail: str
    headers: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, str]] | None = None

    def __post_init__(self) -> None:
        super().__init__(self.detail)
        if self.code not in PROTOCOL:
            raise KeyError(f"no protocol problem {self.code!r}")

    @property
    def status(self) -> int:
        return PROTOCOL[self.code][0]


def status_of(error: CardsysError | type[CardsysError]) -> int:
    """The HTTP status of a service error or error class (500 for one no rule names)."""
    kind = error if isinstance(error, type) else type(error)
    return next((code for base, code in STATUS_BY_ERROR if issubclass(kind, base)), 500)


def _error_classes(root: type[CardsysError] = CardsysError) -> Iterator[type[CardsysError]]:
    yield root
    for child in root.__subclasses__():
        yield from _error_classes(child)


def catalog() -> dict[str, tuple[int, str]]:
    """Every problem code the API can answer with: its status and its fixed title.

    A code several classes share (`bad_encoding`) takes the first class of the tree's
    definition order, so its title never changes between occurrences.
    """
    found: dict[str, tuple[int, str]] = {}
    for kind in _error_classes():
        if kind.code not in found:
            title = (kind.__doc__ or kind.__name__).strip().splitlines()[0]
            found[kind.code] = (status_of(kind), title)
    found.update(PROTOCOL)
    return found


def problem_type(code: str) -> str:
    """The `type` URI of a problem code (a path on this API that describes it)."""
    return url_for("api.op_problems_code", code=code)


def respond(
    status: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """A problem+json response."""
    titles = catalog()
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": titles[code][1] if code in titles else "Error",
        "status": status,
        "detail": detail,
        # Percent-encoded: the decoded path may hold characters a URI cannot.
        "instance": quote(request.path, safe=_PATH_SAFE),
        "code": code,
        **(extra or {}),
    }
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_service(error: CardsysError, headers: Mapping[str, str] | None = None) -> Response:
    """The problem for a service error; an unmapped one is logged and told as internal."""
    status = status_of(error)
    if status == 500:
        current_app.logger.error("unmapped service error", exc_info=error)
        return respond(500, "internal", PROTOCOL["internal"][1])
    return respond(status, error.code, str(error) or error.code, headers=headers)


def from_protocol(problem: Problem) -> Response:
    """The problem for a refusal of the API layer."""
    extra = {"errors": problem.errors} if problem.errors is not None else None
    return respond(problem.status, problem.code, problem.detail, headers=problem.headers,
                   extra=extra)


def from_http(error: HTTPException) -> Response:
    """The problem for a Werkzeug HTTP error raised in an API view (keeps `Allow` etc.)."""
    status = error.code or 500
    code = _HTTP_CODES.get(status, "internal" if status >= 500 else "bad_request")
    headers = {name: value for name, value in error.get_headers()
               if name.lower() != "content-type"}
    detail = PROTOCOL[code][1] if status >= 500 else (error.description or PROTOCOL[code][1])
    return respond(status, code, detail, headers=headers)
