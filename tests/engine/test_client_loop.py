"""Callbacks arrive on the loop that created the client, never on the engine's scheduler thread."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from app.engine.api import DownloadPounceBuilder, MeowClient, TransferStatus
from tests.support.engine_helpers import Recorder, fast_config
from tests.support.http_server import TestHttpServer


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_callbacks_run_on_the_creating_loop_thread(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    threads: set[int] = set()
    rec = Recorder()

    def progress(record):  # type: ignore[no-untyped-def]
        threads.add(threading.get_ident())
        rec.progress(record)

    with TestHttpServer() as srv:
        srv.add_file("/f", data)
        client = MeowClient(fast_config())
        tid = await client.try_enqueue(
            DownloadPounceBuilder("f", tmp_path / "f", 64 * 1024, srv.url("/f")).build(), progress,
            lambda i, p: threads.add(threading.get_ident()))
        final = await rec.wait_terminal(tid)
        await client.close()
    assert final.status is TransferStatus.COMPLETE
    assert threads == {threading.get_ident()}
    assert (tmp_path / "f").read_bytes() == data


@pytest.mark.timeout(60)
def test_client_on_a_qasync_loop_feeds_the_gui_thread_while_timers_tick(qapp, tmp_path: Path) -> None:
    """The app's setup: MeowClient created on qasync's loop; the transfer runs on the engine thread."""
    import qasync
    from PySide6.QtCore import QTimer

    data = os.urandom(8 * 1024 * 1024)
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(16)
    gui_thread = threading.get_ident()
    threads: set[int] = set()
    rec = Recorder()

    async def scenario() -> TransferStatus:
        client = MeowClient(fast_config(progress_interval=0.05))

        def progress(record):  # type: ignore[no-untyped-def]
            threads.add(threading.get_ident())
            rec.progress(record)

        tid = await client.try_enqueue(
            DownloadPounceBuilder("big", tmp_path / "big", 256 * 1024, srv.url("/big")).build(), progress)
        final = await rec.wait_terminal(tid, timeout=40)
        await client.close()
        return final.status

    try:
        with TestHttpServer() as srv:
            srv.add_file("/big", data)
            srv.rate_limit = 16 * 1024 * 1024  # ~0.5 s, so the timer has time to tick
            status = loop.run_until_complete(scenario())
    finally:
        timer.stop()
        asyncio.set_event_loop(None)
        loop.close()
    assert status is TransferStatus.COMPLETE
    assert threads == {gui_thread}
    assert ticks >= 5
    assert (tmp_path / "big").read_bytes() == data
