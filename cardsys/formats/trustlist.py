"""The trust list: the signed document a terminal syncs to learn which signers to trust.

A terminal is provisioned once with the root certificate (pinned); everything else arrives in
the trust list: every signer certificate with its purpose, and the root's CRL. The document is
a COSE_Sign1 (RFC 9052) over a deterministic CBOR map (RFC 8949 §4.2.1):

    {1: version (1), 2: sequence number, 3: issuer, 4: issued at, 5: next update,
     6: kid of the root certificate, 7: [[purpose, signer certificate DER], ...],
     8: the root's CRL (DER)}

with times as integer seconds since the epoch (NumericDate), the content type
`application/cardsys-trust-list+cbor` in the protected header, and the signer's kid there too.

Rules `parse_trust_list` enforces, in order (every failure a `TrustListError` subclass or a
`StaleTrustError`, never a crash):

1. the message is a well-formed COSE_Sign1 of bounded size with our content type, and its
   payload has exactly the fields above with the right types (else `TrustListError`);
2. it names the pinned root's kid (else `TrustListError`);
3. the signing key is the pinned root's, or that of a trust-list signer whose certificate is in
   the list, chains to the root, is not revoked by the CRL, is valid now and carries the
   trust-list purpose, and whose private-key usage period covers the issue time (else
   `TrustListSignerError`);
4. the signature verifies over the bytes as received (else `TrustListSignatureError`);
5. the CRL is issued and signed by the root (else `CrlError`);
6. the sequence number is not below the one the terminal holds; an equal one is accepted only
   for the identical document (else `RollbackError`);
7. `now` is not past next update + grace (else `StaleTrustError`), and the validity window is
   at most `MAX_VALIDITY` long (else `TrustListError`), so a key that once signed cannot mint
   a list that stays fresh for years;
8. every listed certificate is issued by the root and carries the purpose it is listed under,
   and none is listed twice (else `TrustListError`); certificates the CRL revokes are dropped.

This module does no I/O and reads no clock; it must not import `keys/` or the database, since
terminals run it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from cardsys.errors import (
    CrlError,
    DecodeError,
    RollbackError,
    SignatureError,
    StaleTrustError,
    TrustListError,
    TrustListSignatureError,
    TrustListSignerError,
    UnknownKeyError,
    UntrustedSignerError,
    ValidationError,
    VerificationError,
)
from cardsys.formats import cbor, cose
from cardsys.pki import Purpose, Signer, check_crl, check_signer, kid, purposes_of, signed_by
from cardsys.pki import usage_period as private_key_usage_period

__all__ = [
    "CONTENT_TYPE",
    "MAX_DOCUMENT",
    "MAX_SIGNERS",
    "MAX_VALIDITY",
    "VERSION",
    "TrustList",
    "TrustedSigner",
    "build_trust_list",
    "parse_trust_list",
]

VERSION: Final = 1
CONTENT_TYPE: Final = "application/cardsys-trust-list+cbor"
#: A list of a thousand signers is ~700 KB; anything bigger is not ours.
MAX_DOCUMENT: Final = 1 << 20
MAX_SIGNERS: Final = 1024
#: Longest next-update window a list may claim (terminals refuse longer ones).
MAX_VALIDITY: Final = timedelta(days=366)

# Payload map keys.
_VERSION, _SEQUENCE, _ISSUER, _ISSUED, _NEXT_UPDATE, _ROOT_KID, _SIGNERS, _CRL = range(1, 9)
_KEYS: Final = frozenset(range(1, 9))
_MAX_UINT: Final = (1 << 63) - 1


@dataclass(frozen=True)
class TrustedSigner:
    """One signer certificate from a trust list and the purpose it is listed under."""

    purpose: Purpose
    certificate: x509.Certificate
    kid: bytes


@dataclass(frozen=True)
class TrustList:
    """A verified trust list (build it only through `parse_trust_list`)."""

    version: int
    sequence: int
    issuer: str
    issued_at: datetime
    next_update: datetime
    root: x509.Certificate
    #: The signers a terminal trusts (those the CRL revokes are left out).
    signers: tuple[TrustedSigner, ...]
    #: Listed signers the CRL revokes: kept only to report "revoked" instead of "unknown".
    revoked: tuple[TrustedSigner, ...]
    crl: x509.CertificateRevocationList
    #: Kid of the key that signed the list (the root's or a trust-list signer's).
    signed_by: bytes
    #: SHA-256 of the document as received: pass it back as `previous_digest`.
    digest: bytes
    #: The `now` the list was verified at (the default time for `certificates_for`).
    checked_at: datetime
    grace: timedelta = field(default=timedelta(0))

    def certificates_for(
        self, kid: bytes, purpose: Purpose, *, now: datetime | None = None
    ) -> tuple[x509.Certificate, ...]:
        """Every trusted certificate carrying `kid` that may sign `purpose` documents at `now`.

        `now` defaults to the time the list was verified; a terminal passes the current time.

        Raises:
            UnknownKeyError: no trusted certificate carries that kid.
            UntrustedSignerError: the kid's certificate is revoked, expired or not yet valid.
            WrongPurposeError: the kid's certificate is not issued for `purpose`.
        """
        moment = self.checked_at if now is None else now
        candidates = [signer for signer in self.signers if signer.kid == kid]
        if not candidates:
            if any(signer.kid == kid for signer in self.revoked):
                raise UntrustedSignerError(f"the signer {kid.hex()} is revoked by the root")
            raise UnknownKeyError(f"no trusted certificate has the key id {kid.hex()}")
        accepted: list[x509.Certificate] = []
        first_error: VerificationError | None = None
        for signer in candidates:
            try:
                check_signer(
                    signer.certificate, root=self.root, purpose=purpose, now=moment, crl=self.crl
                )
            except VerificationError as exc:
                first_error = first_error or exc
            else:
                accepted.append(signer.certificate)
        if not accepted:
            assert first_error is not None
            raise first_error
        return tuple(accepted)

    def check_fresh(self, now: datetime) -> None:
        """Raise `StaleTrustError` when `now` is past next update plus the grace."""
        if now > self.next_update + self.grace:
            raise StaleTrustError(
                f"the trust list (sequence {self.sequence}) expired at "
                f"{self.next_update.isoformat()} and the grace period is over"
            )


def build_trust_list(
    *,
    sequence: int,
    issuer: str,
    issued_at: datetime,
    next_update: datetime,
    root: x509.Certificate,
    signers: Sequence[tuple[Purpose, x509.Certificate]],
    crl: x509.CertificateRevocationList,
    signer: Signer,
) -> bytes:
    """Encode and sign a trust list (tagged COSE_Sign1).

    `signer` is the root itself or a trust-list signer listed in `signers`.

    Raises:
        ValidationError: bad sequence or times, too many signers, a duplicate certificate, or a
            signer that is neither the root nor a listed trust-list signer.
    """
    if not 0 <= sequence <= _MAX_UINT:
        raise ValidationError("the trust-list sequence number must be a non-negative integer")
    start, end = _seconds(issued_at), _seconds(next_update)
    if not start < end <= start + int(MAX_VALIDITY.total_seconds()):
        raise ValidationError("the next update must lie after the issue time, within a year")
    if len(signers) > MAX_SIGNERS:
        raise ValidationError(f"a trust list holds at most {MAX_SIGNERS} signers")
    entries = sorted(
        (
            (purpose.value, certificate.public_bytes(Encoding.DER))
            for purpose, certificate in signers
        ),
    )
    if len({der for _purpose, der in entries}) != len(entries):
        raise ValidationError("a certificate is listed twice")
    listed = {kid_of(der) for purpose, der in entries if purpose == Purpose.TRUST_LIST.value}
    if signer.kid != kid(root) and signer.kid not in listed:
        raise ValidationError("the trust list must be signed by the root or a listed signer")
    payload = cbor.dumps(
        {
            _VERSION: VERSION,
            _SEQUENCE: sequence,
            _ISSUER: issuer,
            _ISSUED: start,
            _NEXT_UPDATE: end,
            _ROOT_KID: kid(root),
            _SIGNERS: [[purpose, der] for purpose, der in entries],
            _CRL: crl.public_bytes(Encoding.DER),
        }
    )
    message = cose.sign1(
        payload,
        sign=signer.sign,
        alg=signer.algorithm,
        kid=signer.kid,
        protected_extra={cose.CONTENT_TYPE: CONTENT_TYPE},
    )
    return message.encode()


def parse_trust_list(
    data: bytes,
    *,
    root: x509.Certificate,
    now: datetime,
    previous_sequence: int | None,
    grace: timedelta,
    previous_digest: bytes | None = None,
) -> TrustList:
    """Verify a trust list against the pinned root (rules: module docstring).

    Args:
        data: the document as received.
        root: the pinned root certificate.
        now: the terminal's current time.
        previous_sequence: the sequence number of the list the terminal holds (None: first sync).
        grace: how long past its next update a list stays acceptable.
        previous_digest: `TrustList.digest` of the held list; an equal sequence number is
            accepted only for the identical document, so without it an equal number is refused.

    Raises:
        TrustListError: malformed, for another root, or listing bad certificates.
        TrustListSignerError: signed by a key that is neither the root nor a valid
            trust-list signer.
        TrustListSignatureError: the signature does not verify (the list was altered).
        CrlError: the CRL is malformed or not signed by the root.
        RollbackError: older than the list the terminal holds.
        StaleTrustError: past its next update by more than `grace`.
    """
    try:
        message = cose.Sign1.decode(data, max_size=MAX_DOCUMENT)
    except DecodeError as exc:
        raise TrustListError(f"the trust list is not a valid COSE_Sign1 message: {exc}") from exc
    if message.protected.get(cose.CONTENT_TYPE) != CONTENT_TYPE:
        raise TrustListError("the message is not a trust list (wrong content type)")
    fields = _decode_payload(message.payload)
    root_kid = kid(root)
    if fields[_ROOT_KID] != root_kid:
        raise TrustListError("the trust list is for another root")
    issued_at, next_update = _time(fields[_ISSUED]), _time(fields[_NEXT_UPDATE])
    entries: list[tuple[str, bytes]] = fields[_SIGNERS]
    crl = _load_crl(fields[_CRL])

    signing_certificate = _signing_certificate(
        message.kid, root, entries, now=now, issued_at=issued_at
    )
    try:
        message.verify(_ec_key(signing_certificate))
    except SignatureError as exc:
        raise TrustListSignatureError("the trust list's signature does not verify") from exc

    try:
        check_crl(crl, root)
    except UntrustedSignerError as exc:
        raise CrlError(str(exc)) from exc
    if crl.get_revoked_certificate_by_serial_number(signing_certificate.serial_number):
        raise TrustListSignerError("the trust list is signed by a revoked trust-list signer")
    digest = hashlib.sha256(data).digest()
    _check_sequence(fields[_SEQUENCE], previous_sequence, digest, previous_digest)
    if not issued_at < next_update <= issued_at + MAX_VALIDITY:
        raise TrustListError("the trust list's validity window is empty or longer than a year")
    if now > next_update + grace:
        raise StaleTrustError(
            f"the trust list expired at {next_update.isoformat()} and the grace period is over"
        )
    trusted, revoked = _signers(entries, root, crl)
    return TrustList(
        version=fields[_VERSION],
        sequence=fields[_SEQUENCE],
        issuer=fields[_ISSUER],
        issued_at=issued_at,
        next_update=next_update,
        root=root,
        signers=trusted,
        revoked=revoked,
        crl=crl,
        signed_by=message.kid or b"",
        digest=digest,
        checked_at=now,
        grace=grace,
    )


def kid_of(der: bytes) -> bytes:
    """The kid of a certificate given as DER (same rule as `cardsys.pki.kid`)."""
    return hashlib.sha256(der).digest()[:8]


# --- decoding --------------------------------------------------------------------------------


def _decode_payload(payload: bytes) -> dict[int, Any]:
    try:
        fields = cbor.loads(payload, max_size=MAX_DOCUMENT, max_depth=4)
    except DecodeError as exc:
        raise TrustListError(f"the trust-list payload is not valid CBOR: {exc}") from exc
    if not isinstance(fields, dict) or set(fields) != _KEYS:
        raise TrustListError("the trust-list payload must hold exactly fields 1 to 8")
    if fields[_VERSION] != VERSION or isinstance(fields[_VERSION], bool):
        raise TrustListError(f"unsupported trust-list version {fields[_VERSION]!r}")
    for key in (_SEQUENCE, _ISSUED, _NEXT_UPDATE):
        value = fields[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_UINT:
            raise TrustListError(f"trust-list field {key} must be a non-negative integer")
    if not isinstance(fields[_ISSUER], str):
        raise TrustListError("the trust-list issuer must be text")
    if not isinstance(fields[_ROOT_KID], bytes) or len(fields[_ROOT_KID]) != 8:
        raise TrustListError("the trust-list root kid must be 8 bytes")
    if not isinstance(fields[_CRL], bytes):
        raise TrustListError("the trust-list CRL must be a byte string")
    signers = fields[_SIGNERS]
    if not isinstance(signers, list) or len(signers) > MAX_SIGNERS:
        raise TrustListError(f"the trust-list signers must be a list of at most {MAX_SIGNERS}")
    entries: list[tuple[str, bytes]] = []
    for entry in signers:
        if not (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], bytes)
        ):
            raise TrustListError("each trust-list signer must be [purpose, certificate]")
        entries.append((entry[0], entry[1]))
    fields[_SIGNERS] = entries
    return fields


def _signing_certificate(
    message_kid: bytes | None,
    root: x509.Certificate,
    entries: Sequence[tuple[str, bytes]],
    *,
    now: datetime,
    issued_at: datetime,
) -> x509.Certificate:
    """The certificate whose key must have signed the list, chosen by the kid in its header.

    Revocation is checked by the caller once the signature (and so the CRL) is verified.
    """
    if message_kid == kid(root):
        return root
    for purpose, der in entries:
        if purpose != Purpose.TRUST_LIST.value or kid_of(der) != message_kid:
            continue
        certificate = _load_certificate(der)
        try:
            check_signer(certificate, root=root, purpose=Purpose.TRUST_LIST, now=now, crl=None)
        except VerificationError as exc:
            raise TrustListSignerError(f"the trust-list signer is not trusted: {exc}") from exc
        period = private_key_usage_period(certificate)
        if period is not None and not period[0] <= issued_at <= period[1]:
            raise TrustListSignerError("the trust-list signer's key was not in use at issue time")
        return certificate
    raise TrustListSignerError(
        "the trust list is signed by neither the pinned root nor a listed trust-list signer"
    )


def _signers(
    entries: Sequence[tuple[str, bytes]],
    root: x509.Certificate,
    crl: x509.CertificateRevocationList,
) -> tuple[tuple[TrustedSigner, ...], tuple[TrustedSigner, ...]]:
    trusted: list[TrustedSigner] = []
    revoked: list[TrustedSigner] = []
    seen: set[bytes] = set()
    for purpose_name, der in entries:
        if der in seen:
            raise TrustListError("a certificate is listed twice in the trust list")
        seen.add(der)
        try:
            purpose = Purpose(purpose_name)
        except ValueError:
            raise TrustListError(f"unknown signer purpose {purpose_name[:40]!r}") from None
        certificate = _load_certificate(der)
        if not signed_by(certificate, root):
            raise TrustListError(
                f"listed certificate {kid_of(der).hex()} is not issued by the root"
            )
        if purpose not in purposes_of(certificate):
            raise TrustListError(
                f"listed certificate {kid_of(der).hex()} is not issued for {purpose.value}"
            )
        signer = TrustedSigner(purpose, certificate, kid_of(der))
        if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
            revoked.append(signer)
        else:
            trusted.append(signer)
    return tuple(trusted), tuple(revoked)


def _check_sequence(
    sequence: int,
    previous_sequence: int | None,
    digest: bytes,
    previous_digest: bytes | None,
) -> None:
    if previous_sequence is None or sequence > previous_sequence:
        return
    if sequence < previous_sequence:
        raise RollbackError(
            f"trust list {sequence} is older than the one held ({previous_sequence})"
        )
    if previous_digest is None or previous_digest != digest:
        raise RollbackError(
            f"trust list {sequence} differs from the one held under the same sequence number"
        )


def _load_certificate(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise TrustListError("a listed certificate is not valid DER") from exc


def _load_crl(der: bytes) -> x509.CertificateRevocationList:
    try:
        return x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise CrlError("the trust list's CRL is not valid DER") from exc


def _ec_key(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TrustListSignerError("the trust-list signing key is not an ECDSA key")
    return key


def _time(seconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise TrustListError("a trust-list time is out of range") from exc


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValidationError("trust-list times must be timezone-aware")
    return int(moment.timestamp())
