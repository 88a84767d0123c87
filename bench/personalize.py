"""How many cards per second the bureau batch personalizes without the PC/SC write, against the
bare primitives it cannot avoid.

Batch: `issuance.personalize.Bureau.run` over approved cards in a SQLite instance, with a
reader that accepts every write at once (no APDUs): holder data from the database (portrait
already a chip-sized JPEG, as a typical enrolment photo of 8-14 KB is), a fresh P-256 AA key,
the SOD (CMS SignedData) signed by the chip-document signer, the record committed before the
lock, and the lifecycle step with its audit event committed after it. The status-list listener
(`issuance.status.mark_dirty`) is registered, as it is in `cardsys chip personalize`: the
step marks the card's status-list shard in its transaction there, and so it does here.

Primitives, on the same data in the same run: per card one P-256 key generation, one CMS
signature (`build_sod` over a card's data groups, built once but for DG15, same signer) and one
row inserted and committed through the same `Database` (SQLAlchemy Core). Batch and primitive
rounds alternate and the fastest of each is kept, so a busy machine affects both alike.

    .venv/bin/python bench/personalize.py [N]

Last line: `personalize: N cards/s, ratio R to the primitives` (target R >= 0.5).
"""

from __future__ import annotations

import io
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image, ImageDraw
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table

from cardsys.chip import aa, lds, sod
from cardsys.chip.perso import Personalization
from cardsys.chip.station import ChipPresence, Probe
from cardsys.db import Database
from cardsys.formats import tlv
from cardsys.pki import Purpose, Signer
from issuance import cards, residents, status
from issuance.personalize import Bureau
from keys.ephemeral import ephemeral_pki
from tests.factories import make_office, make_resident
from tests.fixtures.pcsc import bureau_settings, sample_holder

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
# Imported for its listener, like the CLI does (the lifecycle step marks the status list).
assert status.mark_dirty in cards.status_listeners
ROUNDS = 5


class NullStation:
    """A reader whose every chip is blank and takes any write at once (no PC/SC)."""

    def __init__(self) -> None:
        self.serial = 0

    def probe(self) -> Probe:
        return Probe(ChipPresence.OPEN, f"NULL-{self.serial:08d}")

    def write(self, prepared: Personalization, serial: str) -> None:
        assert prepared.files
        assert serial

    def lock(self) -> None:
        self.serial += 1

    def check_and_lock(self, serial: str, *, sod_sha256: bytes, aa_public_key: bytes) -> None:
        raise AssertionError("nothing to resume in a benchmark")

    def opens(self, access: object) -> str | None:
        raise AssertionError("nothing to resume in a benchmark")


def portrait(seed: int) -> bytes:
    """A head-and-shoulders-like picture (smooth areas, a few edges), JPEG of ~10 KB."""
    rng = random.Random(seed)
    image = Image.new("RGB", (360, 480), tuple(rng.randrange(150, 230) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    draw.ellipse((110, 70, 250, 250), fill=tuple(rng.randrange(160, 220) for _ in range(3)))
    draw.rectangle((60, 260, 300, 480), fill=tuple(rng.randrange(20, 120) for _ in range(3)))
    pixels = image.load()
    assert pixels is not None
    for _ in range(600):
        x, y = rng.randrange(360), rng.randrange(480)
        pixels[x, y] = tuple(rng.randrange(256) for _ in range(3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def setup(directory: Path, count: int) -> tuple[Database, object]:
    settings = bureau_settings(directory, batch_size=max(count, 100))
    database = Database.from_settings(settings)
    with database.transaction() as session:
        staff = make_office(session, now=NOW)
        clerk, boss = staff.clerk_in(session), staff.supervisor_in(session)
        for sequence in range(1, count + 1):
            holder = make_resident(session, clerk, sequence, now=NOW)
            holder.photo = residents.store_photo(session, portrait(sequence))
            card = cards.apply(session, clerk, holder, now=NOW, settings=settings)
            cards.approve(session, boss, card, now=NOW)
    return database, settings


def batch_round(directory: Path, count: int, signer: Signer) -> float:
    database, settings = setup(directory, count)
    bureau = Bureau(
        database,
        NullStation(),
        operator="off-a.clerk",
        machine="bureau-1",
        settings=settings,  # type: ignore[arg-type]
        signers=lambda session, now: signer,
        clock=lambda: NOW,
        wait=0,
    )
    start = time.perf_counter()
    done = bureau.run(count)
    elapsed = time.perf_counter() - start
    assert len(done) == count
    database.dispose()
    return elapsed


def primitives_round(directory: Path, count: int, signer: Signer) -> float:
    database, _ = setup(directory, 1)
    rows = Table(
        "bench_rows",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("serial", String(32)),
        Column("sod_sha256", String(64)),
        Column("aa_public_key", LargeBinary),
    )
    rows.create(database.engine)
    template = sample_holder(portrait_size=len(portrait(1)))
    dgs = lds.build_data_groups(template, ec.generate_private_key(ec.SECP256R1()).public_key())
    start = time.perf_counter()
    for number in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        # Only DG15 (the new key) changes; the SOD is a full CMS signature over all of them.
        dgs[15] = tlv.encode(lds.DG_TAGS[15], aa.public_key_info(key.public_key()))
        document = sod.build_sod(dgs, signer, signing_time=NOW)
        with database.transaction() as session:
            session.execute(
                rows.insert().values(
                    serial=f"P-{number}",
                    sod_sha256=document[:32].hex(),
                    aa_public_key=aa.public_key_info(key.public_key()),
                )
            )
    elapsed = time.perf_counter() - start
    database.dispose()
    return elapsed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    signer = ephemeral_pki(NOW - timedelta(days=1)).signers[Purpose.CHIP_DOCUMENT]
    batch, primitives = [], []
    with tempfile.TemporaryDirectory(prefix="bench-personalize-") as temporary:
        for round_number in range(ROUNDS):
            base = Path(temporary) / str(round_number)
            batch.append(batch_round(base / "batch", count, signer))
            primitives.append(primitives_round(base / "primitives", count, signer))
            print(
                f"round {round_number + 1}: batch {count / batch[-1]:.0f} cards/s, "
                f"primitives {count / primitives[-1]:.0f} /s",
                flush=True,
            )
    rate = count / min(batch)
    limit = count / min(primitives)
    print(f"portrait {len(portrait(1))} bytes, {count} cards a round, best of {ROUNDS}")
    print(f"personalize: {rate:.0f} cards/s, ratio {rate / limit:.2f} to the primitives")


if __name__ == "__main__":
    main()
