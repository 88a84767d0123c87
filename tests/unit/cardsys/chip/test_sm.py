"""Secure Messaging against ICAO Doc 9303 Part 11 Appendix D, and from the attacker's side.

Worked-example values (Doc 9303 Part 11, Appendix D.3/D.4): KSenc, KSmac, SSC after BAC, the
protected SELECT EF.COM and READ BINARY commands and the card's responses, byte for byte.
"""

from __future__ import annotations

import pytest

from cardsys.chip import sm
from cardsys.chip.sm import SecureMessaging, aes_cmac, derive_key
from cardsys.errors import ChipError, SecureMessagingAbortedError, SecureMessagingError

H = bytes.fromhex
KS_ENC = H("979EC13B1CBFE9DCD01AB0FED307EAE5")
KS_MAC = H("F1CB1F1FB5ADF208806B89DC579DC1F8")
SSC = H("887022120C06C226")

# (plain command, protected command, protected response, plain response) — Appendix D.4.
EXCHANGES = [
    (
        "00A4020C02011E",
        "0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800",
        "990290008E08FA855A5D4C50A8ED9000",
        "9000",
    ),
    (
        "00B0000004",
        "0CB000000D9701048E08ED6705417E96BA5500",
        "8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000",
        "60145F019000",
    ),
    (
        "00B0000412",
        "0CB000040D9701128E082EA28A70F3C7B53500",
        "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000",
        "04303130365F36063034303030305C0261759000",
    ),
]


@pytest.mark.parametrize(
    ("seed", "counter", "cipher", "key"),
    [
        # Doc 9303 Part 11 D.2 (document basic access keys) and D.3 (session keys).
        ("239AB9CB282DAF66231DC5A4DF6BFBAE", 1, "3des", "AB94FDECF2674FDFB9B391F85D7F76F2"),
        ("239AB9CB282DAF66231DC5A4DF6BFBAE", 2, "3des", "7962D9ECE03D1ACD4C76089DCE131543"),
        ("0036D272F5C350ACAC50C3F572D23600", 1, "3des", "979EC13B1CBFE9DCD01AB0FED307EAE5"),
        ("0036D272F5C350ACAC50C3F572D23600", 2, "3des", "F1CB1F1FB5ADF208806B89DC579DC1F8"),
        # Doc 9303 Part 11 Appendix G (PACE ECDH worked example): AES-128 session keys.
        (
            "28768D20701247DAE81804C9E780EDE582A9996DB4A315020B2733197DB84925",
            1,
            "aes",
            "F5F0E35C0D7161EE6724EE513A0D9A7F",
        ),
        (
            "28768D20701247DAE81804C9E780EDE582A9996DB4A315020B2733197DB84925",
            2,
            "aes",
            "FE251C7858B356B24514B3BD5F4297D1",
        ),
        ("7E2D2A41C74EA0B38CD36F863939BFA8E9032AAD", 3, "aes", "89DED1B26624EC1E634C1989302849DD"),
    ],
)
def test_derive_key_known_answers(seed: str, counter: int, cipher: str, key: str) -> None:
    assert derive_key(H(seed), counter, cipher).hex().upper() == key


def test_unknown_cipher() -> None:
    with pytest.raises(ChipError):
        derive_key(b"x" * 16, 1, "des")


def test_parity_adjustment() -> None:
    # Doc 9303 Part 11 D.2: Ka before and after parity adjustment.
    assert sm.adjust_parity(H("AB94FCEDF2664EDF")) == H("AB94FDECF2674FDF")


def test_worked_example_terminal_side() -> None:
    session = SecureMessaging(KS_ENC, KS_MAC, SSC)
    for step, (plain, protected, response, opened) in enumerate(EXCHANGES):
        assert session.protect(H(plain)).hex().upper() == protected, step
        assert session.unprotect(H(response)).hex().upper() == opened, step
    assert session.ssc == H("887022120C06C22C")


def test_worked_example_card_side() -> None:
    card = SecureMessaging(KS_ENC, KS_MAC, SSC)
    for plain, protected, response, opened in EXCHANGES:
        assert card.unprotect_command(H(protected)) == H(plain)
        assert card.protect_response(H(opened)).hex().upper() == response


def _pair(cipher: str = "3des") -> tuple[SecureMessaging, SecureMessaging]:
    size = 8 if cipher == "3des" else 16
    keys = (bytes(range(16)), bytes(range(16, 32)), b"\x00" * (size - 1) + b"\x05")
    return SecureMessaging(*keys, cipher=cipher), SecureMessaging(*keys, cipher=cipher)


@pytest.mark.parametrize("cipher", ["3des", "aes"])
@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("00A4020C02011E", "9000"),  # case 3
        ("00B0000000", "AA" * 256 + "9000"),  # case 2, Ne 256
        ("0084000008", "0102030405060708" + "9000"),
        ("00B1000000", "5301029000"),  # odd INS: DO'85'
        ("00B00000" + "000000", "BB" * 20000 + "9000"),  # extended Ne 65536
        ("80D60000" + "000400" + "CC" * 1024, "9000"),  # extended data
        ("00A4040C", "6A82"),  # case 1, error status protected too
    ],
)
def test_round_trip(cipher: str, command: str, answer: str) -> None:
    terminal, card = _pair(cipher)
    wrapped = terminal.protect(H(command))
    assert wrapped[0] & 0x0C == 0x0C
    assert card.unprotect_command(wrapped) == H(command)
    assert terminal.unprotect(card.protect_response(H(answer))) == H(answer)
    assert terminal.ssc == card.ssc


def test_odd_ins_uses_do85_and_extended_le_uses_two_bytes() -> None:
    terminal, _ = _pair()
    odd = terminal.protect(H("00B100000453020001"))
    assert b"\x85" in odd[5:7]
    extended = terminal.protect(H("00B00000000000"))
    assert H("97020000") in extended


def test_aes_cmac_nist_sp800_38b() -> None:
    key = H("2B7E151628AED2A6ABF7158809CF4F3C")  # NIST SP 800-38B D.1 examples 1-3
    assert aes_cmac(key, b"") == H("BB1D6929E95937287FA37D129B756746")
    assert aes_cmac(key, H("6BC1BEE22E409F96E93D7E117393172A")) == H(
        "070A16B46B4D4144F79BDD9DD04A287C"
    )
    message = H("6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E5130C81C46A35CE411")
    assert aes_cmac(key, message) == H("DFA66747DE9AE63030CA32611497C827")


def test_retail_mac_worked_example() -> None:
    # Doc 9303 Part 11 D.3: M_IFD over E_IFD with K_MAC.
    e_ifd = H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2")
    k_mac = H("7962D9ECE03D1ACD4C76089DCE131543")
    assert sm.retail_mac(k_mac, sm.pad(e_ifd, 8)) == H("5F1448EEA8AD90A7")


# --- attacks --------------------------------------------------------------------------------


def _response_session() -> SecureMessaging:
    session = SecureMessaging(KS_ENC, KS_MAC, SSC)
    session.protect(H(EXCHANGES[1][0]))  # pretend the SELECT went by
    session.unprotect(H(EXCHANGES[0][2]))
    session.protect(H(EXCHANGES[1][0]))
    return session


GOOD = H(EXCHANGES[1][2])


@pytest.mark.parametrize("position", range(len(GOOD) - 2))
def test_every_flipped_response_byte_is_refused(position: int) -> None:
    session = _response_session()
    tampered = bytearray(GOOD)
    tampered[position] ^= 0x01
    with pytest.raises(SecureMessagingError):
        session.unprotect(bytes(tampered))
    assert session.closed
    with pytest.raises(SecureMessagingError, match="ended"):
        session.protect(H("00B0000004"))


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("8709019FF0EC34F99226518E08AD55CC17140B2DED9000", "DO'99'"),  # DO'99' removed
        ("8709019FF0EC34F9922651990290009000", "DO'8E'"),  # MAC removed
        ("8709019FF0EC34F9922651990290008E08AD55CC17140B2D", "truncated"),
        ("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED6A82", "trailer differs"),
    ],
)
def test_structurally_bad_responses(response: str, reason: str) -> None:
    session = _response_session()
    with pytest.raises(SecureMessagingError):
        session.unprotect(H(response))


def test_replayed_response_fails_on_the_counter() -> None:
    session = SecureMessaging(KS_ENC, KS_MAC, SSC)
    session.protect(H(EXCHANGES[0][0]))
    session.unprotect(H(EXCHANGES[0][2]))
    session.protect(H(EXCHANGES[1][0]))
    with pytest.raises(SecureMessagingError, match="MAC"):
        session.unprotect(H(EXCHANGES[0][2]))  # the SELECT answer again


def test_bare_status_word_ends_the_session() -> None:
    session = _response_session()
    with pytest.raises(SecureMessagingAbortedError) as caught:
        session.unprotect(H("6988"))
    assert caught.value.sw == 0x6988
    assert session.closed


def test_card_refuses_tampered_and_replayed_commands() -> None:
    card = SecureMessaging(KS_ENC, KS_MAC, SSC)
    tampered = bytearray(H(EXCHANGES[0][1]))
    tampered[9] ^= 0x80
    with pytest.raises(SecureMessagingError):
        card.unprotect_command(bytes(tampered))
    assert card.closed
    replay = SecureMessaging(KS_ENC, KS_MAC, SSC)
    replay.unprotect_command(H(EXCHANGES[0][1]))
    replay.protect_response(H("9000"))
    with pytest.raises(SecureMessagingError):
        replay.unprotect_command(H(EXCHANGES[0][1]))


@pytest.mark.parametrize(
    "command",
    ["00A4020C02011E", "0CA4020C0A8709016375432908C044F600", "0CA4020C00"],
)
def test_card_refuses_unprotected_or_macless_commands(command: str) -> None:
    card = SecureMessaging(KS_ENC, KS_MAC, SSC)
    with pytest.raises(SecureMessagingError):
        card.unprotect_command(H(command))


def test_bad_padding_is_refused_after_a_valid_mac() -> None:
    terminal, card = _pair()
    # Build a DO'87' whose plaintext has no 0x80 marker, with a correct MAC.
    card.skip(2)  # the command and this response
    body = b"\x01" + card._crypt(card.ssc, b"\x00" * 8, encrypt=True)
    do87 = sm.tlv.encode(0x87, body) + sm.tlv.encode(0x99, b"\x90\x00")
    mac = card._mac(card.ssc, do87)
    response = do87 + sm.tlv.encode(0x8E, mac) + b"\x90\x00"
    terminal.protect(H("00B0000008"))
    with pytest.raises(SecureMessagingError, match="padding"):
        terminal.unprotect(response)


@pytest.mark.parametrize(
    ("ks_enc", "ks_mac", "ssc", "cipher"),
    [
        (b"x" * 8, b"x" * 16, b"x" * 8, "3des"),
        (b"x" * 16, b"x" * 16, b"x" * 16, "3des"),
        (b"x" * 16, b"x" * 16, b"x" * 8, "aes"),
        (b"x" * 15, b"x" * 16, b"x" * 16, "aes"),
    ],
)
def test_wrong_key_or_counter_sizes(ks_enc: bytes, ks_mac: bytes, ssc: bytes, cipher: str) -> None:
    with pytest.raises(ChipError):
        SecureMessaging(ks_enc, ks_mac, ssc, cipher)
