"""Pages anyone may see: the landing page, the health check and the language switch.

The trust list, status lists and root certificate (`/public/...`) come with a later brief.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from web import i18n
from web.auth import safe_next
from web.database import settings

bp = Blueprint("public", __name__)


@bp.get("/")
def index() -> str:
    """The three faces of cardsys."""
    return render_template("index.html")


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """For load balancers: the process answers."""
    return {"status": "ok"}


@bp.post("/language")
def set_language() -> Response:
    """Remember the chosen language in a cookie and go back where the reader was."""
    chosen = request.form.get("lang", "")
    target = safe_next(request.form.get("next")) or url_for("public.index")
    response = redirect(target, code=303)
    if chosen in i18n.LANGUAGES:
        response.set_cookie(
            i18n.COOKIE, chosen, max_age=i18n.COOKIE_MAX_AGE, httponly=True, samesite="Lax",
            secure=settings().secure_cookies, path="/",
        )
    return response
