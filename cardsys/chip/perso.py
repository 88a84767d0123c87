"""Personalization: what a bureau machine writes onto a blank card, and how.

`prepare` turns holder data, a fresh AA key and the chip-document signer into the complete
set of files (EF.COM, the DGs, EF.SOD) plus the secrets; `write_card` writes them through
APDUs (our proprietary CLA 80 set, see `emulator`) under Secure Messaging keyed by the bureau's
transport key, checks with INTERNAL AUTHENTICATE that the card's AA key matches DG15, and
locks the card. A crash-safe bureau batch (`issuance.personalize`) uses the steps one by one:
`open_bureau_session`, `erase`, `write_files`, record, `lock`, and on resume `check_written`.
The AA private key exists only in the `Personalization` value in memory and, afterwards, on
the card.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.chip import aa, apdu, lds
from cardsys.chip.apdu import CommandApdu, ResponseApdu, Transport
from cardsys.chip.bac import AccessKey
from cardsys.chip.emulator import (
    GET_DATA_SERIAL,
    INS_CREATE_FILE,
    INS_ERASE,
    INS_LOCK,
    INS_PUT_DATA,
    PUT_AA_KEY,
    PUT_BAC_SEED,
    PUT_PIN,
)
from cardsys.chip.sod import build_sod
from cardsys.chip.terminal import SHORT_CHUNK, ChipSession
from cardsys.errors import ChipError
from cardsys.pki import Signer

#: Bytes of file data per UPDATE BINARY with extended length (well inside a vpcd frame).
WRITE_CHUNK = 0x7000


@dataclass(frozen=True)
class Personalization:
    """Everything one card receives. Keep it in memory only: it holds the AA private key."""

    files: Mapping[int, bytes]
    bac_seed: bytes
    aa_private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    pin: str | None = field(default=None, repr=False)

    @property
    def sod(self) -> bytes:
        return self.files[lds.FID_SOD]

    @property
    def aa_public_key_info(self) -> bytes:
        return aa.public_key_info(self.aa_private_key.public_key())


def prepare(
    holder: lds.ChipHolder,
    signer: Signer,
    *,
    pin: str | None = None,
    aa_private_key: ec.EllipticCurvePrivateKey | None = None,
    signing_time: datetime | None = None,
) -> Personalization:
    """Build every file and secret for one card (a new AA key unless one is given)."""
    key = aa_private_key or ec.generate_private_key(ec.SECP256R1())
    dgs = lds.build_data_groups(holder, key.public_key())
    files = {lds.FID_COM: lds.build_ef_com(tuple(dgs))}
    files.update({lds.file_id(dg): content for dg, content in dgs.items()})
    files[lds.FID_SOD] = build_sod(dgs, signer, signing_time=signing_time)
    seed = AccessKey(holder.card_number, holder.birth_date, holder.expiry_date).seed
    return Personalization(files=files, bac_seed=seed, aa_private_key=key, pin=pin)


def read_serial(transport: Transport) -> str:
    """The chip serial of a card that is not locked yet (plain GET DATA)."""
    raw = transport.transmit(
        CommandApdu(0x00, apdu.INS_GET_DATA, GET_DATA_SERIAL >> 8, 0x01, le=256).encode()
    )
    return ResponseApdu.decode(raw).check("GET DATA serial").decode("utf-8", "replace")


def _put(session: ChipSession, command: CommandApdu, what: str) -> None:
    session.command(command).check(what)


def open_bureau_session(
    transport: Transport, transport_key: bytes, *, extended: bool = True
) -> ChipSession:
    """Secure Messaging with a card that is not locked yet, keyed by the bureau's transport key.

    Raises:
        AccessDeniedError: the transport key does not open the card (or it is locked).
    """
    return ChipSession.open(transport, transport_key, extended=extended)


def erase(session: ChipSession) -> None:
    """Return an unlocked card to blank (a bureau re-uses an interrupted card this way)."""
    _put(session, CommandApdu(0x80, INS_ERASE, 0, 0), "ERASE")


def write_files(session: ChipSession, perso: Personalization) -> None:
    """Write every file and secret of `perso` onto a blank card, then prove with INTERNAL
    AUTHENTICATE that the card's AA key matches DG15. The card is NOT locked.

    Raises:
        ApduError: the card refused a command (e.g. 6A89: it is not blank).
        ChipCloneError: the card's AA answer does not match DG15 (written wrong).
    """
    chunk = WRITE_CHUNK if session.extended else SHORT_CHUNK
    for fid, content in perso.files.items():
        _put(
            session,
            CommandApdu(
                0x80, INS_CREATE_FILE, fid >> 8, fid & 0xFF, len(content).to_bytes(2, "big")
            ),
            f"CREATE FILE {fid:04X}",
        )
        for offset in range(0, len(content), chunk):
            piece = content[offset : offset + chunk]
            _put(
                session,
                CommandApdu(0x80, apdu.INS_UPDATE_BINARY, offset >> 8, offset & 0xFF, piece),
                f"UPDATE BINARY {fid:04X}",
            )
    scalar = perso.aa_private_key.private_numbers().private_value.to_bytes(32, "big")
    _put(session, CommandApdu(0x80, INS_PUT_DATA, 0, PUT_BAC_SEED, perso.bac_seed), "PUT seed")
    _put(session, CommandApdu(0x80, INS_PUT_DATA, 0, PUT_AA_KEY, scalar), "PUT AA key")
    if perso.pin is not None:
        pin = perso.pin.encode("ascii")
        _put(session, CommandApdu(0x80, INS_PUT_DATA, 0, PUT_PIN, pin), "PUT PIN")
    check_aa_key(session, perso.aa_public_key_info)


def check_aa_key(session: ChipSession, aa_public_key_info: bytes) -> None:
    """Raise `ChipCloneError` unless the card signs a fresh challenge with this AA key."""
    challenge = secrets.token_bytes(aa.CHALLENGE_LENGTH)
    aa.check_aa(aa_public_key_info, challenge, session.internal_authenticate(challenge))


def check_written(session: ChipSession, *, sod_sha256: bytes, aa_public_key_info: bytes) -> None:
    """Check that an unlocked card holds what a bureau recorded for it (EF.SOD and AA key).

    Raises:
        ChipError: EF.SOD differs from the recorded hash.
        ChipCloneError: the card's AA key is not the recorded one.
        ApduError: the card lacks a file or refused a command.
    """
    sod = session.read_file(lds.FID_SOD)
    if not hmac.compare_digest(hashlib.sha256(sod).digest(), sod_sha256):
        raise ChipError("the card in the reader does not hold the recorded security object")
    check_aa_key(session, aa_public_key_info)


def lock(session: ChipSession) -> None:
    """LOCK: end personalization for good (the card then opens only with its access key)."""
    _put(session, CommandApdu(0x80, INS_LOCK, 0, 0), "LOCK")


def write_card(
    transport: Transport,
    transport_key: bytes,
    perso: Personalization,
    *,
    extended: bool = True,
) -> str:
    """Personalize and lock the blank card on `transport`; return its chip serial.

    Raises:
        AccessDeniedError: the transport key does not open the card.
        ApduError: the card refused a command (e.g. 6E00: it is already locked).
        ChipCloneError: the card's AA answer does not match DG15 (written wrong).
    """
    serial = read_serial(transport)
    session = open_bureau_session(transport, transport_key, extended=extended)
    write_files(session, perso)
    lock(session)
    return serial
