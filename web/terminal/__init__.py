"""The counter PC that verifies cards (`/terminal`): built by a later brief, with no database."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("terminal", __name__)


@bp.get("/")
def index() -> str:
    """A placeholder page until the terminal is built."""
    return render_template("placeholder.html", area="terminal")
