"""Basic Access Control (ICAO Doc 9303 Part 11 §4.3 and Appendix D), both sides.

Access key: the terminal knows the card number, birth date and expiry printed on the card.
MRZ_information is ``number + check digit + birth YYMMDD + check digit + expiry YYMMDD + check
digit`` (check digits: `check_digit`, Doc 9303 Part 3 §4.9). A number shorter than 9 characters
is padded with ``<`` to 9, as in the MRZ document-number field. Our card numbers have 14
characters: they enter MRZ_information **whole**, followed by the check digit over all 14
(Doc 9303 Part 3 treats a long document number the same way: the full number and its own check
digit, the overflow carried in the optional data field). K_seed = SHA-1(MRZ_information)[:16].

Mutual authentication (§4.3.4, 3DES): GET CHALLENGE gives RND.IC; the terminal sends
E_IFD || M_IFD with E_IFD = 3DES(K_enc, RND.IFD || RND.IC || K.IFD) and M_IFD the retail MAC;
the card checks the MAC and that RND.IC is the challenge it issued (each challenge is used
once), answers E_IC || M_IC over RND.IC || RND.IFD || K.IC; both derive KSenc/KSmac from
K.IFD xor K.IC and start SSC at RND.IC[4:8] || RND.IFD[4:8]. Any mismatch is
`AccessDeniedError`; the card answers it with 6300.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date

from cryptography.hazmat.primitives.ciphers import Cipher, modes

from cardsys.chip.apdu import (
    INS_EXTERNAL_AUTHENTICATE,
    INS_GET_CHALLENGE,
    SW_OK,
    CommandApdu,
    ResponseApdu,
    Transport,
)
from cardsys.chip.sm import KDF_ENC, KDF_MAC, SecureMessaging, derive_key, pad, retail_mac, tdes
from cardsys.errors import AccessDeniedError, DecodeError, ValidationError

_MRZ_CHARS = re.compile(r"[0-9A-Z<]+")
_YYMMDD = re.compile(r"[0-9]{6}")
_WEIGHTS = (7, 3, 1)


def _char_value(char: str) -> int:
    if char.isdigit():
        return int(char)
    if "A" <= char <= "Z":
        return ord(char) - ord("A") + 10
    if char == "<":
        return 0
    raise ValidationError(f"{char!r} is not an MRZ character (0-9, A-Z, <)")


def check_digit(text: str) -> str:
    """The Doc 9303 Part 3 §4.9 check digit (weights 7, 3, 1; A=10 .. Z=35; < = 0)."""
    total = sum(_char_value(c) * _WEIGHTS[i % 3] for i, c in enumerate(text))
    return str(total % 10)


def mrz_information(document_number: str, birth_date: str, expiry_date: str) -> str:
    """The MRZ_information string the access key is hashed from (rules: module doc)."""
    if not document_number or not _MRZ_CHARS.fullmatch(document_number):
        raise ValidationError("document number must be MRZ characters 0-9, A-Z, <")
    for name, value in (("birth date", birth_date), ("expiry date", expiry_date)):
        if not _YYMMDD.fullmatch(value):
            raise ValidationError(f"{name} must be YYMMDD, got {value!r}")
    number = document_number.ljust(9, "<")
    return (
        number
        + check_digit(number)
        + birth_date
        + check_digit(birth_date)
        + expiry_date
        + check_digit(expiry_date)
    )


def key_seed(document_number: str, birth_date: str, expiry_date: str) -> bytes:
    """K_seed: the first 16 bytes of SHA-1 over MRZ_information."""
    info = mrz_information(document_number, birth_date, expiry_date)
    # Doc 9303 Part 11 §9.7.2 prescribes SHA-1 here; it is a KDF, not a collision use.
    return hashlib.sha1(info.encode("ascii")).digest()[:16]  # noqa: S324


def yymmdd(day: date) -> str:
    """A date as the MRZ writes it."""
    return day.strftime("%y%m%d")


@dataclass(frozen=True)
class AccessKey:
    """What a terminal needs to open a card: the data printed on it."""

    card_number: str
    birth_date: date
    expiry_date: date

    def __post_init__(self) -> None:
        if not self.card_number or not _MRZ_CHARS.fullmatch(self.card_number):
            raise ValidationError("card number must be MRZ characters 0-9, A-Z, <")

    @property
    def seed(self) -> bytes:
        """K_seed for BAC."""
        return key_seed(self.card_number, yymmdd(self.birth_date), yymmdd(self.expiry_date))


def _tdes(key: bytes, data: bytes, *, encrypt: bool) -> bytes:
    context = Cipher(tdes(key), modes.CBC(b"\x00" * 8))
    worker = context.encryptor() if encrypt else context.decryptor()
    return worker.update(data) + worker.finalize()


def _mac(key: bytes, data: bytes) -> bytes:
    return retail_mac(key, pad(data, 8))


def _session(k_ifd: bytes, k_ic: bytes, rnd_ic: bytes, rnd_ifd: bytes) -> SecureMessaging:
    seed = bytes(a ^ b for a, b in zip(k_ifd, k_ic, strict=True))
    return SecureMessaging(
        derive_key(seed, KDF_ENC, "3des"),
        derive_key(seed, KDF_MAC, "3des"),
        rnd_ic[4:] + rnd_ifd[4:],
    )


def _check_random(name: str, value: bytes, size: int) -> bytes:
    if len(value) != size:
        raise ValidationError(f"{name} must be {size} bytes")
    return bytes(value)


class BacTerminal:
    """The terminal side of BAC. Randoms default to `secrets`; tests pass the worked example's."""

    def __init__(
        self, seed: bytes, *, rnd_ifd: bytes | None = None, k_ifd: bytes | None = None
    ) -> None:
        self._k_enc = derive_key(seed, KDF_ENC, "3des")
        self._k_mac = derive_key(seed, KDF_MAC, "3des")
        self._rnd_ifd = _check_random("RND.IFD", rnd_ifd or secrets.token_bytes(8), 8)
        self._k_ifd = _check_random("K.IFD", k_ifd or secrets.token_bytes(16), 16)
        self._rnd_ic: bytes | None = None

    def command_data(self, rnd_ic: bytes) -> bytes:
        """E_IFD || M_IFD for the card's challenge RND.IC."""
        self._rnd_ic = _check_random("RND.IC", rnd_ic, 8)
        e_ifd = _tdes(self._k_enc, self._rnd_ifd + self._rnd_ic + self._k_ifd, encrypt=True)
        return e_ifd + _mac(self._k_mac, e_ifd)

    def finish(self, response_data: bytes) -> SecureMessaging:
        """Check the card's E_IC || M_IC and open Secure Messaging."""
        if self._rnd_ic is None:
            raise AccessDeniedError("mutual authentication was not started")
        if len(response_data) != 40:
            raise AccessDeniedError("the card's authentication response has the wrong length")
        e_ic, m_ic = response_data[:32], response_data[32:]
        if not hmac.compare_digest(_mac(self._k_mac, e_ic), m_ic):
            raise AccessDeniedError("the card's authentication MAC does not verify")
        plain = _tdes(self._k_enc, e_ic, encrypt=False)
        if not hmac.compare_digest(plain[:8], self._rnd_ic) or not hmac.compare_digest(
            plain[8:16], self._rnd_ifd
        ):
            raise AccessDeniedError("the card did not echo the session randoms")
        return _session(self._k_ifd, plain[16:], self._rnd_ic, self._rnd_ifd)

    def authenticate(self, transport: Transport) -> SecureMessaging:
        """Run GET CHALLENGE and MUTUAL AUTHENTICATE over `transport`."""
        try:
            challenge = ResponseApdu.decode(
                transport.transmit(CommandApdu(0x00, INS_GET_CHALLENGE, 0, 0, le=8).encode())
            )
            if challenge.sw != SW_OK or len(challenge.data) != 8:
                raise AccessDeniedError(f"GET CHALLENGE failed: SW {challenge.sw:04X}")
            command = CommandApdu(
                0x00, INS_EXTERNAL_AUTHENTICATE, 0, 0, self.command_data(challenge.data), le=40
            )
            answer = ResponseApdu.decode(transport.transmit(command.encode()))
        except DecodeError as exc:
            raise AccessDeniedError(
                f"malformed answer during mutual authentication: {exc}"
            ) from None
        if answer.sw != SW_OK:
            raise AccessDeniedError(
                f"the card refused mutual authentication (SW {answer.sw:04X}): wrong access key"
            )
        return self.finish(answer.data)


class BacCard:
    """The card side of BAC: issues challenges and answers MUTUAL AUTHENTICATE."""

    def __init__(self, seed: bytes) -> None:
        self._k_enc = derive_key(seed, KDF_ENC, "3des")
        self._k_mac = derive_key(seed, KDF_MAC, "3des")
        self._rnd_ic: bytes | None = None

    def challenge(self, rnd_ic: bytes | None = None) -> bytes:
        """A fresh RND.IC (remembered for exactly one MUTUAL AUTHENTICATE)."""
        self._rnd_ic = _check_random("RND.IC", rnd_ic or secrets.token_bytes(8), 8)
        return self._rnd_ic

    def mutual_authenticate(
        self, data: bytes, *, k_ic: bytes | None = None
    ) -> tuple[bytes, SecureMessaging]:
        """Check E_IFD || M_IFD; return E_IC || M_IC and the card's SM session."""
        rnd_ic, self._rnd_ic = self._rnd_ic, None  # a challenge is good for one try only
        if rnd_ic is None:
            raise AccessDeniedError("no challenge was issued")
        if len(data) != 40:
            raise AccessDeniedError("authentication data has the wrong length")
        e_ifd, m_ifd = data[:32], data[32:]
        if not hmac.compare_digest(_mac(self._k_mac, e_ifd), m_ifd):
            raise AccessDeniedError("terminal authentication MAC does not verify")
        plain = _tdes(self._k_enc, e_ifd, encrypt=False)
        rnd_ifd, echoed, k_ifd = plain[:8], plain[8:16], plain[16:]
        if not hmac.compare_digest(echoed, rnd_ic):
            raise AccessDeniedError("the terminal did not echo the challenge")
        k_ic = _check_random("K.IC", k_ic or secrets.token_bytes(16), 16)
        e_ic = _tdes(self._k_enc, rnd_ic + rnd_ifd + k_ic, encrypt=True)
        return e_ic + _mac(self._k_mac, e_ic), _session(k_ifd, k_ic, rnd_ic, rnd_ifd)
