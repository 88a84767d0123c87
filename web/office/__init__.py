"""The issuance office: operators in a browser (`/office`).

Every view but the login page wears `web.auth.requires(...)`; the services check office scope
on each record. Modules: `session` (login, logout, home), `residents` (find, enrol, a
resident's page), `cards` (the lifecycle forms and the approval queue), `audit` (the log and
its chain check), `statistics` (the dashboard).
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("office", __name__)

from web.office import (  # noqa: E402, F401
    audit,
    cards,
    digital,
    keys,
    residents,
    session,
    statistics,
)
