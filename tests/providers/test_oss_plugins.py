"""Aliyun OSS plugins through the real engine (MeowClient + builders) against the fake OSS server, which verifies
every signature: multipart upload (parallel parts, CRC-64 checked, resume after a restart, cancel = abort, a lost
Complete answer verified by HEAD, clock skew), range download (If-Match, standard range behaviour, a changed object,
ignored ranges), presigned upload and download with expiring URLs, and a scan for leaked secrets."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.engine.api import (
    DownloadPounceBuilder,
    FileTransferRecord,
    InnerErrorCode,
    Log,
    TransferStatus,
    UploadPounceBuilder,
    set_debug_log_listener,
)
from app.providers.aliyun_oss import (
    AliOssDirectDownload,
    AliOssDirectUpload,
    AliOssPresignedDownload,
    AliOssPresignedUpload,
    ClockOffset,
    OssCredentials,
    build_object_url,
    file_crc64,
    oss_part_size,
)
from app.providers.aliyun_oss.crc64 import crc64
from app.providers.aliyun_oss.plugins import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, part_count
from app.providers.presigned import PresignedRequest
from tests.support.engine_helpers import KIB, Recorder, blob, meow
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer
from tests.support.http_server import Fault

pytestmark = pytest.mark.timeout(30)

PART = 128 * KIB
BUCKET = DEFAULT_BUCKET
KEY = "dir/object name+1.bin"
S = TransferStatus
DATA = blob(12 * PART + 5000, 7)  # 13 parts, the last one short
N_PARTS = part_count(len(DATA), PART)
METHODS = {"initiate": "POST", "upload_part": "PUT", "complete": "POST", "abort": "DELETE", "head": "HEAD",
           "get": "GET"}


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "up.bin"
    path.write_bytes(DATA)
    return path


def direct_upload(srv: FakeOssServer, session_dir: Path | None = None, **kw: object) -> AliOssDirectUpload:
    kw.setdefault("clock", ClockOffset())
    return AliOssDirectUpload(srv.credentials, srv.region, bucket=BUCKET, key=KEY, endpoint=srv.endpoint,
                              session_dir=session_dir, **kw)  # type: ignore[arg-type]


def direct_download(srv: FakeOssServer, **kw: object) -> AliOssDirectDownload:
    kw.setdefault("clock", ClockOffset())
    return AliOssDirectDownload(srv.credentials, srv.region, bucket=BUCKET, key=KEY, endpoint=srv.endpoint,
                                **kw)  # type: ignore[arg-type]


class Presigner:
    """What an application backend does: presign each operation with its own credentials, on request.

    ``expired_first`` lists (op, part) keys whose first URL is already expired when handed out.
    """

    def __init__(self, srv: FakeOssServer, *, expired_first: tuple[tuple[str, int | None], ...] = (),
                 get_headers: dict[str, str] | None = None) -> None:
        self.srv = srv
        self.calls: list[tuple[str, int | None, str | None]] = []
        self.expired_first = set(expired_first)
        self.get_headers = get_headers or {}

    def __call__(self, op: str, part_number: int | None, *, upload_id: str | None = None) -> PresignedRequest:
        self.calls.append((op, part_number, upload_id))
        query: dict[str, str | int | None] = {}
        if op == "initiate":
            query = {"uploads": None}
        elif op == "upload_part":
            assert upload_id is not None and part_number is not None
            query = {"partNumber": part_number, "uploadId": upload_id}
        elif op in ("complete", "abort"):
            assert upload_id is not None
            query = {"uploadId": upload_id}
        url = build_object_url(self.srv.endpoint, BUCKET, KEY, query=query)
        now, expires = None, timedelta(minutes=5)
        if (op, part_number) in self.expired_first:
            self.expired_first.discard((op, part_number))
            now, expires = datetime.now(UTC) - timedelta(hours=1), timedelta(seconds=60)
        signed = self.srv.signer().presign_request(METHODS[op], url, bucket=BUCKET, key=KEY, expires=expires, now=now,
                                                   headers=self.get_headers if op == "get" else None)
        return PresignedRequest(signed.url, signed.headers)

    def count(self, op: str, part: int | None = None) -> int:
        return sum(1 for o, p, _ in self.calls if o == op and (part is None or p == part))


def upload_task(plugin: AliOssDirectUpload | AliOssPresignedUpload, src: Path, url: str, *, conc: int = 4,
                rate: int | None = None):
    builder = (UploadPounceBuilder("up.bin", src, PART).with_url(url).with_breakpoint_upload(plugin)
               .with_max_chunk_concurrency(conc))
    if rate is not None:
        builder = builder.with_rate_limit(rate)
    return builder.build()


async def run(task: object, rec: Recorder | None = None, **overrides: object) -> tuple[FileTransferRecord, Recorder]:
    rec = rec or Recorder()
    async with meow(**overrides) as client:
        tid = await client.try_enqueue(task, rec.progress, rec.complete)  # type: ignore[arg-type]
        final = await rec.wait_terminal(tid, timeout=25)
    return final, rec


def stored(srv: FakeOssServer) -> bytes | None:
    obj = srv.get_object(BUCKET, KEY)
    return None if obj is None else obj.data


def session_files(directory: Path, *, completed: bool = False) -> list[Path]:
    """The open (resumable) upload sessions; with ``completed``, the records that finished uploads leave."""
    paths = sorted(directory.glob("*.upload.json")) if directory.exists() else []
    return [p for p in paths if json.loads(p.read_text())["data"].get("completed", False) is completed]


def part_numbers(srv: FakeOssServer, since: int = 0) -> list[int]:
    return [c.part_number for c in srv.calls[since:] if c.op == "UploadPart" and c.status == 200]  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------------------------
# part size
# ----------------------------------------------------------------------------------------------------------------
def test_part_size_respects_the_minimum_and_grows_to_fit_ten_thousand_parts() -> None:
    assert oss_part_size(10 * 1024 * KIB, 1024) == MIN_PART_SIZE  # never a non-last part under 100 KiB
    assert oss_part_size(50, 1024) == MIN_PART_SIZE  # a one-part file: the size is only an upper bound
    assert oss_part_size(100 << 20, 8 << 20) == 8 << 20
    total = 200 << 30  # 200 GiB in 8 MiB parts would be 25,600 parts
    size = oss_part_size(total, 8 << 20)
    assert size % (8 << 20) == 0 and part_count(total, size) <= MAX_PARTS
    assert part_count(total, size - (8 << 20)) > MAX_PARTS  # grown by whole steps, no more than needed
    assert oss_part_size(60 << 40, 8 << 20) == MAX_PART_SIZE  # capped; prepare then refuses the file
    plugin = AliOssDirectUpload(OssCredentials("a", "b"), "cn-hangzhou", bucket="b", key="k",
                                endpoint="http://127.0.0.1:1", part_size=256 * KIB)
    assert plugin.part_size(10 << 20, 1 << 20) == 256 * KIB  # the plugin's own part size wins over the builder's
    with pytest.raises(ValueError):
        AliOssDirectUpload(OssCredentials("a", "b"), "cn-hangzhou", bucket="b", key="k", endpoint="e", part_size=0)


# ----------------------------------------------------------------------------------------------------------------
# direct upload
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_direct_upload_sends_parallel_parts_and_checks_the_crc(srv: FakeOssServer, src: Path,
                                                                     tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    plugin = direct_upload(srv, sessions)
    final, rec = await run(upload_task(plugin, src, plugin.object_url))
    assert final.status is S.COMPLETE, final.error
    obj = srv.get_object(BUCKET, KEY)
    assert obj is not None and obj.data == DATA and obj.crc64 == crc64(DATA)
    assert rec.completes[0][1] == obj.etag  # the payload is the object's ETag
    assert srv.count_op("InitiateMultipartUpload") == 1 and srv.count_op("CompleteMultipartUpload") == 1
    assert sorted(part_numbers(srv)) == list(range(1, N_PARTS + 1))
    puts = [c for c in srv.calls if c.op == "UploadPart"]
    assert all("content-md5" in c.headers and "content-type" not in c.headers for c in puts)
    assert session_files(sessions) == []  # done: nothing left to resume,
    assert len(session_files(sessions, completed=True)) == 1  # only the record of the completion
    assert srv.multipart_uploads == {}


@pytest.mark.asyncio
async def test_direct_upload_of_one_byte_is_one_part(srv: FakeOssServer, tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.write_bytes(b"x")
    plugin = direct_upload(srv)
    final, _ = await run(upload_task(plugin, one, plugin.object_url))
    assert final.status is S.COMPLETE, final.error
    assert stored(srv) == b"x" and part_numbers(srv) == [1]


@pytest.mark.asyncio
async def test_a_complete_whose_crc_differs_from_the_parts_fails(srv: FakeOssServer, src: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from app.providers.aliyun_oss import plugins

    real = plugins._Upload.combined_crc
    monkeypatch.setattr(plugins._Upload, "combined_crc", lambda self: (real(self) or 0) ^ 1)
    plugin = direct_upload(srv)
    final, _ = await run(upload_task(plugin, src, plugin.object_url))
    assert final.status is S.FAILED and final.error is not None
    assert final.error.code == InnerErrorCode.CHECKSUM_MISMATCH and "CRC-64" in final.error.msg


@pytest.mark.asyncio
async def test_a_part_whose_crc_the_service_contradicts_is_sent_again(srv: FakeOssServer, src: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from app.providers.aliyun_oss import plugins

    flipped: list[int] = []

    class OnceDamaged(plugins._SentCrc64):
        """The CRC-64 of what the first part sent disagrees once (as if the bytes were damaged on the way)."""

        def start(self) -> None:
            super().start()
            if not flipped:
                flipped.append(1)
                self.crc = plugins.Crc64(value=1)

    monkeypatch.setattr(plugins, "_SentCrc64", OnceDamaged)
    plugin = direct_upload(srv)
    final, _ = await run(upload_task(plugin, src, plugin.object_url, conc=1))
    assert final.status is S.COMPLETE, final.error
    assert stored(srv) == DATA and srv.count_op("UploadPart") == N_PARTS + 1


@pytest.mark.asyncio
async def test_resume_after_a_restart_lists_parts_and_uploads_only_the_missing_ones(srv: FakeOssServer, src: Path,
                                                                                    tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    srv.inject_error("UploadPart", 403, "AccessDenied", message="no", part_number=7)  # final: the first run fails
    final, _ = await run(upload_task(direct_upload(srv, sessions), src, srv.object_url(BUCKET, KEY), conc=2))
    assert final.status is S.FAILED
    assert len(session_files(sessions)) == 1
    (upload,) = srv.multipart_uploads.values()
    held = set(upload.parts)
    assert held and len(held) < N_PARTS
    mark = len(srv.calls)

    # "Process restart": a new client and a new plugin instance that only share the session directory.
    final, _ = await run(upload_task(direct_upload(srv, sessions), src, srv.object_url(BUCKET, KEY), conc=2))
    assert final.status is S.COMPLETE, final.error
    assert stored(srv) == DATA
    again = part_numbers(srv, mark)
    assert sorted(again) == sorted(set(range(1, N_PARTS + 1)) - held)  # nothing that was already there
    ops = [c.op for c in srv.calls[mark:]]
    assert "InitiateMultipartUpload" not in ops and ops.count("ListParts") == 1
    assert session_files(sessions) == []


@pytest.mark.asyncio
async def test_resume_after_close_mid_upload_pages_through_list_parts(src: Path, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    with FakeOssServer(list_parts_page_limit=2) as srv:
        rec = Recorder()
        async with meow() as client:
            task = upload_task(direct_upload(srv, sessions), src, srv.object_url(BUCKET, KEY), conc=1,
                               rate=4 * PART)
            await client.try_enqueue(task, rec.progress)
            await rec.wait_for(lambda: len(part_numbers(srv)) >= 3)
        assert S.PAUSED in rec.statuses()  # close() pauses: the upload id and its parts are kept
        (upload,) = srv.multipart_uploads.values()
        held = set(upload.parts)
        mark = len(srv.calls)
        final, _ = await run(upload_task(direct_upload(srv, sessions), src, srv.object_url(BUCKET, KEY)))
        assert final.status is S.COMPLETE, final.error
        assert stored(srv) == DATA
        assert sorted(part_numbers(srv, mark)) == sorted(set(range(1, N_PARTS + 1)) - held)
        assert srv.count_op("ListParts") == max(1, -(-len(held) // 2))  # paged, two parts a page
        assert srv.errors == []


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["direct", "presigned"])
async def test_cancel_aborts_the_multipart_upload_and_removes_the_session(srv: FakeOssServer, src: Path,
                                                                          tmp_path: Path, kind: str) -> None:
    sessions = tmp_path / "sessions"
    plugin: AliOssDirectUpload | AliOssPresignedUpload = (
        direct_upload(srv, sessions) if kind == "direct"
        else AliOssPresignedUpload(Presigner(srv), session_dir=sessions))
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(upload_task(plugin, src, srv.object_url(BUCKET, KEY), conc=1, rate=4 * PART),
                                       rec.progress)
        await rec.wait_for(lambda: len(part_numbers(srv)) >= 2)
        assert len(session_files(sessions)) == 1
        await client.cancel(tid)
        await rec.wait_for(lambda: srv.count_op("AbortMultipartUpload") >= 1)
        await rec.wait_for(lambda: not session_files(sessions))
    assert S.CANCELED in rec.statuses(tid)
    assert srv.multipart_uploads == {} and stored(srv) is None
    assert srv.count_op("AbortMultipartUpload", status=204) == 1


@pytest.mark.asyncio
async def test_a_lost_complete_answer_is_verified_by_head(srv: FakeOssServer, src: Path) -> None:
    srv.lose_response("CompleteMultipartUpload")
    plugin = direct_upload(srv)
    final, rec = await run(upload_task(plugin, src, plugin.object_url))
    assert final.status is S.COMPLETE, final.error
    obj = srv.get_object(BUCKET, KEY)
    assert obj is not None and obj.data == DATA
    assert rec.completes[0][1] == obj.etag
    assert srv.count_op("CompleteMultipartUpload") == 2
    assert srv.count_op("CompleteMultipartUpload", status=404) == 1 and srv.count_op("HeadObject") == 1


@pytest.mark.asyncio
async def test_no_such_upload_at_complete_without_the_object_fails_clearly(srv: FakeOssServer, src: Path) -> None:
    srv.inject_error("CompleteMultipartUpload", 404, "NoSuchUpload", message="The specified upload does not exist.")
    plugin = direct_upload(srv)
    final, _ = await run(upload_task(plugin, src, plugin.object_url))
    assert final.status is S.FAILED and final.error is not None
    assert "NoSuchUpload" in final.error.msg and "does not exist" in final.error.msg
    assert srv.count_op("HeadObject") == 1


@pytest.mark.asyncio
async def test_no_such_upload_with_a_different_object_there_is_refused(srv: FakeOssServer, src: Path) -> None:
    srv.put_object(BUCKET, KEY, DATA[:-1] + b"?")  # same size, other bytes: only the CRC tells them apart
    srv.inject_error("CompleteMultipartUpload", 404, "NoSuchUpload", message="The specified upload does not exist.")
    plugin = direct_upload(srv)
    final, _ = await run(upload_task(plugin, src, plugin.object_url))
    assert final.status is S.FAILED and final.error is not None
    assert final.error.code == InnerErrorCode.CHECKSUM_MISMATCH and "CRC-64" in final.error.msg


@pytest.mark.asyncio
async def test_a_200_complete_carrying_an_error_document_is_retried(srv: FakeOssServer, src: Path) -> None:
    body = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code>"
            "<Message>We encountered an internal error. Please try again.</Message></Error>")
    srv.add_fault(Fault("status", method="POST", status=200, body=body, skip=1))  # skip Initiate
    plugin = direct_upload(srv)
    final, _ = await run(upload_task(plugin, src, plugin.object_url))
    assert final.status is S.COMPLETE, final.error
    assert stored(srv) == DATA and srv.count_op("CompleteMultipartUpload") == 2


@pytest.mark.asyncio
async def test_clock_skew_is_learned_from_date_and_requests_are_resigned_once(src: Path, tmp_path: Path) -> None:
    with FakeOssServer(clock_offset=3600) as srv:
        clock = ClockOffset()
        up = direct_upload(srv, clock=clock)
        final, _ = await run(upload_task(up, src, up.object_url))
        assert final.status is S.COMPLETE, final.error
        assert stored(srv) == DATA
        assert abs(clock.seconds - 3600) < 5
        assert sum(1 for c in srv.calls if c.code == "RequestTimeTooSkewed") == 1  # then every signature is right

        down = direct_download(srv, clock=ClockOffset())  # a client that has not learned it yet
        dest = tmp_path / "down.bin"
        task = DownloadPounceBuilder("down.bin", dest, PART, down.object_url).with_breakpoint_download(down).build()
        final, _ = await run(task)
        assert final.status is S.COMPLETE, final.error
        assert dest.read_bytes() == DATA
        assert srv.errors == []


# ----------------------------------------------------------------------------------------------------------------
# direct download
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_direct_download_uses_signed_ranges_with_if_match(srv: FakeOssServer, tmp_path: Path) -> None:
    obj = srv.put_object(BUCKET, KEY, DATA)
    plugin = direct_download(srv)
    dest = tmp_path / "down.bin"
    task = (DownloadPounceBuilder("down.bin", dest, PART, plugin.object_url).with_breakpoint_download(plugin)
            .with_max_chunk_concurrency(4).build())
    final, _ = await run(task)
    assert final.status is S.COMPLETE, final.error
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(DATA).digest()
    gets = [c for c in srv.calls if c.op == "GetObject"]
    assert len(gets) >= 4 and srv.count_op("HeadObject") == 1
    assert all(c.status == 206 and c.headers.get("x-oss-range-behavior") == "standard"
               and c.headers.get("if-match") == obj.etag and c.auth == "header" for c in gets)
    assert plugin.remote_crc64 == obj.crc64 == file_crc64(dest)


@pytest.mark.asyncio
async def test_an_object_changed_mid_download_restarts_and_ends_with_the_new_bytes(srv: FakeOssServer,
                                                                                   tmp_path: Path) -> None:
    new = blob(len(DATA) + 777, 8)
    srv.put_object(BUCKET, KEY, DATA)

    class Changing(AliOssDirectDownload):
        ranges = 0

        def merge_range_get_headers(self, ctx):  # type: ignore[no-untyped-def]
            Changing.ranges += 1
            if Changing.ranges == 3:
                srv.put_object(BUCKET, KEY, new)  # someone overwrites the object while we read it
            super().merge_range_get_headers(ctx)

    plugin = Changing(srv.credentials, srv.region, bucket=BUCKET, key=KEY, endpoint=srv.endpoint, clock=ClockOffset())
    dest = tmp_path / "down.bin"
    task = (DownloadPounceBuilder("down.bin", dest, PART, plugin.object_url).with_breakpoint_download(plugin)
            .with_max_chunk_concurrency(4).build())  # four segments: the second one's request meets the change
    final, _ = await run(task)
    assert final.status is S.COMPLETE, final.error
    assert dest.read_bytes() == new
    assert srv.count_op("GetObject", status=412) >= 1 and srv.count_op("HeadObject") == 2


@pytest.mark.asyncio
async def test_a_server_ignoring_ranges_never_corrupts_the_file(srv: FakeOssServer, tmp_path: Path) -> None:
    srv.put_object(BUCKET, KEY, DATA)
    srv.add_fault(Fault("ignore_range", times=1))  # a proxy in front drops Range: 200 + the whole object
    plugin = direct_download(srv)
    dest = tmp_path / "down.bin"
    task = DownloadPounceBuilder("down.bin", dest, PART, plugin.object_url).with_breakpoint_download(plugin).build()
    final, _ = await run(task)
    # The engine's single-stream fallback GETs the task URL without the plugin's signature (see the report), so it
    # may fail; what must never happen is a file holding anything but the object.
    if final.status is S.COMPLETE:
        assert dest.read_bytes() == DATA
    else:
        assert final.status is S.FAILED and not dest.exists()


# ----------------------------------------------------------------------------------------------------------------
# presigned
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_presigned_upload_renews_an_expired_part_url_once(srv: FakeOssServer, src: Path) -> None:
    source = Presigner(srv, expired_first=(("upload_part", 3), ("initiate", None)))
    plugin = AliOssPresignedUpload(source)
    final, rec = await run(upload_task(plugin, src, srv.object_url(BUCKET, KEY)))
    assert final.status is S.COMPLETE, final.error
    obj = srv.get_object(BUCKET, KEY)
    assert obj is not None and obj.data == DATA and rec.completes[0][1] == obj.etag
    assert source.count("upload_part", 3) == 2 and source.count("initiate") == 2
    assert source.count("upload_part") == N_PARTS + 1 and source.count("complete") == 1
    (upload_id,) = {u for o, _, u in source.calls if o == "upload_part"}
    assert all(c.auth == "query" for c in srv.calls if c.status < 300)
    assert all(u == upload_id for o, _, u in source.calls if o in ("upload_part", "complete"))
    assert srv.count_op("UploadPart", status=403) == 1
    assert all("content-md5" not in c.headers and "content-type" not in c.headers for c in srv.calls)


@pytest.mark.asyncio
async def test_presigned_upload_fails_clearly_when_the_renewed_url_is_refused_too(srv: FakeOssServer,
                                                                                 src: Path) -> None:
    srv.inject_error("UploadPart", 403, "AccessDenied", message="Request has expired.", times=2)
    source = Presigner(srv)
    final, _ = await run(upload_task(AliOssPresignedUpload(source), src, srv.object_url(BUCKET, KEY), conc=1))
    assert final.status is S.FAILED and final.error is not None
    assert final.error.status == 403 and "AccessDenied" in final.error.msg
    assert source.count("upload_part", 1) == 2  # asked again once, not in a loop


@pytest.mark.asyncio
async def test_presigned_upload_resumes_after_a_restart_from_the_recorded_etags(srv: FakeOssServer, src: Path,
                                                                                tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    srv.inject_error("UploadPart", 400, "InvalidArgument", message="boom", part_number=8)
    final, _ = await run(upload_task(AliOssPresignedUpload(Presigner(srv), session_dir=sessions), src,
                                     srv.object_url(BUCKET, KEY), conc=2))
    assert final.status is S.FAILED
    (session,) = session_files(sessions)
    recorded = {int(n) for n in json.loads(session.read_text())["data"]["parts"]}
    assert recorded and len(recorded) < N_PARTS
    mark = len(srv.calls)

    source = Presigner(srv)  # a new process: a new source instance learns the upload id from the plugin
    final, _ = await run(upload_task(AliOssPresignedUpload(source, session_dir=sessions), src,
                                     srv.object_url(BUCKET, KEY), conc=2))
    assert final.status is S.COMPLETE, final.error
    assert stored(srv) == DATA
    assert sorted(part_numbers(srv, mark)) == sorted(set(range(1, N_PARTS + 1)) - recorded)
    assert source.count("initiate") == 0 and srv.count_op("ListParts") == 0
    assert session_files(sessions) == []


@pytest.mark.asyncio
async def test_presigned_lost_complete_answer_is_verified_with_a_head_url(srv: FakeOssServer, src: Path) -> None:
    srv.lose_response("CompleteMultipartUpload")
    source = Presigner(srv)
    final, _ = await run(upload_task(AliOssPresignedUpload(source), src, srv.object_url(BUCKET, KEY)))
    assert final.status is S.COMPLETE, final.error
    assert stored(srv) == DATA and source.count("head") == 1 and srv.count_op("HeadObject", status=200) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("signed_standard", [False, True])
async def test_presigned_download_probes_with_a_ranged_get_and_renews_an_expired_url(
        srv: FakeOssServer, tmp_path: Path, signed_standard: bool) -> None:
    obj = srv.put_object(BUCKET, KEY, DATA)
    source = Presigner(srv, expired_first=(("get", None),),
                       get_headers={"x-oss-range-behavior": "standard"} if signed_standard else None)
    plugin = AliOssPresignedDownload(source)
    dest = tmp_path / "down.bin"
    task = (DownloadPounceBuilder("down.bin", dest, PART, srv.object_url(BUCKET, KEY))
            .with_breakpoint_download(plugin).with_max_chunk_concurrency(4).build())
    final, _ = await run(task)
    assert final.status is S.COMPLETE, final.error
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(DATA).digest()
    assert srv.count_op("HeadObject") == 0 and source.count("get") == 2
    gets = [c for c in srv.calls if c.op == "GetObject" and c.status == 206]
    assert len(gets) >= 4 and all(c.auth == "query" for c in gets)
    assert all(c.headers.get("if-match") == obj.etag for c in gets if c.headers.get("range") != "bytes=0-0")
    assert all(("x-oss-range-behavior" in c.headers) == signed_standard for c in gets)
    assert plugin.standard_range_signed() == signed_standard


@pytest.mark.asyncio
async def test_presigned_download_survives_a_server_that_ignores_ranges(srv: FakeOssServer, tmp_path: Path) -> None:
    srv.put_object(BUCKET, KEY, DATA)
    source = Presigner(srv)
    display = source("get", None).url  # the presigned GET URL itself is the task URL
    srv.add_fault(Fault("ignore_range", times=2))  # the probe and the first ranged GET get the whole object
    dest = tmp_path / "down.bin"
    task = (DownloadPounceBuilder("down.bin", dest, PART, display)
            .with_breakpoint_download(AliOssPresignedDownload(source)).build())
    final, _ = await run(task)
    assert final.status is S.COMPLETE, final.error
    assert dest.read_bytes() == DATA


# ----------------------------------------------------------------------------------------------------------------
# secrets
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_no_secret_reaches_logs_records_errors_or_session_files(tmp_path: Path) -> None:
    creds = OssCredentials("sts-access-key-id", "sts-access-key-SECRET-0123456789", "STS-TOKEN-abcdefghijklmnop")
    logs: list[Log] = []
    set_debug_log_listener(logs.append)
    sessions = tmp_path / "sessions"
    src = tmp_path / "up.bin"
    src.write_bytes(DATA)
    records: list[FileTransferRecord] = []
    try:
        with FakeOssServer(credentials=[creds], clock_offset=-3600) as srv:
            def direct(**kw: object) -> AliOssDirectUpload:
                return AliOssDirectUpload(creds, srv.region, bucket=BUCKET, key=KEY, endpoint=srv.endpoint,
                                          session_dir=sessions, clock=ClockOffset(), **kw)  # type: ignore[arg-type]

            # A failed upload leaves its session behind (to be resumed): it must be clean too.
            srv.inject_error("UploadPart", 400, "InvalidArgument", message="boom", part_number=4)
            final, rec = await run(upload_task(direct(), src, srv.object_url(BUCKET, KEY), conc=1))
            assert final.status is S.FAILED
            records += rec.records
            files = [p.read_text() for p in session_files(sessions)]
            assert files
            final, rec = await run(upload_task(direct(), src, srv.object_url(BUCKET, KEY)))
            assert final.status is S.COMPLETE, final.error
            records += rec.records

            # A wrong secret: the service's SignatureDoesNotMatch body echoes the canonical request (with the token).
            wrong = OssCredentials(creds.access_key_id, "not-the-secret", creds.security_token)
            bad = AliOssDirectUpload(wrong, srv.region, bucket=BUCKET, key="other", endpoint=srv.endpoint,
                                     clock=ClockOffset())
            final, rec = await run(upload_task(bad, src, bad.object_url))
            assert final.status is S.FAILED and final.error is not None and "SignatureDoesNotMatch" in final.error.msg
            records += rec.records

            down = AliOssDirectDownload(creds, srv.region, bucket=BUCKET, key=KEY, endpoint=srv.endpoint,
                                        clock=ClockOffset())
            task = (DownloadPounceBuilder("d", tmp_path / "d.bin", PART, down.object_url)
                    .with_breakpoint_download(down).build())
            final, rec = await run(task)
            assert final.status is S.COMPLETE, final.error
            records += rec.records
            files += [p.read_text() for p in tmp_path.glob("*.ckpt")]

            def presign(op: str, part: int | None, *, upload_id: str | None = None) -> PresignedRequest:
                url = build_object_url(srv.endpoint, BUCKET, KEY, query={"uploads": None} if op == "initiate" else
                                       {"partNumber": part, "uploadId": upload_id} if op == "upload_part" else
                                       {"uploadId": upload_id} if upload_id else {})
                signer = srv.signer(creds, clock=ClockOffset(srv.clock_offset))  # the issuer's clock is right
                signed = signer.presign_request(METHODS[op], url, bucket=BUCKET, key=KEY, expires=timedelta(seconds=60),
                                                now=srv.server_now() - timedelta(hours=2)
                                                if part == 2 and not seen else None)
                if part == 2:
                    seen.append(1)
                return PresignedRequest(signed.url, signed.headers)

            seen: list[int] = []
            final, rec = await run(upload_task(AliOssPresignedUpload(presign, session_dir=sessions), src,
                                               srv.object_url(BUCKET, KEY)))
            assert final.status is S.COMPLETE, final.error
            records += rec.records
            task = (DownloadPounceBuilder("p", tmp_path / "p.bin", PART, presign("get", None).url)
                    .with_breakpoint_download(AliOssPresignedDownload(presign)).build())
            final, rec = await run(task)
            assert final.status is S.COMPLETE, final.error
            records += rec.records

            signatures = {c.params["x-oss-signature"] for c in srv.calls if "x-oss-signature" in c.params}
            signatures |= {c.headers["authorization"].rsplit("Signature=", 1)[1] for c in srv.calls
                           if "authorization" in c.headers}
            assert len(signatures) > 10
            assert srv.errors == []
    finally:
        set_debug_log_listener(None)

    texts = [str(log) for log in logs] + [repr(r) for r in records] + files
    texts += [r.error.msg for r in records if r.error is not None]
    blob = "\n".join(texts)
    assert "SignatureDoesNotMatch" in blob  # the failure is explained, without the body that came with it
    for secret in [creds.access_key_secret, creds.security_token, "not-the-secret", *signatures]:
        assert secret not in blob, f"secret leaked: {secret[:6]}…"


# ----------------------------------------------------------------------------------------------------------------
# more resume and limits
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_stored_upload_the_service_forgot_is_replaced_by_a_new_one(srv: FakeOssServer, src: Path,
                                                                           tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    srv.inject_error("UploadPart", 403, "AccessDenied", message="no", part_number=3)
    final, _ = await run(upload_task(direct_upload(srv, sessions), src, srv.object_url(BUCKET, KEY), conc=1))
    assert final.status is S.FAILED and len(session_files(sessions)) == 1
    srv.multipart_uploads.clear()  # expired by a lifecycle rule, or aborted by someone else
    final, _ = await run(upload_task(direct_upload(srv, sessions), src, srv.object_url(BUCKET, KEY)))
    assert final.status is S.COMPLETE, final.error
    assert stored(srv) == DATA
    assert srv.count_op("ListParts", status=404) == 1 and srv.count_op("InitiateMultipartUpload") == 2


@pytest.mark.asyncio
async def test_a_presigned_session_whose_upload_vanished_fails_once_then_starts_over(srv: FakeOssServer, src: Path,
                                                                                   tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    srv.inject_error("UploadPart", 400, "InvalidArgument", message="boom", part_number=3)
    final, _ = await run(upload_task(AliOssPresignedUpload(Presigner(srv), session_dir=sessions), src,
                                     srv.object_url(BUCKET, KEY), conc=1))
    assert final.status is S.FAILED
    srv.multipart_uploads.clear()
    final, _ = await run(upload_task(AliOssPresignedUpload(Presigner(srv), session_dir=sessions), src,
                                     srv.object_url(BUCKET, KEY), conc=1))
    assert final.status is S.FAILED and final.error is not None and "NoSuchUpload" in final.error.msg
    assert session_files(sessions) == []  # forgotten, so the next attempt doesn't trip over it again
    final, _ = await run(upload_task(AliOssPresignedUpload(Presigner(srv), session_dir=sessions), src,
                                     srv.object_url(BUCKET, KEY)))
    assert final.status is S.COMPLETE, final.error
    assert stored(srv) == DATA


@pytest.mark.asyncio
async def test_max_parallel_caps_the_parts_in_flight(srv: FakeOssServer, src: Path) -> None:
    peak = 0
    now = 0

    class Counting(AliOssDirectUpload):
        async def send(self, client, request):  # type: ignore[no-untyped-def]
            nonlocal peak, now
            is_part = request.what.startswith("OSS UploadPart")
            now += is_part
            peak = max(peak, now)
            try:
                await asyncio.sleep(0.005)
                return await super().send(client, request)
            finally:
                now -= is_part

    plugin = Counting(srv.credentials, srv.region, bucket=BUCKET, key=KEY, endpoint=srv.endpoint, max_parallel=2,
                      clock=ClockOffset())
    final, _ = await run(upload_task(plugin, src, plugin.object_url, conc=6))
    assert final.status is S.COMPLETE, final.error
    assert peak == 2 and stored(srv) == DATA


@pytest.mark.asyncio
async def test_download_errors_do_not_echo_the_canonical_request(tmp_path: Path) -> None:
    """The engine words download errors itself, from the error body (scrubbed of what our request carried): OSS's
    SignatureDoesNotMatch body quotes the canonical request, STS token included."""
    creds = OssCredentials("sts-access-key-id", "sts-access-key-SECRET-0123456789", "STS-TOKEN-abcdefghijklmnop")
    with FakeOssServer(credentials=[creds]) as srv:
        srv.put_object(BUCKET, KEY, DATA)
        wrong = OssCredentials(creds.access_key_id, "not-the-secret", creds.security_token)
        down = AliOssDirectDownload(wrong, srv.region, bucket=BUCKET, key=KEY, endpoint=srv.endpoint,
                                    clock=ClockOffset())
        task = (DownloadPounceBuilder("d", tmp_path / "d.bin", PART, down.object_url)
                .with_breakpoint_download(down).build())
        final, rec = await run(task)
    assert final.status is S.FAILED and final.error is not None and final.error.status == 403
    assert not any(creds.security_token in repr(r) or creds.access_key_secret in repr(r) for r in rec.records)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["direct", "presigned"])
async def test_a_restart_after_a_complete_whose_answer_was_lost_finds_the_object_done(
        srv: FakeOssServer, src: Path, tmp_path: Path, kind: str) -> None:
    sessions = tmp_path / "sessions"

    def plugin() -> AliOssDirectUpload | AliOssPresignedUpload:
        if kind == "direct":
            return direct_upload(srv, sessions)
        return AliOssPresignedUpload(Presigner(srv), session_dir=sessions)

    srv.lose_response("CompleteMultipartUpload")
    task = upload_task(plugin(), src, srv.object_url(BUCKET, KEY))
    final, _ = await run(UploadPounceBuilder("up.bin", src, PART).with_url(task.url)
                         .with_breakpoint_upload(task.breakpoint_upload).with_max_chunk_retries(0).build())
    assert final.status is S.FAILED  # the process gave up (or died) not knowing whether Complete happened
    assert stored(srv) == DATA and len(session_files(sessions)) == 1
    mark = len(srv.calls)
    final, rec = await run(upload_task(plugin(), src, srv.object_url(BUCKET, KEY)))
    assert final.status is S.COMPLETE, final.error
    obj = srv.get_object(BUCKET, KEY)
    assert obj is not None and rec.completes[0][1] == obj.etag
    ops = [c.op for c in srv.calls[mark:]]
    assert ops[0] == "HeadObject" and "UploadPart" not in ops and "InitiateMultipartUpload" not in ops
    assert session_files(sessions) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["direct", "presigned"])
async def test_an_upload_run_again_after_it_completed_is_recognised_by_head(
        srv: FakeOssServer, src: Path, tmp_path: Path, kind: str) -> None:
    """A process killed after the Complete but before its caller recorded the completion (the manager's history)
    runs the upload again on restart. The record the completed upload left says what the object must be: HEAD
    finds it (size and CRC-64), and nothing is uploaded again. If the object has been replaced since, the record
    is dropped and the file is uploaded afresh."""
    sessions = tmp_path / "sessions"

    def plugin() -> AliOssDirectUpload | AliOssPresignedUpload:
        if kind == "direct":
            return direct_upload(srv, sessions)
        return AliOssPresignedUpload(Presigner(srv), session_dir=sessions)

    final, _ = await run(upload_task(plugin(), src, srv.object_url(BUCKET, KEY)))
    assert final.status is S.COMPLETE, final.error
    assert session_files(sessions) == [] and len(session_files(sessions, completed=True)) == 1
    mark = len(srv.calls)
    final, rec = await run(upload_task(plugin(), src, srv.object_url(BUCKET, KEY)))
    assert final.status is S.COMPLETE, final.error
    obj = srv.get_object(BUCKET, KEY)
    assert obj is not None and rec.completes[0][1] == obj.etag
    assert [c.op for c in srv.calls[mark:]] == ["HeadObject"]

    srv.put_object(BUCKET, KEY, b"someone else's object")
    mark = len(srv.calls)
    final, _ = await run(upload_task(plugin(), src, srv.object_url(BUCKET, KEY)))
    assert final.status is S.COMPLETE, final.error
    assert stored(srv) == DATA
    ops = [c.op for c in srv.calls[mark:]]
    assert ops[:2] == ["HeadObject", "InitiateMultipartUpload"] and ops.count("UploadPart") == N_PARTS
    assert session_files(sessions) == [] and len(session_files(sessions, completed=True)) == 1


def test_old_completion_records_are_pruned_but_never_an_open_session(tmp_path: Path) -> None:
    from app.providers.session_store import UploadSessionStore

    store = UploadSessionStore(tmp_path)
    store.save("done-old", {"completed": True})
    store.save("done-new", {"completed": True})
    store.save("open-old", {"completed": False})
    old = time.time() - 31 * 24 * 3600
    for key in ("done-old", "open-old"):
        os.utime(tmp_path / f"{key}.upload.json", (old, old))
    assert store.prune(30 * 24 * 3600, lambda data: data.get("completed") is True) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done-new.upload.json", "open-old.upload.json"]


@pytest.mark.asyncio
async def test_pause_and_resume_in_one_process_keeps_the_upload(srv: FakeOssServer, src: Path) -> None:
    plugin = direct_upload(srv)
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(upload_task(plugin, src, plugin.object_url, conc=1, rate=4 * PART),
                                       rec.progress)
        await rec.wait_for(lambda: len(part_numbers(srv)) >= 2)
        await client.pause(tid)
        await client.set_task_rate_limit(tid, None)
        await client.resume(tid)
        final = await rec.wait_terminal(tid, timeout=25)
    assert final.status is S.COMPLETE, final.error
    assert stored(srv) == DATA and srv.count_op("InitiateMultipartUpload") == 1
    assert srv.count_op("ListParts") == 1


@pytest.mark.asyncio
async def test_direct_download_verifies_the_whole_file_crc64(srv: FakeOssServer, tmp_path: Path) -> None:
    """The object's x-oss-hash-crc64ecma is checked before the file is moved into place: bytes that disagree
    fail with CHECKSUM_MISMATCH, no file appears, and a correct object then downloads fine."""
    import dataclasses

    obj = srv.put_object(BUCKET, KEY, DATA)
    srv.objects[(BUCKET, KEY)] = dataclasses.replace(obj, crc64=obj.crc64 ^ 1)  # the service's CRC disagrees
    dest = tmp_path / "down.bin"
    plugin = direct_download(srv)
    final, _ = await run(DownloadPounceBuilder("down.bin", dest, PART, plugin.object_url)
                         .with_breakpoint_download(plugin).build())
    assert final.status is TransferStatus.FAILED and final.error is not None
    assert final.error.code == InnerErrorCode.CHECKSUM_MISMATCH and "CRC-64" in final.error.msg
    assert not dest.exists()
    srv.put_object(BUCKET, KEY, DATA)
    plugin = direct_download(srv)
    final, _ = await run(DownloadPounceBuilder("down.bin", dest, PART, plugin.object_url)
                         .with_breakpoint_download(plugin).build())
    assert final.status is TransferStatus.COMPLETE, final.error
    assert dest.read_bytes() == DATA
