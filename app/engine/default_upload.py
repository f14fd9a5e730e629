"""The seed's default upload wire protocol: multipart/form-data prepare and chunk requests, JSON answers.

Field names and order are a wire contract (seed-behavior §5.2); the body is sent with an explicit Content-Length,
never chunked. A chunk request streams its part from the file between the form's framing (:meth:`UploadPart.send`,
the send path every provider's parts take); prepare is a small control request on the httpx client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.engine.errors import InnerErrorCode, MeowError
from app.engine.failures import request_secrets, status_error, transport_error
from app.engine.protocols import TransferTask, UploadChunkCtx, UploadPrepareCtx, UploadResumeInfo
from app.engine.redact import redact_text
from app.engine.wire import Body, FileRange

if TYPE_CHECKING:
    import httpx

MAX_RETRY_AFTER = 60.0


class MultipartBody(Body):
    """A multipart/form-data body of text fields and at most one binary part (bytes, or a part streamed from the
    file). Usable as an httpx ``content`` too (async-iterable) when every piece is in memory."""

    def __init__(self, fields: list[tuple[str, str]], file_part: bytes | Body | None = None) -> None:
        self.boundary = f"rustycat-{uuid.uuid4().hex}"
        b = self.boundary
        texts = b"".join(
            f'--{b}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields
        )
        if file_part is None:
            super().__init__(texts + f"--{b}--\r\n".encode())
            return
        head = (f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="upload_chunk_data"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode()
        middle = file_part.pieces if isinstance(file_part, Body) else [file_part]
        super().__init__(head, *middle, b"\r\n" + texts + f"--{b}--\r\n".encode())

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            if isinstance(piece, FileRange):
                raise TypeError("a body that streams from a file is sent with UploadPart.send, not as httpx content")
            yield bytes(piece)


@dataclass
class DefaultStyleUpload:
    """``category`` is sent in every request (empty by default, as in the seed)."""

    category: str = ""
    parallel_parts: bool = False  # the server tracks one ``nextByte``: parts go in order
    streams_parts = True

    def _base_fields(self, task: TransferTask) -> list[tuple[str, str]]:
        return [("fileMd5", task.file_sign), ("fileName", task.file_name), ("category", self.category)]

    def _headers(self, task: TransferTask, body: MultipartBody) -> dict[str, str]:
        headers = {k: v for k, v in task.headers if k.lower() not in ("content-type", "content-length")}
        headers.update({"Content-Type": body.content_type, "Content-Length": str(body.length)})
        return headers

    async def prepare(self, ctx: UploadPrepareCtx) -> UploadResumeInfo:
        fields = [*self._base_fields(ctx.task), ("totalSize", str(ctx.task.total_size))]
        body = MultipartBody(fields)
        client = ctx.client
        import httpx  # control requests only: a plain download never loads httpx

        from app.engine.http import read_preview

        try:
            request = client.build_request(ctx.task.method, ctx.task.url, headers=self._headers(ctx.task, body),
                                           content=body)
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(exc, "upload request") from None
        try:
            if not response.is_success:
                preview = await read_preview(response)
                raise status_error(response.status_code, response.headers, "upload HTTP", preview, MAX_RETRY_AFTER,
                                   request_secrets(ctx.task.url, request.headers))
            try:
                raw = await response.aread()
            except httpx.HTTPError as exc:
                raise transport_error(exc, "upload response") from None
        finally:
            await response.aclose()
        return parse_resume_info(raw)

    async def upload_chunk(self, ctx: UploadChunkCtx) -> UploadResumeInfo:
        task = ctx.task
        fields = [*self._base_fields(task), ("offset", str(ctx.offset)), ("partSize", str(ctx.length)),
                  ("totalSize", str(task.total_size))]
        if ctx.part is None:  # called outside the engine with a chunk in memory: nothing to stream it with
            raise MeowError(InnerErrorCode.INVALID_TASK_STATE, "DefaultStyleUpload.upload_chunk needs ctx.part "
                            "(the engine's part to send)", retryable=False)
        body = MultipartBody(fields, ctx.chunk if ctx.chunk is not None else ctx.part.body())
        response = await ctx.part.send(task.method, task.url, self._headers(task, body), body, "upload request")
        if not response.is_success:
            raise status_error(response.status_code, response.headers, "upload HTTP", response.content[:4096],
                               MAX_RETRY_AFTER, request_secrets(task.url, response.request.headers))
        return parse_resume_info(response.content)

    async def complete_upload(self, client: httpx.AsyncClient, task: TransferTask) -> str | None:
        return None

    async def abort_upload(self, client: httpx.AsyncClient, task: TransferTask) -> None:
        return None


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
