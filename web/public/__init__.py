"""Pages and files anyone may fetch: the landing page, the health check, the language switch,
and what terminals sync.

    /public/trust-list          the latest signed trust list (COSE_Sign1)
    /public/status/<n>          the signed status list of shard n (Token Status List, CWT)
    /public/status/index.json   the shards published, with each signed list's SHA-256
    /public/root.pem            the root certificate terminals pin (compare its fingerprint
                                with the one the agency announces out of band)

These are the paths `cardsys terminal sync --from http://host:port` reads. They are served
from the database (several workers and machines answer alike), without login and without
cookies; every answer carries a strong ETag (SHA-256 of the bytes), `Cache-Control: public`
with a max-age (a status list's is its `ttl`), `Access-Control-Allow-Origin: *`, and
`If-None-Match` is answered with 304. Nothing here is secret: everything is signed or public.
"""

from __future__ import annotations

import hashlib
from typing import Final

from cryptography.hazmat.primitives.serialization import Encoding
from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from cardsys.errors import InvalidCardNumberError, NotFoundError
from cardsys.ids import CardNumber
from issuance import status
from keys import ceremony
from web import i18n
from web.auth import safe_next
from web.database import settings, transaction

bp = Blueprint("public", __name__)

#: Seconds a cache may keep the trust list, the shard index and the root certificate.
TRUST_LIST_MAX_AGE: Final = 300
INDEX_MAX_AGE: Final = 60
ROOT_MAX_AGE: Final = 86400
#: Media types: COSE_Sign1 (RFC 9052 §9.1), a status list token in CWT form (Token Status
#: List §14), and a PEM certificate (RFC 7468).
COSE_SIGN1: Final = 'application/cose; cose-type="cose-sign1"'
STATUS_LIST_CWT: Final = "application/statuslist+cwt"
PEM_FILE: Final = "application/x-pem-file"
#: Shard numbers are small: anything longer is not one of ours.
_MAX_SHARD_DIGITS: Final = 9


@bp.get("/")
def index() -> str:
    """The three faces of cardsys."""
    return render_template("index.html")


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """For load balancers: the process answers."""
    return {"status": "ok"}


@bp.post("/language")
def set_language() -> BaseResponse:
    """Remember the chosen language in a cookie and go back where the reader was."""
    chosen = request.form.get("lang", "")
    target = safe_next(request.form.get("next")) or url_for("public.index")
    response = redirect(target, code=303)
    if chosen in i18n.LANGUAGES:
        i18n.remember(response, chosen, secure=settings().secure_cookies)
    return response


@bp.get("/PORTAL/A/<card_number>")
def activation_link(card_number: str) -> BaseResponse:
    """The URL an activation QR carries, in capitals (QR alphanumeric mode has no small
    letters): on to the portal's activation form with the card number filled in."""
    try:
        number = str(CardNumber.parse(card_number))
    except InvalidCardNumberError:
        number = ""
    return redirect(url_for("portal.activate", card=number or None), code=303)


# --- what terminals sync ------------------------------------------------------------------------


@bp.get("/public/trust-list")
def trust_list() -> BaseResponse:
    """The latest trust list."""
    with transaction() as db:
        try:
            document = ceremony.latest_trust_list(db)
        except NotFoundError:
            return _missing("no trust list has been exported yet")
    return public_file(document, COSE_SIGN1, TRUST_LIST_MAX_AGE)


@bp.get("/public/status/<shard>")
def status_list(shard: str) -> BaseResponse:
    """The signed status list of one shard, cacheable for its `ttl`."""
    if not shard.isascii() or not shard.isdigit() or len(shard) > _MAX_SHARD_DIGITS:
        return _missing("no such status list")
    with transaction() as db:
        token = status.published_token(db, int(shard))
    if token is None:
        return _missing("no such status list")
    return public_file(token, STATUS_LIST_CWT, settings().status_list_ttl)


@bp.get("/public/status/index.json")
def status_index() -> BaseResponse:
    """The shards that have a published list."""
    with transaction() as db:
        document = status.index_document(db)
    return public_file(document, "application/json", INDEX_MAX_AGE)


@bp.get("/public/root.pem")
def root_pem() -> BaseResponse:
    """The root certificate (PEM)."""
    with transaction() as db:
        try:
            root = ceremony.root_certificate(db)
        except NotFoundError:
            return _missing("this instance has no root yet")
    return public_file(root.public_bytes(Encoding.PEM), PEM_FILE, ROOT_MAX_AGE)


def public_file(data: bytes, media_type: str, max_age: int) -> BaseResponse:
    """A public, cacheable answer with a strong ETag; 304 when the client holds these bytes."""
    response = Response(data, mimetype=None, content_type=media_type)
    response.set_etag(hashlib.sha256(data).hexdigest())
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    _open_to_every_origin(response)
    # Werkzeug compares If-None-Match (weakly, as RFC 9110 §13.1.2 asks for GET) and turns
    # the answer into a bodiless 304 that keeps the ETag and the caching headers.
    return response.make_conditional(request)


def _missing(message: str) -> Response:
    # Plain text, not the HTML error page: that page would open a session for its forms,
    # and nothing under /public/ may set a cookie.
    response = Response(message + "\n", status=404, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    _open_to_every_origin(response)
    return response


def _open_to_every_origin(response: Response) -> None:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = "ETag"
    # The app's default keeps resources to this origin; these are meant for everyone.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
