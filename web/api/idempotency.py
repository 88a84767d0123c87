"""Idempotency keys of creating requests: claimed with the change, replayed on a retry.

A creating POST carries `Idempotency-Key`. The key is claimed (a row of `idempotency_keys`,
unique per operator and key) in the SAME transaction as the change it makes, and the row
records the response (status and JSON body) before that transaction commits. So:

* a retry with the same key and the same request (method, path, If-Match, body: the
  `fingerprint`) gets the first response again, with `Idempotent-Replayed: true`, and changes
  nothing;
* the same key with another request is refused (422 `idempotency_key_reused`): answering it
  with the first request's outcome would be wrong;
* concurrent retries: one claims the key; the others queue on the unique index (PostgreSQL)
  or on the database lock (SQLite), then find the committed claim and replay it. Exactly one
  change is made;
* a request the service refuses rolls back its claim with everything else, so the client may
  correct nothing and retry, or retry later, with the same key;
* a response holding a secret (an activation code) is stored without it; a retry is told
  the secret was shown once (409 `shown_once`) rather than shown it again.

A claim whose response is not recorded yet belongs to a request still running (provisioning
records its response after its own transaction) or to an office form: 409
`idempotency_key_in_use`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cardsys.models import IdempotencyKey
from web.api.problems import Problem

HEADER: Final = "Idempotency-Key"
PATTERN: Final = "^[A-Za-z0-9_-]{16,64}$"
_KEY: Final = re.compile(PATTERN[1:-1])
_REDACTED: Final = "_redacted"


@dataclass(frozen=True)
class Replay:
    """The recorded response of an earlier request with the same key."""

    status: int
    body: dict[str, Any]


def check_key(value: str | None) -> str:
    """The request's key, or a 400 problem."""
    if value is None:
        raise Problem("idempotency_key_required",
                      f"send an {HEADER} header (16-64 of A-Z a-z 0-9 _ -), new for each "
                      "change and the same for its retries")
    if not _KEY.fullmatch(value):
        raise Problem("bad_header", f"{HEADER} must be 16-64 of A-Z a-z 0-9 _ -")
    return value


def fingerprint(method: str, path: str, version: int | None, body: Any) -> str:
    """What a retry must repeat exactly: method, path, If-Match version and the JSON body
    (canonical: key order and spacing do not matter)."""
    canonical = json.dumps([method, path, version, body], sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(
    db: Session, operator_id: int, key: str, fingerprint: str, *, at: datetime
) -> IdempotencyKey | Replay:
    """Claim `key` for this request inside the caller's transaction, or return the replay.

    Raises:
        Problem: the key belongs to another request, to one still running, or to a response
            that held a secret.
    """
    earlier = _find(db, operator_id, key)
    if earlier is None:
        row = IdempotencyKey(operator_id=operator_id, key=key, fingerprint=fingerprint,
                             created_at=at, location=None, response_status=None,
                             response_body=None)
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:
            # A concurrent request with this key committed its claim while we waited on the
            # unique index: it made the change; we answer what it answered.
            earlier = _find(db, operator_id, key)
            if earlier is None:
                raise
        else:
            return row
    return _replay(earlier, fingerprint)


def lookup(db: Session, operator_id: int, key: str, fingerprint: str) -> Replay | None:
    """The replay of an earlier request with this key, if there is one (no claim is made).

    Raises:
        Problem: as `claim`.
    """
    earlier = _find(db, operator_id, key)
    return None if earlier is None else _replay(earlier, fingerprint)


def settle(row: IdempotencyKey, status: int, body: dict[str, Any], secret: tuple[str, ...]
           ) -> None:
    """Record the response on the claim (inside the transaction of the change)."""
    stored = dict(body)
    if secret:
        for name in secret:
            stored[name] = None
        stored[_REDACTED] = list(secret)
    row.response_status, row.response_body = status, stored


def _find(db: Session, operator_id: int, key: str) -> IdempotencyKey | None:
    return db.scalar(select(IdempotencyKey).where(
        IdempotencyKey.operator_id == operator_id, IdempotencyKey.key == key))


def _replay(earlier: IdempotencyKey, fingerprint: str) -> Replay:
    if earlier.fingerprint != fingerprint:
        raise Problem("idempotency_key_reused",
                      f"this {HEADER} was used for another request: use a new key for a new "
                      "request")
    if earlier.response_status is None or earlier.response_body is None:
        raise Problem("idempotency_key_in_use",
                      f"a request with this {HEADER} has not finished: retry in a moment")
    if _REDACTED in earlier.response_body:
        raise Problem("shown_once",
                      f"this request already succeeded at {earlier.created_at.isoformat()}; "
                      "its answer held a secret that is shown only once: make a new request "
                      "with a new key")
    return Replay(earlier.response_status, dict(earlier.response_body))
