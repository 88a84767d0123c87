"""`cardsys digital`, `cardsys wallet` and `cardsys status`: digital cards from the command line.

`digital` is the office side (activation codes, the static card QR, suspending or revoking a
phone's card), `wallet` the holder side as the tests and the README use it (a real phone talks
to the portal instead; here the wallet talks to the instance's database directly), `status`
the publication of the signed status lists. Every command that changes a card's status
republishes the lists it touched right after its commit (`issuance.status.publish_dirty`);
when the status-list key is not available, it says so and the shard stays marked for the next
`cardsys status publish`.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardsys import qrimage
from cardsys.clikit import App, acting_options, emit, now_utc, pass_app
from cardsys.errors import CardsysError, NotFoundError, ValidationError
from cardsys.lifecycle import Reason
from cardsys.wallet import Wallet, static_text
from issuance import cards, digital, status
from issuance.present import card_dict
from keys import ceremony

__all__ = ["digital_group", "status_group", "wallet_group"]


def _signers(app: App) -> status.SignerSource:
    return status.key_store_signers(app.settings)


def publish_changes(app: App) -> None:
    """Republish the status lists the last command marked (after its commit)."""
    try:
        published = status.publish_dirty(
            app.db, now=now_utc(), settings=app.settings, signers=_signers(app)
        )
    except CardsysError as exc:
        click.echo(f"warning: status lists not republished ({exc}); run `cardsys status "
                   "publish` when the status-list key is available", err=True)
        return
    for entry in published:
        click.echo(f"status list {entry.list_number} republished (revision {entry.revision})",
                   err=True)


def _write_images(text: str, png: Path | None, svg: Path | None) -> None:
    if png is not None:
        png.write_bytes(qrimage.png(text))
    if svg is not None:
        svg.write_bytes(qrimage.svg(text))


_PNG = click.option("--png", type=click.Path(dir_okay=False, path_type=Path),
                    help="Also write the QR code as a PNG image.")
_SVG = click.option("--svg", type=click.Path(dir_okay=False, path_type=Path),
                    help="Also write the QR code as an SVG image.")


# --- digital (office) -------------------------------------------------------------------------


@click.group("digital")
def digital_group() -> None:
    """Digital cards: activation codes, the printed card QR, a phone's card."""


@digital_group.command("activation-code")
@click.argument("card_number")
@acting_options
@pass_app
def activation_code(app: App, card_number: str, login: str | None, as_json: bool) -> None:
    """Make a one-time code to bind a phone to an active card (shown once)."""
    with app.acting(login) as (session, actor):
        issued = digital.create_activation_code(session, actor, card_number, now=now_utc(),
                                                settings=app.settings)
    data = {"code": issued.code, "card_number": issued.card_number,
            "expires_at": issued.expires_at.isoformat()}
    emit(as_json, data, f"activation code {issued.code} for card {issued.card_number}, valid "
                        f"until {issued.expires_at:%Y-%m-%d %H:%M} UTC (shown once)")


@digital_group.command("static-qr")
@click.argument("card_number")
@_PNG
@_SVG
@acting_options
@pass_app
def static_qr(app: App, card_number: str, png: Path | None, svg: Path | None,
              login: str | None, as_json: bool) -> None:
    """The QR printed on a card's back (SSC1:), signed now, valid until the card expires."""
    with app.acting(login) as (session, actor):
        credential = digital.static_credential(session, actor, card_number, now=now_utc(),
                                               settings=app.settings, signers=_signers(app))
    text = static_text(credential)
    _write_images(text, png, svg)
    emit(as_json, {"card_number": card_number, "qr": text}, text)


def _lifecycle(name: str, *, reason: bool, help: str) -> Any:
    """`digital NAME NUMBER`: suspend, resume or revoke one phone's card."""

    def command(app: App, number: str, login: str | None, as_json: bool,
                reason: str | None = None) -> None:
        with app.acting(login) as (session, actor):
            card = digital.digital_card(session, actor, number)
            now = now_utc()
            why = Reason(reason) if reason else None
            if name == "suspend":
                cards.suspend(session, actor, card, reason=why, now=now)
            elif name == "resume":
                cards.resume(session, actor, card, now=now)
            else:
                cards.revoke(session, actor, card, reason=why, now=now)
            data = card_dict(card)
        emit(as_json, data, f"digital card {data['number']}: {data['status']}")
        publish_changes(app)

    command.__name__ = f"digital_{name}"
    wrapped = pass_app(command)
    wrapped = acting_options(wrapped)
    if reason:
        wrapped = click.option("--reason", required=True,
                               type=click.Choice([r.value for r in Reason]))(wrapped)
    wrapped = click.argument("number")(wrapped)
    return digital_group.command(name, help=help)(wrapped)


_lifecycle("suspend", reason=True, help="Suspend a phone's digital card.")
_lifecycle("resume", reason=False, help="Resume a suspended digital card (supervisor).")
_lifecycle("revoke", reason=True, help="Revoke a phone's digital card for good (supervisor).")


# --- wallet (holder) ----------------------------------------------------------------------------


@click.group("wallet")
def wallet_group() -> None:
    """The holder's side of a digital card, kept in a 0600 wallet file."""


_WALLET = click.option("--wallet", "wallet_path", required=True,
                       type=click.Path(dir_okay=False, path_type=Path), help="Wallet file.")


@wallet_group.command("activate")
@click.option("--code", required=True, help="The activation code from the office.")
@click.option("--card-number", required=True, help="The number of your physical card.")
@click.option("--birth-date", required=True, type=click.DateTime(["%Y-%m-%d"]))
@_WALLET
@click.option("--json", "as_json", is_flag=True)
@pass_app
def wallet_activate(app: App, code: str, card_number: str, birth_date: datetime,
                    wallet_path: Path, as_json: bool) -> None:
    """Make a device key, bind it to your card with the code, save key and credential."""
    if wallet_path.exists():
        raise ValidationError(f"{wallet_path} exists: a wallet is never overwritten")
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    request = digital.ProvisionRequest(code=code, card_number=card_number,
                                       birth_date=birth_date.date(), device_public_key=point)
    issued = digital.provision(app.db, request, now=now_utc(), settings=app.settings,
                               signers=_signers(app), channel="cli")
    _save(wallet_path, Wallet(key, issued.credential), new=True)
    data = {"card_number": issued.card_number, "expires_at": issued.expires_at.isoformat(),
            "wallet": str(wallet_path)}
    emit(as_json, data, f"digital card {issued.card_number} activated; credential valid until "
                        f"{issued.expires_at:%Y-%m-%d %H:%M} UTC; wallet {wallet_path}")
    publish_changes(app)


@wallet_group.command("qr")
@_WALLET
@click.option("--nonce", help="The terminal's challenge (hex), when it shows one.")
@_PNG
@_SVG
def wallet_qr(wallet_path: Path, nonce: str | None, png: Path | None, svg: Path | None) -> None:
    """Print the live presentation QR text (SSP1:), made now."""
    wallet = _load(wallet_path)
    try:
        challenge = bytes.fromhex(nonce) if nonce else None
    except ValueError:
        raise ValidationError("--nonce must be hexadecimal") from None
    text = wallet.presentation(now_utc(), challenge)
    _write_images(text, png, svg)
    click.echo(text)


@wallet_group.command("refresh")
@_WALLET
@pass_app
def wallet_refresh(app: App, wallet_path: Path) -> None:
    """Ask for a new credential, signed by the wallet's device key."""
    wallet = _load(wallet_path)
    now = now_utc()
    with app.db.transaction() as session:
        issued = digital.refresh(session, wallet.refresh_request(now), now=now,
                                 settings=app.settings, signers=_signers(app))
    _save(wallet_path, wallet.with_credential(issued.credential), new=False)
    click.echo(f"credential renewed until {issued.expires_at:%Y-%m-%d %H:%M} UTC")


@wallet_group.command("show")
@_WALLET
def wallet_show(wallet_path: Path) -> None:
    """The wallet's card, credential expiry and device key thumbprint (never the key)."""
    wallet = _load(wallet_path)
    parsed = wallet.parsed
    click.echo(f"digital card {parsed.subject} of card {parsed.holder().card_number}\n"
               f"  credential expires {wallet.expires:%Y-%m-%d %H:%M} UTC\n"
               f"  device key thumbprint {wallet.thumbprint.hex()}")


def _load(path: Path) -> Wallet:
    try:
        return Wallet.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise NotFoundError(f"no wallet file {path}") from None


def _save(path: Path, wallet: Wallet, *, new: bool) -> None:
    """Write the wallet 0600; a new one never replaces a file, an update replaces atomically."""
    data = wallet.to_bytes()
    target = path if new else path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(target, flags, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    if not new:
        os.replace(target, path)


# --- status lists -------------------------------------------------------------------------------


@click.group("status")
def status_group() -> None:
    """The signed status lists terminals sync."""


@status_group.command("publish")
@click.option("--all", "everything", is_flag=True, help="Every shard, not only changed ones.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def status_publish(app: App, everything: bool, as_json: bool) -> None:
    """Sign and publish changed (or all) status lists, and the latest trust list, under
    <instance>/public for the web and for `cardsys terminal sync --from DIR`."""
    now = now_utc()
    if everything:
        published = status.publish(app.db, now=now, settings=app.settings, signers=_signers(app))
    else:
        published = status.publish_dirty(app.db, now=now, settings=app.settings,
                                         signers=_signers(app))
    try:
        with app.db.transaction() as session:
            document = ceremony.latest_trust_list(session)
        trust_path: str | None = str(status.write_trust_list(app.settings, document))
    except NotFoundError:
        trust_path = None
    data = {
        "published": [{"list": p.list_number, "revision": p.revision, "bytes": p.size,
                       "issued_at": p.issued_at.isoformat()} for p in published],
        "trust_list": trust_path,
    }
    lines = [f"status list {p.list_number}: revision {p.revision}, {p.size} bytes"
             for p in published] or ["no status list needed publishing"]
    if trust_path is None:
        lines.append("no trust list exported yet (cardsys keys export-trust-list)")
    emit(as_json, data, "\n".join(lines))
