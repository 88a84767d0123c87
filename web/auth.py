"""Who is signed in: server-side operator sessions and the decorator every office view wears.

The session cookie (signed by Flask) carries a random token; the database keeps its SHA-256 in
`OperatorSession` with the time it was last used. A session ends at logout, after
`SESSION_IDLE_SECONDS` without a request, after `SESSION_MAX_SECONDS` in all, or when the
operator is deactivated; a copied cookie dies with it.

`requires(*roles)` guards a view: without a live session the browser is sent to the login page,
with a role the view does not name the answer is 403. The roles stay readable on the view
(`allowed_roles`), so the tests can check every route without a hand-kept list. Office scope is
not checked here: the services check it on every record they load (another office's record is
"not found").
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from cardsys import audit
from cardsys.models import Operator, OperatorSession, Role
from web.database import now, transaction

F = TypeVar("F", bound=Callable[..., Any])
SESSION_KEY = "sid"
OFFICE_ROLES = (Role.CLERK, Role.SUPERVISOR, Role.AUDITOR)
#: Write the last-seen time at most this often, so reading pages does not write every time.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SignedIn:
    """The operator behind the current request, as the pages show them."""

    operator_id: int
    login: str
    name: str
    role: Role
    office_id: int | None
    office_code: str | None
    office_name: str | None
    office_region: str | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(db: Session, operator: Operator, *, at: datetime) -> str:
    """Open a session for an authenticated operator; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    lifetime = timedelta(seconds=current_app.config["SESSION_MAX_SECONDS"])
    db.add(OperatorSession(
        token_sha256=_digest(token), operator_id=operator.id, created_at=at,
        last_seen_at=at, expires_at=at + lifetime, ended_at=None,
    ))
    audit.record(db, at=at, actor=operator.login, office=_office_code(operator),
                 tag="operator:session:start", subject=operator.login, details={})
    return token


def end(db: Session, token: str, *, at: datetime) -> None:
    """End the session of `token` (logout); an unknown or ended one is left alone."""
    row = db.scalar(select(OperatorSession).where(OperatorSession.token_sha256 == _digest(token)))
    if row is None or row.ended_at is not None:
        return
    row.ended_at = at
    audit.record(db, at=at, actor=row.operator.login, office=_office_code(row.operator),
                 tag="operator:session:end", subject=row.operator.login, details={})


def current() -> SignedIn | None:
    """The signed-in operator of this request, or None (no, ended or expired session)."""
    if "signed_in" in g:
        return cast(SignedIn | None, g.signed_in)
    token = session.get(SESSION_KEY)
    g.signed_in = _load(token) if isinstance(token, str) else None
    return cast(SignedIn | None, g.signed_in)


def _load(token: str) -> SignedIn | None:
    at = now()
    idle = timedelta(seconds=current_app.config["SESSION_IDLE_SECONDS"])
    with transaction() as db:
        row = db.scalar(
            select(OperatorSession).where(OperatorSession.token_sha256 == _digest(token))
        )
        if row is None or row.ended_at is not None:
            return None
        operator = row.operator
        if row.expires_at <= at or row.last_seen_at + idle <= at or not operator.active:
            row.ended_at = at
            return None
        if at - row.last_seen_at >= _TOUCH_EVERY:
            row.last_seen_at = at
        office = operator.office
        return SignedIn(
            operator_id=operator.id, login=operator.login, name=operator.name,
            role=operator.role, office_id=operator.office_id,
            office_code=office.code if office else None,
            office_name=office.name if office else None,
            office_region=office.region if office else None,
        )


def acting(db: Session) -> Operator:
    """The signed-in operator as a row of `db`, for the services (after `requires`)."""
    signed_in = current()
    if signed_in is None:
        abort(401)
    operator = db.get(Operator, signed_in.operator_id)
    assert operator is not None  # the session row references it
    return operator


def requires(*roles: Role) -> Callable[[F], F]:
    """Guard an office view: a live session, and one of `roles` (any office role if none)."""
    allowed = frozenset(roles or OFFICE_ROLES)

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            signed_in = current()
            if signed_in is None:
                return redirect_to_login()
            if signed_in.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        guarded.allowed_roles = allowed  # type: ignore[attr-defined]
        return cast(F, guarded)

    return decorate


def redirect_to_login() -> Response:
    """To the login page, coming back to this page afterwards if it was a GET."""
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("office.login", next=target))


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 0x20 for c in target):
        return None
    return target


def _office_code(operator: Operator) -> str | None:
    return operator.office.code if operator.office is not None else None
