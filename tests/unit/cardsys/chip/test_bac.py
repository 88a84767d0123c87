"""BAC: check digits, K_seed, and mutual authentication per Doc 9303 Part 11 Appendix D."""

from __future__ import annotations

from datetime import date

import pytest

from cardsys.chip import bac
from cardsys.chip.bac import AccessKey, BacCard, BacTerminal
from cardsys.errors import AccessDeniedError, ValidationError

H = bytes.fromhex
SEED = H("239AB9CB282DAF66231DC5A4DF6BFBAE")
RND_IC = H("4608F91988702212")
RND_IFD = H("781723860C06C226")
K_IFD = H("0B795240CB7049B01C19B33E32804F0B")
K_IC = H("0B4F80323EB3191CB04970CB4052790B")
CMD = H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F25F1448EEA8AD90A7")
RESP = H("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449")


@pytest.mark.parametrize(
    ("text", "digit"),
    [
        ("L898902C<", "3"),
        ("690806", "1"),
        ("940623", "6"),
        ("D23145890734", "9"),
        ("520727", "3"),
        ("<<<<<<", "0"),
    ],
)
def test_check_digit(text: str, digit: str) -> None:
    assert bac.check_digit(text) == digit


def test_check_digit_refuses_other_characters() -> None:
    with pytest.raises(ValidationError):
        bac.check_digit("ab12")


def test_worked_example_key_seed() -> None:
    assert bac.mrz_information("L898902C", "690806", "940623") == "L898902C<369080619406236"
    assert bac.key_seed("L898902C", "690806", "940623") == SEED


def test_long_card_number_enters_whole_with_its_check_digit() -> None:
    info = bac.mrz_information("SS110000000017", "690806", "340623")
    assert info.startswith("SS110000000017" + bac.check_digit("SS110000000017"))
    assert len(info) == 15 + 7 + 7
    seeds = {bac.key_seed(n, "690806", "340623") for n in ("SS110000000017", "SS110000000018")}
    assert len(seeds) == 2


@pytest.mark.parametrize(
    ("number", "birth", "expiry"),
    [
        ("", "690806", "940623"),
        ("l898902c", "690806", "940623"),
        ("L898902C", "69086", "940623"),
        ("L898902C", "690806", "94-623"),
    ],
)
def test_bad_access_data(number: str, birth: str, expiry: str) -> None:
    with pytest.raises(ValidationError):
        bac.key_seed(number, birth, expiry)


def test_access_key_seed() -> None:
    key = AccessKey("L898902C", date(1969, 8, 6), date(1994, 6, 23))
    assert key.seed == SEED
    with pytest.raises(ValidationError):
        AccessKey("bad number", date(1969, 8, 6), date(1994, 6, 23))


def test_worked_example_mutual_authentication() -> None:
    terminal = BacTerminal(SEED, rnd_ifd=RND_IFD, k_ifd=K_IFD)
    assert terminal.command_data(RND_IC) == CMD
    card = BacCard(SEED)
    card.challenge(RND_IC)
    answer, card_sm = card.mutual_authenticate(CMD, k_ic=K_IC)
    assert answer == RESP
    session = terminal.finish(RESP)
    assert session.ssc == card_sm.ssc == H("887022120C06C226")
    assert session.protect(H("00A4020C02011E")) == H(
        "0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800"
    )


class _Wire:
    def __init__(self, card: BacCard) -> None:
        self.card = card

    def transmit(self, apdu: bytes) -> bytes:
        if apdu[1] == 0x84:
            return self.card.challenge() + b"\x90\x00"
        try:
            answer, _ = self.card.mutual_authenticate(apdu[5:45])
        except AccessDeniedError:
            return b"\x63\x00"
        return answer + b"\x90\x00"


def test_authenticate_over_a_transport() -> None:
    session = BacTerminal(SEED).authenticate(_Wire(BacCard(SEED)))
    assert len(session.ssc) == 8


def test_wrong_access_key_is_refused_by_the_card() -> None:
    wrong = bac.key_seed("L898902C", "690806", "940624")
    with pytest.raises(AccessDeniedError, match="wrong access key"):
        BacTerminal(wrong).authenticate(_Wire(BacCard(SEED)))


def test_card_refuses_a_second_try_on_one_challenge() -> None:
    card = BacCard(SEED)
    terminal = BacTerminal(SEED)
    data = terminal.command_data(card.challenge())
    card.mutual_authenticate(data)
    with pytest.raises(AccessDeniedError, match="no challenge"):
        card.mutual_authenticate(data)


def test_card_refuses_a_stale_challenge() -> None:
    card = BacCard(SEED)
    terminal = BacTerminal(SEED)
    data = terminal.command_data(card.challenge())
    card.challenge()  # a new challenge replaces the old one
    with pytest.raises(AccessDeniedError, match="echo"):
        card.mutual_authenticate(data)


@pytest.mark.parametrize("position", [0, 20, 33, 39])
def test_terminal_refuses_a_tampered_card_answer(position: int) -> None:
    terminal = BacTerminal(SEED, rnd_ifd=RND_IFD, k_ifd=K_IFD)
    terminal.command_data(RND_IC)
    tampered = bytearray(RESP)
    tampered[position] ^= 0x01
    with pytest.raises(AccessDeniedError):
        terminal.finish(bytes(tampered))


def test_terminal_refuses_an_answer_to_another_session() -> None:
    terminal = BacTerminal(SEED, k_ifd=K_IFD)  # a different RND.IFD than the recorded answer
    terminal.command_data(RND_IC)
    with pytest.raises(AccessDeniedError, match="echo"):
        terminal.finish(RESP)
