"""Optional plugin hooks the providers build on: renewing an expired URL after a 401/403, and a protocol
growing the part size to fit its part-count limit."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.engine.api import (
    AuthRefreshCtx,
    DefaultStyleUpload,
    DownloadPounceBuilder,
    InnerErrorCode,
    MeowClient,
    StandardRangeDownload,
    TransferStatus,
    TransferTask,
    UploadPounceBuilder,
)
from tests.support.engine_helpers import Recorder, fast_config
from tests.support.http_server import Fault, TestHttpServer

DATA = os.urandom(300_000)


class RenewingDownload(StandardRangeDownload):
    """Like a presigned-URL plugin: counts how often the engine asked it to renew its URL."""

    def __init__(self, renew: bool = True) -> None:
        self.renew = renew
        self.refreshes = 0

    async def refresh_after_auth_failure(self, ctx: AuthRefreshCtx) -> bool:
        self.refreshes += 1
        return self.renew


async def _download(srv: TestHttpServer, dest: Path, plugin: StandardRangeDownload | None):
    builder = DownloadPounceBuilder("f", dest, 64 * 1024, srv.url("/f")).with_max_chunk_concurrency(1)
    if plugin is not None:
        builder = builder.with_breakpoint_download(plugin)
    client = MeowClient(fast_config())
    rec = Recorder()
    try:
        tid = await client.try_enqueue(builder.build(), rec.progress)
        return await rec.wait_terminal(tid)
    finally:
        await client.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["range GET", "probe"])
async def test_a_403_is_renewed_once_then_the_request_goes_again(tmp_path: Path, where: str) -> None:
    plugin = RenewingDownload()
    with TestHttpServer() as srv:
        srv.add_file("/f", DATA)
        if where == "probe":  # a presigned GET URL: HEAD is refused, so the probe is a one-byte GET
            srv.add_fault(Fault("status", method="HEAD", status=403, times=-1))
        srv.add_fault(Fault("status", method="GET", status=403, times=1))
        final = await _download(srv, tmp_path / "f", plugin)
    assert final.status is TransferStatus.COMPLETE, final.error
    assert plugin.refreshes == 1
    assert (tmp_path / "f").read_bytes() == DATA


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_403_that_persists_after_renewal_fails_without_looping(tmp_path: Path) -> None:
    plugin = RenewingDownload()
    with TestHttpServer() as srv:
        srv.add_file("/f", DATA)
        srv.add_fault(Fault("status", method="GET", status=403, times=-1))
        final = await _download(srv, tmp_path / "f", plugin)
        gets = srv.count("GET")
    assert final.status is TransferStatus.FAILED and final.error is not None
    assert final.error.status == 403 and final.error.code == InnerErrorCode.RESPONSE_STATUS_ERROR
    assert plugin.refreshes == 1 and gets == 2


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize("plugin", [None, RenewingDownload(renew=False)])
async def test_without_renewal_a_403_fails_at_once(tmp_path: Path, plugin: RenewingDownload | None) -> None:
    with TestHttpServer() as srv:
        srv.add_file("/f", DATA)
        srv.add_fault(Fault("status", method="GET", status=403, times=-1))
        final = await _download(srv, tmp_path / "f", plugin)
        assert srv.count("GET") == 1
    assert final.status is TransferStatus.FAILED and final.error is not None and final.error.status == 403


@dataclass
class GrowingParts(DefaultStyleUpload):
    """A protocol whose part-count limit makes it triple the requested part size."""

    def part_size(self, total: int, requested: int) -> int:
        return requested * 3


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_protocol_may_grow_the_part_size(tmp_path: Path) -> None:
    src = tmp_path / "up.bin"
    src.write_bytes(DATA)
    client = MeowClient(fast_config())
    rec = Recorder()
    with TestHttpServer() as srv:
        task = (UploadPounceBuilder("up.bin", src, 16 * 1024).with_url(srv.url("/upload"))
                .with_breakpoint_upload(GrowingParts()).build())
        tid = await client.try_enqueue(task, rec.progress)
        final = await rec.wait_terminal(tid)
        await client.close()
        sizes = [int(call.values["partSize"]) for call in srv.upload_calls if call.kind == "chunk"]
        assert all(state.md5_ok for state in srv.uploads.values())
    assert final.status is TransferStatus.COMPLETE, final.error
    assert sizes[:-1] and set(sizes[:-1]) == {48 * 1024} and sum(sizes) == len(DATA)


@dataclass
class BrokenParts(DefaultStyleUpload):
    def part_size(self, total: int, requested: int) -> int:
        raise ValueError("this protocol cannot hold the file")


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_plugin_error_while_the_run_is_built_fails_the_task(tmp_path: Path) -> None:
    """Not a task stuck in Pending forever: the error is the task's Failed record."""
    src = tmp_path / "up.bin"
    src.write_bytes(DATA)
    client = MeowClient(fast_config())
    rec = Recorder()
    with TestHttpServer() as srv:
        task = (UploadPounceBuilder("up.bin", src, 16 * 1024).with_url(srv.url("/upload"))
                .with_breakpoint_upload(BrokenParts()).build())
        tid = await client.try_enqueue(task, rec.progress)
        final = await rec.wait_terminal(tid, timeout=10)
        await client.close()
    assert final.status is TransferStatus.FAILED and final.error is not None
    assert "cannot hold the file" in final.error.msg


class SigningDownload(StandardRangeDownload):
    """Stands for a Shared Key plugin: it signs what it sees, so it must see the probe's method and range."""

    def __init__(self) -> None:
        self.probes: list[tuple[str, str | None]] = []

    async def head_url(self, task: TransferTask) -> str:  # async hooks are awaited
        return task.url

    def merge_head_headers(self, ctx) -> None:  # type: ignore[no-untyped-def]
        self.probes.append((ctx.method, ctx.headers.get("Range")))
        ctx.headers["X-Signed"] = f"{ctx.method} {ctx.headers.get('Range')}"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_the_get_probe_after_a_refused_head_is_built_and_signed_afresh(tmp_path: Path) -> None:
    plugin = SigningDownload()
    with TestHttpServer() as srv:
        srv.add_file("/f", DATA)
        srv.add_fault(Fault("status", method="HEAD", status=405, times=-1))
        final = await _download(srv, tmp_path / "f", plugin)
        probe = next(r for r in srv.requests if r.method == "GET" and r.range == "bytes=0-0")
    assert final.status is TransferStatus.COMPLETE, final.error
    assert plugin.probes == [("HEAD", None), ("GET", "bytes=0-0")]
    assert probe.headers["x-signed"] == "GET bytes=0-0"


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_secrets_echoed_in_an_error_body_never_reach_the_record(tmp_path: Path) -> None:
    signature = "c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw=="
    body = f"AuthenticationFailed: the MAC signature found in the HTTP request '{signature}' is not the same"
    with TestHttpServer() as srv:
        srv.add_file("/f", DATA)
        srv.add_fault(Fault("status", method="GET", status=400, body=body, times=-1))
        builder = (DownloadPounceBuilder("f", tmp_path / "f", 64 * 1024, srv.url("/f"))
                   .with_headers({"Authorization": f"SharedKey acct:{signature}"}))
        client = MeowClient(fast_config())
        rec = Recorder()
        tid = await client.try_enqueue(builder.build(), rec.progress)
        final = await rec.wait_terminal(tid)
        await client.close()
    assert final.status is TransferStatus.FAILED and final.error is not None
    assert "AuthenticationFailed" in final.error.msg and "REDACTED" in final.error.msg
    assert signature not in repr(rec.records)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_file_work_finishes_before_a_cancelled_run_counts_as_stopped() -> None:
    """A paused run's last writes and checkpoint save must end before the run does (however often it is
    cancelled), or the resumed run races them on the same file."""
    import asyncio

    from app.engine.run import finish_despite_cancel

    done: list[str] = []

    async def file_work() -> str:
        await asyncio.sleep(0.2)
        done.append("saved")
        return "ok"

    task = asyncio.ensure_future(finish_despite_cancel(file_work()))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done == ["saved"]
    assert await finish_despite_cancel(file_work()) == "ok"
