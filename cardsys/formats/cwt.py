"""CBOR Web Token claims (RFC 8392) and the time rules a verifier applies to them.

A claims set is a CBOR map whose keys are integers or text strings (RFC 8392 §3). Times are
NumericDate: integer seconds since the epoch (RFC 8392 §2). We accept only integers: floats
are legal in RFC 8392 but none of our issuers emit them, and refusing them removes rounding
questions at the edge of a validity window.

`decode_claims` checks the types of the registered claims it knows (iss/sub/aud text, exp/nbf/
iat integers, cti bytes, cnf map, status map) so that code reading a claim never meets an
unexpected type. `check_times` applies the validity rules (see its docstring).

A credential without `exp` is refused as malformed (`DecodeError`), not as expired: an issuer
that forgot the expiry produced a broken credential, and telling the clerk "expired" would be
untrue. `check_times` is the one place this is decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cardsys.errors import DecodeError, ExpiredError, NotYetValidError, ValidationError
from cardsys.formats import cbor

__all__ = [
    "AUD",
    "CNF",
    "CTI",
    "EXP",
    "IAT",
    "ISS",
    "NBF",
    "STATUS",
    "STATUS_LIST",
    "SUB",
    "TTL",
    "check_times",
    "decode_claims",
    "encode_claims",
    "from_numeric_date",
    "get_time",
    "to_numeric_date",
]

# Registered claim keys (RFC 8392 §4; cnf: RFC 8747 §3.1).
ISS: Final = 1
SUB: Final = 2
AUD: Final = 3
EXP: Final = 4
NBF: Final = 5
IAT: Final = 6
CTI: Final = 7
CNF: Final = 8
# Token Status List (draft-ietf-oauth-status-list §5.2, §6.3).
STATUS_LIST: Final = 65533
TTL: Final = 65534
STATUS: Final = 65535

# The type each registered claim must have when present.
_CLAIM_TYPES: Final[dict[int, tuple[type, ...]]] = {
    ISS: (str,),
    SUB: (str,),
    AUD: (str,),
    EXP: (int,),
    NBF: (int,),
    IAT: (int,),
    CTI: (bytes,),
    CNF: (dict,),
    STATUS_LIST: (dict,),
    TTL: (int,),
    STATUS: (dict,),
}
_TIME_CLAIMS: Final = frozenset({EXP, NBF, IAT})

# datetime covers years 1..9999; NumericDates outside that cannot be compared, so refused.
_MIN_TIME: Final = int(datetime(1970, 1, 1, tzinfo=UTC).timestamp())
_MAX_TIME: Final = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


def to_numeric_date(moment: datetime) -> int:
    """A timezone-aware datetime as NumericDate (whole seconds since the epoch, floored).

    Raises:
        ValidationError: a naive datetime (its zone would be a guess).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError("a NumericDate needs a timezone-aware datetime")
    return int(moment.timestamp() // 1)


def from_numeric_date(value: object) -> datetime:
    """A NumericDate claim value as an aware UTC datetime.

    Raises:
        DecodeError: not an integer, or outside 1970..9999.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise DecodeError("a NumericDate must be an integer number of seconds")
    if not _MIN_TIME <= value <= _MAX_TIME:
        raise DecodeError(f"NumericDate {value} is out of range")
    return datetime.fromtimestamp(value, tz=UTC)


def get_time(claims: Mapping[Any, Any], key: int) -> datetime | None:
    """A time claim (exp, nbf, iat) as a datetime, or None when absent."""
    return from_numeric_date(claims[key]) if key in claims else None


def check_times(claims: Mapping[Any, Any], *, now: datetime, skew: timedelta) -> None:
    """Raise unless the claims are valid at `now`, allowing `skew` of clock difference.

    Rules: `exp` must be present, and `now` must be before `exp + skew`; `nbf` and `iat`, when
    present, may be at most `skew` in the future of `now`.

    Raises:
        DecodeError: `exp` is missing, or a time claim is not a valid NumericDate.
        ExpiredError: `now >= exp + skew`.
        NotYetValidError: `nbf` or `iat` later than `now + skew`.
        ValidationError: `now` is naive or `skew` negative (a caller's bug).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError("now must be a timezone-aware datetime")
    if skew < timedelta(0):
        raise ValidationError("the clock-skew allowance cannot be negative")
    # Read every time claim before judging any, so a malformed one is never masked.
    expires = get_time(claims, EXP)
    not_before = {"nbf": get_time(claims, NBF), "iat": get_time(claims, IAT)}
    if expires is None:
        raise DecodeError("the token has no expiry (exp claim)")
    if now >= expires + skew:
        raise ExpiredError(f"expired at {expires.isoformat()}")
    for name, moment in not_before.items():
        if moment is not None and moment > now + skew:
            raise NotYetValidError(f"not valid before {moment.isoformat()} ({name})")


def encode_claims(claims: Mapping[Any, Any]) -> bytes:
    """Encode a claims set as deterministic CBOR.

    Raises:
        ValidationError: a key that is not an int or str, or a registered claim of the
            wrong type.
        TypeError: a value CBOR must not carry (see `cbor.dumps`).
    """
    try:
        _check_claims(claims)
    except DecodeError as exc:
        raise ValidationError(str(exc)) from None
    return cbor.dumps(claims)


def decode_claims(data: bytes, *, max_size: int = cbor.DEFAULT_MAX_SIZE) -> dict[int | str, Any]:
    """Decode a claims set (a COSE payload) and check the registered claims' types.

    Raises:
        DecodeError: not a CBOR map with int/str keys, or a registered claim of the wrong
            type.
    """
    claims = cbor.loads(data, max_size=max_size)
    if not isinstance(claims, dict):
        raise DecodeError("CWT claims must be a CBOR map")
    _check_claims(claims)
    return claims


def _check_claims(claims: Mapping[Any, Any]) -> None:
    # Runs on every credential a terminal verifies: set operations and exact-type tests
    # first, the slower isinstance checks only where those do not settle it.
    for key in claims:
        if type(key) is not int and type(key) is not str and not _is_label(key):
            raise DecodeError(f"CWT claim keys are integers or text, not {type(key).__name__}")
    for key in _CLAIM_TYPES.keys() & claims.keys():
        value = claims[key]
        if isinstance(value, bool) or not isinstance(value, _CLAIM_TYPES[key]):
            raise DecodeError(f"CWT claim {key} has the wrong type ({type(value).__name__})")
        if key in _TIME_CLAIMS and not _MIN_TIME <= claims[key] <= _MAX_TIME:
            raise DecodeError(f"NumericDate {value} in claim {key} is out of range")


def _is_label(key: object) -> bool:
    # int and str subclasses (an IntEnum member, say) are claim keys too; bool is not.
    return isinstance(key, int | str) and not isinstance(key, bool)
