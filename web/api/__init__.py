"""The JSON API (`/api/v1`): built by a later brief (operator tokens, idempotency keys,
problem+json errors, OpenAPI). Token-authenticated requests carry no cookie, so the later
views exempt this blueprint from the form CSRF check (`web.security.csrf.exempt(bp)`)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__)


@bp.get("/")
def index() -> dict[str, str]:
    """What the API offers so far."""
    return {"api": "cardsys", "version": "v1", "status": "under construction"}
