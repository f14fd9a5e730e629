"""Bandwidth limits: token buckets, one global and one per task, changeable while transfers run."""

from __future__ import annotations

import asyncio
import threading
import time

from app.engine.wire import StopToken


class TokenBucket:
    """Allows ``rate`` bytes/second with a burst of a quarter second; ``rate=None`` means unlimited.

    Callers debit n bytes after moving them (:func:`consume_all` on a loop, :func:`consume_blocking` in a data
    thread); the debt model lets a single large read through and waits afterwards, so throughput converges to the
    limit without splitting reads. Thread-safe: the data threads of every transfer share the global bucket.
    """

    def __init__(self, rate: int | None = None) -> None:
        self._rate = rate
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    @property
    def rate(self) -> int | None:
        return self._rate

    def set_rate(self, rate: int | None) -> None:
        with self._lock:
            self._refill()
            self._rate = rate
            if rate is not None:
                self._tokens = min(self._tokens, rate / 4)

    def _refill(self) -> None:
        now = time.monotonic()
        if self._rate is not None:
            self._tokens = min(self._rate / 4, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def debit(self, n: int) -> float:
        """Take n bytes; return how long the caller must wait to stay under the rate."""
        with self._lock:
            rate = self._rate
            if rate is None:
                return 0.0
            self._refill()
            self._tokens -= n
            return 0.0 if self._tokens >= 0 else -self._tokens / rate

    def wait_time(self) -> float:
        """How long until the debt is paid at the rate in force now (0 when unlimited)."""
        with self._lock:
            rate = self._rate
            if rate is None:
                return 0.0
            self._refill()
            return 0.0 if self._tokens >= 0 else -self._tokens / rate


#: Longest single sleep: a limit raised or removed while a transfer waits takes effect within this time.
MAX_SLEEP = 0.25


async def consume_all(buckets: tuple[TokenBucket, ...], n: int) -> None:
    """Debit n bytes from every bucket, then wait until all are out of debt. The wait is re-checked every
    MAX_SLEEP seconds against the rates in force, so a limit changed while transfers run applies at once."""
    delay = 0.0
    for bucket in buckets:  # called per network read: unlimited buckets (the usual case) cost one test each
        if bucket.rate is not None:
            delay = max(delay, bucket.debit(n))
    while delay > 0:
        await asyncio.sleep(min(delay, MAX_SLEEP))
        delay = max((b.wait_time() for b in buckets), default=0.0)


def consume_blocking(buckets: tuple[TokenBucket, ...], n: int, stop: StopToken) -> None:
    """:func:`consume_all` for a data thread: sleeps in the thread, and a pause or cancel ends the wait at once."""
    delay = 0.0
    for bucket in buckets:
        if bucket.rate is not None:
            delay = max(delay, bucket.debit(n))
    while delay > 0:
        if stop.wait(min(delay, MAX_SLEEP)):
            return
        delay = max((b.wait_time() for b in buckets), default=0.0)
