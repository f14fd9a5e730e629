"""Seed scenarios about callbacks and global listeners: isolation of failing callbacks, (un)registration.

Ports of seed-behavior.md §9.2: callback_panic_test, listener_isolation_test, meow_client_global_listener_test.
A Rust panic in a callback is a raised exception here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.engine import checkpoint
from app.engine.api import (
    DownloadCheckpoint,
    DownloadPounceBuilder,
    FileTransferRecord,
    GlobalProgressListenerId,
    MeowClient,
    TaskId,
    TransferStatus,
)
from tests.support.engine_helpers import Recorder, closed_client, fast_config
from tests.support.http_server import TestHttpServer

PAYLOAD = b"listener-isolation" * 2048


def seed_partial(srv: TestHttpServer, path: str, dest: Path, prefix: bytes, chunk_size: int) -> None:
    """Leave what an interrupted earlier run leaves: ``<dest>.part`` holding ``prefix`` and a checkpoint that
    matches the server's HEAD (the port never resumes from a file's size)."""
    served = srv.get_file(path)
    done = [[0, len(prefix)]]
    ckpt = DownloadCheckpoint(url=srv.url(path), total_size=len(served.data), etag=served.etag,
                              last_modified=served.last_modified, chunk_size=chunk_size, written=done,
                              durable=done, boot_id=checkpoint.boot_id())
    Path(checkpoint.part_path(str(dest))).write_bytes(prefix)
    checkpoint.write_atomic(checkpoint.checkpoint_path(str(dest)), checkpoint.encode(ckpt), durable=False)


async def download(client: MeowClient, srv: TestHttpServer, path: str, dest: Path,
                   progress: Callable[[FileTransferRecord], object] | None = None,
                   complete: Callable[[TaskId, str | None], object] | None = None,
                   chunk_size: int = 2048) -> tuple[TaskId, Recorder]:
    """Run one download to its end; ``progress``/``complete`` are called before the recorder's own hooks."""
    rec = Recorder()

    def on_progress(r: FileTransferRecord) -> None:
        rec.progress(r)
        if progress is not None:
            progress(r)

    def on_complete(t: TaskId, p: str | None) -> None:
        rec.complete(t, p)
        if complete is not None:
            complete(t, p)

    tid = await client.try_enqueue(DownloadPounceBuilder(dest.name, dest, chunk_size, srv.url(path)).build(),
                                   on_progress, on_complete)
    await rec.wait_terminal(tid)
    await rec.wait_for(lambda: rec.terminal(tid).status is not TransferStatus.COMPLETE  # type: ignore[union-attr]
                       or len(rec.completes) == 1)
    return tid, rec


def raise_once() -> Callable[..., None]:
    state = {"armed": True}

    def fn(*_args: object) -> None:
        if state["armed"]:
            state["armed"] = False
            raise RuntimeError("callback panic in test")

    return fn


async def prefixed_download_survives(srv: TestHttpServer, tmp_path: Path, *, task_cb: bool = False,
                                     global_cb: bool = False, complete_cb: bool = False) -> None:
    """callback_panic_test's case: local prefix ``abcd`` (from a checkpoint), HEAD length 8, ranged GET of
    ``wxyz`` → ``abcdwxyz`` although one callback raised; a later task on the same client works too."""
    srv.add_file("/download", b"abcdwxyz")
    srv.add_file("/again.bin", PAYLOAD)
    dest = tmp_path / "case.bin"
    seed_partial(srv, "/download", dest, b"abcd", 4)
    client = MeowClient(fast_config(max_upload_concurrency=1, max_download_concurrency=1))
    global_rec = Recorder()
    try:
        if global_cb:
            client.register_global_progress_listener(raise_once())
        client.register_global_progress_listener(global_rec.progress)
        tid, rec = await download(client, srv, "/download", dest, progress=raise_once() if task_cb else None,
                                  complete=raise_once() if complete_cb else None, chunk_size=4)
        assert rec.terminal(tid).status is TransferStatus.COMPLETE  # type: ignore[union-attr]
        assert global_rec.terminal(tid).status is TransferStatus.COMPLETE  # type: ignore[union-attr]
        assert rec.completes == [(tid, None)]
        assert dest.read_bytes() == b"abcdwxyz"
        assert [r.range for r in srv.requests if r.method == "GET"] == ["bytes=4-7"]
        tid2, rec2 = await download(client, srv, "/again.bin", tmp_path / "again.bin")
        assert rec2.terminal(tid2).status is TransferStatus.COMPLETE  # type: ignore[union-attr]
        assert (tmp_path / "again.bin").read_bytes() == PAYLOAD
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ callback_panic


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_task_callback_panic_does_not_break_scheduler(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of callback_panic_test::task_callback_panic_does_not_break_scheduler.

    New: the ``abcd`` prefix comes from ``.part`` + checkpoint (resume never trusts the final file's size).
    """
    await prefixed_download_survives(srv, tmp_path, task_cb=True)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_global_callback_panic_does_not_break_scheduler(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of callback_panic_test::global_callback_panic_does_not_break_scheduler (prefix from a checkpoint)."""
    await prefixed_download_survives(srv, tmp_path, global_cb=True)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_complete_callback_panic_does_not_break_scheduler(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of callback_panic_test (complete-callback case): a raising complete callback is isolated too."""
    await prefixed_download_survives(srv, tmp_path, complete_cb=True)


# ------------------------------------------------------------------------------ listener_isolation


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_panic_in_one_global_listener_does_not_block_others(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of listener_isolation_test::panic_in_one_global_listener_does_not_block_other_listeners.

    The raising listener is not removed: it keeps receiving later records.
    """
    srv.add_file("/a.bin", PAYLOAD)
    client = MeowClient(fast_config(max_download_concurrency=1))
    calls: list[TransferStatus] = []
    healthy = Recorder()

    def flaky(r: FileTransferRecord) -> None:
        calls.append(r.status)
        if len(calls) == 1:
            raise RuntimeError("intentional panic in one global listener")

    try:
        client.register_global_progress_listener(flaky)
        client.register_global_progress_listener(healthy.progress)
        tid, rec = await download(client, srv, "/a.bin", tmp_path / "a.bin")
        assert rec.terminal(tid).status is TransferStatus.COMPLETE  # type: ignore[union-attr]
        assert healthy.statuses(tid) == rec.statuses(tid)
        assert len(calls) == len(rec.of(tid)) > 1
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_listeners_unregister_self_and_each_other_inside_callback(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of listener_isolation_test::listeners_can_unregister_self_and_each_other_inside_callback.

    A unregisters itself and B unregisters C on their first call: neither A nor C gets round-2 events, B does.
    """
    srv.add_file("/r1.bin", PAYLOAD)
    srv.add_file("/r2.bin", PAYLOAD)
    client = MeowClient(fast_config(max_download_concurrency=1))
    hits = {"a": 0, "b": 0, "c": 0}
    ids: dict[str, GlobalProgressListenerId] = {}

    def a(_r: FileTransferRecord) -> None:
        hits["a"] += 1
        if hits["a"] == 1:
            assert client.unregister_global_progress_listener(ids["a"]) is True

    def b(_r: FileTransferRecord) -> None:
        hits["b"] += 1
        if hits["b"] == 1:
            assert client.unregister_global_progress_listener(ids["c"]) is True

    def c(_r: FileTransferRecord) -> None:
        hits["c"] += 1

    try:
        ids["a"] = client.register_global_progress_listener(a)
        ids["b"] = client.register_global_progress_listener(b)
        ids["c"] = client.register_global_progress_listener(c)
        tid1, rec1 = await download(client, srv, "/r1.bin", tmp_path / "r1.bin")
        assert rec1.terminal(tid1).status is TransferStatus.COMPLETE  # type: ignore[union-attr]
        after_r1 = dict(hits)
        assert after_r1["a"] == 1, "A is off from the record after the one that unregistered it"
        assert after_r1["c"] == 1, "C still got the record during which B unregistered it"
        tid2, rec2 = await download(client, srv, "/r2.bin", tmp_path / "r2.bin")
        assert rec2.terminal(tid2).status is TransferStatus.COMPLETE  # type: ignore[union-attr]
        assert hits["a"] == after_r1["a"]
        assert hits["c"] == after_r1["c"]
        assert hits["b"] > after_r1["b"]
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ meow_client_global_listener


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_unregister_stops_future_events_for_that_listener_only(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of meow_client_global_listener_test (unregister part)."""
    srv.add_file("/g1.bin", PAYLOAD)
    srv.add_file("/g2.bin", PAYLOAD)
    client = MeowClient(fast_config(max_download_concurrency=1))
    one, two = Recorder(), Recorder()
    try:
        id_one = client.register_global_progress_listener(one.progress)
        client.register_global_progress_listener(two.progress)
        tid1, _ = await download(client, srv, "/g1.bin", tmp_path / "g1.bin")
        assert one.statuses(tid1) == two.statuses(tid1) != []
        assert client.unregister_global_progress_listener(id_one) is True
        before = len(one.records)
        tid2, rec2 = await download(client, srv, "/g2.bin", tmp_path / "g2.bin")
        assert rec2.terminal(tid2).status is TransferStatus.COMPLETE  # type: ignore[union-attr]
        assert len(one.records) == before
        assert two.statuses(tid2) == rec2.statuses(tid2)
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_clear_global_listener_keeps_task_callbacks(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of meow_client_global_listener_test (clear part): clear_global_listener removes every global
    listener while per-task callbacks keep working."""
    srv.add_file("/c.bin", PAYLOAD)
    client = MeowClient(fast_config(max_download_concurrency=1))
    one, two = Recorder(), Recorder()
    try:
        client.register_global_progress_listener(one.progress)
        client.register_global_progress_listener(two.progress)
        client.clear_global_listener()
        tid, rec = await download(client, srv, "/c.bin", tmp_path / "c.bin")
        assert rec.terminal(tid).status is TransferStatus.COMPLETE  # type: ignore[union-attr]
        assert rec.statuses(tid)[0] is TransferStatus.PENDING
        assert rec.completes == [(tid, None)]
        assert one.records == [] and two.records == []
    finally:
        await closed_client(client)
