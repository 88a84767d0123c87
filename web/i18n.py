"""Languages: Chinese (simplified) and English, chosen by a cookie, else the browser's wish.

The catalogs are kept as `.po` files in `web/translations/` (English is the source language and
needs none). The app compiles each catalog into `<instance>/translations/` when the `.mo` there
is missing or older than its `.po`, so a fresh clone works without a build step and the package
directory is never written to. Refresh the catalogs after changing strings with:

    pybabel extract -F web/babel.cfg -k _l -o web/translations/messages.pot web
    pybabel update -i web/translations/messages.pot -d web/translations
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, current_app, request
from flask_babel import Babel  # type: ignore[import-untyped]
from werkzeug.wrappers import Response

from cardsys.config import Settings

CATALOGS = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"
#: Locale code -> the language's own name, shown in the switch.
LANGUAGES = {"zh_Hans": "中文", "en": "English"}
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 86400
# Accept-Language tags we understand, and the locale each stands for.
_ACCEPT = {"zh-Hans": "zh_Hans", "zh-CN": "zh_Hans", "zh": "zh_Hans", "en": "en"}


def init_app(app: Flask, settings: Settings) -> None:
    """Compile the catalogs if needed and install Flask-Babel with our locale selector."""
    compiled = compile_catalogs(CATALOGS, settings.instance_path / "translations")
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(compiled)
    Babel(app, locale_selector=select_locale)

    @app.context_processor
    def languages() -> dict[str, object]:
        return {"LANGUAGES": LANGUAGES, "current_language": select_locale()}


def remember(response: Response, chosen: str, *, secure: bool) -> None:
    """Set the language cookie on `response` (`chosen` must be one of `LANGUAGES`)."""
    if chosen not in LANGUAGES:
        raise ValueError(f"unknown language {chosen!r}")
    response.set_cookie(COOKIE, chosen, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax",
                        secure=secure, path="/")


def select_locale() -> str:
    """The locale of this request: the `lang` cookie, else Accept-Language, else the default."""
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    best = request.accept_languages.best_match(list(_ACCEPT))
    if best is not None:
        return _ACCEPT[best]
    return str(current_app.config["BABEL_DEFAULT_LOCALE"])


def compile_catalogs(source: Path, target: Path) -> Path:
    """Compile every `<source>/<locale>/LC_MESSAGES/*.po` whose `.mo` under `target` is stale.

    Returns `target`. A `.mo` is written under a private name and renamed into place, so
    workers starting together never read a half-written catalog.
    """
    for po_path in sorted(source.glob("*/LC_MESSAGES/*.po")):
        relative = po_path.relative_to(source).with_suffix(".mo")
        mo_path = target / relative
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=relative.parts[0])
        draft = mo_path.with_name(f".{mo_path.name}.{secrets.token_hex(8)}")
        with draft.open("wb") as handle:
            write_mo(handle, catalog)
        os.replace(draft, mo_path)
    return target
