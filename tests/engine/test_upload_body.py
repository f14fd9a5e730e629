"""Request bodies: a part streams from the file between the multipart framing (never read whole), the framing is
well formed, and a slow-but-steady link completes whatever the part's size, because timeouts bound a stall, not a
request (tests/support/http_server.py drains uploads at a set rate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.api import MultipartBody, TransferStatus, UploadPounceBuilder
from app.engine.wire import Body, FileRange
from tests.support.engine_helpers import Recorder, blob, meow
from tests.support.http_server import TestHttpServer, parse_multipart

MIB = 1 << 20


@pytest.mark.asyncio
async def test_the_part_is_handed_over_as_the_same_object_and_the_body_is_well_formed() -> None:
    part = blob(3 * MIB + 5, 2)
    fields = [("fileMd5", "0" * 32), ("fileName", "a.bin"), ("offset", "0"), ("partSize", str(len(part)))]
    body = MultipartBody(fields, part)
    pieces = [p async for p in body]
    assert any(p is part for p in pieces)  # no slicing, no bytes() copy on our side
    raw = b"".join(pieces)
    assert len(raw) == body.length
    parsed = parse_multipart(raw, body.content_type)
    assert [p.name for p in parsed] == ["file", "fileMd5", "fileName", "offset", "partSize"]
    assert parsed[0].filename == "upload_chunk_data" and parsed[0].data == part
    assert {p.name: p.data.decode() for p in parsed[1:]} == dict(fields)


def test_a_part_streams_from_the_file_through_one_reused_buffer(tmp_path: Path) -> None:
    part = blob(3 * MIB + 7, 3)
    path = tmp_path / "src.bin"
    path.write_bytes(b"head" + part + b"tail")
    fields = [("fileMd5", "0" * 32), ("offset", "4")]
    with open(path, "rb") as f:
        body = MultipartBody(fields, Body(FileRange(f.fileno(), 4, len(part))))
        buffer = bytearray(1 * MIB)
        seen: list[bytes] = []
        buffers: set[int] = set()
        for view in body.batches(buffer):
            if view.obj is buffer:
                buffers.add(id(view.obj))
            assert len(view) <= len(buffer)  # never more of the file in memory than the buffer
            seen.append(bytes(view))
    raw = b"".join(seen)
    assert len(raw) == body.length
    assert buffers == {id(buffer)}  # the file's bytes all came through the one buffer
    parsed = parse_multipart(raw, body.content_type)
    assert parsed[0].data == part
    assert {p.name: p.data.decode() for p in parsed[1:]} == dict(fields)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_part_far_larger_than_the_socket_buffers_on_a_slow_steady_link_completes(
        srv: TestHttpServer, tmp_path: Path) -> None:
    """A 16 MiB part takes about 2 s to drain at 8 MiB/s, far beyond http_timeout=0.3 s: only a timeout that bounds
    a stall (no byte moving), not the part's duration, lets it through."""
    data = blob(16 * MIB, 5)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    srv.upload_rate_limit = 8 * MIB
    rec = Recorder()
    async with meow(http_timeout=0.3) as client:
        tid = await client.try_enqueue(
            UploadPounceBuilder("big.bin", path, 16 * MIB).with_url(srv.url("/upload"))
            .with_max_chunk_retries(0).build(), rec.progress, rec.complete)
        final = await rec.wait_terminal(tid, 50)
        assert final.status is TransferStatus.COMPLETE, final.error
        await rec.wait_for(lambda: rec.completes)
    (state,) = srv.uploads.values()
    assert state.completed and state.md5_ok and state.data == data
    assert rec.completes == [(tid, state.file_id)]
