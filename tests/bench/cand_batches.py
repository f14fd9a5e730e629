"""The asyncio candidates' writer: a range's body gathered into batch buffers on the loop, each full batch written
with ``os.pwrite`` by a worker thread while the next one fills.

Two buffers per range, so the loop never waits for the disk unless the disk is slower than the network; then the
reader waits (the aiohttp candidate awaits, the protocol candidate pauses its transport). ``pwrite`` releases the
GIL, so the writes overlap the loop's work on the other core.
"""

from __future__ import annotations

import asyncio

from tests.bench.cand_base import pwrite_all


class AsyncBatches:
    """The body of ``[start, end)`` into ``fd``: :meth:`view` is where the next bytes go, :meth:`commit` counts them."""

    def __init__(self, fd: int, start: int, end: int, batch: int) -> None:
        size = max(1, min(batch, end - start))
        self.fd = fd
        self.end = end
        self.at = start  # the next byte of the range to arrive
        self._bufs = [bytearray(size), bytearray(size)]
        self._writes: list[asyncio.Future[None] | None] = [None, None]
        self._cur = 0
        self._filled = 0
        self._base = start  # file offset of the current buffer's first byte

    @property
    def left(self) -> int:
        return self.end - self.at

    def view(self) -> memoryview:
        """The free part of the current buffer, never past the range's end (empty only when the range is done)."""
        buf = self._bufs[self._cur]
        return memoryview(buf)[self._filled:self._filled + min(len(buf) - self._filled, self.left)]

    def commit(self, n: int) -> asyncio.Future[None] | None:
        """``n`` bytes arrived in :meth:`view`. A full batch (or the range's last) goes to a worker thread; the
        result is the write the caller must wait for before the next :meth:`view` (None: go on at once)."""
        self._filled += n
        self.at += n
        if self._filled < len(self._bufs[self._cur]) and self.left:
            return None
        loop = asyncio.get_running_loop()
        data = memoryview(self._bufs[self._cur])[:self._filled]
        self._writes[self._cur] = loop.run_in_executor(None, pwrite_all, self.fd, data, self._base)
        self._base += self._filled
        self._filled = 0
        self._cur ^= 1
        pending = self._writes[self._cur]
        return pending if pending is not None and not pending.done() else None

    async def advance(self, n: int) -> None:
        busy = self.commit(n)
        if busy is not None:
            await busy

    async def close(self) -> None:
        """Wait for both writes (raising a write's error)."""
        for write in self._writes:
            if write is not None:
                await write
