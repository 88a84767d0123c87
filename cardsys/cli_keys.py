"""`cardsys keys ...`: the key ceremony from the command line (see keys/ceremony.py).

Each command opens the key store the settings name, runs one service call in one transaction
as the operator given by `--as` (an admin: the key custodian), and prints what it did. Nothing
secret is ever printed: only kids, subjects, dates and file names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from cryptography.hazmat.primitives.serialization import Encoding

from cardsys.clikit import App, acting_options, emit, now_utc, pass_app
from cardsys.config import KeyStoreKind, Settings
from cardsys.pki import Purpose, RevocationReason
from issuance import status
from issuance.operators import SYSTEM_LOGIN
from keys import ceremony
from keys.store import KeyStore, create_passphrase_file, open_key_store

#: The development passphrase file `dev-pki` creates when none is configured.
DEV_PASSPHRASE_FILE = "dev-key-passphrase"  # noqa: S105 (a file name, not a secret)

_PURPOSE = click.Choice([p.value for p in Purpose])


@contextmanager
def _store(settings: Settings) -> Iterator[KeyStore]:
    store = open_key_store(settings)
    try:
        yield store
    finally:
        store.close()


@click.group("keys")
def keys() -> None:
    """Key ceremony: root CA, signers, rotation, revocation, trust list."""


@keys.command("init-root")
@click.option("--development", is_flag=True, help="Mark the root (and PKI) as development.")
@acting_options
@pass_app
def init_root(app: App, development: bool, login: str | None, as_json: bool) -> None:
    """Create the root CA key and certificate (once per instance)."""
    with _store(app.settings) as store, app.acting(login) as (session, actor):
        info = ceremony.init_root(
            session, store, actor, settings=app.settings, now=now_utc(), development=development
        )
    emit(as_json, info.as_dict(), f"root CA {info.kid} created: {info.subject}")


@keys.command("issue-signer")
@click.option("--purpose", type=_PURPOSE, required=True)
@acting_options
@pass_app
def issue_signer(app: App, purpose: str, login: str | None, as_json: bool) -> None:
    """Issue the first signer of a purpose."""
    with _store(app.settings) as store, app.acting(login) as (session, actor):
        info = ceremony.issue_signer(
            session, store, actor, Purpose(purpose), settings=app.settings, now=now_utc()
        )
    emit(as_json, info.as_dict(), lambda: _signer_line(info))


@keys.command("rotate")
@click.option("--purpose", type=_PURPOSE, required=True)
@acting_options
@pass_app
def rotate(app: App, purpose: str, login: str | None, as_json: bool) -> None:
    """A new signer for a purpose; the old one stops signing but keeps verifying."""
    with _store(app.settings) as store, app.acting(login) as (session, actor):
        info = ceremony.rotate(
            session, store, actor, Purpose(purpose), settings=app.settings, now=now_utc()
        )
    emit(as_json, info.as_dict(), lambda: "rotated: " + _signer_line(info))


@keys.command("revoke-signer")
@click.argument("kid")
@click.option("--reason", type=click.Choice([r.value for r in RevocationReason]), required=True)
@acting_options
@pass_app
def revoke_signer(app: App, kid: str, reason: str, login: str | None, as_json: bool) -> None:
    """Revoke a signer (key compromise...): the CRL lists it, the next trust list drops it."""
    with _store(app.settings) as store, app.acting(login) as (session, actor):
        info = ceremony.revoke_signer(
            session, store, actor, kid, RevocationReason(reason), now=now_utc()
        )
    emit(
        as_json,
        info.as_dict(),
        f"signer {info.kid} ({info.purpose.value}) revoked: {reason}; export a trust list now",
    )


@keys.command("export-trust-list")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@acting_options
@pass_app
def export_trust_list(app: App, out: Path, login: str | None, as_json: bool) -> None:
    """Sign a new trust list (next sequence number) and write it to FILE."""
    with _store(app.settings) as store, app.acting(login) as (session, actor):
        document = ceremony.export_trust_list(
            session, store, actor, settings=app.settings, now=now_utc()
        )
        info = ceremony.root_info(session)
    status.write_atomic(out, document)
    status.write_trust_list(app.settings, document)
    data = {
        "out": str(out),
        "sequence": info.trust_list_sequence,
        "bytes": len(document),
        "sha256": hashlib.sha256(document).hexdigest(),
    }
    emit(as_json, data, f"trust list {info.trust_list_sequence} written to {out}")


@keys.command("export-root")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def export_root(app: App, out: Path, as_json: bool) -> None:
    """Write the root certificate (PEM) that terminals pin; print its fingerprint."""
    with app.db.transaction() as session:
        root = ceremony.root_certificate(session)
        info = ceremony.root_info(session)
    status.write_atomic(out, root.public_bytes(Encoding.PEM))
    fingerprint = hashlib.sha256(root.public_bytes(Encoding.DER)).hexdigest()
    data = {"out": str(out), "kid": info.kid, "sha256": fingerprint, "subject": info.subject}
    emit(
        as_json,
        data,
        f"root {info.kid} written to {out}\n  SHA-256 fingerprint {fingerprint}\n"
        "  (read the fingerprint aloud when a terminal is provisioned)",
    )


@keys.command("list")
@acting_options
@pass_app
def list_keys(app: App, login: str | None, as_json: bool) -> None:
    """The root and every signer (no key material)."""
    with app.acting(login) as (session, actor):
        signers = ceremony.list_signers(session, actor)
        root = ceremony.root_info(session)
    data = {"root": root.as_dict(), "signers": [s.as_dict() for s in signers]}
    dev = "  DEVELOPMENT" if root.development else ""
    emit(
        as_json,
        data,
        lambda: "\n".join(
            [
                f"root {root.kid}  {root.subject}  until {root.not_after:%Y-%m-%d}{dev}",
                f"  CRL {root.crl_number}  trust list {root.trust_list_sequence}",
                *(_signer_line(s) for s in signers),
            ]
        ),
    )


@keys.command("dev-pki")
@click.option("--as", "login", default=SYSTEM_LOGIN, show_default=True)
@pass_app
def dev_pki(app: App, login: str) -> None:
    """Create or top up a DEVELOPMENT PKI under the instance folder (scripts/run uses it)."""
    settings = app.settings
    if settings.key_store is KeyStoreKind.FILE and not settings.key_passphrase:
        configured = bool(settings.key_passphrase_file)
        path = (
            Path(settings.key_passphrase_file)
            if configured
            else settings.instance_path / DEV_PASSPHRASE_FILE
        )
        if create_passphrase_file(path):
            click.echo(f"created development key passphrase file {path}")
        settings = settings.replace(key_passphrase_file=str(path))
        if not configured:
            click.echo(f"  (set CARDSYS_KEY_PASSPHRASE_FILE={path} for the server)")
    with _store(settings) as store, app.acting(login) as (session, actor):
        document = ceremony.ensure_development_pki(
            session, store, actor, settings=settings, now=now_utc()
        )
        root = ceremony.root_certificate(session)
        info = ceremony.root_info(session)
    status.write_root(settings, root.public_bytes(Encoding.PEM))
    public = status.write_trust_list(settings, document).parent
    click.echo(
        f"DEVELOPMENT PKI (not for production): root {info.kid}, "
        f"trust list {info.trust_list_sequence} in {public}"
    )


def _signer_line(info: ceremony.SignerInfo) -> str:
    revoked = f" ({info.revocation_reason.value})" if info.revocation_reason else ""
    return (
        f"  {info.kid}  {info.purpose.value:<13} {info.status.value}{revoked}  "
        f"signs {info.usage_start:%Y-%m-%d}..{info.usage_end:%Y-%m-%d}  "
        f"valid to {info.not_after:%Y-%m-%d}  {info.store_kind}"
    )


@click.command("sign")
@click.option("--as", "login", default=SYSTEM_LOGIN, show_default=True, help="Acting admin.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def audit_sign(app: App, login: str, as_json: bool) -> None:
    """Sign the audit chain head with the audit key (a scheduled job)."""
    from keys.checkpoint import sign_head

    with _store(app.settings) as store, app.acting(login) as (session, actor):
        signed = sign_head(session, store, actor, now=now_utc())
        data = {"seq": signed.seq, "hash": signed.hash, "kid": signed.kid}
    emit(as_json, data, f"audit head {data['seq']} signed by {data['kid']}")
