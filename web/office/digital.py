"""Digital cards in the office: activation codes, a resident's phones, the printed card QR.

* `/office/activation-codes?q=<card or ID number>`: a resident's physical cards and phones.
  For an ACTIVE physical card a clerk or supervisor creates a one-time activation code
  (`issuance.digital.create_activation_code`). The code is shown ONCE: only in the answer to
  that POST (never stored in the clear, never in a redirect, a flash message or a URL), with a
  QR the resident scans to open the portal with the card number filled in. A reload of that
  answer finds the form key already used and lands on the page without the code, and without
  a second code. The phones (digital cards) come with their suspend/resume/revoke forms.
* `/office/cards/<number>/static-qr` (POST): the `SSC1:` QR printed on a card's back, signed
  now (the service writes the audit event), on a printable page.
"""

from __future__ import annotations

from typing import Final

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from markupsafe import Markup
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from cardsys import qrimage
from cardsys.errors import (
    CardsysError,
    InvalidCardNumberError,
    InvalidIdNumberError,
    NotFoundError,
    PermissionDeniedError,
)
from cardsys.ids import CardNumber
from cardsys.lifecycle import CardKind, CardStatus
from cardsys.models import Card, Operator, Resident, Role
from cardsys.wallet import static_text
from issuance import cards, digital, residents
from web import auth, forms
from web.database import now, settings, transaction
from web.labels import error_message
from web.office import bp
from web.office.actions import actions_for
from web.office.common import already_submitted, card_or_404
from web.publication import signers

SEARCH_MAX: Final = 100
_ISSUING: Final = (Role.CLERK, Role.SUPERVISOR)


@bp.get("/activation-codes")
@auth.requires()
def activation_codes() -> str:
    """Find a resident by card or ID number; their cards, codes and phones."""
    signed_in = auth.current()
    assert signed_in is not None
    query = request.args.get("q", "").strip()[:SEARCH_MAX]
    if not query:
        return render_template("office/activation_codes.html", q="", resident=None)
    with transaction() as db:
        actor = auth.acting(db)
        person = _holder(db, actor, query)
        if person is None:
            return render_template("office/activation_codes.html", q=query, resident=None,
                                   message=_("No resident of your office has this card or ID "
                                             "number."))
        return render_template(
            "office/activation_codes.html", q=query, resident=person,
            physical=[c for c in person.cards if c.kind is CardKind.PHYSICAL],
            phones=[c for c in person.cards if c.kind is CardKind.DIGITAL],
            offers={c.number: actions_for(c, signed_in.role, signed_in.operator_id)
                    for c in person.cards if c.kind is CardKind.DIGITAL},
            can_issue=signed_in.role in _ISSUING, printable=is_printable,
        )


def _holder(db: Session, actor: Operator, query: str) -> Resident | None:
    """The resident a card number or an ID number names, if of the actor's office."""
    try:
        return cards.get(db, actor, str(CardNumber.parse(query))).resident
    except (InvalidCardNumberError, NotFoundError):
        pass
    try:
        return residents.get(db, actor, query)
    except (InvalidIdNumberError, NotFoundError):
        return None


@bp.post("/cards/<number>/activation-code")
@auth.requires(*_ISSUING)
def create_activation_code(number: str) -> BaseResponse | str:
    """Make a code and show it once (module docstring)."""
    page = url_for(".activation_codes", q=number)
    try:
        with transaction() as db:
            actor = auth.acting(db)
            earlier = forms.claim_form(db, actor)
            if earlier is not None:
                return already_submitted(earlier)
            card = card_or_404(db, actor, number)
            issued = digital.create_activation_code(db, actor, card.number, now=now(),
                                                    settings=settings())
            forms.settle_form(page)
            holder = f"{card.resident.surname} {card.resident.given_names}"
    except (NotFoundError, PermissionDeniedError):
        raise
    except CardsysError as exc:
        flash(error_message(exc), "error")
        return _back(page)
    link = activation_link(issued.card_number)
    return render_template(
        "office/activation_code.html", issued=issued, holder=holder, link=link,
        qr=inline_svg(qrimage.svg(link, box_size=8, fixed_mask=None)), back=page,
    )


def activation_link(card_number: str) -> str:
    """The URL the activation QR carries: in capitals, so the QR stays in alphanumeric mode
    (`web.public.activation_link` answers it). It names the card, never the code."""
    return f"{settings().public_base_url.rstrip('/')}/PORTAL/A/{card_number}".upper()


@bp.post("/cards/<number>/static-qr")
@auth.requires(*_ISSUING)
def static_qr(number: str) -> BaseResponse | str:
    """The printable `SSC1:` QR of a physical card."""
    page = url_for(".activation_codes", q=number)
    try:
        with transaction() as db:
            actor = auth.acting(db)
            card = card_or_404(db, actor, number)
            credential = digital.static_credential(db, actor, card.number, now=now(),
                                                   settings=settings(), signers=signers())
            person = card.resident
            shown = {"number": card.number, "surname": person.surname,
                     "given_names": person.given_names,
                     "birth_date": person.birth_date.isoformat(),
                     "expiry_date": card.expiry_date.isoformat() if card.expiry_date else ""}
    except (NotFoundError, PermissionDeniedError):
        raise
    except CardsysError as exc:
        flash(error_message(exc), "error")
        return _back(page)
    text = static_text(credential)
    return render_template("office/static_qr.html", card=shown, back=page,
                           qr=inline_svg(qrimage.svg(text, box_size=4, fixed_mask=None)))


def inline_svg(document: bytes) -> Markup:
    """An SVG from `cardsys.qrimage` for inline use: without its XML declaration, with a
    class the style sheet sizes (the Content Security Policy allows no style attributes)."""
    text = document.decode("utf-8")
    start = text.find("<svg")
    if start < 0:
        abort(500)
    # The SVG is generated from our own text by qrcode (paths and numbers only).
    return Markup(text[start:].replace("<svg ", '<svg class="qr" role="img" ', 1))  # noqa: S704


def _back(page: str) -> BaseResponse:
    return redirect(page, code=303)


def is_printable(card: Card) -> bool:
    """Whether a physical card has a static QR to print (personalized, not closed)."""
    return (card.kind is CardKind.PHYSICAL and card.expiry_date is not None
            and not card.status.terminal and card.status is not CardStatus.APPLIED)
