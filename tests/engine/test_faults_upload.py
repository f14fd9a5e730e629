"""Upload fault matrix for the seed's default multipart chunk protocol, against the real local server.

Each case ends either Complete with the server holding exactly the file (its MD5 checks out), or Failed with
the expected error code and a clear message.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.engine.api import (
    FileTransferRecord,
    InnerErrorCode,
    MeowError,
    TransferStatus,
    UploadPounceBuilder,
)
from tests.support.engine_helpers import KIB, Recorder, blob, meow
from tests.support.http_server import Fault, TestHttpServer

pytestmark = pytest.mark.timeout(30)

CHUNK = 32 * KIB
S = TransferStatus
E = InnerErrorCode
DATA = blob(200 * KIB)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "up.bin"
    path.write_bytes(DATA)
    return path


def builder(srv: TestHttpServer, src: Path, *, retries: int = 3, prepare_retries: int = 3) -> UploadPounceBuilder:
    return (UploadPounceBuilder(src.name, src, CHUNK).with_url(srv.url("/upload"))
            .with_max_chunk_retries(retries).with_max_upload_prepare_retries(prepare_retries))


async def send(srv: TestHttpServer, src: Path, *, timeout: float = 20, config: dict[str, object] | None = None,
               **kw: int) -> tuple[FileTransferRecord, Recorder]:
    rec = Recorder()
    async with meow(**(config or {})) as client:
        tid = await client.try_enqueue(builder(srv, src, **kw).build(), rec.progress, rec.complete)
        final = await rec.wait_terminal(tid, timeout)
        if final.status is S.COMPLETE:
            await rec.wait_for(lambda: rec.completes)
    return final, rec


def assert_uploaded(srv: TestHttpServer, final: FileTransferRecord, rec: Recorder, data: bytes = DATA) -> None:
    assert final.status is S.COMPLETE, final.error
    assert final.transferred_bytes == final.total_size == len(data)
    (state,) = srv.uploads.values()
    assert state.completed and state.md5_ok and state.data == data
    assert rec.completes == [(final.task_id, state.file_id)]


def posts(srv: TestHttpServer) -> int:
    return srv.count("POST", "/upload")


# ---------------------------------------------------------------------------------------------- transient faults
@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_chunk_status_error_then_ok(srv: TestHttpServer, src: Path, status: int) -> None:
    srv.add_fault(Fault("status", method="POST", status=status, skip=2, times=1))  # prepare, chunk 0 pass
    final, rec = await send(srv, src)
    assert_uploaded(srv, final, rec)
    assert posts(srv) == 1 + len(range(0, len(DATA), CHUNK)) + 1


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 503])
async def test_prepare_status_error_then_ok(srv: TestHttpServer, src: Path, status: int) -> None:
    srv.add_fault(Fault("status", method="POST", status=status, times=2))
    final, rec = await send(srv, src)
    assert_uploaded(srv, final, rec)
    assert srv.upload_inspector().prepare_calls == 1  # the two faulted prepares never reached the protocol


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["reset", "drop", "truncate"])
async def test_connection_faults_on_chunks_are_retried(srv: TestHttpServer, src: Path, kind: str) -> None:
    srv.add_fault(Fault(kind, method="POST", skip=1, times=2))
    final, rec = await send(srv, src)
    assert_uploaded(srv, final, rec)


@pytest.mark.asyncio
async def test_stalled_answer_times_out_and_is_retried(srv: TestHttpServer, src: Path) -> None:
    srv.add_fault(Fault("stall", method="POST", skip=2, seconds=10))
    t0 = time.monotonic()
    final, rec = await send(srv, src, config={"http_timeout": 0.4})
    assert_uploaded(srv, final, rec)
    assert time.monotonic() - t0 < 5


@pytest.mark.asyncio
async def test_429_retry_after_is_waited_for(srv: TestHttpServer, src: Path) -> None:
    srv.add_fault(Fault("status", method="POST", status=429, retry_after="0.4", skip=1))
    t0 = time.monotonic()
    final, rec = await send(srv, src)
    assert_uploaded(srv, final, rec)
    assert time.monotonic() - t0 >= 0.35


@pytest.mark.asyncio
async def test_retry_after_on_upload_is_capped_by_config(srv: TestHttpServer, src: Path) -> None:
    """MeowConfig.max_retry_after caps a server's Retry-After for uploads as it does for downloads."""
    srv.add_fault(Fault("status", method="POST", status=503, retry_after="20", skip=1))
    t0 = time.monotonic()
    final, rec = await send(srv, src, timeout=4, config={"max_retry_after": 0.2})
    assert_uploaded(srv, final, rec)
    assert time.monotonic() - t0 < 4


@pytest.mark.asyncio
async def test_persistent_chunk_failure_then_rerun_resumes_from_server_state(srv: TestHttpServer,
                                                                            src: Path) -> None:
    srv.add_fault(Fault("status", method="POST", status=503, skip=3, times=-1))  # prepare + 2 chunks pass
    final, _ = await send(srv, src, retries=1)
    assert final.status is S.FAILED and final.error is not None
    assert final.error.code == E.RESPONSE_STATUS_ERROR and final.error.status == 503
    assert final.transferred_bytes == 2 * CHUNK and final.total_size == len(DATA)
    srv.clear_faults()
    before = len(srv.upload_calls)
    final, rec = await send(srv, src)
    assert_uploaded(srv, final, rec)
    rerun = srv.upload_calls[before:]
    assert rerun[0].kind == "prepare" and rerun[0].response == {"nextByte": 2 * CHUNK}
    assert [int(c.values["offset"]) for c in rerun[1:]] == list(range(2 * CHUNK, len(DATA), CHUNK))


# ---------------------------------------------------------------------------------------------- final errors
@pytest.mark.asyncio
async def test_prepare_500_without_retries_fails_with_status_error(srv: TestHttpServer, src: Path) -> None:
    srv.add_fault(Fault("status", method="POST", status=500, body="backend exploded", times=-1))
    final, rec = await send(srv, src, prepare_retries=0)
    assert final.status is S.FAILED and final.error is not None
    assert final.error.code == E.RESPONSE_STATUS_ERROR and final.error.status == 500
    assert "500" in final.error.msg and "backend exploded" in final.error.msg
    assert posts(srv) == 1
    assert rec.completes == []


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 403, 404, 409])
async def test_final_status_on_a_chunk_fails_at_once(srv: TestHttpServer, src: Path, status: int) -> None:
    srv.add_fault(Fault("status", method="POST", status=status, skip=1, times=-1))
    final, _ = await send(srv, src, retries=5)
    assert final.status is S.FAILED and final.error is not None
    assert final.error.code == E.RESPONSE_STATUS_ERROR and final.error.status == status
    assert posts(srv) == 2


@pytest.mark.asyncio
async def test_answer_that_is_not_json_is_a_parse_error(srv: TestHttpServer, src: Path) -> None:
    srv.upload_mode = "not_json"
    final, _ = await send(srv, src)
    assert final.status is S.FAILED and final.error is not None
    assert final.error.code == E.RESPONSE_PARSE_ERROR
    assert "not-json" in final.error.msg
    assert posts(srv) == 1


@pytest.mark.asyncio
async def test_server_that_never_advances_fails_with_no_progress(srv: TestHttpServer, src: Path) -> None:
    srv.upload_mode = "no_progress"
    final, _ = await send(srv, src, timeout=10)
    assert final.status is S.FAILED and final.error is not None
    assert final.error.code == E.NO_PROGRESS


# ---------------------------------------------------------------------------------------------- the source file
@pytest.mark.asyncio
async def test_source_deleted_between_build_and_enqueue(srv: TestHttpServer, src: Path) -> None:
    task = builder(srv, src).build()
    src.unlink()
    rec = Recorder()
    async with meow() as client:
        try:
            tid = await client.try_enqueue(task, rec.progress)
        except MeowError as err:
            code = err.code
        else:
            final = await rec.wait_terminal(tid)
            assert final.status is S.FAILED and final.error is not None
            code = final.error.code
    assert code == E.FILE_NOT_FOUND
    assert posts(srv) == 0


@pytest.mark.asyncio
async def test_missing_source_at_build_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(MeowError) as err:
        UploadPounceBuilder("nope", tmp_path / "nope.bin", CHUNK).with_url("http://127.0.0.1:9/upload").build()
    assert err.value.code == E.FILE_NOT_FOUND


@pytest.mark.asyncio
async def test_source_truncated_during_upload_fails_with_source_changed(srv: TestHttpServer, src: Path) -> None:
    srv.upload_rate_limit = 300_000
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(builder(srv, src).build(), rec.progress)
        await rec.wait_for(lambda: any(r.status is S.TRANSMISSION and r.transferred_bytes >= CHUNK
                                       for r in rec.of(tid)))
        with src.open("r+b") as f:
            f.truncate(CHUNK + 100)
        final = await rec.wait_terminal(tid)
    assert final.status is S.FAILED and final.error is not None
    assert final.error.code == E.SOURCE_CHANGED, final.error
    assert str(src) in final.error.msg
    assert not srv.upload_inspector().completed


@pytest.mark.asyncio
async def test_upload_from_bytes_survives_a_faulty_chunk(srv: TestHttpServer) -> None:
    srv.add_fault(Fault("status", method="POST", status=500, skip=1, times=1))
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(
            UploadPounceBuilder.from_bytes("mem.bin", DATA, CHUNK).with_url(srv.url("/upload")).build(),
            rec.progress, rec.complete)
        final = await rec.wait_terminal(tid)
        await rec.wait_for(lambda: rec.completes)
    assert_uploaded(srv, final, rec)


@pytest.mark.asyncio
async def test_slow_upload_longer_than_http_timeout_completes(srv: TestHttpServer, tmp_path: Path) -> None:
    """The timeout is per socket operation: a 1.2 s chunk body on a slow link with http_timeout=0.5 s is fine."""
    data = blob(120 * KIB, 3)
    path = tmp_path / "slow.bin"
    path.write_bytes(data)
    srv.upload_rate_limit = 100_000
    rec = Recorder()
    async with meow(http_timeout=0.5) as client:
        tid = await client.try_enqueue(
            UploadPounceBuilder("slow.bin", path, 128 * KIB).with_url(srv.url("/upload"))
            .with_max_chunk_retries(0).build(), rec.progress, rec.complete)
        final = await rec.wait_terminal(tid)
        assert final.status is S.COMPLETE, final.error
        await rec.wait_for(lambda: rec.completes)
    assert_uploaded(srv, final, rec, data)
