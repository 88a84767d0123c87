"""Secure Messaging as in ICAO Doc 9303 Part 11 §9.8 (3DES and AES), both sides of the reader.

Rules this module enforces:

1. every message increments the Send Sequence Counter (SSC) first; MACs cover SSC || message,
   so a replayed, reordered or dropped message fails its MAC;
2. a command is protected as ``CLA|0C INS P1 P2 Lc' [DO'87'|DO'85'] [DO'97'] DO'8E' Le'``;
   DO'87' carries the padding indicator ``01``, DO'85' (odd INS) does not; DO'97' has 1 byte
   for a short Ne and 2 for an extended one; long bodies use extended length;
3. a response is ``[DO'87'|DO'85'] DO'99' DO'8E' SW``; DO'99' and DO'8E' are mandatory, DO'99'
   must equal the trailer, and the MAC is checked before anything is decrypted;
4. a failure (bad MAC, missing object, bad padding) raises `SecureMessagingError` and closes the
   session for good: a closed session refuses every further message;
5. a bare status word from the card inside a session means the card ended Secure Messaging
   (6987/6988 or anything else): `SecureMessagingAbortedError` carrying the SW, session closed.

Ciphers: ``3des`` (two-key 3DES-CBC, IV 0, ISO 9797-1 MAC algorithm 3 "retail MAC", 8-byte SSC)
and ``aes`` (AES-CBC with IV = E(KSenc, SSC), AES-CMAC cut to 8 bytes, 16-byte SSC). Both pad
with ISO 9797-1 method 2.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from cardsys.chip.apdu import MAX_SHORT_LC, CommandApdu
from cardsys.errors import (
    ChipError,
    DecodeError,
    SecureMessagingAbortedError,
    SecureMessagingError,
)
from cardsys.formats import tlv

#: Key derivation counters, Doc 9303 Part 11 §9.7.1.
KDF_ENC = 1
KDF_MAC = 2
KDF_PACE = 3

MAC_LENGTH = 8


class Cipher(enum.StrEnum):
    """The block cipher a Secure Messaging session uses."""

    TDES = "3des"
    AES = "aes"

    @property
    def block_size(self) -> int:
        return 8 if self is Cipher.TDES else 16


def _cipher(value: str | Cipher) -> Cipher:
    try:
        return Cipher(value)
    except ValueError:
        raise ChipError(f"unknown Secure Messaging cipher {value!r}") from None


def adjust_parity(key: bytes) -> bytes:
    """Set each byte's lowest bit so it has odd parity (DES keys, FIPS 46-3)."""
    out = bytearray()
    for byte in key:
        high = byte & 0xFE
        out.append(high | (bin(high).count("1") + 1) % 2)
    return bytes(out)


def derive_key(seed: bytes, counter: int, cipher: str) -> bytes:
    """Doc 9303 Part 11 §9.7.1: KDF(K, c) = H(K || c) cut to the key size.

    3DES: SHA-1, 16 bytes (Ka || Kb), parity bits adjusted. AES-128: SHA-1, 16 bytes.
    """
    kind = _cipher(cipher)
    # SHA-1 is what Doc 9303 §9.7.1 prescribes for these keys (not a collision use).
    digest = hashlib.sha1(bytes(seed) + counter.to_bytes(4, "big")).digest()  # noqa: S324
    key = digest[:16]
    return adjust_parity(key) if kind is Cipher.TDES else key


def pad(data: bytes, block: int) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80 then zeros to a whole block (always added)."""
    data = bytes(data) + b"\x80"
    return data + b"\x00" * (-len(data) % block)


def unpad(data: bytes, block: int = 16) -> bytes:
    """Remove method 2 padding; SecureMessagingError when it is malformed."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= block:
        raise SecureMessagingError("bad padding in a Secure Messaging cryptogram")
    return stripped[:-1]


def tdes(key: bytes) -> TripleDES:
    """3DES with an 8-byte (single DES) or 16-byte (two-key) key, expanded to 24 bytes."""
    key = bytes(key)
    if len(key) == 8:
        return TripleDES(key * 3)
    if len(key) == 16:
        return TripleDES(key + key[:8])
    raise ChipError("3DES keys here are 8 or 16 bytes")


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with DES over already padded `data` (8-byte blocks).

    Single-DES CBC with Ka over every block, then decrypt with Kb and encrypt with Ka on the
    last: the same as single-DES CBC over all blocks but the last, then 3DES on the last.
    """
    if len(key) != 16 or not data or len(data) % 8:
        raise ChipError("retail MAC needs a 16-byte key and whole 8-byte blocks")
    ka = key[:8]
    head, last = data[:-8], data[-8:]
    chain = b"\x00" * 8
    if head:
        encryptor = _Cipher(tdes(ka), modes.CBC(chain)).encryptor()
        chain = (encryptor.update(head) + encryptor.finalize())[-8:]
    final = _Cipher(tdes(key), modes.ECB()).encryptor()  # noqa: S305 - one block, by design
    return final.update(bytes(a ^ b for a, b in zip(chain, last, strict=True))) + final.finalize()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B), full 16 bytes."""
    mac = CMAC(algorithms.AES(bytes(key)))
    mac.update(bytes(data))
    return mac.finalize()


class SecureMessaging:
    """One Secure Messaging session (rules: module docstring).

    The same class serves both ends: the terminal calls `protect` / `unprotect`, the card
    `unprotect_command` / `protect_response`. Each call advances the SSC once.
    """

    def __init__(self, ks_enc: bytes, ks_mac: bytes, ssc: bytes, cipher: str = "3des") -> None:
        self.cipher = _cipher(cipher)
        size = 8 if self.cipher is Cipher.TDES else 16
        if self.cipher is Cipher.TDES and (len(ks_enc) != 16 or len(ks_mac) != 16):
            raise ChipError("3DES Secure Messaging needs 16-byte KSenc and KSmac")
        if self.cipher is Cipher.AES and (
            len(ks_enc) not in (16, 24, 32) or len(ks_mac) not in (16, 24, 32)
        ):
            raise ChipError("AES Secure Messaging needs 16, 24 or 32-byte KSenc and KSmac")
        if len(ssc) != size:
            raise ChipError(f"{self.cipher.value} Secure Messaging needs a {size}-byte SSC")
        self._ks_enc = bytes(ks_enc)
        self._ks_mac = bytes(ks_mac)
        self._ssc = int.from_bytes(ssc, "big")
        self._ssc_size = size
        self._closed = False
        self._odd_ins = False

    # --- state ---------------------------------------------------------------------------

    @property
    def ssc(self) -> bytes:
        """The current send sequence counter."""
        return self._ssc.to_bytes(self._ssc_size, "big")

    @property
    def closed(self) -> bool:
        """Whether the session ended (after any failure); it then refuses every message."""
        return self._closed

    def close(self) -> None:
        """End the session (the card does this on any SM error)."""
        self._closed = True

    def skip(self, count: int = 1) -> None:
        """Advance the SSC without a message (test fault injection: a desynchronised card)."""
        self._ssc = (self._ssc + count) % (1 << (8 * self._ssc_size))

    def _next(self) -> bytes:
        if self._closed:
            raise SecureMessagingError("the Secure Messaging session has ended")
        self.skip()
        return self.ssc

    def _fail(self, message: str) -> SecureMessagingError:
        self._closed = True
        return SecureMessagingError(message)

    # --- primitives ----------------------------------------------------------------------

    @property
    def _block(self) -> int:
        return self.cipher.block_size

    def _mac(self, ssc: bytes, message: bytes) -> bytes:
        data = pad(ssc + message, self._block)
        if self.cipher is Cipher.TDES:
            return retail_mac(self._ks_mac, data)
        return aes_cmac(self._ks_mac, data)[:MAC_LENGTH]

    def _crypt(self, ssc: bytes, data: bytes, *, encrypt: bool) -> bytes:
        if self.cipher is Cipher.TDES:
            algorithm: TripleDES | algorithms.AES = tdes(self._ks_enc)
            iv = b"\x00" * 8
        else:
            algorithm = algorithms.AES(self._ks_enc)
            ecb = _Cipher(algorithm, modes.ECB()).encryptor()  # noqa: S305 - IV derivation
            iv = ecb.update(ssc) + ecb.finalize()
        context = _Cipher(algorithm, modes.CBC(iv))
        worker = context.encryptor() if encrypt else context.decryptor()
        return worker.update(data) + worker.finalize()

    def _data_object(self, ssc: bytes, data: bytes, odd: bool) -> bytes:
        cryptogram = self._crypt(ssc, pad(data, self._block), encrypt=True)
        if odd:
            return tlv.encode(0x85, cryptogram)
        return tlv.encode(0x87, b"\x01" + cryptogram)

    def _open_data_object(self, ssc: bytes, item: tlv.Tlv) -> bytes:
        cryptogram = item.value
        if item.tag == 0x87:
            if not cryptogram or cryptogram[0] != 0x01:
                raise self._fail("DO'87' without padding indicator 01")
            cryptogram = cryptogram[1:]
        if not cryptogram or len(cryptogram) % self._block:
            raise self._fail("cryptogram is not a whole number of blocks")
        try:
            return unpad(self._crypt(ssc, cryptogram, encrypt=False), self._block)
        except SecureMessagingError:
            self._closed = True
            raise

    def _objects(self, body: bytes, what: str) -> list[tlv.Tlv]:
        try:
            return tlv.decode_all(body)
        except DecodeError as exc:
            raise self._fail(f"malformed Secure Messaging {what}: {exc}") from None

    # --- terminal side -------------------------------------------------------------------

    def protect(self, command: bytes) -> bytes:
        """Wrap a plain command APDU (terminal side)."""
        try:
            plain = CommandApdu.decode(command)
        except DecodeError as exc:
            raise SecureMessagingError(f"cannot protect a malformed APDU: {exc}") from None
        if plain.cla & 0x0C:
            raise SecureMessagingError("the command is already marked as Secure Messaging")
        ssc = self._next()
        header = bytes([plain.cla | 0x0C, plain.ins, plain.p1, plain.p2])
        self._odd_ins = bool(plain.ins & 1)
        body = b""
        if plain.data:
            body += self._data_object(ssc, plain.data, self._odd_ins)
        if plain.le is not None:
            size = 2 if plain.is_extended else 1
            body += tlv.encode(0x97, (plain.le % (1 << (8 * size))).to_bytes(size, "big"))
        mac = self._mac(ssc, pad(header, self._block) + body)
        body += tlv.encode(0x8E, mac)
        extended = plain.is_extended or len(body) > MAX_SHORT_LC
        wrapped = CommandApdu(
            header[0],
            plain.ins,
            plain.p1,
            plain.p2,
            body,
            le=65536 if extended else 256,
            extended=extended,
        )
        return wrapped.encode()

    def unprotect(self, response: bytes) -> bytes:
        """Check and open a protected response (terminal side); return plain data || SW."""
        response = bytes(response)
        if len(response) < 2:
            raise self._fail("truncated Secure Messaging response")
        body, sw = response[:-2], response[-2:]
        if not body:
            self._next()
            self._closed = True
            code = int.from_bytes(sw, "big")
            raise SecureMessagingAbortedError(
                f"the card answered without Secure Messaging (SW {code:04X}); session ended", code
            )
        ssc = self._next()
        items = self._objects(body, "response")
        data_item, sw_item, mac_item = self._split_response(items)
        covered = b"".join(item.encode() for item in items[:-1])
        if not hmac.compare_digest(self._mac(ssc, covered), mac_item.value):
            raise self._fail("response MAC does not verify")
        if sw_item.value != sw:
            raise self._fail("DO'99' differs from the response status word")
        data = self._open_data_object(ssc, data_item) if data_item else b""
        return data + sw_item.value

    def _split_response(self, items: list[tlv.Tlv]) -> tuple[tlv.Tlv | None, tlv.Tlv, tlv.Tlv]:
        tags = [item.tag for item in items]
        if tags not in ([0x99, 0x8E], [0x87, 0x99, 0x8E], [0x85, 0x99, 0x8E]):
            if 0x99 not in tags:
                raise self._fail("response without DO'99' (status word)")
            if 0x8E not in tags:
                raise self._fail("response without DO'8E' (MAC)")
            raise self._fail(f"unexpected Secure Messaging objects {[hex(t) for t in tags]}")
        if len(items[-2].value) != 2 or len(items[-1].value) != MAC_LENGTH:
            raise self._fail("DO'99' or DO'8E' has the wrong length")
        data = items[0] if len(items) == 3 else None
        return data, items[-2], items[-1]

    # --- card side -----------------------------------------------------------------------

    def unprotect_command(self, command: bytes) -> bytes:
        """Check and open a protected command (card side); return the plain APDU."""
        try:
            wrapped = CommandApdu.decode(command)
        except DecodeError as exc:
            raise self._fail(f"malformed protected APDU: {exc}") from None
        if wrapped.cla & 0x0C != 0x0C:
            raise self._fail("command is not marked as Secure Messaging")
        ssc = self._next()
        items = self._objects(wrapped.data, "command")
        tags = [item.tag for item in items]
        if not tags or tags[-1] != 0x8E or len(items[-1].value) != MAC_LENGTH:
            raise self._fail("protected command without DO'8E'")
        allowed: tuple[list[int], ...] = ([], [0x87], [0x85], [0x97], [0x87, 0x97], [0x85, 0x97])
        if tags[:-1] not in allowed:
            raise self._fail(f"unexpected Secure Messaging objects {[hex(t) for t in tags]}")
        covered = pad(wrapped.header, self._block) + b"".join(i.encode() for i in items[:-1])
        if not hmac.compare_digest(self._mac(ssc, covered), items[-1].value):
            raise self._fail("command MAC does not verify")
        self._odd_ins = bool(wrapped.ins & 1)
        data = b""
        le: int | None = None
        extended = False
        for item in items[:-1]:
            if item.tag == 0x97:
                if len(item.value) not in (1, 2):
                    raise self._fail("DO'97' must hold 1 or 2 bytes")
                extended = len(item.value) == 2
                le = int.from_bytes(item.value, "big") or (65536 if extended else 256)
            else:
                data = self._open_data_object(ssc, item)
        try:
            plain = CommandApdu(
                wrapped.cla & ~0x0C & 0xFF, wrapped.ins, wrapped.p1, wrapped.p2, data, le, extended
            )
        except DecodeError as exc:
            raise self._fail(f"protected command carries a bad APDU: {exc}") from None
        return plain.encode()

    def protect_response(self, response: bytes) -> bytes:
        """Wrap a plain response data || SW (card side)."""
        response = bytes(response)
        if len(response) < 2:
            raise ChipError("a response needs a status word")
        data, sw = response[:-2], response[-2:]
        ssc = self._next()
        body = self._data_object(ssc, data, self._odd_ins) if data else b""
        body += tlv.encode(0x99, sw)
        body += tlv.encode(0x8E, self._mac(ssc, body))
        return body + sw
