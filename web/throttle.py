"""A small in-process throttle: at most `limit` events per key in a sliding window.

The portal's activation form counts every try per client address and per card number. This
is the outer fence only: the durable one is the service's attempt counter (an activation code
dies after `activation_max_attempts` wrong tries, in the database, across every worker). The
throttle keeps one client from cycling quickly through many cards, and keeps load off the
service. Each worker process counts for itself, so with N workers a client gets at most N
times the limit: set it with that in mind.

Memory is bounded: keys whose window emptied are dropped, and when `max_keys` distinct keys
are tracked the throttle refuses new keys (fails closed) until windows expire.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from flask import current_app


@dataclass
class SlidingWindow:
    """`limit` events per `seconds` for each key (thread-safe)."""

    limit: int
    seconds: float
    max_keys: int = 100_000
    _events: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.limit <= 0 or self.seconds <= 0 or self.max_keys <= 0:
            raise ValueError("a throttle needs a positive limit, window and key bound")

    def allow(self, key: str, now: float) -> bool:
        """Count an event for `key` at `now` (seconds) if the window has room; else False."""
        with self._lock:
            window = self._events.get(key)
            if window is None:
                if len(self._events) >= self.max_keys:
                    self._purge(now)
                    if len(self._events) >= self.max_keys:
                        return False
                window = self._events[key] = deque()
            while window and window[0] <= now - self.seconds:
                window.popleft()
            if len(window) >= self.limit:
                return False
            window.append(now)
            return True

    def retry_after(self, key: str, now: float) -> int:
        """Whole seconds until `key` may try again (0 when it may now)."""
        with self._lock:
            window = self._events.get(key)
            if not window or len(window) < self.limit:
                return 0
            return max(1, int(window[0] + self.seconds - now) + 1)

    def _purge(self, now: float) -> None:
        expired = [k for k, w in self._events.items() if not w or w[-1] <= now - self.seconds]
        for key in expired:
            del self._events[key]


#: Tries at activating a phone (portal and API alike): per client address, per card number.
ACTIVATION_WINDOWS: Final = {"address": (20, 600.0), "card": (10, 600.0)}


def activation_try(address: str, card_number: str, at: float) -> int:
    """Count one activation try; 0 when it may go on, else the seconds to wait.

    The portal and the API share these windows (in the app's extensions), so two doors give
    no more tries than one; the card number is normalised so `ss11-…` and `SS11…` count as one.
    Limits come from `PORTAL_ADDRESS_LIMIT` / `PORTAL_CARD_LIMIT` (limit, seconds) in config.
    """
    card = "".join(card_number.split()).replace("-", "").upper()
    for name, key in (("address", address), ("card", card)):
        window = _activation_window(name)
        if not window.allow(key, at):
            return window.retry_after(key, at)
    return 0


def _activation_window(name: str) -> SlidingWindow:
    key = f"cardsys_throttle_{name}"
    window = current_app.extensions.get(key)
    if window is None:
        limit, seconds = current_app.config.get(f"PORTAL_{name.upper()}_LIMIT",
                                                ACTIVATION_WINDOWS[name])
        window = current_app.extensions[key] = SlidingWindow(int(limit), float(seconds))
    assert isinstance(window, SlidingWindow)
    return window
