"""The phone's QR encoder (web/static/qr/qr.js), run in chromium.

Three kinds of evidence:
- round trips: the symbol drawn on a canvas (or as SVG) is decoded by zxing-cpp, which must
  return the exact text and the version, level and mask the encoder reports;
- byte-exact: the module matrix equals the Python `qrcode` package's for the same version,
  level, mask and mode (pins Reed-Solomon, interleaving, placement, format and version bits),
  and the encoder's version choice equals the capacity in qrcode's own table;
- the automatic mask: qr.js's penalty equals `qrcode.util.lost_point` on every candidate,
  and the chosen mask is the lowest-penalty one. qrcode itself picks differently on some
  inputs; the test pins why (see test_qrcode_scores_masks_without_format_information).
"""

from __future__ import annotations

import base64
import io
import random
import re
from typing import Any

import pytest
import qrcode
import qrcode.util
import zxingcpp
from PIL import Image
from qrcode.util import MODE_8BIT_BYTE, MODE_ALPHA_NUM, QRData

pytestmark = pytest.mark.browser

ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
LEVELS = "LMQH"
QRCODE_LEVEL = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
QRCODE_MODE = {"alphanumeric": MODE_ALPHA_NUM, "byte": MODE_8BIT_BYTE}
PRESENTATION_LENGTH = 700  # a typical SSP1: presentation text
QR_ONLY = zxingcpp.barcode_formats_from_str("QRCode")


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def count_bits(version: int, mode: str) -> int:
    """Character count indicator length, ISO/IEC 18004:2015 Table 3."""
    table = {"alphanumeric": (9, 11, 13), "byte": (8, 16, 16)}[mode]
    return table[0] if version <= 9 else table[1] if version <= 26 else table[2]


def data_bits(version: int, level: str) -> int:
    """Data capacity in bits, from qrcode's table (an independent source for qr.js's)."""
    return int(qrcode.util.BIT_LIMIT_TABLE[QRCODE_LEVEL[level]][version])


def alphanumeric_capacity(version: int, level: str) -> int:
    """The most alphanumeric characters that fit (11 bits a pair, 6 for an odd last one)."""
    free = data_bits(version, level) - 4 - count_bits(version, "alphanumeric")
    return 2 * (free // 11) + (1 if free % 11 >= 6 else 0)


def byte_capacity(version: int, level: str) -> int:
    return (data_bits(version, level) - 4 - count_bits(version, "byte")) // 8


def presentation_text(length: int, seed: int) -> str:
    """An `SSP1:` + Base45-alphabet text of exactly `length` characters."""
    rng = random.Random(seed)
    body = "".join(rng.choice(ALPHANUMERIC) for _ in range(max(0, length - 5)))
    return ("SSP1:" + body)[:length]


def utf8_text(byte_length: int, seed: int) -> str:
    """Chinese (3 UTF-8 bytes each) and ASCII lowercase, exactly `byte_length` bytes."""
    rng = random.Random(seed)
    han = "社会保障卡张三李四王五医院终端验证居民"
    text = "".join(rng.choice(han) for _ in range(byte_length // 3))
    text += "".join(rng.choice("abcxyz") for _ in range(byte_length % 3))
    assert len(text.encode()) == byte_length
    return text


def js_encode(page: Any, cases: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Encode a batch in the page; each entry is {"ok": summary} or {"error", "message"}."""
    results: list[dict[str, Any]] = page.evaluate(
        "(cases) => window.qrTest.encodeMany(cases)", cases
    )
    return results


def encoded(page: Any, text: str, options: dict[str, Any]) -> dict[str, Any]:
    [result] = js_encode(page, [(text, options)])
    assert "ok" in result, result
    summary: dict[str, Any] = result["ok"]
    return summary


def qrcode_matrix(
    payload: bytes, version: int, level: str, mask: int, mode: str
) -> list[list[bool]]:
    """The Python qrcode package's modules for exactly this version, level, mask and mode."""
    symbol = qrcode.QRCode(
        version=version, error_correction=QRCODE_LEVEL[level], mask_pattern=mask, border=0
    )
    symbol.add_data(QRData(payload, mode=QRCODE_MODE[mode]))
    symbol.make(fit=False)
    return [[bool(module) for module in row] for row in symbol.modules]


def as_bits(matrix: list[list[bool]]) -> str:
    return "".join("1" if module else "0" for row in matrix for module in row)


def as_rows(bits: str, size: int) -> list[str]:
    return [bits[row * size : (row + 1) * size] for row in range(size)]


def assert_same_matrix(ours: dict[str, Any], theirs: list[list[bool]]) -> None:
    """Compare row by row so a failure names the first differing row."""
    assert len(theirs) == ours["size"]
    expected = as_rows(as_bits(theirs), ours["size"])
    actual = as_rows(ours["bits"], ours["size"])
    for row, (mine, reference) in enumerate(zip(actual, expected, strict=True)):
        assert mine == reference, f"row {row} differs"


def decode_png(data_url: str) -> tuple[Image.Image, Any]:
    """The PNG behind a data: URL, and zxing-cpp's single QR code read from it."""
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix) :]))).convert("L")
    return image, read_one(image)


def read_one(image: Image.Image) -> Any:
    """zxing-cpp's reading of the one QR code in `image`."""
    found = zxingcpp.read_barcodes(image, formats=QR_ONLY)
    assert len(found) == 1, f"zxing found {len(found)} QR codes"
    return found[0]


def assert_pixels_match(image: Image.Image, symbol: dict[str, Any], scale: int, quiet: int) -> None:
    """Every module's centre pixel has the module's colour; the quiet zone is white."""
    side = (symbol["size"] + 2 * quiet) * scale
    assert image.size == (side, side)
    pixels = image.load()
    assert pixels is not None
    for row in range(-quiet, symbol["size"] + quiet):
        for col in range(-quiet, symbol["size"] + quiet):
            inside = 0 <= row < symbol["size"] and 0 <= col < symbol["size"]
            dark = inside and symbol["bits"][row * symbol["size"] + col] == "1"
            centre = ((col + quiet) * scale + scale // 2, (row + quiet) * scale + scale // 2)
            assert pixels[centre] == (0 if dark else 255), f"module ({row}, {col})"


def canvas_round_trip(
    page: Any, text: str, options: dict[str, Any], scale: int = 4, quiet: int = 4
) -> dict[str, Any]:
    """Draw on a canvas, check its pixels, decode with zxing; return the encoder's summary."""
    result = page.evaluate(
        "([text, options, draw]) => window.qrTest.canvasPng(text, options, draw)",
        [text, options, {"scale": scale, "quiet": quiet}],
    )
    assert "ok" in result, result
    symbol: dict[str, Any] = result["ok"]
    image, barcode = decode_png(symbol["png"])
    assert_pixels_match(image, symbol, scale, quiet)
    assert barcode.valid
    assert barcode.text == text
    assert barcode.bytes == text.encode()
    assert barcode.extra["Version"] == str(symbol["version"])
    assert barcode.ec_level == symbol["ecl"] == options.get("ecl", "M")
    assert barcode.extra["DataMask"] == symbol["mask"]
    return symbol


# ----------------------------------------------------------------------------------------------
# Round trips through zxing-cpp
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(1, 41))
def test_alphanumeric_at_each_version_boundary_round_trips(qr_page: Any, version: int) -> None:
    """The longest text for a version stays in it; one character more takes the next one."""
    longest = alphanumeric_capacity(version, "M")
    symbol = canvas_round_trip(qr_page, presentation_text(longest, version), {"ecl": "M"})
    assert (symbol["version"], symbol["mode"]) == (version, "alphanumeric")
    if version < 40:
        text = presentation_text(longest + 1, 1000 + version)
        assert canvas_round_trip(qr_page, text, {"ecl": "M"})["version"] == version + 1


@pytest.mark.parametrize("mask", range(-1, 8))
@pytest.mark.parametrize("level", LEVELS)
def test_every_level_and_mask_round_trips(qr_page: Any, level: str, mask: int) -> None:
    text = presentation_text(PRESENTATION_LENGTH, seed=7)
    symbol = canvas_round_trip(qr_page, text, {"ecl": level, "mask": mask})
    if mask >= 0:
        assert symbol["mask"] == mask
    assert symbol["mode"] == "alphanumeric"


BYTE_TEXTS = [
    "hello, world",
    "SSP1:lower case letters force byte mode",
    "社会保障卡：张三，男，1980年1月1日，北京市",
    "Müller-Lüdenscheidt ½ € ß",
    "emoji 🙂 and a tab\tand a newline\n",
    "https://cardsys.example/portal?card=123&x=%20",
    utf8_text(600, seed=3),  # past version 9: the 16-bit character count
]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("text", BYTE_TEXTS, ids=range(len(BYTE_TEXTS)))
def test_utf8_text_round_trips_in_byte_mode(qr_page: Any, text: str, level: str) -> None:
    symbol = canvas_round_trip(qr_page, text, {"ecl": level})
    assert symbol["mode"] == "byte"


def test_minimum_version_is_honoured(qr_page: Any) -> None:
    symbol = canvas_round_trip(qr_page, "SSP1:A", {"ecl": "Q", "minVersion": 12, "mask": 5})
    assert (symbol["version"], symbol["size"]) == (12, 65)


def test_forced_byte_mode_for_alphanumeric_text(qr_page: Any) -> None:
    symbol = canvas_round_trip(qr_page, "SSP1:ABC", {"mode": "byte"})
    assert symbol["mode"] == "byte"
    assert_same_matrix(symbol, qrcode_matrix(b"SSP1:ABC", 1, "M", symbol["mask"], "byte"))


def test_empty_text_is_version_1(qr_page: Any) -> None:
    symbol = encoded(qr_page, "", {"mask": 2})
    assert (symbol["version"], symbol["size"], symbol["mode"]) == (1, 21, "alphanumeric")
    assert_same_matrix(symbol, qrcode_matrix(b"", 1, "M", 2, "alphanumeric"))


SVG_RUN = re.compile(r"M(\d+) (\d+)h(\d+)v1h-(\d+)z")


@pytest.mark.parametrize(("text", "quiet"), [("SSP1:" + "A1B2" * 40, 4), ("社会保障卡", 6)])
def test_svg_holds_exactly_the_modules_and_decodes(qr_page: Any, text: str, quiet: int) -> None:
    result = qr_page.evaluate(
        "([text, quiet]) => window.qrTest.svg(text, {ecl: 'Q'}, {quiet})", [text, quiet]
    )
    symbol = result["ok"]
    svg, size = symbol["svg"], symbol["size"]
    side = size + 2 * quiet
    assert f'viewBox="0 0 {side} {side}"' in svg
    path = re.search(r' d="([^"]*)"', svg)
    assert path is not None
    grid = [["0"] * size for _ in range(size)]
    for x, y, length, back in SVG_RUN.findall(path.group(1)):
        assert length == back
        for col in range(int(x) - quiet, int(x) - quiet + int(length)):
            assert grid[int(y) - quiet][col] == "0", "runs overlap"
            grid[int(y) - quiet][col] = "1"
    assert SVG_RUN.sub("", path.group(1)) == "", "unexpected path commands"
    assert "".join("".join(row) for row in grid) == symbol["bits"]

    qr_page.evaluate(
        """([svg, pixels]) => {
             const holder = document.createElement("div");
             holder.id = "svg-under-test";
             holder.style.cssText = `width:${pixels}px;height:${pixels}px;line-height:0`;
             holder.innerHTML = svg;
             holder.firstElementChild.style.cssText = "width:100%;height:100%";
             document.body.append(holder);
           }""",
        [svg, side * 5],
    )
    holder = qr_page.locator("#svg-under-test")
    try:
        shot = Image.open(io.BytesIO(holder.screenshot())).convert("L")
    finally:
        holder.evaluate("(element) => element.remove()")
    barcode = read_one(shot)
    assert barcode.text == text
    assert barcode.extra["Version"] == str(symbol["version"])


# ----------------------------------------------------------------------------------------------
# Byte-exact against the Python qrcode package
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(1, 41))
def test_matrix_equals_qrcode_for_every_level(qr_page: Any, version: int) -> None:
    """Full symbols in both modes, one mask per level (every mask is used across versions)."""
    cases: list[tuple[str, dict[str, Any], str]] = []
    for index, level in enumerate(LEVELS):
        text = presentation_text(alphanumeric_capacity(version, level), 50 + version)
        cases.append((text, {"ecl": level, "mask": (version + index) % 8}, "alphanumeric"))
        text = utf8_text(byte_capacity(version, level), 90 + version)
        cases.append((text, {"ecl": level, "mask": (version + index + 4) % 8}, "byte"))
    results = js_encode(qr_page, [(text, options) for text, options, _ in cases])
    for (text, options, mode), result in zip(cases, results, strict=True):
        symbol = result["ok"]
        assert (symbol["version"], symbol["mode"], symbol["mask"]) == (
            version,
            mode,
            options["mask"],
        )
        reference = qrcode_matrix(text.encode(), version, options["ecl"], options["mask"], mode)
        assert_same_matrix(symbol, reference)


@pytest.mark.parametrize("version", [1, 2, 6, 7, 9, 10, 26, 27, 40])
def test_matrix_equals_qrcode_for_every_mask(qr_page: Any, version: int) -> None:
    cases = [
        (presentation_text(alphanumeric_capacity(version, level) // 2, version), level, mask)
        for level in LEVELS
        for mask in range(8)
    ]
    results = js_encode(
        qr_page,
        [
            (text, {"ecl": level, "mask": mask, "minVersion": version})
            for text, level, mask in cases
        ],
    )
    for (text, level, mask), result in zip(cases, results, strict=True):
        symbol = result["ok"]
        assert symbol["version"] == version
        assert_same_matrix(
            symbol, qrcode_matrix(text.encode(), version, level, mask, "alphanumeric")
        )


# ----------------------------------------------------------------------------------------------
# The automatic mask (ISO/IEC 18004:2015 7.8.3)
# ----------------------------------------------------------------------------------------------

AUTO_MASK_CASES = [
    ("HELLO WORLD", "Q"),
    ("SSP1:", "M"),
    (presentation_text(120, 1), "L"),
    (presentation_text(300, 2), "M"),
    (presentation_text(PRESENTATION_LENGTH, 3), "M"),
    (presentation_text(PRESENTATION_LENGTH, 4), "Q"),
    (presentation_text(1200, 5), "H"),
    ("社会保障卡 张三", "M"),
    ("SSP1:F", "L"),  # masks 0 and 3 tie at 308: the lower number wins
    ("SSP1:F", "Q"),  # masks 4 and 6 tie at 304
]


def candidates(text: str, symbol: dict[str, Any]) -> list[list[list[bool]]]:
    """qrcode's complete symbols for masks 0-7 at the version qr.js chose."""
    payload = text.encode()
    return [
        qrcode_matrix(payload, symbol["version"], symbol["ecl"], mask, symbol["mode"])
        for mask in range(8)
    ]


@pytest.mark.parametrize(("text", "level"), AUTO_MASK_CASES)
def test_automatic_mask_has_the_lowest_penalty(qr_page: Any, text: str, level: str) -> None:
    symbol = encoded(qr_page, text, {"ecl": level})
    matrices = candidates(text, symbol)
    ours = qr_page.evaluate(
        "(matrices) => window.qrTest.penalties(matrices)",
        [as_rows(as_bits(matrix), symbol["size"]) for matrix in matrices],
    )
    # The same four rules as qrcode's lost_point, to the point...
    assert ours == [qrcode.util.lost_point(matrix) for matrix in matrices]
    # ...and the lowest score wins, the lower mask number on a tie.
    assert symbol["mask"] == ours.index(min(ours))
    assert_same_matrix(symbol, matrices[symbol["mask"]])


def blank_format_and_version(matrix: list[list[bool]], version: int) -> list[list[bool]]:
    """The matrix as qrcode scores it: format and version areas and the dark module light."""
    size = len(matrix)
    blank = [row[:] for row in matrix]
    for k in range(9):
        if k != 6:  # (6, 8) and (8, 6) belong to the timing patterns
            blank[8][k] = blank[k][8] = False  # first format copy
    for k in range(8):
        blank[8][size - 1 - k] = False
        blank[size - 1 - k][8] = False  # second copy, and the dark module at (size - 8, 8)
    if version >= 7:
        for a in range(6):
            for b in range(size - 11, size - 8):
                blank[a][b] = blank[b][a] = False
    return blank


def qrcode_own_choice(text: str, symbol: dict[str, Any], matrices: list[list[list[bool]]]) -> int:
    """Which of the eight candidates qrcode's automatic mask selection produces."""
    chooser = qrcode.QRCode(
        version=symbol["version"], error_correction=QRCODE_LEVEL[symbol["ecl"]], border=0
    )
    chooser.add_data(QRData(text.encode(), mode=QRCODE_MODE[symbol["mode"]]))
    chooser.make(fit=False)
    chosen = [[bool(module) for module in row] for row in chooser.modules]
    return matrices.index(chosen)


@pytest.mark.parametrize(("text", "level"), AUTO_MASK_CASES)
def test_qrcode_scores_masks_without_format_information(
    qr_page: Any, text: str, level: str
) -> None:
    """Where the automatic choices may differ, and why.

    7.8.3 scores "the results of applying each mask pattern", i.e. the symbol as it will be
    printed; qr.js therefore scores each candidate with its own format information (which
    encodes the mask), version information and the dark module. qrcode scores a matrix in
    which those 67 modules (31 below version 7) are all light. Same rules, different input:
    the two argmins differ on some texts, and each argmin is exactly what its input implies.
    """
    symbol = encoded(qr_page, text, {"ecl": level})
    matrices = candidates(text, symbol)
    blanked = [
        qrcode.util.lost_point(blank_format_and_version(m, symbol["version"])) for m in matrices
    ]
    assert qrcode_own_choice(text, symbol, matrices) == blanked.index(min(blanked))


@pytest.mark.parametrize(
    ("text", "level", "same"),
    [
        ("HELLO WORLD", "Q", True),
        (presentation_text(PRESENTATION_LENGTH, 3), "M", True),
        (presentation_text(1200, 5), "H", True),
        ("社会保障卡 张三", "M", True),
        ("SSP1:", "M", False),  # qr.js 6, qrcode 0
        (presentation_text(300, 2), "M", False),  # qr.js 3, qrcode 6
        (presentation_text(PRESENTATION_LENGTH, 3), "Q", False),  # qr.js 7, qrcode 2
    ],
)
def test_automatic_mask_against_qrcode_choice(
    qr_page: Any, text: str, level: str, same: bool
) -> None:
    """Equal on most texts; where not, the previous test shows it is the scored input."""
    symbol = encoded(qr_page, text, {"ecl": level})
    theirs = qrcode_own_choice(text, symbol, candidates(text, symbol))
    assert (symbol["mask"] == theirs) is same


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_too_long_for_version_40_is_a_range_error(qr_page: Any, level: str) -> None:
    longest = alphanumeric_capacity(40, level)
    fits, too_long, bytes_too_long = js_encode(
        qr_page,
        [
            (presentation_text(longest, 1), {"ecl": level, "mask": 0}),
            (presentation_text(longest + 1, 1), {"ecl": level, "mask": 0}),
            ("x" * (byte_capacity(40, level) + 1), {"ecl": level, "mask": 0}),
        ],
    )
    assert fits["ok"]["version"] == 40
    for result in (too_long, bytes_too_long):
        assert result["error"] == "RangeError"
        assert "too long" in result["message"]
        assert f"40-{level}" in result["message"]


@pytest.mark.parametrize(
    ("text", "options", "error"),
    [
        ("abc", {"mode": "alphanumeric"}, "RangeError"),  # lower case is not alphanumeric
        ("A\u00c4", {"mode": "alphanumeric"}, "RangeError"),
        ("A", {"mode": "kanji"}, "RangeError"),
        ("A", {"ecl": "X"}, "RangeError"),
        ("A", {"ecl": "__proto__"}, "RangeError"),
        ("A", {"ecl": "toString"}, "RangeError"),
        ("A", {"mask": 8}, "RangeError"),
        ("A", {"mask": -2}, "RangeError"),
        ("A", {"mask": 1.5}, "RangeError"),
        ("A", {"mask": "3"}, "RangeError"),
        ("A", {"minVersion": 0}, "RangeError"),
        ("A", {"minVersion": 41}, "RangeError"),
        ("A", {"minVersion": None}, "RangeError"),
        (None, {}, "TypeError"),
        (12345, {}, "TypeError"),
        (["SSP1:"], {}, "TypeError"),
    ],
)
def test_bad_input_is_refused_by_name(
    qr_page: Any, text: Any, options: dict[str, Any], error: str
) -> None:
    [result] = js_encode(qr_page, [(text, options)])
    assert result.get("error") == error, result
    assert result["message"]


@pytest.mark.parametrize("options", [{"scale": 0}, {"scale": 2.5}, {"quiet": -1}, {"scale": "6"}])
def test_bad_drawing_options_are_range_errors(qr_page: Any, options: dict[str, Any]) -> None:
    names = qr_page.evaluate(
        """async (options) => {
             const qr = await import("/qr.js");
             const symbol = qr.encode("SSP1:X");
             const errors = [];
             for (const draw of [(o) => qr.drawCanvas(document.createElement("canvas"), symbol, o),
                                 (o) => qr.toSvg(symbol, o)]) {
               try { draw(options); errors.push("none"); } catch (e) { errors.push(e.name); }
             }
             return errors;
           }""",
        options,
    )
    expected_svg = "none" if "quiet" not in options else "RangeError"
    assert names == ["RangeError", expected_svg]


def test_lone_surrogate_is_encoded_as_replacement_character(qr_page: Any) -> None:
    """A broken UTF-16 string still makes a valid symbol (TextEncoder writes U+FFFD)."""
    symbol = encoded(qr_page, "A\ud800B", {"mask": 1})
    assert symbol["mode"] == "byte"
    assert_same_matrix(
        symbol, qrcode_matrix("A\ufffdB".encode(), symbol["version"], "M", 1, "byte")
    )
