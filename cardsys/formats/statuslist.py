"""IETF Token Status List (draft-ietf-oauth-status-list), CWT form.

The list is a byte array in which entry i occupies `bits` bits starting at bit (i*bits) % 8
of byte (i*bits) // 8, counted from the least significant bit (§4.1). It travels
zlib-compressed (RFC 1950) inside a CWT signed as a tagged COSE_Sign1 (§5.2):

    18([ << {1: alg, 4: kid, 16: "application/statuslist+cwt"} >>, {},
         << {2: uri, 6: iat, 4: exp, 65534: ttl,
             65533: {"bits": 2, "lst": h'78da...'}} >>, signature ])

`parse_status_list` decodes and checks the structure but does NOT verify the signature: the
trust layer does, with the status-list signer's key, on `ParsedStatusList.message`. The rules
it enforces (each failure a `DecodeError`):

1. a COSE_Sign1 tagged 18 (§5.2: the token MUST be tagged) with typ
   "application/statuslist+cwt" in the protected header;
2. claims sub (text URI), iat and exp (NumericDate; our profile requires exp, so that a
   terminal can always tell a stale list), ttl (optional, a positive integer), and
   status_list = {"bits": 1/2/4/8, "lst": bstr};
3. `lst` is one complete zlib stream, nothing after it, inflating to at most `max_size`
   bytes (a zip bomb stops at the cap; it is never inflated in full).

A credential points at its entry with the status claim (65535)
`{"status_list": {"idx": i, "uri": u}}` (§6.3); `StatusReference` builds it and
`status_reference` reads and checks it.

`lookup(index)` is O(1): an index into the decompressed bytes. An index outside the list
is refused (§8.3 step 6: "the Referenced Token MUST be rejected"), and so is a value that is
not a status we know (3 is application-specific, and we assign it no meaning).

Compression: zlib level 9, memLevel 9 and the Z_FILTERED strategy. For 2^20 entries with 1%
revoked at random this gives about 15.2 KB (level 9 alone: about 15.3 KB; Z_RLE about 16.8 KB;
the entropy bound is about 10.6 KB). `bench/statuslist.py` measures it.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from cardsys.errors import DecodeError, ValidationError
from cardsys.formats import cwt
from cardsys.formats.cose import TYP, Sign1, sign1
from cardsys.pki import Algorithm

__all__ = [
    "DEFAULT_MAX_SIZE",
    "MEDIA_TYPE",
    "ParsedStatusList",
    "Status",
    "StatusList",
    "StatusReference",
    "inflate",
    "parse_status_list",
    "sign_status_list",
    "status_reference",
]

#: The protected `typ` header of a Status List Token (§5.2).
MEDIA_TYPE: Final = "application/statuslist+cwt"
_BITS: Final = frozenset({1, 2, 4, 8})
#: Default cap on the decompressed list: 2^20 entries at 8 bits.
DEFAULT_MAX_SIZE: Final = 1 << 20
# A status list token is bigger than a credential; keep its CBOR cap modest all the same.
_MAX_TOKEN: Final = 256 * 1024


class Status(enum.IntEnum):
    """A card's status in the list (§7.1)."""

    VALID = 0
    REVOKED = 1
    SUSPENDED = 2


# Entry value -> Status (None: a value we do not accept), for O(1) lookups.
_BY_VALUE: Final[tuple[Status | None, ...]] = tuple(
    Status(value) if value in Status._value2member_map_ else None for value in range(256)
)


def _check_bits(bits: int) -> None:
    if bits not in _BITS:
        raise ValidationError(f"a status list has 1, 2, 4 or 8 bits per entry, not {bits}")


class StatusList:
    """A mutable status list of `size` entries, `bits` bits each (all VALID at first)."""

    def __init__(self, size: int, bits: int = 2) -> None:
        _check_bits(bits)
        if size <= 0:
            raise ValidationError("a status list has at least one entry")
        self.size = size
        self.bits = bits
        self._mask = (1 << bits) - 1
        self._data = bytearray((size * bits + 7) // 8)

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.size:
            raise ValidationError(f"index {index} is outside the list (size {self.size})")
        position = index * self.bits
        return position >> 3, position & 7

    def set(self, index: int, status: Status) -> None:
        """Set entry `index` to `status`."""
        value = int(status)
        if value > self._mask:
            raise ValidationError(f"status {value} does not fit {self.bits} bits")
        byte, shift = self._locate(index)
        self._data[byte] = (self._data[byte] & ~(self._mask << shift)) | (value << shift)

    def get(self, index: int) -> Status:
        """The status of entry `index`."""
        byte, shift = self._locate(index)
        status = _BY_VALUE[(self._data[byte] >> shift) & self._mask]
        if status is None:
            raise DecodeError(f"entry {index} holds a status value we do not know")
        return status

    def to_bytes(self) -> bytes:
        """The uncompressed byte array (§4.1)."""
        return bytes(self._data)

    def compress(self) -> bytes:
        """The byte array as a zlib stream (RFC 1950), tuned for sparse lists (module doc)."""
        compressor = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_FILTERED)
        return compressor.compress(self._data) + compressor.flush()

    @classmethod
    def decompress(cls, data: bytes, bits: int, max_size: int = DEFAULT_MAX_SIZE) -> StatusList:
        """Rebuild a list from its zlib stream; its size is every entry the bytes hold.

        Raises:
            DecodeError: not one complete zlib stream, data after it, or more than
                `max_size` bytes once inflated.
        """
        _check_bits(bits)
        raw = inflate(data, max_size)
        if not raw:
            raise DecodeError("the status list is empty")
        lst = cls(len(raw) * 8 // bits, bits)
        lst._data[:] = raw
        return lst


def inflate(data: bytes, max_size: int) -> bytes:
    """Inflate one complete zlib stream (RFC 1950) to at most `max_size` bytes.

    Raises:
        DecodeError: a bad header or checksum, a truncated stream, trailing data, or output
            beyond `max_size` (the excess is never produced: decompression stops at the cap).
    """
    inflater = zlib.decompressobj(wbits=15)
    try:
        out = inflater.decompress(data, max_size + 1)
    except zlib.error as exc:
        raise DecodeError(f"invalid zlib data: {exc}") from None
    if len(out) > max_size or inflater.unconsumed_tail:
        raise DecodeError(f"zlib data inflates beyond {max_size} bytes")
    if not inflater.eof:
        raise DecodeError("truncated zlib data")
    if inflater.unused_data:
        raise DecodeError("data after the end of the zlib stream")
    return out


def sign_status_list(
    lst: StatusList,
    *,
    uri: str,
    iat: datetime,
    exp: datetime,
    ttl: timedelta,
    sign: Callable[[bytes], bytes],
    alg: Algorithm,
    kid: bytes | None,
) -> bytes:
    """A Status List Token: `lst` compressed, in CWT claims, signed as tagged COSE_Sign1.

    Args:
        lst: the list to publish.
        uri: where it is published; the `sub` claim, equal to the credentials' status `uri`.
        iat, exp: issue and expiry times (aware datetimes).
        ttl: how long a terminal may cache it before fetching a fresh copy (whole seconds).
        sign, alg, kid: the status-list signer, as for `cose.sign1`.

    Raises:
        ValidationError: exp not after iat, or ttl not a positive whole number of seconds.
    """
    if exp <= iat:
        raise ValidationError("a status list must expire after it is issued")
    ttl_seconds = ttl.total_seconds()
    if ttl_seconds <= 0 or ttl_seconds != int(ttl_seconds):
        raise ValidationError("ttl must be a positive whole number of seconds")
    claims: dict[int | str, Any] = {
        cwt.SUB: uri,
        cwt.IAT: cwt.to_numeric_date(iat),
        cwt.EXP: cwt.to_numeric_date(exp),
        cwt.TTL: int(ttl_seconds),
        cwt.STATUS_LIST: {"bits": lst.bits, "lst": lst.compress()},
    }
    message = sign1(
        cwt.encode_claims(claims),
        sign=sign,
        alg=alg,
        kid=kid,
        protected_extra={TYP: MEDIA_TYPE},
    )
    return message.encode(tag=True)


@dataclass(frozen=True)
class ParsedStatusList:
    """A decoded, structurally checked Status List Token (signature NOT yet verified)."""

    message: Sign1
    uri: str
    iat: datetime
    exp: datetime
    ttl: timedelta | None
    bits: int
    entries: bytes = field(repr=False)

    @property
    def size(self) -> int:
        """How many entries the list holds."""
        return len(self.entries) * 8 // self.bits

    def lookup(self, index: int) -> Status:
        """The status at `index`, in constant time.

        Raises:
            DecodeError: `index` outside the list, or a status value we do not know.
        """
        if index < 0 or index >= len(self.entries) * 8 // self.bits:
            raise DecodeError(f"status index {index} is outside the list")
        position = index * self.bits
        value = (self.entries[position >> 3] >> (position & 7)) & ((1 << self.bits) - 1)
        status = _BY_VALUE[value]
        if status is None:
            raise DecodeError(f"status value {value} at index {index} is not one we know")
        return status


def parse_status_list(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> ParsedStatusList:
    """Decode a Status List Token and check its structure (rules: module docstring).

    Args:
        data: the token as served.
        max_size: the most bytes the list may inflate to.

    Raises:
        DecodeError: any rule broken.
    """
    if data[:1] != b"\xd2" and data[:2] != b"\xd8\x12":
        raise DecodeError("a status list token must be a tagged COSE_Sign1 (tag 18)")
    message = Sign1.decode(data, max_size=_MAX_TOKEN)
    if message.protected.get(TYP) != MEDIA_TYPE:
        raise DecodeError(f"the token's protected typ is not {MEDIA_TYPE}")
    claims = cwt.decode_claims(message.payload)
    uri = claims.get(cwt.SUB)
    if not isinstance(uri, str) or not uri:
        raise DecodeError("a status list token needs its URI in the sub claim")
    iat = cwt.get_time(claims, cwt.IAT)
    exp = cwt.get_time(claims, cwt.EXP)
    if iat is None or exp is None:
        raise DecodeError("a status list token needs iat and exp claims")
    ttl = _ttl(claims)
    bits, compressed = _status_list_claim(claims.get(cwt.STATUS_LIST))
    entries = inflate(compressed, max_size)
    if not entries:
        raise DecodeError("the status list is empty")
    return ParsedStatusList(
        message=message, uri=uri, iat=iat, exp=exp, ttl=ttl, bits=bits, entries=entries
    )


def _ttl(claims: Mapping[Any, Any]) -> timedelta | None:
    value = claims.get(cwt.TTL)
    if value is None:
        return None
    if value <= 0 or value > 10 * 365 * 86400:
        raise DecodeError("the status list ttl must be a positive number of seconds")
    return timedelta(seconds=value)


def _status_list_claim(value: object) -> tuple[int, bytes]:
    if not isinstance(value, dict):
        raise DecodeError("a status list token needs the status_list claim (65533)")
    bits = value.get("bits")
    compressed = value.get("lst")
    if not isinstance(bits, int) or isinstance(bits, bool) or bits not in _BITS:
        raise DecodeError("status_list bits must be 1, 2, 4 or 8")
    if not isinstance(compressed, bytes):
        raise DecodeError("status_list lst must be a byte string")
    return bits, compressed


@dataclass(frozen=True)
class StatusReference:
    """Where a credential's status lives: entry `idx` of the list published at `uri`."""

    idx: int
    uri: str

    def claim(self) -> dict[str, Any]:
        """The value of the credential's `status` claim (65535), per §6.3."""
        return {"status_list": {"idx": self.idx, "uri": self.uri}}


def status_reference(claims: Mapping[Any, Any]) -> StatusReference:
    """Read the status-list reference from a credential's claims (§6.3, §8.3 step 1).

    Raises:
        DecodeError: no `status` claim, no `status_list` in it, or an `idx` that is not a
            non-negative integer, or a `uri` that is not non-empty text.
    """
    status = claims.get(cwt.STATUS)
    reference = status.get("status_list") if isinstance(status, dict) else None
    if not isinstance(reference, dict):
        raise DecodeError("the credential has no status_list reference in its status claim")
    idx, uri = reference.get("idx"), reference.get("uri")
    if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
        raise DecodeError("the status_list idx must be a non-negative integer")
    if not isinstance(uri, str) or not uri:
        raise DecodeError("the status_list uri must be non-empty text")
    return StatusReference(idx=idx, uri=uri)
