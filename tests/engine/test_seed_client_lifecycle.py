"""Seed scenarios about the client's lifecycle: close, drop, lazy start, finished/unknown task ids.

Ports of seed-behavior.md §9.2: meow_client_lifecycle_test, executor_drop_best_effort_test,
concurrent_init_warning_and_jitter_test, task_not_found_test.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.api import (
    DownloadPounceBuilder,
    InnerErrorCode,
    Log,
    LogLevel,
    MeowClient,
    MeowConfig,
    MeowError,
    TransferStatus,
    set_debug_log_listener,
)
from tests.support.engine_helpers import Recorder, closed_client, fast_config, one_one, scheduler_threads
from tests.support.http_server import TestHttpServer

DATA = bytes(range(256)) * 256  # 64 KiB, every offset distinguishable modulo 256


@pytest.fixture
def logs() -> Iterator[list[Log]]:
    """Capture the process-global debug log; always reset to None afterwards."""
    captured: list[Log] = []
    set_debug_log_listener(captured.append)
    yield captured
    set_debug_log_listener(None)


async def expect_code(coro: object, *codes: InnerErrorCode) -> MeowError:
    with pytest.raises(MeowError) as info:
        await coro  # type: ignore[misc]
    assert info.value.code in codes, info.value
    return info.value


# ------------------------------------------------------------------------------ meow_client_lifecycle


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_close_without_executor_marks_client_closed() -> None:
    """Port of meow_client_lifecycle_test::close_without_executor_initialization_marks_client_closed.

    Python API: is_closed() is synchronous.
    """
    client = MeowClient(one_one())
    assert not client.is_closed()
    await client.close()
    assert client.is_closed()
    err = await expect_code(client.close(), InnerErrorCode.CLIENT_CLOSED)
    assert err.msg == "meow client is already closed"


@pytest.mark.asyncio
@pytest.mark.timeout(15)
async def test_all_control_apis_return_client_closed_after_close(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of meow_client_lifecycle_test::all_control_apis_return_client_closed_after_close."""
    srv.add_file("/lifecycle.bin", DATA)
    client = MeowClient(one_one())
    task = DownloadPounceBuilder("lifecycle.bin", tmp_path / "a.bin", 2048, srv.url("/lifecycle.bin")).build()
    task_id = await client.try_enqueue(task, lambda _r: None, lambda _t, _p: None)
    await client.close()
    assert client.is_closed()

    late = DownloadPounceBuilder("closed.bin", tmp_path / "b.bin", 1024, srv.url("/lifecycle.bin")).build()
    await expect_code(client.try_enqueue(late, None, None), InnerErrorCode.CLIENT_CLOSED)
    await expect_code(client.pause(task_id), InnerErrorCode.CLIENT_CLOSED)
    await expect_code(client.resume(task_id), InnerErrorCode.CLIENT_CLOSED)
    await expect_code(client.cancel(task_id), InnerErrorCode.CLIENT_CLOSED)
    await expect_code(client.snapshot(), InnerErrorCode.CLIENT_CLOSED)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_close_during_active_transfer_pauses_every_known_task(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of meow_client_lifecycle_test::close_active_transfer_should_emit_pause_or_terminal_status.

    New (stricter than the seed's "some paused/terminal status"): close() emits exactly one Paused for every
    known task (the running one and a queued one), nothing after it, no terminal status, no complete callback;
    the running download keeps its ``.part`` + checkpoint and never appears at the final path.
    """
    # 1 MiB on one connection at 64 KiB/s: the first write lands after ~1 s (writes are batched by 64 KiB at
    # least) and the file needs ~16 s, so the download is certainly still running when close() comes.
    srv.add_file("/active.bin", DATA * 16)
    srv.add_file("/queued.bin", DATA)
    srv.rate_limit = 64 * 1024
    client = MeowClient(fast_config(max_download_concurrency=1))
    rec = Recorder()
    running_dest = tmp_path / "active.bin"
    running = await client.try_enqueue(
        DownloadPounceBuilder("active.bin", running_dest, 1024, srv.url("/active.bin"))
        .with_max_chunk_concurrency(1).build(),
        rec.progress, rec.complete)
    queued = await client.try_enqueue(
        DownloadPounceBuilder("queued.bin", tmp_path / "queued.bin", 1024, srv.url("/queued.bin")).build(),
        rec.progress, rec.complete)
    await rec.wait_for(lambda: any(r.status is TransferStatus.TRANSMISSION and r.transferred_bytes > 0
                                   for r in rec.of(running)))
    await client.close()
    assert client.is_closed()
    for tid in (running, queued):
        statuses = rec.statuses(tid)
        assert statuses.count(TransferStatus.PAUSED) == 1, statuses
        assert statuses[-1] is TransferStatus.PAUSED, statuses
        assert not any(s.is_terminal for s in statuses), statuses
    assert TransferStatus.TRANSMISSION not in rec.statuses(queued)
    assert rec.completes == []
    assert not running_dest.exists()
    assert Path(f"{running_dest}.part").exists()
    assert Path(f"{running_dest}.part.ckpt").exists()


# ------------------------------------------------------------------------------ executor_drop_best_effort


@pytest.mark.asyncio
@pytest.mark.timeout(15)
async def test_drop_without_close_warns_once_and_stops_scheduler(logs: list[Log]) -> None:
    """Port of executor_drop_best_effort_test::dropping_meow_client_without_close_emits_warn_and_does_not_hang.

    Python: ``del client; gc.collect()`` without close() → exactly one WARN "executor_drop" plus the best-effort
    follow-up debug line, and the scheduler thread ends within 3 s.
    """
    before = scheduler_threads()
    client = MeowClient(one_one())
    snap = await client.snapshot()  # starts the scheduler lazily
    assert snap.active_groups == 0
    started = scheduler_threads() - before
    assert len(started) == 1
    (thread,) = started
    del client
    gc.collect()
    drop_logs = [e for e in logs if e.tag == "executor_drop"]
    warns = [e for e in drop_logs if e.level is LogLevel.WARN]
    assert len(warns) == 1, [str(e) for e in drop_logs]
    assert any("best-effort Close command queued during Drop" in e.message
               or "best-effort Close try_send skipped" in e.message for e in drop_logs), [str(e) for e in drop_logs]
    await asyncio.to_thread(thread.join, 3)
    assert not thread.is_alive(), "the scheduler thread must end after a drop without close()"


@pytest.mark.asyncio
@pytest.mark.timeout(15)
async def test_drop_after_close_does_not_warn(logs: list[Log]) -> None:
    """Port of executor_drop_best_effort_test::dropping_meow_client_after_close_does_not_emit_warn."""
    client = MeowClient(one_one())
    await client.snapshot()
    await client.close()
    del client
    gc.collect()
    drop_logs = [e for e in logs if e.tag == "executor_drop"]
    assert not [e for e in drop_logs if e.level is LogLevel.WARN]
    assert any("executor dropped after explicit close()" in e.message and e.level is LogLevel.DEBUG
               for e in drop_logs), [str(e) for e in drop_logs]


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_drop_of_untouched_client_is_silent(logs: list[Log]) -> None:
    """Port of executor_drop_best_effort_test::dropping_meow_client_without_ever_touching_executor_is_silent."""
    before = scheduler_threads()
    client = MeowClient(one_one())
    del client
    gc.collect()
    assert [e for e in logs if e.tag == "executor_drop"] == []
    assert scheduler_threads() - before == set(), "an untouched client starts no thread"


# ------------------------------------------------------------------------------ concurrent_init_warning


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_concurrent_first_use_starts_one_executor_and_no_drop_warning(
        srv: TestHttpServer, tmp_path: Path, logs: list[Log]) -> None:
    """Port of concurrent_init_warning_and_jitter_test::concurrent_first_init_does_not_emit_executor_drop_warn_or_...

    8 concurrent first try_enqueue calls on one fresh client: all complete with correct bytes, exactly one
    "executor worker started" log, and no executor_drop WARN after an explicit close() and drop.
    """
    payload = b"concurrent-init-log-check" * 4096
    for i in range(8):
        srv.add_file(f"/{i}.bin", payload)
    client = MeowClient(fast_config(max_upload_concurrency=4, max_download_concurrency=4))
    rec = Recorder()

    async def one(c: MeowClient, i: int) -> object:
        task = DownloadPounceBuilder(f"{i}.bin", tmp_path / f"{i}.bin", 4096, srv.url(f"/{i}.bin")).build()
        return await c.try_enqueue(task, rec.progress, rec.complete)

    ids = await asyncio.gather(*(one(client, i) for i in range(8)))
    finals = [await rec.wait_terminal(tid) for tid in ids]  # type: ignore[arg-type]
    assert [f.status for f in finals] == [TransferStatus.COMPLETE] * 8
    for i in range(8):
        assert (tmp_path / f"{i}.bin").read_bytes() == payload
    await client.close()
    del client
    gc.collect()
    assert not [e for e in logs if e.tag == "executor_drop" and e.level is LogLevel.WARN]
    started = [e for e in logs if e.tag == "executor" and "executor worker started" in e.message]
    assert len(started) == 1


# ------------------------------------------------------------------------------ task_not_found


@pytest.mark.asyncio
@pytest.mark.timeout(15)
async def test_controls_after_cancel_report_task_not_found(tmp_path: Path) -> None:
    """Port of task_not_found_test: cancel (Ok even though the URL is unreachable), then cancel/pause/resume on
    the same id → TaskNotFound "task not found: <id>"; exactly one Canceled record."""
    client = MeowClient(MeowConfig(max_download_concurrency=1))  # default back-off: the probe can't fail first
    try:
        rec = Recorder()
        task = DownloadPounceBuilder("tnf.bin", tmp_path / "task-not-found.bin", 1024,
                                     "http://127.0.0.1:1/task-not-found.bin").build()
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        await client.cancel(tid)
        for op in (client.cancel, client.pause, client.resume):
            err = await expect_code(op(tid), InnerErrorCode.TASK_NOT_FOUND)
            assert err.msg == f"task not found: {tid}"
        final = await rec.wait_terminal(tid)
        assert final.status is TransferStatus.CANCELED
        assert rec.statuses(tid).count(TransferStatus.CANCELED) == 1
    finally:
        await closed_client(client)
