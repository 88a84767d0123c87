"""The cardsys web application (placeholder until the web issue lands)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from cardsys.config import load_settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application from settings (and `test_config` overrides in tests)."""
    app = Flask(__name__)
    settings = load_settings(overrides=(test_config or {}).get("CARDSYS", {}))
    app.config["CARDSYS_SETTINGS"] = settings

    @app.get("/")
    def index() -> str:
        return (
            "<!doctype html><title>cardsys</title><h1>cardsys</h1>"
            "<p>The issuance office, portal and terminal pages arrive with the web application."
            " Use the <code>cardsys</code> command meanwhile.</p>"
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
