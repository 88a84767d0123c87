"""Reading forms safely, and making a form count once however often it is sent.

Every office form that changes something carries a fresh random `form_key` (a template global
makes one each time the form is drawn). The view claims the key in the same transaction as the
change: a second submission of the same form (a double click, a reload, a retry after a lost
response) finds the claim and is sent where the first one led, instead of opening a second
card. A failed submission rolls its claim back, so the operator can correct and resend.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from typing import TypeVar

from flask import abort, g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsys.models import IdempotencyKey, Operator
from web.database import now

E = TypeVar("E", bound=enum.Enum)
FORM_KEY = "form_key"
_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_form_key() -> str:
    """A fresh key for a form being drawn."""
    return secrets.token_urlsafe(24)


def claim_form(db: Session, actor: Operator) -> str | None:
    """Claim this request's form key; returns where an earlier use of it led, if any.

    Aborts with 400 when the key is missing or malformed, or was used for another form.
    """
    key = request.form.get(FORM_KEY, "")
    if not _KEY.fullmatch(key):
        abort(400)
    fingerprint = hashlib.sha256(f"{request.method} {request.path}".encode()).hexdigest()
    earlier = db.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.operator_id == actor.id, IdempotencyKey.key == key
        )
    )
    if earlier is not None:
        if earlier.fingerprint != fingerprint:
            abort(400)
        return earlier.location or request.path
    row = IdempotencyKey(
        operator_id=actor.id, key=key, fingerprint=fingerprint, created_at=now(),
        location=None, response_status=None, response_body=None,
    )
    db.add(row)
    db.flush()
    g.form_claim = row
    return None


def settle_form(location: str) -> None:
    """Record where the claimed submission led (call inside the same transaction)."""
    row: IdempotencyKey = g.form_claim
    row.location = location


def text(name: str, *, max_length: int = 200) -> str:
    """A text field, stripped; absent is empty. Longer than `max_length` is a 400."""
    value = request.form.get(name, "")
    if len(value) > max_length:
        abort(400)
    return value.strip()


def integer(name: str) -> int | None:
    """An integer field, or None when it is absent or not a number."""
    value = request.form.get(name, "").strip()
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    return int(value)


def choice(kind: type[E], name: str) -> E | None:
    """An enum member chosen by value, or None when absent or not one of them."""
    value = request.form.get(name, "")
    try:
        return kind(value)
    except ValueError:
        return None
