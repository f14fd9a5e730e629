"""Short-lived credentials a plugin asks a source for: presigned URLs, SAS URLs.

Why one cache for all of them: a signed URL expires, sometimes long before a large transfer ends, so it is asked
for lazily (per operation and part, at first use) and asked for again only when the service refuses it. Parallel
parts refused with the same expired URL must cost one question to the source, not one each: every lease carries
the generation it was issued in, and a renewal for a generation that is no longer current hands out the lease that
replaced it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from app.engine.plugin_sdk import log

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Lease(Generic[V]):
    """A value from the source and the generation it was issued in (to tell "already renewed" from "renew now")."""

    value: V
    generation: int


class Leases(Generic[K, V]):
    """One lease per key, reused until it is refused (``renew``) or, when ``expires_at`` knows its expiry, until it
    is about to expire. Concurrent asks for one key share one call to ``fetch``; a caller cancelled while asking
    does not cancel the others waiting for the same answer."""

    def __init__(self, fetch: Callable[[K], Awaitable[V]], *, what: str,
                 expires_at: Callable[[V], datetime | None] = lambda value: None,
                 refresh_margin: timedelta = timedelta(seconds=30)) -> None:
        self._fetch = fetch
        self._what = what
        self._expires_at = expires_at
        self.refresh_margin = refresh_margin
        self._entries: dict[K, Lease[V]] = {}
        self._pending: dict[K, asyncio.Future[Lease[V]]] = {}
        self._generations = itertools.count(1)
        self.asked = 0  # how many times the source was asked (for diagnostics and tests)

    async def get(self, key: K) -> Lease[V]:
        lease = self._entries.get(key)
        if lease is not None and self._fresh(lease):
            return lease
        return await self._ask(key, renewing=lease is not None)

    async def renew(self, key: K, stale_generation: int | None = None) -> Lease[V]:
        """A new lease for a key whose lease of ``stale_generation`` (None: whatever is cached) was refused; the
        current one when somebody renewed it since."""
        lease = self._entries.get(key)
        if lease is not None and stale_generation is not None and lease.generation != stale_generation:
            return lease
        return await self._ask(key, renewing=True)

    def peek(self, key: K) -> Lease[V] | None:
        """The cached lease, if any, without asking the source."""
        return self._entries.get(key)

    def discard(self, key: K) -> None:
        """Forget a lease that is no longer needed (a finished part), so 10,000 parts don't pin 10,000 URLs."""
        self._entries.pop(key, None)

    def _fresh(self, lease: Lease[V]) -> bool:
        expires = self._expires_at(lease.value)
        return expires is None or datetime.now(UTC) + self.refresh_margin < expires

    async def _ask(self, key: K, *, renewing: bool) -> Lease[V]:
        loop = asyncio.get_running_loop()
        while (pending := self._pending.get(key)) is not None and not pending.done() and pending.get_loop() is loop:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is None or current.cancelling() or not pending.cancelled():
                    raise
                # The coroutine that was asking got cancelled (its run stopped), we were not: ask ourselves.
        fut: asyncio.Future[Lease[V]] = loop.create_future()
        self._pending[key] = fut
        try:
            self.asked += 1
            log.debug("leases", lambda: f"asking for a {self._what} ({key})" + (" to renew one" if renewing else ""))
            lease = Lease(await self._fetch(key), next(self._generations))
            self._entries[key] = lease
            fut.set_result(lease)
            return lease
        except BaseException as exc:
            if not fut.done():
                if isinstance(exc, asyncio.CancelledError):
                    fut.cancel()
                else:
                    fut.set_exception(exc)
                    fut.exception()  # retrieved: waiters re-raise it; nobody else needs a warning
            raise
        finally:
            if self._pending.get(key) is fut:
                del self._pending[key]
