"""Seed scenarios about protocol edge cases of both directions (HEAD, Content-Range, bodies, upload JSON).

Ports of seed-behavior.md §9.2: transfer_protocol_edge_case_test, transfer_protocol_more_edge_test.
ScriptedServer is used only where the canned bytes themselves are the point (headers a real server never
sends); everything else runs against TestHttpServer with fault injection.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.engine import checkpoint
from app.engine.api import (
    DownloadCheckpoint,
    DownloadPounceBuilder,
    FileTransferRecord,
    InnerErrorCode,
    MeowClient,
    PounceTask,
    TransferStatus,
    UploadPounceBuilder,
)
from tests.support.engine_helpers import HEAD_8, Recorder, closed_client, failed_with, fast_config
from tests.support.http_server import Fault, ScriptedServer, TestHttpServer


async def run(task: PounceTask) -> tuple[FileTransferRecord, Recorder]:
    client = MeowClient(fast_config(max_upload_concurrency=1, max_download_concurrency=1))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        final = await rec.wait_terminal(tid)
        if final.status is TransferStatus.COMPLETE:
            await rec.wait_for(lambda: len(rec.completes) == 1)
    finally:
        await closed_client(client)
    return final, rec


def methods(scripted: ScriptedServer) -> list[bytes]:
    return [r.split(b" ", 1)[0] for r in scripted.requests]


# ------------------------------------------------------------------------------ transfer_protocol_edge_case: upload


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_upload_prepare_500_without_retries_is_response_status_error(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of transfer_protocol_edge_case_test::upload_prepare_http_non_success_hits_response_status_error."""
    srv.add_fault(Fault("status", method="POST", status=500, body="bad", times=-1))
    src = tmp_path / "u.bin"
    src.write_bytes(b"abc")
    task = (UploadPounceBuilder("u.bin", src, 1024).with_url(srv.url("/upload/u.bin"))
            .with_max_upload_prepare_retries(0).build())
    final, rec = await run(task)
    msg = failed_with(final, InnerErrorCode.RESPONSE_STATUS_ERROR)
    assert "500" in msg and "bad" in msg
    assert srv.count("POST") == 1
    assert rec.completes == []


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_upload_prepare_not_json_is_response_parse_error(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of transfer_protocol_edge_case_test::upload_prepare_invalid_json_hits_response_parse_error."""
    srv.upload_mode = "not_json"
    src = tmp_path / "u.bin"
    src.write_bytes(b"abc")
    final, _ = await run(UploadPounceBuilder("u.bin", src, 1024).with_url(srv.url("/upload/u.bin")).build())
    failed_with(final, InnerErrorCode.RESPONSE_PARSE_ERROR, "not-json")
    assert srv.count("POST") == 1, "a parse error is not retried"


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_upload_prepare_file_id_completes_with_that_payload(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of transfer_protocol_edge_case_test::upload_prepare_completed_file_id_branch_finishes_without_chunk_http.

    New: the prepare's fileId is the completion payload (the seed dropped it and called back with None,
    weakness #10). No chunk request is sent.
    """
    srv.upload_mode = "prepare_file_id"
    src = tmp_path / "u.bin"
    src.write_bytes(b"abcdef")
    final, rec = await run(UploadPounceBuilder("u.bin", src, 1024).with_url(srv.url("/upload/u.bin")).build())
    assert final.status is TransferStatus.COMPLETE
    md5 = hashlib.md5(b"abcdef").hexdigest()
    assert rec.completes == [(final.task_id, f"dev-file-id-{md5[:8]}")]
    assert [c.kind for c in srv.upload_calls] == ["prepare"]
    assert final.progress == 1.0


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_upload_server_that_never_advances_fails_with_no_progress(srv: TestHttpServer, tmp_path: Path) -> None:
    """Extends transfer_protocol_edge_case_test, new behaviour (weakness #9): a server answering every chunk
    with ``nextByte == offset`` fails the task with NO_PROGRESS after a few chunks instead of looping forever."""
    srv.upload_mode = "no_progress"
    src = tmp_path / "u.bin"
    src.write_bytes(bytes(range(256)) * 4)
    final, rec = await run(UploadPounceBuilder("u.bin", src, 256).with_url(srv.url("/upload/u.bin")).build())
    failed_with(final, InnerErrorCode.NO_PROGRESS)
    chunks = [c for c in srv.upload_calls if c.kind == "chunk"]
    assert 1 <= len(chunks) <= 10
    assert {c.values["offset"] for c in chunks} == {"0"}
    assert rec.completes == []


# ------------------------------------------------------------------------------ transfer_protocol_edge_case: download


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_head_without_content_length_falls_back_to_range_probe(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of transfer_protocol_edge_case_test::download_prepare_missing_content_length_hits_error_branch.

    New: a HEAD without Content-Length no longer fails with 110; the engine probes with ``Range: bytes=0-0``
    and downloads the file.
    """
    payload = bytes(range(256)) * 8
    srv.add_file("/d.bin", payload)
    srv.add_fault(Fault("no_content_length", method="HEAD", times=1))
    dest = tmp_path / "d.bin"
    final, _ = await run(DownloadPounceBuilder("d.bin", dest, 1024, srv.url("/d.bin")).build())
    assert final.status is TransferStatus.COMPLETE
    assert dest.read_bytes() == payload
    assert any(r.method == "GET" and r.range == "bytes=0-0" for r in srv.requests)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_head_with_non_numeric_content_length_is_110(tmp_path: Path) -> None:
    """Port of transfer_protocol_edge_case_test (110 branch), new meaning: code 110
    (MISSING_OR_INVALID_CONTENT_LENGTH) is for a Content-Length that is present but not a number. It is not
    retried (one HEAD, no GET) and the final path is untouched. Canned bytes: a real server never sends this.
    """
    head = b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\nConnection: close\r\n\r\n"
    dest = tmp_path / "d.bin"
    with ScriptedServer([head, head, head, head]) as scripted:
        final, _ = await run(DownloadPounceBuilder("d.bin", dest, 1024, scripted.url("/download/d.bin")).build())
        seen = methods(scripted)
    failed_with(final, InnerErrorCode.MISSING_OR_INVALID_CONTENT_LENGTH)
    assert seen == [b"HEAD"]
    assert not dest.exists()


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_stale_local_data_is_never_trusted_by_size(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of transfer_protocol_edge_case_test::download_prepare_local_larger_than_remote_hits_invalid_range_branch.

    New (weakness #13): resume state is ``.part`` + checkpoint, never a file's size. A 16-byte file already at
    the destination (remote has 8) is simply replaced on completion, and a ``.part`` + checkpoint recorded for
    a 16-byte remote is discarded (restart from byte 0) instead of failing with InvalidRange.
    """
    srv.add_file("/d.bin", b"ABCDEFGH")
    dest = tmp_path / "d.bin"
    dest.write_bytes(bytes(16))
    done = [[0, 16]]
    stale = DownloadCheckpoint(url=srv.url("/d.bin"), total_size=16, etag=None, last_modified=None, chunk_size=1024,
                               written=done, durable=done, boot_id=checkpoint.boot_id())
    Path(checkpoint.part_path(str(dest))).write_bytes(b"z" * 16)
    checkpoint.write_atomic(checkpoint.checkpoint_path(str(dest)), checkpoint.encode(stale), durable=False)
    final, _ = await run(DownloadPounceBuilder("d.bin", dest, 1024, srv.url("/d.bin")).build())
    assert final.status is TransferStatus.COMPLETE
    assert dest.read_bytes() == b"ABCDEFGH"
    assert [r.range for r in srv.requests if r.method == "GET"] == ["bytes=0-7"]
    assert not Path(checkpoint.part_path(str(dest))).exists()


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_content_range_total_differs_from_head_is_invalid_range(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of transfer_protocol_edge_case_test::download_chunk_total_changed_and_empty_body_error_branches (A):
    HEAD total 8 but Content-Range total 9 → InvalidRange "total size changed" (after one fresh probe that
    still says 8); the final path is never written."""
    srv.add_file("/a.bin", b"abcdefgh")
    srv.add_fault(Fault("bad_content_range", content_range="bytes 0-3/9", times=-1))
    dest = tmp_path / "a.bin"
    task = DownloadPounceBuilder("a.bin", dest, 4, srv.url("/a.bin")).with_max_chunk_concurrency(1).build()
    final, _ = await run(task)
    failed_with(final, InnerErrorCode.INVALID_RANGE, "total size changed")
    assert not dest.exists()


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_206_with_empty_body_is_invalid_range(tmp_path: Path) -> None:
    """Port of transfer_protocol_edge_case_test::download_chunk_total_changed_and_empty_body_error_branches (B):
    a 206 ``bytes 0-3/8`` with an empty body → InvalidRange (canned bytes: exactly HEAD then GET)."""
    get = (b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/8\r\nContent-Length: 0\r\n"
           b"Connection: close\r\n\r\n")
    dest = tmp_path / "b.bin"
    with ScriptedServer([HEAD_8, get]) as scripted:
        task = DownloadPounceBuilder("b.bin", dest, 4, scripted.url("/download/b.bin")).with_max_chunk_concurrency(1)
        final, _ = await run(task.build())
        seen = methods(scripted)
    failed_with(final, InnerErrorCode.INVALID_RANGE)
    assert seen == [b"HEAD", b"GET"]
    assert not dest.exists()


# ------------------------------------------------------------------------------ transfer_protocol_more_edge


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_head_404_fails_with_head_failed(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of transfer_protocol_more_edge_test::download_head_non_success_hits_prepare_status_error_branch.

    A 404 is final: ResponseStatusError "HEAD failed", one HEAD, no retry, no GET.
    """
    dest = tmp_path / "edge.bin"
    final, _ = await run(DownloadPounceBuilder("edge.bin", dest, 4, srv.url("/download/missing.bin")).build())
    failed_with(final, InnerErrorCode.RESPONSE_STATUS_ERROR, "HEAD failed")
    assert [r.method for r in srv.requests] == ["HEAD"]
    assert not dest.exists()


@pytest.mark.asyncio
@pytest.mark.timeout(20)
@pytest.mark.parametrize(("content_range", "text"), [
    ("items 0-3/8", "invalid content-range"),
    ("bytes 3-0/8", "invalid content-range order"),
])
async def test_invalid_content_range_unit_and_order(srv: TestHttpServer, tmp_path: Path, content_range: str,
                                                    text: str) -> None:
    """Port of transfer_protocol_more_edge_test::download_invalid_content_range_unit_and_order_branches."""
    srv.add_file("/download/edge.bin", b"abcdefgh")
    srv.add_fault(Fault("bad_content_range", content_range=content_range, times=-1))
    dest = tmp_path / "edge.bin"
    task = DownloadPounceBuilder("edge.bin", dest, 4, srv.url("/download/edge.bin")).with_max_chunk_concurrency(1)
    final, _ = await run(task.build())
    failed_with(final, InnerErrorCode.INVALID_RANGE, text)
    assert srv.count("GET") == 1
    assert not dest.exists()


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_body_shorter_than_content_range_is_rejected(tmp_path: Path) -> None:
    """Port of transfer_protocol_more_edge_test::download_body_length_mismatch_branch_is_detected.

    Canned bytes: Content-Range promises 4 bytes, Content-Length and the body give 3. The port checks the
    headers against each other before reading: InvalidRange naming the Content-Length mismatch (the seed's
    message was "body length mismatch"); nothing is written to the final path.
    """
    get = (b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/8\r\nContent-Length: 3\r\n"
           b"Connection: close\r\n\r\nabc")
    dest = tmp_path / "edge.bin"
    with ScriptedServer([HEAD_8, get]) as scripted:
        task = DownloadPounceBuilder("edge.bin", dest, 4, scripted.url("/download/edge.bin"))
        final, _ = await run(task.with_max_chunk_concurrency(1).build())
    msg = failed_with(final, InnerErrorCode.INVALID_RANGE)
    assert "content-length 3" in msg or "body length mismatch" in msg, msg
    assert not dest.exists()


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_body_cut_short_by_the_connection_is_http_error(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of transfer_protocol_more_edge_test (body length mismatch), real-server variant: an honest
    Content-Length but the connection closes after 3 of 4 bytes → a retryable HttpError (final with
    max_chunk_retries(0)); the final path is never written."""
    srv.add_file("/download/edge.bin", b"abcdefgh")
    srv.add_fault(Fault("truncate", method="GET", after_bytes=3, times=-1))
    dest = tmp_path / "edge.bin"
    task = (DownloadPounceBuilder("edge.bin", dest, 4, srv.url("/download/edge.bin"))
            .with_max_chunk_concurrency(1).with_max_chunk_retries(0).build())
    final, _ = await run(task)
    failed_with(final, InnerErrorCode.HTTP_ERROR)
    assert srv.count("GET") == 1
    assert not dest.exists()
