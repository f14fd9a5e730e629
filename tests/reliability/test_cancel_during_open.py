"""A pause or cancel that lands while a run is opening its file in a worker thread (the window the control storm
found): the run must not count as stopped until the open is over, and must close what the open returned.

Before the fix, ``await ctx.in_thread(open)`` was simply cancelled: the thread went on, its descriptor leaked (tens
per storm), and a download's open could still truncate / preallocate the ``.part`` after ``cancel(wait_released=
True)`` had told the caller the files were free. A slow disk is simulated by delaying the real open.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.engine.api import DownloadPounceBuilder, TransferStatus, UploadPounceBuilder
from app.engine.download import DownloadRun
from app.engine.upload import UploadRun
from tests.support.engine_helpers import Recorder, meow
from tests.support.http_server import TestHttpServer

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]
OPEN_DELAY = 0.4


def open_fds_to(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            pass
    return count


class SlowOpen:
    """Wraps a run's blocking open: signals when it starts, sleeps, opens, signals when it returned."""

    def __init__(self, original: Callable[..., Any]) -> None:
        self.original = original
        self.started = threading.Event()
        self.finished = threading.Event()

    def __call__(self, run: Any, *args: Any) -> Any:
        self.started.set()
        time.sleep(OPEN_DELAY)
        try:
            return self.original(run, *args)
        finally:
            self.finished.set()


async def wait_event(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 5), "the open never started"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("control", ["pause", "cancel_wait"])
async def test_download_stopped_while_opening_its_part_file_lets_go_of_it(
        control: str, srv: TestHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = SlowOpen(DownloadRun._open)
    monkeypatch.setattr(DownloadRun, "_open", lambda run, probe: slow(run, probe))
    data = os.urandom(200_000)
    srv.add_file("/f.bin", data)
    dest = tmp_path / "f.bin"
    part = Path(f"{dest}.part")
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(DownloadPounceBuilder("f.bin", dest, 16_384, srv.url("/f.bin")).build(),
                                       rec.progress, rec.complete)
        await wait_event(slow.started)
        if control == "pause":
            await client.pause(tid)
            await rec.wait_status(tid, TransferStatus.PAUSED)
            await asyncio.sleep(OPEN_DELAY + 0.3)  # the open is over by now in any case
        else:
            await client.cancel(tid, wait_released=True)
            assert slow.finished.is_set(), "cancel(wait_released=True) returned while the file was still being opened"
        assert open_fds_to(part) == 0, "the descriptor of the interrupted open leaked"
        if control == "pause":  # and the task still resumes into a correct file
            slow.started.clear()
            await client.resume(tid)
            final = await rec.wait_terminal(tid)
            assert final.status is TransferStatus.COMPLETE, final.error
            assert dest.read_bytes() == data
    assert open_fds_to(part) == open_fds_to(dest) == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_upload_paused_while_opening_its_source_lets_go_of_it(srv: TestHttpServer, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    slow = SlowOpen(UploadRun._open_source)
    monkeypatch.setattr(UploadRun, "_open_source", lambda run: slow(run))
    src = tmp_path / "src.bin"
    data = os.urandom(100_000)
    src.write_bytes(data)
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(UploadPounceBuilder("src.bin", src, 16_384).with_url(srv.url("/upload"))
                                       .build(), rec.progress, rec.complete)
        await wait_event(slow.started)
        await client.cancel(tid, wait_released=True)
        assert slow.finished.is_set(), "cancel(wait_released=True) returned while the source was still being opened"
        assert open_fds_to(src) == 0, "the descriptor of the interrupted open leaked"
        final = await rec.wait_terminal(tid)
        assert final.status is TransferStatus.CANCELED
