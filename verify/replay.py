"""A terminal's memory of the presentations it accepted, for the presentation window.

A presentation proof is valid for a window around the time it was made; within that window the
same QR (a photo or a screenshot of it) must not pass twice at one terminal. The cache keeps
each accepted presentation's key (SHA-256 of its signed proof payload) until the proof leaves
the window, after which the time check alone refuses it.

Rules:

* `add` is atomic (one lock): of two threads verifying the same presentation, one wins;
* expired entries are purged as new ones arrive (a heap ordered by expiry), so memory follows
  the traffic of one window;
* the cache is bounded. When it is full of live entries it fails closed: `add` refuses (the
  verifier reports the presentation as replayed) rather than forgetting a live entry, which
  would let that presentation pass again. A counter sees a few presentations a minute; the
  default bound is thousands of times that.
"""

from __future__ import annotations

import heapq
import threading
from typing import Final

__all__ = ["DEFAULT_CAPACITY", "ReplayCache"]

DEFAULT_CAPACITY: Final = 65536


class ReplayCache:
    """A bounded, thread-safe set of keys, each remembered until its expiry (epoch seconds)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError("the replay cache needs a positive capacity")
        self._capacity = capacity
        self._expiry: dict[bytes, int] = {}
        self._heap: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    @property
    def full(self) -> bool:
        """Whether the cache holds `capacity` entries (expired ones not yet purged count)."""
        return len(self._expiry) >= self._capacity

    def seen(self, key: bytes, now: int) -> bool:
        """Whether `key` was added and has not expired at `now` (a cheap early check)."""
        expiry = self._expiry.get(key)
        return expiry is not None and expiry > now

    def add(self, key: bytes, *, expires: int, now: int) -> bool:
        """Remember `key` until `expires`; False when it is already remembered (a replay) or
        the cache is full of live entries (fail closed)."""
        with self._lock:
            heap, expiry = self._heap, self._expiry
            if heap and heap[0][0] <= now:
                self._purge(now)
            current = expiry.get(key)
            if current is not None and current > now:
                return False
            if len(expiry) >= self._capacity:
                return False
            expiry[key] = expires
            heapq.heappush(heap, (expires, key))
            return True

    def entries(self, now: int) -> list[tuple[bytes, int]]:
        """The live entries (key, expiry), to keep them across restarts of a terminal."""
        with self._lock:
            self._purge(now)
            return sorted(self._expiry.items(), key=lambda entry: entry[1])

    def restore(self, entries: list[tuple[bytes, int]], now: int) -> None:
        """Add saved entries back (expired ones are dropped, the capacity still holds)."""
        for key, expires in entries:
            if expires > now:
                self.add(key, expires=expires, now=now)

    def _purge(self, now: int) -> None:
        heap, expiry = self._heap, self._expiry
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            # A key re-added after it expired has a newer heap entry; keep that one.
            if expiry.get(key) == when:
                del expiry[key]
