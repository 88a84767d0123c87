"""Verifying a chip card at a terminal, offline, through any `Transport` (a PC/SC reader).

`verify_chip` returns a `VerifiedCard` (evidence "chip") or raises the `VerificationError`
subclass that names the first failed check. The checks, in order:

1. the terminal's trust list is still fresh (`StaleTrustError`);
2. access: SELECT our application, then BAC with the access key printed on the card; a
   wrong key, a card that is not ours, a bad MAC or a broken session anywhere later is
   `ChipAccessError` (the card ends Secure Messaging at the first wrong MAC, so nothing read
   after it could be trusted anyway);
3. reading: EF.SOD and EF.COM, then every data group the SOD lists, EF.COM lists or our
   layout has, each file in two APDUs (SELECT with its size, one extended READ BINARY);
4. Passive Authentication: EF.SOD decodes (`BadEncodingError`) and carries a signing time;
   its certificate is byte for byte a CHIP_DOCUMENT signer of the trust list, valid now and
   not revoked by the root's CRL (`UnknownKeyError`, `WrongPurposeError`,
   `UntrustedSignerError`), it was signed inside that key's usage period
   (`UntrustedSignerError`), not in the future (`NotYetValidError`), and the signature
   verifies (`BadSignatureError`); every data group read matches its signed hash
   (`DataGroupHashError`); no data group the SOD lists is missing and none is present that it
   does not list (`MissingDataGroupError`); the data groups decode (`BadEncodingError`);
5. Active Authentication: the card signs a fresh random challenge (`secrets`) with the key of
   the signed DG15 (`ChipCloneError`: a copied chip, or a replayed answer, cannot sign a
   challenge it has never seen);
6. the card's expiry date from the signed DG1 (`ExpiredError`);
7. optionally the holder's PIN (`ChipPinError`, `ChipPinBlockedError`);
8. the status list entry at the slot signed in DG11 (`RevokedError`, `SuspendedError`,
   `StatusUnknownError` per the terminal's policy).

`check_chip` is the same for user interfaces: a `Verdict`, never an exception for a bad card.
This module runs on terminals: no database, no keys, no issuance code.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta

from cardsys.chip import aa, apdu, lds
from cardsys.chip.apdu import Transport
from cardsys.chip.bac import AccessKey
from cardsys.chip.sod import ParsedSod, parse_sod
from cardsys.chip.terminal import ChipSession
from cardsys.errors import (
    AccessDeniedError,
    ApduError,
    CardsysError,
    ChipAccessError,
    ChipError,
    ChipPinBlockedError,
    ChipPinError,
    DecodeError,
    ExpiredError,
    NotYetValidError,
    PinBlockedError,
    ReaderError,
    SignatureError,
    VerificationError,
)
from cardsys.pki import Purpose
from verify.result import Evidence, Verdict, VerifiedCard
from verify.trust import SignerKey, TrustStore, bad_encoding, bad_signature

__all__ = ["check_chip", "verify_chip"]


def verify_chip(
    reader: Transport,
    trust: TrustStore,
    *,
    access: AccessKey,
    now: datetime,
    pin: str | None = None,
    extended: bool = True,
) -> VerifiedCard:
    """Verify the card on `reader` offline (checks and their order: module docstring).

    Args:
        reader: the connection to the card (e.g. `cardsys.chip.pcsc.PcscTransport`).
        trust: the terminal's trust store.
        access: the card number, birth date and expiry printed on the card.
        now: the terminal's current time (timezone-aware).
        pin: the holder's PIN, when the counter asks for it.
        extended: read with extended-length APDUs (turn off for readers without them).

    Raises:
        VerificationError: the subclass naming the first failed check.
        ReaderError: no reader, no card, or the PC/SC service is down (not a verdict).
    """
    trust.check_fresh(now)
    session = _open(reader, access, extended)
    sod_bytes = _read(session, lds.FID_SOD, required=True)
    assert sod_bytes is not None
    try:
        sod = parse_sod(sod_bytes)
    except DecodeError as exc:
        raise bad_encoding(exc, "chip's security object") from None
    key = _signer(sod, trust, now)
    dgs = _read_data_groups(session, sod)
    sod.check_data_groups(dgs)
    holder, aa_key_info = _decode(dgs)
    _active_authentication(session, aa_key_info)
    expires = datetime.combine(holder.expiry_date + timedelta(days=1), time(0), UTC)
    if now >= expires:
        raise ExpiredError(f"the card expired on {holder.expiry_date.isoformat()}")
    if pin is not None:
        _verify_pin(session, pin)
    status = trust.status_by_number(
        holder.status_list, holder.status_index, now=int(now.timestamp())
    )
    return VerifiedCard(
        evidence=Evidence.CHIP,
        card_number=holder.card_number,
        document_number=holder.card_number,
        surname=holder.surname,
        given_names=holder.given_names,
        sex=holder.sex,
        birth_date=holder.birth_date,
        region=holder.region,
        schemes=holder.schemes,
        photo_sha256=hashlib.sha256(holder.portrait).digest(),
        expires=expires,
        signer_kid=key.kid,
        status=status,
        checked_at=now,
    )


def check_chip(
    reader: Transport,
    trust: TrustStore,
    *,
    access: AccessKey,
    now: datetime,
    pin: str | None = None,
    extended: bool = True,
) -> Verdict:
    """`verify_chip` for user interfaces: the verdict with a reason code, never an exception
    for a bad card or a reader problem (the latter is reported as a chip-access refusal)."""
    try:
        card = verify_chip(reader, trust, access=access, now=now, pin=pin, extended=extended)
    except VerificationError as exc:
        return Verdict.refused(exc)
    except CardsysError as exc:
        return Verdict.refused(ChipAccessError(f"the card could not be read: {exc}"))
    return Verdict.accepted(card)


def _open(reader: Transport, access: AccessKey, extended: bool) -> ChipSession:
    try:
        return ChipSession.open(reader, access.seed, extended=extended)
    except AccessDeniedError:
        raise ChipAccessError(
            "the card refused the access key: check the card number, birth date and expiry"
        ) from None
    except ApduError as exc:
        raise ChipAccessError(f"this is not a card of ours ({exc})") from None
    except ReaderError:
        raise
    except (ChipError, DecodeError) as exc:
        raise ChipAccessError(f"Secure Messaging with the card failed: {exc}") from None


def _command_error(exc: CardsysError) -> ChipAccessError:
    return ChipAccessError(f"the card stopped answering correctly: {exc}")


def _read(session: ChipSession, fid: int, *, required: bool) -> bytes | None:
    """A whole file; None when it does not exist and is not `required`."""
    try:
        return session.read_file(fid)
    except ApduError as exc:
        if exc.sw == apdu.SW_FILE_NOT_FOUND:
            if required:
                raise bad_encoding(DecodeError(f"file {fid:04X} is missing"), "chip") from None
            return None
        raise _command_error(exc) from None
    except ReaderError:
        raise
    except (ChipError, DecodeError) as exc:
        raise _command_error(exc) from None


def _signer(sod: ParsedSod, trust: TrustStore, now: datetime) -> SignerKey:
    if sod.signing_time is None:
        raise bad_encoding(DecodeError("it carries no signing time"), "chip's security object")
    key = trust.trusted_certificate(sod.certificate, Purpose.CHIP_DOCUMENT, now=now)
    signed_at = int(sod.signing_time.timestamp())
    if signed_at > int(now.timestamp()) + int(trust.policy.clock_skew.total_seconds()):
        raise NotYetValidError(
            f"the chip's security object is dated in the future ({sod.signing_time.isoformat()})"
        )
    trust.check_usage(key, signed_at)
    try:
        sod.verify_signature()
    except SignatureError as exc:
        raise bad_signature(exc, "chip's security object") from None
    return key


def _read_data_groups(session: ChipSession, sod: ParsedSod) -> dict[int, bytes]:
    """Every data group present that the SOD, EF.COM or our layout names."""
    wanted = set(sod.hashes) | set(lds.DATA_GROUPS)
    com = _read(session, lds.FID_COM, required=False)
    if com is not None:
        try:
            wanted |= set(lds.parse_ef_com(com))
        except DecodeError as exc:
            raise bad_encoding(exc, "chip's EF.COM") from None
    dgs: dict[int, bytes] = {}
    for dg in sorted(wanted):
        if dg not in lds.DG_TAGS:
            continue  # outside our layout: no file to read; check_data_groups names it
        content = _read(session, lds.file_id(dg), required=False)
        if content is not None:
            dgs[dg] = content
    return dgs


def _decode(dgs: Mapping[int, bytes]) -> tuple[lds.ChipHolder, bytes]:
    try:
        holder = lds.parse_holder(dgs)
        if 14 not in dgs or 15 not in dgs:
            raise DecodeError("the card has no Active Authentication data (DG14, DG15)")
        algorithm = lds.parse_dg14(dgs[14])
        if algorithm != aa.ECDSA_PLAIN_SHA256:
            raise DecodeError(f"Active Authentication algorithm {algorithm} is not supported")
        return holder, lds.parse_dg15(dgs[15])
    except DecodeError as exc:
        raise bad_encoding(exc, "chip's data") from None


def _active_authentication(session: ChipSession, aa_key_info: bytes) -> None:
    challenge = secrets.token_bytes(aa.CHALLENGE_LENGTH)
    try:
        answer = session.internal_authenticate(challenge)
    except ReaderError:
        raise
    except (ChipError, DecodeError) as exc:
        raise _command_error(exc) from None
    aa.check_aa(aa_key_info, challenge, answer)


def _verify_pin(session: ChipSession, pin: str) -> None:
    if not pin.isascii() or not pin.isdigit():
        raise ChipPinError("a PIN is digits only")
    try:
        session.verify_pin(pin)
    except PinBlockedError:
        raise ChipPinBlockedError(
            "the card's PIN is blocked: the holder must visit an office"
        ) from None
    except ApduError as exc:
        if exc.sw & 0xFFF0 == apdu.SW_RETRIES_LEFT_BASE:
            raise ChipPinError(f"wrong PIN: {exc.sw & 0x0F} tries left") from None
        if exc.sw == apdu.SW_REFERENCED_DATA_NOT_FOUND:
            raise ChipPinError("this card has no PIN") from None
        raise _command_error(exc) from None
    except ReaderError:
        raise
    except (ChipError, DecodeError) as exc:
        raise _command_error(exc) from None
