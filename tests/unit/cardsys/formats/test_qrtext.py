"""cardsys.formats.qrtext: version prefix + Base45, optional zlib, hard limits."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
import qrcode
import qrcode.util
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsys.errors import DecodeError, ValidationError
from cardsys.formats import base45, qrtext
from cardsys.formats.qrtext import PRESENTATION, STATIC_CARD

BOTH = {PRESENTATION, STATIC_CARD}
# A COSE_Sign1 body: tag 18, then the 4-element array.
COSE_BODY = bytes.fromhex("d28443a10126a0437061794040")


def test_prefixes() -> None:
    assert (PRESENTATION, STATIC_CARD) == ("SSP1:", "SSC1:")


@pytest.mark.parametrize("prefix", [PRESENTATION, STATIC_CARD])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(prefix: str, compress: bool) -> None:
    text = qrtext.encode(prefix, COSE_BODY, compress=compress)
    assert text.startswith(prefix)
    assert set(text) <= set(base45.ALPHABET)  # QR alphanumeric mode throughout
    assert qrtext.decode(text, prefixes=BOTH, max_body=1000) == (prefix, COSE_BODY)


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=400), st.booleans())
def test_round_trip_property(body: bytes, compress: bool) -> None:
    if not compress and qrtext.is_zlib(body):
        # An uncompressed body that happens to look like zlib is read as zlib; our bodies
        # are COSE messages (0xD2 / 0x84), so they never do.
        return
    text = qrtext.encode(STATIC_CARD, body, compress=compress)
    assert qrtext.decode(text, prefixes={STATIC_CARD}, max_body=4096) == (STATIC_CARD, body)


def test_compressed_body_from_another_issuer_is_read() -> None:
    # EU DCC style: zlib of the COSE message, Base45, behind a prefix.
    text = PRESENTATION + base45.encode(zlib.compress(COSE_BODY))
    assert qrtext.decode(text, prefixes=BOTH, max_body=100)[1] == COSE_BODY


@pytest.mark.parametrize("first", [0xD2, 0x84])
def test_cose_bodies_are_never_mistaken_for_zlib(first: int) -> None:
    assert not any(qrtext.is_zlib(bytes([first, second])) for second in range(256))


@pytest.mark.parametrize("level", range(10))
def test_zlib_headers_of_every_level_are_detected(level: int) -> None:
    assert qrtext.is_zlib(zlib.compress(COSE_BODY, level))


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\t", "\r\n\r\n"], ids=repr)
def test_surrounding_whitespace_is_stripped(suffix: str) -> None:
    text = qrtext.encode(PRESENTATION, COSE_BODY)
    assert qrtext.decode(suffix + text + suffix, prefixes=BOTH, max_body=100)[1] == COSE_BODY


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t.lower(), "prefix"),
        (lambda t: "ssp1:" + t[5:], "prefix"),
        (lambda t: "SSX1:" + t[5:], "prefix"),
        (lambda t: "SSP2:" + t[5:], "prefix"),
        (lambda t: t[5:], "prefix"),
        (lambda t: "HC1:" + t[5:], "prefix"),
        (lambda t: t[:10] + "\n" + t[10:], "character"),
        (lambda t: t[:10] + "a" + t[11:], "character"),
        (lambda t: t + "\u00a0", "character"),  # no-break space is not stripped
        (lambda t: t + "\x0b", "character"),  # nor vertical tab
        (lambda t: t[:-1], "length|above"),
        (lambda t: t + "00", "length"),
        (lambda t: t[:5] + "GGW" + t[8:], "above 65535"),
    ],
)
def test_malformed_text_is_refused(mangle: Any, reason: str) -> None:
    text = mangle(qrtext.encode(PRESENTATION, COSE_BODY))
    with pytest.raises(DecodeError, match=reason):
        qrtext.decode(text, prefixes=BOTH, max_body=100)


def test_only_the_expected_prefixes_are_accepted() -> None:
    text = qrtext.encode(STATIC_CARD, COSE_BODY)
    assert qrtext.decode(text, prefixes={STATIC_CARD}, max_body=100)[0] == STATIC_CARD
    with pytest.raises(DecodeError, match="prefix"):
        qrtext.decode(text, prefixes={PRESENTATION}, max_body=100)
    with pytest.raises(DecodeError, match="prefix"):
        qrtext.decode(text, prefixes=set(), max_body=100)
    with pytest.raises(DecodeError, match="prefix"):
        qrtext.decode(text, prefixes={""}, max_body=100)


def test_size_limit_before_and_after_decoding() -> None:
    body = b"\xd2" + bytes(99)
    text = qrtext.encode(PRESENTATION, body)
    assert qrtext.decode(text, prefixes=BOTH, max_body=100)[1] == body
    with pytest.raises(DecodeError, match="longer"):
        qrtext.decode(text, prefixes=BOTH, max_body=99)
    # An odd-length limit: 3 * 50 + 2 characters would be 101 bytes.
    odd = qrtext.encode(PRESENTATION, b"\xd2" + bytes(100))
    with pytest.raises(DecodeError, match="longer"):
        qrtext.decode(odd, prefixes=BOTH, max_body=100)


def test_huge_text_is_refused_before_decoding() -> None:
    with pytest.raises(DecodeError, match="longer"):
        qrtext.decode(PRESENTATION + "0" * 10_000_000, prefixes=BOTH, max_body=4096)


def test_zip_bomb_body_is_capped() -> None:
    bomb = zlib.compress(bytes(10_000_000), 9)  # about 10 KB
    text = PRESENTATION + base45.encode(bomb)
    with pytest.raises(DecodeError, match="beyond"):
        qrtext.decode(text, prefixes=BOTH, max_body=len(bomb) + 10)
    small = zlib.compress(b"\xd2" + bytes(200), 9)
    with pytest.raises(DecodeError, match="beyond"):
        qrtext.decode(PRESENTATION + base45.encode(small), prefixes=BOTH, max_body=200)


@pytest.mark.parametrize(
    "body",
    [
        zlib.compress(COSE_BODY)[:-2],  # truncated stream
        zlib.compress(COSE_BODY) + b"\x00",  # trailing data
        zlib.compress(COSE_BODY)[:-1] + b"\x00",  # bad Adler-32
        zlib.compress(b""),  # inflates to nothing
    ],
    ids=["truncated", "trailing", "checksum", "empty"],
)
def test_bad_compressed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(DecodeError):
        qrtext.decode(PRESENTATION + base45.encode(body), prefixes=BOTH, max_body=1000)


@pytest.mark.parametrize("text", ["SSP1:", "  SSP1:\n", None, b"SSP1:BB8", 5], ids=repr)
def test_empty_or_non_text_is_refused(text: Any) -> None:
    with pytest.raises(DecodeError):
        qrtext.decode(text, prefixes=BOTH, max_body=100)


@pytest.mark.parametrize("prefix", ["", "ssp1:", "SSP1;", "SSP\n"], ids=repr)
def test_encode_refuses_prefixes_outside_qr_alphanumeric(prefix: str) -> None:
    with pytest.raises(ValidationError):
        qrtext.encode(prefix, COSE_BODY)


def test_the_longest_matching_prefix_wins() -> None:
    text = qrtext.encode("SSP1:", COSE_BODY)
    for prefixes in (["SS", "SSP1:"], ["SSP1:", "SS"]):
        assert qrtext.decode(text, prefixes=prefixes, max_body=100) == ("SSP1:", COSE_BODY)


def test_text_survives_a_real_qr_code_in_alphanumeric_mode() -> None:
    # Render with qrcode in alphanumeric mode (Base45 is exactly that alphabet, space and
    # ':' '%' '$' included), read the image back with zxing-cpp, decode.
    body = b"\xd2" + bytes(range(256))
    text = qrtext.encode(PRESENTATION, body)
    assert " " in text  # the space character is exercised
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=4)
    code.add_data(qrcode.util.QRData(text, mode=qrcode.util.MODE_ALPHA_NUM))
    code.make(fit=True)
    image = code.make_image().get_image().convert("L")
    (read,) = zxingcpp.read_barcodes(image)
    assert read.text == text
    assert qrtext.decode(read.text, prefixes=BOTH, max_body=1000) == (PRESENTATION, body)
