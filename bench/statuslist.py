"""Benchmark: build, sign and query a 2^20-entry status list with 1% revoked at random.

Run: .venv/bin/python bench/statuslist.py
Targets (issue 4): the signed token <= 20 KB (the entropy bound is about 10.6 KB) and a
lookup <= 2 us. The last line is `statuslist: S bytes, build B s, lookup L us`, where S is the
whole signed token as served, B the time to build the list, compress and sign it, and L the
mean time of `ParsedStatusList.lookup` over random indices.
"""

from __future__ import annotations

import random
import time
import timeit
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec

from cardsys.formats.cose import key_signer
from cardsys.formats.statuslist import Status, StatusList, parse_status_list, sign_status_list
from cardsys.pki import Algorithm

SIZE = 1 << 20
REVOKED_SHARE = 0.01
SEED = 20240601
LOOKUPS = 200_000


def main() -> None:
    rng = random.Random(SEED)
    revoked = rng.sample(range(SIZE), int(SIZE * REVOKED_SHARE))
    key = ec.generate_private_key(ec.SECP256R1())
    sign = key_signer(key)
    iat = datetime(2025, 1, 1, tzinfo=UTC)

    started = time.perf_counter()
    lst = StatusList(SIZE, bits=2)
    for index in revoked:
        lst.set(index, Status.REVOKED)
    token = sign_status_list(
        lst,
        uri="https://cards.example/status/0",
        iat=iat,
        exp=iat + timedelta(days=1),
        ttl=timedelta(hours=1),
        sign=sign,
        alg=Algorithm.ES256,
        kid=b"bench-01",
    )
    build = time.perf_counter() - started

    parsed = parse_status_list(token)
    parsed.message.verify(key.public_key())
    assert all(parsed.lookup(i) is Status.REVOKED for i in revoked[:1000])
    indices = [rng.randrange(SIZE) for _ in range(LOOKUPS)]
    lookup = parsed.lookup

    def run() -> None:
        for index in indices:
            lookup(index)

    best = min(timeit.repeat(run, number=1, repeat=5)) / LOOKUPS
    compressed = len(lst.compress())
    print(f"entries {SIZE}, revoked {len(revoked)}, compressed list {compressed} bytes")
    print(f"statuslist: {len(token)} bytes, build {build:.3f} s, lookup {best * 1e6:.2f} us")


if __name__ == "__main__":
    main()
