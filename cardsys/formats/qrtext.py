"""QR text: a version prefix and a Base45 body (DESIGN.md, "Digital cards").

    SSP1:<Base45>   a presentation (credential + holder proof), changes every 30 s
    SSC1:<Base45>   a static card QR (the credential alone)

Base45 and the prefixes use only QR alphanumeric characters, so the whole text encodes in
alphanumeric mode. The body is a COSE message, or a zlib stream (RFC 1950) holding one, as
other issuers' COSE QR codes use. The two cannot be confused: a zlib stream starts with 0x78
and a valid FCHECK (the first two bytes, big-endian, are a multiple of 31, RFC 1950 §2.2),
whereas a COSE_Sign1 starts with 0xD2 (tag 18) or 0x84 (array of 4).

Rules `decode` enforces (each failure a `DecodeError`):

1. surrounding spaces, tabs, CR and LF are stripped (USB scanners append Enter); nothing else
   is changed: no case folding, no inner whitespace removal;
2. the text starts with one of the expected prefixes, exactly;
3. the rest is strict Base45 (see `base45.decode`), checked for length before decoding;
4. the body, and the inflated body when compressed, is at most `max_body` bytes; inflation
   stops at the cap, so a zip bomb never expands in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from typing import Final

from cardsys.errors import DecodeError, ValidationError
from cardsys.formats import base45
from cardsys.formats.statuslist import inflate

__all__ = ["PRESENTATION", "STATIC_CARD", "decode", "encode", "is_zlib"]

#: Prefix of a dynamic presentation QR.
PRESENTATION: Final = "SSP1:"
#: Prefix of the static QR printed on a card.
STATIC_CARD: Final = "SSC1:"

_SURROUNDING: Final = " \t\r\n"
_ALPHANUMERIC: Final = frozenset(base45.ALPHABET)


def is_zlib(body: bytes) -> bool:
    """Whether `body` starts with a zlib header (CMF 0x78 and a valid FCHECK)."""
    return len(body) >= 2 and body[0] == 0x78 and (body[0] << 8 | body[1]) % 31 == 0


def encode(prefix: str, body: bytes, *, compress: bool = False) -> str:
    """The QR text for `body` under `prefix`, optionally zlib-compressed first.

    Raises:
        ValidationError: a prefix with characters outside QR alphanumeric mode, or empty.
    """
    if not prefix or not set(prefix) <= _ALPHANUMERIC:
        raise ValidationError(f"QR prefix {prefix!r} must be QR alphanumeric characters")
    if compress:
        body = zlib.compress(body, 9)
    return prefix + base45.encode(body)


def decode(text: str, *, prefixes: Collection[str], max_body: int) -> tuple[str, bytes]:
    """Split QR text into (prefix, body) and decode the body (rules: module docstring).

    Args:
        text: the scanned text.
        prefixes: the prefixes this reader accepts (e.g. {"SSP1:", "SSC1:"}).
        max_body: the largest body accepted, in bytes, before and after decompression.

    Raises:
        DecodeError: unknown prefix, bad Base45, bad zlib, or a body over `max_body`.
    """
    if not isinstance(text, str):
        raise DecodeError(f"QR text must be a string, not {type(text).__name__}")
    text = text.strip(_SURROUNDING)
    # The longest matching prefix, so overlapping prefixes cannot depend on their order.
    prefix = ""
    for candidate in prefixes:
        if len(candidate) > len(prefix) and text.startswith(candidate):
            prefix = candidate
    if not prefix:
        raise DecodeError("the QR text does not start with a known prefix")
    encoded = text[len(prefix) :]
    # Base45 turns 2 bytes into 3 characters: refuse oversize text before decoding it.
    if len(encoded) > (3 * max_body + 1) // 2:
        raise DecodeError(f"the QR body is longer than {max_body} bytes")
    body = base45.decode(encoded)
    if not body:
        raise DecodeError("the QR body is empty")
    if len(body) > max_body:
        raise DecodeError(f"the QR body is longer than {max_body} bytes")
    if body[0] == 0x78 and is_zlib(body):
        body = inflate(body, max_body)
        if not body:
            raise DecodeError("the compressed QR body is empty")
    return prefix, body
