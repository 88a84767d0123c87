"""Words shown for the system's enums and errors, in the reader's language.

Enums cross modules as values; only here do they become words. Service errors carry an English
message naming the specifics (which card, which field); an English reader sees it as it is, any
other reader a translated sentence for the error's class, plus the specifics where they name
the field to fix.
"""

from __future__ import annotations

from typing import Any

from flask_babel import get_locale  # type: ignore[import-untyped]
from flask_babel import lazy_gettext as _l

from cardsys.errors import (
    ActiveCardExistsError,
    AuthenticationError,
    CardNotActiveError,
    CardsysError,
    ConflictError,
    DuplicateError,
    IllegalTransitionError,
    InvalidCardNumberError,
    InvalidIdNumberError,
    LimitExceededError,
    LockedError,
    MakerCheckerError,
    NotFoundError,
    PermissionDeniedError,
    PossibleDuplicateError,
    ReasonRequiredError,
    ReviewPendingError,
    ValidationError,
)
from cardsys.lifecycle import Action, CardKind, CardStatus, Reason
from cardsys.models import Role, Sex, SignerStatus
from cardsys.pki import Purpose

STATUS: dict[CardStatus, Any] = {
    CardStatus.APPLIED: _l("applied"),
    CardStatus.APPROVED: _l("approved"),
    CardStatus.PERSONALIZED: _l("personalized"),
    CardStatus.ISSUED: _l("issued"),
    CardStatus.ACTIVE: _l("active"),
    CardStatus.SUSPENDED: _l("suspended"),
    CardStatus.REVOKED: _l("revoked"),
    CardStatus.EXPIRED: _l("expired"),
}
ACTION: dict[Action, Any] = {
    Action.APPLY: _l("Apply"),
    Action.PROVISION: _l("Provision"),
    Action.APPROVE: _l("Approve"),
    Action.PERSONALIZE: _l("Personalize"),
    Action.HAND_OVER: _l("Hand over"),
    Action.ACTIVATE: _l("Activate"),
    Action.SUSPEND: _l("Suspend"),
    Action.RESUME: _l("Resume"),
    Action.REVOKE: _l("Revoke"),
    Action.EXPIRE: _l("Expire"),
}
REASON: dict[Reason, Any] = {
    Reason.LOST: _l("lost"),
    Reason.STOLEN: _l("stolen"),
    Reason.DAMAGED: _l("damaged"),
    Reason.DECEASED: _l("deceased"),
    Reason.FRAUD: _l("fraud"),
    Reason.SUPERSEDED: _l("superseded"),
    Reason.HOLDER_REQUEST: _l("holder's request"),
}
ROLE: dict[Role, Any] = {
    Role.CLERK: _l("clerk"),
    Role.SUPERVISOR: _l("supervisor"),
    Role.AUDITOR: _l("auditor"),
    Role.ADMIN: _l("administrator"),
}
SEX: dict[Sex, Any] = {
    Sex.FEMALE: _l("female"),
    Sex.MALE: _l("male"),
    Sex.UNSPECIFIED: _l("unspecified"),
}
KIND: dict[CardKind, Any] = {
    CardKind.PHYSICAL: _l("chip card"),
    CardKind.DIGITAL: _l("digital card"),
}

PURPOSE: dict[Purpose, Any] = {
    Purpose.CHIP_DOCUMENT: _l("chip documents"),
    Purpose.CREDENTIAL: _l("digital credentials"),
    Purpose.STATUS_LIST: _l("status lists"),
    Purpose.TRUST_LIST: _l("trust list"),
    Purpose.AUDIT: _l("audit checkpoints"),
}
SIGNER_STATUS: dict[SignerStatus, Any] = {
    SignerStatus.ACTIVE: _l("signing"),
    SignerStatus.RETIRED: _l("retired (still verifies)"),
    SignerStatus.REVOKED: _l("revoked"),
}

#: Most specific first: the first class the error is an instance of gives the sentence.
ERRORS: tuple[tuple[type[CardsysError], Any], ...] = (
    (InvalidIdNumberError, _l("The ID number is not valid.")),
    (InvalidCardNumberError, _l("The card number is not valid.")),
    (PossibleDuplicateError, _l("A resident with the same name, birth date and region is "
                                "already registered.")),
    (DuplicateError, _l("This record already exists.")),
    (ValidationError, _l("Some input is not acceptable.")),
    (NotFoundError, _l("Not found in your office.")),
    (PermissionDeniedError, _l("Your role does not allow this.")),
    (LockedError, _l("Too many failed sign-ins: the account is locked for a while.")),
    (AuthenticationError, _l("Wrong login or password.")),
    (ConflictError, _l("The card was changed meanwhile by someone else. Its current state is "
                       "shown; check it and try again.")),
    (MakerCheckerError, _l("You prepared this application: another supervisor must approve "
                           "it.")),
    (ReasonRequiredError, _l("Choose a reason from the list.")),
    (ActiveCardExistsError, _l("The resident already has an open chip card: replace or renew "
                               "it instead.")),
    (ReviewPendingError, _l("The resident is flagged as a possible duplicate: a supervisor "
                            "must clear the review first.")),
    (CardNotActiveError, _l("The card is not active: activation codes and printed card codes "
                            "are made for active cards only.")),
    (IllegalTransitionError, _l("This action is not possible in the card's current state.")),
    (LimitExceededError, _l("A limit would be exceeded.")),
)
# Errors whose English message names the field or value to fix: shown to every reader.
_SPECIFIC = (ValidationError, ActiveCardExistsError)


def error_message(error: CardsysError) -> str:
    """What to tell an operator about a service error, in the request's language."""
    sentence = next((str(text) for kind, text in ERRORS if isinstance(error, kind)), None)
    if sentence is None:
        return str(error)
    if str(get_locale()) == "en" and not isinstance(error, ConflictError):
        # The page shows the card's current state already: "changed meanwhile" says it better
        # than the service's "reload and try again".
        return str(error)
    if isinstance(error, _SPECIFIC):
        return f"{sentence} ({error})"
    return sentence
