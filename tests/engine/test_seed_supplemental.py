"""Seed scenarios about load and robustness: concurrent first use, queue pressure, slow callbacks, drop,
injected HTTP client, oversized chunks, large payloads.

Ports of seed-behavior.md §9.2: supplemental_scenarios_test, large_payload_pressure_test.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest

from app.engine.api import (
    DownloadPounceBuilder,
    FileTransferRecord,
    InnerErrorCode,
    MeowClient,
    MeowError,
    TaskId,
    TransferStatus,
    UploadPounceBuilder,
)
from tests.support.engine_helpers import Recorder, close_injected, closed_client, fast_config, scheduler_threads
from tests.support.http_server import TestHttpServer

# ------------------------------------------------------------------------------ supplemental_scenarios


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_concurrent_first_use_enqueue(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of supplemental_scenarios_test::concurrent_first_use_enqueue_does_not_corrupt_executor_state:
    6 concurrent first enqueues on a fresh client all complete with correct files, the final snapshot is 0/0
    and a single close succeeds."""
    payload = b"concurrent-first-use-payload" * 1024
    for i in range(6):
        srv.add_file(f"/download/concurrent_{i}.bin", payload)
    client = MeowClient(fast_config(max_upload_concurrency=4, max_download_concurrency=4))
    rec = Recorder()

    async def one(c: MeowClient, i: int) -> TaskId:
        task = DownloadPounceBuilder(f"concurrent_{i}.bin", tmp_path / f"c{i}.bin", 4096,
                                     srv.url(f"/download/concurrent_{i}.bin")).build()
        return await c.try_enqueue(task, rec.progress, rec.complete)

    try:
        ids = await asyncio.gather(*(one(client, i) for i in range(6)))
        assert len(set(ids)) == 6
        for tid in ids:
            assert (await rec.wait_terminal(tid)).status is TransferStatus.COMPLETE
        for i in range(6):
            assert (tmp_path / f"c{i}.bin").read_bytes() == payload
        snap = await client.snapshot()
        assert (snap.active_groups, snap.queued_groups) == (0, 0)
        await client.close()
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_small_command_queue_burst_then_recovers(tmp_path: Path) -> None:
    """Port of supplemental_scenarios_test::small_command_queue_capacity_yields_command_send_failed_on_burst:
    command queue capacity 1 and a 64-task burst → ≥1 CommandSendFailed (and no other error); once the queue
    has drained (a snapshot round-trip instead of the seed's fixed sleep) a new enqueue is accepted."""
    client = MeowClient(fast_config(command_queue_capacity=1, worker_event_queue_capacity=32))
    codes: list[InnerErrorCode] = []
    try:
        for i in range(64):
            task = DownloadPounceBuilder(f"bp_{i}.bin", tmp_path / f"bp_{i}.bin", 1024,
                                         "http://127.0.0.1:1/unreachable-burst").build()
            try:
                await client.try_enqueue(task, None, None)
            except MeowError as err:
                codes.append(err.code)
        assert InnerErrorCode.COMMAND_SEND_FAILED in codes
        assert set(codes) == {InnerErrorCode.COMMAND_SEND_FAILED}
        await client.snapshot()  # waits for queue space, answered in order: everything before it is processed
        task = DownloadPounceBuilder("bp_recover.bin", tmp_path / "bp_recover.bin", 1024,
                                     "http://127.0.0.1:1/still-unreachable-but-accepted").build()
        assert isinstance(await client.try_enqueue(task, None, None), TaskId)
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_slow_progress_callback_does_not_prevent_completion(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of supplemental_scenarios_test::slow_progress_callback_does_not_prevent_completion: a progress
    callback that blocks 30 ms per call; the task still completes, the complete callback fires exactly once and
    the global listener is reached."""
    payload = b"slow-callback-payload" * 4096
    srv.add_file("/download/slow.bin", payload)
    dest = tmp_path / "slow.bin"
    client = MeowClient(fast_config(max_upload_concurrency=1, max_download_concurrency=1))
    rec = Recorder()
    global_hits: list[FileTransferRecord] = []

    def slow(record: FileTransferRecord) -> None:
        time.sleep(0.03)
        rec.progress(record)

    try:
        client.register_global_progress_listener(global_hits.append)
        tid = await client.try_enqueue(DownloadPounceBuilder("slow.bin", dest, 4096, srv.url("/download/slow.bin"))
                                       .build(), slow, rec.complete)
        assert (await rec.wait_terminal(tid)).status is TransferStatus.COMPLETE
        await rec.wait_for(lambda: len(rec.completes) >= 1)
        await client.close()
        assert rec.completes == [(tid, None)]
        assert global_hits
        assert dest.read_bytes() == payload
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_drop_client_without_close_does_not_deadlock(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of supplemental_scenarios_test::drop_client_without_close_does_not_deadlock: enqueue → terminal →
    drop without close() finishes within 3 s; new: the client's scheduler thread also ends within 3 s (a
    dropped client must not leak its thread)."""
    payload = b"drop-without-close-payload" * 1024
    srv.add_file("/download/drop.bin", payload)
    before = scheduler_threads()

    async def scenario() -> None:
        client = MeowClient(fast_config(max_upload_concurrency=1, max_download_concurrency=1))
        rec = Recorder()
        tid = await client.try_enqueue(DownloadPounceBuilder("drop.bin", tmp_path / "drop.bin", 4096,
                                                             srv.url("/download/drop.bin")).build(), rec.progress, None)
        await rec.wait_terminal(tid)
        del client
        gc.collect()

    await asyncio.wait_for(scenario(), 3)
    started = scheduler_threads() - before
    deadline = time.monotonic() + 3
    while any(t.is_alive() for t in started) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not any(t.is_alive() for t in started), "the dropped client's scheduler thread is still running"


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_injected_custom_http_client_completes_download(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of supplemental_scenarios_test::injecting_custom_reqwest_client_completes_download: an injected
    httpx.AsyncClient (own User-Agent) is used for the HEAD and every GET; the file is correct."""
    payload = b"custom-client-payload" * 2048
    srv.add_file("/download/custom.bin", payload)
    dest = tmp_path / "custom.bin"
    injected = httpx.AsyncClient(headers={"User-Agent": "rusty-cat-supplemental/1.0"}, timeout=10)
    client = MeowClient(fast_config(max_download_concurrency=1, http_client=injected, http_timeout=10,
                                    tcp_keepalive=30))
    rec = Recorder()
    try:
        task = DownloadPounceBuilder("custom.bin", dest, 4096, srv.url("/download/custom.bin")).build()
        tid = await client.try_enqueue(task, rec.progress, None)
        assert (await rec.wait_terminal(tid)).status is TransferStatus.COMPLETE
    finally:
        await closed_client(client)
    await close_injected(injected)
    assert dest.read_bytes() == payload
    assert srv.requests
    assert {r.headers.get("user-agent") for r in srv.requests} == {"rusty-cat-supplemental/1.0"}


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_oversized_chunk_single_shot_upload(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of supplemental_scenarios_test::oversized_chunk_single_shot_upload_completes_and_matches_total:
    chunk size 4× the file → exactly one chunk request; the server saw every byte and completion."""
    payload = b"oversized-chunk-upload-payload" * 4096
    src = tmp_path / "oversized.bin"
    src.write_bytes(payload)
    client = MeowClient(fast_config(max_upload_concurrency=1))
    rec = Recorder()
    try:
        task = (UploadPounceBuilder("oversized.bin", src, len(payload) * 4)
                .with_url(srv.url("/upload/oversized.bin")).build())
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        assert (await rec.wait_terminal(tid)).status is TransferStatus.COMPLETE
    finally:
        await closed_client(client)
    inspect = srv.upload_inspector()
    assert inspect.chunk_calls == 1
    assert inspect.max_next_byte == len(payload)
    assert inspect.completed


# ------------------------------------------------------------------------------ large_payload_pressure


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_large_upload_and_download_concurrently(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of large_payload_pressure_test (mixed part): a ~5 MB upload and a ~5 MB download at the same time,
    512 KiB chunks; both complete and verify byte for byte."""
    up_payload = os.urandom(5 * 1024 * 1024 + 123)
    down_payload = os.urandom(5 * 1024 * 1024 + 321)
    src = tmp_path / "up.bin"
    src.write_bytes(up_payload)
    srv.add_file("/download/big.bin", down_payload)
    dest = tmp_path / "down.bin"
    client = MeowClient(fast_config(max_upload_concurrency=1, max_download_concurrency=1))
    rec = Recorder()
    try:
        up = await client.try_enqueue(UploadPounceBuilder("up.bin", src, 512 * 1024)
                                      .with_url(srv.url("/upload/big.bin")).build(), rec.progress, rec.complete)
        down = await client.try_enqueue(DownloadPounceBuilder("down.bin", dest, 512 * 1024,
                                                              srv.url("/download/big.bin")).build(),
                                        rec.progress, rec.complete)
        assert (await rec.wait_terminal(up, timeout=25)).status is TransferStatus.COMPLETE
        assert (await rec.wait_terminal(down, timeout=25)).status is TransferStatus.COMPLETE
    finally:
        await closed_client(client)
    state = srv.uploads[hashlib.md5(up_payload).hexdigest()]
    assert state.data == up_payload and state.md5_ok
    assert dest.read_bytes() == down_payload


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_eight_concurrent_downloads_with_slow_callbacks(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of large_payload_pressure_test (fan-out part): 8 concurrent downloads whose callbacks sleep 5 ms
    each all complete with correct bytes."""
    payloads = {i: bytes([i]) * 1000 + os.urandom(256 * 1024) for i in range(8)}
    for i, data in payloads.items():
        srv.add_file(f"/download/p{i}.bin", data)
    client = MeowClient(fast_config(max_download_concurrency=8))
    rec = Recorder()

    def slow(record: FileTransferRecord) -> None:
        time.sleep(0.005)
        rec.progress(record)

    try:
        ids = [await client.try_enqueue(DownloadPounceBuilder(f"p{i}.bin", tmp_path / f"p{i}.bin", 64 * 1024,
                                                              srv.url(f"/download/p{i}.bin")).build(), slow, None)
               for i in range(8)]
        for tid in ids:
            assert (await rec.wait_terminal(tid, timeout=25)).status is TransferStatus.COMPLETE
    finally:
        await closed_client(client)
    for i, data in payloads.items():
        assert (tmp_path / f"p{i}.bin").read_bytes() == data
