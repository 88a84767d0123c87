"""The error tree of cardsys.

Every error the system raises on purpose is a `CardsysError`. The CLI prints `str(error)` as
one line and exits non-zero; the web layer maps the class to an HTTP status and a problem type;
the terminal maps a `VerificationError` to its `reason` code, which a clerk can read.
"""

from __future__ import annotations


class CardsysError(Exception):
    """Base of every error cardsys raises deliberately."""

    #: Short, stable, machine-readable code (used in JSON output, problem+json and the terminal).
    code = "error"


# --- configuration and input ---------------------------------------------------------------


class ConfigError(CardsysError):
    """Settings are missing or invalid."""

    code = "config"


class ValidationError(CardsysError):
    """Input does not have the required form (a bad ID number, a missing field)."""

    code = "invalid"


class InvalidIdNumberError(ValidationError):
    """A resident ID number fails its format, date or check character."""

    code = "invalid_id_number"


class InvalidCardNumberError(ValidationError):
    """A card number fails its format or check digit."""

    code = "invalid_card_number"


class DatabaseUnavailableError(ConfigError):
    """The database cannot be opened, or has no schema yet (`cardsys init` / `db upgrade`)."""

    code = "database_unavailable"


class NotFoundError(CardsysError):
    """The named resident, card, office, operator or key does not exist (or is out of scope)."""

    code = "not_found"


class DuplicateError(CardsysError):
    """Creating something that already exists (same ID number, same login)."""

    code = "duplicate"


class PossibleDuplicateError(DuplicateError):
    """Another resident has the same name, birth date and region: flagged for review."""

    code = "possible_duplicate"


class ConflictError(CardsysError):
    """A concurrent change won; reload and try again."""

    code = "conflict"


class PermissionDeniedError(CardsysError):
    """The operator's role or office does not allow this action."""

    code = "forbidden"


class AuthenticationError(CardsysError):
    """Login, PIN, token or activation code was wrong."""

    code = "unauthenticated"


class LockedError(AuthenticationError):
    """Too many failed attempts: locked for a while (or for good)."""

    code = "locked"


class LimitExceededError(CardsysError):
    """A configured limit (devices per resident, batch size) would be exceeded."""

    code = "limit_exceeded"


# --- lifecycle ---------------------------------------------------------------------------


class LifecycleError(CardsysError):
    """A card lifecycle rule was broken."""

    code = "lifecycle"


class IllegalTransitionError(LifecycleError):
    """The action is not allowed from the card's current state."""

    code = "illegal_transition"


class MakerCheckerError(LifecycleError):
    """The approver is the operator who prepared the application."""

    code = "maker_checker"


class ReasonRequiredError(LifecycleError):
    """The action needs a reason (from the reason enum) and none, or a wrong one, was given."""

    code = "reason_required"


class ActiveCardExistsError(LifecycleError):
    """The resident already has an active (or pending) physical card."""

    code = "active_card_exists"


class ReviewPendingError(LifecycleError):
    """The resident was enrolled as a possible duplicate and waits for a supervisor's review."""

    code = "review_pending"


class CardNotActiveError(LifecycleError):
    """The card (or the physical card behind a digital one) is not active: nothing new is
    issued for it (activation code, digital card, credential refresh)."""

    code = "card_not_active"


# --- audit -------------------------------------------------------------------------------


class AuditChainError(CardsysError):
    """The audit chain is broken: an event was edited, deleted, inserted or reordered."""

    code = "audit_chain_broken"


# --- keys --------------------------------------------------------------------------------


class KeyManagementError(CardsysError):
    """Base of key-store and PKI errors."""

    code = "key"


class KeyStoreError(KeyManagementError):
    """A key store could not be opened or used (wrong passphrase, wrong PIN, missing token)."""

    code = "key_store"


class WrongPassphraseError(KeyStoreError):
    """The passphrase does not decrypt the key file."""

    code = "wrong_passphrase"


class WrongPinError(KeyStoreError):
    """The PKCS#11 token refused the PIN."""

    code = "wrong_pin"


class NoActiveSignerError(KeyManagementError):
    """No signer of the requested purpose is inside its private-key usage period."""

    code = "no_active_signer"


class CertificateError(KeyManagementError):
    """A certificate is malformed, of the wrong purpose, outside its validity or not chained."""

    code = "certificate"


# --- wire formats ------------------------------------------------------------------------


class FormatError(CardsysError):
    """Bytes or text that do not decode to the expected structure."""

    code = "bad_encoding"


class DecodeError(FormatError):
    """Base45, CBOR, COSE, TLV or ASN.1 input is malformed, truncated, oversized or too deep."""

    code = "bad_encoding"


class SignatureError(FormatError):
    """A signature does not verify with the given key."""

    code = "bad_signature"


# --- chip protocol -----------------------------------------------------------------------


class ChipError(CardsysError):
    """Base of card-protocol errors on either side of the reader."""

    code = "chip"


class ApduError(ChipError):
    """A card answered with an error status word; `sw` holds it."""

    code = "apdu"

    def __init__(self, message: str, sw: int = 0) -> None:
        super().__init__(message)
        self.sw = sw


class SecureMessagingError(ChipError):
    """A Secure Messaging response failed its MAC, counter or padding check."""

    code = "secure_messaging"


class SecureMessagingAbortedError(SecureMessagingError):
    """The card answered a protected command with a bare status word: it ended the session."""

    code = "secure_messaging_aborted"

    def __init__(self, message: str, sw: int = 0) -> None:
        super().__init__(message)
        self.sw = sw


class AccessDeniedError(ChipError):
    """Mutual authentication failed: wrong access key (card number, birth date, expiry)."""

    code = "access_denied"


class PinBlockedError(ChipError):
    """The card's PIN is blocked after too many wrong tries."""

    code = "pin_blocked"


class CardLockedError(ChipError):
    """The card is locked after personalization and refuses personalization commands."""

    code = "card_locked"


class ReaderError(ChipError):
    """No reader, no card in the reader, or the PC/SC service is not reachable."""

    code = "reader"


class NoCardError(ReaderError):
    """The reader is there but holds no card (or only an emulator's empty slot)."""

    code = "no_card"


# --- verification (terminal side) --------------------------------------------------------


class VerificationError(CardsysError):
    """A card did not verify. Subclasses name why; `reason` is the code a terminal shows."""

    code = "invalid"

    @property
    def reason(self) -> str:
        return self.code


class BadEncodingError(VerificationError):
    """The QR or chip data is not well formed."""

    code = "bad_encoding"


class UnknownKeyError(VerificationError):
    """No trusted certificate carries the signature's key id."""

    code = "unknown_key"


class BadSignatureError(VerificationError):
    """The signature does not verify with any trusted certificate carrying its key id."""

    code = "bad_signature"


class WrongPurposeError(VerificationError):
    """The signer's certificate is not authorised for this kind of document."""

    code = "wrong_purpose"


class UntrustedSignerError(VerificationError):
    """The signer certificate does not chain to the root, is revoked or outside its validity."""

    code = "untrusted_signer"


class ExpiredError(VerificationError):
    """The credential or card is past its expiry."""

    code = "expired"


class NotYetValidError(VerificationError):
    """The credential is not valid yet (nbf or iat in the future beyond the allowed skew)."""

    code = "not_yet_valid"


class RevokedError(VerificationError):
    """The status list marks the card revoked."""

    code = "revoked"


class SuspendedError(VerificationError):
    """The status list marks the card suspended."""

    code = "suspended"


class StatusUnknownError(VerificationError):
    """The card's status cannot be established (no list, or a stale one) and policy refuses."""

    code = "status_unknown"


class StaleProofError(VerificationError):
    """The presentation proof is older (or newer) than the presentation window allows."""

    code = "stale_proof"


class ReplayedError(VerificationError):
    """This presentation was already shown at this terminal."""

    code = "replayed"


class HolderBindingError(VerificationError):
    """The proof is not signed by the device key the credential is bound to."""

    code = "holder_binding"


class ChipCloneError(VerificationError):
    """Active Authentication failed: the chip does not hold the private key of DG15."""

    code = "chip_clone"


class DataGroupHashError(VerificationError):
    """A data group's hash differs from the one in the signed security object."""

    code = "dg_hash_mismatch"


class MissingDataGroupError(VerificationError):
    """A data group the security object lists is missing, or one is there it does not list."""

    code = "dg_missing"


class TrustListError(VerificationError):
    """A trust list is tampered, rolled back, not signed by the pinned root or malformed."""

    code = "bad_trust_list"


class StaleTrustError(TrustListError):
    """The terminal's trust list is past its next update by more than the allowed grace."""

    code = "stale_trust"


class RollbackError(TrustListError):
    """A trust list older (lower sequence number) than the one the terminal holds."""

    code = "trust_list_rollback"


class TrustListSignatureError(TrustListError):
    """The trust list's signature does not verify with the key it names: it was altered."""

    code = "trust_list_signature"


class TrustListSignerError(TrustListError):
    """The trust list is signed by neither the pinned root nor a valid trust-list signer."""

    code = "trust_list_signer"


class CrlError(TrustListError):
    """The CRL in a trust list is malformed, or not issued and signed by the pinned root."""

    code = "bad_crl"


class ChipAccessError(VerificationError):
    """The terminal could not open Secure Messaging with the card (wrong access key, bad MAC)."""

    code = "chip_access"


class ChipPinError(VerificationError):
    """The holder's PIN was wrong (the card counts the try)."""

    code = "chip_pin"


class ChipPinBlockedError(ChipPinError):
    """The card's PIN is blocked after too many wrong tries: only the office can help."""

    code = "chip_pin_blocked"
