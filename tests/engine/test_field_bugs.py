"""Field bugs of issue 11, found by reading, each with a test that fails on the code before the fix:

* a pause (or a quit) while the finished file is verified or renamed re-downloaded the whole file;
* a per-batch checkpoint torn by a power cut made the next start truncate the ``.part``, durable ranges and all;
* reprs of the task view and of the plugin contexts printed signed URLs and bearer tokens, and the scheduler's
  catch-all put an exception's repr (a plugin's signed URL, its token) into the record;
* a range-ignored failure quoted up to 4 KiB of the file's body.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from app.engine import checkpoint
from app.engine import download as download_module
from app.engine.api import (
    AuthRefreshCtx,
    BreakpointDownloadHttpConfig,
    DownloadHeadCtx,
    DownloadPounceBuilder,
    DownloadRangeGetCtx,
    InnerErrorCode,
    RangeIgnoredPolicy,
    StandardRangeDownload,
    TransferStatus,
    TransferTask,
    UploadChunkCtx,
    UploadPrepareCtx,
)
from app.engine.record import Direction
from tests.support.engine_helpers import KIB, MIB, Recorder, blob, failed_with, meow
from tests.support.http_server import Fault, TestHttpServer

SIGNED = "https://acct.blob.example/c/f.bin?sv=2024&sig=SECRETSIGNATURE0123456789&se=2030"
TOKEN = "Bearer SECRETTOKEN0123456789abcdef"


# ---------------------------------------------------------------------------------------------- pause during finish
class SlowVerify(StandardRangeDownload):
    """A provider whose whole-file check takes a while (as OSS's CRC-64 of a big file does) and honours a stop."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.calls = 0

    def verify_download(self, part_path: str, total: int, stop) -> None:  # type: ignore[no-untyped-def]
        self.calls += 1
        self.started.set()
        for _ in range(200):  # up to 10 s, unless stopped
            if stop():
                return  # the engine sees its stop and keeps the .part for the next run
            threading.Event().wait(0.05)


@pytest.mark.asyncio
async def test_a_pause_during_verification_keeps_the_bytes_and_the_resume_fetches_nothing(
        srv: TestHttpServer, tmp_path: Path) -> None:
    data = blob(2 * MIB, 3)
    srv.add_file("/f.bin", data)
    dest = tmp_path / "f.bin"
    plugin = SlowVerify()
    rec = Recorder()
    async with meow() as client:
        task = DownloadPounceBuilder("f.bin", dest, 256 * KIB, srv.url("/f.bin")).with_breakpoint_download(plugin)
        tid = await client.try_enqueue(task.build(), rec.progress)
        await asyncio.to_thread(plugin.started.wait, 10)
        await client.pause(tid)
        await rec.wait_status(tid, TransferStatus.PAUSED)
        await asyncio.sleep(0.3)  # the run lets go of the file
        sent_before = srv.bytes_sent_total
        assert not dest.exists() and Path(checkpoint.part_path(str(dest))).exists()
        plugin.started.clear()
        await client.resume(tid)
        await asyncio.to_thread(plugin.started.wait, 10)
        final = await rec.wait_terminal(tid, 30)
    assert final.status is TransferStatus.COMPLETE, final.error
    assert dest.read_bytes() == data
    assert plugin.calls == 2  # verified again, not downloaded again
    assert srv.bytes_sent_total - sent_before < 64 * KIB, "the resume fetched the finished file again"


@pytest.mark.asyncio
async def test_a_pause_that_arrives_after_the_rename_lets_the_result_stand(
        srv: TestHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename happened while the pause was on its way: the download is complete, not paused with its file in
    place (which a resume downloaded again)."""
    data = blob(1 * MIB, 4)
    srv.add_file("/f.bin", data)
    dest = tmp_path / "f.bin"
    renamed, release = threading.Event(), threading.Event()
    real_fsync_dir = checkpoint.fsync_dir

    def fsync_dir_after_rename(directory: str) -> None:  # runs right after os.replace(part, dest)
        if dest.exists():
            renamed.set()
            release.wait(10)
        real_fsync_dir(directory)

    monkeypatch.setattr(download_module.checkpoint, "fsync_dir", fsync_dir_after_rename)
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(DownloadPounceBuilder("f.bin", dest, 256 * KIB, srv.url("/f.bin")).build(),
                                       rec.progress)
        await asyncio.to_thread(renamed.wait, 10)
        await client.pause(tid)
        release.set()
        final = await rec.wait_terminal(tid, 20)
    assert final.status is TransferStatus.COMPLETE, rec.statuses(tid)
    assert dest.read_bytes() == data
    assert not any(Path(p).exists() for p in checkpoint.sidecars(str(dest)).all)


# ---------------------------------------------------------------------------------------------- torn fast record
@pytest.mark.asyncio
async def test_a_torn_per_batch_checkpoint_falls_back_to_the_durable_record(srv: TestHttpServer,
                                                                           tmp_path: Path) -> None:
    """After a power cut the fast record may be garbage (it is replaced without an fsync); the durable record
    (replaced only with fsyncs) still says which ranges reached the disk, and only the rest is fetched again."""
    data = blob(4 * MIB, 5)
    served = srv.add_file("/f.bin", data)
    dest = tmp_path / "f.bin"
    files = checkpoint.sidecars(str(dest))
    durable = 3 * MIB
    Path(files.part).write_bytes(data[:durable] + bytes(len(data) - durable))
    record = checkpoint.DownloadCheckpoint(
        url=srv.url("/f.bin"), total_size=len(data), etag=served.etag, last_modified=served.last_modified,
        chunk_size=512 * KIB, written=[[0, durable]], durable=[[0, durable]], boot_id="another-boot")
    checkpoint.write_atomic(files.durable, checkpoint.encode(record), durable=True)
    Path(files.checkpoint).write_bytes(b'{"magic": "rusty-cat/download-che\x00\x00\x00')  # torn mid-write
    rec = Recorder()
    async with meow() as client:
        task = DownloadPounceBuilder("f.bin", dest, 512 * KIB, srv.url("/f.bin")).with_max_chunk_concurrency(1)
        final = await rec.wait_terminal(await client.try_enqueue(task.build(), rec.progress))
    assert final.status is TransferStatus.COMPLETE, final.error
    assert dest.read_bytes() == data
    ranges = [r.range for r in srv.requests if r.method == "GET"]
    assert ranges and all(r is not None and int(r.split("=")[1].split("-")[0]) >= durable for r in ranges), ranges
    assert srv.bytes_sent_total <= len(data) - durable + 64 * KIB


# ---------------------------------------------------------------------------------------------- secrets in reprs
def _task() -> TransferTask:
    return TransferTask(direction=Direction.DOWNLOAD, file_name="f.bin", file_path="/tmp/f.bin", url=SIGNED,
                        method="GET", headers=(("Authorization", TOKEN), ("X-Plain", "visible")), chunk_size=1,
                        total_size=1, file_sign="", breakpoint_download_http=BreakpointDownloadHttpConfig())


def test_reprs_of_the_task_view_and_every_plugin_context_hide_signatures_and_tokens() -> None:
    task = _task()
    client = httpx.AsyncClient()
    contexts = [
        task,
        DownloadHeadCtx(task=task, url=SIGNED, headers={"authorization": TOKEN}),
        DownloadRangeGetCtx(task=task, url=SIGNED, range_value="bytes=0-0", start=0, end=0,
                            headers={"Authorization": TOKEN, "x-oss-security-token": "SECRETSTS0123456789"}),
        UploadPrepareCtx(client=client, task=task, local_offset=0),
        UploadChunkCtx(client=client, task=task, chunk=b"SECRETPARTBYTES" * 100, offset=0),
        AuthRefreshCtx(task=task, client=client, status=403, headers={"Authorization": TOKEN}),
    ]
    for ctx in contexts:
        text = repr(ctx)
        for secret in ("SECRETSIGNATURE", "SECRETTOKEN", "SECRETSTS", "SECRETPARTBYTES"):
            assert secret not in text, (type(ctx).__name__, text)
    assert "visible" in repr(task) and "acct.blob.example" in repr(task)  # still useful to read


class Exploding(StandardRangeDownload):
    def merge_range_get_headers(self, ctx: DownloadRangeGetCtx) -> None:
        raise RuntimeError(f"cannot sign {SIGNED} with headers {{'authorization': '{TOKEN}'}}")


@pytest.mark.asyncio
async def test_an_unexpected_plugin_exception_reaches_the_record_without_its_secrets(srv: TestHttpServer,
                                                                                      tmp_path: Path) -> None:
    srv.add_file("/f.bin", blob(64 * KIB, 6))
    rec = Recorder()
    async with meow() as client:
        task = DownloadPounceBuilder("f.bin", tmp_path / "f.bin", 64 * KIB, srv.url("/f.bin"))
        final = await rec.wait_terminal(await client.try_enqueue(
            task.with_breakpoint_download(Exploding()).build(), rec.progress))
    msg = failed_with(final, InnerErrorCode.UNKNOWN, "RuntimeError")
    assert "SECRETSIGNATURE" not in msg and "SECRETTOKEN" not in msg, msg
    assert "acct.blob.example" in msg  # the message still says what it was about


@pytest.mark.asyncio
async def test_a_server_that_ignores_ranges_is_reported_without_quoting_the_file(srv: TestHttpServer,
                                                                                 tmp_path: Path) -> None:
    secret_body = b"PRIVATE-FILE-CONTENT " * 500
    srv.add_file("/f.bin", secret_body)
    srv.add_fault(Fault("ignore_range", times=-1))
    rec = Recorder()
    async with meow() as client:
        task = (DownloadPounceBuilder("f.bin", tmp_path / "f.bin", 1024, srv.url("/f.bin"))
                .with_breakpoint_download_http(BreakpointDownloadHttpConfig(range_ignored=RangeIgnoredPolicy.FAIL)))
        final = await rec.wait_terminal(await client.try_enqueue(task.build(), rec.progress))
    msg = failed_with(final, InnerErrorCode.INVALID_RANGE, "206 Partial Content")
    assert "PRIVATE-FILE-CONTENT" not in msg, msg
