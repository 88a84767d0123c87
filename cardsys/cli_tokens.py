"""`cardsys operator token create|list|revoke LOGIN`: operator API tokens from the command line.

An admin manages anyone's tokens, an operator their own (`--as` names who acts). `create`
prints the token once; it is stored only as its SHA-256 and cannot be shown again. Register
with `operator.add_command(token_group)` in `cardsys.cli`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from cardsys.clikit import App, acting_options, emit, now_utc, pass_app
from cardsys.models import ApiToken
from issuance import tokens

__all__ = ["token_group"]


@click.group("token")
def token_group() -> None:
    """API tokens: bearer tokens an operator's program uses on /api/v1."""


@token_group.command("create")
@click.argument("owner")
@click.option("--name", required=True, help="What the token is for (shown in lists).")
@click.option("--days", type=click.IntRange(1, tokens.MAX_DAYS), default=tokens.DEFAULT_DAYS,
              show_default=True, help="Days until it expires.")
@acting_options
@pass_app
def token_create(app: App, owner: str, name: str, days: int, login: str | None,
                 as_json: bool) -> None:
    """Make a token for OWNER and print it once."""
    with app.acting(login) as (session, actor):
        issued = tokens.issue(session, actor, owner, name=name, days=days, now=now_utc())
    data = {"id": issued.id, "login": issued.login, "name": issued.name,
            "token": issued.token, "expires_at": issued.expires_at.isoformat()}
    emit(as_json, data, lambda: (
        f"API token {issued.id} for {issued.login} ({issued.name}), valid until "
        f"{issued.expires_at:%Y-%m-%d %H:%M} UTC. It is shown only now:\n{issued.token}"
    ))


@token_group.command("list")
@click.argument("owner")
@acting_options
@pass_app
def token_list(app: App, owner: str, login: str | None, as_json: bool) -> None:
    """OWNER's tokens (never the tokens themselves)."""
    at = now_utc()
    with app.acting(login) as (session, actor):
        rows = [_row(token, at) for token in tokens.tokens_of(session, actor, owner)]
    emit(as_json, rows, lambda: "\n".join(
        f"{r['id']:>5}  {r['prefix']}...  {r['state']:<8} {r['name']}  expires "
        f"{r['expires_at'][:16]}  last used {(r['last_used_at'] or 'never')[:16]}"
        for r in rows
    ) or f"{owner} has no API tokens")


@token_group.command("revoke")
@click.argument("owner")
@click.argument("token_id", type=int)
@acting_options
@pass_app
def token_revoke(app: App, owner: str, token_id: int, login: str | None,
                 as_json: bool) -> None:
    """Revoke OWNER's token TOKEN_ID (from `list`): it stops working at once."""
    at = now_utc()
    with app.acting(login) as (session, actor):
        data = _row(tokens.revoke(session, actor, owner, token_id, now=at), at)
    emit(as_json, data, f"API token {token_id} of {owner} revoked")


def _row(token: ApiToken, at: datetime) -> dict[str, Any]:
    state = ("revoked" if token.revoked_at is not None
             else "expired" if token.expires_at <= at else "live")
    return {
        "id": token.id, "prefix": token.prefix, "name": token.name, "state": state,
        "created_at": token.created_at.isoformat(), "created_by": token.created_by,
        "expires_at": token.expires_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }
