"""The cardsys web application: `create_app()` builds it, one blueprint per area.

    office/    the issuance office (operators in a browser)
    portal/    the resident's phone: activation and the live presentation QR
    terminal/  the counter PC that verifies cards (also alone: `terminal_app`, no database)
    api/       JSON for every lifecycle operation
    public/    the landing page, health check, trust list, status lists and root certificate

The frame around the blueprints lives here and in its helper modules: settings and the one
`Database` per app (`web.database`), secret key, cookies, headers and CSRF (`web.security`),
languages (`web.i18n`), cache-busted static files (`web.assets`), error pages (`web.errors`),
status lists republished after changes (`web.publication`).
`scripts/run` serves `web:create_app()` with gunicorn.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from cardsys.config import load_settings
from cardsys.db import Database

#: Application defaults a test (or a deployment) may override through `test_config`.
DEFAULTS: dict[str, Any] = {
    # Minutes an office session survives without a request, and hours it lives at most.
    "SESSION_IDLE_SECONDS": 30 * 60,
    "SESSION_MAX_SECONDS": 12 * 3600,
    # Uploads: a portrait is at most 100 kB; anything much larger is refused at the door.
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "BABEL_DEFAULT_LOCALE": "zh_Hans",
    "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
}


def terminal_app(*args: Any, **kwargs: Any) -> Flask:
    """A terminal alone, with no database (see `web.terminal.setup.terminal_app`)."""
    from web.terminal.setup import terminal_app as build

    return build(*args, **kwargs)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application.

    Args:
        test_config: Flask config overrides; its `CARDSYS` entry (a mapping) overrides
            cardsys settings, and `CARDSYS_CLOCK` (a callable returning an aware datetime)
            replaces the clock, so tests can move time.
    """
    from web import assets, errors, i18n, security, templating
    from web.api import bp as api_bp
    from web.office import bp as office_bp
    from web.portal import bp as portal_bp
    from web.public import bp as public_bp
    from web.terminal import bp as terminal_bp

    config = dict(test_config or {})
    app = Flask(__name__, static_folder=None)
    app.config.update(DEFAULTS)
    settings = load_settings(overrides=config.pop("CARDSYS", {}))
    app.config.update(config)
    app.config["CARDSYS_SETTINGS"] = settings
    clock: Callable[[], datetime] = app.config.setdefault("CARDSYS_CLOCK", _utc_now)
    assert callable(clock)
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    app.extensions["cardsys_db"] = Database.from_settings(settings)

    security.init_app(app, settings)
    i18n.init_app(app, settings)
    assets.init_app(app)
    errors.init_app(app)
    templating.init_app(app)
    # Status lists republished after changes (W2), and the app's own terminal directory.
    from web import publication
    from web.terminal import setup as terminal_setup

    publication.init_app(app, settings)
    terminal_setup.install(app, app.extensions["cardsys_db"], settings)

    app.register_blueprint(public_bp)
    app.register_blueprint(office_bp, url_prefix="/office")
    app.register_blueprint(portal_bp, url_prefix="/portal")
    app.register_blueprint(terminal_bp, url_prefix="/terminal")
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    return app
