"""The whole journey in a real browser: office, phone, terminal.

An operator signs in and enrols a resident (typing the ID number, with a photo); the clerk
applies; a supervisor (not the maker) approves; the card is personalized, handed over and
activated; an activation code is made. A phone (a second browser context, 390x844, mobile)
activates the digital card with a WebCrypto key and shows its QR; a screenshot of the QR is
decoded with zxing-cpp and verified by `verify.verify_qr` against a terminal directory synced
from the app over HTTP; the same text typed into the terminal page (as a USB scanner types it)
shows VALID. With the network cut, the phone still redraws a fresh QR, and after a reload the
service worker still serves the card. After the office revokes the card and the terminal
syncs, a fresh QR shows REFUSED: revoked.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cardsys.errors import RevokedError
from cardsys.ids import ResidentId
from tests.e2e.conftest import Server, decode_qr, shot
from verify.qr import verify_qr
from verify.sync import init_terminal, sync
from verify.trust import TrustStore

pytestmark = pytest.mark.browser

BIRTH = date(1992, 8, 24)
ID_NUMBER = str(ResidentId.build("110105", BIRTH, 271))
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
DESK = {"viewport": {"width": 1280, "height": 860}}


def _context(browser: Any, server: Server, **options: Any) -> Any:
    context = browser.new_context(**options)
    context.add_cookies([{"name": "lang", "value": "en", "url": server.base}])
    return context


def _watch(page: Any, errors: list[str]) -> Any:
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    page.on("console", lambda m: errors.append(f"{page.url}: {m.text}")
            if m.type == "error" and "favicon" not in m.text else None)
    return page


def _sign_in(page: Any, server: Server, login: str) -> None:
    page.goto(server.base + "/office/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", server.logins[login])
    page.click("form[action='/office/login'] button")
    page.wait_for_url(server.base + "/office/")


def _sign_out(page: Any) -> None:
    page.click("form[action='/office/logout'] button")
    page.wait_for_url("**/office/login")


def _card_action(page: Any, number: str, slug: str, *, reason: str | None = None) -> None:
    form = page.locator(f"form[action='/office/cards/{number}/{slug}']")
    if reason is not None:
        form.locator("select[name=reason]").select_option(reason)
        form.locator("input[name=confirm]").check()
    with page.expect_navigation():
        form.locator("button").click()
    assert page.locator(".flash.error").count() == 0, page.locator(".flash.error").all_inner_texts()


def _portrait(path: Path) -> Path:
    image = Image.new("RGB", (90, 120), (200, 180, 160))
    for x in range(30, 60):
        for y in range(20, 60):
            image.putpixel((x, y), (90, 70, 60))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    path.write_bytes(out.getvalue())
    return path


def _qr_text(phone: Any) -> str:
    phone.wait_for_selector("#qr-box:not([hidden]) canvas#qr")
    return decode_qr(phone.locator("canvas#qr").screenshot())


def _scan(terminal: Any, text: str) -> tuple[str, str]:
    """Type the text and Enter into the terminal's field, as a keyboard-wedge scanner does."""
    field = terminal.locator("#scan")
    field.fill("")
    # A scanner types fast; typing character by character checks the field takes it all.
    field.press_sequentially(text, delay=0)
    field.press("Enter")
    # Functions, not expressions: Playwright evaluates an expression with eval(), which the
    # pages' Content Security Policy forbids.
    terminal.wait_for_function(
        "() => /\\b(valid|invalid)\\b/.test(document.getElementById('verdict').className)")
    assert field.input_value() == ""  # cleared for the next scan
    assert terminal.evaluate("document.activeElement.id") == "scan"
    word = terminal.locator("#verdict-word").inner_text()
    reason = terminal.locator("#verdict-reason").get_attribute("data-reason") or ""
    return word, reason


def _terminal_dir(server: Server, tmp_path: Path) -> Path:
    """A terminal directory pinned to the app's root and synced from it over HTTP."""
    import urllib.request

    with urllib.request.urlopen(server.base + "/public/root.pem") as answer:
        root = answer.read()
    directory = tmp_path / "terminal"
    init_terminal(root, directory)
    return directory


def test_office_phone_terminal(browser: Any, server: Server, tmp_path: Path) -> None:
    errors: list[str] = []
    office_context = _context(browser, server, **DESK)
    office = _watch(office_context.new_page(), errors)

    # --- the office: enrol, apply, approve (another person), personalize, hand over, activate
    _sign_in(office, server, "clerk")
    office.goto(server.base + "/office/residents/new")
    office.locator("#id_number").press_sequentially(ID_NUMBER)
    assert office.locator("#id_number-hint").inner_text() == "The ID number is valid."
    assert office.locator("#birth_date").input_value() == BIRTH.isoformat()  # filled by the script
    office.fill("input[name=surname]", "Sun")
    office.fill("input[name=given_names]", "Li")
    office.check("input[name=sex][value=F]")
    office.fill("input[name=schemes]", "URBAN-EMP")
    office.set_input_files("input[name=photo]", str(_portrait(tmp_path / "portrait.jpg")))
    shot(office, "office-enrol", full_page=True)
    with office.expect_navigation():
        office.click("form.enrol button.primary")
    assert office.url.endswith(f"/office/residents/{ID_NUMBER}")
    with office.expect_navigation():
        office.click(f"form[action='/office/residents/{ID_NUMBER}/apply'] button")
    number = office.locator("section.card").first.get_attribute("id").removeprefix("card-")
    assert office.locator(f"form[action='/office/cards/{number}/approve']").count() == 0
    _sign_out(office)

    _sign_in(office, server, "supervisor")
    office.goto(server.base + "/office/queue")
    shot(office, "office-queue", full_page=True)
    office.goto(f"{server.base}/office/cards/{number}")
    for slug in ("approve", "personalize", "hand-over", "activate"):
        _card_action(office, number, slug)
    assert "active" in office.locator(f"#card-{number} .badge").inner_text()
    shot(office, "office-resident", full_page=True)

    office.goto(f"{server.base}/office/activation-codes?q={number}")
    with office.expect_navigation():
        office.click(f"form[action='/office/cards/{number}/activation-code'] button")
    code = office.locator("#activation-code").inner_text()
    assert office.locator("#activation-card").inner_text() == number
    shot(office, "office-activation-code", full_page=True)
    # The code page is not reachable again: going back to the list never shows it.
    office.goto(f"{server.base}/office/activation-codes?q={number}")
    assert code not in office.content()
    office.goto(server.base + "/office/keys")
    shot(office, "office-keys", full_page=True)

    # --- the phone: activate with a WebCrypto key, show the QR ----------------------------
    phone_context = _context(browser, server, **PHONE)
    phone = _watch(phone_context.new_page(), errors)
    phone.goto(f"{server.base}/PORTAL/A/{number}")  # what the activation QR opens
    assert phone.locator("input[name=card_number]").input_value() == number
    phone.fill("input[name=birth_date]", BIRTH.isoformat())
    phone.fill("input[name=code]", code.lower())  # typed as it comes: case does not matter
    shot(phone, "phone-activate")
    phone.click("#activate-form button[type=submit]")
    phone.wait_for_url(server.base + "/portal/")
    first = _qr_text(phone)
    assert first.startswith("SSP1:")
    assert phone.locator("#holder-name").inner_text() == "Sun Li"
    assert phone.locator("#holder-card").inner_text() == number
    # The device key can never be exported, even by the page itself.
    assert phone.evaluate("""async () => {
        const wallet = await import(document.body.dataset.walletModule);
        const held = await wallet.store.load();
        try { await crypto.subtle.exportKey("pkcs8", held.privateKey); return "exported"; }
        catch (e) { return held.privateKey.extractable ? "extractable" : "refused"; }
    }""") == "refused"
    shot(phone, "phone-card")

    # The screenshot's text verifies against a terminal synced from the app over HTTP.
    directory = _terminal_dir(server, tmp_path)
    sync(server.base, directory, now=datetime.now(UTC))
    store = TrustStore.load(directory, now=datetime.now(UTC))
    card = verify_qr(first, store, now=datetime.now(UTC))
    assert card.card_number == number
    assert (card.surname, card.given_names, card.birth_date) == ("Sun", "Li", BIRTH)

    # --- the terminal: the scanner types the same text ---------------------------------------
    terminal_context = _context(browser, server, **DESK)
    terminal = _watch(terminal_context.new_page(), errors)
    terminal.goto(server.base + "/terminal/")
    terminal.click("#sync-now")
    terminal.wait_for_load_state()
    assert _scan(terminal, first) == ("VALID", "valid")
    assert terminal.locator("#holder-card").inner_text() == number
    terminal.wait_for_function("() => document.getElementById('holder-photo').naturalWidth > 0")
    shot(terminal, "terminal-valid", full_page=True)
    assert _scan(terminal, first) == ("REFUSED", "replayed")

    # --- offline: the phone keeps making fresh codes, and the page survives a reload -------
    phone.wait_for_function("() => navigator.serviceWorker.controller !== null",
                           timeout=15_000)
    phone_context.set_offline(True)
    deadline = time.monotonic() + 15
    fresh = first
    while fresh == first and time.monotonic() < deadline:
        phone.wait_for_timeout(500)
        fresh = _qr_text(phone)
    assert fresh != first, "the phone did not redraw its QR offline"
    verify_qr(fresh, store, now=datetime.now(UTC))
    phone.reload()
    offline = _qr_text(phone)
    assert offline not in (first, fresh)
    verify_qr(offline, store, now=datetime.now(UTC))
    shot(phone, "phone-offline")
    phone_context.set_offline(False)

    # --- revocation: the office revokes, the terminal syncs, a fresh QR is refused ---------
    office.goto(f"{server.base}/office/cards/{number}")
    _card_action(office, number, "revoke", reason="stolen")
    assert "revoked" in office.locator(f"#card-{number} .badge").inner_text()
    terminal.goto(server.base + "/terminal/")
    terminal.click("#sync-now")
    terminal.wait_for_load_state()
    phone.reload()
    revoked = _qr_text(phone)
    assert _scan(terminal, revoked) == ("REFUSED", "revoked")
    assert terminal.locator("#verdict-reason").inner_text() == "The card is revoked."
    shot(terminal, "terminal-revoked", full_page=True)
    sync(server.base, directory, now=datetime.now(UTC))
    with pytest.raises(RevokedError):
        verify_qr(revoked, TrustStore.load(directory, now=datetime.now(UTC)),
                  now=datetime.now(UTC))

    # No page failed or logged an error on the way (offline fetches aside).
    assert not [e for e in errors if "net::ERR_INTERNET_DISCONNECTED" not in e], errors

    # The phone learns it when it tries to update its credential (the server answers 409).
    phone.click("#refresh")
    phone.wait_for_function("() => document.getElementById('card-state').textContent !== ''")
    assert "not active" in phone.locator("#card-state").inner_text()
    for context in (office_context, phone_context, terminal_context):
        context.close()
