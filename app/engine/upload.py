"""One upload run: prepare (find the server's session), send parts read off-loop, complete."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections import deque

from app.engine import log
from app.engine.default_upload import DefaultStyleUpload
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.fileio import O_BINARY, io_error, pread_exact
from app.engine.protocols import BreakpointUpload, UploadChunkCtx, UploadPrepareCtx, UploadResumeInfo
from app.engine.ranges import RangeSet
from app.engine.ratelimit import consume_all
from app.engine.run import RunContext, acquire_despite_cancel, retrying, run_all

MAX_STALLED_CHUNKS = 3  # answers that don't move the server's nextByte forward before we give up


class UploadRun:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.task = ctx.task
        self.total = ctx.task.total_size
        self.proto: BreakpointUpload = ctx.task.breakpoint_upload or DefaultStyleUpload()
        # A protocol with part limits (OSS: 10,000 parts) may grow the part size to fit the file.
        part_size = getattr(self.proto, "part_size", None)
        self.chunk = part_size(self.total, ctx.task.chunk_size) if part_size else ctx.task.chunk_size
        if not isinstance(self.chunk, int) or self.chunk <= 0:
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"upload protocol chose a bad part size {self.chunk!r}")
        self.view = dataclasses.replace(ctx.view(self.total), chunk_size=self.chunk)
        self.fd: int | None = None

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

    async def _prepare(self, attempt: int) -> UploadResumeInfo:
        return await self.proto.prepare(UploadPrepareCtx(self.ctx.client, self.view, self.ctx.start_offset))

    def _read_sync(self, offset: int, size: int) -> bytes:
        """Reads from the file as it is now, refusing a source that changed since the task was built."""
        if self.task.upload_source is not None:
            return self.task.upload_source[offset:offset + size]
        assert self.fd is not None
        try:
            st = os.fstat(self.fd)
            if st.st_size != self.total or (self.task.source_mtime_ns is not None
                                             and st.st_mtime_ns != self.task.source_mtime_ns):
                raise MeowError(InnerErrorCode.SOURCE_CHANGED,
                                f"upload source changed since the task was created: {self.task.file_path} "
                                f"(size {st.st_size}, expected {self.total})")
            return pread_exact(self.fd, offset, size)
        except OSError as exc:
            raise io_error(exc, f"cannot read upload source {self.task.file_path}") from None

    async def _read(self, offset: int) -> bytes:
        size = min(self.chunk, self.total - offset)
        if self.task.upload_source is not None:
            return self._read_sync(offset, size)
        return await self.ctx.in_thread(self._read_sync, offset, size)

    async def _send_part(self, data: bytes, offset: int) -> UploadResumeInfo:
        async def attempt(_: int) -> UploadResumeInfo:
            return await self.proto.upload_chunk(UploadChunkCtx(self.ctx.client, self.view, data, offset))

        info = await retrying(attempt, self.task.max_chunk_retries, self.ctx.policy, "chunk_retry")
        await consume_all(self.ctx.buckets, len(data))
        return info

    async def _complete(self) -> str | None:
        async def attempt(_: int) -> str | None:
            return await self.proto.complete_upload(self.ctx.client, self.view)

        return await retrying(attempt, self.task.max_chunk_retries, self.ctx.policy, "upload_complete")

    async def _sequential(self, info: UploadResumeInfo) -> str | None:
        # The server's answer wins over our memory: it may have dropped bytes we think it has.
        offset = min(info.next_byte if info.next_byte is not None else self.ctx.start_offset, self.total)
        self.ctx.report(offset, self.total)
        stalled = 0
        while offset < self.total:
            data = await self._read(offset)
            info = await self._send_part(data, offset)
            if info.completed_file_id is not None:
                self.ctx.report(self.total, self.total)
                return info.completed_file_id
            nxt = min(info.next_byte if info.next_byte is not None else offset + len(data), self.total)
            if nxt <= offset:
                stalled += 1
                if stalled >= MAX_STALLED_CHUNKS:
                    raise MeowError(InnerErrorCode.NO_PROGRESS,
                                    f"upload server did not advance past byte {offset} after {stalled} chunks")
                log.debug("upload_protocol", f"server answered nextByte={nxt} for a chunk at {offset}")
            else:
                stalled = 0
            offset = nxt
            del data  # before the next read: never two parts in memory
            self.ctx.report(offset, self.total)
        return await self._complete()

    async def _parallel(self, info: UploadResumeInfo) -> str | None:
        done = RangeSet(list(info.done_ranges or ()))
        todo = deque(range(0, self.total, self.chunk))
        todo = deque(o for o in todo if not done.covers(o, min(o + self.chunk, self.total)))
        self.ctx.report(done.total(), self.total)

        async def worker() -> None:
            while todo:
                offset = todo.popleft()
                data = await self._read(offset)
                await self._send_part(data, offset)
                done.add(offset, offset + len(data))
                del data
                self.ctx.report(done.total(), self.total)

        conc = self.task.max_chunk_concurrency or self.ctx.config.max_chunk_concurrency
        tasks = [asyncio.create_task(worker()) for _ in range(min(conc, len(todo)))]
        if tasks:
            await run_all(tasks)
        return await self._complete()
