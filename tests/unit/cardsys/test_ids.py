"""Resident ID numbers and card numbers: only valid values can exist."""

from __future__ import annotations

import dataclasses
import string
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardsys.errors import InvalidCardNumberError, InvalidIdNumberError, ValidationError
from cardsys.ids import MAX_SERIAL, CardNumber, ResidentId, mod11_2_check, mod37_36_check

# The specimen number of GB 11643-1999 (the 18-character resident ID with an ISO 7064
# MOD 11-2 check character), whose check character is X.
SPECIMEN = "11010519491231002X"
VALID_IDS = [SPECIMEN, "110101198005170014", "440305200002290023", "650102190001010011"]


def iso7064_mod11_2(body: str) -> str:
    """ISO 7064 MOD 11-2 by its recursive (pure system) definition, written independently of
    the weight table in cardsys.ids: p <- (p + d) * 2 mod 11, check = (12 - p) mod 11."""
    p = 0
    for char in body:
        p = (p + int(char)) * 2 % 11
    return "0123456789X"[(12 - p) % 11]


def with_check(body: str) -> str:
    return body + iso7064_mod11_2(body)


# --- resident ID numbers ------------------------------------------------------------------


def test_the_test_oracle_agrees_with_the_specimen() -> None:
    assert with_check(SPECIMEN[:17]) == SPECIMEN


@pytest.mark.parametrize("text", VALID_IDS)
def test_valid_id_numbers_are_accepted(text: str) -> None:
    if text != SPECIMEN:
        text = with_check(text[:17])
    rid = ResidentId(text)
    assert rid.value == text
    assert str(rid) == text
    assert rid.region == text[:6]
    assert rid.birth_date == date(int(text[6:10]), int(text[10:12]), int(text[12:14]))


@pytest.mark.parametrize("wrong", sorted(set("0123456789X") - {SPECIMEN[-1]}))
def test_every_wrong_check_character_is_refused(wrong: str) -> None:
    with pytest.raises(InvalidIdNumberError, match="check character"):
        ResidentId(SPECIMEN[:17] + wrong)


@pytest.mark.parametrize(
    ("birth", "why"),
    [
        ("19990230", "30 February"),
        ("20230229", "29 February in a common year"),
        ("19000229", "1900 was not a leap year"),
        ("19991301", "month 13"),
        ("19990001", "month 00"),
        ("19990100", "day 00"),
        ("19990431", "31 April"),
        ("18991231", "before 1900"),
        ("00010101", "year 1"),
    ],
)
def test_impossible_birth_dates_are_refused(birth: str, why: str) -> None:
    # A correct check character, so only the date can be what is refused.
    text = with_check("110105" + birth + "002")
    with pytest.raises(InvalidIdNumberError) as caught:
        ResidentId(text)
    assert birth in str(caught.value) or "1900" in str(caught.value), why


def test_leap_day_in_a_leap_year_is_a_date() -> None:
    assert ResidentId(with_check("11010520000229002")).birth_date == date(2000, 2, 29)


def test_region_000000_is_refused() -> None:
    with pytest.raises(InvalidIdNumberError, match="region"):
        ResidentId(with_check("00000019800517001"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        SPECIMEN[:17],  # 17 characters
        SPECIMEN + "0",  # 19 characters
        SPECIMEN[:-1] + "x",  # lower-case x only through parse()
        "X" + SPECIMEN[1:],  # X anywhere but the end
        "11010519491231A02X",  # a letter in the body
        "1101051949123 002X",  # a space inside
        " " + SPECIMEN,  # surrounding space only through parse()
        SPECIMEN + "\n",
        "１１０１０５１９４９１２３１００２X",  # full-width digits are not ASCII digits
    ],
)
def test_malformed_id_numbers_are_refused(text: str) -> None:
    with pytest.raises(InvalidIdNumberError):
        ResidentId(text)


@pytest.mark.parametrize("value", [None, 11010519491231002, b"11010519491231002X"])
def test_non_text_id_numbers_are_refused(value: object) -> None:
    with pytest.raises(InvalidIdNumberError):
        ResidentId(value)  # type: ignore[arg-type]


def test_id_errors_are_validation_errors() -> None:
    assert issubclass(InvalidIdNumberError, ValidationError)


@pytest.mark.parametrize("text", [SPECIMEN[:-1] + "x", f"  {SPECIMEN}\t", SPECIMEN.lower()])
def test_parse_accepts_lower_case_x_and_surrounding_space(text: str) -> None:
    assert ResidentId.parse(text) == ResidentId(SPECIMEN)


@pytest.mark.parametrize("text", ["", "   ", SPECIMEN[:16], SPECIMEN[:-1] + "y"])
def test_parse_refuses_what_is_still_malformed(text: str) -> None:
    with pytest.raises(InvalidIdNumberError):
        ResidentId.parse(text)


@pytest.mark.parametrize(
    ("region", "born", "sequence"),
    [("00000", date(1980, 1, 1), 1), ("110101", date(1980, 1, 1), 1000),
     ("110101", date(1899, 12, 31), 1), ("000000", date(1980, 1, 1), 1)],
)
def test_build_refuses_what_would_not_be_a_valid_number(
    region: str, born: date, sequence: int
) -> None:
    with pytest.raises(InvalidIdNumberError):
        ResidentId.build(region, born, sequence)


regions = st.integers(1, 999_999).map(lambda n: f"{n:06d}")
birth_dates = st.dates(date(1900, 1, 1), date(2099, 12, 31))


@given(region=regions, born=birth_dates, sequence=st.integers(0, 999))
def test_build_and_parse_round_trip(region: str, born: date, sequence: int) -> None:
    rid = ResidentId.build(region, born, sequence)
    assert len(rid.value) == 18
    assert rid.value[17] == iso7064_mod11_2(rid.value[:17])
    assert (rid.region, rid.birth_date, int(rid.value[14:17])) == (region, born, sequence)
    assert ResidentId.parse(rid.value.lower()) == rid
    assert ResidentId(str(rid)) == rid


@given(
    region=regions,
    born=birth_dates,
    sequence=st.integers(0, 999),
    position=st.integers(0, 17),
    replacement=st.sampled_from("0123456789X"),
)
def test_any_single_substitution_in_an_id_number_is_caught(
    region: str, born: date, sequence: int, position: int, replacement: str
) -> None:
    """MOD 11-2 detects every single substitution (ISO 7064 §5); a changed date digit may
    also be refused as an impossible date — either way the number is refused."""
    original = ResidentId.build(region, born, sequence).value
    if original[position] == replacement:
        return
    mutated = original[:position] + replacement + original[position + 1 :]
    with pytest.raises(InvalidIdNumberError):
        ResidentId(mutated)


@pytest.mark.parametrize(
    "body", ["1101051949123100", "110105194912310021", "1101051949123100A", ""]
)
def test_mod11_2_check_refuses_anything_but_17_digits(body: str) -> None:
    # A public helper: wrong input gets the ID number error, not a bare ValueError.
    with pytest.raises(InvalidIdNumberError):
        mod11_2_check(body)


def test_mod11_2_check_matches_the_independent_definition() -> None:
    bodies = ("00000000000000000", "99999999999999999", "11010519491231002", "12345678901234567")
    for body in bodies:
        assert mod11_2_check(body) == iso7064_mod11_2(body)


def test_a_resident_id_is_frozen() -> None:
    rid = ResidentId(SPECIMEN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rid.value = "110101198005170014"  # type: ignore[misc]
    assert rid.value == SPECIMEN


# --- card numbers -------------------------------------------------------------------------

def iso7064_mod37_36_valid(text: str) -> bool:
    """ISO 7064 MOD 37,36 validation written independently of cardsys.ids: run the hybrid
    recursion over the whole string, check character included; a valid string ends at 1."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    p = 36
    s = 0
    for char in text:
        s = (p + alphabet.index(char)) % 36 or 36
        p = (s * 2) % 37
    return s == 1


@pytest.mark.parametrize("body", ["SS110000000001", "AB990000000123", "ZZ00999999999", "0"])
def test_mod37_36_check_satisfies_the_standard_validation(body: str) -> None:
    assert iso7064_mod37_36_valid(body + mod37_36_check(body))


@pytest.mark.parametrize("text", ["abc", "SS-1", "É1", "12 3"])
def test_mod37_36_check_refuses_characters_outside_its_alphabet(text: str) -> None:
    with pytest.raises(InvalidCardNumberError):
        mod37_36_check(text)


def test_build_gives_the_documented_number() -> None:
    # README: the first card of province 11 is SS110000000017.
    number = CardNumber.build("SS", "11", 1)
    assert number.value == "SS110000000017"
    assert (number.prefix, number.province, number.serial) == ("SS", "11", 1)
    assert str(number) == "SS110000000017"


@pytest.mark.parametrize("serial", [0, -1, MAX_SERIAL + 1])
def test_build_refuses_serials_out_of_range(serial: int) -> None:
    with pytest.raises(InvalidCardNumberError):
        CardNumber.build("SS", "11", serial)


@pytest.mark.parametrize(("prefix", "province"), [("S", "11"), ("SSS", "11"), ("ss", "11"),
                                                  ("S1", "11"), ("SS", "1"), ("SS", "1A")])
def test_build_refuses_a_bad_prefix_or_province(prefix: str, province: str) -> None:
    with pytest.raises(InvalidCardNumberError):
        CardNumber.build(prefix, province, 5)


@pytest.mark.parametrize(
    "text",
    ["", "SS11000000001", "SS1100000000170", "ss110000000017", "SS11000000001X", "S1110000000015",
     "SS 110000000015", "SS11-000000001-5", "SS110000000014", None, 110000000015],
)
def test_malformed_card_numbers_are_refused(text: object) -> None:
    with pytest.raises(InvalidCardNumberError):
        CardNumber(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["ss110000000017", " SS11-0000-0000-17 ", "SS 1100 0000 0017"]
)
def test_parse_accepts_lower_case_spaces_and_dashes(text: str) -> None:
    assert CardNumber.parse(text) == CardNumber("SS110000000017")


@pytest.mark.parametrize("text", ["SS110000000014", "SS11000000001", "SS11.000000001.5", ""])
def test_parse_refuses_what_is_still_malformed_or_wrong(text: str) -> None:
    with pytest.raises(InvalidCardNumberError):
        CardNumber.parse(text)


prefixes = st.text(string.ascii_uppercase, min_size=2, max_size=2)
provinces = st.integers(0, 99).map(lambda n: f"{n:02d}")
serials = st.integers(1, MAX_SERIAL)


@given(prefix=prefixes, province=provinces, serial=serials)
def test_card_number_build_and_parse_round_trip(prefix: str, province: str, serial: int) -> None:
    number = CardNumber.build(prefix, province, serial)
    assert len(number.value) == 14
    assert (number.prefix, number.province, number.serial) == (prefix, province, serial)
    assert CardNumber.parse(number.value.lower()) == number
    assert CardNumber(str(number)) == number


ALPHABET = string.digits + string.ascii_uppercase


@given(
    prefix=prefixes,
    province=provinces,
    serial=serials,
    position=st.integers(2, 13),
    replacement=st.sampled_from(ALPHABET),
)
def test_any_single_substitution_in_the_digits_is_caught(
    prefix: str, province: str, serial: int, position: int, replacement: str
) -> None:
    """Province, serial and check character: MOD 37,36 catches every single substitution; a
    letter among the digits breaks the format anyway."""
    original = CardNumber.build(prefix, province, serial).value
    if original[position] == replacement:
        return
    mutated = original[:position] + replacement + original[position + 1 :]
    with pytest.raises(InvalidCardNumberError):
        CardNumber(mutated)


@pytest.mark.parametrize("position", [0, 1])
def test_any_single_substitution_in_the_prefix_is_caught(position: int) -> None:
    """The brief's rule "any single substituted character is caught", applied to the prefix
    (Doc 9303's 7-3-1 digit missed letters ten apart, such as IS for SS)."""
    original = CardNumber.build("SS", "11", 1).value
    undetected = []
    for replacement in ALPHABET:
        if replacement == original[position]:
            continue
        mutated = original[:position] + replacement + original[position + 1 :]
        try:
            CardNumber(mutated)
        except InvalidCardNumberError:
            continue
        undetected.append(mutated)
    assert undetected == [], f"substitutions the check character does not catch: {undetected}"


def test_a_card_number_is_frozen() -> None:
    number = CardNumber("SS110000000017")
    with pytest.raises(dataclasses.FrozenInstanceError):
        number.value = "SS110000000023"  # type: ignore[misc]
    assert number.value == "SS110000000017"
