"""Operator API tokens: issued, listed, revoked, and checked on every API request.

No Flask here: the CLI (`cardsys operator token ...`) and the API share these functions.

Rules:

* a token is `cst_` + 256 random bits (base64url), shown once; only its SHA-256 is kept (see
  `cardsys.models.ApiToken` for why a fast hash is right for a random token);
* an admin issues, lists and revokes tokens for anyone; an operator for themselves only;
* only office operators (clerk, supervisor, auditor) hold tokens: the API does what the
  office pages do, with the same role and office checks, and admins have no office pages;
* a token lives 1 to `MAX_DAYS` days (default `DEFAULT_DAYS`), at most `MAX_LIVE` live tokens
  an operator;
* a token stops working when it expires, is revoked, or its operator is deactivated;
* issuing and revoking write an audit event (`operator:api-token:create|revoke`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cardsys import audit
from cardsys.access import require_role
from cardsys.errors import (
    AuthenticationError,
    LimitExceededError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from cardsys.models import ApiToken, Operator, Role
from issuance.operators import SYSTEM_LOGIN

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "MAX_LIVE",
    "TOKEN_ROLES",
    "IssuedToken",
    "authenticate",
    "issue",
    "revoke",
    "tokens_of",
]

PREFIX: Final = "cst_"
DEFAULT_DAYS: Final = 90
MAX_DAYS: Final = 365
MAX_LIVE: Final = 10
TOKEN_ROLES: Final = (Role.CLERK, Role.SUPERVISOR, Role.AUDITOR)
#: 32 random bytes in base64url without padding are 43 characters.
_SHAPE: Final = re.compile(r"cst_[A-Za-z0-9_-]{43}")
_SHOWN: Final = len(PREFIX) + 6
_TOUCH_EVERY: Final = timedelta(seconds=60)


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `token` is shown to its owner once and stored nowhere."""

    id: int
    login: str
    name: str
    token: str
    prefix: str
    expires_at: datetime

    def __repr__(self) -> str:  # never the token
        return f"IssuedToken(id={self.id}, login={self.login!r}, prefix={self.prefix!r})"


def digest(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue(
    session: Session,
    actor: Operator,
    login: str,
    *,
    name: str,
    now: datetime,
    days: int = DEFAULT_DAYS,
) -> IssuedToken:
    """A new token for operator `login` (rules: module docstring).

    Raises:
        PermissionDeniedError: the actor is neither an admin nor `login`, or `login` is not an
            office operator.
        NotFoundError: no active operator `login`.
        ValidationError: a name of 1-100 printable characters, 1-MAX_DAYS days.
        LimitExceededError: the operator already holds MAX_LIVE live tokens.
    """
    owner = _owner(session, actor, login)
    if owner.role not in TOKEN_ROLES:
        raise PermissionDeniedError(
            f"{owner.login} is a {owner.role.value}: API tokens are for office operators"
        )
    label = " ".join(name.split())
    if not label or len(label) > 100 or not label.isprintable():
        raise ValidationError("a token name has 1 to 100 printable characters")
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError(f"a token lives 1 to {MAX_DAYS} days")
    live = session.scalar(
        select(func.count()).select_from(ApiToken).where(
            ApiToken.operator_id == owner.id, ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > now,
        )
    )
    if (live or 0) >= MAX_LIVE:
        raise LimitExceededError(
            f"{owner.login} already holds {live} live tokens: revoke one first"
        )
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        operator_id=owner.id, token_sha256=digest(token), prefix=token[:_SHOWN], name=label,
        created_at=now, created_by=actor.login, expires_at=now + timedelta(days=days),
        last_used_at=None, revoked_at=None, revoked_by=None,
    )
    session.add(row)
    session.flush()
    audit.record(
        session, at=now, actor=actor.login, office=_office(owner),
        tag="operator:api-token:create", subject=owner.login,
        details={"token": row.id, "prefix": row.prefix, "name": label,
                 "expires_at": row.expires_at.isoformat()},
    )
    return IssuedToken(row.id, owner.login, label, token, row.prefix, row.expires_at)


def tokens_of(session: Session, actor: Operator, login: str) -> list[ApiToken]:
    """Every token of `login`, newest first (an admin, or the operator themselves)."""
    owner = _owner(session, actor, login)
    query = select(ApiToken).where(ApiToken.operator_id == owner.id).order_by(ApiToken.id.desc())
    return list(session.scalars(query))


def revoke(
    session: Session, actor: Operator, login: str, token_id: int, *, now: datetime
) -> ApiToken:
    """Revoke token `token_id` of `login`; revoking a revoked token changes nothing.

    Raises:
        NotFoundError: `login` holds no such token.
    """
    owner = _owner(session, actor, login)
    row = session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.operator_id == owner.id)
    )
    if row is None:
        raise NotFoundError(f"{owner.login} has no token {token_id}")
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by = now, actor.login
        audit.record(
            session, at=now, actor=actor.login, office=_office(owner),
            tag="operator:api-token:revoke", subject=owner.login,
            details={"token": row.id, "prefix": row.prefix},
        )
    return row


def authenticate(session: Session, token: str, *, now: datetime) -> ApiToken:
    """The live token row for a presented token (its `operator` is the one acting).

    The reasons are told apart: only the holder of a 256-bit token can ask, so they reveal
    nothing to a guesser.

    Raises:
        AuthenticationError: malformed, unknown, expired or revoked token, or an operator
            who is deactivated or no longer holds an office role.
    """
    if not _SHAPE.fullmatch(token):
        raise AuthenticationError("not a cardsys API token")
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest(token)))
    if row is None:
        raise AuthenticationError("unknown API token")
    if row.revoked_at is not None:
        raise AuthenticationError("the API token was revoked")
    if row.expires_at <= now:
        raise AuthenticationError("the API token has expired")
    operator = row.operator
    if not operator.active or operator.role not in TOKEN_ROLES:
        raise AuthenticationError("the token's operator may no longer use the API")
    if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
        row.last_used_at = now
    return row


def _owner(session: Session, actor: Operator, login: str) -> Operator:
    """The token owner `login`, if the actor may manage their tokens."""
    require_role(actor, *Role)  # any active operator; rejects the deactivated
    if actor.role is not Role.ADMIN and actor.login != login:
        raise PermissionDeniedError("an operator manages only their own API tokens")
    owner = session.scalar(select(Operator).where(Operator.login == login))
    if owner is None or not owner.active or owner.login == SYSTEM_LOGIN:
        raise NotFoundError(f"no active operator {login!r}")
    return owner


def _office(operator: Operator) -> str | None:
    return operator.office.code if operator.office is not None else None
