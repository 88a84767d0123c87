"""Safe CBOR (RFC 8949): a deterministic encoder and a bounded decoder.

Encoding (`dumps`) follows the core deterministic encoding requirements of RFC 8949 §4.2.1:
shortest argument forms, definite lengths only, map keys sorted by the bytewise lexicographic
order of their deterministic encodings, floats in the shortest form that preserves their value.
cbor2's `canonical=True` is *not* that: it sorts map keys length-first (the older RFC 7049
"canonical CBOR" rule), so `{"a": 1, 1000: 2}` comes out in a different order than RFC 8949
requires. We therefore encode ourselves; only the types our formats use are accepted, anything
else (sets, datetimes, Decimals, big integers, arbitrary objects) raises `TypeError` instead of
being silently turned into a tagged value a verifier might not understand.

Decoding (`loads`) treats its input as hostile. Before cbor2 sees a byte, a small scanner
walks the item headers and enforces, in one pass over the headers (byte and text strings are
skipped in O(1)):

1. the input is at most `max_size` bytes and holds exactly one item (no trailing bytes);
2. no declared length exceeds the input left (a 2^63-element array header fails at once,
   before anything is allocated), and at most `max_items` data items in total;
3. nesting (arrays, maps and tags) is at most `max_depth` deep;
4. definite lengths only: indefinite-length strings and containers are refused. None of our
   formats produce them, RFC 8949 §4.2.1 forbids them in deterministic encoding, and refusing
   them keeps the scanner (and what an attacker can reach inside cbor2) small;
5. only tags listed in `tags` (none by default), so cbor2's semantic decoders (shared
   references, datetimes, bignums, regular expressions ...) are never reached;
6. map keys are integers, byte strings or text strings; simple values other than
   false/true/null (including `undefined`) and reserved additional-information values are
   refused.

Then a *fresh* cbor2 decoder (cbor2 < 5.8 leaked decoder state between messages,
CVE-2025-68131) decodes the bytes with duplicate map keys refused and strict UTF-8. Every
failure, whichever layer finds it, is a `cardsys.errors.DecodeError`.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Collection, Mapping
from typing import Any, Final

import cbor2

from cardsys.errors import DecodeError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_SIZE",
    "CBORTag",
    "as_bytes",
    "dumps",
    "encode_head",
    "loads",
]

#: Re-exported so callers build tagged values without importing cbor2 themselves.
CBORTag = cbor2.CBORTag

#: Largest message `loads` accepts by default (1 MiB): well above a status list (<= 20 KB
#: compressed) or a trust list, far below anything that strains a terminal.
DEFAULT_MAX_SIZE: Final = 1 << 20
#: Default cap on data items in one message (every header counts, strings included).
DEFAULT_MAX_ITEMS: Final = 1 << 16
#: Default nesting cap (arrays, maps and tags each add one level).
DEFAULT_MAX_DEPTH: Final = 16

_UINT64_MAX: Final = (1 << 64) - 1

# --- encoding ------------------------------------------------------------------------------


def encode_head(major: int, argument: int) -> bytes:
    """The shortest head (initial byte + argument) for `major` type and `argument` (§4.2.1)."""
    if argument < 24:
        return bytes((major << 5 | argument,))
    if argument < 0x100:
        return bytes((major << 5 | 24, argument))
    if argument < 0x10000:
        return bytes((major << 5 | 25,)) + argument.to_bytes(2, "big")
    if argument < 0x100000000:
        return bytes((major << 5 | 26,)) + argument.to_bytes(4, "big")
    return bytes((major << 5 | 27,)) + argument.to_bytes(8, "big")


def _encode_float(value: float) -> bytes:
    # Shortest of binary16/32/64 that round-trips the exact value (RFC 8949 §4.2.1, §4.2.2
    # for NaN: the canonical quiet NaN 0xf97e00).
    if math.isnan(value):
        return b"\xf9\x7e\x00"
    for fmt, head in (("e", 0xF9), ("f", 0xFA)):
        try:
            packed = struct.pack(">" + fmt, value)
        except OverflowError:
            continue
        if struct.unpack(">" + fmt, packed)[0] == value:
            return bytes((head,)) + packed
    return b"\xfb" + struct.pack(">d", value)


def _encode(obj: object, out: list[bytes], depth: int, max_depth: int) -> None:
    # bool before int: bool is a subclass of int.
    if obj is None:
        out.append(b"\xf6")
    elif obj is True:
        out.append(b"\xf5")
    elif obj is False:
        out.append(b"\xf4")
    elif isinstance(obj, int):
        if 0 <= obj <= _UINT64_MAX:
            out.append(encode_head(0, obj))
        elif -1 - _UINT64_MAX <= obj < 0:
            out.append(encode_head(1, -1 - obj))
        else:
            raise TypeError(f"integer {obj} does not fit a CBOR integer (we emit no bignums)")
    elif isinstance(obj, bytes):
        out.append(encode_head(2, len(obj)))
        out.append(obj)
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")  # surrogates raise UnicodeEncodeError, a ValueError
        out.append(encode_head(3, len(raw)))
        out.append(raw)
    elif isinstance(obj, float):
        out.append(_encode_float(obj))
    elif isinstance(obj, list | tuple):
        _check_depth(depth, max_depth)
        out.append(encode_head(4, len(obj)))
        for item in obj:
            _encode(item, out, depth + 1, max_depth)
    elif isinstance(obj, Mapping):
        _check_depth(depth, max_depth)
        _encode_map(obj, out, depth, max_depth)
    elif isinstance(obj, cbor2.CBORTag):
        _check_depth(depth, max_depth)
        if not isinstance(obj.tag, int) or not 0 <= obj.tag <= _UINT64_MAX:
            raise TypeError(f"invalid CBOR tag number {obj.tag!r}")
        out.append(encode_head(6, obj.tag))
        _encode(obj.value, out, depth + 1, max_depth)
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as CBOR")


def _encode_map(obj: Mapping[Any, Any], out: list[bytes], depth: int, max_depth: int) -> None:
    entries: list[tuple[bytes, object]] = []
    for key, value in obj.items():
        if isinstance(key, bool) or not isinstance(key, int | str | bytes):
            raise TypeError(f"map keys must be int, str or bytes, not {type(key).__name__}")
        key_out: list[bytes] = []
        _encode(key, key_out, depth + 1, max_depth)
        entries.append((b"".join(key_out), value))
    # Bytewise lexicographic order of the encoded keys (RFC 8949 §4.2.1).
    entries.sort(key=lambda entry: entry[0])
    for (key_bytes, _), (next_bytes, _) in itertools.pairwise(entries):
        if key_bytes == next_bytes:
            raise ValueError("duplicate map key after encoding")
    out.append(encode_head(5, len(entries)))
    for key_bytes, value in entries:
        out.append(key_bytes)
        _encode(value, out, depth + 1, max_depth)


def _check_depth(depth: int, max_depth: int) -> None:
    if depth >= max_depth:
        raise ValueError(f"nesting deeper than {max_depth} levels")


def dumps(obj: object, *, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """Encode `obj` as deterministic CBOR (RFC 8949 §4.2.1).

    Accepts None, bool, int (64-bit range), float, str, bytes, list/tuple, Mapping with int,
    str or bytes keys, and `CBORTag`.

    Raises:
        TypeError: a value of a type we must not emit (set, datetime, bignum, object ...).
        ValueError: nesting deeper than `max_depth`, or two keys that encode the same.
    """
    out: list[bytes] = []
    _encode(obj, out, 0, max_depth)
    return b"".join(out)


# --- decoding ------------------------------------------------------------------------------

# What the scanner does with each possible initial byte: (kind, argument bytes, additional info).
# Only _INT and _STRING may be map keys (they sort first, so one comparison tells).
_INT, _STRING, _SIMPLE, _ARRAY, _MAP, _TAG, _INDEFINITE, _RESERVED, _BAD_SIMPLE = range(9)


def _head_table() -> tuple[tuple[int, int, int], ...]:
    table = []
    for initial in range(256):
        major, info = initial >> 5, initial & 0x1F
        size = 0 if info < 24 else 1 << (info - 24) if info <= 27 else 0
        if info == 31:
            kind = _INDEFINITE
        elif 28 <= info <= 30:
            kind = _RESERVED
        elif major == 7:
            # false, true, null and half/single/double floats; not undefined (23), not the
            # unassigned or one-byte simple values (0..19, 24).
            kind = _SIMPLE if info in (20, 21, 22, 25, 26, 27) else _BAD_SIMPLE
        else:
            kind = (_INT, _INT, _STRING, _STRING, _ARRAY, _MAP, _TAG)[major]
        table.append((kind, size, info))
    return tuple(table)


_HEADS: Final = _head_table()


def _scan(data: bytes, max_depth: int, max_items: int, tags: Collection[int]) -> None:
    """Walk the item headers of `data`, enforcing the module's rules 1-6 (module doc)."""
    # On the verifier's hot path: one table lookup per item, strings skipped in O(1), and a
    # plain loop per container (recursion only for nested containers, at most max_depth deep).
    # A string or head running past the end is not checked item by item: the next read raises
    # IndexError, or the final position is past the end; nothing is allocated either way.
    limits = _Limits(max_depth, tags, max_items - 1)
    try:
        pos = _scan_items(data, 0, 1, 0, limits)
    except IndexError:
        raise DecodeError("truncated CBOR: an item is missing or cut short") from None
    except RecursionError:
        raise DecodeError(f"CBOR nested deeper than {max_depth} levels") from None
    if pos > len(data):
        raise DecodeError("CBOR length exceeds the input")
    if pos < len(data):
        raise DecodeError(f"{len(data) - pos} trailing bytes after the CBOR item")


class _Limits:
    """What the scan may still accept: the depth cap, allowed tags, items left."""

    __slots__ = ("items_left", "max_depth", "tags")

    def __init__(self, max_depth: int, tags: Collection[int], items_left: int) -> None:
        self.max_depth = max_depth
        self.tags = tags
        self.items_left = items_left


def _scan_items(data: bytes, pos: int, count: int, depth: int, limits: _Limits) -> int:
    """Skip `count` items starting at `pos`; the position after them."""
    heads = _HEADS
    for _ in range(count):
        kind, size, arg = heads[data[pos]]
        pos += 1
        if size:
            arg = data[pos] if size == 1 else int.from_bytes(data[pos : pos + size], "big")
            pos += size
        if kind == _STRING:
            pos += arg
        elif kind > _SIMPLE:
            pos = _scan_nested(data, pos, kind, arg, depth, limits)
    return pos


def _scan_pairs(data: bytes, pos: int, count: int, depth: int, limits: _Limits) -> int:
    """Skip `count` map entries: a key (integer or string only), then any value."""
    heads = _HEADS
    for _ in range(count):
        kind, size, arg = heads[data[pos]]
        pos += 1
        if size:
            arg = data[pos] if size == 1 else int.from_bytes(data[pos : pos + size], "big")
            pos += size
        if kind == _STRING:
            pos += arg
        elif kind != _INT:
            raise DecodeError("CBOR map keys must be integers, byte strings or text strings")
        kind, size, arg = heads[data[pos]]
        pos += 1
        if size:
            arg = data[pos] if size == 1 else int.from_bytes(data[pos : pos + size], "big")
            pos += size
        if kind == _STRING:
            pos += arg
        elif kind > _SIMPLE:
            pos = _scan_nested(data, pos, kind, arg, depth, limits)
    return pos


def _scan_nested(data: bytes, pos: int, kind: int, arg: int, depth: int, limits: _Limits) -> int:
    """Check a container or tag head, then skip its content; the position after it."""
    if kind == _ARRAY:
        count = arg
    elif kind == _MAP:
        count = 2 * arg
    elif kind == _TAG:
        if arg not in limits.tags:
            raise DecodeError(f"CBOR tag {arg} is not accepted here")
        count = 1
    else:
        raise DecodeError(_REFUSED[kind])
    # Every item takes at least one byte: a count beyond the input is a lie.
    if count > len(data) - pos:
        raise DecodeError("CBOR container length exceeds the input")
    if depth >= limits.max_depth:
        raise DecodeError(f"CBOR nested deeper than {limits.max_depth} levels")
    limits.items_left -= count
    if limits.items_left < 0:
        raise DecodeError("CBOR holds more items than allowed")
    if kind == _MAP:
        return _scan_pairs(data, pos, arg, depth + 1, limits)
    return _scan_items(data, pos, count, depth + 1, limits)


_REFUSED: Final = {
    _INDEFINITE: "CBOR indefinite lengths are not accepted",
    _RESERVED: "CBOR reserved additional information (28-30)",
    _BAD_SIMPLE: "CBOR simple value not accepted (only false, true, null and floats)",
}


def as_bytes(value: object) -> bytes:
    """`value` as bytes (from bytes, bytearray or memoryview), else DecodeError."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise DecodeError(f"expected bytes, not {type(value).__name__}")


def loads(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_items: int = DEFAULT_MAX_ITEMS,
    tags: Collection[int] = (),
) -> Any:
    """Decode exactly one CBOR item from untrusted `data` (rules: module docstring).

    Args:
        data: the encoded item (bytes, bytearray or memoryview).
        max_size: the largest input accepted, in bytes.
        max_depth: the deepest nesting accepted (arrays, maps and tags).
        max_items: the most data items accepted in total.
        tags: tag numbers allowed anywhere in the item; any other tag is refused.

    Raises:
        DecodeError: the input breaks a limit or is not well-formed CBOR.
    """
    data = as_bytes(data)
    if len(data) > max_size:
        raise DecodeError(f"CBOR input of {len(data)} bytes exceeds the limit of {max_size}")
    _scan(data, max_depth, max_items, tags)
    try:
        # cbor2.loads builds a new decoder per call; its own depth limit is a second fence
        # (+1 because it counts the top level).
        return cbor2.loads(
            data,
            max_depth=max_depth + 1,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        # UnicodeDecodeError is a ValueError: invalid UTF-8 in a text string lands here too.
        raise DecodeError(f"malformed CBOR: {exc}") from None
