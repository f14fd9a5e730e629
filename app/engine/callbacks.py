"""Callback delivery: on the loop that created the client, in order, one at a time, each call isolated.

The scheduler thread only appends to a queue; the client's loop drains it. A slow callback therefore delays
other callbacks but never a transfer or a control command, and a Transmission record that is still waiting
is replaced by a newer one for the same task instead of queueing behind it (progress coalesces under load).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.engine import log
from app.engine.ids import TaskId
from app.engine.record import FileTransferRecord, TransferStatus

ProgressCallback = Callable[[FileTransferRecord], Any]
CompleteCallback = Callable[[TaskId, "str | None"], Any]

_SLICE = 0.02  # seconds of callbacks per loop turn, so a burst never starves the UI


@dataclass
class _Item:
    record: FileTransferRecord | None
    progress_cb: ProgressCallback | None
    complete_cb: CompleteCallback | None = None
    task_id: TaskId | None = None
    payload: str | None = None


class CallbackDispatcher:
    def __init__(self, loop: asyncio.AbstractEventLoop, listeners: Callable[[], list[ProgressCallback]]) -> None:
        self._loop = loop
        self._listeners = listeners
        self._lock = threading.Lock()
        self._items: deque[_Item] = deque()
        self._waiting_progress: dict[TaskId, _Item] = {}
        self._scheduled = False
        self._busy = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The client's loop: where callbacks run, and where an injected httpx client is used."""
        return self._loop

    def post_record(self, record: FileTransferRecord, progress_cb: ProgressCallback | None,
                    complete: tuple[CompleteCallback | None, str | None] | None = None) -> None:
        """Queue a record. ``complete`` = (complete callback, payload) is queued right behind it under the same lock,
        so the two are always delivered in the same loop turn: nobody sees Complete without its callback."""
        with self._lock:
            if record.status is TransferStatus.TRANSMISSION:
                waiting = self._waiting_progress.get(record.task_id)
                if waiting is not None:
                    waiting.record = record
                    return
                item = _Item(record, progress_cb)
                self._waiting_progress[record.task_id] = item
            else:
                self._waiting_progress.pop(record.task_id, None)
                item = _Item(record, progress_cb)
            self._items.append(item)
            if complete is not None and complete[0] is not None:
                self._items.append(_Item(None, None, complete[0], record.task_id, complete[1]))
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the client's loop is closed: nobody is left to call back
            with self._lock:
                self._items.clear()
                self._waiting_progress.clear()
                self._scheduled = False
            log.warn("callback", "client event loop is closed; dropping callbacks")

    def _drain(self) -> None:
        deadline = time.monotonic() + _SLICE
        self._busy = True
        try:
            while True:
                with self._lock:
                    if not self._items:
                        self._scheduled = False
                        return
                    item = self._items.popleft()
                    if item.record is not None and self._waiting_progress.get(item.record.task_id) is item:
                        del self._waiting_progress[item.record.task_id]
                self._deliver(item)
                with self._lock:  # a Complete record and its complete callback go out in the same loop turn
                    completing = bool(self._items) and self._items[0].complete_cb is not None
                if time.monotonic() > deadline and not completing:
                    self._loop.call_soon(self._drain)  # stay scheduled; let the loop breathe
                    return
        finally:
            self._busy = False

    def _deliver(self, item: _Item) -> None:
        if item.record is not None:
            if item.progress_cb is not None:
                _call("progress callback", item.progress_cb, item.record)
            for listener in self._listeners():
                _call("global listener", listener, item.record)
        elif item.complete_cb is not None:
            _call("complete callback", item.complete_cb, item.task_id, item.payload)

    def pending(self) -> bool:
        with self._lock:
            return bool(self._items) or self._busy

    async def drained(self, timeout: float = 10.0) -> None:
        """Wait (on the client's loop) until every queued callback ran."""
        end = time.monotonic() + timeout
        while self.pending() and time.monotonic() < end:
            await asyncio.sleep(0.001)


def _call(what: str, fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:  # isolation: a broken callback is logged, never propagated
        log.warn("callback", f"{what} raised {type(exc).__name__}: {exc}")
