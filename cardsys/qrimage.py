"""QR images of our QR texts, PNG and SVG, with `qrcode`.

`SSP1:`/`SSC1:` texts use only the 45 characters of QR alphanumeric mode (Base45 was made for
it), so the data is always encoded in that mode: about 5.5 bits a character instead of 8 in
byte mode, a smaller symbol that scans faster from a phone screen or a printed card. Error
correction is level M (15 %): enough for a glossy screen or a scuffed card, while the symbol
stays small.

Mask choice is where `qrcode` spends most of its time (it tries all eight and scores each);
the default `fixed_mask` uses mask 0, roughly seven times faster (FACTS.md). Scanners decode
any mask; pass `fixed_mask=None` to let `qrcode` pick the best-scoring one, e.g. for print.
"""

from __future__ import annotations

import io
from typing import Final

import qrcode
import qrcode.constants
import qrcode.util
from qrcode.image.pil import PilImage
from qrcode.image.svg import SvgPathImage

from cardsys.errors import ValidationError
from cardsys.formats.base45 import ALPHABET

__all__ = ["png", "svg"]

_ALPHANUMERIC: Final = frozenset(ALPHABET)
_DEFAULT_MASK: Final = 0


def _symbol(text: str, fixed_mask: int | None, box_size: int, border: int) -> qrcode.QRCode:
    if not text or not set(text) <= _ALPHANUMERIC:
        raise ValidationError("QR text must be non-empty QR alphanumeric characters")
    if fixed_mask is not None and not 0 <= fixed_mask <= 7:
        raise ValidationError("a QR mask pattern is 0 to 7")
    if not 1 <= box_size <= 40 or not 1 <= border <= 16:
        raise ValidationError("box size 1-40 pixels and border 1-16 modules")
    symbol = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=box_size,
        border=border,
        mask_pattern=fixed_mask,
    )
    symbol.add_data(qrcode.util.QRData(text, mode=qrcode.util.MODE_ALPHA_NUM))
    try:
        symbol.make(fit=True)
    except (qrcode.exceptions.DataOverflowError, ValueError):  # qrcode: "Invalid version 41"
        raise ValidationError("the text does not fit a QR code at level M") from None
    return symbol


def png(
    text: str, *, box_size: int = 4, border: int = 4, fixed_mask: int | None = _DEFAULT_MASK
) -> bytes:
    """A PNG of `text` as a QR code (alphanumeric mode, level M).

    Raises:
        ValidationError: characters outside QR alphanumeric mode, or too long for a QR code.
    """
    image = _symbol(text, fixed_mask, box_size, border).make_image(image_factory=PilImage)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


def svg(
    text: str, *, box_size: int = 4, border: int = 4, fixed_mask: int | None = _DEFAULT_MASK
) -> bytes:
    """An SVG of `text` as a QR code (one path; scales without blur, for print and the web).

    Raises:
        ValidationError: characters outside QR alphanumeric mode, or too long for a QR code.
    """
    image = _symbol(text, fixed_mask, box_size, border).make_image(image_factory=SvgPathImage)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()
