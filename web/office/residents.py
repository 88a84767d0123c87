"""Finding and enrolling residents, and a resident's page with their cards and history."""

from __future__ import annotations

from datetime import date

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _  # type: ignore[import-untyped]
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from cardsys import audit
from cardsys.errors import (
    CardsysError,
    InvalidCardNumberError,
    NotFoundError,
    PermissionDeniedError,
    PossibleDuplicateError,
    ValidationError,
)
from cardsys.ids import CardNumber, ResidentId
from cardsys.models import Operator, Resident, Role, Sex
from issuance import cards, residents
from web import auth, forms
from web.database import now, settings, transaction
from web.labels import error_message
from web.office import bp
from web.office.actions import actions_for
from web.office.common import already_submitted, resident_or_404, submit

HISTORY_LIMIT = 50
SEARCH_MAX = 100
ENROL_FIELDS = ("id_number", "surname", "given_names", "sex", "birth_date", "region", "schemes")


@bp.get("/residents")
@auth.requires()
def find() -> BaseResponse | str:
    """Search by ID number (prefix) or name; a card number leads to its holder."""
    query = request.args.get("q", "")[:SEARCH_MAX]
    found: list[Resident] = []
    message = None
    if query.strip():
        with transaction() as db:
            actor = auth.acting(db)
            holder = _card_holder(db, actor, query)
            if holder is not None:
                return redirect(url_for(".resident", id_number=holder))
            try:
                found = residents.find(db, actor, query)
            except PermissionDeniedError:
                raise
            except CardsysError as exc:
                message = error_message(exc)
    return render_template("office/find.html", q=query, found=found, message=message)


def _card_holder(db: Session, actor: Operator, query: str) -> str | None:
    """The ID number of the holder of the card `query` names, if it is one of this office."""
    try:
        card = cards.get(db, actor, str(CardNumber.parse(query)))
    except (InvalidCardNumberError, NotFoundError):
        return None
    return card.resident.id_number


@bp.route("/residents/new", methods=["GET", "POST"])
@auth.requires(Role.CLERK, Role.SUPERVISOR)
def enrol() -> BaseResponse | str | tuple[str, int]:
    """The enrolment form; a possible duplicate asks for an explicit confirmation."""
    if request.method == "GET":
        return render_template("office/enrol.html", form={}, confirm=False)
    form = {name: forms.text(name, max_length=120) for name in ENROL_FIELDS}
    confirm = request.form.get("confirm_distinct") == "yes"
    try:
        enrolment = _enrolment(form)
        with transaction() as db:
            actor = auth.acting(db)
            earlier = forms.claim_form(db, actor)
            if earlier is not None:
                return already_submitted(earlier)
            person = residents.enrol(db, actor, enrolment, now=now(), confirm_distinct=confirm)
            location = url_for(".resident", id_number=person.id_number)
            forms.settle_form(location)
    except PermissionDeniedError:
        raise
    except PossibleDuplicateError as exc:
        page = render_template("office/enrol.html", form=form, confirm=True,
                               error=error_message(exc))
        return page, 409
    except CardsysError as exc:
        page = render_template("office/enrol.html", form=form, confirm=confirm,
                               error=error_message(exc))
        return page, 422
    flash(_("Resident enrolled."), "info")
    return redirect(location, code=303)


def _enrolment(form: dict[str, str]) -> residents.Enrolment:
    """The enrolment the form describes; the service checks the rules."""
    id_number = ResidentId.parse(form["id_number"])
    try:
        born = date.fromisoformat(form["birth_date"])
    except ValueError:
        raise ValidationError(_("The birth date must be a date (YYYY-MM-DD).")) from None
    try:
        sex = Sex(form["sex"])
    except ValueError:
        raise ValidationError(_("Choose the sex.")) from None
    upload = request.files.get("photo")
    photo = None
    if upload is not None and upload.filename:
        # One byte more than allowed is enough for the service to refuse it.
        photo = upload.stream.read(residents.MAX_PHOTO_BYTES + 1)
    return residents.Enrolment(
        id_number=id_number, surname=form["surname"], given_names=form["given_names"],
        sex=sex, birth_date=born, region=form["region"],
        schemes=tuple(form["schemes"].replace(",", " ").split()), photo=photo,
    )


@bp.get("/residents/<id_number>")
@auth.requires()
def resident(id_number: str) -> str:
    """A resident, their cards with the actions the operator may take, and the history."""
    signed_in = auth.current()
    assert signed_in is not None
    with transaction() as db:
        person = resident_or_404(db, auth.acting(db), id_number)
        histories = {
            card.number: audit.recent(db, subject=card.number, limit=HISTORY_LIMIT)
            for card in person.cards
        }
        return render_template(
            "office/resident.html", resident=person, histories=histories,
            enrolment=audit.recent(db, subject=person.id_number, limit=HISTORY_LIMIT),
            actions={card.number: actions_for(card, signed_in.role, signed_in.operator_id)
                     for card in person.cards},
            can_apply=signed_in.role in (Role.CLERK, Role.SUPERVISOR),
            can_clear=signed_in.role is Role.SUPERVISOR and person.review_required,
        )


@bp.get("/residents/<id_number>/photo")
@auth.requires()
def photo(id_number: str) -> Response:
    """The resident's portrait (stored only after it was checked to be JPEG or PNG)."""
    with transaction() as db:
        person = resident_or_404(db, auth.acting(db), id_number)
        if person.photo is None:
            abort(404)
        content, media_type = person.photo.content, person.photo.media_type
    response = Response(content, mimetype=media_type)
    response.headers["Content-Disposition"] = "inline"
    return response


@bp.post("/residents/<id_number>/apply")
@auth.requires(Role.CLERK, Role.SUPERVISOR)
def apply(id_number: str) -> BaseResponse:
    """Open an application for a chip card; a supervisor other than the maker approves it."""
    page = url_for(".resident", id_number=id_number)

    def change(db: Session, actor: Operator) -> str:
        person = resident_or_404(db, actor, id_number)
        card = cards.apply(db, actor, person, now=now(), settings=settings())
        return f"{page}#card-{card.number}"

    return submit(change, done=_("Application opened: it waits for a supervisor's approval."),
                  fallback=page)


@bp.post("/residents/<id_number>/clear-review")
@auth.requires(Role.SUPERVISOR)
def clear_review(id_number: str) -> BaseResponse:
    """A supervisor confirms that a resident flagged as a possible duplicate is distinct."""
    page = url_for(".resident", id_number=id_number)

    def change(db: Session, actor: Operator) -> str:
        person = resident_or_404(db, actor, id_number)
        residents.clear_review(db, actor, person.id_number, now=now())
        return page

    return submit(change, done=_("Review cleared."), fallback=page)
