"""Error pages: HTTP errors and uncaught `CardsysError`s become a page in the reader's language.

Under `/api/` the same errors are RFC 9457 problem documents (`application/problem+json`).
A `CardsysError` is mapped by class to a status: not found (or out of the operator's office)
404, permission 403, authentication 401, conflicts and lifecycle rules 409, bad input 400.
Unexpected exceptions are logged by Flask and answered with a 500 page that shows nothing
internal (Flask hands them to the HTTPException handler as an InternalServerError).
"""

from __future__ import annotations

import json

from flask import Flask, Response, render_template, request
from flask_babel import gettext as _  # type: ignore[import-untyped]
from flask_wtf.csrf import CSRFError  # type: ignore[import-untyped]
from werkzeug.exceptions import HTTPException

from cardsys.errors import (
    AuthenticationError,
    CardsysError,
    ConflictError,
    DuplicateError,
    LifecycleError,
    LimitExceededError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from web.labels import error_message

#: Most specific first.
STATUS_BY_ERROR: tuple[tuple[type[CardsysError], int], ...] = (
    (NotFoundError, 404),
    (PermissionDeniedError, 403),
    (AuthenticationError, 401),
    (ConflictError, 409),
    (DuplicateError, 409),
    (LifecycleError, 409),
    (LimitExceededError, 409),
    (ValidationError, 400),
)


def status_of(error: CardsysError) -> int:
    """The HTTP status for a service error (500 for one no rule names)."""
    return next((code for kind, code in STATUS_BY_ERROR if isinstance(error, kind)), 500)


def init_app(app: Flask) -> None:
    """Register the handlers."""

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> tuple[Response | str, int]:
        message = _("The form has expired or did not come from this site. Reload the page "
                    "and try again.")
        return _render(400, _("Bad request"), message)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response | str, int]:
        code = error.code or 500
        return _render(code, _http_title(code), _http_message(code))

    @app.errorhandler(CardsysError)
    def service_error(error: CardsysError) -> tuple[Response | str, int]:
        code = status_of(error)
        if code == 500:
            app.logger.error("unmapped service error", exc_info=error)
        return _render(code, _http_title(code), error_message(error))



def _render(code: int, title: str, message: str) -> tuple[Response | str, int]:
    if request.path.startswith("/api/"):
        problem = {"type": "about:blank", "title": title, "status": code, "detail": message}
        response = Response(status=code, mimetype="application/problem+json")
        response.set_data(json.dumps(problem, ensure_ascii=False))
        return response, code
    if request.path.startswith("/public/"):
        # What terminals and caches fetch gets no HTML page: that page opens a session for
        # its forms, and nothing under /public/ may set a cookie.
        response = Response(f"{title}\n", status=code, mimetype="text/plain")
        response.headers["Cache-Control"] = "no-store"
        return response, code
    return render_template("error.html", code=code, title=title, message=message), code


def _http_title(code: int) -> str:
    titles = {
        400: _("Bad request"),
        401: _("Not signed in"),
        403: _("Not allowed"),
        404: _("Not found"),
        405: _("Method not allowed"),
        409: _("Conflict"),
        413: _("Upload too large"),
        429: _("Too many requests"),
    }
    return str(titles.get(code, _("Something went wrong")))


def _http_message(code: int) -> str:
    messages = {
        400: _("The request could not be understood."),
        401: _("Please sign in."),
        403: _("Your role does not allow this."),
        404: _("There is no such page, or it belongs to another office."),
        405: _("This address does not accept that kind of request."),
        413: _("The upload is too large."),
        429: _("Too many requests: wait a moment and try again."),
    }
    fallback = _("The server could not finish the request. It has been logged.")
    return str(messages.get(code, fallback))
