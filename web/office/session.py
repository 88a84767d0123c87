"""Signing in and out, and the office home page."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from werkzeug.wrappers import Response

from cardsys.errors import AuthenticationError, CardsysError, PermissionDeniedError
from cardsys.lifecycle import CardStatus
from cardsys.models import Role
from issuance import cards, operators
from web import auth
from web.database import now, settings, transaction
from web.forms import text
from web.labels import error_message
from web.office import bp

MAX_PASSWORD = 1024


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    """The login form; a wrong password counts towards the account's lock."""
    target = auth.safe_next(request.values.get("next"))
    if request.method == "GET":
        if auth.current() is not None:
            return redirect(target or url_for(".index"))
        return render_template("office/login.html", next=target, login="")
    login_name = text("login", max_length=64)
    password = request.form.get("password", "")
    if len(password) > MAX_PASSWORD:
        abort(400)
    config, at = settings(), now()
    failure: CardsysError | None = None
    # The service counts a failure in the transaction: commit it even when it raises.
    with transaction() as db:
        try:
            operator = operators.authenticate(
                db, login=login_name, password=password, now=at,
                max_failures=config.login_max_failures, lock_seconds=config.login_lock_seconds,
            )
        except AuthenticationError as exc:
            failure = exc
        else:
            if operator.role in auth.OFFICE_ROLES:
                token = auth.start(db, operator, at=at)
            else:
                failure = PermissionDeniedError("this account has no office pages")
    if failure is not None:
        message = (_("This account has no office pages: use the command line.")
                   if isinstance(failure, PermissionDeniedError) else error_message(failure))
        page = render_template("office/login.html", next=target, login=login_name, error=message)
        return page, 401
    # A new session id after login: a session fixed before it is worth nothing.
    session.clear()
    session[auth.SESSION_KEY] = token
    session.permanent = True
    return redirect(target or url_for(".index"), code=303)


@bp.post("/logout")
@auth.requires()
def logout() -> Response:
    """End the session on the server too, so a copied cookie stops working."""
    token = session.get(auth.SESSION_KEY)
    if isinstance(token, str):
        with transaction() as db:
            auth.end(db, token, at=now())
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for(".login"), code=303)


@bp.get("/")
@auth.requires()
def index() -> str:
    """Home: search, enrol, and for supervisors what waits for approval."""
    signed_in = auth.current()
    assert signed_in is not None
    waiting = 0
    if signed_in.role is Role.SUPERVISOR:
        with transaction() as db:
            waiting = len(cards.list_cards(db, auth.acting(db), status=CardStatus.APPLIED))
    return render_template("office/index.html", waiting=waiting)
