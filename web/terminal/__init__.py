"""The counter PC that verifies cards (`/terminal`). It needs no database.

One input field takes what a USB QR scanner types (a keyboard wedge: the text, then Enter);
the page shows a large valid/refused verdict with the reason in words, the holder data, the
portrait when a photo source answers, and the time of the last trust sync. Verification runs
through `verify.check_qr` with the terminal's synced trust store and replay cache
(`web.terminal.state.TerminalState`, kept in `app.extensions["cardsys_terminal"]`).

The same blueprint serves inside the full app (its terminal directory is `<instance>/terminal`,
synced from the app's own public files) and alone on a counter PC (`web.terminal_app`,
`cardsys terminal serve`). The page works without JavaScript (the form posts and the verdict
comes back as a page); with it, `terminal.js` posts in the background, keeps the field focused
and empty for the next scan, and offers the camera where the browser has `BarcodeDetector`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, cast

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from cardsys.errors import CardsysError
from verify.result import Verdict
from web import i18n
from web.terminal.state import TerminalState
from web.terminal.words import EVIDENCE, reason_text

bp = Blueprint("terminal", __name__)

#: A scanned code is at most a few kilobytes (a version-40 QR holds 4,296 characters).
MAX_SCAN: Final = 8192
_HEX: Final = frozenset("0123456789abcdef")


def state() -> TerminalState:
    """The terminal of this app."""
    return cast(TerminalState, current_app.extensions["cardsys_terminal"])


def _now() -> datetime:
    clock = current_app.config["CARDSYS_CLOCK"]
    moment: datetime = clock()
    return moment


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.get("/")
def index() -> str:
    """The scan page."""
    terminal = state()
    if current_app.config.get("TERMINAL_SYNC_IN_REQUEST", True):
        terminal.sync_if_due(_now())
    return render_template("terminal/index.html", verdict=None, **_page(terminal))


@bp.post("/verify")
def verify() -> Response | str:
    """Verify scanned text: JSON for the page's script, the page itself without one."""
    text = request.form.get("qr", "")
    if len(text) > MAX_SCAN:
        abort(413)
    terminal = state()
    now = _now()
    if current_app.config.get("TERMINAL_SYNC_IN_REQUEST", True):
        terminal.sync_if_due(now)
    verdict = terminal.verify(text, now)
    shown = _shown(verdict, terminal)
    if _wants_json():
        return jsonify(shown)
    return render_template("terminal/index.html", verdict=shown, **_page(terminal))


@bp.post("/sync")
def sync_now() -> Response | BaseResponse:
    """Sync the trust list and status lists now."""
    terminal = state()
    try:
        report = terminal.sync(_now())
    except CardsysError:
        ok, message = False, _("Sync failed: the held lists stay in use.")
    else:
        ok = not report.refused
        message = (_("Synced: trust list %(sequence)s, %(count)s status list(s) updated.",
                     sequence=report.trust_list_sequence, count=len(report.updated))
                   if ok else _("Synced, but some status lists were refused."))
    if _wants_json():
        return jsonify({"ok": ok, "message": message, **_sync_facts(terminal)})
    flash(message, "info" if ok else "error")
    return redirect(url_for(".index"), code=303)


@bp.get("/photo/<digest>")
def photo(digest: str) -> Response:
    """The portrait with this SHA-256 (the digest a verified credential carries)."""
    if len(digest) != 64 or not set(digest) <= _HEX:
        abort(404)
    content = state().photo(digest)
    if content is None:
        abort(404)
    media_type = "image/png" if content.startswith(b"\x89PNG") else "image/jpeg"
    response = Response(content, mimetype=media_type)
    # A portrait is personal data: no shared cache keeps it.
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.get("/language/<code>")
def language(code: str) -> BaseResponse:
    """Switch the page's language (a cookie; the terminal has no other session state)."""
    response = redirect(url_for(".index"), code=303)
    if code in i18n.LANGUAGES:
        i18n.remember(response, code, secure=request.is_secure)
    return response


# --- what the page shows ------------------------------------------------------------------------


def _shown(verdict: Verdict, terminal: TerminalState) -> dict[str, Any]:
    """The verdict as the page shows it (and as the script receives it)."""
    card = verdict.card
    shown: dict[str, Any] = {
        "valid": verdict.valid,
        "reason": verdict.reason,
        "reason_text": reason_text(verdict),
        "detail": verdict.message,
        "card": None,
        **_sync_facts(terminal),
    }
    if card is not None:
        data = card.as_dict()
        data["evidence_text"] = str(EVIDENCE.get(card.evidence, card.evidence.value))
        data["expires_text"] = _utc_text(card.expires)
        data["photo_url"] = (url_for(".photo", digest=data["photo_sha256"])
                             if data["photo_sha256"] and terminal.photos is not None else None)
        shown["card"] = data
    return shown


def _sync_facts(terminal: TerminalState) -> dict[str, Any]:
    last = terminal.last_sync()
    return {
        "last_sync": last.isoformat(timespec="seconds") if last else None,
        "last_sync_text": _utc_text(last) if last else None,
        "sync_error": terminal.last_error,
    }


def _utc_text(moment: datetime) -> str:
    """A time as a counter clerk reads it: to the minute, in UTC (as the terminal's lists)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _page(terminal: TerminalState) -> dict[str, Any]:
    facts = _sync_facts(terminal)
    trust: dict[str, object] | None
    try:
        trust = terminal.store(_now()).describe(_now())
    except CardsysError as exc:
        trust, facts["trust_problem"] = None, str(exc)
    return {"facts": facts, "trust": trust, "can_sync": terminal.source is not None}
