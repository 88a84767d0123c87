"""End to end through the `cardsys` command: provision a phone, sync a terminal, verify,
revoke, publish, sync again, refused. The README's "Digital cards" and "Verifying at a
terminal" journeys, on a real instance with a file key store."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli import CLEAN, Run, run_cli

HOLDER = "11010519491231002X"


@dataclass(frozen=True)
class Cli:
    env: dict[str, str | None]

    def __call__(self, *args: str) -> Run:
        return run_cli(self.env, *args)

    def ok(self, *args: str) -> Run:
        result = self(*args)
        assert result.code == 0, f"{args}: {result.err or result.out}"
        return result


@pytest.fixture
def cardsys(tmp_path: Path) -> Cli:
    instance = tmp_path / "instance"
    env = CLEAN | {
        "CARDSYS_INSTANCE_PATH": str(instance),
        "CARDSYS_KEY_PASSPHRASE_FILE": str(instance / "dev-key-passphrase"),
    }
    run = Cli(env)
    run.ok("init")
    run.ok("keys", "dev-pki")
    run.ok("office", "add", "NB-01", "--name", "Ningbo", "--region", "330203", "--as", "admin")
    for login, role in (("alice", "clerk"), ("bob", "supervisor"), ("carol", "supervisor")):
        run.ok("operator", "add", login, "--name", login.title(), "--role", role,
               "--office", "NB-01", "--as", "admin")
    run.ok("resident", "add", HOLDER, "--surname", "Wang", "--given-names", "Li", "--sex", "F",
           "--scheme", "URBAN-EMP", "--as", "alice")
    return run


def physical_card(run: Cli) -> str:
    number: str = run.ok("card", "apply", HOLDER, "--as", "alice", "--json").json()["number"]
    run.ok("card", "approve", number, "--as", "bob")
    for step in ("personalize", "issue", "activate"):
        run.ok("card", step, number, "--as", "alice")
    return number


def pinned_terminal(run: Cli, tmp_path: Path) -> Path:
    """A terminal provisioned with the root certificate the agency hands out."""
    root = tmp_path / "root.pem"
    run.ok("keys", "export-root", "--out", str(root))
    terminal = tmp_path / "terminal"
    run.ok("terminal", "init", "--root", str(root), "--dir", str(terminal))
    return terminal


def show_and_verify(run: Cli, wallet: Path, terminal: Path, nonce: str, *extra: str) -> Run:
    """The terminal shows a challenge, the phone answers it, the terminal verifies. (Two
    proofs made in the same second without a challenge are the same presentation.)"""
    text = run.ok("wallet", "qr", "--wallet", str(wallet), "--nonce", nonce).out.strip()
    return run("verify", "qr", text, "--trust", str(terminal), "--nonce", nonce, *extra)


def test_provision_verify_revoke_refused(cardsys: Cli, tmp_path: Path) -> None:
    card = physical_card(cardsys)
    code = cardsys.ok("digital", "activation-code", card, "--as", "alice", "--json").json()["code"]
    wallet = tmp_path / "phone.wallet"
    activated = cardsys.ok("wallet", "activate", "--code", code, "--card-number", card,
                           "--birth-date", "1949-12-31", "--wallet", str(wallet), "--json")
    phone = activated.json()["card_number"]
    assert stat.S_IMODE(os.stat(wallet).st_mode) == 0o600
    assert "status list" in activated.err  # republished right after the commit
    assert code.replace("-", "") not in wallet.read_text()

    instance = tmp_path / "instance"
    published = cardsys.ok("status", "publish", "--json").json()
    assert published["trust_list"].endswith("trust-list")
    terminal = pinned_terminal(cardsys, tmp_path)
    cardsys.ok("terminal", "sync", "--from", str(instance / "public"), "--dir", str(terminal))

    text = cardsys.ok("wallet", "qr", "--wallet", str(wallet)).out.strip()
    assert text.startswith("SSP1:")
    valid = cardsys("verify", "qr", text, "--trust", str(terminal))
    assert valid.code == 0, valid.out + valid.err
    assert valid.out.startswith("VALID presentation")
    assert f"card {card}" in valid.out
    assert "Wang, Li" in valid.out
    replayed = cardsys("verify", "qr", text, "--trust", str(terminal), "--json")
    assert replayed.code == 1
    assert replayed.json()["reason"] == "replayed"

    # A proof made within the same second (and without a challenge) would be the same
    # presentation, so this one answers the terminal's challenge.
    image = tmp_path / "qr.png"
    cardsys.ok("wallet", "qr", "--wallet", str(wallet), "--nonce", "c0ffee", "--png", str(image))
    unanswered = cardsys("verify", "image", str(image), "--trust", str(terminal), "--json",
                         "--nonce", "beef")
    assert unanswered.json()["reason"] == "stale_proof"
    by_image = cardsys("verify", "image", str(image), "--trust", str(terminal), "--json",
                       "--nonce", "c0ffee")
    assert by_image.code == 0, by_image.out + by_image.err
    assert by_image.json()["card"]["document_number"] == phone

    revoked = cardsys.ok("digital", "revoke", phone, "--reason", "lost", "--as", "bob")
    assert "republished" in revoked.err
    still = show_and_verify(cardsys, wallet, terminal, "01")
    assert still.code == 0  # the terminal has not synced yet
    cardsys.ok("terminal", "sync", "--from", str(instance / "public"), "--dir", str(terminal))
    refused = show_and_verify(cardsys, wallet, terminal, "02")
    assert refused.code == 1
    assert refused.out.startswith("REFUSED revoked")

    static = cardsys.ok("digital", "static-qr", card, "--as", "alice").out.strip()
    assert static.startswith("SSC1:")
    assert cardsys("verify", "qr", static, "--trust", str(terminal)).code == 0


def test_suspending_the_card_reaches_the_phone_and_refresh(cardsys: Cli, tmp_path: Path) -> None:
    card = physical_card(cardsys)
    code = cardsys.ok("digital", "activation-code", card, "--as", "alice", "--json").json()["code"]
    wallet = tmp_path / "phone.wallet"
    cardsys.ok("wallet", "activate", "--code", code, "--card-number", card, "--birth-date",
               "1949-12-31", "--wallet", str(wallet))
    shown = cardsys.ok("wallet", "show", "--wallet", str(wallet)).out
    assert f"of card {card}" in shown
    assert "PRIVATE" not in shown
    assert "renewed" in cardsys.ok("wallet", "refresh", "--wallet", str(wallet)).out
    again = cardsys("wallet", "activate", "--code", code, "--card-number", card,
                    "--birth-date", "1949-12-31", "--wallet", str(wallet))
    assert again.code == 1
    assert again.err.startswith("error:")
    assert "never overwritten" in again.err

    instance = tmp_path / "instance"
    terminal = pinned_terminal(cardsys, tmp_path)
    cardsys.ok("card", "suspend", card, "--reason", "lost", "--as", "alice")
    cardsys.ok("status", "publish")
    cardsys.ok("terminal", "sync", "--from", str(instance / "public"), "--dir", str(terminal))
    refused = show_and_verify(cardsys, wallet, terminal, "03", "--json")
    assert refused.code == 1
    assert refused.json()["reason"] == "suspended"
    no_refresh = cardsys("wallet", "refresh", "--wallet", str(wallet))
    assert no_refresh.code == 1
    assert "not active" in no_refresh.err


def test_wrong_codes_and_bad_input_are_one_line_errors(cardsys: Cli, tmp_path: Path) -> None:
    card = physical_card(cardsys)
    cardsys.ok("digital", "activation-code", card, "--as", "alice")
    wallet = tmp_path / "w"
    wrong = cardsys("wallet", "activate", "--code", "0000-0000-0000", "--card-number", card,
                    "--birth-date", "1949-12-31", "--wallet", str(wallet))
    assert wrong.code == 1
    assert wrong.err.count("\n") == 1
    assert "tries left" in wrong.err
    assert not wallet.exists()
    terminal = tmp_path / "terminal"
    junk = cardsys("verify", "qr", "SSP1:NOT-BASE45!", "--trust", str(terminal))
    assert junk.code == 1
