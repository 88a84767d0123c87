"""QR images: rendered with qrcode, read back with zxing-cpp, verified."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import qrcode
import qrcode.constants
import qrcode.util
import zxingcpp
from PIL import Image

from cardsys import qrimage
from cardsys.cli_terminal import decode_image
from cardsys.errors import ValidationError
from cardsys.wallet import Wallet, static_text
from tests.unit.verify.conftest import NOW, Agency
from verify.qr import verify_qr
from verify.result import Evidence
from verify.trust import TrustStore


def read(png: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    return str(found[0].text)


@pytest.mark.parametrize("fixed_mask", [0, None])
def test_a_presentation_survives_a_real_png(
    fixed_mask: int | None, wallet: Wallet, store: TrustStore
) -> None:
    text = wallet.presentation(NOW)
    decoded = read(qrimage.png(text, fixed_mask=fixed_mask))
    assert decoded == text
    assert verify_qr(decoded, store, now=NOW).evidence is Evidence.PRESENTATION


def test_a_static_card_qr_survives_a_real_png_file(
    agency: Agency, store: TrustStore, tmp_path: Path
) -> None:
    text = static_text(agency.credential(None))
    path = tmp_path / "card.png"
    path.write_bytes(qrimage.png(text, box_size=3))
    decoded = decode_image(path)
    assert decoded == text
    assert verify_qr(decoded, store, now=NOW).evidence is Evidence.STATIC


def test_the_symbol_is_alphanumeric_mode_at_level_m(wallet: Wallet) -> None:
    text = wallet.presentation(NOW)
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(qrimage.png(text))))[0]
    assert found.ec_level == "M"
    # Alphanumeric mode: 11 bits per 2 characters, so a smaller symbol than byte mode needs.
    byte_mode = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    byte_mode.add_data(qrcode.util.QRData(text.encode(), mode=qrcode.util.MODE_8BIT_BYTE))
    byte_mode.make(fit=True)
    assert byte_mode.version is not None
    assert int(found.extra["Version"]) < byte_mode.version


def test_svg_is_a_vector_image(wallet: Wallet) -> None:
    svg = qrimage.svg(wallet.presentation(NOW))
    assert svg.startswith(b"<?xml")
    assert b"<svg" in svg
    assert b"<path" in svg


@pytest.mark.parametrize("text", ["", "lower case", "SSP1:\u00e9", "x" * 10])
def test_only_qr_alphanumeric_text_is_rendered(text: str) -> None:
    with pytest.raises(ValidationError):
        qrimage.png(text)


def test_too_much_text_is_refused() -> None:
    with pytest.raises(ValidationError, match="does not fit"):
        qrimage.png("A" * 5000)


def test_an_image_without_a_qr_code(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    assert decode_image(blank) is None
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(ValidationError):
        decode_image(junk)
