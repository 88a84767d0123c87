"""BER-TLV as smart cards use it (ISO/IEC 7816-4 §5.2, ICAO Doc 9303 Part 10 §4).

A tag is kept as the integer of its encoded bytes (``0x5F1F``, ``0x7F49``), as card
specifications write it. Rules this decoder enforces:

1. tags are 1 to 3 bytes; a multi-byte tag's continuation bytes have bit 8 set except the
   last, and the first continuation byte is not ``0x80`` (no leading zero bits);
2. lengths are definite: short form (``00``-``7F``) or long form with 1 to 4 length bytes
   (``81``-``84``); the indefinite form ``80`` and ``85``-``FF`` are refused;
3. a length never reaches past the end of the input, and a value is never longer than
   ``max_length``;
4. `parse` recurses into constructed tags (bit 6 of the first tag byte) at most ``max_depth``
   levels deep and yields at most ``max_items`` nodes in all.

Every violation raises `cardsys.errors.DecodeError`; nothing else escapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cardsys.errors import DecodeError

#: Default ceiling for one value: far above any card file (EF.DG2 is a few tens of KB).
MAX_LENGTH = 1 << 24
MAX_DEPTH = 8
MAX_ITEMS = 4096


@dataclass(frozen=True)
class Tlv:
    """One decoded tag-length-value; `children` is filled for constructed tags by `parse`."""

    tag: int
    value: bytes
    children: tuple[Tlv, ...] = ()

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    def encode(self) -> bytes:
        """The TLV again, value as stored (children are a view of it, not re-encoded)."""
        return encode(self.tag, self.value)

    def find(self, tag: int) -> Tlv | None:
        """The first direct child with `tag`, or None."""
        return find(self.children, tag)

    def require(self, tag: int) -> Tlv:
        """The first direct child with `tag`; DecodeError when it is missing."""
        return require(self.children, tag)


def tag_bytes(tag: int) -> bytes:
    """The encoding of an integer tag; DecodeError when it is not a well-formed tag."""
    if tag <= 0 or tag > 0xFFFFFF:
        raise DecodeError(f"tag {tag:#x} out of range")
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    parsed, end = _read_tag(raw, 0)
    if end != len(raw) or parsed != tag:
        raise DecodeError(f"{tag:#x} is not a well-formed BER tag")
    return raw


def is_constructed(tag: int) -> bool:
    """Whether a tag's first byte has the constructed bit (0x20) set."""
    first = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")[0]
    return bool(first & 0x20)


def encode_length(length: int) -> bytes:
    """Shortest definite length encoding (DER rules), up to 4 length bytes."""
    if length < 0 or length > 0xFFFFFFFF:
        raise DecodeError(f"length {length} cannot be encoded")
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode(tag: int, value: bytes) -> bytes:
    """Encode one TLV."""
    return tag_bytes(tag) + encode_length(len(value)) + bytes(value)


def encode_many(items: Iterable[tuple[int, bytes]]) -> bytes:
    """Concatenate TLVs in the given order."""
    return b"".join(encode(tag, value) for tag, value in items)


def _read_tag(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise DecodeError("truncated TLV: tag missing")
    first = data[offset]
    if first in (0x00, 0xFF):
        # ISO 7816-4 allows 00/FF as padding between objects; none of our formats uses it,
        # and accepting it would let two encodings of one structure exist.
        raise DecodeError(f"invalid tag byte {first:#04x} at offset {offset}")
    tag = first
    pos = offset + 1
    if first & 0x1F == 0x1F:
        for index in range(2):
            if pos >= len(data):
                raise DecodeError("truncated TLV: multi-byte tag cut short")
            byte = data[pos]
            if index == 0 and byte == 0x80:
                raise DecodeError(f"tag at offset {offset} has a leading zero continuation byte")
            tag = (tag << 8) | byte
            pos += 1
            if not byte & 0x80:
                break
        else:
            raise DecodeError(f"tag at offset {offset} is longer than 3 bytes")
    return tag, pos


def _read_length(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise DecodeError("truncated TLV: length missing")
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    if first == 0x80:
        raise DecodeError("indefinite length is not allowed")
    count = first & 0x7F
    if count > 4:
        raise DecodeError(f"length field of {count} bytes is not allowed")
    end = offset + 1 + count
    if end > len(data):
        raise DecodeError("truncated TLV: length bytes cut short")
    return int.from_bytes(data[offset + 1 : end], "big"), end


def decode_one(data: bytes, offset: int = 0, *, max_length: int = MAX_LENGTH) -> tuple[Tlv, int]:
    """Decode the TLV at `offset` (no recursion); return it and the offset after it."""
    data = bytes(data)
    tag, pos = _read_tag(data, offset)
    length, pos = _read_length(data, pos)
    if length > max_length:
        raise DecodeError(f"value of tag {tag:#x} is {length} bytes, over the {max_length} limit")
    end = pos + length
    if end > len(data):
        raise DecodeError(
            f"truncated TLV: tag {tag:#x} declares {length} bytes, {len(data) - pos} remain"
        )
    return Tlv(tag, data[pos:end]), end


def iterate(data: bytes, *, max_length: int = MAX_LENGTH) -> Iterator[Tlv]:
    """The TLVs that exactly fill `data`, flat, in order."""
    data = bytes(data)
    offset = 0
    while offset < len(data):
        item, offset = decode_one(data, offset, max_length=max_length)
        yield item


def decode_all(data: bytes, *, max_length: int = MAX_LENGTH) -> list[Tlv]:
    """All TLVs that exactly fill `data` (flat, no recursion)."""
    return list(iterate(data, max_length=max_length))


def decode(data: bytes, *, max_length: int = MAX_LENGTH) -> Tlv:
    """Exactly one TLV (flat); trailing bytes are an error."""
    item, end = decode_one(data, 0, max_length=max_length)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} trailing bytes after tag {item.tag:#x}")
    return item


def parse(
    data: bytes,
    *,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
    max_length: int = MAX_LENGTH,
) -> list[Tlv]:
    """All TLVs filling `data`, constructed ones parsed into `children` (rules: module doc)."""
    budget = [max_items]
    return _parse_level(bytes(data), 0, max_depth, budget, max_length)


def parse_one(
    data: bytes,
    *,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
    max_length: int = MAX_LENGTH,
) -> Tlv:
    """Exactly one TLV filling `data`, parsed recursively."""
    items = parse(data, max_depth=max_depth, max_items=max_items, max_length=max_length)
    if len(items) != 1:
        raise DecodeError(f"expected one TLV, found {len(items)}")
    return items[0]


def _parse_level(
    data: bytes, depth: int, max_depth: int, budget: list[int], max_length: int
) -> list[Tlv]:
    out: list[Tlv] = []
    for item in iterate(data, max_length=max_length):
        budget[0] -= 1
        if budget[0] < 0:
            raise DecodeError("too many TLV items")
        if item.constructed:
            if depth + 1 > max_depth:
                raise DecodeError(f"TLV nesting deeper than {max_depth}")
            children = _parse_level(item.value, depth + 1, max_depth, budget, max_length)
            item = Tlv(item.tag, item.value, tuple(children))
        out.append(item)
    return out


def find(items: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first item with `tag`, or None."""
    return next((item for item in items if item.tag == tag), None)


def require(items: Iterable[Tlv], tag: int) -> Tlv:
    """The first item with `tag`; DecodeError naming the tag when it is missing."""
    found = find(items, tag)
    if found is None:
        raise DecodeError(f"required tag {tag:#x} is missing")
    return found
