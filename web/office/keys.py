"""The key status page: the root, every signer with its purpose and usage period, the next
rotation and the trust list's sequence. Read-only (`keys.ceremony.key_status`).

Administrators (the key custodians) have no office pages, so supervisors and auditors see it.
"""

from __future__ import annotations

from flask import render_template

from cardsys.models import Role
from keys import ceremony
from web import auth
from web.database import now, transaction
from web.office import bp


@bp.get("/keys")
@auth.requires(Role.SUPERVISOR, Role.AUDITOR)
def keys() -> str:
    """The key status page."""
    with transaction() as db:
        shown = ceremony.key_status(db, auth.acting(db))
    return render_template("office/keys.html", keys=shown, now=now())
