"""The card forms (one route per row of `web.office.actions.FORMS`) and the approval queue.

Every form carries the card's version as it was drawn: the service refuses a stale one with
`ConflictError`, and the operator lands on the card's current state with a "changed meanwhile"
message instead of acting on what someone else already changed.
"""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import Operator
from issuance import cards
from web import auth, forms
from web.database import transaction
from web.office import bp
from web.office.actions import FORMS, CardForm, actions_for
from web.office.common import card_or_404, submit


@bp.get("/cards/<number>")
@auth.requires()
def card(number: str) -> Response:
    """A card's place: its holder's page, scrolled to the card."""
    with transaction() as db:
        found = card_or_404(db, auth.acting(db), number)
        location = url_for(".resident", id_number=found.resident.id_number,
                           _anchor=f"card-{found.number}")
    return redirect(location)


def _card_view(form: CardForm) -> Any:
    """The view that sends `form` for the card in the URL."""

    def view(number: str) -> Response:
        version = forms.integer("version")
        if version is None:
            abort(400)
        reason = forms.choice(Reason, "reason")
        if reason not in form.reasons:
            # Only what the form offers: "superseded" is recorded by replace and renew, never
            # picked by hand (the service would accept it for a plain revocation).
            reason = None
        fallback = url_for(".card", number=number)

        def change(db: Session, actor: Operator) -> str:
            target = card_or_404(db, actor, number, for_update=True)
            result = form.run(db, actor, target, version, reason)
            return url_for(".resident", id_number=result.resident.id_number,
                           _anchor=f"card-{result.number}")

        return submit(change, done=_("Done: %(action)s.", action=form.label), fallback=fallback)

    view.__name__ = f"card_{form.slug.replace('-', '_')}"
    view.__doc__ = f"Send the {form.slug} form for a card."
    return auth.requires(*form.roles)(view)


for _form in FORMS:
    bp.add_url_rule(f"/cards/<number>/{_form.slug}", view_func=_card_view(_form),
                    methods=["POST"])


@bp.get("/queue")
@auth.requires()
def queue() -> str:
    """Applications waiting for a supervisor; the maker's own are shown but not approvable."""
    signed_in = auth.current()
    assert signed_in is not None
    with transaction() as db:
        waiting = cards.list_cards(db, auth.acting(db), status=CardStatus.APPLIED)
        offers = {c.number: actions_for(c, signed_in.role, signed_in.operator_id)
                  for c in waiting}
        return render_template("office/queue.html", waiting=waiting, offers=offers)
