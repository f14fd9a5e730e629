"""Seed scenarios about the download protocol: end to end, chunk retry, strict 206 validation, error previews.

Ports of seed-behavior.md §9.2: download_test, chunk_retry_test, download_protocol_validation_test,
error_body_truncation_test (+ the pause/resume half of pause_resume_test that concerns resume data).

The seed's "local prefix ``abcd``" lived at the final path and was trusted by size; the port resumes only from
``<dest>.part`` + ``<dest>.part.ckpt``, so these tests create the prefix as an interrupted run leaves it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.engine import checkpoint
from app.engine.api import (
    BreakpointDownloadHttpConfig,
    DownloadCheckpoint,
    DownloadPounceBuilder,
    FileTransferRecord,
    InnerErrorCode,
    MeowClient,
    PounceTask,
    RangeIgnoredPolicy,
    TransferStatus,
)
from tests.support.engine_helpers import HEAD_8, Recorder, closed_client, failed_with, fast_config
from tests.support.http_server import Fault, ScriptedServer, TestHttpServer


def seed_partial(url: str, dest: Path, prefix: bytes, total: int, etag: str | None = None,
                 last_modified: str | None = None, chunk_size: int = 4) -> None:
    """``<dest>.part`` holding ``prefix`` plus a matching checkpoint: what an interrupted run leaves behind."""
    done = [[0, len(prefix)]]
    ckpt = DownloadCheckpoint(url=url.split("?", 1)[0], total_size=total, etag=etag, last_modified=last_modified,
                              chunk_size=chunk_size, written=done, durable=done, boot_id=checkpoint.boot_id())
    Path(checkpoint.part_path(str(dest))).write_bytes(prefix)
    checkpoint.write_atomic(checkpoint.checkpoint_path(str(dest)), checkpoint.encode(ckpt), durable=False)


def seed_partial_from(srv: TestHttpServer, path: str, dest: Path, prefix: bytes) -> None:
    served = srv.get_file(path)
    seed_partial(srv.url(path), dest, prefix, len(served.data), served.etag, served.last_modified)


def part_of(dest: Path) -> Path:
    return Path(checkpoint.part_path(str(dest)))


def ckpt_of(dest: Path) -> Path:
    return Path(checkpoint.checkpoint_path(str(dest)))


async def run(task: PounceTask, **config: object) -> tuple[FileTransferRecord, Recorder]:
    client = MeowClient(fast_config(max_upload_concurrency=1, max_download_concurrency=1, **config))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        final = await rec.wait_terminal(tid)
    finally:
        await closed_client(client)
    return final, rec


# ------------------------------------------------------------------------------ download


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_download_end_to_end_bytes_identical(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of download_test: ~96 KB with 2 KiB chunks, bytes identical.

    New: the data is written to ``<dest>.part`` and renamed into place only when complete; no sidecar is left.
    """
    payload = bytes((i * 7) % 251 for i in range(96 * 1024))
    srv.add_file("/download/big.bin", payload)
    dest = tmp_path / "big.bin"
    final, rec = await run(DownloadPounceBuilder("big.bin", dest, 2048, srv.url("/download/big.bin")).build())
    assert final.status is TransferStatus.COMPLETE
    assert final.total_size == final.transferred_bytes == len(payload)
    assert dest.read_bytes() == payload
    assert not part_of(dest).exists() and not ckpt_of(dest).exists()
    assert rec.completes == [(final.task_id, None)]
    statuses = rec.statuses(final.task_id)
    assert statuses[0] is TransferStatus.PENDING
    assert statuses[-1] is TransferStatus.COMPLETE
    assert TransferStatus.TRANSMISSION in statuses
    assert srv.count("HEAD") == 1
    for r in srv.requests:
        if r.method == "GET":
            assert r.range is not None and r.range.startswith("bytes=")
            assert r.headers.get("accept") == "application/octet-stream"
            assert r.headers.get("accept-encoding") == "identity"


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_zero_length_remote_file_downloads(srv: TestHttpServer, tmp_path: Path) -> None:
    """Extends download_test, new behaviour (weakness #17): a zero-length remote file downloads to an empty
    file (the seed failed with 110)."""
    srv.add_file("/empty.bin", b"")
    dest = tmp_path / "empty.bin"
    final, _ = await run(DownloadPounceBuilder("empty.bin", dest, 1024, srv.url("/empty.bin")).build())
    assert final.status is TransferStatus.COMPLETE
    assert dest.exists() and dest.read_bytes() == b""
    assert final.progress == 1.0


# ------------------------------------------------------------------------------ chunk_retry


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_default_retries_recover_after_two_dropped_gets(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of chunk_retry_test (recovery): the first two GET connections are dropped without a response; the
    default 3 retries recover and the file is correct."""
    payload = bytes(range(64))
    srv.add_file("/download/one.bin", payload)
    srv.add_fault(Fault("drop", method="GET", times=2))
    dest = tmp_path / "one.bin"
    final, _ = await run(DownloadPounceBuilder("one.bin", dest, len(payload), srv.url("/download/one.bin")).build())
    assert final.status is TransferStatus.COMPLETE
    assert dest.read_bytes() == payload
    assert srv.count("GET") == 3


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_zero_retries_fail_with_http_error_on_first_drop(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of chunk_retry_test (no retry): with max_chunk_retries(0) one dropped GET → Failed(HttpError)."""
    payload = bytes(range(64))
    srv.add_file("/download/one.bin", payload)
    srv.add_fault(Fault("drop", method="GET", times=1))
    dest = tmp_path / "one.bin"
    task = DownloadPounceBuilder("one.bin", dest, len(payload), srv.url("/download/one.bin")).with_max_chunk_retries(0)
    final, rec = await run(task.build())
    failed_with(final, InnerErrorCode.HTTP_ERROR)
    assert srv.count("GET") == 1
    assert not dest.exists()
    assert rec.completes == []


# ------------------------------------------------------------------------------ download_protocol_validation


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_server_ignoring_range_restarts_as_one_stream(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of download_protocol_validation_test::download_rejects_status_200_for_range_request.

    New: with the default RangeIgnoredPolicy.RESTART a 200 answer to the ranged GET is not appended after the
    ``abcd`` prefix (which would corrupt the file) but restarts the download as one stream from byte 0.
    """
    srv.add_file("/download", b"abcdwxyz")
    srv.add_fault(Fault("ignore_range", times=-1))
    dest = tmp_path / "case.bin"
    seed_partial_from(srv, "/download", dest, b"abcd")
    final, _ = await run(DownloadPounceBuilder("case.bin", dest, 4, srv.url("/download")).build())
    assert final.status is TransferStatus.COMPLETE
    assert dest.read_bytes() == b"abcdwxyz"
    assert not part_of(dest).exists() and not ckpt_of(dest).exists()


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_server_ignoring_range_fails_with_fail_policy(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of download_protocol_validation_test::download_rejects_status_200_for_range_request (seed rule).

    With RangeIgnoredPolicy.FAIL the 200 is rejected: InvalidRange "requires 206 Partial Content"; the partial
    data (``abcd`` in ``.part``, its checkpoint) is kept and nothing appears at the final path.
    """
    srv.add_file("/download", b"abcdwxyz")
    srv.add_fault(Fault("ignore_range", times=-1))
    dest = tmp_path / "case.bin"
    seed_partial_from(srv, "/download", dest, b"abcd")
    task = (DownloadPounceBuilder("case.bin", dest, 4, srv.url("/download"))
            .with_breakpoint_download_http(BreakpointDownloadHttpConfig(range_ignored=RangeIgnoredPolicy.FAIL))
            .build())
    final, _ = await run(task)
    failed_with(final, InnerErrorCode.INVALID_RANGE, "requires 206 Partial Content")
    assert not dest.exists()
    assert part_of(dest).read_bytes()[:4] == b"abcd"
    saved = json.loads(ckpt_of(dest).read_bytes())["data"]
    assert saved["written"] == [[0, 4]]
    assert srv.count("GET") == 1


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_206_without_content_range_is_rejected(tmp_path: Path) -> None:
    """Port of download_protocol_validation_test::download_rejects_206_without_content_range.

    Canned bytes (a 206 without Content-Range), so ScriptedServer: exactly HEAD then one GET. The prefix
    stays in ``.part``; the final path is never written.
    """
    get = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\nConnection: close\r\n\r\nwxyz"
    dest = tmp_path / "case.bin"
    with ScriptedServer([HEAD_8, get]) as srv:
        seed_partial(srv.url("/download"), dest, b"abcd", 8)
        final, _ = await run(DownloadPounceBuilder("case.bin", dest, 4, srv.url("/download")).build())
        requests = list(srv.requests)
    failed_with(final, InnerErrorCode.INVALID_RANGE, "missing content-range")
    assert [r.split(b" ", 1)[0] for r in requests] == [b"HEAD", b"GET"]
    assert b"range: bytes=4-7" in requests[1].lower()
    assert not dest.exists()
    assert part_of(dest).read_bytes()[:4] == b"abcd"


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_content_range_start_mismatch_is_rejected(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of download_protocol_validation_test::download_rejects_content_range_start_mismatch."""
    srv.add_file("/download", b"abcdwxyz")
    srv.add_fault(Fault("bad_content_range", content_range="bytes 0-3/8", times=-1))
    dest = tmp_path / "case.bin"
    seed_partial_from(srv, "/download", dest, b"abcd")
    final, _ = await run(DownloadPounceBuilder("case.bin", dest, 4, srv.url("/download")).build())
    failed_with(final, InnerErrorCode.INVALID_RANGE, "start mismatch")
    assert not dest.exists()
    assert part_of(dest).read_bytes()[:4] == b"abcd"
    assert srv.count("GET") == 1, "InvalidRange is not retried"


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_valid_206_appends_at_exact_offset(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of download_protocol_validation_test::download_accepts_valid_206_and_appends_at_exact_offset.

    Only the missing range ``bytes=4-7`` is requested (conditionally, with If-Range), the result is
    ``abcdwxyz`` at the final path and the sidecars are gone.
    """
    srv.add_file("/download", b"abcdwxyz")
    dest = tmp_path / "case.bin"
    seed_partial_from(srv, "/download", dest, b"abcd")
    final, rec = await run(DownloadPounceBuilder("case.bin", dest, 4, srv.url("/download")).build())
    assert final.status is TransferStatus.COMPLETE
    assert dest.read_bytes() == b"abcdwxyz"
    gets = [r for r in srv.requests if r.method == "GET"]
    assert [r.range for r in gets] == ["bytes=4-7"]
    assert gets[0].headers.get("if-range") == srv.get_file("/download").etag
    first_transmission = next(r for r in rec.of(final.task_id) if r.status is TransferStatus.TRANSMISSION)
    assert (first_transmission.transferred_bytes, first_transmission.total_size) == (4, 8)
    assert not part_of(dest).exists() and not ckpt_of(dest).exists()


# ------------------------------------------------------------------------------ error_body_truncation


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_5xx_on_ranged_get_is_retried_then_previews_4096_bytes(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of error_body_truncation_test: a non-206 answer (500 with a 10 000-byte body).

    New: 5xx is retryable, so the GET is retried (max_chunk_retries=2 → 3 GETs) and then fails with
    ResponseStatusError (not the seed's InvalidRange); the message still says "206 Partial Content" and holds
    exactly the first 4096 body bytes, not 4097.
    """
    body = b"x" * 4096 + b"y" * (10_000 - 4096)
    srv.add_file("/download/err.bin", bytes(64))
    srv.add_fault(Fault("status", method="GET", status=500, body=body, times=-1))
    dest = tmp_path / "err.bin"
    task = DownloadPounceBuilder("err.bin", dest, 64, srv.url("/download/err.bin")).with_max_chunk_retries(2).build()
    final, _ = await run(task)
    msg = failed_with(final, InnerErrorCode.RESPONSE_STATUS_ERROR, "206 Partial Content")
    assert msg.endswith(": " + "x" * 4096)
    assert "x" * 4097 not in msg and "y" not in msg.split(": ", 1)[1]
    assert srv.count("GET") == 3
    assert not dest.exists()


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_429_on_ranged_get_is_retried_and_completes(srv: TestHttpServer, tmp_path: Path) -> None:
    """Extends error_body_truncation_test, new behaviour (weakness #17): a transient 429 (Retry-After: 0) on a
    ranged GET is retried and the download completes (the seed failed at once with InvalidRange)."""
    payload = bytes(range(200))
    srv.add_file("/download/busy.bin", payload)
    srv.add_fault(Fault("status", method="GET", status=429, retry_after="0", times=1))
    dest = tmp_path / "busy.bin"
    final, _ = await run(DownloadPounceBuilder("busy.bin", dest, 256, srv.url("/download/busy.bin")).build())
    assert final.status is TransferStatus.COMPLETE
    assert dest.read_bytes() == payload
    assert srv.count("GET") == 2


# ------------------------------------------------------------------------------ pause_resume (resume data)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_resume_after_pause_fetches_only_missing_ranges(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of pause_resume_test (the resumed run's data), new behaviour: a download paused after some bytes
    reached ``.part`` resumes from its checkpoint: the resumed run's GETs never re-request a range the
    checkpoint marks done, and the final file is correct."""
    payload = bytes((i * 31) % 256 for i in range(512 * 1024))
    srv.add_file("/slow.bin", payload)
    srv.rate_limit = 512 * 1024
    dest = tmp_path / "slow.bin"
    client = MeowClient(fast_config(max_download_concurrency=1))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(DownloadPounceBuilder("slow.bin", dest, 64 * 1024, srv.url("/slow.bin")).build(),
                                       rec.progress, rec.complete)
        await rec.wait_for(lambda: any(r.status is TransferStatus.TRANSMISSION and r.transferred_bytes > 0
                                       for r in rec.of(tid)))
        await client.pause(tid)
        await rec.wait_status(tid, TransferStatus.PAUSED)

        def saved_done() -> list[tuple[int, int]]:
            return [(s, e) for s, e in json.loads(ckpt_of(dest).read_bytes())["data"]["written"]]

        await rec.wait_for(lambda: saved_done() != [], timeout=5)
        done = saved_done()  # the stopping run may still add ranges: a subset is enough below
        assert not dest.exists()
        requests_before = len(srv.requests)
        srv.rate_limit = None
        await client.resume(tid)
        final = await rec.wait_terminal(tid)
    finally:
        await closed_client(client)
    assert final.status is TransferStatus.COMPLETE
    assert dest.read_bytes() == payload
    for r in srv.requests[requests_before:]:
        if r.method != "GET":
            continue
        assert r.range is not None
        start, end = (int(x) for x in r.range.removeprefix("bytes=").split("-"))
        for s, e in done:
            assert end < s or start >= e, f"{r.range} re-requests done range {s}-{e}"
