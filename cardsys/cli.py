"""The `cardsys` command. It parses, calls a service in one transaction, and prints.

Every `CardsysError` becomes one line on stderr and exit status 1; usage errors exit 2. Output is
readable text, or JSON with `--json`. Operators act with `--as LOGIN` (or `CARDSYS_OPERATOR`).
Other areas add their command groups in `cardsys/cli_*.py`, registered at the end of this file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session

from cardsys import audit
from cardsys.clikit import App, acting_options, emit, now_utc, pass_app
from cardsys.db import upgrade
from cardsys.errors import CardsysError, ValidationError
from cardsys.ids import ResidentId
from cardsys.lifecycle import CardStatus, Reason
from cardsys.models import Card, Operator, Role, Sex
from issuance import cards, operators, residents
from issuance.present import card_dict, event_dict, resident_dict


@click.group()
@click.option("--instance", type=click.Path(path_type=Path), help="Instance folder.")
@click.pass_context
def cli(ctx: click.Context, instance: Path | None) -> None:
    """cardsys: social-security cards, chip and phone, issued and verified."""
    overrides: dict[str, Any] = {"instance_path": instance} if instance else {}
    ctx.obj = App(overrides=overrides)


@cli.command()
@click.option("--admin", default="admin", show_default=True, help="Login of the first admin.")
@pass_app
def init(app: App, admin: str) -> None:
    """Create the instance folder and database, the system operator and a first admin."""
    instance = app.settings.instance_path
    # The instance holds residents' data and key files: readable by the service account only.
    instance.mkdir(parents=True, exist_ok=True)
    instance.chmod(0o700)
    upgrade(app.settings.database)
    now = now_utc()
    with app.db.transaction() as session:
        system = operators.bootstrap_system(session, now=now)
        if session.query(Operator).filter(Operator.role == Role.ADMIN).count() == 1:
            operators.add_operator(session, system, login=admin, name="Administrator",
                                   role=Role.ADMIN, office_code=None, password=None, now=now)
            click.echo(f"created admin operator {admin!r} (CLI only; act with --as {admin})")
    click.echo(f"instance ready at {instance.resolve()} ({app.settings.database.split(':')[0]})")


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_app
def db_upgrade(app: App, revision: str) -> None:
    """Apply database migrations."""
    upgrade(app.settings.database, revision)
    click.echo(f"database at {revision}")


# --- offices and operators ----------------------------------------------------------------


@cli.group()
def office() -> None:
    """Issuance offices."""


@office.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--region", required=True, help="6-digit region code.")
@acting_options
@pass_app
def office_add(
    app: App, code: str, name: str, region: str, login: str | None, as_json: bool
) -> None:
    """Create an office (admin)."""
    with app.acting(login) as (session, actor):
        created = operators.add_office(session, actor, code=code, name=name, region=region,
                                       now=now_utc())
        data = {"code": created.code, "name": created.name, "region": created.region}
    emit(as_json, data, f"office {code} created")


@cli.group()
def operator() -> None:
    """Operators: clerks, supervisors, auditors, admins."""


@operator.command("add")
@click.argument("new_login")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--office", "office_code", help="Office code (not for admins).")
@click.option("--password-stdin", is_flag=True, help="Read a web password from stdin.")
@acting_options
@pass_app
def operator_add(
    app: App, new_login: str, name: str, role: str, office_code: str | None,
    password_stdin: bool, login: str | None, as_json: bool,
) -> None:
    """Create an operator (admin)."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with app.acting(login) as (session, actor):
        created = operators.add_operator(
            session, actor, login=new_login, name=name, role=Role(role),
            office_code=office_code, password=password, now=now_utc(),
        )
        data = {"login": created.login, "role": created.role.value, "office": office_code}
    emit(as_json, data, f"operator {new_login} ({role}) created")


# --- residents ----------------------------------------------------------------------------


@cli.group()
def resident() -> None:
    """Residents: enrolment and search."""


@resident.command("add")
@click.argument("id_number")
@click.option("--surname", required=True)
@click.option("--given-names", required=True)
@click.option("--sex", type=click.Choice([s.value for s in Sex]), required=True)
@click.option("--birth-date", type=click.DateTime(["%Y-%m-%d"]), help="Default: from the ID.")
@click.option("--region", help="Region of residence. Default: from the ID number.")
@click.option("--scheme", "schemes", multiple=True, help="Insurance scheme code (repeatable).")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--confirm-distinct", is_flag=True, help="Enrol a possible duplicate for review.")
@acting_options
@pass_app
def resident_add(
    app: App, id_number: str, surname: str, given_names: str, sex: str,
    birth_date: datetime | None, region: str | None, schemes: tuple[str, ...],
    photo: Path | None, confirm_distinct: bool, login: str | None, as_json: bool,
) -> None:
    """Enrol a resident in the operator's office."""
    rid = ResidentId.parse(id_number)
    enrolment = residents.Enrolment(
        id_number=rid, surname=surname, given_names=given_names, sex=Sex(sex),
        birth_date=birth_date.date() if birth_date else rid.birth_date,
        region=region or rid.region, schemes=schemes,
        photo=photo.read_bytes() if photo else None,
    )
    with app.acting(login) as (session, actor):
        created = residents.enrol(session, actor, enrolment, now=now_utc(),
                                  confirm_distinct=confirm_distinct)
        data = resident_dict(created)
    flag = " (flagged for review)" if data["review_required"] else ""
    emit(as_json, data, f"resident {data['id_number']} enrolled{flag}")


@resident.command("show")
@click.argument("id_number")
@acting_options
@pass_app
def resident_show(app: App, id_number: str, login: str | None, as_json: bool) -> None:
    """A resident and their cards."""
    with app.acting(login) as (session, actor):
        found = residents.get(session, actor, id_number)
        data = resident_dict(found) | {"cards": [card_dict(c) for c in found.cards]}
    emit(as_json, data, lambda: _resident_text(data))


@resident.command("find")
@click.argument("text")
@acting_options
@pass_app
def resident_find(app: App, text: str, login: str | None, as_json: bool) -> None:
    """Search residents of the office by ID number prefix or name."""
    with app.acting(login) as (session, actor):
        data = [resident_dict(r) for r in residents.find(session, actor, text)]
    emit(as_json, data, lambda: "\n".join(
        f"{r['id_number']}  {r['surname']}, {r['given_names']}  {r['birth_date']}  {r['region']}"
        for r in data) or "no resident found")


@resident.command("clear-review")
@click.argument("id_number")
@acting_options
@pass_app
def resident_clear_review(app: App, id_number: str, login: str | None, as_json: bool) -> None:
    """Confirm a flagged resident is a distinct person (supervisor)."""
    with app.acting(login) as (session, actor):
        data = resident_dict(residents.clear_review(session, actor, id_number, now=now_utc()))
    emit(as_json, data, f"resident {id_number} cleared")


def _resident_text(data: dict[str, Any]) -> str:
    lines = [
        f"{data['id_number']}  {data['surname']}, {data['given_names']}",
        f"  sex {data['sex']}  born {data['birth_date']}  region {data['region']}  "
        f"office {data['office']}",
        f"  schemes {' '.join(data['schemes']) or '-'}"
        + ("  REVIEW REQUIRED" if data["review_required"] else ""),
    ]
    lines += [_card_line(c) for c in data["cards"]]
    return "\n".join(lines)


# --- cards --------------------------------------------------------------------------------


@cli.group()
def card() -> None:
    """The card lifecycle."""


def _card_line(c: dict[str, Any]) -> str:
    reason = f" ({c['reason']})" if c["reason"] else ""
    expiry = f"  expires {c['expiry_date']}" if c["expiry_date"] else ""
    return f"  {c['number']}  {c['kind']:<8} {c['status']}{reason}{expiry}"


def _card_command(
    name: str, *, reason: bool = False, help: str
) -> Callable[[Callable[..., Card]], click.Command]:
    """A `card NAME NUMBER` command calling `action(app, session, actor, card, now, reason)`."""

    def wrap(action: Callable[..., Card]) -> click.Command:
        @acting_options
        @click.argument("number")
        @pass_app
        def command(app: App, /, number: str, login: str | None, as_json: bool,
                    **options: Any) -> None:
            with app.acting(login) as (session, actor):
                target = cards.get(session, actor, number)
                result = action(app, session, actor, target, now_utc(), **options)
                data = card_dict(result)
            publish_changes(app)
            emit(as_json, data, lambda: _card_line(data).strip())

        command.__name__ = action.__name__
        if reason:
            command = click.option(
                "--reason", type=click.Choice([r.value for r in Reason]), required=True,
                callback=lambda _c, _p, v: Reason(v),
            )(command)
        return card.command(name, help=help)(command)

    return wrap


@card.command("apply")
@click.argument("id_number")
@acting_options
@pass_app
def card_apply(app: App, id_number: str, login: str | None, as_json: bool) -> None:
    """Apply for a physical card for a resident."""
    with app.acting(login) as (session, actor):
        holder = residents.get(session, actor, id_number)
        data = card_dict(cards.apply(session, actor, holder, now=now_utc(), settings=app.settings))
    emit(as_json, data, f"card {data['number']} applied for {id_number}")


@_card_command("approve", help="Approve an application (a supervisor other than the maker).")
def card_approve(app: App, s: Session, actor: Operator, c: Card, now: datetime) -> Card:
    return cards.approve(s, actor, c, now=now)


@_card_command("personalize", help="Personalize an approved card (fixes its dates).")
def card_personalize(app: App, s: Session, actor: Operator, c: Card, now: datetime) -> Card:
    return cards.personalize(s, actor, c, now=now, settings=app.settings)


@_card_command("issue", help="Hand a personalized card over to its holder.")
def card_issue(app: App, s: Session, actor: Operator, c: Card, now: datetime) -> Card:
    return cards.hand_over(s, actor, c, now=now)


@_card_command("activate", help="Activate a handed-over card.")
def card_activate(app: App, s: Session, actor: Operator, c: Card, now: datetime) -> Card:
    return cards.activate(s, actor, c, now=now)


@_card_command("suspend", reason=True, help="Suspend an active card (e.g. reported lost).")
def card_suspend(
    app: App, s: Session, actor: Operator, c: Card, now: datetime, reason: Reason
) -> Card:
    return cards.suspend(s, actor, c, reason=reason, now=now)


@_card_command("resume", help="Resume a suspended card (supervisor).")
def card_resume(app: App, s: Session, actor: Operator, c: Card, now: datetime) -> Card:
    return cards.resume(s, actor, c, now=now)


@_card_command("revoke", reason=True, help="Revoke a card for good (supervisor).")
def card_revoke(
    app: App, s: Session, actor: Operator, c: Card, now: datetime, reason: Reason
) -> Card:
    return cards.revoke(s, actor, c, reason=reason, now=now)


@_card_command("replace", reason=True,
               help="Replace a lost, stolen or damaged card: revokes it, applies for a new one.")
def card_replace(
    app: App, s: Session, actor: Operator, c: Card, now: datetime, reason: Reason
) -> Card:
    return cards.replace(s, actor, c, reason=reason, now=now, settings=app.settings)


@_card_command("renew", help="Apply for the successor of a card before it expires.")
def card_renew(app: App, s: Session, actor: Operator, c: Card, now: datetime) -> Card:
    return cards.renew(s, actor, c, now=now, settings=app.settings)


@card.command("expire")
@click.option("--now", "at", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Run as of this UTC time (default: now).")
@click.option("--as", "login", default=operators.SYSTEM_LOGIN, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def card_expire(app: App, at: datetime | None, login: str, as_json: bool) -> None:
    """Expire every issued, active or suspended card past its expiry date (a scheduled job)."""
    when = at.replace(tzinfo=UTC) if at else now_utc()
    with app.acting(login) as (session, actor):
        numbers = cards.expire_due(session, actor, now=when)
    publish_changes(app)
    emit(as_json, {"expired": numbers}, f"{len(numbers)} card(s) expired")


@card.command("show")
@click.argument("number")
@acting_options
@pass_app
def card_show(app: App, number: str, login: str | None, as_json: bool) -> None:
    """A card and its history."""
    with app.acting(login) as (session, actor):
        found = cards.get(session, actor, number)
        history = [event_dict(e) for e in reversed(audit.recent(session, subject=found.number))]
        data = card_dict(found) | {"history": history}
    emit(as_json, data, lambda: "\n".join(
        [_card_line(data).strip(), f"  holder {data['resident']}  office {data['office']}"]
        + [f"  {e['at'][:19]}  {e['tag'].split(':')[-1]:<12} {e['actor']}"
           + (f"  {e['details'].get('reason')}" if e["details"].get("reason") else "")
           for e in history]))


@card.command("list")
@click.option("--status", type=click.Choice([s.value for s in CardStatus]))
@click.option("--resident", "id_number", help="Only this resident's cards.")
@click.option("--limit", default=100, show_default=True)
@acting_options
@pass_app
def card_list(
    app: App, status: str | None, id_number: str | None, limit: int, login: str | None,
    as_json: bool,
) -> None:
    """Cards of the operator's office, newest first."""
    with app.acting(login) as (session, actor):
        holder = residents.get(session, actor, id_number) if id_number else None
        found = cards.list_cards(session, actor, status=CardStatus(status) if status else None,
                                 resident=holder, limit=limit)
        data = [card_dict(c) for c in found]
    emit(as_json, data, lambda: "\n".join(_card_line(c).strip() for c in data) or "no cards")


# --- audit --------------------------------------------------------------------------------


@cli.group("audit")
def audit_group() -> None:
    """The hash-chained audit log."""


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def audit_verify(app: App, as_json: bool) -> None:
    """Walk the whole chain and its signed checkpoints; name the first broken link."""
    from keys.checkpoint import verify_checkpoints

    with app.db.transaction() as session:
        report = audit.verify(session)
        signed = verify_checkpoints(session, now=now_utc())
    data = {"ok": True, "events": report.events, "head": report.head_hash,
            "checkpoints": signed.checkpoints, "last_signed_seq": signed.last_seq}
    emit(as_json, data, f"audit chain intact: {report.events} events, head "
         f"{report.head_hash[:16]}; {signed.checkpoints} signed checkpoint(s)"
         + (f", last at event {signed.last_seq}" if signed.last_seq else ""))


@audit_group.command("show")
@click.option("--limit", default=20, show_default=True)
@click.option("--subject", help="Only events about this card number, ID number or login.")
@click.option("--tag", "tag_prefix", help="Only tags starting with this, e.g. card:status.")
@acting_options
@pass_app
def audit_show(
    app: App, limit: int, subject: str | None, tag_prefix: str | None, login: str | None,
    as_json: bool,
) -> None:
    """The newest audit events of the operator's office (admins: every office)."""
    with app.acting(login) as (session, actor):
        scope = None if actor.role is Role.ADMIN else _office_code(actor)
        events = audit.recent(session, limit=limit, subject=subject, tag_prefix=tag_prefix,
                              office=scope)
        data = [event_dict(e) for e in events]
    emit(as_json, data, lambda: "\n".join(
        f"{e['seq']:>6}  {e['at'][:19]}  {e['actor']:<12} {e['tag']:<24} {e['subject']}"
        for e in data) or "no events")


def _office_code(actor: Operator) -> str:
    if actor.office is None:
        raise ValidationError(f"operator {actor.login} has no office")
    return actor.office.code


# --- development ----------------------------------------------------------------------------


@cli.group()
def demo() -> None:
    """A demonstration office for development instances."""


@demo.command("seed")
@pass_app
def demo_seed(app: App) -> None:
    """Create (once) the DEMO office, its operators and residents; print the logins."""
    from issuance import demo as demo_service

    with app.db.transaction() as session:
        logins = demo_service.seed(session, app.settings, now=now_utc())
    click.echo(f"demo office {demo_service.OFFICE} (DEVELOPMENT DATA); logins:")
    for entry in logins:
        click.echo(f"  {entry.login:<12} {entry.password}   ({entry.role.value})")


@demo.command("code")
@pass_app
def demo_code(app: App) -> None:
    """A fresh activation code for the demo office's first active card, and where to use it."""
    from issuance import demo as demo_service

    now = now_utc()
    made = demo_service.demo_code(app.db, app.settings, now=now)
    publish_changes(app)
    base = app.settings.public_base_url.rstrip("/")
    minutes = int((made.expires_at - now).total_seconds() // 60)
    click.echo(
        f"phone activation (demo, valid {minutes} minutes, shown once):\n"
        f"  card number   {made.card_number}   ({made.holder})\n"
        f"  birth date    {made.birth_date.isoformat()}\n"
        f"  code          {made.code}\n"
        f"  portal        {base}/portal/activate?card={made.card_number}\n"
        f"  terminal      {base}/terminal/"
    )


# --- other areas' command groups ------------------------------------------------------------

# Imported here, after the core commands they build on (they import App and helpers above).
from cardsys.cli_chip import chip, verify_chip_command  # noqa: E402
from cardsys.cli_digital import (  # noqa: E402
    digital_group,
    publish_changes,
    status_group,
    wallet_group,
)
from cardsys.cli_keys import audit_sign, keys  # noqa: E402
from cardsys.cli_terminal import terminal_group, verify_group  # noqa: E402
from cardsys.cli_tokens import token_group  # noqa: E402

for _group in (keys, chip, digital_group, wallet_group, status_group, terminal_group, verify_group):
    cli.add_command(_group)
audit_group.add_command(audit_sign)
operator.add_command(token_group)
verify_group.add_command(verify_chip_command)


# --- entry point --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: one clear line and a non-zero exit for every error, never a traceback."""
    try:
        cli.main(args=argv, prog_name="cardsys", standalone_mode=False)
    except CardsysError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("CARDSYS_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (set CARDSYS_DEBUG=1 for "
                   "the traceback)", err=True)
        sys.exit(70)
