"""Optional plugin hooks the providers build on: renewing an expired URL after a 401/403, and a protocol
growing the part size to fit its part-count limit."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.engine.api import (
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

    async def refresh_after_auth_failure(self, task: TransferTask) -> bool:
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
