"""How long a terminal takes to verify one chip card through the real PC/SC stack.

Setup (the stack of the chip tests, started by the same code: `tests.fixtures.pcsc`):
the card emulator behind vpcd, pcscd in a private mount namespace, pyscard; a card
personalized with a 15 KB portrait, its SOD signed by a chip-document signer of an in-memory
PKI; a terminal trust store with that PKI's trust list and a status list.

One read = connect to the reader, `verify.chip.verify_chip` (SELECT, BAC, every file with
extended length, Passive Authentication, Active Authentication on a fresh challenge, status
lookup), disconnect. The median of several reads is reported.

    .venv/bin/python bench/chip_read.py [READS]     (needs root, pcscd, vsmartcard-vpcd, pyscard)

Last line: `chip_read: N APDUs, T ms` (targets N <= 40, T <= 250).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cardsys.chip import lds
from cardsys.chip.bac import AccessKey
from cardsys.chip.pcsc import PcscTransport
from tests.fixtures.pcsc import (
    ChipTerminal,
    pcsc_stack_running,
    personalized_card,
    sample_holder,
)
from verify.chip import verify_chip
from verify.result import StatusCheck


def main() -> None:
    reads = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    terminal = ChipTerminal(datetime.now(UTC).replace(microsecond=0))
    holder = sample_holder(portrait_size=15_000)
    access = AccessKey(holder.card_number, holder.birth_date, holder.expiry_date)
    trust = terminal.trust()
    with tempfile.TemporaryDirectory(prefix="bench-chip-") as directory:
        card, prepared = personalized_card(
            Path(directory), terminal.signer(), holder=holder, signing_time=terminal.now
        )
        portrait = len(prepared.files[lds.file_id(2)])
        with pcsc_stack_running() as stack:
            stack.server.insert(card)
            times, counts = [], []
            for _ in range(reads + 1):
                start = time.perf_counter()
                with PcscTransport(0) as transport:
                    verified = verify_chip(transport, trust, access=access, now=terminal.now)
                    counts.append(transport.apdu_count)
                times.append(time.perf_counter() - start)
                assert verified.status is StatusCheck.GOOD
            stack.server.remove()
    times, counts = times[1:], counts[1:]  # the first read warms pcscd and the imports up
    median = statistics.median(times) * 1000
    print(
        f"DG2 {portrait} bytes, {reads} reads: min {min(times) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms"
    )
    print(f"chip_read: {max(counts)} APDUs, {median:.0f} ms")


if __name__ == "__main__":
    main()
