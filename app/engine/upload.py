"""One upload run: prepare (find the server's session), send parts streamed from the file, complete.

Parts travel through one send path for every protocol (:class:`_Part.send`): the body streams from the file in
batches on the data path, in a worker thread, so a part is never held whole in memory, a slow but moving link never
times out, and progress, rate limits, pause and cancel act while the part is on its way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from app.engine import log
from app.engine.default_upload import DefaultStyleUpload
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.failures import transport_error
from app.engine.fileio import O_BINARY, io_error, pread_exact
from app.engine.protocols import BreakpointUpload, UploadChunkCtx, UploadPrepareCtx, UploadResumeInfo
from app.engine.ranges import RangeSet
from app.engine.ratelimit import consume_blocking
from app.engine.run import ProgressRelay, RunContext, acquire_despite_cancel, retrying, run_all
from app.engine.wire import Body, FileRange, ShortSource, SourceError, Stopped, StopToken, pread_into

if TYPE_CHECKING:
    import httpx

MAX_STALLED_CHUNKS = 3  # answers that don't move the server's nextByte forward before we give up
#: The most of an answer to a part (or its error page) that is read: answers are small XML or JSON.
MAX_ANSWER = 1 << 20
DIGEST_BLOCK = 1 << 20


class _Part:
    """:class:`~app.engine.protocols.UploadPart` of one run."""

    def __init__(self, run: UploadRun, offset: int, length: int) -> None:
        self.run = run
        self.offset = offset
        self.length = length
        self.sent = 0  # bytes of the current attempt the kernel accepted (progress while the part is on its way)

    def _piece(self) -> bytes | FileRange:
        source = self.run.task.upload_source
        if source is not None:
            return memoryview(source)[self.offset:self.offset + self.length].toreadonly()  # type: ignore[return-value]
        assert self.run.fd is not None
        return FileRange(self.run.fd, self.offset, self.length)

    def body(self, head: bytes = b"", tail: bytes = b"") -> Body:
        return Body(*(p for p in (head, self._piece(), tail) if not isinstance(p, bytes) or p))

    async def digest(self, algorithm: str) -> bytes:
        return await self.run.ctx.in_thread(self._digest, algorithm)

    def _digest(self, algorithm: str) -> bytes:
        h = hashlib.new(algorithm)
        piece = self._piece()
        if not isinstance(piece, FileRange):
            h.update(piece)
            return h.digest()
        self.run.check_source()
        done = 0
        buf = bytearray(min(DIGEST_BLOCK, max(1, piece.length)))
        view = memoryview(buf)
        while done < piece.length:
            want = min(len(buf), piece.length - done)
            try:
                got = pread_into(piece.fd, view[:want], piece.offset + done)
            except OSError as exc:
                raise io_error(exc, f"cannot read upload source {self.run.task.file_path}") from None
            if not got:
                raise _shrunk(self.run.task.file_path, piece.offset + done, piece.offset + piece.length)
            h.update(view[:got])
            done += got
        return h.digest()

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: Body, what: str) -> httpx.Response:
        self.sent = 0
        try:
            return await self.run.ctx.in_data_thread(self._send, method, url, list(headers.items()), body, what)
        except BaseException:
            self.sent = 0  # this attempt's bytes are not on the server
            raise

    def _send(self, stop: StopToken, method: str, url: str, headers: list[tuple[str, str]], body: Body,
              what: str) -> httpx.Response:
        run = self.run
        run.check_source()

        def on_sent(n: int) -> None:
            self.sent = min(self.length, self.sent + n)  # the multipart framing is not the file's progress
            run.relay.poke()
            consume_blocking(run.ctx.buckets, n, stop)

        try:
            resp = run.ctx.data.exchange(method, url, headers, stop, body=body, on_sent=on_sent)
        except (Stopped, MeowError):
            raise
        except ShortSource as exc:
            raise _shrunk(run.task.file_path, exc.at, exc.at) from None
        except SourceError as exc:
            raise io_error(exc, f"cannot read upload source {run.task.file_path}") from None
        except Exception as exc:
            raise transport_error(exc, what) from None
        try:
            content = resp.read(MAX_ANSWER)
        except Stopped:
            raise
        except Exception as exc:
            raise transport_error(exc, f"{what} answer") from None
        finally:
            resp.close()
        import httpx  # an upload's prepare loaded it already: plugins read answers as httpx responses

        return httpx.Response(resp.status, headers=list(resp.headers.items()), content=content,
                              request=httpx.Request(method, url, headers=headers))


def _shrunk(path: str, at: int, expected: int) -> MeowError:
    return MeowError(InnerErrorCode.SOURCE_CHANGED, f"upload source ended at byte {at}, expected {expected} bytes: "
                     f"the file shrank while uploading: {path}")


class UploadRun:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.task = ctx.task
        self.total = ctx.task.total_size
        self.proto: BreakpointUpload = ctx.task.breakpoint_upload or DefaultStyleUpload()
        self.streams = bool(getattr(self.proto, "streams_parts", False))
        # A protocol with part limits (OSS: 10,000 parts) may grow the part size to fit the file.
        part_size = getattr(self.proto, "part_size", None)
        self.chunk = part_size(self.total, ctx.task.chunk_size) if part_size else ctx.task.chunk_size
        if not isinstance(self.chunk, int) or self.chunk <= 0:
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"upload protocol chose a bad part size {self.chunk!r}")
        self.view = dataclasses.replace(ctx.view(self.total), chunk_size=self.chunk)
        self.fd: int | None = None
        self.done = RangeSet()
        self.in_flight: set[_Part] = set()
        self.relay: ProgressRelay = ctx.relay(lambda: (self.progress(), self.total))  # built in the run's task

    def progress(self) -> int:
        """Bytes done: whole parts the server confirmed, plus what the parts on their way have sent so far (on the
        loop, which alone changes ``done`` and ``in_flight``)."""
        return self.done.total() + sum(p.sent for p in self.in_flight)

    async def run(self) -> tuple[int, str | None]:
        if self.task.upload_source is None:
            self.fd = await acquire_despite_cancel(self.ctx.in_thread(self._open_source), os.close)
        try:
            info = await retrying(self._prepare, self.task.max_upload_prepare_retries, self.ctx.policy,
                                  "upload_prepare")
            if info.completed_file_id is not None:
                self.ctx.report(self.total, self.total)
                return self.total, info.completed_file_id
            if getattr(self.proto, "parallel_parts", False):
                payload = await self._parallel(info)
            else:
                payload = await self._sequential(info)
            return self.total, payload
        finally:
            if self.fd is not None:
                os.close(self.fd)

    def _open_source(self) -> int:
        path = self.task.file_path
        try:
            fd = os.open(path, os.O_RDONLY | O_BINARY)
        except FileNotFoundError:
            raise MeowError(InnerErrorCode.FILE_NOT_FOUND, f"upload source not found: {path}") from None
        except OSError as exc:
            raise io_error(exc, f"cannot open upload source {path}") from None
        return fd

    def check_source(self) -> None:
        """Refuse a source that changed since the task was built (blocking: worker threads)."""
        if self.fd is None:
            return
        try:
            st = os.fstat(self.fd)
        except OSError as exc:
            raise io_error(exc, f"cannot read upload source {self.task.file_path}") from None
        if st.st_size != self.total or (self.task.source_mtime_ns is not None
                                         and st.st_mtime_ns != self.task.source_mtime_ns):
            raise MeowError(InnerErrorCode.SOURCE_CHANGED,
                            f"upload source changed since the task was created: {self.task.file_path} "
                            f"(size {st.st_size}, expected {self.total})")

    async def _prepare(self, attempt: int) -> UploadResumeInfo:
        return await self.proto.prepare(UploadPrepareCtx(self.ctx.client, self.view, self.ctx.start_offset))

    def _read_sync(self, offset: int, size: int) -> bytes:
        """The part in memory, for a plugin that wants it so (not ``streams_parts``)."""
        if self.task.upload_source is not None:
            return self.task.upload_source[offset:offset + size]
        assert self.fd is not None
        self.check_source()
        try:
            return pread_exact(self.fd, offset, size)
        except OSError as exc:
            raise io_error(exc, f"cannot read upload source {self.task.file_path}") from None

    async def _send_part(self, offset: int, sent: Callable[[UploadResumeInfo, int], None]) -> UploadResumeInfo:
        """Send one part (with retries). ``sent(info, size)`` records what the server now holds, in the same step on
        the loop that stops counting the part as on its way, so progress never dips between the two."""
        size = min(self.chunk, self.total - offset)
        part = _Part(self, offset, size)

        async def attempt(_: int) -> UploadResumeInfo:
            chunk = None
            if not self.streams:
                chunk = await self.ctx.in_thread(self._read_sync, offset, size)
            try:
                return await self.proto.upload_chunk(UploadChunkCtx(self.ctx.client, self.view, chunk, offset, part))
            finally:
                del chunk  # never two copies of a part in memory across attempts

        self.in_flight.add(part)
        try:
            info = await retrying(attempt, self.task.max_chunk_retries, self.ctx.policy, "chunk_retry")
            sent(info, size)
        finally:
            self.in_flight.discard(part)
            self.ctx.report(self.progress(), self.total)
        return info

    async def _complete(self) -> str | None:
        async def attempt(_: int) -> str | None:
            return await self.proto.complete_upload(self.ctx.client, self.view)

        return await retrying(attempt, self.task.max_chunk_retries, self.ctx.policy, "upload_complete")

    async def _sequential(self, info: UploadResumeInfo) -> str | None:
        # The server's answer wins over our memory: it may have dropped bytes we think it has.
        offset = min(info.next_byte if info.next_byte is not None else self.ctx.start_offset, self.total)
        self.done = RangeSet([(0, offset)])
        self.ctx.report(offset, self.total)
        stalled = 0
        while offset < self.total:
            at = offset

            def advance(answer: UploadResumeInfo, size: int, at: int = at) -> None:
                nonlocal offset
                if answer.completed_file_id is not None:
                    offset = self.total
                else:
                    offset = min(answer.next_byte if answer.next_byte is not None else at + size, self.total)
                self.done = RangeSet([(0, offset)])

            info = await self._send_part(at, advance)
            if info.completed_file_id is not None:
                self.ctx.report(self.total, self.total)
                return info.completed_file_id
            if offset <= at:
                stalled += 1
                if stalled >= MAX_STALLED_CHUNKS:
                    raise MeowError(InnerErrorCode.NO_PROGRESS,
                                    f"upload server did not advance past byte {at} after {stalled} chunks")
                log.debug("upload_protocol", f"server answered nextByte={offset} for a chunk at {at}")
            else:
                stalled = 0
        return await self._complete()

    async def _parallel(self, info: UploadResumeInfo) -> str | None:
        self.done = RangeSet(list(info.done_ranges or ()))
        todo = deque(o for o in range(0, self.total, self.chunk)
                     if not self.done.covers(o, min(o + self.chunk, self.total)))
        self.ctx.report(self.done.total(), self.total)

        def sent(_: UploadResumeInfo, size: int, offset: int) -> None:
            self.done.add(offset, offset + size)

        async def worker() -> None:
            while todo:
                offset = todo.popleft()
                await self._send_part(offset, lambda info, size, at=offset: sent(info, size, at))

        conc = self.task.max_chunk_concurrency or self.ctx.config.max_chunk_concurrency
        tasks = [asyncio.create_task(worker()) for _ in range(min(conc, len(todo)))]
        if tasks:
            await run_all(tasks)
        return await self._complete()
