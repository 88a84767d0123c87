"""Chinese and English: the switch, the browser's wish, complete catalogs compiled at start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po
from flask import Flask

from tests.web.conftest import World, csrf_token, login
from web.i18n import CATALOGS, compile_catalogs

ROOT = Path(__file__).resolve().parents[2]
PO = CATALOGS / "zh_Hans" / "LC_MESSAGES" / "messages.po"
_PLACEHOLDER = re.compile(r"%\(\w+\)s")


def test_chinese_is_the_default(app: Flask) -> None:
    page = app.test_client().get("/office/login").get_data(as_text=True)
    assert "发卡网点：登录" in page
    assert 'lang="zh-Hans"' in page


def test_the_browser_language_is_honoured(app: Flask) -> None:
    client = app.test_client()
    english = client.get("/office/login", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert "Issuance office: sign in" in english.get_data(as_text=True)
    chinese = client.get("/office/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "发卡网点：登录" in chinese.get_data(as_text=True)


def test_the_switch_changes_the_text_and_remembers_it(app: Flask) -> None:
    client = app.test_client()
    assert "发卡网点：登录" in client.get("/office/login").get_data(as_text=True)
    response = client.post("/language", data={"lang": "en", "next": "/office/login",
                                              "csrf_token": csrf_token(client, "/office/login")})
    assert response.status_code == 303
    assert response.headers["Location"] == "/office/login"
    cookie = next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("lang="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    page = client.get("/office/login").get_data(as_text=True)
    assert "Issuance office: sign in" in page
    assert 'lang="en"' in page
    client.post("/language", data={"lang": "zh_Hans", "csrf_token": csrf_token(client)})
    assert "发卡网点：登录" in client.get("/office/login").get_data(as_text=True)


def test_the_switch_ignores_unknown_languages_and_foreign_targets(app: Flask) -> None:
    client = app.test_client()
    response = client.post("/language", data={"lang": "xx", "next": "https://evil.example/",
                                              "csrf_token": csrf_token(client)})
    assert response.headers["Location"] == "/"
    assert not any(v.startswith("lang=") for v in response.headers.getlist("Set-Cookie"))


def test_service_errors_are_shown_in_chinese(app: Flask, world: World) -> None:
    client = app.test_client()
    response = login(client, world.a.clerk, "a wrong password")
    assert "用户名或密码错误。" in response.get_data(as_text=True)
    login(client, world.a.clerk)
    page = client.get(f"/office/residents/{world.resident_a}").get_data(as_text=True)
    assert "已申请" in page
    assert "申请芯片卡" in page
    response = client.get("/office/no/such")
    assert "没有此页面" in response.get_data(as_text=True)


def test_catalog_covers_every_string_in_the_sources(tmp_path: Path) -> None:
    """Extract afresh: every string the code marks must be translated, placeholders intact."""
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract",
         "-F", str(ROOT / "web" / "babel.cfg"), "-k", "_l", "-o", str(pot), str(ROOT / "web")],
        check=True, cwd=ROOT, capture_output=True,
    )
    with pot.open("rb") as handle:
        wanted = {m.id for m in read_po(handle) if m.id}
    with PO.open("rb") as handle:
        catalog = read_po(handle, locale="zh_Hans")
    translated = {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}
    missing = sorted(str(w) for w in wanted - set(translated))
    assert not missing, f"untranslated: {missing}"
    for msgid, text in translated.items():
        wanted_places = sorted(_PLACEHOLDER.findall(str(msgid)))
        assert wanted_places == sorted(_PLACEHOLDER.findall(str(text))), msgid


def test_catalogs_compile_once_and_again_when_stale(tmp_path: Path) -> None:
    target = compile_catalogs(CATALOGS, tmp_path)
    mo = target / "zh_Hans" / "LC_MESSAGES" / "messages.mo"
    assert mo.stat().st_size > 1000
    first = mo.stat().st_mtime_ns
    compile_catalogs(CATALOGS, tmp_path)
    assert mo.stat().st_mtime_ns == first  # fresh: left alone
    os.utime(mo, (0, 0))  # older than the .po: compiled again
    compile_catalogs(CATALOGS, tmp_path)
    assert mo.stat().st_mtime > 0
    assert not [p for p in mo.parent.iterdir() if p.name.startswith(".")]  # no drafts left
