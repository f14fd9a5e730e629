"""One download run: probe, open or resume ``<dest>.part`` from its checkpoint, fetch ranges in parallel, verify,
and rename into place only when complete.

Each range is fetched by one worker thread from start to end: the exchange on the data path, the reads into a
reused buffer, the writes at their offsets and the checkpoint saves. The loop only plans, retries, steals tails for
idle connections and hears about progress (at most once per progress interval, never per read).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any

from app.engine import checkpoint, log
from app.engine.checkpoint import CheckpointError, DownloadCheckpoint
from app.engine.config import RangeIgnoredPolicy
from app.engine.datapath import DataResponse, HeaderMap
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.failures import request_secrets, status_error, transport_error
from app.engine.fileio import O_BINARY, file_digest, io_error, preallocate, pwrite_all
from app.engine.protocols import AuthRefreshCtx, BreakpointDownload, DownloadHeadCtx, DownloadRangeGetCtx
from app.engine.ranges import ContentRangeError, RangeSet, parse_content_range, parse_unsatisfied_total, plan_segments
from app.engine.ratelimit import consume_blocking
from app.engine.redact import redact_url, strip_query
from app.engine.run import (
    ProgressRelay,
    RunContext,
    acquire_despite_cancel,
    finish_despite_cancel,
    maybe_await,
    retrying,
    run_all,
    wait_despite_cancel,
)
from app.engine.standard_download import StandardRangeDownload, content_length
from app.engine.wire import Stopped, StopToken

WRITE_BATCH = 4 << 20  # coalesce network reads into writes of up to this many bytes (capped at chunk size)
DURABLE_INTERVAL = 1.0  # seconds between fdatasync + durable checkpoint while bytes flow
FLUSH_INTERVAL = 0.5  # a batch goes to disk (and progress) at least this often, however slow the link
MAX_RESTARTS = 3  # times a changed remote may restart one run before it fails
#: The smallest tail an idle connection steals from a connection well under way. Its old connection is dropped when
#: it reaches the thief's start, and what its server had already pushed past that point (socket buffers: megabytes
#: on a fast link) is sent twice; below this size that waste is as large as the time an idle connection could save.
#: A connection that has barely begun (at the start of a run) has nothing buffered yet: any tail of two chunks goes.
STEAL_MIN = 4 << 20
#: Read sizes: as large as the link fills in about READ_SECONDS (so a slow link still shows progress and a pause
#: is heard quickly), between these bounds.
MIN_READ, MAX_READ, READ_SECONDS = 64 << 10, 1 << 20, 0.25
ERROR_PREVIEW = 4096  # bytes of an error answer's body kept for the message


@dataclass(frozen=True)
class Probe:
    total: int | None  # None: the server gave no length (chunked)
    etag: str | None
    last_modified: str | None
    ranged: bool | None  # None: unknown (no Accept-Ranges), try ranges and fall back


class _Restart(Exception):
    """The remote changed under us: start again from byte 0 after a fresh probe."""

    def __init__(self, error: MeowError) -> None:
        super().__init__(error.msg)
        self.error = error


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: HeaderMap
    preview: bytes
    via: str | None


class _RangeIgnored(Exception):
    """A 200 with the whole body where a range was asked for. Nothing of that body is kept, not even in the error:
    it is the file's content."""


def _invalid(msg: str) -> MeowError:
    return MeowError(InnerErrorCode.INVALID_RANGE, msg)


def _with_identity(headers: dict[str, str]) -> dict[str, str]:
    """Ranges of an encoded representation are meaningless, so ask for raw bytes (and read them raw)."""
    if not any(k.lower() == "accept-encoding" for k in headers):
        headers["Accept-Encoding"] = "identity"
    return headers


class _Segment:
    """A contiguous run of missing bytes one connection fetches; ``end`` shrinks when another worker steals its
    tail (under the run's lock: the loop steals, a thread reads). ``pos`` is written (handed to the kernel),
    ``recv`` received."""

    __slots__ = ("end", "pos", "recv", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.pos = start
        self.recv = start
        self.end = end


class _PartFile:
    """The open ``.part`` file, its done ranges and the two records of them.

    The fast record (``.part.ckpt``, :class:`~app.engine.checkpoint.FastRecord`) is overwritten after every batch,
    by the worker thread that wrote it, without an fsync: it survives a killed process (the kernel has the bytes),
    not a power cut. The durable record
    (``.part.durable``) is replaced only after an fdatasync of the data, with an fsync of its own, about once a
    second while bytes flow and when the file closes: a power cut leaves it whole, whatever it does to the fast one.
    Saves coalesce: one thread saves at a time and picks up whatever the others recorded meanwhile.
    """

    def __init__(self, fd: int, paths: checkpoint.Sidecars, ckpt: DownloadCheckpoint, written: RangeSet) -> None:
        self.fd = fd
        self.paths = paths
        self.ckpt = ckpt
        self.written = written  # changed under ``_lock`` (worker threads record into it)
        self.durable = written.copy()
        self._lock = threading.Lock()  # guards written, durable, _unsaved, _closed, save_error: never held for I/O
        self._saving = threading.Lock()  # held by the one thread writing a record (or closing the fd)
        self._unsaved = False  # ranges recorded since the last save began
        self._closed = False  # set when the fd is closed: a late save must not run
        self.save_error: OSError | None = None
        self._save_warned = False
        self._last_durable = time.monotonic()
        self._fast = checkpoint.FastRecord(paths.checkpoint)

    def done_bytes(self) -> int:
        with self._lock:
            return self.written.total()

    def missing(self, total: int) -> list[tuple[int, int]]:
        with self._lock:
            return self.written.missing(total)

    def reset(self) -> None:
        with self._lock:
            self.written = RangeSet()
            self.durable = RangeSet()
            self._unsaved = True

    # -------------------------------------------------------------- worker threads
    def write(self, view: memoryview, at: int) -> int:
        """Write one batch at ``at``, record it and save the records (in a worker thread)."""
        n = pwrite_all(self.fd, [view], at)
        with self._lock:
            self.written.add(at, at + n)
            self._unsaved = True
        durable = time.monotonic() - self._last_durable >= DURABLE_INTERVAL
        self._save_unsaved(durable)
        return n

    def _save_unsaved(self, durable: bool) -> None:
        """Save until every recorded range is in the record, unless another thread is saving: that one goes round
        again for what we recorded. A failing save (a full disk) is kept and reported once; the data itself went
        into reserved space, so the download goes on and the next batch tries again."""
        while self._saving.acquire(blocking=False):
            try:
                while True:
                    with self._lock:
                        if not self._unsaved or self._closed:
                            break
                        self._unsaved = False
                        snapshot = self.written.copy()
                    try:
                        self._write_records(snapshot, durable)
                        durable = False
                    except OSError as exc:
                        with self._lock:
                            self._unsaved = True
                            self.save_error = exc
                        self._warn(exc)
                        return
            finally:
                self._saving.release()
            with self._lock:
                if not self._unsaved or self._closed:
                    return
            # a batch was recorded after our last look but before we let go: go round again

    def _warn(self, error: OSError) -> None:
        if not self._save_warned:
            self._save_warned = True
            log.warn("download_chunk", f"cannot save checkpoint {self.paths.checkpoint}: {error.strerror or error}")

    def save_sync(self, durable: bool) -> None:
        """Save now, waiting for a save in progress (in a worker thread)."""
        with self._saving:
            with self._lock:
                if self._closed:  # a save that lost the race with close(): the file is done with
                    return
                self._unsaved = False
                snapshot = self.written.copy()
            try:
                self._write_records(snapshot, durable)
            except OSError:
                with self._lock:
                    self._unsaved = True
                raise

    def _write_records(self, snapshot: RangeSet, durable: bool) -> None:
        """Only ranges written *before* the fdatasync become durable, so a power cut never leaves zeros marked done.
        The caller holds ``_saving``."""
        if durable:
            (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(self.fd)
            with self._lock:
                self.durable = snapshot
            self.ckpt.written = self.ckpt.durable = [list(s) for s in snapshot.spans]
            checkpoint.write_atomic(self.paths.durable, checkpoint.encode(self.ckpt), durable=True)
            self._last_durable = time.monotonic()
        with self._lock:
            durable_spans = self.durable.spans
        self.ckpt.written = [list(s) for s in snapshot.spans]
        self.ckpt.durable = [list(s) for s in durable_spans]
        self._fast.save(checkpoint.encode(self.ckpt))

    def close_sync(self, keep_records: bool) -> None:
        """Make the data durable, record it (unless the file is complete and about to be renamed) and close the fd
        (in a worker thread)."""
        with self._saving:
            try:
                if keep_records:
                    with self._lock:
                        snapshot = self.written.copy()
                    self._write_records(snapshot, durable=True)
                else:
                    (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(self.fd)
            finally:
                with self._lock:
                    self._closed = True
                self._fast.close()
                os.close(self.fd)

    def release(self) -> None:
        """Let go of both files without saving (a run stopped before it began)."""
        with self._lock:
            self._closed = True
        self._fast.close()
        os.close(self.fd)

    async def close(self, ctx: RunContext, keep_records: bool) -> None:
        """Runs to the end even while the task is being cancelled, so a pause never loses what reached the disk."""
        try:
            await finish_despite_cancel(ctx.in_thread(self.close_sync, keep_records))
        except OSError as exc:  # e.g. ENOSPC saving the checkpoint: DiskFull/IoError, not an internal error
            raise io_error(exc, f"cannot save the download checkpoint {self.paths.checkpoint}") from None


class DownloadRun:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.task = ctx.task
        self.proto: BreakpointDownload = ctx.task.breakpoint_download or StandardRangeDownload()
        self.dest = os.path.abspath(ctx.task.file_path)
        self.paths = checkpoint.sidecars(self.dest)
        self.part_path = self.paths.part
        self.fresh = False
        conc = ctx.task.max_chunk_concurrency or ctx.config.max_chunk_concurrency
        self.workers = max(1, conc)
        self.batch = max(64 << 10, min(WRITE_BATCH, ctx.task.chunk_size))
        self._steal_lock = threading.Lock()

    # ------------------------------------------------------------------ orchestration
    async def _probe_refreshing(self, attempt: int) -> Probe:
        sent: dict[str, object] = {}
        try:
            return await self._probe(sent)
        except MeowError as err:
            if await self._refreshed(err, 0, sent):
                return await self._probe(sent)
            raise

    async def run(self) -> tuple[int, str | None]:
        restarts = 0
        previous: tuple[Probe, MeowError] | None = None
        while True:
            probe = await retrying(self._probe_refreshing, self.task.max_chunk_retries, self.ctx.policy,
                                   "download_prepare")
            if previous is not None and previous[0] == probe:
                # The server contradicts itself with an unchanged identity: report it rather than loop.
                raise previous[1]
            try:
                return await self._transfer(probe), None
            except _Restart as restart:
                restarts += 1
                log.info("download_prepare", f"restarting {redact_url(self.task.url)}: {restart.error.msg}")
                if restarts > MAX_RESTARTS:
                    raise MeowError(InnerErrorCode.REMOTE_CHANGED,
                                    f"the remote file kept changing ({restart.error.msg})") from None
                previous = (probe, restart.error)
                self.fresh = True

    async def _transfer(self, probe: Probe) -> int:
        part = await acquire_despite_cancel(self.ctx.in_thread(self._open, probe), _PartFile.release)
        ok = False
        try:
            total = probe.total
            self.ctx.report(part.done_bytes(), total or 0)
            if total == 0:
                pass
            elif total is None or probe.ranged is False:
                total = await self._stream(part, probe)
            else:
                try:
                    await self._ranged(part, probe, total)
                except _RangeIgnored:
                    if self.ctx.http_config.range_ignored is RangeIgnoredPolicy.FAIL:
                        raise _invalid("download GET requires 206 Partial Content, got 200 (the server ignored "
                                       "the Range header)") from None
                    log.info("download_chunk", "server ignored Range; downloading again as one stream")
                    total = await self._stream(part, probe)
            holes = part.missing(total)
            if holes:  # never call a file with holes complete, whatever went wrong above
                raise MeowError(InnerErrorCode.INVALID_RANGE, f"download incomplete: byte ranges {holes[:3]} missing")
            self.ctx.report(part.done_bytes(), total)
            ok = True
        finally:
            await part.close(self.ctx, keep_records=not ok)
        return await self._finish_despite_pause(total)

    async def _finish_despite_pause(self, total: int) -> int:
        """Verify and rename. A pause (or a quit) during a long verification stops it and keeps the .part and its
        records, so the next run verifies again instead of downloading again; once the rename happened the result
        stands, paused or not."""
        stop = StopToken()
        fut = asyncio.get_running_loop().run_in_executor(self.ctx.pool, self._finish, total, stop)
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            stop.set()
            await wait_despite_cancel(fut)
            if fut.cancelled() or fut.exception() is not None:
                raise
            log.info("download_complete", f"{self.dest} was complete before the pause: keeping it")
        return total

    # ------------------------------------------------------------------ probe
    def _status_error(self, status: int, headers: object, what: str, preview: bytes, url: str,
                      sent: object, via: str | None = None) -> MeowError:
        return status_error(status, headers, what, preview, self.ctx.config.max_retry_after,
                            request_secrets(url, sent), via=via)

    async def _probe(self, sent: dict[str, object]) -> Probe:
        """``sent`` receives the ``extra`` of the last probe request built (for a refresh after a refusal)."""
        view = self.ctx.view(0)
        url = await maybe_await(self.proto.head_url(view))
        hctx = DownloadHeadCtx(task=view, url=url, headers=dict(self.task.headers), extra=sent)
        await maybe_await(self.proto.merge_head_headers(hctx))
        _with_identity(hctx.headers)
        if hctx.method.upper() != "HEAD":  # the plugin chose a GET probe (and set, and maybe signed, its range)
            return await self._range_probe(hctx.url, hctx.headers)
        head = await self.ctx.in_data_thread(self._ask, "HEAD", hctx.url, hctx.headers, "download_prepare HEAD")
        if head.status not in (403, 405, 501):
            if not 200 <= head.status < 300:
                raise self._status_error(head.status, head.headers, "download_prepare HEAD failed:", b"", hctx.url,
                                         hctx.headers, head.via)
            total = await maybe_await(self.proto.total_size_from_head(head.headers))
            if total is not None:
                return self._probe_result(head.headers, total, _accepts_ranges(head.headers))
        # HEAD refused or lengthless: a one-byte GET, built afresh so a signing plugin signs the GET with its range.
        gctx = DownloadHeadCtx(task=view, url=url, headers={**dict(self.task.headers), "Range": "bytes=0-0"},
                               method="GET", extra=sent)
        await maybe_await(self.proto.merge_head_headers(gctx))
        return await self._range_probe(gctx.url, _with_identity(gctx.headers))

    async def _range_probe(self, url: str, headers: dict[str, str]) -> Probe:
        """``GET Range: bytes=0-0``: for servers (and presigned GET URLs) that refuse HEAD or give no length. A
        plugin that signs ranges puts its own range header in (``Range`` or e.g. ``x-ms-range``); else we add it."""
        if not any(k.lower() in ("range", "x-ms-range") for k in headers):
            headers = {**headers, "Range": "bytes=0-0"}
        answer = await self.ctx.in_data_thread(self._ask, "GET", url, headers, "download_prepare probe")
        if answer.status == 206:
            try:
                cr = parse_content_range(answer.headers.get("content-range", ""))
            except ContentRangeError as exc:
                raise _invalid(str(exc)) from None
            return self._probe_result(answer.headers, cr.total, True)
        if answer.status == 200:
            return self._probe_result(answer.headers, content_length(answer.headers), False)
        if answer.status == 416:
            total = parse_unsatisfied_total(answer.headers.get("content-range"))
            return self._probe_result(answer.headers, 0 if total is None else total, True)
        raise self._status_error(answer.status, answer.headers, "download_prepare probe failed:", answer.preview,
                                 url, headers, answer.via)

    def _ask(self, stop: StopToken, method: str, url: str, headers: dict[str, str], what: str) -> _Answer:
        """One probe on the data path (in a data thread): the answer's head, and the start of an error page. A body
        that is the file itself (a 200 to a ranged probe) is not read: the connection is dropped instead."""
        try:
            resp = self.ctx.data.exchange(method, url, list(headers.items()), stop, follow_redirects=True)
        except Stopped:
            raise
        except Exception as exc:
            raise transport_error(exc, what) from None
        try:
            small = resp.status == 206 or resp.status >= 300
            return _Answer(resp.status, resp.headers, self._preview(resp) if small else b"", resp.via)
        finally:
            resp.close()

    @staticmethod
    def _probe_result(headers: HeaderMap, total: int | None, ranged: bool | None) -> Probe:
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            ranged = False
        return Probe(total, headers.get("etag"), headers.get("last-modified"), ranged)

    # ------------------------------------------------------------------ the .part file
    def _load_records(self) -> tuple[DownloadCheckpoint | None, RangeSet]:
        """The checkpoint to resume from and the ranges it lets us trust: the fast record's if this boot wrote it
        (a killed process: the kernel kept the bytes), else the durable record's. A torn record counts as absent,
        so a fast record torn by a power cut never costs what the durable one holds."""
        fast = self._load(self.paths.checkpoint)
        durable = self._load(self.paths.durable)
        boot = checkpoint.boot_id()
        trusted = RangeSet()
        for record in (durable, fast):
            if record is not None:
                for s, e in record.done(boot).spans:
                    trusted.add(s, e)
        reference = fast or durable
        if fast is not None and durable is not None and not checkpoint.same_identity(fast, durable):
            reference, trusted = durable, durable.done(boot)  # the fast one belongs to another version
        return reference, trusted

    def _load(self, path: str) -> DownloadCheckpoint | None:
        try:
            return checkpoint.load(path)
        except CheckpointError as exc:
            log.warn("download_prepare", f"ignoring checkpoint {path}: {exc}")
        except OSError as exc:
            raise io_error(exc, f"cannot read checkpoint {path}") from None
        return None

    def _open(self, probe: Probe) -> _PartFile:
        if os.path.isdir(self.dest):
            raise MeowError(InnerErrorCode.IO_ERROR, f"download destination is a directory: {self.dest}")
        try:
            os.makedirs(os.path.dirname(self.dest), exist_ok=True)
        except OSError as exc:
            raise io_error(exc, f"cannot create the folder for {self.dest}") from None
        old, trusted = (None, RangeSet()) if self.fresh else self._load_records()
        try:
            fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT | O_BINARY, 0o644)
        except OSError as exc:
            raise io_error(exc, f"cannot open {self.part_path}") from None
        try:
            boot = checkpoint.boot_id()
            if old is not None and self._resumable(old, probe):
                size = os.fstat(fd).st_size
                written = RangeSet([(s, min(e, size)) for s, e in trusted.spans if s < size])
                ckpt = old
            else:
                if old is None and os.fstat(fd).st_size:
                    log.warn("download_prepare", f"{self.part_path} has no usable checkpoint; starting over")
                os.ftruncate(fd, 0)
                written = RangeSet()
                ckpt = DownloadCheckpoint(
                    url=strip_query(self.task.url), total_size=probe.total, etag=probe.etag,
                    last_modified=probe.last_modified, chunk_size=self.task.chunk_size,
                    ranged=probe.total is not None and probe.ranged is not False,
                )
            ckpt.boot_id = boot
            if probe.total:
                preallocate(fd, probe.total, self.part_path)
        except OSError as exc:
            os.close(fd)
            raise io_error(exc, f"cannot prepare {self.part_path}") from None
        except BaseException:
            os.close(fd)
            raise
        part = _PartFile(fd, self.paths, ckpt, written)
        try:
            part.save_sync(durable=True)
        except OSError as exc:
            part.release()
            raise io_error(exc, f"cannot prepare {self.part_path}") from None
        except BaseException:
            part.release()
            raise
        return part

    def _resumable(self, old: DownloadCheckpoint, probe: Probe) -> bool:
        if old.url != strip_query(self.task.url) or old.total_size != probe.total or not old.ranged:
            return False
        if probe.etag and old.etag:
            return probe.etag == old.etag
        if probe.last_modified and old.last_modified:
            return probe.last_modified == old.last_modified
        return not (probe.etag or probe.last_modified or old.etag or old.last_modified)

    def _finish(self, total: int, stop: StopToken) -> None:
        """Verify and move into place (in a worker thread). ``stop`` interrupts a verification, never the rename."""
        try:
            size = os.path.getsize(self.part_path)
            if size > total:
                os.truncate(self.part_path, total)
            elif size < total:
                raise _invalid(f"download incomplete: {size} of {total} bytes on disk")
            verify = getattr(self.proto, "verify_download", None)
            if verify is not None:  # a provider's whole-object check (OSS CRC-64), before the file is complete
                try:
                    if "stop" in inspect.signature(verify).parameters:
                        verify(self.part_path, total, stop=stop.is_set)
                    else:
                        verify(self.part_path, total)
                except MeowError as err:
                    if err.code == InnerErrorCode.CHECKSUM_MISMATCH:
                        checkpoint.remove_records(self.paths)  # the bytes are wrong: the next attempt starts over
                    raise
            stop.check()
            expected = self.task.expected_checksum
            if expected is not None:
                actual = file_digest(self.part_path, expected.algorithm, stop.is_set)
                if actual != expected.hex_digest:
                    checkpoint.remove_records(self.paths)  # the bytes are wrong: the next attempt starts over
                    raise MeowError(InnerErrorCode.CHECKSUM_MISMATCH,
                                    f"{expected.algorithm} mismatch: expected {expected.hex_digest}, got {actual}")
            stop.check()
            os.replace(self.part_path, self.dest)
            checkpoint.fsync_dir(os.path.dirname(self.dest))
            checkpoint.remove_records(self.paths)
        except OSError as exc:
            raise io_error(exc, f"cannot finish {self.dest}") from None

    # ------------------------------------------------------------------ ranged, parallel
    async def _ranged(self, part: _PartFile, probe: Probe, total: int) -> None:
        queue = deque(_Segment(s, e) for s, e in plan_segments(part.missing(total), self.task.chunk_size,
                                                                 self.workers))
        active: list[_Segment] = []
        relay = self.ctx.relay(lambda: (part.done_bytes(), total))

        async def worker() -> None:
            while True:
                seg = queue.popleft() if queue else self._steal(active)
                if seg is None:
                    return
                active.append(seg)
                try:
                    await self._fetch_with_retries(part, probe, seg, total, relay)
                finally:
                    active.remove(seg)

        # Every connection starts, even on a resume with one gap left: idle ones split the biggest tail.
        tasks = [asyncio.create_task(worker()) for _ in range(self.workers if queue else 0)]
        await run_all(tasks)

    def _steal(self, active: list[_Segment]) -> _Segment | None:
        """Split the biggest remaining tail so idle connections keep helping to the end."""
        chunk = self.task.chunk_size
        with self._steal_lock:
            victim = max(active, key=lambda s: s.end - s.recv, default=None)
            if victim is None:
                return None
            tail, begun = victim.end - victim.recv, victim.recv - victim.start >= chunk
            if tail < 2 * chunk or (begun and tail < STEAL_MIN):
                return None
            mid = -(-(victim.recv + (victim.end - victim.recv) // 2) // chunk) * chunk
            if not victim.recv < mid < victim.end:
                return None
            stolen = _Segment(mid, victim.end)
            victim.end = mid
            return stolen

    async def _refreshed(self, err: MeowError, total: int, extra: dict[str, object]) -> bool:
        """On 401/403 ask the plugin once to renew its credentials (an expired presigned/SAS URL, a skewed clock):
        a plugin with ``refresh_after_auth_failure(ctx) -> bool`` renews, then the request is re-sent."""
        hook = getattr(self.proto, "refresh_after_auth_failure", None)
        if hook is None or err.status not in (401, 403):
            return False
        ctx = AuthRefreshCtx(task=self.ctx.view(total), client=self.ctx.client, status=err.status,
                             headers=dict(err.headers), generation=extra.get("generation"))
        return bool(await maybe_await(hook(ctx)))

    async def _fetch_with_retries(self, part: _PartFile, probe: Probe, seg: _Segment, total: int,
                                  relay: ProgressRelay) -> None:
        attempt = 0
        refreshed_at: int | None = None
        while seg.pos < seg.end:
            before = seg.pos
            sent: dict[str, object] = {}
            try:
                await self._fetch(part, probe, seg, total, relay, sent)
            except MeowError as err:
                if refreshed_at != seg.pos and await self._refreshed(err, total, sent):
                    refreshed_at = seg.pos  # once per position: a URL that stays refused is a real 403
                    continue
                if seg.pos > before:
                    attempt = 0  # progress was made: the budget is per position, as the seed's is per chunk
                if not err.retryable or attempt >= self.task.max_chunk_retries:
                    raise  # so max_chunk_retries(0) still means "no retry at all"
                attempt += 1
                delay = self.ctx.policy.delay_for(err, attempt - 1)
                log.debug("chunk_retry", lambda e=err, d=delay: f"range at {seg.pos}: {e}; retry in {d:.2f}s")
                await asyncio.sleep(delay)
            finally:
                self.ctx.report(part.done_bytes(), total)

    async def _fetch(self, part: _PartFile, probe: Probe, seg: _Segment, total: int, relay: ProgressRelay,
                     sent: dict[str, object]) -> None:
        """``sent`` is the request's ``extra`` (what the plugin recorded in it comes back after a refusal)."""
        start, last = seg.pos, seg.end - 1
        sent["last_modified"] = probe.last_modified
        rctx = DownloadRangeGetCtx(
            task=self.ctx.view(total), url=self.task.url, range_value=f"bytes={start}-{last}", start=start,
            end=last, headers=dict(self.task.headers), validator=probe.etag, extra=sent,
        )
        await maybe_await(self.proto.merge_range_get_headers(rctx))
        headers = list(_with_identity(rctx.headers).items())
        await self.ctx.in_data_thread(self._fetch_range, rctx.url, headers, (start, last), probe, part, seg, total,
                                      relay)

    # ------------------------------------------------------------------ in the data thread
    def _exchange(self, stop: StopToken, url: str, headers: list[tuple[str, str]]) -> DataResponse:
        try:
            return self.ctx.data.exchange("GET", url, headers, stop, follow_redirects=True)
        except Stopped:
            raise
        except Exception as exc:
            raise transport_error(exc, "download GET") from None

    def _fetch_range(self, stop: StopToken, url: str, headers: list[tuple[str, str]], asked: tuple[int, int],
                     probe: Probe, part: _PartFile, seg: _Segment, total: int, relay: ProgressRelay) -> None:
        seg.recv = seg.pos
        resp = self._exchange(stop, url, headers)
        try:
            resp_end = self._check_range(resp, probe, asked[0], asked[1], total, url, headers)
            self._pump(stop, resp, part, seg, resp_end, total, relay)
        finally:
            resp.close()

    def _check_range(self, resp: DataResponse, probe: Probe, start: int, last: int, total: int, url: str,
                     sent: list[tuple[str, str]]) -> int:
        """Strict 206 validation; returns the exclusive end of the bytes this response carries."""
        status = resp.status
        if status == 206:
            raw = resp.header("content-range")
            if raw is None:
                raise _invalid("download response missing content-range for ranged GET")
            try:
                cr = parse_content_range(raw)
            except ContentRangeError as exc:
                raise _invalid(str(exc)) from None
            if cr.start != start:
                raise _invalid(f"download content-range start mismatch: expected {start}, got {cr.start}")
            if cr.total is not None and cr.total != total:
                raise _Restart(_invalid(f"download total size changed: HEAD={total}, Content-Range={cr.total}"))
            if cr.end > last:
                raise _invalid(f"download content-range end past the requested end: requested {last}, got {cr.end}")
            length = content_length(resp.headers)
            if length is not None and length != cr.end - cr.start + 1:
                raise _invalid(f"download content-length {length} does not match content-range {raw}")
            encoding = (resp.header("content-encoding") or "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise _invalid(f"server encoded a ranged response ({encoding}) despite Accept-Encoding: identity")
            return cr.end + 1
        if status == 200:
            etag, modified = resp.header("etag"), resp.header("last-modified")
            if (probe.etag and etag and etag != probe.etag) or (
                not probe.etag and probe.last_modified and modified and modified != probe.last_modified
            ):
                raise _Restart(MeowError(InnerErrorCode.REMOTE_CHANGED, "the remote file changed during the download"))
            raise _RangeIgnored
        if status == 412:
            raise _Restart(MeowError(InnerErrorCode.REMOTE_CHANGED, "the remote file changed (412)"))
        if status == 416:
            raise _Restart(MeowError(InnerErrorCode.REMOTE_CHANGED, "the remote file is shorter than expected (416)"))
        raise self._status_error(status, resp.headers, "download GET requires 206 Partial Content, got",
                                 self._preview(resp), url, sent, resp.via)

    @staticmethod
    def _preview(resp: DataResponse) -> bytes:
        try:
            return resp.read(ERROR_PREVIEW)
        except Exception:  # an error page that cannot be read is still an error page
            return b""

    def _pump(self, stop: StopToken, resp: DataResponse, part: _PartFile, seg: _Segment, resp_end: int, total: int,
              relay: ProgressRelay) -> None:
        """Read the body into a reused buffer and write it at its offset in batches (one thread, one connection).

        A read is as large as the link fills in about a quarter second; a batch goes to disk when the buffer is full
        or half a second has passed, so a slow link still shows progress and records it. Whatever was received
        before a failure or a stop is written and recorded before the thread lets go."""
        start = seg.pos
        buffer = bytearray(min(self.batch, max(1, resp_end - start)))
        view = memoryview(buffer)
        filled, flushed_at, read_size = 0, time.monotonic(), MIN_READ
        try:
            while True:
                with self._steal_lock:
                    room = min(seg.end, resp_end) - seg.recv
                if room <= 0:
                    break
                want = min(room, len(buffer) - filled, read_size)
                began = time.monotonic()
                try:
                    n = resp.readinto(view[filled:filled + want])
                except (Stopped, MeowError):
                    raise
                except Exception as exc:
                    raise transport_error(exc, "download GET body") from None
                if not n:
                    break  # the end of the body
                now = time.monotonic()
                read_size = _next_read_size(read_size, n, want, now - began)
                with self._steal_lock:
                    n = max(0, min(n, seg.end - seg.recv))  # a tail stolen while we read: its bytes are not ours
                    seg.recv += n
                filled += n
                if filled == len(buffer) or now - flushed_at >= FLUSH_INTERVAL:
                    self._flush(part, seg, view, filled)
                    filled, flushed_at = 0, now
                    relay.poke()
                consume_blocking(self.ctx.buckets, n, stop)
                stop.check()
        finally:
            self._flush(part, seg, view, filled)
        relay.poke()
        if seg.end < resp_end and seg.recv >= seg.end:
            return  # our tail was stolen and we reached the thief's start: drop this connection
        if seg.recv < min(seg.end, resp_end):
            if seg.recv == start:
                raise MeowError(InnerErrorCode.HTTP_ERROR, "download chunk empty body: the connection closed before "
                                "the complete message body arrived")
            raise MeowError(InnerErrorCode.HTTP_ERROR, f"download body length mismatch: expected {resp_end - start}, "
                            f"got {seg.recv - start} (the connection closed before the complete message body "
                            "arrived)")

    def _flush(self, part: _PartFile, seg: _Segment, view: memoryview, filled: int) -> None:
        if not filled:
            return
        try:
            n = part.write(view[:filled], seg.pos)
        except OSError as exc:
            raise io_error(exc, f"cannot write {self.part_path}") from None
        seg.pos += n

    # ------------------------------------------------------------------ single stream (no ranges / no length)
    async def _stream(self, part: _PartFile, probe: Probe) -> int:
        attempt = 0
        while True:
            try:
                return await self._stream_once(part, probe)
            except MeowError as err:
                if not err.retryable or attempt >= self.task.max_chunk_retries:
                    raise
                delay = self.ctx.policy.delay_for(err, attempt)
                attempt += 1
                await asyncio.sleep(delay)

    async def _stream_once(self, part: _PartFile, probe: Probe) -> int:
        await self.ctx.in_thread(os.ftruncate, part.fd, 0)
        part.reset()
        part.ckpt.ranged = False
        self.ctx.report(0, probe.total or 0)
        # Built by the plugin like any range request (it may sign it or renew its URL); "bytes=0-" asks for
        # everything, and a server without ranges answers it with a plain 200.
        rctx = DownloadRangeGetCtx(
            task=self.ctx.view(probe.total or 0), url=self.task.url, range_value="bytes=0-", start=0, end=None,
            headers=dict(self.task.headers), validator=None, extra={"last_modified": None},
        )
        await maybe_await(self.proto.merge_range_get_headers(rctx))
        headers = list(_with_identity(rctx.headers).items())
        seg = _Segment(0, 1 << 62)
        try:
            relay = self.ctx.relay(lambda: (part.done_bytes(), probe.total or 0))
            return await self.ctx.in_data_thread(self._stream_blocking, rctx.url, headers, probe, part, seg, relay)
        finally:
            self.ctx.report(part.done_bytes(), probe.total or 0)

    def _stream_blocking(self, stop: StopToken, url: str, headers: list[tuple[str, str]], probe: Probe,
                         part: _PartFile, seg: _Segment, relay: ProgressRelay) -> int:
        resp = self._exchange(stop, url, headers)
        try:
            if not _whole_body(resp):
                raise self._status_error(resp.status, resp.headers, "download GET failed:", self._preview(resp), url,
                                         headers, resp.via)
            encoding = (resp.header("content-encoding") or "identity").strip().lower()
            if probe.total and encoding in ("", "identity"):
                seg.end = probe.total
                self._pump(stop, resp, part, seg, probe.total, probe.total, relay)
            else:
                self._pump_open(stop, resp, part, seg, encoding, relay)
            return seg.pos
        finally:
            resp.close()

    def _pump_open(self, stop: StopToken, resp: DataResponse, part: _PartFile, seg: _Segment, encoding: str,
                   relay: ProgressRelay) -> None:
        """Unknown length: read to the end; chunked framing tells a complete body from a broken one. A body the
        server encoded despite ``Accept-Encoding: identity`` is decoded: the file is the resource, not gzip."""
        decoder = _decoder(encoding)
        buffer = bytearray(self.batch)
        view = memoryview(buffer)
        while True:
            try:
                n = resp.readinto(view)
            except (Stopped, MeowError):
                raise
            except Exception as exc:
                raise transport_error(exc, "download GET body") from None
            if decoder is None:
                data = view[:n]
            else:
                try:
                    data = memoryview(decoder.decompress(view[:n]) if n else decoder.flush())
                except zlib.error as exc:
                    raise MeowError(InnerErrorCode.HTTP_ERROR, f"download GET body: broken {encoding} body "
                                    f"({exc})") from None
            if data:
                seg.recv += len(data)
                self._flush(part, seg, data, len(data))
                relay.poke()
                consume_blocking(self.ctx.buckets, n, stop)
            if not n:
                if decoder is not None and not decoder.eof:
                    raise MeowError(InnerErrorCode.HTTP_ERROR, f"download GET body: the {encoding} body ended early")
                return
            stop.check()


def _decoder(encoding: str) -> Any:
    """A zlib decompressor for a gzip or deflate body (None for identity); MeowError for anything else."""
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise MeowError(InnerErrorCode.HTTP_ERROR, f"the server sent a {encoding}-encoded body despite "
                    "Accept-Encoding: identity, and it cannot be decoded here", retryable=False)


def _next_read_size(current: int, got: int, asked: int, seconds: float) -> int:
    """Reads as large as the link fills in about READ_SECONDS: grow while full reads come fast, shrink when one is
    slow (a short read at the end of a body says nothing about the link)."""
    if got < asked:
        return current
    if seconds <= 0:
        return min(MAX_READ, current * 2)
    return max(MIN_READ, min(MAX_READ, int(got / seconds * READ_SECONDS)))


def _whole_body(resp: DataResponse) -> bool:
    """A 200, or a 206 that starts at byte 0 and runs to the end (an answer to ``bytes=0-``)."""
    if resp.status == 200:
        return True
    if resp.status != 206:
        return False
    try:
        cr = parse_content_range(resp.header("content-range") or "")
    except ContentRangeError:
        return False
    return cr.start == 0 and (cr.total is None or cr.end == cr.total - 1)


def _accepts_ranges(headers: HeaderMap) -> bool | None:
    value = headers.get("accept-ranges")
    if value is None:
        return None
    return "bytes" in value.lower()
