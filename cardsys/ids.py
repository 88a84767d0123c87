"""Resident ID numbers and card numbers: value types that cannot hold an invalid value.

Resident ID number (18 characters): 6-digit region code, birth date YYYYMMDD, 3-digit sequence,
and a check character per ISO 7064 MOD 11-2 (`0`-`9` or `X`). The region and birth date are the
ones registered at birth; the resident's current region is stored separately.

Card number (14 characters): the agency prefix (2 letters), the 2-digit province of the region,
a 9-digit serial allocated without gaps per (prefix, province), and a check character per
ISO 7064 MOD 37,36 (hybrid system, `0`-`9` or `A`-`Z`), which catches every single substituted
character and every swap of neighbours. (Doc 9303's 7-3-1 check digit was the first choice but
cannot tell letters ten apart, such as `IS` from `SS`; the chip's access key computes its own
Doc 9303 check digit over the whole number.) Example: `SS110000000001` + check character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from cardsys.errors import InvalidCardNumberError, InvalidIdNumberError

# ISO 7064 MOD 11-2: weight of position i (0-based, left to right) is 2**(17 - i) mod 11.
_MOD11_2_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_MOD11_2_CHARS = "0123456789X"
_ID_PATTERN = re.compile(r"[0-9]{17}[0-9X]")


def mod11_2_check(body: str) -> str:
    """The ISO 7064 MOD 11-2 check character for 17 digits."""
    if not (len(body) == 17 and body.isascii() and body.isdigit()):
        raise InvalidIdNumberError(f"{body!r}: MOD 11-2 here takes exactly 17 digits")
    total = sum(int(c) * w for c, w in zip(body, _MOD11_2_WEIGHTS, strict=True))
    return _MOD11_2_CHARS[(12 - total % 11) % 11]


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A valid resident ID number. Construct with `ResidentId.parse` or `ResidentId(text)`."""

    value: str

    def __post_init__(self) -> None:
        text = self.value
        if not isinstance(text, str) or not _ID_PATTERN.fullmatch(text):
            raise InvalidIdNumberError(
                f"ID number {text!r} must be 17 digits followed by a digit or X"
            )
        try:
            date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
        except ValueError as exc:
            raise InvalidIdNumberError(f"ID number {text}: {text[6:14]} is not a date") from exc
        if int(text[6:10]) < 1900:
            raise InvalidIdNumberError(f"ID number {text}: birth year before 1900")
        if int(text[:6]) == 0:
            raise InvalidIdNumberError(f"ID number {text}: region code 000000 does not exist")
        if mod11_2_check(text[:17]) != text[17]:
            raise InvalidIdNumberError(f"ID number {text}: wrong check character")

    @classmethod
    def parse(cls, text: str) -> ResidentId:
        """Parse user input: surrounding spaces ignored, a lower-case `x` accepted."""
        return cls(text.strip().upper())

    @classmethod
    def build(cls, region: str, birth_date: date, sequence: int) -> ResidentId:
        """Compose a valid number (for enrolment tools and tests)."""
        if not (len(region) == 6 and region.isascii() and region.isdigit()):
            raise InvalidIdNumberError(f"region {region!r} must be 6 digits")
        if not 0 <= sequence <= 999:
            raise InvalidIdNumberError(f"sequence {sequence} outside 0..999")
        body = f"{region}{birth_date:%Y%m%d}{sequence:03d}"
        return cls(body + mod11_2_check(body))

    @property
    def region(self) -> str:
        return self.value[:6]

    @property
    def birth_date(self) -> date:
        v = self.value
        return date(int(v[6:10]), int(v[10:12]), int(v[12:14]))

    def __str__(self) -> str:
        return self.value


_ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUES = {c: i for i, c in enumerate(_ALPHANUMERIC)}
_CARD_PATTERN = re.compile(r"[A-Z]{2}[0-9]{2}[0-9]{9}[0-9A-Z]")
SERIAL_DIGITS = 9
MAX_SERIAL = 10**SERIAL_DIGITS - 1


def mod37_36_check(body: str) -> str:
    """The ISO 7064 MOD 37,36 check character of digits and capital letters."""
    product = 36
    for char in body:
        value = _VALUES.get(char)
        if value is None:
            raise InvalidCardNumberError(f"{body!r} has a character outside 0-9, A-Z")
        total = (product + value) % 36 or 36
        product = (total * 2) % 37
    return _ALPHANUMERIC[(37 - product) % 36]


@dataclass(frozen=True, slots=True)
class CardNumber:
    """A valid card number. Construct with `CardNumber.parse` or `CardNumber.build`."""

    value: str

    def __post_init__(self) -> None:
        text = self.value
        if not isinstance(text, str) or not _CARD_PATTERN.fullmatch(text):
            raise InvalidCardNumberError(
                f"card number {text!r} must be 2 letters, 11 digits and a check character"
            )
        if mod37_36_check(text[:-1]) != text[-1]:
            raise InvalidCardNumberError(f"card number {text}: wrong check character")

    @classmethod
    def parse(cls, text: str) -> CardNumber:
        """Parse user input: spaces and dashes ignored, lower case accepted."""
        return cls(re.sub(r"[\s-]", "", text).upper())

    @classmethod
    def build(cls, prefix: str, province: str, serial: int) -> CardNumber:
        if not 0 < serial <= MAX_SERIAL:
            raise InvalidCardNumberError(f"card serial {serial} outside 1..{MAX_SERIAL}")
        body = f"{prefix}{province}{serial:0{SERIAL_DIGITS}d}"
        return cls(body + mod37_36_check(body))

    @property
    def prefix(self) -> str:
        return self.value[:2]

    @property
    def province(self) -> str:
        return self.value[2:4]

    @property
    def serial(self) -> int:
        return int(self.value[4:13])

    def __str__(self) -> str:
        return self.value
