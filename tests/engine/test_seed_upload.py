"""Seed scenarios about uploads: default wire protocol, in-memory sources, identity/duplicates, payloads, plugins.

Ports of seed-behavior.md §9.2: upload_test, from_bytes_e2e_test, upload_sign_and_duplicate_test,
custom_http_client_upload_test, complete_callback_test, transfer_task_bridge_test.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import pytest

from app.engine import scheduler as scheduler_module
from app.engine.api import (
    DefaultStyleUpload,
    Direction,
    DownloadHeadCtx,
    DownloadPounceBuilder,
    DownloadRangeGetCtx,
    InnerErrorCode,
    MeowClient,
    MultipartBody,
    StandardRangeDownload,
    TaskId,
    TransferStatus,
    TransferTask,
    UploadChunkCtx,
    UploadPounceBuilder,
    UploadPrepareCtx,
    UploadResumeInfo,
)
from app.engine.default_upload import parse_resume_info
from tests.support.engine_helpers import Recorder, close_injected, closed_client, fast_config
from tests.support.http_server import Fault, TestHttpServer

PREPARE_FIELDS = ["fileMd5", "fileName", "category", "totalSize"]
CHUNK_FIELDS = ["file", "fileMd5", "fileName", "category", "offset", "partSize", "totalSize"]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def file_id(data: bytes) -> str:
    """What TestHttpServer answers as fileId once an upload is complete."""
    return f"dev-file-id-{md5(data)[:8]}"


async def wait_complete(rec: Recorder, tid: TaskId) -> None:
    final = await rec.wait_terminal(tid)
    assert final.status is TransferStatus.COMPLETE, final
    await rec.wait_for(lambda: any(t == tid for t, _ in rec.completes))


# ------------------------------------------------------------------------------ upload


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_upload_end_to_end_with_seed_wire_format(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of upload_test: ~92 KB with 2 KiB chunks: ≥1 prepare, ≥1 chunk, the server's max offset equals the
    size and the upload is complete; plus the seed's multipart wire contract (§5.2: field order, part name and
    type, explicit Content-Length) and byte-identical data on the server."""
    payload = bytes((i * 13) % 256 for i in range(92 * 1024))
    src = tmp_path / "up.bin"
    src.write_bytes(payload)
    client = MeowClient(fast_config(max_upload_concurrency=1))
    rec = Recorder()
    try:
        task = UploadPounceBuilder("up.bin", src, 2048).with_url(srv.url("/upload/up.bin")).build()
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        await wait_complete(rec, tid)
    finally:
        await closed_client(client)
    inspect = srv.upload_inspector()
    assert inspect.prepare_calls >= 1
    assert inspect.chunk_calls >= 1
    assert inspect.max_next_byte == inspect.total_size_seen == len(payload)
    assert inspect.completed
    state = srv.uploads[md5(payload)]
    assert state.data == payload and state.md5_ok
    assert rec.completes == [(tid, file_id(payload))]
    prepare = srv.upload_calls[0]
    assert prepare.kind == "prepare" and prepare.field_names == PREPARE_FIELDS
    assert prepare.values == {"fileMd5": md5(payload), "fileName": "up.bin", "category": "",
                              "totalSize": str(len(payload))}
    chunks = [c for c in srv.upload_calls if c.kind == "chunk"]
    assert len(chunks) == -(-len(payload) // 2048)
    for call in chunks:
        assert call.field_names == CHUNK_FIELDS
        assert call.file_part is not None
        assert call.file_part.filename == "upload_chunk_data"
        assert call.file_part.content_type == "application/octet-stream"
    for r in srv.requests:
        assert r.method == "POST"
        assert r.headers.get("content-length") == str(r.body_size)
        assert "transfer-encoding" not in r.headers


# ------------------------------------------------------------------------------ from_bytes_e2e


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_from_bytes_upload_completes_and_sign_is_payload_md5(srv: TestHttpServer) -> None:
    """Port of from_bytes_e2e_test::from_bytes_upload_success_and_file_sign_matches_payload_md5."""
    payload = b"from-bytes-success-payload" * 4096
    client = MeowClient(fast_config(max_upload_concurrency=1))
    rec = Recorder()
    try:
        task = UploadPounceBuilder.from_bytes("mem.bin", payload, 4096).with_url(srv.url("/upload/mem.bin")).build()
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        await wait_complete(rec, tid)
    finally:
        await closed_client(client)
    assert rec.of(tid)
    assert {r.file_sign for r in rec.of(tid)} == {md5(payload)}
    assert {r.direction for r in rec.of(tid)} == {Direction.UPLOAD}
    inspect = srv.upload_inspector()
    assert inspect.max_next_byte == len(payload)
    assert inspect.completed
    assert srv.uploads[md5(payload)].data == payload


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_from_bytes_duplicate_semantics_match_file_source(srv: TestHttpServer) -> None:
    """Port of from_bytes_e2e_test::from_bytes_duplicate_semantics_match_file_source.

    Two in-memory uploads of identical content to different URLs: the second gets Failed(DuplicateTaskError),
    delivered with its own (new) TaskId; the first completes.
    """
    payload = b"from-bytes-duplicate-check" * 4096
    srv.upload_rate_limit = 256 * 1024
    client = MeowClient(fast_config(max_upload_concurrency=1))
    first, second = Recorder(), Recorder()
    try:
        t1 = await client.try_enqueue(UploadPounceBuilder.from_bytes("dup-a.bin", payload, 1024)
                                      .with_url(srv.url("/upload/a.bin")).build(), first.progress, first.complete)
        await first.wait_status(t1, TransferStatus.PENDING)
        t2 = await client.try_enqueue(UploadPounceBuilder.from_bytes("dup-b.bin", payload, 1024)
                                      .with_url(srv.url("/upload/b.bin")).build(), second.progress, second.complete)
        dup = await second.wait_terminal(t2)
        assert dup.status is TransferStatus.FAILED
        assert dup.error is not None and dup.error.code == InnerErrorCode.DUPLICATE_TASK
        assert dup.task_id == t2
        await client.cancel(t1)
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_file_and_bytes_sources_match_on_retry_and_callbacks(tmp_path: Path) -> None:
    """Port of from_bytes_e2e_test::from_bytes_and_file_source_match_on_retry_and_callback_semantics.

    One chunk (chunk size 64 MiB) answered with HTTP 500 once (the 2nd POST): both a file source and an
    in-memory source retry, complete, emit Transmission and call the complete callback exactly once.
    """
    payload = b"from-bytes-vs-file-retry" * (32 * 1024)
    src = tmp_path / "retry-file.bin"
    src.write_bytes(payload)
    builders = [UploadPounceBuilder("retry-file.bin", src, 64 << 20),
                UploadPounceBuilder.from_bytes("retry-bytes.bin", payload, 64 << 20)]
    for builder in builders:
        with TestHttpServer() as server:
            server.add_fault(Fault("status", method="POST", status=500, body="intentional chunk failure", skip=1))
            client = MeowClient(fast_config(max_upload_concurrency=1))
            rec = Recorder()
            try:
                tid = await client.try_enqueue(builder.with_url(server.url("/upload/retry")).build(),
                                               rec.progress, rec.complete)
                await wait_complete(rec, tid)
            finally:
                await closed_client(client)
            assert TransferStatus.TRANSMISSION in rec.statuses(tid)
            assert rec.completes == [(tid, file_id(payload))]
            assert server.count("POST") == 3  # prepare, chunk (500), chunk again
            assert [c.kind for c in server.upload_calls] == ["prepare", "chunk"]  # the 500 never reached the app
            assert server.uploads[md5(payload)].data == payload
            assert server.errors == []


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_duplicate_rejection_follows_enqueue_order(srv: TestHttpServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed rule (§3.4, from_bytes_e2e_test / upload_sign_and_duplicate_test): of two uploads with the same
    content, the one enqueued SECOND is the duplicate. Here the first task's content hash is made slow, so it
    finishes hashing after the second: the first must still be the leader (and complete)."""
    payload = b"hash-order" * 8192
    src = tmp_path / "first.bin"
    src.write_bytes(payload)
    real_digest = scheduler_module.file_digest

    def slow_digest(path: str, algorithm: str, *args: object) -> str:
        if path == str(src):
            time.sleep(0.3)
        return real_digest(path, algorithm, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(scheduler_module, "file_digest", slow_digest)
    client = MeowClient(fast_config(max_upload_concurrency=1))
    rec = Recorder()
    try:
        t1 = await client.try_enqueue(UploadPounceBuilder("first.bin", src, 4096).with_url(srv.url("/upload/1"))
                                      .build(), rec.progress, rec.complete)
        t2 = await client.try_enqueue(UploadPounceBuilder.from_bytes("second.bin", payload, 4096)
                                      .with_url(srv.url("/upload/2")).build(), rec.progress, rec.complete)
        second = await rec.wait_terminal(t2, timeout=10)
        first = await rec.wait_terminal(t1, timeout=10)
        assert (first.status, second.status) == (TransferStatus.COMPLETE, TransferStatus.FAILED), \
            "the later-enqueued task is the duplicate; the first-enqueued one is the leader"
        assert second.error is not None and second.error.code == InnerErrorCode.DUPLICATE_TASK
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ upload_sign_and_duplicate


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_every_upload_record_carries_source_md5(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of upload_sign_and_duplicate_test (sign part): all records carry the source MD5 as file_sign, and
    the first two statuses are Pending(total = size) then Transmission."""
    payload = bytes(range(256)) * 64
    src = tmp_path / "sign.bin"
    src.write_bytes(payload)
    client = MeowClient(fast_config(max_upload_concurrency=1))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(UploadPounceBuilder("sign.bin", src, 1024).with_url(srv.url("/upload/s"))
                                       .build(), rec.progress, rec.complete)
        await wait_complete(rec, tid)
    finally:
        await closed_client(client)
    records = rec.of(tid)
    assert {r.file_sign for r in records} == {md5(payload)}
    assert records[0].status is TransferStatus.PENDING and records[0].total_size == len(payload)
    assert records[1].status is TransferStatus.TRANSMISSION
    assert records[-1].status is TransferStatus.COMPLETE and records[-1].transferred_bytes == len(payload)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_same_file_to_other_url_and_name_is_duplicate(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of upload_sign_and_duplicate_test (duplicate part): the same content to a different URL and name
    → Failed(DuplicateTaskError) for the second task (with its own id); the first completes."""
    payload = bytes(range(256)) * 256
    src = tmp_path / "same.bin"
    src.write_bytes(payload)
    srv.upload_rate_limit = 256 * 1024
    client = MeowClient(fast_config(max_upload_concurrency=2))
    rec = Recorder()
    try:
        t1 = await client.try_enqueue(UploadPounceBuilder("a.bin", src, 4096).with_url(srv.url("/upload/a"))
                                      .build(), rec.progress, rec.complete)
        await rec.wait_status(t1, TransferStatus.PENDING)
        t2 = await client.try_enqueue(UploadPounceBuilder("b.bin", src, 4096).with_url(srv.url("/upload/b"))
                                      .build(), rec.progress, rec.complete)
        dup = await rec.wait_terminal(t2)
        assert dup.status is TransferStatus.FAILED
        assert dup.error is not None and dup.error.code == InnerErrorCode.DUPLICATE_TASK
        assert dup.file_sign == md5(payload)
        assert rec.statuses(t2) == [TransferStatus.FAILED]
        srv.upload_rate_limit = None
        await wait_complete(rec, t1)
        assert [t for t, _ in rec.completes] == [t1]
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ custom_http_client_upload


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_injected_http_client_is_used_for_upload_requests(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of custom_http_client_upload_test: a client-level injected httpx.AsyncClient (with a default header)
    carries every upload request; the server sees the header; the upload completes."""
    payload = b"custom-client-upload" * 512
    src = tmp_path / "c.bin"
    src.write_bytes(payload)
    injected = httpx.AsyncClient(headers={"x-custom-client": "rusty-cat-test"}, timeout=10)
    client = MeowClient(fast_config(max_upload_concurrency=1, http_client=injected))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(UploadPounceBuilder("c.bin", src, 2048).with_url(srv.url("/upload/c"))
                                       .build(), rec.progress, rec.complete)
        await wait_complete(rec, tid)
    finally:
        await closed_client(client)
    assert srv.requests
    assert all(r.headers.get("x-custom-client") == "rusty-cat-test" for r in srv.requests)
    assert srv.uploads[md5(payload)].data == payload
    assert not injected.is_closed, "the engine never closes a client it was given"
    await close_injected(injected)


# ------------------------------------------------------------------------------ complete_callback


class PayloadUpload(DefaultStyleUpload):
    """The default wire format, but completion is reported by ``complete_upload`` (fileId answers ignored)."""

    def __init__(self) -> None:
        super().__init__()
        self.complete_calls = 0

    async def upload_chunk(self, ctx: UploadChunkCtx) -> UploadResumeInfo:
        info = await super().upload_chunk(ctx)
        return UploadResumeInfo(next_byte=info.next_byte)

    async def complete_upload(self, client: httpx.AsyncClient, task: TransferTask) -> str | None:
        self.complete_calls += 1
        return f"payload-for-{task.file_name}"


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_complete_upload_payload_reaches_complete_callback_once(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of complete_callback_test: a custom protocol's complete_upload payload reaches complete_cb exactly
    once, with the right TaskId."""
    src = tmp_path / "cb.bin"
    src.write_bytes(bytes(range(256)) * 20)
    proto = PayloadUpload()
    client = MeowClient(fast_config(max_upload_concurrency=1))
    rec = Recorder()
    try:
        task = (UploadPounceBuilder("cb.bin", src, 1024).with_url(srv.url("/upload/cb"))
                .with_breakpoint_upload(proto).build())
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        await wait_complete(rec, tid)
    finally:
        await closed_client(client)
    assert rec.completes == [(tid, "payload-for-cb.bin")]
    assert proto.complete_calls == 1


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_chunk_file_id_is_the_default_payload(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of complete_callback_test (default protocol): the final chunk's ``fileId`` is the payload."""
    payload = bytes(range(256)) * 20
    src = tmp_path / "cb.bin"
    src.write_bytes(payload)
    client = MeowClient(fast_config(max_upload_concurrency=1))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(UploadPounceBuilder("cb.bin", src, 1024).with_url(srv.url("/upload/cb"))
                                       .build(), rec.progress, rec.complete)
        await wait_complete(rec, tid)
    finally:
        await closed_client(client)
    assert rec.completes == [(tid, file_id(payload))]


# ------------------------------------------------------------------------------ transfer_task_bridge


class InspectUpload:
    """A hand-written upload protocol (own multipart requests, as the seed's UploadRequest::from_task bridge)
    that records the TransferTask views it is given."""

    parallel_parts = False

    def __init__(self) -> None:
        self.views: list[TransferTask] = []

    async def _send(self, client: httpx.AsyncClient, task: TransferTask, body: MultipartBody) -> UploadResumeInfo:
        headers = [*task.headers, ("Content-Type", body.content_type), ("Content-Length", str(body.length))]
        resp = await client.request(task.method, task.url, headers=headers, content=body)
        resp.raise_for_status()
        return parse_resume_info(resp.content)

    async def prepare(self, ctx: UploadPrepareCtx) -> UploadResumeInfo:
        self.views.append(ctx.task)
        fields = [("fileMd5", ctx.task.file_sign), ("fileName", ctx.task.file_name),
                  ("totalSize", str(ctx.task.total_size))]
        return await self._send(ctx.client, ctx.task, MultipartBody(fields))

    async def upload_chunk(self, ctx: UploadChunkCtx) -> UploadResumeInfo:
        self.views.append(ctx.task)
        fields = [("fileMd5", ctx.task.file_sign), ("offset", str(ctx.offset)), ("partSize", str(len(ctx.chunk))),
                  ("totalSize", str(ctx.task.total_size))]
        return await self._send(ctx.client, ctx.task, MultipartBody(fields, ctx.chunk))

    async def complete_upload(self, client: httpx.AsyncClient, task: TransferTask) -> str | None:
        return None

    async def abort_upload(self, client: httpx.AsyncClient, task: TransferTask) -> None:
        return None


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_custom_upload_protocol_sees_transfer_task(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of transfer_task_bridge_test::custom_upload_breakpoint_exercises_transfer_task_getters."""
    payload = b"custom-upload-transfer-task" * 100
    src = tmp_path / "bridge.bin"
    src.write_bytes(payload)
    proto = InspectUpload()
    client = MeowClient(fast_config(max_upload_concurrency=1))
    rec = Recorder()
    try:
        task = (UploadPounceBuilder("bridge.bin", src, 1024).with_url(srv.url("/upload/bridge.bin"))
                .with_method("POST").with_headers({"x-upload-case": "yes"}).with_breakpoint_upload(proto).build())
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        await wait_complete(rec, tid)
    finally:
        await closed_client(client)
    assert len(proto.views) >= 2
    for view in proto.views:
        assert view.direction is Direction.UPLOAD
        assert view.total_size == len(payload)
        assert view.chunk_size == 1024
        assert view.file_name == "bridge.bin"
        assert view.file_path == str(src)
        assert view.url == srv.url("/upload/bridge.bin")
        assert view.method == "POST"
        assert ("x-upload-case", "yes") in view.headers
        assert view.file_sign == md5(payload)
    assert srv.uploads[md5(payload)].data == payload
    assert all(r.headers.get("x-upload-case") == "yes" for r in srv.requests)


class InspectDownload(StandardRangeDownload):
    def __init__(self) -> None:
        self.head_calls = 0
        self.views: list[TransferTask] = []

    def merge_head_headers(self, ctx: DownloadHeadCtx) -> None:
        self.head_calls += 1
        ctx.headers["x-download-case"] = "head-merged"

    def merge_range_get_headers(self, ctx: DownloadRangeGetCtx) -> None:
        self.views.append(ctx.task)
        super().merge_range_get_headers(ctx)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_custom_download_protocol_hooks_and_transfer_task(srv: TestHttpServer, tmp_path: Path) -> None:
    """Port of transfer_task_bridge_test::custom_download_breakpoint_exercises_transfer_task_getters.

    New: the download view carries the probed total (the seed's TransferTask said 0 for downloads).
    """
    payload = b"custom-download-transfer-task" * 1024
    srv.add_file("/download/bridge.bin", payload)
    dest = tmp_path / "bridge.bin"
    proto = InspectDownload()
    client = MeowClient(fast_config(max_download_concurrency=1))
    rec = Recorder()
    try:
        task = (DownloadPounceBuilder("bridge.bin", dest, 1024, srv.url("/download/bridge.bin"))
                .with_breakpoint_download(proto).build())
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        await wait_complete(rec, tid)
    finally:
        await closed_client(client)
    assert proto.head_calls >= 1
    assert proto.views
    for view in proto.views:
        assert view.direction is Direction.DOWNLOAD
        assert view.method == "GET"
        assert view.chunk_size == 1024
        assert view.file_name == "bridge.bin"
        assert view.file_path == str(dest)
        assert view.url == srv.url("/download/bridge.bin")
        assert view.total_size == len(payload)
    heads = [r for r in srv.requests if r.method == "HEAD"]
    assert heads and all(r.headers.get("x-download-case") == "head-merged" for r in heads)
    assert dest.read_bytes() == payload
