"""A card emulator: our chip application over a persistent image file.

Unlike the rest of `cardsys.chip` this module does I/O: the image is the card's memory. It is
JSON (binary values in hex), written atomically (temporary file, fsync, rename) after every
change, and the PIN retry counter is decremented and saved *before* the PIN is compared, as a
real card does against tearing.

Lifecycle (`CardState`): ``blank`` (only a serial and the bureau transport key) ->
``personalized`` (after the first personalization write) -> ``locked`` (after LOCK; final).

Access rules:

* Before the lock, GET CHALLENGE + MUTUAL AUTHENTICATE run BAC with the **transport key** as
  K_seed; the resulting Secure Messaging session (CLA ``0C`` / ``8C``) is the only way to use
  the personalization commands, read files or run INTERNAL AUTHENTICATE.
* After the lock, MUTUAL AUTHENTICATE uses the card's BAC seed; READ BINARY, INTERNAL
  AUTHENTICATE, VERIFY and GET DATA need that session (plain: 6982). SELECT works plain.
* Personalization commands (CLA ``80``) after the lock: **6E00** (the whole proprietary class is
  gone; a locked card does not even admit it once had one).
* Any Secure Messaging error: bare 6988 and the session ends. A plain command during a session
  ends it too.

Personalization instruction set (CLA ``80``, always under transport Secure Messaging):

========  ======  ==================================================================
E0        FID     CREATE FILE: data = 2-byte size (<= 32767); selects the new file
D6        offset  UPDATE BINARY into the selected file
DA        0001    PUT DATA BAC seed (16 bytes)
DA        0002    PUT DATA Active Authentication private key (32-byte P-256 scalar)
DA        0003    PUT DATA PIN (4 to 12 ASCII digits); resets the retry counter
44        0000    LOCK: needs BAC seed, AA key, EF.COM and EF.SOD; ends personalization
0E        0000    ERASE: back to blank (files, BAC seed, AA key, PIN gone; the serial and
                  the transport key stay), so a bureau can re-use a card whose
                  personalization was interrupted before it was recorded
========  ======  ==================================================================

GET DATA ``00 CA 01 01`` returns the chip serial (plain before the lock, under BAC after).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.chip import aa, apdu
from cardsys.chip.apdu import CommandApdu
from cardsys.chip.bac import BacCard
from cardsys.chip.lds import AID, FID_COM, FID_SOD
from cardsys.chip.sm import SecureMessaging
from cardsys.errors import AccessDeniedError, ChipError, DecodeError, SecureMessagingError

IMAGE_FORMAT = "cardsys-card-image"
IMAGE_VERSION = 1
PIN_TRIES = 3
MAX_FILE_SIZE = 0x7FFF
#: Plain bytes one protected READ BINARY returns at most with extended length: the protected
#: response (DO'87' + DO'99' + DO'8E' + SW) must stay within vpcd's 65535-byte frame.
MAX_EXTENDED_CHUNK = 0xFF00
ATR_HISTORICAL = b"CARDSYS-01"

INS_CREATE_FILE = 0xE0
INS_PUT_DATA = 0xDA
INS_LOCK = 0x44
INS_ERASE = 0x0E
PUT_BAC_SEED = 0x0001
PUT_AA_KEY = 0x0002
PUT_PIN = 0x0003
GET_DATA_SERIAL = 0x0101


class CardState(enum.StrEnum):
    """Where a chip is in its life."""

    BLANK = "blank"
    PERSONALIZED = "personalized"
    LOCKED = "locked"


class Session(enum.StrEnum):
    """Which key opened the current Secure Messaging session."""

    TRANSPORT = "transport"
    BAC = "bac"


@dataclass(frozen=True)
class Faults:
    """Misbehaviour switches for tests (replace the whole value on `Card.faults`)."""

    wrong_response_mac: bool = False  # flip a bit in every DO'8E' the card sends
    wrong_ssc: bool = False  # skip one SSC step before protecting a response
    truncate_response: bool = False  # cut protected responses in half (keeps the SW)
    swap_files: tuple[int, int] | None = None  # serve each of these two files as the other
    clone_aa_key: bool = False  # answer INTERNAL AUTHENTICATE with a key not matching DG15
    replay_aa: bool = False  # answer INTERNAL AUTHENTICATE with its previous answer, again


def build_atr(historical: bytes) -> bytes:
    """An ATR with up to 15 historical bytes (ISO/IEC 7816-3 §8.2).

    TS=3B; T0 = TD1 follows + the historical byte count; TD1=80 (TD2 follows, T=0 field);
    TD2=01 (T=1): the PC/SC contactless style. TCK = XOR of T0 .. the last historical byte.
    """
    if len(historical) > 15:
        raise ChipError("an ATR holds at most 15 historical bytes")
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + bytes(historical)
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


ATR = build_atr(ATR_HISTORICAL)


@dataclass
class _Image:
    serial: str
    state: CardState
    transport_key: bytes | None
    bac_seed: bytes | None = None
    aa_key: bytes | None = None
    pin_salt: bytes | None = None
    pin_hash: bytes | None = None
    pin_tries: int = PIN_TRIES
    files: dict[int, bytearray] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def hexed(value: bytes | None) -> str | None:
            return None if value is None else value.hex()

        return {
            "format": IMAGE_FORMAT,
            "version": IMAGE_VERSION,
            "serial": self.serial,
            "state": self.state.value,
            "transport_key": hexed(self.transport_key),
            "bac_seed": hexed(self.bac_seed),
            "aa_key": hexed(self.aa_key),
            "pin_salt": hexed(self.pin_salt),
            "pin_hash": hexed(self.pin_hash),
            "pin_tries": self.pin_tries,
            "files": {f"{fid:04X}": bytes(data).hex() for fid, data in sorted(self.files.items())},
        }

    @classmethod
    def from_json(cls, raw: Any) -> _Image:
        def unhex(value: Any) -> bytes | None:
            return None if value is None else bytes.fromhex(str(value))

        try:
            if raw["format"] != IMAGE_FORMAT or raw["version"] != IMAGE_VERSION:
                raise DecodeError("not a cardsys card image of a known version")
            return cls(
                serial=str(raw["serial"]),
                state=CardState(raw["state"]),
                transport_key=unhex(raw["transport_key"]),
                bac_seed=unhex(raw["bac_seed"]),
                aa_key=unhex(raw["aa_key"]),
                pin_salt=unhex(raw["pin_salt"]),
                pin_hash=unhex(raw["pin_hash"]),
                pin_tries=int(raw["pin_tries"]),
                files={int(k, 16): bytearray.fromhex(v) for k, v in raw["files"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DecodeError(f"card image is malformed: {exc}") from None


class _Reply(Exception):
    """Internal: stop processing and answer with this status word."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


def _pin_hash(salt: bytes, pin: bytes) -> bytes:
    return hashlib.sha256(salt + pin).digest()


class Card:
    """An emulated card. `process` takes a command APDU and returns the response APDU."""

    def __init__(self, path: Path, image: _Image) -> None:
        self.path = Path(path)
        self._image = image
        self._lock = threading.RLock()
        self.faults = Faults()
        self.apdu_count = 0
        self._clone_key: ec.EllipticCurvePrivateKey | None = None
        self._last_aa_answer: bytes | None = None
        self.reset()

    # --- creation and persistence --------------------------------------------------------

    @classmethod
    def blank(cls, path: Path, serial: str, transport_key: bytes) -> Card:
        """Create a blank card image at `path` (refuses to overwrite an existing one)."""
        if len(transport_key) != 16:
            raise ChipError("the transport key is a 16-byte BAC seed")
        if Path(path).exists():
            raise ChipError(f"card image {path} already exists")
        card = cls(Path(path), _Image(serial, CardState.BLANK, bytes(transport_key)))
        card._save()
        return card

    @classmethod
    def open(cls, path: Path) -> Card:
        """Load a card image."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ChipError(f"cannot read card image {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise DecodeError(f"card image {path} is not JSON: {exc}") from None
        return cls(Path(path), _Image.from_json(raw))

    def _save(self) -> None:
        data = json.dumps(self._image.to_json(), indent=1).encode("utf-8")
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise ChipError(f"cannot write card image {self.path}: {exc.strerror}") from None

    # --- what a reader and a test see ----------------------------------------------------

    @property
    def atr(self) -> bytes:
        return ATR

    @property
    def serial(self) -> str:
        return self._image.serial

    @property
    def state(self) -> CardState:
        return self._image.state

    @property
    def pin_tries_left(self) -> int:
        return self._image.pin_tries

    @property
    def session(self) -> Session | None:
        """The open Secure Messaging session's kind, if any."""
        return self._session if self._sm is not None else None

    def reset(self) -> None:
        """Power cycle: forget the selected application, challenge and session."""
        with self._lock:
            self._app_selected = False
            self._current: int | None = None
            self._bac: BacCard | None = None
            self._sm: SecureMessaging | None = None
            self._session: Session | None = None
            self._pin_verified = False

    # --- processing ----------------------------------------------------------------------

    def process(self, raw: bytes) -> bytes:
        """Answer one command APDU (never raises for bad input: answers with a status word)."""
        with self._lock:
            self.apdu_count += 1
            if len(raw) < 4:
                return apdu.response(sw=apdu.SW_WRONG_LENGTH)
            if raw[0] & 0x0C == 0x0C:
                return self._process_secured(bytes(raw))
            if self._sm is not None:
                self._end_session()  # a plain command ends Secure Messaging
            try:
                command = CommandApdu.decode(raw)
            except DecodeError:
                return apdu.response(sw=apdu.SW_WRONG_LENGTH)
            return self._answer(command, secured=False)

    def _process_secured(self, raw: bytes) -> bytes:
        if self._sm is None:
            return apdu.response(sw=apdu.SW_SM_DATA_INCORRECT)
        try:
            plain = self._sm.unprotect_command(raw)
            command = CommandApdu.decode(plain)
        except (SecureMessagingError, DecodeError):
            self._end_session()
            return apdu.response(sw=apdu.SW_SM_DATA_INCORRECT)
        sm = self._sm
        answer = self._answer(command, secured=True)
        wrapped = self._protect(sm, answer)
        if self._session is Session.TRANSPORT and self._image.state is CardState.LOCKED:
            self._end_session()  # LOCK is the transport session's last protected answer
        return wrapped

    def _protect(self, sm: SecureMessaging, answer: bytes) -> bytes:
        faults = self.faults
        if faults.wrong_ssc:
            sm.skip()
        wrapped = sm.protect_response(answer)
        if faults.wrong_response_mac:
            wrapped = wrapped[:-3] + bytes([wrapped[-3] ^ 0x01]) + wrapped[-2:]
        if faults.truncate_response:
            body = wrapped[:-2]
            wrapped = body[: len(body) // 2] + wrapped[-2:]
        return wrapped

    def _end_session(self) -> None:
        if self._sm is not None:
            self._sm.close()
        self._sm = None
        self._session = None
        self._pin_verified = False

    def _answer(self, command: CommandApdu, *, secured: bool) -> bytes:
        try:
            return self._dispatch(command, secured)
        except _Reply as reply:
            return apdu.response(sw=reply.sw)

    def _dispatch(self, command: CommandApdu, secured: bool) -> bytes:
        cla = command.cla & ~0x0C & 0xFF
        if cla == 0x80:
            if self._image.state is CardState.LOCKED:
                raise _Reply(apdu.SW_CLA_NOT_SUPPORTED)
            if not secured or self._session is not Session.TRANSPORT:
                raise _Reply(apdu.SW_SECURITY_STATUS_NOT_SATISFIED)
            return self._personalize(command)
        if cla != 0x00:
            raise _Reply(apdu.SW_CLA_NOT_SUPPORTED)
        handlers = {
            apdu.INS_SELECT: self._select,
            apdu.INS_READ_BINARY: self._read_binary,
            apdu.INS_GET_CHALLENGE: self._get_challenge,
            apdu.INS_EXTERNAL_AUTHENTICATE: self._mutual_authenticate,
            apdu.INS_INTERNAL_AUTHENTICATE: self._internal_authenticate,
            apdu.INS_VERIFY: self._verify,
            apdu.INS_GET_DATA: self._get_data,
        }
        handler = handlers.get(command.ins)
        if handler is None:
            raise _Reply(apdu.SW_INS_NOT_SUPPORTED)
        return handler(command, secured)

    def _require_session(self, secured: bool) -> None:
        """Protected data needs the session the card's state calls for."""
        wanted = Session.BAC if self._image.state is CardState.LOCKED else Session.TRANSPORT
        if not secured or self._session is not wanted:
            raise _Reply(apdu.SW_SECURITY_STATUS_NOT_SATISFIED)

    # --- interindustry commands ----------------------------------------------------------

    def _file(self, fid: int) -> bytearray:
        swap = self.faults.swap_files
        if swap is not None and fid in swap:
            fid = swap[1] if fid == swap[0] else swap[0]
        found = self._image.files.get(fid)
        if found is None:
            raise _Reply(apdu.SW_FILE_NOT_FOUND)
        return found

    def _select(self, command: CommandApdu, secured: bool) -> bytes:
        if command.p1 == 0x04:
            if command.data != AID:
                raise _Reply(apdu.SW_FILE_NOT_FOUND)
            self._app_selected = True
            self._current = None
            return apdu.response()
        if command.p1 not in (0x00, 0x02) or len(command.data) != 2:
            raise _Reply(apdu.SW_INCORRECT_P1P2)
        if not self._app_selected:
            raise _Reply(apdu.SW_FILE_NOT_FOUND)
        fid = int.from_bytes(command.data, "big")
        size = len(self._file(fid))
        self._current = fid
        if command.p2 == 0x0C:
            return apdu.response()
        # FCP (ISO 7816-4 §5.3.3): only the file size, so a terminal can read it in one go.
        return apdu.response(bytes([0x62, 0x04, 0x80, 0x02]) + size.to_bytes(2, "big"))

    def _read_binary(self, command: CommandApdu, secured: bool) -> bytes:
        self._require_session(secured)
        if command.p1 & 0x80:
            raise _Reply(apdu.SW_FUNCTION_NOT_SUPPORTED)  # short EF identifiers: not offered
        if self._current is None:
            raise _Reply(apdu.SW_COMMAND_NOT_ALLOWED)
        if command.le is None:
            raise _Reply(apdu.SW_WRONG_LENGTH)
        content = self._file(self._current)
        offset = (command.p1 << 8) | command.p2
        if offset > len(content):
            raise _Reply(apdu.SW_WRONG_P1P2)
        wildcard = command.le == (apdu.MAX_EXTENDED_LE if command.is_extended else 256)
        wanted = min(command.le, MAX_EXTENDED_CHUNK)
        chunk = bytes(content[offset : offset + wanted])
        short_read = len(chunk) < command.le and not wildcard
        return apdu.response(chunk, apdu.SW_END_OF_FILE if short_read else apdu.SW_OK)

    def _seed_for_access(self) -> bytes:
        image = self._image
        seed = image.bac_seed if image.state is CardState.LOCKED else image.transport_key
        if seed is None:
            raise _Reply(apdu.SW_CONDITIONS_NOT_SATISFIED)
        return seed

    def _get_challenge(self, command: CommandApdu, secured: bool) -> bytes:
        if command.le not in (8, None) or command.data:
            raise _Reply(apdu.SW_WRONG_LENGTH)
        self._bac = BacCard(self._seed_for_access())
        return apdu.response(self._bac.challenge())

    def _mutual_authenticate(self, command: CommandApdu, secured: bool) -> bytes:
        bac, self._bac = self._bac, None
        if secured or bac is None:
            raise _Reply(apdu.SW_CONDITIONS_NOT_SATISFIED)
        try:
            answer, session = bac.mutual_authenticate(command.data)
        except AccessDeniedError:
            raise _Reply(apdu.SW_VERIFICATION_FAILED) from None
        self._sm = session
        locked = self._image.state is CardState.LOCKED
        self._session = Session.BAC if locked else Session.TRANSPORT
        return apdu.response(answer)

    def _internal_authenticate(self, command: CommandApdu, secured: bool) -> bytes:
        self._require_session(secured)
        if len(command.data) != aa.CHALLENGE_LENGTH:
            raise _Reply(apdu.SW_WRONG_LENGTH)
        key = self._aa_key()
        if self.faults.replay_aa and self._last_aa_answer is not None:
            # A recording of an earlier session: a valid signature, but over a challenge
            # another terminal chose.
            return apdu.response(self._last_aa_answer)
        self._last_aa_answer = aa.sign_challenge(key, command.data)
        return apdu.response(self._last_aa_answer)

    def _aa_key(self) -> ec.EllipticCurvePrivateKey:
        if self.faults.clone_aa_key:
            if self._clone_key is None:
                self._clone_key = ec.generate_private_key(ec.SECP256R1())
            return self._clone_key
        if self._image.aa_key is None:
            raise _Reply(apdu.SW_REFERENCED_DATA_NOT_FOUND)
        return ec.derive_private_key(int.from_bytes(self._image.aa_key, "big"), ec.SECP256R1())

    def _verify(self, command: CommandApdu, secured: bool) -> bytes:
        self._require_session(secured)
        image = self._image
        if command.p1 != 0x00 or command.p2 != 0x81:
            raise _Reply(apdu.SW_INCORRECT_P1P2)
        if image.pin_hash is None or image.pin_salt is None:
            raise _Reply(apdu.SW_REFERENCED_DATA_NOT_FOUND)
        if image.pin_tries <= 0:
            raise _Reply(apdu.SW_AUTH_METHOD_BLOCKED)
        if not command.data:  # ISO 7816-4: VERIFY without data asks for the status
            if self._pin_verified:
                return apdu.response()
            raise _Reply(apdu.retries_left_sw(image.pin_tries))
        image.pin_tries -= 1
        self._save()  # count the try before comparing: pulling the card cannot save a guess
        if hmac.compare_digest(_pin_hash(image.pin_salt, command.data), image.pin_hash):
            image.pin_tries = PIN_TRIES
            self._save()
            self._pin_verified = True
            return apdu.response()
        self._pin_verified = False
        raise _Reply(apdu.retries_left_sw(image.pin_tries))

    def _get_data(self, command: CommandApdu, secured: bool) -> bytes:
        if (command.p1 << 8 | command.p2) != GET_DATA_SERIAL:
            raise _Reply(apdu.SW_REFERENCED_DATA_NOT_FOUND)
        if self._image.state is CardState.LOCKED:
            self._require_session(secured)
        return apdu.response(self._image.serial.encode("utf-8"))

    # --- personalization -----------------------------------------------------------------

    def _personalize(self, command: CommandApdu) -> bytes:
        handlers = {
            INS_CREATE_FILE: self._create_file,
            apdu.INS_UPDATE_BINARY: self._update_binary,
            INS_PUT_DATA: self._put_data,
            INS_LOCK: self._lock_card,
            INS_ERASE: self._erase,
        }
        handler = handlers.get(command.ins)
        if handler is None:
            raise _Reply(apdu.SW_INS_NOT_SUPPORTED)
        result = handler(command)
        if self._image.state is CardState.BLANK and command.ins != INS_ERASE:
            self._image.state = CardState.PERSONALIZED
        self._save()
        return result

    def _create_file(self, command: CommandApdu) -> bytes:
        fid = (command.p1 << 8) | command.p2
        if len(command.data) != 2:
            raise _Reply(apdu.SW_WRONG_LENGTH)
        size = int.from_bytes(command.data, "big")
        if fid in (0x0000, 0x3F00, 0xFFFF) or not 0 < size <= MAX_FILE_SIZE:
            raise _Reply(apdu.SW_WRONG_DATA)
        if fid in self._image.files:
            raise _Reply(apdu.SW_FILE_EXISTS)
        self._image.files[fid] = bytearray(size)
        self._app_selected = True
        self._current = fid
        return apdu.response()

    def _update_binary(self, command: CommandApdu) -> bytes:
        if self._current is None or self._current not in self._image.files:
            raise _Reply(apdu.SW_COMMAND_NOT_ALLOWED)
        if command.p1 & 0x80:
            raise _Reply(apdu.SW_FUNCTION_NOT_SUPPORTED)
        content = self._image.files[self._current]
        offset = (command.p1 << 8) | command.p2
        if not command.data or offset + len(command.data) > len(content):
            raise _Reply(apdu.SW_WRONG_P1P2)
        content[offset : offset + len(command.data)] = command.data
        return apdu.response()

    def _put_data(self, command: CommandApdu) -> bytes:
        tag = (command.p1 << 8) | command.p2
        data = command.data
        image = self._image
        if tag == PUT_BAC_SEED:
            if len(data) != 16:
                raise _Reply(apdu.SW_WRONG_LENGTH)
            image.bac_seed = data
        elif tag == PUT_AA_KEY:
            if len(data) != 32:
                raise _Reply(apdu.SW_WRONG_LENGTH)
            try:
                ec.derive_private_key(int.from_bytes(data, "big"), ec.SECP256R1())
            except ValueError:
                raise _Reply(apdu.SW_WRONG_DATA) from None
            image.aa_key = data
        elif tag == PUT_PIN:
            if not 4 <= len(data) <= 12 or not data.isdigit():
                raise _Reply(apdu.SW_WRONG_DATA)
            image.pin_salt = secrets.token_bytes(16)
            image.pin_hash = _pin_hash(image.pin_salt, data)
            image.pin_tries = PIN_TRIES
        else:
            raise _Reply(apdu.SW_REFERENCED_DATA_NOT_FOUND)
        return apdu.response()

    def _lock_card(self, command: CommandApdu) -> bytes:
        image = self._image
        if command.p1 or command.p2 or command.data:
            raise _Reply(apdu.SW_INCORRECT_P1P2)
        complete = image.bac_seed and image.aa_key and {FID_COM, FID_SOD} <= image.files.keys()
        if not complete:
            raise _Reply(apdu.SW_CONDITIONS_NOT_SATISFIED)
        image.state = CardState.LOCKED
        image.transport_key = None  # the bureau key has no more use on this card
        self._bac = None
        return apdu.response()

    def _erase(self, command: CommandApdu) -> bytes:
        if command.p1 or command.p2 or command.data:
            raise _Reply(apdu.SW_INCORRECT_P1P2)
        image = self._image
        image.state = CardState.BLANK
        image.files.clear()
        image.bac_seed = image.aa_key = image.pin_salt = image.pin_hash = None
        image.pin_tries = PIN_TRIES
        self._current = None
        return apdu.response()
