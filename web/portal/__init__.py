"""The resident's phone (`/portal`): activate a digital card, show its live QR.

The phone holds the card, not the server: the page makes a NON-EXTRACTABLE P-256 key with
WebCrypto, keeps the `CryptoKey` and the credential in IndexedDB, and signs every
presentation on the phone (`static/portal/wallet.js`, byte for byte the format of
`cardsys.formats.credential`, as `cardsys.wallet` makes it in Python). The server only
provisions and refreshes credentials (`web.portal.api`).

Pages hold no personal data (the script fills them from IndexedDB), set no cookie but the
language, and are cached by a service worker (`/portal/sw.js`, scope `/portal/`) with the
scripts they need, so the card keeps working offline until its credential expires.
"""

from __future__ import annotations

import hashlib
from typing import Final

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from web import i18n
from web.assets import asset_url
from web.database import settings
from web.security import csrf

bp = Blueprint("portal", __name__)

#: Static files the portal pages load; the service worker keeps them for offline use.
ASSETS: Final = (
    "portal/portal.css", "portal/wallet.js", "portal/card.js",
    "portal/activate.js", "qr/qr.js", "favicon.svg",
)
_CARD_NUMBER_MAX: Final = 20


def _page(template: str, **context: object) -> Response:
    response = Response(render_template(template, **context))
    # No personal data is in the page, but it must be revalidated: a new version of the
    # scripts means new asset URLs in it.
    response.headers["Cache-Control"] = "no-cache"
    return response


def _modules() -> dict[str, str]:
    """Where the page scripts find their modules (hashed URLs can't be imported relatively)."""
    return {"wallet": asset_url("portal/wallet.js"), "qr": asset_url("qr/qr.js")}


@bp.get("/")
def index() -> Response:
    """The card page: holder data and the live QR, drawn by `card.js` from IndexedDB."""
    return _page("portal/card.html", modules=_modules(),
                 step=settings().presentation_step)


@bp.get("/activate")
def activate() -> Response:
    """The activation form (card number, birth date, code)."""
    card = request.args.get("card", "")[:_CARD_NUMBER_MAX]
    return _page("portal/activate.html", modules=_modules(), card=card)


@bp.get("/sw.js")
def service_worker() -> Response:
    """The service worker, with this version's asset URLs (a new version: new bytes, so
    browsers install it and drop the old caches)."""
    precache = [url_for(".index"), url_for(".activate")] + [asset_url(a) for a in ASSETS]
    version = hashlib.sha256("\n".join(precache).encode()).hexdigest()[:12]
    body = render_template("portal/sw.js", precache=precache,
                           cache_name=f"cardsys-portal-{version}",
                           pages=[url_for(".index"), url_for(".activate")])
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = url_for(".index")
    return response


@bp.get("/language/<code>")
def language(code: str) -> BaseResponse:
    """Switch the language (a cookie; the portal keeps no session)."""
    target = url_for(".activate") if request.args.get("to") == "activate" else url_for(".index")
    response = redirect(target, code=303)
    if code in i18n.LANGUAGES:
        i18n.remember(response, code, secure=settings().secure_cookies)
    return response


from web.portal import api  # noqa: E402, F401

# The portal has no session and no form: its JSON endpoints authorise by the code and birth
# date, or by the phone's signature, never by a cookie (see web.portal.api).
csrf.exempt(bp)
