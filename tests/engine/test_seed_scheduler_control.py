"""Seed scenarios about the scheduler: queueing, pause/resume/cancel, duplicates, snapshots, back-pressure, limits.

Ports of seed-behavior.md §9.2: executor_queue_control_test, control_command_race_test, pause_resume_test,
meow_client_duplicate_and_state_test, meow_client_enqueue_snapshot_test, try_enqueue_back_pressure_test,
meow_config_concurrency_e2e_test.

The seed kept tasks queued with concurrency 0; the port rejects that config, so these tests occupy the single
slot (max_download_concurrency=1) with a blocker download whose GET body stalls.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.engine.api import (
    Direction,
    DownloadPounceBuilder,
    FileTransferRecord,
    InnerErrorCode,
    MeowClient,
    MeowError,
    TaskId,
    TransferStatus,
    UploadPounceBuilder,
)
from tests.support.engine_helpers import Recorder, closed_client, fast_config
from tests.support.http_server import Fault, TestHttpServer

DATA = bytes(range(256)) * 256  # 64 KiB


def add_blocker(srv: TestHttpServer) -> str:
    """A file whose GET bodies stall for 30 s: a download of it occupies a slot for the whole test."""
    srv.add_file("/blocker.bin", DATA)
    srv.add_fault(Fault("stall", method="GET", path_prefix="/blocker", seconds=30, times=-1))
    return srv.url("/blocker.bin")


async def start_blocker(client: MeowClient, srv: TestHttpServer, rec: Recorder, dest: Path) -> TaskId:
    tid = await client.try_enqueue(DownloadPounceBuilder("blocker.bin", dest, 4096, add_blocker(srv)).build(),
                                   rec.progress, rec.complete)
    await rec.wait_status(tid, TransferStatus.TRANSMISSION)
    return tid


def codes(results: list[object]) -> set[InnerErrorCode]:
    out = set()
    for r in results:
        if isinstance(r, BaseException):
            assert isinstance(r, MeowError), repr(r)
            out.add(r.code)
    return out


def nothing_after_terminal(rec: Recorder, tid: TaskId) -> None:
    statuses = rec.statuses(tid)
    terminal = [i for i, s in enumerate(statuses) if s.is_terminal]
    assert len(terminal) == 1 and terminal[0] == len(statuses) - 1, statuses


# ------------------------------------------------------------------------------ executor_queue_control


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_queue_control_pause_resume_cancel_of_queued_task(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of executor_queue_control_test.

    New: instead of concurrency 0, a stalled blocker occupies the only download slot. Snapshot queued=1 →
    pause → queued=0 (paused_groups=1) → resume → queued=1 → cancel → queued=0 → second cancel TaskNotFound.
    The queued task never transmits.
    """
    srv.add_file("/q.bin", DATA)
    client = MeowClient(fast_config(max_download_concurrency=1))
    rec = Recorder()
    try:
        blocker = await start_blocker(client, srv, rec, tmp_path / "blocker.bin")
        tid = await client.try_enqueue(DownloadPounceBuilder("q.bin", tmp_path / "q.bin", 4096, srv.url("/q.bin"))
                                       .build(), rec.progress, rec.complete)
        snap = await client.snapshot()
        assert (snap.queued_groups, snap.active_groups) == (1, 1)
        await client.pause(tid)
        snap = await client.snapshot()
        assert (snap.queued_groups, snap.active_groups, snap.paused_groups) == (0, 1, 1)
        await client.resume(tid)
        snap = await client.snapshot()
        assert (snap.queued_groups, snap.paused_groups) == (1, 0)
        await client.cancel(tid)
        snap = await client.snapshot()
        assert (snap.queued_groups, snap.active_groups) == (0, 1)
        with pytest.raises(MeowError) as info:
            await client.cancel(tid)
        assert info.value.code == InnerErrorCode.TASK_NOT_FOUND
        await rec.wait_terminal(tid)
        assert rec.statuses(tid) == [TransferStatus.PENDING, TransferStatus.PAUSED, TransferStatus.PENDING,
                                     TransferStatus.CANCELED]
        assert srv.count("GET", "/q.bin") == 0 and srv.count("HEAD", "/q.bin") == 0
        await client.cancel(blocker)
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ control_command_race


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_concurrent_pause_resume_cancel_converge_to_terminal(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of control_command_race_test::concurrent_pause_resume_cancel_on_same_task_do_not_break_state_machine.

    8× (pause, resume, cancel) raced on one running download: every error is TaskNotFound/InvalidTaskState,
    the task ends in exactly one terminal status (Canceled here) and no record follows it.
    """
    payload = b"control-race-same-task" * 1024 * 16
    srv.add_file("/race.bin", payload)
    srv.rate_limit = 64 * 1024
    client = MeowClient(fast_config(max_download_concurrency=1))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(DownloadPounceBuilder("race.bin", tmp_path / "race.bin", 1024,
                                                             srv.url("/race.bin")).build(), rec.progress, rec.complete)
        await rec.wait_status(tid, TransferStatus.TRANSMISSION)
        ops = [op(tid) for _ in range(8) for op in (client.pause, client.resume, client.cancel)]
        results = await asyncio.gather(*ops, return_exceptions=True)
        assert codes(results) <= {InnerErrorCode.TASK_NOT_FOUND, InnerErrorCode.INVALID_TASK_STATE}
        final = await rec.wait_terminal(tid)
        assert final.status in (TransferStatus.CANCELED, TransferStatus.COMPLETE)
        snap = await client.snapshot()
        assert (snap.queued_groups, snap.active_groups) == (0, 0)
        await asyncio.sleep(0.1)  # a late record would arrive here
        nothing_after_terminal(rec, tid)
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_close_racing_with_enqueue_pause_resume(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of control_command_race_test::close_racing_with_enqueue_pause_resume_is_semantically_stable.

    New: the anchor is a stalled running download (not a concurrency-0 queued task).
    """
    srv.add_file("/late.bin", DATA)
    client = MeowClient(fast_config(max_download_concurrency=1))
    rec = Recorder()
    anchor = await start_blocker(client, srv, rec, tmp_path / "anchor.bin")
    late = DownloadPounceBuilder("late.bin", tmp_path / "late.bin", 1024, srv.url("/late.bin")).build()
    close_r, pause_r, resume_r, enqueue_r = await asyncio.gather(
        client.close(), client.pause(anchor), client.resume(anchor), client.try_enqueue(late, None, None),
        return_exceptions=True)
    assert close_r is None or codes([close_r]) == {InnerErrorCode.CLIENT_CLOSED}
    allowed = {InnerErrorCode.CLIENT_CLOSED, InnerErrorCode.TASK_NOT_FOUND, InnerErrorCode.INVALID_TASK_STATE}
    assert codes([pause_r, resume_r]) <= allowed
    assert codes([enqueue_r]) <= {InnerErrorCode.CLIENT_CLOSED, InnerErrorCode.COMMAND_SEND_FAILED}
    assert client.is_closed()
    with pytest.raises(MeowError) as info:
        await client.snapshot()
    assert info.value.code == InnerErrorCode.CLIENT_CLOSED
    assert not any(s.is_terminal for s in rec.statuses(anchor))


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_controls_right_after_completion_are_task_not_found(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of control_command_race_test::pause_resume_cancel_right_after_completion_have_stable_errors."""
    payload = b"terminal-then-control" * 128
    srv.add_file("/done.bin", payload)
    client = MeowClient(fast_config(max_download_concurrency=1))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(DownloadPounceBuilder("done.bin", tmp_path / "done.bin", len(payload),
                                                             srv.url("/done.bin")).build(), rec.progress, rec.complete)
        assert (await rec.wait_terminal(tid)).status is TransferStatus.COMPLETE
        for op in (client.pause, client.resume, client.cancel):
            with pytest.raises(MeowError) as info:
                await op(tid)
            assert info.value.code in (InnerErrorCode.TASK_NOT_FOUND, InnerErrorCode.INVALID_TASK_STATE)
        assert (tmp_path / "done.bin").read_bytes() == payload
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ pause_resume


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_pause_then_immediate_resume_completes_same_task(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of pause_resume_test: 12-byte file, 4-byte chunks, 250 ms per GET; pause while transmitting →
    Paused → resume → the same TaskId completes with the right bytes.

    New: pause interrupts the in-flight GETs at once (no Transmission/Complete of the old run after Paused) and
    resume is accepted right after pause (no "still stopping, retry later" error, so no retry loop).
    """
    data = b"abcdefghijkl"
    srv.add_file("/pr.bin", data)
    srv.add_fault(Fault("delay", method="GET", seconds=0.25, times=-1))
    client = MeowClient(fast_config(max_download_concurrency=1))
    rec = Recorder()
    dest = tmp_path / "pr.bin"
    try:
        tid = await client.try_enqueue(DownloadPounceBuilder("pr.bin", dest, 4, srv.url("/pr.bin")).build(),
                                       rec.progress, rec.complete)
        await rec.wait_status(tid, TransferStatus.TRANSMISSION)
        t0 = time.monotonic()
        await client.pause(tid)
        await rec.wait_status(tid, TransferStatus.PAUSED)
        await client.resume(tid)  # accepted at once
        assert time.monotonic() - t0 < 0.25, "pause + resume must not wait for the in-flight GETs"
        final = await rec.wait_terminal(tid)
        assert final.status is TransferStatus.COMPLETE
        assert final.task_id == tid
        assert dest.read_bytes() == data
        statuses = rec.statuses(tid)
        paused_at = statuses.index(TransferStatus.PAUSED)
        assert statuses[paused_at + 1] is TransferStatus.PENDING, statuses
        assert statuses.count(TransferStatus.COMPLETE) == 1
        assert rec.completes == [(tid, None)]
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ meow_client_duplicate_and_state


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_same_url_to_different_paths_is_not_a_duplicate(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of meow_client_duplicate_and_state_test::second_enqueue_with_same_download_url_hits_duplicate_branch.

    New: the download dedupe key is URL + destination, so the same URL to two paths is two tasks that both
    complete (the seed rejected the second with DuplicateTaskError, weakness #4).
    """
    payload = b"duplicate-branch-payload" * 8192
    srv.add_file("/dup.bin", payload)
    client = MeowClient(fast_config(max_download_concurrency=2))
    rec = Recorder()
    try:
        t1 = await client.try_enqueue(DownloadPounceBuilder("dup.bin", tmp_path / "dup1.bin", 1024,
                                                            srv.url("/dup.bin")).build(), rec.progress, rec.complete)
        t2 = await client.try_enqueue(DownloadPounceBuilder("dup.bin", tmp_path / "dup2.bin", 1024,
                                                            srv.url("/dup.bin")).build(), rec.progress, rec.complete)
        assert (await rec.wait_terminal(t1)).status is TransferStatus.COMPLETE
        assert (await rec.wait_terminal(t2)).status is TransferStatus.COMPLETE
        assert (tmp_path / "dup1.bin").read_bytes() == payload
        assert (tmp_path / "dup2.bin").read_bytes() == payload
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_same_url_and_same_path_is_duplicate_of_new_task(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of meow_client_duplicate_and_state_test (duplicate branch) with the port's key.

    try_enqueue returns a TaskId, then that task's callback (and every global listener) gets one
    Failed(DuplicateTaskError) record carrying the NEW task's id (the seed used the leader's, weakness #3);
    the new id is unknown to controls, its complete callback never fires, and the leader completes.
    """
    srv.add_file("/dup.bin", DATA)
    srv.rate_limit = 128 * 1024
    client = MeowClient(fast_config(max_download_concurrency=2))
    rec, second, global_rec = Recorder(), Recorder(), Recorder()
    client.register_global_progress_listener(global_rec.progress)
    dest = tmp_path / "dup.bin"
    try:
        t1 = await client.try_enqueue(DownloadPounceBuilder("dup.bin", dest, 1024, srv.url("/dup.bin")).build(),
                                      rec.progress, rec.complete)
        t2 = await client.try_enqueue(DownloadPounceBuilder("dup.bin", dest, 1024, srv.url("/dup.bin")).build(),
                                      second.progress, second.complete)
        assert t1 != t2
        dup = await second.wait_terminal(t2)
        assert dup.status is TransferStatus.FAILED
        assert dup.error is not None and dup.error.code == InnerErrorCode.DUPLICATE_TASK
        assert dup.task_id == t2
        assert [r.task_id for r in second.records] == [t2]
        assert [r.status for r in global_rec.of(t2)] == [TransferStatus.FAILED]
        with pytest.raises(MeowError) as info:
            await client.pause(t2)
        assert info.value.code == InnerErrorCode.TASK_NOT_FOUND
        assert (await rec.wait_terminal(t1)).status is TransferStatus.COMPLETE
        assert TransferStatus.FAILED not in rec.statuses(t1)
        assert second.completes == []
        assert dest.read_bytes() == DATA
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_different_url_to_live_destination_is_duplicate(srv: TestHttpServer, tmp_path: Path) -> None:
    """Extends meow_client_duplicate_and_state_test, new behaviour (weakness #4): a different URL to a
    destination a live task is writing is also rejected with DuplicateTaskError (one writer per file); the
    first task completes with its own bytes."""
    other = bytes(reversed(DATA))
    srv.add_file("/a.bin", DATA)
    srv.add_file("/b.bin", other)
    srv.rate_limit = 128 * 1024
    client = MeowClient(fast_config(max_download_concurrency=2))
    rec = Recorder()
    dest = tmp_path / "same.bin"
    try:
        t1 = await client.try_enqueue(DownloadPounceBuilder("a.bin", dest, 1024, srv.url("/a.bin")).build(),
                                      rec.progress, rec.complete)
        t2 = await client.try_enqueue(DownloadPounceBuilder("b.bin", dest, 1024, srv.url("/b.bin")).build(),
                                      rec.progress, rec.complete)
        dup = await rec.wait_terminal(t2)
        assert dup.status is TransferStatus.FAILED
        assert dup.error is not None and dup.error.code == InnerErrorCode.DUPLICATE_TASK
        assert dup.task_id == t2
        assert (await rec.wait_terminal(t1)).status is TransferStatus.COMPLETE
        assert dest.read_bytes() == DATA
        assert srv.count("GET", "/b.bin") == 0
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_resume_without_pause_is_invalid_task_state(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of meow_client_duplicate_and_state_test::resume_without_pause_hits_invalid_task_state_branch."""
    srv.add_file("/invalid.bin", b"invalid-state-payload" * 8192)
    srv.rate_limit = 64 * 1024
    client = MeowClient(fast_config(max_download_concurrency=1))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(DownloadPounceBuilder("invalid.bin", tmp_path / "invalid.bin", 1024,
                                                             srv.url("/invalid.bin")).build(), rec.progress, None)
        with pytest.raises(MeowError) as info:
            await client.resume(tid)
        assert info.value.code == InnerErrorCode.INVALID_TASK_STATE
        assert "not paused" in info.value.msg
        await rec.wait_status(tid, TransferStatus.TRANSMISSION)
        with pytest.raises(MeowError) as info:
            await client.resume(tid)
        assert info.value.code == InnerErrorCode.INVALID_TASK_STATE
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ meow_client_enqueue_snapshot


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_enqueue_empty_name_or_url_keeps_client_open(tmp_path: Path) -> None:
    """Port of meow_client_enqueue_snapshot_test (invalid input part): ParameterEmpty, client stays open."""
    client = MeowClient(fast_config())
    try:
        for task in (DownloadPounceBuilder("", tmp_path / "a.bin", 1024, "http://127.0.0.1:9/a").build(),
                     DownloadPounceBuilder("a.bin", tmp_path / "a.bin", 1024, "").build()):
            with pytest.raises(MeowError) as info:
                await client.try_enqueue(task, None, None)
            assert info.value.code == InnerErrorCode.PARAMETER_EMPTY
        assert not client.is_closed()
        snap = await client.snapshot()
        assert (snap.queued_groups, snap.active_groups) == (0, 0)
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_snapshot_active_during_transfer_then_empty(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of meow_client_enqueue_snapshot_test (snapshot part): active>0 while transferring, 0/0 after; the
    file is correct. active_keys name the direction and the (redacted) dedupe key."""
    srv.add_file("/snap.bin", DATA)
    srv.rate_limit = 128 * 1024
    client = MeowClient(fast_config())
    rec = Recorder()
    dest = tmp_path / "snap.bin"
    try:
        tid = await client.try_enqueue(DownloadPounceBuilder("snap.bin", dest, 4096, srv.url("/snap.bin")).build(),
                                       rec.progress, rec.complete)
        await rec.wait_status(tid, TransferStatus.TRANSMISSION)
        snap = await client.snapshot()
        assert snap.active_groups == 1
        assert len(snap.active_keys) == 1
        direction, key = snap.active_keys[0]
        assert direction is Direction.DOWNLOAD
        assert srv.url("/snap.bin") in key
        assert (await rec.wait_terminal(tid)).status is TransferStatus.COMPLETE
        snap = await client.snapshot()
        assert (snap.queued_groups, snap.active_groups, snap.active_keys) == (0, 0, ())
        assert dest.read_bytes() == DATA
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ try_enqueue_back_pressure


async def burst(client: MeowClient, srv: TestHttpServer, tmp_path: Path, n: int) -> list[tuple[object, float]]:
    srv.add_file("/burst.bin", DATA)
    out: list[tuple[object, float]] = []
    for i in range(n):
        task = DownloadPounceBuilder(f"b{i}.bin", tmp_path / f"b{i}.bin", 4096, srv.url("/burst.bin")).build()
        t0 = time.perf_counter()
        try:
            result: object = await client.try_enqueue(task, None, None)
        except MeowError as err:
            result = err
        out.append((result, time.perf_counter() - t0))
    return out


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_burst_with_capacity_one_fails_with_command_send_failed(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of try_enqueue_back_pressure_test (burst part): command/event queue capacity 1, a 32-task burst
    yields ≥1 failure and every failure is CommandSendFailed.

    New: a stalled blocker in the single download slot replaces the seed's concurrency 0.
    """
    client = MeowClient(fast_config(max_download_concurrency=1, command_queue_capacity=1,
                                    worker_event_queue_capacity=1))
    rec = Recorder()
    try:
        await start_blocker(client, srv, rec, tmp_path / "blocker.bin")
        results = await burst(client, srv, tmp_path, 32)
        failures = [r for r, _ in results if isinstance(r, MeowError)]
        assert failures, "a 32-task burst into a capacity-1 queue must be refused at least once"
        assert {f.code for f in failures} == {InnerErrorCode.COMMAND_SEND_FAILED}
        assert all(isinstance(r, TaskId) for r, _ in results if not isinstance(r, MeowError))
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_failing_try_enqueue_returns_fast(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of try_enqueue_back_pressure_test (latency part): a refused try_enqueue returns in < 500 ms
    (fail-fast, it never waits for queue space)."""
    client = MeowClient(fast_config(max_download_concurrency=1, command_queue_capacity=1,
                                    worker_event_queue_capacity=1))
    rec = Recorder()
    try:
        await start_blocker(client, srv, rec, tmp_path / "blocker.bin")
        results = await burst(client, srv, tmp_path, 32)
        slow = [d for r, d in results if isinstance(r, MeowError) and d >= 0.5]
        assert any(isinstance(r, MeowError) for r, _ in results)
        assert slow == []
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ meow_config_concurrency_e2e


def peak_running(records: list[FileTransferRecord], direction: Direction) -> int:
    """Most tasks of ``direction`` between their first Transmission and their terminal record at once."""
    running: set[TaskId] = set()
    peak = 0
    for r in records:
        if r.direction is not direction:
            continue
        if r.status is TransferStatus.TRANSMISSION:
            running.add(r.task_id)
        elif r.status.is_terminal or r.status in (TransferStatus.PAUSED, TransferStatus.PENDING):
            running.discard(r.task_id)
        peak = max(peak, len(running))
    return peak


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_concurrency_limits_are_reached_exactly(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of meow_config_concurrency_e2e_test: limits 2 uploads / 3 downloads with 5 uploads + 7 downloads:
    the peak of simultaneously transmitting tasks equals each limit exactly, the queue is non-empty and then
    drained, all complete, none Failed/Canceled."""
    srv.rate_limit = 256 * 1024
    srv.upload_rate_limit = 256 * 1024
    client = MeowClient(fast_config(max_upload_concurrency=2, max_download_concurrency=3, max_chunk_concurrency=1))
    rec = Recorder()
    try:
        ids: list[TaskId] = []
        for i in range(5):
            payload = bytes([i]) * (48 * 1024)
            task = (UploadPounceBuilder.from_bytes(f"u{i}.bin", payload, 16 * 1024)
                    .with_url(srv.url(f"/upload/u{i}")).build())
            ids.append(await client.try_enqueue(task, rec.progress, rec.complete))
        for i in range(7):
            srv.add_file(f"/d{i}.bin", bytes([i + 100]) * (48 * 1024))
            task = DownloadPounceBuilder(f"d{i}.bin", tmp_path / f"d{i}.bin", 16 * 1024, srv.url(f"/d{i}.bin")).build()
            ids.append(await client.try_enqueue(task, rec.progress, rec.complete))
        snap = await client.snapshot()
        assert snap.queued_groups > 0
        finals = [await rec.wait_terminal(tid, timeout=25) for tid in ids]
        assert [f.status for f in finals] == [TransferStatus.COMPLETE] * 12
        snap = await client.snapshot()
        assert (snap.queued_groups, snap.active_groups) == (0, 0)
        assert peak_running(rec.records, Direction.UPLOAD) == 2
        assert peak_running(rec.records, Direction.DOWNLOAD) == 3
        for i in range(7):
            assert (tmp_path / f"d{i}.bin").read_bytes() == bytes([i + 100]) * (48 * 1024)
    finally:
        await closed_client(client)
