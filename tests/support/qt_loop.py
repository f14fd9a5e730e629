"""A qasync loop marked "already running" for sync pytest-qt tests (machine-recipes §3, pattern C).

With it, ordinary ``qtbot.waitUntil``/``waitSignal`` drive asyncio work (httpx, the manager) because every Qt
event-loop spin also runs asyncio callbacks. Never use qtbot.wait* inside ``async def`` tests, and never call
``loop.stop()``/``app.exit()``: either hangs or poisons the rest of the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import qasync
from PySide6.QtWidgets import QApplication

T = TypeVar("T")


def make_loop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        deadline = loop.time() + 5
        while any(not t.done() for t in pending) and loop.time() < deadline:
            qapp.processEvents()
        loop._QEventLoop__is_running = False  # type: ignore[attr-defined]  (not loop.stop(): see module doc)
        try:
            qapp.aboutToQuit.disconnect(loop._after_run_forever)
        except (RuntimeError, TypeError):
            pass
        loop._after_run_forever()
        asyncio.events._set_running_loop(None)
        asyncio.set_event_loop(None)
        loop.close()


def run_coro(qtbot: Any, coro: Coroutine[Any, Any, T], timeout: int = 10_000) -> T:
    """Run ``coro`` on the running qasync loop from a sync test and return its result."""
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=timeout)
    return task.result()
