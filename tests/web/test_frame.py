"""The frame every page shares: headers, cookies, the secret key, static files, error pages."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cardsys.errors import ConfigError
from tests.web.conftest import World, login, post
from web.security import load_secret_key

WEB = Path(__file__).resolve().parents[2] / "web"


def _assert_secure_headers(response: Any, where: str) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp, where
    assert "frame-ancestors 'none'" in csp, where
    assert "unsafe-inline" not in csp, where
    assert "unsafe-eval" not in csp, where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy") == "same-origin", where
    assert response.headers.get("X-Frame-Options") == "DENY", where


def test_security_headers_on_every_page(app: Flask, client: FlaskClient, world: World) -> None:
    anonymous = [rule.rule for rule in app.url_map.iter_rules()
                 if "GET" in (rule.methods or set()) and not rule.arguments]
    for path in [*anonymous, "/no/such/page", "/api/v1/no/such"]:
        _assert_secure_headers(client.get(path), f"anonymous {path}")
    login(client, world.a.supervisor)
    pages = [*anonymous, f"/office/residents/{world.resident_a}", f"/office/cards/{world.card_a}",
             f"/office/residents/{world.resident_b}", "/office/residents?q=wang"]
    for path in pages:
        response = client.get(path)
        _assert_secure_headers(response, f"signed in {path}")
        if response.mimetype == "text/html" and not path.startswith("/portal/"):
            assert response.headers["Cache-Control"] == "no-store", path
        elif response.mimetype == "text/html":
            # The portal's pages hold no personal data (the phone fills them from IndexedDB)
            # and its service worker keeps them for offline use: revalidated, not no-store.
            assert response.headers["Cache-Control"] == "no-cache", path
    _assert_secure_headers(post(client, "/office/logout"), "logout")
    _assert_secure_headers(client.post("/office/login", data={}), "csrf failure")


def test_session_cookie_flags_in_development(client: FlaskClient, world: World) -> None:
    response = login(client, world.a.clerk)
    cookie = next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("cardsys="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    assert response.headers.get("Strict-Transport-Security") is None


def test_session_cookie_flags_in_production(make_app: Any, world: World) -> None:
    app = make_app(secure_cookies=True)
    client = app.test_client()
    base = "https://localhost"
    page = client.get(f"{base}/office/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert token is not None
    response = client.post(f"{base}/office/login", data={
        "login": world.a.clerk, "password": "correct horse battery staple",
        "csrf_token": token.group(1),
    }, headers={"Referer": f"{base}/office/login"})
    assert response.status_code == 303
    cookie = next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("__Host-"))
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie
    assert "max-age" in response.headers["Strict-Transport-Security"]


def test_secret_key_is_made_once_private_and_reused(make_app: Any, tmp_path: Path) -> None:
    first = make_app()
    path = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = make_app()
    assert first.secret_key == second.secret_key == path.read_bytes()
    assert len(path.read_bytes()) == 32


def test_secret_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    load_secret_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_secret_key(path)


def test_short_secret_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="fewer than"):
        load_secret_key(path)


def test_static_files_are_served_under_their_content_hash(
    app: Flask, client: FlaskClient
) -> None:
    page = client.get("/").get_data(as_text=True)
    css = re.search(r'href="(/static/([0-9a-f]{12})/site\.css)"', page)
    assert css is not None
    response = client.get(css.group(1))
    assert response.status_code == 200
    assert b"chart-bar" in response.data
    assert "immutable" in response.headers["Cache-Control"]
    import hashlib

    assert hashlib.sha256((WEB / "static" / "site.css").read_bytes()).hexdigest()[:12] == \
        css.group(2)
    assert client.get("/static/000000000000/site.css").status_code == 404
    assert client.get(f"/static/{css.group(2)}/../__init__.py").status_code == 404
    assert client.get(f"/static/{css.group(2)}/site.js").status_code == 404


def test_templates_hold_no_inline_script_or_style() -> None:
    """The CSP forbids them; this finds them before a browser does."""
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
    handler = re.compile(r"\son[a-z]+\s*=", re.I)
    style = re.compile(r"<style\b|\sstyle\s*=", re.I)
    for template in (WEB / "templates").rglob("*.html"):
        text = template.read_text()
        assert not inline_script.search(text), template
        assert not handler.search(text), template
        assert not style.search(text), template
        assert "javascript:" not in text, template


def test_error_pages(client: FlaskClient) -> None:
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert missing.mimetype == "text/html"
    assert "Not found" in missing.get_data(as_text=True)
    wrong_method = client.get("/office/logout")
    assert wrong_method.status_code == 405
    api = client.get("/api/v1/no/such")
    assert api.status_code == 404
    assert api.mimetype == "application/problem+json"
    assert api.get_json()["status"] == 404


def test_upload_larger_than_allowed_is_refused_at_the_door(
    client: FlaskClient, world: World, app: Flask
) -> None:
    login(client, world.a.clerk)
    big = b"\xff\xd8\xff" + b"0" * app.config["MAX_CONTENT_LENGTH"]
    import io

    response = post(client, "/office/residents/new",
                    {"photo": (io.BytesIO(big), "big.jpg")}, content_type="multipart/form-data")
    assert response.status_code == 413


def test_public_pages(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    for path in ("/", "/portal/", "/terminal/"):
        assert client.get(path).status_code == 200
    assert client.get("/api/v1/").get_json()["version"] == "v1"
