"""cardsys.formats.cwt: claims (RFC 8392) and the validity-time rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from cardsys.errors import DecodeError, ExpiredError, NotYetValidError, ValidationError
from cardsys.formats import cbor, cwt

# RFC 8392 Appendix A.1: the example claims set and its encoding.
RFC8392_A1_HEX = (
    "a70175636f61703a2f2f61732e6578616d706c652e636f6d02656572696b77037818636f61703a2f2f6c"
    "696768742e6578616d706c652e636f6d041a5612aeb0051a5610d9f0061a5610d9f007420b71"
)
RFC8392_A1_CLAIMS: dict[int | str, Any] = {
    cwt.ISS: "coap://as.example.com",
    cwt.SUB: "erikw",
    cwt.AUD: "coap://light.example.com",
    cwt.EXP: 1444064944,
    cwt.NBF: 1443944944,
    cwt.IAT: 1443944944,
    cwt.CTI: bytes.fromhex("0b71"),
}

SKEW = timedelta(seconds=60)
EXP = datetime.fromtimestamp(1444064944, tz=UTC)
NBF = datetime.fromtimestamp(1443944944, tz=UTC)


def test_claim_keys() -> None:
    registered = (cwt.ISS, cwt.SUB, cwt.AUD, cwt.EXP, cwt.NBF, cwt.IAT, cwt.CTI, cwt.CNF)
    assert registered == (1, 2, 3, 4, 5, 6, 7, 8)
    assert (cwt.STATUS_LIST, cwt.TTL, cwt.STATUS) == (65533, 65534, 65535)


def test_rfc8392_a1_decodes() -> None:
    assert cwt.decode_claims(bytes.fromhex(RFC8392_A1_HEX)) == RFC8392_A1_CLAIMS


def test_rfc8392_a1_encodes_identically() -> None:
    # The RFC's encoding happens to be deterministic (keys 1..7 in order, shortest forms).
    assert cwt.encode_claims(RFC8392_A1_CLAIMS).hex() == RFC8392_A1_HEX


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        (NBF, None),
        (NBF - SKEW, None),  # exactly at the skew allowance
        (NBF - SKEW - timedelta(seconds=1), NotYetValidError),
        (EXP - timedelta(seconds=1), None),
        (EXP, None),  # within the skew after exp
        (EXP + SKEW - timedelta(microseconds=1), None),
        (EXP + SKEW, ExpiredError),
        (EXP + timedelta(days=365), ExpiredError),
    ],
)
def test_rfc8392_a1_times(now: datetime, outcome: type[Exception] | None) -> None:
    if outcome is None:
        cwt.check_times(RFC8392_A1_CLAIMS, now=now, skew=SKEW)
    else:
        with pytest.raises(outcome):
            cwt.check_times(RFC8392_A1_CLAIMS, now=now, skew=SKEW)


def test_without_skew_exp_is_exclusive() -> None:
    claims = {cwt.EXP: 1000}
    at = datetime.fromtimestamp(1000, tz=UTC)
    cwt.check_times(claims, now=at - timedelta(seconds=1), skew=timedelta(0))
    with pytest.raises(ExpiredError):
        cwt.check_times(claims, now=at, skew=timedelta(0))


def test_iat_in_the_future_beyond_skew_is_not_yet_valid() -> None:
    claims = {cwt.EXP: 10_000, cwt.IAT: 5_000}
    now = datetime.fromtimestamp(5_000, tz=UTC)
    cwt.check_times(claims, now=now - SKEW, skew=SKEW)
    with pytest.raises(NotYetValidError, match="iat"):
        cwt.check_times(claims, now=now - SKEW - timedelta(seconds=1), skew=SKEW)


def test_missing_exp_is_refused_as_malformed() -> None:
    with pytest.raises(DecodeError, match="exp"):
        cwt.check_times({cwt.IAT: 0}, now=datetime.now(UTC), skew=SKEW)


def test_other_timezones_compare_correctly() -> None:
    plus8 = timezone(timedelta(hours=8))
    claims = {cwt.EXP: 1000}
    cwt.check_times(claims, now=datetime.fromtimestamp(999, tz=plus8), skew=timedelta(0))
    with pytest.raises(ExpiredError):
        cwt.check_times(claims, now=datetime.fromtimestamp(1000, tz=plus8), skew=timedelta(0))


@pytest.mark.parametrize(
    "claims",
    [
        {cwt.EXP: 1.5e9},
        {cwt.EXP: "1500000000"},
        {cwt.EXP: True},
        {cwt.EXP: -1},
        {cwt.EXP: 2**63},
        {cwt.EXP: 10**6, cwt.NBF: 0.5},
        {cwt.EXP: 10**6, cwt.IAT: None},
    ],
    ids=repr,
)
def test_bad_time_values_are_decode_errors(claims: dict[int | str, Any]) -> None:
    with pytest.raises(DecodeError):
        cwt.check_times(claims, now=datetime.now(UTC), skew=SKEW)


def test_caller_mistakes_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="aware"):
        cwt.check_times({cwt.EXP: 1}, now=datetime(2024, 1, 1), skew=SKEW)
    with pytest.raises(ValidationError, match="negative"):
        cwt.check_times({cwt.EXP: 1}, now=datetime.now(UTC), skew=-SKEW)
    with pytest.raises(ValidationError):
        cwt.to_numeric_date(datetime(2024, 1, 1))


def test_numeric_date_helpers() -> None:
    moment = datetime(2025, 3, 1, 12, 0, 0, 999_999, tzinfo=UTC)
    assert cwt.to_numeric_date(moment) == 1740830400
    assert cwt.from_numeric_date(1740830400) == moment.replace(microsecond=0)
    assert cwt.to_numeric_date(datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)) == -1
    assert cwt.get_time({cwt.EXP: 0}, cwt.EXP) == datetime(1970, 1, 1, tzinfo=UTC)
    assert cwt.get_time({}, cwt.NBF) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([1, 2], "map"),
        ("claims", "map"),
        ({b"k": 1}, "keys"),
        ({cwt.ISS: 5}, "wrong type"),
        ({cwt.SUB: b"erikw"}, "wrong type"),
        ({cwt.AUD: ["a", "b"]}, "wrong type"),
        ({cwt.EXP: "tomorrow"}, "wrong type"),
        ({cwt.IAT: False}, "wrong type"),
        ({cwt.CTI: "0b71"}, "wrong type"),
        ({cwt.CNF: b"key"}, "wrong type"),
        ({cwt.STATUS: []}, "wrong type"),
        ({cwt.TTL: "1h"}, "wrong type"),
        ({cwt.EXP: -5}, "out of range"),
    ],
    ids=repr,
)
def test_decode_claims_refuses(value: Any, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        cwt.decode_claims(cbor.dumps(value))


def test_private_claims_pass_through() -> None:
    claims = {cwt.EXP: 2_000_000_000, -70000: {"card": "123"}, "name": "x", 99: [1]}
    assert cwt.decode_claims(cwt.encode_claims(claims)) == claims


def test_decode_claims_refuses_bombs_and_garbage() -> None:
    with pytest.raises(DecodeError):
        cwt.decode_claims(b"\xa1\x01" + b"\x81" * 10_000 + b"\x00")
    with pytest.raises(DecodeError):
        cwt.decode_claims(b"")
    with pytest.raises(DecodeError):
        cwt.decode_claims(cbor.dumps({1: "x"}), max_size=3)


def test_encode_claims_refuses_bad_claims() -> None:
    with pytest.raises(ValidationError):
        cwt.encode_claims({cwt.EXP: "soon"})
    with pytest.raises(ValidationError):
        cwt.encode_claims({1.5: 0})
