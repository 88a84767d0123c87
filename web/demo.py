"""`python -m web.demo`: a fresh activation code for the demo office, and where to use it.

`scripts/run` calls this after `cardsys demo seed`, so a person trying cardsys reaches the
phone and the terminal within a minute: it makes a one-time activation code (as the demo
clerk) for the first ACTIVE chip card of the demo office, publishes the status lists the seed
marked, and prints the card number, the holder's birth date, the code and the URLs. Each run
makes a new code (the previous unused one is replaced). Development instances only: it
refuses an instance without the demo office.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select

from cardsys.config import Settings, load_settings
from cardsys.db import Database
from cardsys.errors import CardsysError, NotFoundError
from cardsys.lifecycle import CardKind, CardStatus
from cardsys.models import Card, Office, Resident
from issuance import digital, status
from issuance.demo import OFFICE
from issuance.operators import get_operator

__all__ = ["DemoCode", "demo_code", "main"]


@dataclass(frozen=True)
class DemoCode:
    """What a person needs to activate the demo phone."""

    card_number: str
    holder: str
    birth_date: date
    code: str
    expires_at: datetime


def demo_code(db: Database, settings: Settings, *, now: datetime) -> DemoCode:
    """A new activation code for the demo office's first active chip card.

    Raises:
        NotFoundError: no demo office, or no active card in it (run `cardsys demo seed`).
    """
    with db.transaction() as session:
        card = session.scalar(
            select(Card).join(Card.resident).join(Office, Resident.office_id == Office.id)
            .where(Office.code == OFFICE, Card.kind == CardKind.PHYSICAL,
                   Card.status == CardStatus.ACTIVE)
            .order_by(Card.id).limit(1)
        )
        if card is None:
            raise NotFoundError(f"no active card in the demo office {OFFICE}: run "
                                "`cardsys demo seed`")
        clerk = get_operator(session, "clerk")
        issued = digital.create_activation_code(session, clerk, card.number, now=now,
                                                settings=settings)
        person = card.resident
        return DemoCode(card.number, f"{person.surname} {person.given_names}",
                        person.birth_date, issued.code, issued.expires_at)


def main() -> None:
    """Print a fresh demo activation code (module docstring)."""
    settings = load_settings()
    db = Database.from_settings(settings)
    now = datetime.now(UTC)
    try:
        made = demo_code(db, settings, now=now)
        status.publish_dirty(db, now=now, settings=settings,
                             signers=status.key_store_signers(settings))
    except CardsysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        db.dispose()
    base = settings.public_base_url.rstrip("/")
    minutes = int((made.expires_at - now).total_seconds() // 60)
    print(f"""
phone activation (demo, valid {minutes} minutes, shown once):
  card number   {made.card_number}   ({made.holder})
  birth date    {made.birth_date.isoformat()}
  code          {made.code}
  portal        {base}/portal/activate?card={made.card_number}
  terminal      {base}/terminal/""")


if __name__ == "__main__":
    main()
