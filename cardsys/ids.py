"""Resident ID numbers and card numbers: value types that cannot hold an invalid value.

Resident ID number (18 characters): 6-digit region code, birth date YYYYMMDD, 3-digit sequence,
and a check character per ISO 7064 MOD 11-2 (`0`-`9` or `X`). The region and birth date are the
ones registered at birth; the resident's current region is stored separately.

Card number (14 characters): the agency prefix (2 letters), the 2-digit province of the region,
a 9-digit serial allocated without gaps per (prefix, province), and a check digit computed with
the 7-3-1 weighting of ICAO Doc 9303 Part 3 §4.9, so the number enters a card's machine-readable
access data unchanged. Example: `SS11000000001` + check digit.
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


# ICAO Doc 9303 Part 3 §4.9: digits keep their value, A-Z are 10-35, '<' is 0; weights 7, 3, 1.
_ICAO_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")} | {"<": 0}
_CARD_PATTERN = re.compile(r"[A-Z]{2}[0-9]{2}[0-9]{9}[0-9]")
SERIAL_DIGITS = 9
MAX_SERIAL = 10**SERIAL_DIGITS - 1


def icao_check_digit(text: str) -> str:
    """The Doc 9303 check digit (7-3-1 weights) of digits, capital letters and '<'."""
    try:
        total = sum(_ICAO_VALUES[c] * (7, 3, 1)[i % 3] for i, c in enumerate(text))
    except KeyError as exc:
        raise InvalidCardNumberError(f"{text!r} has a character outside 0-9, A-Z, <") from exc
    return str(total % 10)


@dataclass(frozen=True, slots=True)
class CardNumber:
    """A valid card number. Construct with `CardNumber.parse` or `CardNumber.build`."""

    value: str

    def __post_init__(self) -> None:
        text = self.value
        if not isinstance(text, str) or not _CARD_PATTERN.fullmatch(text):
            raise InvalidCardNumberError(
                f"card number {text!r} must be 2 letters, 2 + 9 digits and a check digit"
            )
        if icao_check_digit(text[:-1]) != text[-1]:
            raise InvalidCardNumberError(f"card number {text}: wrong check digit")

    @classmethod
    def parse(cls, text: str) -> CardNumber:
        """Parse user input: spaces and dashes ignored, lower case accepted."""
        return cls(re.sub(r"[\s-]", "", text).upper())

    @classmethod
    def build(cls, prefix: str, province: str, serial: int) -> CardNumber:
        if not 0 < serial <= MAX_SERIAL:
            raise InvalidCardNumberError(f"card serial {serial} outside 1..{MAX_SERIAL}")
        body = f"{prefix}{province}{serial:0{SERIAL_DIGITS}d}"
        return cls(body + icao_check_digit(body))

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
