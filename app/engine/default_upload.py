"""The seed's default upload wire protocol: multipart/form-data prepare and chunk requests, JSON answers.

Field names and order are a wire contract (seed-behavior §5.2); the body is sent with an explicit
Content-Length, never chunked, and the chunk goes to the socket as the very object it was read into.
The part bodies and their timeout (:class:`PartBody`, :func:`body_timeout`) serve the Azure plugin as well.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from app.engine.errors import InnerErrorCode, MeowError
from app.engine.http import read_preview, status_error, transport_error, upload_timeout
from app.engine.protocols import TransferTask, UploadChunkCtx, UploadPrepareCtx, UploadResumeInfo
from app.engine.redact import redact_text

MAX_RETRY_AFTER = 60.0

#: The write timeout is per socket write, and a part goes out in one write (no copy): it gets one timeout per this
#: many bytes, the time the 1 MiB writes it used to be cut into had, so a slow-but-steady link works as before.
WRITE_TIMEOUT_BYTES = 1 << 20


class PartBody:
    """A request body of one or more pieces with a known length (the caller sends it as Content-Length; httpx
    would chunk an iterable otherwise), e.g. one part as a raw PUT.

    The pieces go to httpx as the objects they are: h11 passes a lone ``bytes`` through without joining, so a part
    read from the file reaches the socket without a copy. Slicing it into ``bytes`` pieces copied every uploaded
    byte once more, about 0.25 CPU s per GiB (py-spy, README "Performance"). The one write this makes of a part is
    timed by :func:`body_timeout`.
    """

    def __init__(self, *pieces: bytes) -> None:
        self._parts = list(pieces)
        self.length = sum(len(p) for p in pieces)

    def release(self) -> None:
        """Drop the pieces once sent: httpx's request objects sit in reference cycles until the cyclic GC runs, and
        the part they reference must not wait for that (parts piled up: an Azure upload's peak RSS was 265 MiB for
        1 GiB with ``content=part``). A released body must not be sent again."""
        self._parts = []

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part


class MultipartBody(PartBody):
    """A re-iterable multipart/form-data body of text fields and at most one binary part."""

    def __init__(self, fields: list[tuple[str, str]], file_part: bytes | None = None, file_first: bool = True):
        self.boundary = f"rustycat-{uuid.uuid4().hex}"
        b = self.boundary
        texts = b"".join(
            f'--{b}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields
        )
        if file_part is None:
            super().__init__(texts + f"--{b}--\r\n".encode())
        else:
            head = (f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="upload_chunk_data"\r\n'
                    f"Content-Type: application/octet-stream\r\n\r\n").encode()
            super().__init__(head, file_part, b"\r\n" + texts + f"--{b}--\r\n".encode())

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"


@dataclass
class DefaultStyleUpload:
    """``category`` is sent in every request (empty by default, as in the seed)."""

    category: str = ""
    parallel_parts: bool = False  # the server tracks one ``nextByte``: parts go in order

    def _base_fields(self, task: TransferTask) -> list[tuple[str, str]]:
        return [("fileMd5", task.file_sign), ("fileName", task.file_name), ("category", self.category)]

    async def prepare(self, ctx: UploadPrepareCtx) -> UploadResumeInfo:
        fields = [*self._base_fields(ctx.task), ("totalSize", str(ctx.task.total_size))]
        return await self._send(ctx.client, ctx.task, MultipartBody(fields))

    async def upload_chunk(self, ctx: UploadChunkCtx) -> UploadResumeInfo:
        fields = [*self._base_fields(ctx.task), ("offset", str(ctx.offset)), ("partSize", str(len(ctx.chunk))),
                  ("totalSize", str(ctx.task.total_size))]
        return await self._send(ctx.client, ctx.task, MultipartBody(fields, ctx.chunk))

    async def complete_upload(self, client: httpx.AsyncClient, task: TransferTask) -> str | None:
        return None

    async def abort_upload(self, client: httpx.AsyncClient, task: TransferTask) -> None:
        return None

    async def _send(self, client: httpx.AsyncClient, task: TransferTask, body: MultipartBody) -> UploadResumeInfo:
        headers = [(k, v) for k, v in task.headers if k.lower() not in ("content-type", "content-length")]
        headers += [("Content-Type", body.content_type), ("Content-Length", str(body.length))]
        try:
            request = client.build_request(task.method, task.url, headers=headers, content=body,
                                           timeout=body_timeout(client, body.length))
            response = await client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise transport_error(exc, "upload request") from None
        finally:
            body.release()
        try:
            if not response.is_success:
                raise status_error(response, "upload HTTP", await read_preview(response), MAX_RETRY_AFTER)
            try:
                raw = await response.aread()
            except httpx.TransportError as exc:
                raise transport_error(exc, "upload response") from None
        finally:
            await response.aclose()
        return parse_resume_info(raw)


def body_timeout(client: httpx.AsyncClient, body_length: int) -> httpx.Timeout:
    """:func:`upload_timeout` (the read timeout grows with the body), with a write timeout for one write of the
    whole body."""
    timeout = upload_timeout(client, body_length)
    if timeout.write is None:
        return timeout
    writes = max(1, -(-body_length // WRITE_TIMEOUT_BYTES))
    return httpx.Timeout(connect=timeout.connect, read=timeout.read, write=timeout.write * writes, pool=timeout.pool)


def parse_resume_info(raw: bytes) -> UploadResumeInfo:
    """``{"fileId"?: str, "nextByte"?: int}``; empty body = no information; anything else is an error."""
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        return UploadResumeInfo()
    preview = redact_text(text[:4096])
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MeowError(InnerErrorCode.RESPONSE_PARSE_ERROR, f"upload response json: {exc}, body: {preview}") from None
    if not isinstance(data, dict):
        raise MeowError(InnerErrorCode.RESPONSE_PARSE_ERROR, f"upload response json: not an object, body: {preview}")
    file_id, next_byte = data.get("fileId"), data.get("nextByte")
    if file_id is not None and not isinstance(file_id, str):
        raise MeowError(InnerErrorCode.RESPONSE_PARSE_ERROR, f"upload response json: fileId is not a string, "
                        f"body: {preview}")
    if next_byte is not None and (isinstance(next_byte, bool) or not isinstance(next_byte, int)):
        raise MeowError(InnerErrorCode.RESPONSE_PARSE_ERROR, f"upload response json: nextByte is not an integer, "
                        f"body: {preview}")
    return UploadResumeInfo(completed_file_id=file_id, next_byte=None if next_byte is None else max(0, next_byte))
