"""The app's secret key, cookie flags, security headers on every response, and CSRF.

- The secret key lives in `<instance>/secret_key` (0600), made on the first start and never in
  the repository; a key file others can read is refused.
- Cookies are HttpOnly and SameSite=Lax; with `settings.secure_cookies` (production behind
  HTTPS) also Secure, with the `__Host-` name prefix so no subdomain can set or shadow them.
- Every response carries a Content Security Policy without `unsafe-inline` (templates hold no
  inline script or style), nosniff, frame-ancestors 'none' and a referrer policy. Pages are
  `no-store` unless a view set its own caching (static files do).
- Every POST, PUT, PATCH and DELETE needs the session's CSRF token (Flask-WTF's CSRFProtect);
  a missing or wrong one is a 400.
"""

from __future__ import annotations

import os
import secrets
import stat
from datetime import timedelta
from pathlib import Path

from flask import Flask, Response
from flask_wtf.csrf import CSRFProtect  # type: ignore[import-untyped]

from cardsys.config import Settings
from cardsys.errors import ConfigError

csrf = CSRFProtect()

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=(), payment=()",
}
SECRET_KEY_BYTES = 32


def init_app(app: Flask, settings: Settings) -> None:
    """Install the secret key, cookie settings, headers and CSRF protection."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key(settings.instance_path / "secret_key")
    secure = settings.secure_cookies
    app.config.update(
        SESSION_COOKIE_NAME="__Host-cardsys" if secure else "cardsys",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_PATH="/",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=app.config["SESSION_MAX_SECONDS"]),
        PREFERRED_URL_SCHEME="https" if secure else "http",
        # A form left open longer than a session lives is refused anyway.
        WTF_CSRF_TIME_LIMIT=app.config["SESSION_MAX_SECONDS"],
        WTF_CSRF_SSL_STRICT=secure,
    )
    csrf.init_app(app)

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if secure:
            response.headers.setdefault(
                "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
            )
        if "Cache-Control" not in response.headers:
            # Office pages show personal data: no browser or proxy may keep a copy. A view
            # that sets its own caching (static files, later the public lists) is left alone.
            response.headers["Cache-Control"] = "no-store"
            response.vary.add("Cookie")
        return response


def load_secret_key(path: Path) -> bytes:
    """The app's secret key from `path`, made (0600) if it does not exist yet.

    Several workers may start at once: a worker that loses the race reads the winner's key.

    Raises:
        ConfigError: the file is readable by group or others, or empty.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written under a private name and linked into place: the key appears whole or not
        # at all, and link() fails if another worker's key got there first.
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(SECRET_KEY_BYTES))
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} is readable by others (mode {mode:o}): chmod 600 it, or delete it to make "
            "a new one (which signs everybody out)"
        )
    key = path.read_bytes()
    if len(key) < SECRET_KEY_BYTES:
        raise ConfigError(f"{path} holds fewer than {SECRET_KEY_BYTES} bytes: delete it")
    return key
