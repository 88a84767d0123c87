"""The terminal's trust store: the pinned root, the verified trust list and status lists.

A terminal is provisioned once with the root certificate; `verify.sync` keeps the rest of its
directory current. `TrustStore.load` reads that directory and checks everything again, so a
tampered file on the terminal's disk is refused just as a tampered download is:

    <directory>/root.pem        the pinned root (written once by `cardsys terminal init`)
    <directory>/trust-list      the trust list (COSE_Sign1, see cardsys.formats.trustlist)
    <directory>/status/<n>      status list tokens, one per shard n (Token Status List, CWT)
    <directory>/state.json      what `sync` last accepted (sequence numbers, for rollback)

Rules the store enforces (python-tuf style: the trust logic does no network I/O; it raises):

1. the trust list verifies against the pinned root and is not stale (`StaleTrustError` at
   load, and again at every verification, since a terminal runs for days);
2. a signer is looked up by kid in a table built once at load (no certificate parsing on the
   hot path); an unknown kid is `UnknownKeyError`, a kid the CRL revoked is
   `UntrustedSignerError`, a certificate of another purpose is `WrongPurposeError`, one
   outside its validity at `now` is `UntrustedSignerError`;
3. a document must be dated inside its signer key's private-key usage period (clock skew
   allowed): a retired key, still trusted for what it signed, cannot sign new documents;
4. a status list is used only when its signature verifies with a STATUS_LIST signer, and only
   while fresh: issued at most `status_list_max_age` ago, not expired, not from the future;
5. a card whose list is missing or stale has unknown status, which the policy
   (`unknown_status`, default reject) turns into `StatusUnknownError` or accepts as UNKNOWN;
   an index outside the list is always refused (Token Status List §8.3).

The store is immutable after load; a new sync means a new `TrustStore.load`.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from cardsys.config import Settings, UnknownStatusPolicy
from cardsys.errors import (
    BadEncodingError,
    BadSignatureError,
    DecodeError,
    RevokedError,
    SignatureError,
    StaleTrustError,
    StatusUnknownError,
    SuspendedError,
    TrustListError,
    UnknownKeyError,
    UntrustedSignerError,
    VerificationError,
    WrongPurposeError,
)
from cardsys.formats.statuslist import ParsedStatusList, Status, parse_status_list
from cardsys.formats.trustlist import TrustList, parse_trust_list
from cardsys.pki import Purpose, kid, usage_period
from verify.result import StatusCheck

__all__ = [
    "ROOT_FILE",
    "STATE_FILE",
    "STATUS_DIR",
    "TRUST_LIST_FILE",
    "SignerKey",
    "TerminalPolicy",
    "TrustStore",
    "bad_encoding",
    "bad_signature",
    "list_number",
    "read_root",
]

ROOT_FILE: Final = "root.pem"
TRUST_LIST_FILE: Final = "trust-list"
STATUS_DIR: Final = "status"
STATE_FILE: Final = "state.json"
#: Largest trust list or status list file read from disk.
MAX_FILE: Final = 1 << 20
_MAX_ROOT: Final = 64 * 1024


@dataclass(frozen=True)
class TerminalPolicy:
    """The limits a terminal applies (from `Settings`, or the defaults)."""

    presentation_window: timedelta = timedelta(seconds=90)
    clock_skew: timedelta = timedelta(seconds=300)
    status_list_max_age: timedelta = timedelta(seconds=86400)
    unknown_status: UnknownStatusPolicy = UnknownStatusPolicy.REJECT
    trust_list_grace: timedelta = timedelta(days=3)

    @classmethod
    def from_settings(cls, settings: Settings) -> TerminalPolicy:
        return cls(
            presentation_window=timedelta(seconds=settings.presentation_window),
            clock_skew=timedelta(seconds=settings.clock_skew),
            status_list_max_age=timedelta(seconds=settings.status_list_max_age),
            unknown_status=settings.unknown_status_policy,
            trust_list_grace=timedelta(seconds=settings.trust_list_grace),
        )


@dataclass(frozen=True, slots=True)
class SignerKey:
    """A trusted signer certificate, pre-parsed for the hot path (times in epoch seconds)."""

    kid: bytes
    purpose: Purpose
    certificate: x509.Certificate
    public_key: ec.EllipticCurvePublicKey
    #: The certificate's validity, cut to the root's.
    not_before: int
    not_after: int
    #: The private-key usage period, when the certificate states one.
    usage: tuple[int, int] | None
    #: Whether the key is on P-256, so it may check ES256 signatures (RFC 9053 §2.1).
    p256: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "p256", isinstance(self.public_key.curve, ec.SECP256R1))

    @classmethod
    def of(
        cls, purpose: Purpose, certificate: x509.Certificate, root: x509.Certificate
    ) -> SignerKey:
        key = certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise TrustListError(f"signer {kid(certificate).hex()} does not have an ECDSA key")
        period = usage_period(certificate)
        return cls(
            kid=kid(certificate),
            purpose=purpose,
            certificate=certificate,
            public_key=key,
            not_before=_seconds(max(certificate.not_valid_before_utc, root.not_valid_before_utc)),
            not_after=_seconds(min(certificate.not_valid_after_utc, root.not_valid_after_utc)),
            usage=None if period is None else (_seconds(period[0]), _seconds(period[1])),
        )


@dataclass(frozen=True, slots=True)
class _List:
    """A verified status list with its times in epoch seconds."""

    issued: int
    expires: int
    tokens: ParsedStatusList


def list_number(uri: str) -> int | None:
    """The shard number at the end of a status list URI (`.../status/<n>`), if it has one."""
    tail = uri.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() and len(tail) <= 9 else None


@dataclass(frozen=True)
class TrustStore:
    """What a terminal trusts, verified and indexed (build with `load` or `build`)."""

    root: x509.Certificate
    trust_list: TrustList
    policy: TerminalPolicy
    loaded_at: datetime
    _signers: Mapping[bytes, tuple[SignerKey, ...]] = field(repr=False)
    _revoked: frozenset[bytes] = field(repr=False)
    _lists: Mapping[str, _List] = field(repr=False)
    _lists_by_number: Mapping[int, _List] = field(repr=False)
    #: The policy's limits and the trust list's deadline in epoch seconds, for the hot path.
    window: int = field(init=False)
    skew: int = field(init=False)
    _max_age: int = field(init=False, repr=False)
    _fresh_until: int = field(init=False, repr=False)
    #: Status lists found on disk but refused at load, with the reason (for `describe`).
    refused_lists: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        policy = self.policy
        object.__setattr__(self, "window", int(policy.presentation_window.total_seconds()))
        object.__setattr__(self, "skew", int(policy.clock_skew.total_seconds()))
        object.__setattr__(self, "_max_age", int(policy.status_list_max_age.total_seconds()))
        deadline = self.trust_list.next_update + self.trust_list.grace
        object.__setattr__(self, "_fresh_until", _seconds(deadline))

    # --- building -------------------------------------------------------------------------

    @classmethod
    def load(
        cls, directory: Path, *, now: datetime, policy: TerminalPolicy | None = None
    ) -> TrustStore:
        """Read and verify a terminal directory (layout and rules: module docstring).

        Raises:
            TrustListError: no pinned root or no trust list, or a trust list that fails.
            StaleTrustError: the trust list is past its next update and the grace period.
        """
        directory = Path(directory)
        root = read_root(directory)
        data = _read(directory / TRUST_LIST_FILE, "trust list", MAX_FILE)
        policy = policy or TerminalPolicy()
        trust_list = parse_trust_list(
            data, root=root, now=now, previous_sequence=None, grace=policy.trust_list_grace
        )
        status_dir = directory / STATUS_DIR
        tokens = []
        if status_dir.is_dir():
            for path in sorted(status_dir.iterdir()):
                if path.name.isdigit() and path.is_file():
                    tokens.append((path.name, _read(path, "status list", MAX_FILE)))
        return cls.build(trust_list, tokens, now=now, policy=policy)

    @classmethod
    def build(
        cls,
        trust_list: TrustList,
        status_lists: Iterable[tuple[str, bytes]] = (),
        *,
        now: datetime,
        policy: TerminalPolicy | None = None,
    ) -> TrustStore:
        """A store from a verified trust list and status list tokens (name, bytes).

        A status list that does not verify is left out (and named in `refused_lists`): the
        cards it covers get unknown status, which the policy decides.
        """
        root = trust_list.root
        signers: dict[bytes, list[SignerKey]] = {}
        for entry in trust_list.signers:
            key = SignerKey.of(entry.purpose, entry.certificate, root)
            signers.setdefault(key.kid, []).append(key)
        store = cls(
            root=root,
            trust_list=trust_list,
            policy=policy or TerminalPolicy(),
            loaded_at=now,
            _signers=types.MappingProxyType({k: tuple(v) for k, v in signers.items()}),
            _revoked=frozenset(entry.kid for entry in trust_list.revoked),
            _lists=types.MappingProxyType({}),
            _lists_by_number=types.MappingProxyType({}),
        )
        lists: dict[str, _List] = {}
        refused: list[tuple[str, str]] = []
        for name, token in status_lists:
            try:
                parsed = store.verify_status_list(token, now=now)
            except VerificationError as exc:
                refused.append((name, f"{exc.reason}: {exc}"))
                continue
            held = lists.get(parsed.uri)
            verified = _List(_seconds(parsed.iat), _seconds(parsed.exp), parsed)
            if held is None or verified.issued > held.issued:
                lists[parsed.uri] = verified
        by_number = {n: lst for uri, lst in lists.items() if (n := list_number(uri)) is not None}
        object.__setattr__(store, "_lists", types.MappingProxyType(lists))
        object.__setattr__(store, "_lists_by_number", types.MappingProxyType(by_number))
        object.__setattr__(store, "refused_lists", tuple(refused))
        return store

    def verify_status_list(self, token: bytes, *, now: datetime) -> ParsedStatusList:
        """Decode a status list token and verify its signature with a STATUS_LIST signer.

        Freshness is not checked here (a list is judged fresh or stale when it is used).

        Raises:
            BadEncodingError: malformed token.
            UnknownKeyError, UntrustedSignerError, WrongPurposeError: no trusted signer.
            BadSignatureError: the signature does not verify.
        """
        try:
            parsed = parse_status_list(token)
        except DecodeError as exc:
            raise bad_encoding(exc, "status list") from None
        key = self.signer(parsed.message.kid, Purpose.STATUS_LIST, now=_seconds(now))
        self.check_usage(key, _seconds(parsed.iat))
        try:
            parsed.message.verify(key.public_key)
        except SignatureError as exc:
            raise bad_signature(exc, "status list") from None
        return parsed

    # --- the hot path -----------------------------------------------------------------------

    def signer(self, key_id: bytes | None, purpose: Purpose, *, now: int) -> SignerKey:
        """The trusted key with `key_id` that may sign `purpose` documents at `now` (epoch s).

        Raises:
            UnknownKeyError: no trusted certificate carries the kid.
            UntrustedSignerError: the kid's certificate is revoked or outside its validity.
            WrongPurposeError: the kid's certificate is not issued for `purpose`.
        """
        candidates = self._signers.get(key_id) if key_id is not None else None
        if not candidates:
            if key_id is not None and key_id in self._revoked:
                raise UntrustedSignerError(f"the signer {key_id.hex()} is revoked by the root")
            shown = key_id.hex() if key_id is not None else "none"
            raise UnknownKeyError(f"no trusted certificate has the key id {shown}")
        for key in candidates:
            if key.purpose is purpose and key.not_before <= now <= key.not_after:
                return key
        if all(key.purpose is not purpose for key in candidates):
            raise WrongPurposeError(
                f"the signer {candidates[0].kid.hex()} is not authorised to sign "
                f"{purpose.value} documents"
            )
        raise UntrustedSignerError(
            f"the signer certificate {candidates[0].kid.hex()} is outside its validity"
        )

    def document_signer(
        self, key_id: bytes | None, purpose: Purpose, *, signed_at: int, now: int
    ) -> SignerKey:
        """`check_fresh`, `signer` and `check_usage` in one call (the QR verifier's hot path):
        the key that may have signed a `purpose` document dated `signed_at`, at `now` (both
        epoch seconds).

        Raises:
            StaleTrustError, UnknownKeyError, WrongPurposeError, UntrustedSignerError: as
                those three methods, in that order.
        """
        if now > self._fresh_until:
            self.check_fresh(now)
        candidates = self._signers.get(key_id) if key_id is not None else None
        if candidates is not None and len(candidates) == 1:
            # The usual case, inline: one certificate under this kid, and it passes.
            key = candidates[0]
            usage, skew = key.usage, self.skew
            if (
                key.purpose is purpose
                and key.not_before <= now <= key.not_after
                and (usage is None or usage[0] - skew <= signed_at <= usage[1] + skew)
            ):
                return key
        key = self.signer(key_id, purpose, now=now)  # names the failure, or finds the key
        self.check_usage(key, signed_at)
        return key

    def check_usage(self, key: SignerKey, signed_at: int) -> None:
        """Raise `UntrustedSignerError` when a document dated `signed_at` falls outside the
        signer key's private-key usage period (clock skew allowed)."""
        if key.usage is None:
            return
        skew = self.skew
        start, end = key.usage
        if not start - skew <= signed_at <= end + skew:
            raise UntrustedSignerError(
                f"the document is dated outside the signing period of key {key.kid.hex()}"
            )

    def check_fresh(self, now: datetime | int) -> None:
        """Raise `StaleTrustError` when the trust list is past next update plus grace
        (`now` as a datetime or in epoch seconds)."""
        moment = now if isinstance(now, int) else _seconds(now)
        if moment > self._fresh_until:
            raise StaleTrustError(
                f"the trust list (sequence {self.trust_list.sequence}) expired at "
                f"{self.trust_list.next_update.isoformat()} and its grace period is over: "
                "sync the terminal"
            )

    def status(self, uri: str, index: int, *, now: int) -> StatusCheck:
        """The status of entry `index` of the list published at `uri`, at `now` (epoch s).

        Raises:
            RevokedError, SuspendedError: the list says so.
            StatusUnknownError: no fresh list (and the policy rejects), or an index outside it.
        """
        return self._lookup(self._lists.get(uri), index, now, uri)

    def status_by_number(self, number: int, index: int, *, now: int) -> StatusCheck:
        """As `status`, for the list whose URI ends in `/status/<number>` (chip cards)."""
        return self._lookup(self._lists_by_number.get(number), index, now, f"list {number}")

    def _lookup(self, entry: _List | None, index: int, now: int, name: str) -> StatusCheck:
        if entry is None:
            return self._unknown(f"no status list {name} on this terminal")
        issued = entry.issued  # `_fresh`, inline: this runs for every card
        if not (issued - self.skew <= now < entry.expires and now - issued <= self._max_age):
            return self._unknown(f"the status list {name} is stale: sync the terminal")
        try:
            status = entry.tokens.lookup(index)
        except DecodeError as exc:
            # Token Status List §8.3: an index the list does not cover is refused, whatever
            # the policy for unknown status says.
            raise StatusUnknownError(str(exc)) from None
        if status is Status.VALID:
            return StatusCheck.GOOD
        if status is Status.REVOKED:
            raise RevokedError("the card is revoked")
        raise SuspendedError("the card is suspended")

    def _fresh(self, entry: _List, now: int) -> bool:
        issued = entry.issued
        return issued - self.skew <= now < entry.expires and now - issued <= self._max_age

    def _unknown(self, message: str) -> StatusCheck:
        if self.policy.unknown_status is UnknownStatusPolicy.ACCEPT:
            return StatusCheck.UNKNOWN
        raise StatusUnknownError(message)

    # --- for chip verification and display ------------------------------------------------------

    def trusted_certificate(
        self, certificate: x509.Certificate, purpose: Purpose, *, now: datetime
    ) -> SignerKey:
        """The trusted entry for a certificate carried inside a document (a chip's SOD).

        The certificate must be byte-for-byte one the trust list holds under its kid.

        Raises:
            UnknownKeyError, UntrustedSignerError, WrongPurposeError: as `signer`.
        """
        key = self.signer(kid(certificate), purpose, now=_seconds(now))
        if key.certificate.public_bytes(Encoding.DER) != certificate.public_bytes(Encoding.DER):
            raise UnknownKeyError("the document's certificate is not the trusted one")
        return key

    def status_lists(self) -> Mapping[str, ParsedStatusList]:
        """The verified status lists by URI (fresh or not)."""
        return {uri: entry.tokens for uri, entry in self._lists.items()}

    def describe(self, now: datetime) -> dict[str, object]:
        """A summary for `cardsys terminal sync` and the terminal page."""
        moment = _seconds(now)
        return {
            "root_kid": kid(self.root).hex(),
            "trust_list_sequence": self.trust_list.sequence,
            "trust_list_next_update": self.trust_list.next_update.isoformat(),
            "signers": sum(len(keys) for keys in self._signers.values()),
            "status_lists": {
                uri: {
                    "issued": entry.tokens.iat.isoformat(),
                    "expires": entry.tokens.exp.isoformat(),
                    "fresh": self._fresh(entry, moment),
                }
                for uri, entry in sorted(self._lists.items())
            },
            "refused_lists": [list(entry) for entry in self.refused_lists],
            "unknown_status_policy": self.policy.unknown_status.value,
        }


def read_root(directory: Path) -> x509.Certificate:
    """The pinned root certificate of a terminal directory.

    Raises:
        TrustListError: missing or not a PEM certificate.
    """
    data = _read(Path(directory) / ROOT_FILE, "pinned root certificate", _MAX_ROOT)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise TrustListError(f"{directory / ROOT_FILE} is not a PEM certificate") from None


def _read(path: Path, what: str, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise TrustListError(
            f"no {what} at {path}: initialise and sync the terminal first"
        ) from None
    except OSError as exc:
        raise TrustListError(f"cannot read the {what} at {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise TrustListError(f"the {what} at {path} is larger than {limit} bytes")
    return data


def _seconds(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


def bad_encoding(error: DecodeError, what: str) -> BadEncodingError:
    """The terminal's error for a malformed `what` (wire-format errors become verdicts)."""
    return BadEncodingError(f"the {what} is not well formed: {error}")


def bad_signature(error: SignatureError, what: str) -> BadSignatureError:
    """The terminal's error for a `what` whose signature does not verify."""
    return BadSignatureError(f"the {what}'s signature does not verify: {error}")
