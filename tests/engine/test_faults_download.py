"""Download fault matrix on the plain HTTP provider, against the real fault-injecting local server.

Every case ends either Complete with the right sha256, or Failed with a clear error while ``<dest>.part`` and
its checkpoint stay behind so a later run resumes. Never a corrupt file called complete.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.engine import checkpoint
from app.engine.api import (
    BreakpointDownloadHttpConfig,
    DownloadPounceBuilder,
    FileTransferRecord,
    InnerErrorCode,
    RangeIgnoredPolicy,
    TransferStatus,
)
from app.engine.redact import strip_query
from tests.support.engine_helpers import KIB, Recorder, blob, meow, sha
from tests.support.http_server import Fault, TestHttpServer

pytestmark = pytest.mark.timeout(30)

CHUNK = 64 * KIB
S = TransferStatus
E = InnerErrorCode
DATA = blob(400 * KIB)


@pytest.fixture
def srv(srv: TestHttpServer) -> TestHttpServer:
    """The shared server (tests/engine/conftest.py), serving DATA at /f.bin."""
    srv.add_file("/f.bin", DATA)
    return srv


def task(srv: TestHttpServer, dest: Path, *, path: str = "/f.bin", workers: int | None = None, retries: int = 3,
         policy: RangeIgnoredPolicy | None = None) -> DownloadPounceBuilder:
    builder = DownloadPounceBuilder(dest.name, dest, CHUNK, srv.url(path)).with_max_chunk_retries(retries)
    if workers is not None:
        builder = builder.with_max_chunk_concurrency(workers)
    if policy is not None:
        builder = builder.with_breakpoint_download_http(BreakpointDownloadHttpConfig(range_ignored=policy))
    return builder


async def fetch(srv: TestHttpServer, dest: Path, *, timeout: float = 20, config: dict[str, object] | None = None,
                **kw: object) -> FileTransferRecord:
    rec = Recorder()
    async with meow(**(config or {})) as client:
        tid = await client.try_enqueue(task(srv, dest, **kw).build(), rec.progress)  # type: ignore[arg-type]
        return await rec.wait_terminal(tid, timeout)


def assert_complete(final: FileTransferRecord, dest: Path, data: bytes = DATA) -> None:
    assert final.status is S.COMPLETE, final.error
    assert sha(dest.read_bytes()) == sha(data)
    assert final.transferred_bytes == final.total_size == len(data)
    assert not Path(f"{dest}.part").exists() and not Path(f"{dest}.part.ckpt").exists()


def assert_resumable_failure(final: FileTransferRecord, dest: Path, code: InnerErrorCode | None = None) -> None:
    assert final.status is S.FAILED
    assert final.error is not None and final.error.msg
    if code is not None:
        assert final.error.code == code, final.error
    assert not dest.exists(), "a failed download must not leave a file at the destination"
    assert Path(f"{dest}.part").exists() and Path(f"{dest}.part.ckpt").exists()


def get_bytes(srv: TestHttpServer) -> int:
    return sum(r.bytes_sent for r in srv.requests if r.method == "GET")


async def wait_until(predicate: object, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.005)


def seed_complete_part(srv: TestHttpServer, dest: Path, data: bytes = DATA) -> None:
    served = srv.get_file("/f.bin")
    Path(checkpoint.part_path(str(dest))).write_bytes(data)
    spans = [[0, len(data)]]
    ckpt = checkpoint.DownloadCheckpoint(
        url=strip_query(srv.url("/f.bin")), total_size=len(data), etag=served.etag,
        last_modified=served.last_modified, chunk_size=CHUNK, ranged=True, written=spans, durable=spans,
        boot_id=checkpoint.boot_id())
    checkpoint.write_atomic(checkpoint.checkpoint_path(str(dest)), checkpoint.encode(ckpt), durable=False)


# ---------------------------------------------------------------------------------------------- transient faults
@pytest.mark.asyncio
@pytest.mark.parametrize("times", [1, 3])
async def test_reset_mid_body_is_retried(srv: TestHttpServer, tmp_path: Path, times: int) -> None:
    srv.add_fault(Fault("reset", method="GET", after_bytes=40 * KIB, times=times))
    final = await fetch(srv, tmp_path / "f.bin", workers=1)
    assert_complete(final, tmp_path / "f.bin")
    assert srv.count("GET") == times + 1


@pytest.mark.asyncio
async def test_resets_that_still_make_progress_do_not_exhaust_retries(srv: TestHttpServer, tmp_path: Path) -> None:
    """Every GET dies after 100 KiB, but each one moves the position: the budget is per stuck position."""
    srv.add_fault(Fault("reset", method="GET", after_bytes=100 * KIB, times=-1))
    final = await fetch(srv, tmp_path / "f.bin", workers=1, retries=1)
    assert_complete(final, tmp_path / "f.bin")


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_transient_status_is_retried(srv: TestHttpServer, tmp_path: Path, status: int, method: str) -> None:
    srv.add_fault(Fault("status", method=method, status=status, times=2))
    final = await fetch(srv, tmp_path / "f.bin")
    assert_complete(final, tmp_path / "f.bin")


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_429_retry_after_is_waited_for(srv: TestHttpServer, tmp_path: Path, method: str) -> None:
    srv.add_fault(Fault("status", method=method, status=429, retry_after="0.4"))
    t0 = time.monotonic()
    final = await fetch(srv, tmp_path / "f.bin", workers=1)
    assert_complete(final, tmp_path / "f.bin")
    assert time.monotonic() - t0 >= 0.35
    assert srv.count(method) == 2


@pytest.mark.asyncio
async def test_truncated_body_is_retried(srv: TestHttpServer, tmp_path: Path) -> None:
    srv.add_fault(Fault("truncate", method="GET", after_bytes=70 * KIB, times=2))
    final = await fetch(srv, tmp_path / "f.bin", workers=1)
    assert_complete(final, tmp_path / "f.bin")


@pytest.mark.asyncio
async def test_connection_dropped_without_answer_is_retried(srv: TestHttpServer, tmp_path: Path) -> None:
    srv.add_fault(Fault("drop", method="GET", times=2))
    srv.add_fault(Fault("drop", method="HEAD", times=1))
    final = await fetch(srv, tmp_path / "f.bin")
    assert_complete(final, tmp_path / "f.bin")


@pytest.mark.asyncio
async def test_body_longer_than_promised_never_corrupts(srv: TestHttpServer, tmp_path: Path) -> None:
    """Bytes after the promised Content-Length are not part of the file (and spoil only that connection)."""
    srv.add_fault(Fault("long_body", extra=5000, times=-1))
    final = await fetch(srv, tmp_path / "f.bin")
    assert_complete(final, tmp_path / "f.bin")


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["body", "headers"])
async def test_read_stall_times_out_and_is_retried(srv: TestHttpServer, tmp_path: Path, where: str) -> None:
    """A connection that goes silent (mid-body or before the headers) hits the per-read timeout and is retried,
    long before the stall would end."""
    fault = Fault("stall", method="GET", after_bytes=30 * KIB, seconds=10) if where == "body" else \
        Fault("delay", method="GET", seconds=10)
    srv.add_fault(fault)
    t0 = time.monotonic()
    final = await fetch(srv, tmp_path / "f.bin", workers=1, config={"http_timeout": 0.4})
    assert_complete(final, tmp_path / "f.bin")
    assert time.monotonic() - t0 < 5
    assert fault.applied == 1 and srv.count("GET") == 2


# ---------------------------------------------------------------------------------------------- range misbehaviour
@pytest.mark.asyncio
async def test_server_ignoring_range_restarts_as_one_stream(srv: TestHttpServer, tmp_path: Path) -> None:
    srv.add_fault(Fault("ignore_range", times=-1))
    final = await fetch(srv, tmp_path / "f.bin")
    assert_complete(final, tmp_path / "f.bin")
    # the one-stream fallback asks for everything (built by the plugin hooks, so a signing plugin signs it too)
    assert any(r.method == "GET" and r.range == "bytes=0-" for r in srv.requests)


@pytest.mark.asyncio
async def test_server_ignoring_range_with_fail_policy_keeps_partial_for_later(srv: TestHttpServer,
                                                                              tmp_path: Path) -> None:
    """With RangeIgnoredPolicy.FAIL the task fails (InvalidRange), keeps .part + checkpoint, and a later run
    against a well-behaved server finishes it."""
    dest = tmp_path / "f.bin"
    seed = srv.add_fault(Fault("ignore_range", times=-1, skip=1))  # the first GET is fine, later ones not
    final = await fetch(srv, dest, workers=2, policy=RangeIgnoredPolicy.FAIL)
    assert seed.applied >= 1
    assert_resumable_failure(final, dest, E.INVALID_RANGE)
    assert "206" in final.error.msg  # type: ignore[union-attr]
    srv.clear_faults()
    assert_complete(await fetch(srv, dest), dest)


@pytest.mark.asyncio
async def test_garbage_content_range_fails_cleanly(srv: TestHttpServer, tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    srv.add_fault(Fault("bad_content_range", content_range="bytes banana", times=-1))
    final = await fetch(srv, dest)
    assert_resumable_failure(final, dest, E.INVALID_RANGE)
    assert "content-range" in final.error.msg.lower()  # type: ignore[union-attr]


@pytest.mark.asyncio
@pytest.mark.parametrize("header", ["bytes ²-³/409600", "bytes 0-1/¹0"])
async def test_non_ascii_digits_in_content_range_fail_cleanly(srv: TestHttpServer, tmp_path: Path,
                                                               header: str) -> None:
    """Latin-1 superscript digits in Content-Range are an InvalidRange like any other garbage, not an internal
    error."""
    dest = tmp_path / "f.bin"
    srv.add_fault(Fault("bad_content_range", content_range=header, times=-1))
    final = await fetch(srv, dest)
    assert_resumable_failure(final, dest, E.INVALID_RANGE)


@pytest.mark.asyncio
async def test_already_complete_part_needs_no_ranged_get(srv: TestHttpServer, tmp_path: Path) -> None:
    """416 at EOF never happens: a checkpoint saying every byte is done means no ranged GET at all."""
    dest = tmp_path / "f.bin"
    seed_complete_part(srv, dest)
    final = await fetch(srv, dest)
    assert_complete(final, dest)
    assert srv.count("GET") == 0
    assert all(r.status != 416 for r in srv.requests)


@pytest.mark.asyncio
async def test_file_shrinking_during_run_416_restarts(srv: TestHttpServer, tmp_path: Path) -> None:
    """A remote without validators shrinks while the first GET stalls: the retry gets 416 (bytes */N) and the
    download restarts on the new, shorter file."""
    srv.add_file("/nv.bin", DATA, etag=None, last_modified=None)
    new = blob(60 * KIB, 7)
    srv.add_fault(Fault("stall", method="GET", after_bytes=100 * KIB, seconds=1.0, then_close=True))
    dest = tmp_path / "nv.bin"
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(task(srv, dest, path="/nv.bin", workers=1).build(), rec.progress)
        await wait_until(lambda: any(r.method == "GET" and r.bytes_sent >= 100 * KIB for r in srv.requests))
        srv.replace_file("/nv.bin", new)
        final = await rec.wait_terminal(tid)
    assert_complete(final, dest, new)
    assert any(r.status == 416 for r in srv.requests)


# ---------------------------------------------------------------------------------------------- changed remote
@pytest.mark.asyncio
@pytest.mark.parametrize("size", ["same-size", "other-size"])
async def test_etag_changed_during_run_restarts_with_new_content(srv: TestHttpServer, tmp_path: Path,
                                                                 size: str) -> None:
    """The remote is replaced while a GET is stalled; the retry's If-Range no longer matches, the server sends
    the new file whole, and the engine restarts cleanly: the result is the new content, never a mix."""
    new = blob(len(DATA) if size == "same-size" else 300 * KIB, 8)
    srv.add_fault(Fault("stall", method="GET", after_bytes=100 * KIB, seconds=1.0, then_close=True))
    dest = tmp_path / "f.bin"
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(task(srv, dest, workers=1).build(), rec.progress)
        await wait_until(lambda: any(r.method == "GET" and r.bytes_sent >= 100 * KIB for r in srv.requests))
        srv.replace_file("/f.bin", new)
        final = await rec.wait_terminal(tid)
    assert_complete(final, dest, new)
    assert srv.count("HEAD") >= 2  # probed again after the change


@pytest.mark.asyncio
async def test_slow_download_while_remote_is_replaced_ends_with_one_version(srv: TestHttpServer,
                                                                            tmp_path: Path) -> None:
    """Replaced during a slow parallel download: the final file is entirely the old or entirely the new
    version; with later ranged requests (the common case) it is the new one."""
    new = blob(len(DATA), 9)
    srv.rate_limit = 300_000
    srv.add_fault(Fault("reset", method="GET", after_bytes=50 * KIB, times=1))
    dest = tmp_path / "f.bin"
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(task(srv, dest, workers=2).build(), rec.progress)
        await wait_until(lambda: any(r.method == "GET" and r.bytes_sent >= 40 * KIB for r in srv.requests))
        srv.replace_file("/f.bin", new)
        srv.rate_limit = None
        final = await rec.wait_terminal(tid)
    assert final.status is S.COMPLETE, final.error
    assert sha(dest.read_bytes()) in (sha(DATA), sha(new))


@pytest.mark.asyncio
async def test_etag_changed_between_failed_run_and_rerun(srv: TestHttpServer, tmp_path: Path) -> None:
    """A run fails after writing part of the file; the remote changes; the rerun starts over on the new file."""
    dest = tmp_path / "f.bin"
    srv.add_fault(Fault("truncate", method="GET", after_bytes=150 * KIB, times=1))  # a FIN keeps what was sent
    srv.add_fault(Fault("status", method="GET", status=503, times=-1))
    final = await fetch(srv, dest, workers=1, retries=1)
    assert_resumable_failure(final, dest, E.RESPONSE_STATUS_ERROR)
    assert final.error.status == 503 and final.transferred_bytes > 0  # type: ignore[union-attr]
    srv.clear_faults()
    new = blob(len(DATA), 10)
    srv.replace_file("/f.bin", new)
    assert_complete(await fetch(srv, dest), dest, new)


@pytest.mark.asyncio
async def test_persistent_failure_keeps_partial_and_rerun_fetches_only_the_rest(srv: TestHttpServer,
                                                                              tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    srv.add_fault(Fault("truncate", method="GET", after_bytes=150 * KIB, times=1))  # a FIN keeps what was sent
    srv.add_fault(Fault("status", method="GET", status=500, times=-1))
    final = await fetch(srv, dest, workers=1, retries=2)
    assert_resumable_failure(final, dest, E.RESPONSE_STATUS_ERROR)
    # The cut GET made progress, so it counts as the first of the 1 + max_chunk_retries attempts at the new
    # position (the rule that keeps max_chunk_retries(0) meaning "never retry"): the cut, then two 500s.
    assert srv.count("GET") == 1 + 2
    ckpt = checkpoint.load(checkpoint.checkpoint_path(str(dest)))
    assert ckpt is not None
    have = sum(e - s for s, e in ckpt.written)
    assert have >= 128 * KIB
    srv.clear_faults()
    srv.clear_log()
    assert_complete(await fetch(srv, dest, workers=1), dest)
    assert get_bytes(srv) == len(DATA) - have


# ---------------------------------------------------------------------------------------------- probing
@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["no_head", "head-403", "head-501"])
async def test_refused_head_falls_back_to_a_range_probe(srv: TestHttpServer, tmp_path: Path, kind: str) -> None:
    fault = Fault("no_head", times=-1) if kind == "no_head" else \
        Fault("status", method="HEAD", status=int(kind[-3:]), times=-1)
    srv.add_fault(fault)
    final = await fetch(srv, tmp_path / "f.bin")
    assert_complete(final, tmp_path / "f.bin")
    assert any(r.method == "GET" and r.range == "bytes=0-0" for r in srv.requests)


@pytest.mark.asyncio
@pytest.mark.parametrize("honour_range", [False, True])
async def test_missing_content_length_chunked_body(srv: TestHttpServer, tmp_path: Path, honour_range: bool) -> None:
    """No Content-Length anywhere (chunked): one stream to EOF, or ranges when a probe shows they work."""
    srv.add_fault(Fault("no_content_length", times=-1, honour_range=honour_range))
    final = await fetch(srv, tmp_path / "f.bin")
    assert_complete(final, tmp_path / "f.bin")


@pytest.mark.asyncio
async def test_chunked_body_cut_short_is_not_complete(srv: TestHttpServer, tmp_path: Path) -> None:
    """Unknown length and the connection dies mid-body: the chunked framing shows it; retried to the end."""
    srv.add_fault(Fault("no_content_length", method="HEAD", times=-1))
    srv.add_fault(Fault("no_content_length", method="GET", times=1))  # the bytes=0-0 probe: 200, no length
    srv.add_fault(Fault("reset", method="GET", after_bytes=100 * KIB, times=1))
    final = await fetch(srv, tmp_path / "f.bin")
    assert final.status is S.COMPLETE, final.error
    assert sha((tmp_path / "f.bin").read_bytes()) == sha(DATA)


@pytest.mark.asyncio
@pytest.mark.parametrize("length", ["known-length", "unknown-length"])
@pytest.mark.parametrize("content", ["random", "compressible"])
async def test_gzip_despite_identity_never_yields_a_corrupt_file(srv: TestHttpServer, tmp_path: Path, length: str,
                                                                 content: str) -> None:
    """A server that gzips although we asked for identity: either the right bytes, or a failure that says why
    (the encoding) — never the compressed bytes renamed into place as if they were the file."""
    data = DATA if content == "random" else b"rusty cat " * 40_000
    srv.add_file("/z.bin", data)
    if length == "unknown-length":
        srv.add_fault(Fault("no_content_length", method="HEAD", times=-1))
    srv.add_fault(Fault("gzip", times=-1))
    dest = tmp_path / "z.bin"
    final = await fetch(srv, dest, path="/z.bin", retries=1)
    if final.status is S.COMPLETE:
        assert sha(dest.read_bytes()) == sha(data), "compressed bytes were reported as the complete file"
    else:
        assert final.status is S.FAILED and final.error is not None
        assert not dest.exists()
        assert any(w in final.error.msg.lower() for w in ("gzip", "encod")), final.error


# ---------------------------------------------------------------------------------------------- local side
@pytest.mark.asyncio
async def test_destination_under_a_regular_file_is_a_clear_io_error(srv: TestHttpServer, tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"I am a file")
    dest = tmp_path / "x" / "file.bin"
    t0 = time.monotonic()
    final = await fetch(srv, dest)
    assert final.status is S.FAILED and final.error is not None
    assert final.error.code == E.IO_ERROR and str(dest) in final.error.msg
    assert time.monotonic() - t0 < 2
    assert srv.count("GET") == 0
    assert (tmp_path / "x").read_bytes() == b"I am a file"


@pytest.mark.asyncio
async def test_destination_is_a_directory(srv: TestHttpServer, tmp_path: Path) -> None:
    dest = tmp_path / "dir"
    dest.mkdir()
    (dest / "keep.txt").write_text("keep")
    final = await fetch(srv, dest)
    assert final.status is S.FAILED and final.error is not None
    assert final.error.code == E.IO_ERROR and "directory" in final.error.msg
    assert (dest / "keep.txt").read_text() == "keep"
    assert srv.count("GET") == 0
