"""The batch on SQLite and on PostgreSQL (row locks, RETURNING, real concurrency).

The schema is made from the models (`Base.metadata.create_all`), as the chip records are not
in the migrations yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cardsys.chip.vpcd import BlankHopper
from cardsys.config import Settings, load_settings
from cardsys.db import Database
from cardsys.lifecycle import CardStatus
from cardsys.models import Base
from cardsys.pki import Purpose
from issuance.personalize import Bureau, ReaderStation
from keys.ephemeral import ephemeral_pki
from tests.factories import card
from tests.fixtures.pcsc import TRANSPORT_KEY, approved_cards, bureau_settings
from tests.unit.issuance.test_personalize import Crash, HopperReader

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return bureau_settings(tmp_path / "instance")
    from sqlalchemy import create_engine

    from tests.fixtures.postgres import create_database

    url = create_database(request.getfixturevalue("postgres_server"), "cardsys_chip")
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return load_settings(env={}, overrides={"instance_path": tmp_path, "database_url": url})


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = Database.from_settings(settings)
    yield db
    db.dispose()


def test_crash_and_resume(database: Database, settings: Settings, tmp_path: Path) -> None:
    signer = ephemeral_pki(NOW - timedelta(days=1)).signers[Purpose.CHIP_DOCUMENT]
    _, numbers = approved_cards(database, settings, 3, now=NOW)
    reader = HopperReader(BlankHopper(tmp_path / "hopper", TRANSPORT_KEY))

    def watch(number: int, command: bytes, answer: bytes | None) -> None:
        if command[1] == 0x44 and answer is None:
            raise Crash

    def bureau() -> Bureau:
        return Bureau(
            database, ReaderStation(reader.connect, TRANSPORT_KEY), operator="off-a.clerk",
            machine="bureau-1", settings=settings, signers=lambda session, now: signer,
            clock=lambda: NOW, wait=0,
        )  # fmt: skip

    reader.watch = watch
    with pytest.raises(Crash):
        bureau().run(3)
    reader.watch = None
    assert [r.card_number for r in bureau().run(3)] == numbers
    with database.transaction() as session:
        assert {card(session, n).status for n in numbers} == {CardStatus.PERSONALIZED}


def test_two_machines_share_an_office_queue(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """Two bureau machines on the same office at once: every card personalized exactly once,
    every chip bound to at most one card (a machine that loses a card re-uses its chip)."""
    import threading

    from sqlalchemy import select

    from cardsys.chip.emulator import CardState
    from cardsys.models import ChipPersonalization

    signer = ephemeral_pki(NOW - timedelta(days=1)).signers[Purpose.CHIP_DOCUMENT]
    _, numbers = approved_cards(database, settings, 6, now=NOW)
    readers = [
        HopperReader(BlankHopper(tmp_path / name, TRANSPORT_KEY, prefix=f"{name}-"))
        for name in ("A", "B")
    ]
    done: list[list[str]] = [[], []]
    errors: list[BaseException] = []

    def machine(index: int) -> None:
        reader = readers[index]
        bureau = Bureau(
            database, ReaderStation(reader.connect, TRANSPORT_KEY), operator="off-a.clerk",
            machine=f"bureau-{index}", settings=settings, signers=lambda session, now: signer,
            clock=lambda: NOW, wait=0,
        )  # fmt: skip
        try:
            done[index] = [r.card_number for r in bureau.run(6)]
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=machine, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sorted(done[0] + done[1]) == sorted(numbers)
    locked = {
        chip.serial
        for reader in readers
        for chip in reader.all_cards()
        if chip.state is CardState.LOCKED
    }
    with database.transaction() as session:
        records = session.scalars(select(ChipPersonalization)).all()
        assert sorted(r.card.number for r in records) == sorted(numbers)
        assert {r.chip_serial for r in records} == locked
        assert {card(session, n).status for n in numbers} == {CardStatus.PERSONALIZED}
