"""The key status page: the root, every signer with its purpose and usage period, the next
rotation and the trust list's sequence. Read-only.

Administrators (the key custodians) have no office pages, so supervisors and auditors see it.
`keys.ceremony.list_signers` admits admins and auditors only; the registry holds nothing
secret (certificates, key references, dates), so this page reads it with its own query,
scoped by its own role check, as `web.office.statistics` does for its counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from cardsys.access import require_role
from cardsys.errors import NotFoundError
from cardsys.models import Operator, PkiState, Role, SignerRecord, SignerStatus
from cardsys.pki import Purpose
from keys import ceremony
from keys.ceremony import RootInfo, SignerInfo
from web import auth
from web.database import now, transaction
from web.office import bp

_STATE_ID = 1


@dataclass(frozen=True)
class KeyStatus:
    """What the page shows."""

    root: RootInfo | None
    trust_list_issued_at: datetime | None
    signers: tuple[SignerInfo, ...]
    #: Per purpose, when its active signer stops signing (None: no active signer).
    next_rotation: tuple[tuple[Purpose, datetime | None], ...]


def key_status(db: Session, actor: Operator) -> KeyStatus:
    """The PKI as an office supervisor or auditor may read it."""
    require_role(actor, Role.SUPERVISOR, Role.AUDITOR)
    try:
        root = ceremony.root_info(db)
    except NotFoundError:
        root = None
    state = db.get(PkiState, _STATE_ID)
    records = db.scalars(select(SignerRecord).order_by(SignerRecord.id.desc())).all()
    signers = tuple(SignerInfo.of(record) for record in records)
    rotation = []
    for purpose in Purpose:
        ends = [s.usage_end for s in signers
                if s.purpose is purpose and s.status is SignerStatus.ACTIVE]
        rotation.append((purpose, min(ends) if ends else None))
    return KeyStatus(root, state.trust_list_issued_at if state else None, signers,
                     tuple(rotation))


@bp.get("/keys")
@auth.requires(Role.SUPERVISOR, Role.AUDITOR)
def keys() -> str:
    """The key status page."""
    with transaction() as db:
        shown = key_status(db, auth.acting(db))
    return render_template("office/keys.html", keys=shown, now=now())
