"""`cardsys keys ...` end to end, and the promise that no secret reaches a log or the database."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.cli_keys import DEV_PASSPHRASE_FILE, keys
from cardsys.clikit import App, now_utc
from cardsys.config import Settings, load_settings
from cardsys.db import Database
from cardsys.errors import NotFoundError, WrongPassphraseError, WrongPinError
from cardsys.formats.trustlist import parse_trust_list
from cardsys.models import Base
from cardsys.pki import Purpose, kid
from keys import ca, ceremony
from keys.pkcs8 import decrypt_private_key
from tests.factories import ADMIN, make_admin
from tests.fixtures.softhsm import SoftHsmToken

PASSPHRASE = "cli passphrase: not a real one"


GRACE = timedelta(days=3)


@pytest.fixture
def cli_settings(tmp_path: Path) -> Settings:
    """A SQLite instance whose database has every table and an admin.

    SQLite only: the CLI is a thin layer (the services run on both backends in
    test_ceremony.py), and the leak test greps the database file itself.
    """
    instance = tmp_path / "instance"
    instance.mkdir()
    settings = load_settings(env={}, overrides={"instance_path": instance})
    database = Database.from_settings(settings)
    Base.metadata.create_all(database.engine)
    with database.transaction() as session:
        make_admin(session)
    database.dispose()
    return settings


@pytest.fixture
def instance(cli_settings: Settings) -> Path:
    return cli_settings.instance_path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("CARDSYS_"):
            monkeypatch.delenv(name)
    return monkeypatch


def run(settings: Settings, *args: str) -> Result:
    app = App(
        overrides={"instance_path": settings.instance_path, "database_url": settings.database}
    )
    return CliRunner().invoke(keys, list(args), obj=app, catch_exceptions=True)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def use_store(env: pytest.MonkeyPatch, kind: str, token: SoftHsmToken | None) -> list[str]:
    """Point the CLI at a store through the environment; return the secrets it was given."""
    if kind == "file":
        env.setenv("CARDSYS_KEY_PASSPHRASE", PASSPHRASE)
        return [PASSPHRASE]
    assert token is not None
    env.setenv("CARDSYS_KEY_STORE", "pkcs11")
    env.setenv("CARDSYS_PKCS11_MODULE", token.module)
    env.setenv("CARDSYS_PKCS11_TOKEN_LABEL", token.label)
    env.setenv("CARDSYS_PKCS11_PIN", token.pin)
    return [token.pin, token.so_pin]


def private_key_forms(key: ec.EllipticCurvePrivateKey) -> list[bytes]:
    """Every form a leaked private key could take in a log or a table."""
    size = (key.curve.key_size + 7) // 8
    scalar = key.private_numbers().private_value
    raw = scalar.to_bytes(size, "big")
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    traditional = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    body = b"".join(pem.splitlines()[1:-1])
    return [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        str(scalar).encode(),
        base64.b64encode(raw),
        der,
        body[16:80],  # any stretch of the PEM body
        b"".join(traditional.splitlines()[1:-1])[16:80],
    ]


def everything_written(instance: Path) -> dict[str, bytes]:
    """Every file of the instance (database, WAL, key files, published files)."""
    return {str(p): p.read_bytes() for p in instance.rglob("*") if p.is_file()}


@pytest.mark.parametrize("store_kind", ["file", pytest.param("pkcs11", marks=pytest.mark.pkcs11)])
def test_full_ceremony_leaks_no_secret(
    request: pytest.FixtureRequest,
    cli_settings: Settings,
    instance: Path,
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    store_kind: str,
) -> None:
    token = request.getfixturevalue("softhsm_token") if store_kind == "pkcs11" else None
    secrets_given = use_store(clean_env, store_kind, token)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")

    ok(run(cli_settings, "init-root", "--as", ADMIN))
    for purpose in Purpose:
        ok(run(cli_settings, "issue-signer", "--purpose", purpose.value, "--as", ADMIN))
    ok(run(cli_settings, "rotate", "--purpose", "credential", "--as", ADMIN))
    listing = json.loads(ok(run(cli_settings, "list", "--json", "--as", ADMIN)))
    audit_kid = next(s["kid"] for s in listing["signers"] if s["purpose"] == "audit")
    ok(run(cli_settings, "revoke-signer", audit_kid, "--reason", "key-compromise", "--as", ADMIN))
    out = instance / "published" / "trust-list.cbor"
    exported = json.loads(
        ok(run(cli_settings, "export-trust-list", "--out", str(out), "--json", "--as", ADMIN))
    )
    listing = json.loads(ok(run(cli_settings, "list", "--json", "--as", ADMIN)))

    # What the custodian sees.
    assert exported["sequence"] == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    statuses = sorted((s["purpose"], s["status"]) for s in listing["signers"])
    assert ("credential", "retired") in statuses
    assert ("credential", "active") in statuses
    assert ("audit", "revoked") in statuses
    assert listing["root"]["crl_number"] == 2
    assert listing["root"]["trust_list_sequence"] == 1
    assert listing["root"]["store"] == store_kind

    # What a terminal gets.
    database = Database(cli_settings.database)
    with database.transaction() as session:
        root = ceremony.root_certificate(session)
    database.dispose()
    trust = parse_trust_list(
        out.read_bytes(), root=root, now=now_utc(), previous_sequence=None, grace=GRACE
    )
    assert {s.purpose for s in trust.signers} == set(Purpose) - {Purpose.AUDIT}
    assert [s.purpose for s in trust.revoked] == [Purpose.AUDIT]

    # Nothing secret anywhere.
    leaks: list[bytes] = [s.encode() for s in secrets_given]
    if store_kind == "file":
        key_files = sorted((instance / "keys").glob("*.key.pem"))
        assert len(key_files) == len(Purpose) + 2  # root, one per purpose, the rotated one
        for path in key_files:
            leaks += private_key_forms(decrypt_private_key(path.read_bytes(), PASSPHRASE.encode()))
    log_text = caplog.text.encode()
    assert b"INSERT INTO signers" in log_text  # the engine really logged statements and values
    files = everything_written(instance)
    assert any(name.endswith("cardsys.db") for name in files)
    for secret in leaks:
        assert secret not in log_text, "a secret reached the log"
        for name, content in files.items():
            assert secret not in content, f"a secret reached {name}"


def test_dev_pki_makes_a_marked_development_pki_and_is_rerunnable(
    cli_settings: Settings, instance: Path, clean_env: pytest.MonkeyPatch
) -> None:
    first = ok(run(cli_settings, "dev-pki"))
    assert "DEVELOPMENT" in first
    passphrase_file = instance / DEV_PASSPHRASE_FILE
    assert stat.S_IMODE(passphrase_file.stat().st_mode) == 0o600
    assert f"CARDSYS_KEY_PASSPHRASE_FILE={passphrase_file}" in first
    second = ok(run(cli_settings, "dev-pki"))
    assert "created development key passphrase" not in second
    root = x509.load_pem_x509_certificate((instance / "public" / "root.pem").read_bytes())
    assert ca.is_development(root)
    document = (instance / "public" / "trust-list").read_bytes()
    trust = parse_trust_list(document, root=root, now=now_utc(), previous_sequence=1, grace=GRACE)
    assert trust.sequence == 2
    assert {s.purpose for s in trust.signers} == set(Purpose)
    passphrase = passphrase_file.read_text().strip()
    clean_env.setenv("CARDSYS_KEY_PASSPHRASE_FILE", str(passphrase_file))
    listing = json.loads(ok(run(cli_settings, "list", "--json", "--as", ADMIN)))
    assert listing["root"]["development"] is True
    for content in everything_written(instance).values():
        if content.strip() != passphrase.encode():
            assert passphrase.encode() not in content


def test_wrong_passphrase_is_reported_as_such(
    cli_settings: Settings, instance: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("CARDSYS_KEY_PASSPHRASE", PASSPHRASE)
    ok(run(cli_settings, "init-root", "--as", ADMIN))
    clean_env.setenv("CARDSYS_KEY_PASSPHRASE", "not the passphrase")
    result = run(cli_settings, "issue-signer", "--purpose", "credential", "--as", ADMIN)
    assert isinstance(result.exception, WrongPassphraseError)
    assert "not the passphrase" not in str(result.exception)


@pytest.mark.pkcs11
def test_wrong_pin_is_reported_as_such(
    cli_settings: Settings,
    instance: Path,
    clean_env: pytest.MonkeyPatch,
    softhsm_token: SoftHsmToken,
) -> None:
    use_store(clean_env, "pkcs11", softhsm_token)
    clean_env.setenv("CARDSYS_PKCS11_PIN", "99999999")
    result = run(cli_settings, "init-root", "--as", ADMIN)
    assert isinstance(result.exception, WrongPinError)
    assert "99999999" not in str(result.exception)


def test_revoking_an_unknown_signer(
    cli_settings: Settings, instance: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("CARDSYS_KEY_PASSPHRASE", PASSPHRASE)
    ok(run(cli_settings, "init-root", "--as", ADMIN))
    result = run(cli_settings, "revoke-signer", "00" * 8, "--reason", "superseded", "--as", ADMIN)
    assert isinstance(result.exception, NotFoundError)


def test_acting_operator_is_required(
    cli_settings: Settings, instance: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("CARDSYS_KEY_PASSPHRASE", PASSPHRASE)
    result = run(cli_settings, "init-root")
    assert result.exit_code == 2
    assert "--as" in result.output


def test_unknown_purpose_is_a_usage_error(
    cli_settings: Settings, instance: Path, clean_env: pytest.MonkeyPatch
) -> None:
    result = run(cli_settings, "issue-signer", "--purpose", "firmware", "--as", ADMIN)
    assert result.exit_code == 2


def test_export_root_writes_the_pinned_certificate_and_its_fingerprint(
    cli_settings: Settings, instance: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("CARDSYS_KEY_PASSPHRASE", PASSPHRASE)
    created = json.loads(ok(run(cli_settings, "init-root", "--json", "--as", ADMIN)))
    out = instance / "root.pem"
    exported = json.loads(ok(run(cli_settings, "export-root", "--out", str(out), "--json")))
    root = x509.load_pem_x509_certificate(out.read_bytes())
    assert exported["kid"] == created["kid"] == kid(root).hex()
    assert exported["sha256"] == root.fingerprint(hashes.SHA256()).hex()
    assert not ca.is_development(root)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_export_root_before_init_root_is_not_found(
    cli_settings: Settings, instance: Path, clean_env: pytest.MonkeyPatch
) -> None:
    result = run(cli_settings, "export-root", "--out", str(instance / "root.pem"))
    assert isinstance(result.exception, NotFoundError)
    assert not (instance / "root.pem").exists()
