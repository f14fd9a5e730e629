"""Controls the desktop app needs while transfers run: concurrency changed live, and a cancel that waits until
the task has let go of its files (so the partial file can be deleted without a late write re-creating it)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from app.engine.api import DownloadPounceBuilder, MeowError, TransferStatus
from app.engine.checkpoint import checkpoint_path, part_path
from app.engine.record import Direction
from tests.support.engine_helpers import KIB, Recorder, blob, meow
from tests.support.http_server import TestHttpServer

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


async def test_max_concurrency_changes_while_transfers_wait(srv: TestHttpServer, tmp_path: Path) -> None:
    for i in range(3):
        srv.add_file(f"/f{i}.bin", blob(256 * KIB, seed=i))
    srv.rate_limit = 256 * KIB
    rec = Recorder()
    async with meow(max_download_concurrency=1) as client:
        ids = []
        for i in range(3):
            task = DownloadPounceBuilder(f"f{i}", str(tmp_path / f"f{i}.bin"), 64 * KIB, srv.url(f"/f{i}.bin")).build()
            ids.append(await client.try_enqueue(task, rec.progress, rec.complete))
        await rec.wait_status(ids[0], TransferStatus.TRANSMISSION)
        await asyncio.sleep(0.2)
        assert TransferStatus.TRANSMISSION not in rec.statuses(ids[1]) + rec.statuses(ids[2])
        await client.set_max_concurrency(Direction.DOWNLOAD, 3)
        await rec.wait_for(lambda: all(TransferStatus.TRANSMISSION in rec.statuses(i) for i in ids[1:]), 5)
        srv.rate_limit = None
        for i in ids:
            assert (await rec.wait_terminal(i)).status is TransferStatus.COMPLETE
        for bad in (0, 1025, True, 2.0):
            with pytest.raises(MeowError):
                await client.set_max_concurrency(Direction.UPLOAD, bad)  # type: ignore[arg-type]


async def test_cancel_wait_released_lets_the_caller_delete_the_partial_file(srv: TestHttpServer,
                                                                            tmp_path: Path) -> None:
    srv.add_file("/big.bin", blob(4 * 1024 * KIB))
    srv.rate_limit = 512 * KIB
    dest = str(tmp_path / "big.bin")
    rec = Recorder()
    async with meow() as client:
        task = DownloadPounceBuilder("big", dest, 64 * KIB, srv.url("/big.bin")).build()
        task_id = await client.try_enqueue(task, rec.progress, rec.complete)
        await rec.wait_for(lambda: any(r.transferred_bytes > 128 * KIB for r in rec.of(task_id)))
        await client.cancel(task_id, wait_released=True)
        assert os.path.exists(part_path(dest))
        os.unlink(part_path(dest))
        if os.path.exists(checkpoint_path(dest)):
            os.unlink(checkpoint_path(dest))
        await asyncio.sleep(0.5)
        assert not os.path.exists(part_path(dest)) and not os.path.exists(checkpoint_path(dest))


async def test_raising_a_limit_wakes_a_transfer_that_is_sleeping_off_its_debt() -> None:
    """The debt model sleeps after a read; at 1 KiB/s a 64 KiB read would sleep a minute. Lifting the limit
    must end that wait within MAX_SLEEP, not after the old rate's delay."""
    from app.engine.ratelimit import MAX_SLEEP, TokenBucket, consume_all

    bucket = TokenBucket(1024)
    loop = asyncio.get_running_loop()
    waiter = asyncio.ensure_future(consume_all((bucket,), 64 * KIB))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = loop.time()
    bucket.set_rate(None)
    await asyncio.wait_for(waiter, timeout=5)
    assert loop.time() - started <= MAX_SLEEP + 0.1
