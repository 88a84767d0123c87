"""What the office views share: loading records by their URL, and running a form's change.

`submit` is the one shape of every changing form: claim the form key, run the service call
in one transaction, record where it led, then redirect (POST/redirect/GET). Another office's
record and a role the service refuses propagate as 404 and 403 pages; every other service
error rolls the transaction back and comes back to the page as a message.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect
from flask_babel import gettext as _  # type: ignore[import-untyped]
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from cardsys.errors import (
    CardsysError,
    InvalidCardNumberError,
    InvalidIdNumberError,
    NotFoundError,
    PermissionDeniedError,
)
from cardsys.models import Card, Operator, Resident
from issuance import cards, residents
from web import auth, forms
from web.database import transaction
from web.labels import error_message

#: A change: given the transaction and the acting operator, do it and return the page to show.
Change = Callable[[Session, Operator], str]


def resident_or_404(db: Session, actor: Operator, id_number: str) -> Resident:
    """The resident an URL names, in the actor's office; anything else is a 404."""
    try:
        return residents.get(db, actor, id_number)
    except InvalidIdNumberError:
        abort(404)


def card_or_404(db: Session, actor: Operator, number: str, *, for_update: bool = False) -> Card:
    """The card an URL names, in the actor's office; anything else is a 404."""
    try:
        return cards.get(db, actor, number, for_update=for_update)
    except InvalidCardNumberError:
        abort(404)


def submit(change: Change, *, done: str, fallback: str) -> Response:
    """Run a form's change once (see the module docstring) and redirect.

    Args:
        done: the message after success.
        fallback: where to go when the service refuses (the page the form was on).
    """
    try:
        with transaction() as db:
            actor = auth.acting(db)
            earlier = forms.claim_form(db, actor)
            if earlier is not None:
                return already_submitted(earlier)
            location = change(db, actor)
            forms.settle_form(location)
    except (NotFoundError, PermissionDeniedError):
        raise
    except CardsysError as exc:
        flash(error_message(exc), "error")
        return redirect(fallback, code=303)
    flash(done, "info")
    return redirect(location, code=303)


def already_submitted(location: str) -> Response:
    """Where a repeated form goes: the outcome of its first submission."""
    flash(_("This form was already sent; this is its result."), "info")
    return redirect(location, code=303)
