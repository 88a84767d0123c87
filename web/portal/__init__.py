"""The resident's phone (`/portal`): activation and the dynamic QR arrive with a later brief."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("portal", __name__)


@bp.get("/")
def index() -> str:
    """A placeholder page until the portal is built."""
    return render_template("placeholder.html", area="portal")
