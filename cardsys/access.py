"""Who may act: the role and office checks every service applies before it changes anything."""

from __future__ import annotations

from cardsys.errors import NotFoundError, PermissionDeniedError
from cardsys.models import Operator, Role


def require_role(actor: Operator, *roles: Role) -> None:
    """Raise `PermissionDeniedError` unless the actor is active and holds one of `roles`."""
    if not actor.active:
        raise PermissionDeniedError(f"operator {actor.login} is deactivated")
    if actor.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise PermissionDeniedError(
            f"operator {actor.login} ({actor.role.value}) may not do this (needs {allowed})"
        )


def require_office(actor: Operator, office_id: int) -> None:
    """Raise `NotFoundError` unless the record belongs to the actor's office.

    Another office's data is reported as not found, so its existence does not leak.
    """
    if actor.office_id != office_id:
        raise NotFoundError("not found in your office")
