"""The replay cache: remembers for the window, bounded, atomic across threads."""

from __future__ import annotations

import threading

import pytest

from verify.replay import ReplayCache


def test_a_key_is_remembered_until_it_expires() -> None:
    cache = ReplayCache()
    assert cache.add(b"a", expires=100, now=10)
    assert cache.seen(b"a", 99)
    assert not cache.add(b"a", expires=200, now=50)
    assert not cache.seen(b"a", 100)
    assert cache.add(b"a", expires=300, now=100)  # expired, so a new entry


def test_expired_entries_are_purged_as_new_ones_arrive() -> None:
    cache = ReplayCache()
    for n in range(100):
        cache.add(bytes([n]), expires=10 + n, now=0)
    assert len(cache) == 100
    cache.add(b"new", expires=500, now=60)
    assert len(cache) == 100 - 51 + 1  # expiries 10..60 are gone at 60


def test_a_full_cache_refuses_rather_than_forgets() -> None:
    cache = ReplayCache(capacity=2)
    assert cache.add(b"a", expires=100, now=0)
    assert cache.add(b"b", expires=100, now=0)
    assert not cache.add(b"c", expires=100, now=0)
    assert cache.full
    assert cache.seen(b"a", 1)
    assert cache.add(b"c", expires=200, now=100)  # a and b expired: room again


def test_re_adding_an_expired_key_keeps_the_new_expiry() -> None:
    cache = ReplayCache()
    cache.add(b"k", expires=10, now=0)
    cache.add(b"k", expires=50, now=20)
    cache.add(b"other", expires=60, now=30)  # purges the stale heap entry of k, not k
    assert cache.seen(b"k", 40)


def test_only_one_thread_wins_the_same_key() -> None:
    cache = ReplayCache()
    barrier = threading.Barrier(16)
    results: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        won = cache.add(b"same", expires=100, now=0)
        with lock:
            results.append(won)

    threads = [threading.Thread(target=race) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]


def test_entries_survive_a_restart() -> None:
    cache = ReplayCache()
    cache.add(b"live", expires=100, now=0)
    cache.add(b"dead", expires=5, now=0)
    saved = cache.entries(now=10)
    assert saved == [(b"live", 100)]
    restored = ReplayCache()
    restored.restore([*saved, (b"old", 3)], now=10)
    assert restored.seen(b"live", 10)
    assert not restored.seen(b"old", 10)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ReplayCache(capacity=0)
