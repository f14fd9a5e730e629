"""One download run: probe, open or resume ``<dest>.part`` from its checkpoint, fetch ranges in parallel,
write them off-loop, verify, and rename into place only when complete."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import httpx

from app.engine import checkpoint, log
from app.engine.checkpoint import CheckpointError, DownloadCheckpoint
from app.engine.config import RangeIgnoredPolicy
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.fileio import O_BINARY, file_digest, io_error, preallocate, pwrite_all
from app.engine.http import read_preview, status_error, transport_error
from app.engine.protocols import BreakpointDownload, DownloadHeadCtx, DownloadRangeGetCtx
from app.engine.ranges import ContentRangeError, RangeSet, parse_content_range, parse_unsatisfied_total, plan_segments
from app.engine.ratelimit import consume_all
from app.engine.redact import redact_url, strip_query
from app.engine.run import RunContext, acquire_despite_cancel, finish_despite_cancel, maybe_await, retrying, run_all
from app.engine.standard_download import StandardRangeDownload, content_length

WRITE_BATCH = 4 << 20  # coalesce network reads into writes of up to this many bytes (capped at chunk size)
DURABLE_INTERVAL = 1.0  # seconds between fdatasync + durable checkpoint while bytes flow
MAX_RESTARTS = 3  # times a changed remote may restart one run before it fails


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


class _RangeIgnored(Exception):
    def __init__(self, preview: bytes) -> None:
        super().__init__("range ignored")
        self.preview = preview


def _invalid(msg: str) -> MeowError:
    return MeowError(InnerErrorCode.INVALID_RANGE, msg)


def _with_identity(headers: dict[str, str]) -> dict[str, str]:
    """Ranges of an encoded representation are meaningless, so ask for raw bytes (and read them raw)."""
    if not any(k.lower() == "accept-encoding" for k in headers):
        headers["Accept-Encoding"] = "identity"
    return headers


class _Segment:
    """A contiguous run of missing bytes one connection fetches; ``end`` shrinks when another worker steals
    its tail. ``pos`` is written (durable to the kernel), ``recv`` received."""

    __slots__ = ("end", "pos", "recv")

    def __init__(self, start: int, end: int) -> None:
        self.pos = start
        self.recv = start
        self.end = end


class _PartFile:
    """The open ``.part`` file, its done-ranges and the checkpoint that records them.

    Each batch is recorded and checkpointed by the worker thread that wrote it, right after the write (one trip to
    a thread per batch, not two), so a kill -9 loses at most what was not yet written. Saves coalesce: one thread
    saves at a time and picks up whatever other threads recorded meanwhile. Once a second while bytes flow, a save
    on the loop's side also makes the data durable (fdatasync).
    """

    def __init__(self, fd: int, ckpt_path: str, ckpt: DownloadCheckpoint, written: RangeSet, run: DownloadRun):
        self.fd = fd
        self.ckpt_path = ckpt_path
        self.ckpt = ckpt
        self.written = written  # changed under ``_lock`` (worker threads record into it)
        self.durable = written.copy()
        self._run = run
        self._lock = threading.Lock()  # guards written, durable, _unsaved, _closed, _save_error: never held for I/O
        self._saving = threading.Lock()  # held by the one thread writing the checkpoint (or closing the fd)
        self._unsaved = False  # ranges recorded since the last save began
        self._closed = False  # set when the fd is closed: a late save must not run
        self._save_error: OSError | None = None
        self._save_warned = False
        self._dirty = asyncio.Event()
        self._last_durable = time.monotonic()
        self._saver: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the once-a-second durable saver (on the loop; the file was opened in a worker thread)."""
        self._saver = asyncio.get_running_loop().create_task(self._durable_loop())

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
    def write(self, buffers: list[bytes], at: int) -> int:
        """Write a batch at ``at``, record it and checkpoint it (in a worker thread)."""
        n = pwrite_all(self.fd, buffers, at)
        with self._lock:
            self.written.add(at, at + n)
            self._unsaved = True
        self._save_unsaved()
        return n

    def _save_unsaved(self) -> None:
        """Save until every recorded range is in the checkpoint, unless another thread is saving: that one goes
        round again for what we recorded. A failing save (a full disk) is kept for the loop to report; the data
        itself went into reserved space, so the download goes on and the next batch tries to save again."""
        while self._saving.acquire(blocking=False):
            try:
                while True:
                    with self._lock:
                        if not self._unsaved or self._closed:
                            break
                        self._unsaved = False
                        snapshot = self.written.copy()
                    try:
                        self._write_checkpoint(snapshot, durable=False)
                    except OSError as exc:
                        with self._lock:
                            self._unsaved = True
                            self._save_error = exc
                        return
            finally:
                self._saving.release()
            with self._lock:
                if not self._unsaved or self._closed:
                    return
            # a batch was recorded after our last look but before we let go: go round again

    def save_sync(self, durable: bool) -> None:
        """Save now, waiting for a save in progress (in a worker thread)."""
        with self._saving:
            with self._lock:
                if self._closed:  # a save that lost the race with close(): the file is done with
                    return
                self._unsaved = False
                snapshot = self.written.copy()
            try:
                self._write_checkpoint(snapshot, durable)
            except OSError:
                with self._lock:
                    self._unsaved = True
                raise

    def _write_checkpoint(self, snapshot: RangeSet, durable: bool) -> None:
        """Only ranges written *before* the fdatasync become durable, so a power cut never leaves zeros marked
        done. The caller holds ``_saving``."""
        if durable:
            (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(self.fd)
            with self._lock:
                self.durable = snapshot
        with self._lock:
            durable_spans = self.durable.spans
        self.ckpt.written = [list(s) for s in snapshot.spans]
        self.ckpt.durable = [list(s) for s in durable_spans]
        checkpoint.write_atomic(self.ckpt_path, checkpoint.encode(self.ckpt), durable=durable)

    # -------------------------------------------------------------- the loop
    def written_batch(self) -> None:
        """A batch was recorded (on the loop): wake the durable saver, report a failing save once."""
        self._dirty.set()
        error = self._save_error
        if error is not None and not self._save_warned:
            self._save_warned = True
            log.warn("download_chunk", f"cannot save checkpoint {self.ckpt_path}: {error.strerror or error}")

    async def _durable_loop(self) -> None:
        while True:
            await self._dirty.wait()
            wait = DURABLE_INTERVAL - (time.monotonic() - self._last_durable)
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            try:
                await self._run.ctx.in_thread(self.save_sync, True)
            except OSError as exc:
                with self._lock:
                    self._save_error = exc
                self.written_batch()
                continue
            self._last_durable = time.monotonic()

    async def close(self, keep_checkpoint: bool) -> None:
        """Stop the saver, make the data durable, record it (unless the file is complete and about to be renamed)
        and close the fd. Runs to the end even while the task is being cancelled, so a pause never loses what
        reached the disk."""
        if self._saver is not None:
            self._saver.cancel()

        def finish() -> None:
            with self._saving:
                try:
                    if keep_checkpoint:
                        with self._lock:
                            snapshot = self.written.copy()
                        self._write_checkpoint(snapshot, durable=True)
                    else:
                        (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(self.fd)
                finally:
                    with self._lock:
                        self._closed = True
                    os.close(self.fd)

        try:
            await finish_despite_cancel(self._run.ctx.in_thread(finish))
        except OSError as exc:  # e.g. ENOSPC saving the checkpoint: a DiskFull/IoError, not an internal error
            raise io_error(exc, f"cannot save the download checkpoint {self.ckpt_path}") from None


class DownloadRun:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.task = ctx.task
        self.proto: BreakpointDownload = ctx.task.breakpoint_download or StandardRangeDownload()
        self.dest = os.path.abspath(ctx.task.file_path)
        self.part_path = checkpoint.part_path(self.dest)
        self.ckpt_path = checkpoint.checkpoint_path(self.dest)
        self.fresh = False
        conc = ctx.task.max_chunk_concurrency or ctx.config.max_chunk_concurrency
        self.workers = max(1, conc)
        self.batch = max(64 << 10, min(WRITE_BATCH, ctx.task.chunk_size))

    # ------------------------------------------------------------------ orchestration
    async def _probe_refreshing(self, attempt: int) -> Probe:
        try:
            return await self._probe(attempt)
        except MeowError as err:
            if await self._refreshed(err, 0):
                return await self._probe(attempt)
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
        part = await acquire_despite_cancel(self.ctx.in_thread(self._open, probe), lambda p: os.close(p.fd))
        part.start()
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
                except _RangeIgnored as ignored:
                    if self.ctx.http_config.range_ignored is RangeIgnoredPolicy.FAIL:
                        text = ignored.preview.decode("utf-8", errors="replace")
                        raise _invalid(f"download GET requires 206 Partial Content, got 200: {text}") from None
                    log.info("download_chunk", "server ignored Range; downloading again as one stream")
                    total = await self._stream(part, probe)
            holes = part.missing(total)
            if holes:  # never call a file with holes complete, whatever went wrong above
                raise MeowError(InnerErrorCode.INVALID_RANGE, f"download incomplete: byte ranges {holes[:3]} missing")
            ok = True
        finally:
            await part.close(keep_checkpoint=not ok)
        # Never let a pause return while the thread is still renaming the .part: a resumed run would open it anew.
        await finish_despite_cancel(self.ctx.in_thread(self._finish, total))
        return total

    # ------------------------------------------------------------------ probe
    async def _send(self, method: str, url: str, headers: dict[str, str], what: str) -> httpx.Response:
        client = self.ctx.client
        try:
            request = client.build_request(method, url, headers=headers)
            return await client.send(request, stream=True, follow_redirects=True)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"{what}: unusable URL {redact_url(url)}: {exc}") from None
        except httpx.RemoteProtocolError as exc:
            if "content-length" in str(exc).lower():  # h11 refuses a malformed length before we see it
                raise MeowError(InnerErrorCode.MISSING_OR_INVALID_CONTENT_LENGTH,
                                f"missing or invalid content-length from {what}: {exc}", retryable=False) from None
            raise transport_error(exc, what) from None
        except httpx.TransportError as exc:
            raise transport_error(exc, what) from None

    async def _probe(self, attempt: int) -> Probe:
        view = self.ctx.view(0)
        url = await maybe_await(self.proto.head_url(view))
        hctx = DownloadHeadCtx(task=view, url=url, headers=dict(self.task.headers))
        await maybe_await(self.proto.merge_head_headers(hctx))
        _with_identity(hctx.headers)
        if hctx.method.upper() != "HEAD":  # the plugin chose a GET probe (and set, and maybe signed, its range)
            return await self._range_probe(hctx.url, hctx.headers)
        resp = await self._send("HEAD", hctx.url, hctx.headers, "download_prepare HEAD")
        try:
            if resp.status_code not in (403, 405, 501):
                if not resp.is_success:
                    raise status_error(resp, "download_prepare HEAD failed:", b"", self.ctx.config.max_retry_after)
                total = await maybe_await(self.proto.total_size_from_head(resp.headers))
                if total is not None:
                    return self._probe_result(resp, total, _accepts_ranges(resp.headers))
        finally:
            await resp.aclose()
        # HEAD refused or lengthless: a one-byte GET, built afresh so a signing plugin signs the GET with its range.
        gctx = DownloadHeadCtx(task=view, url=url, headers={**dict(self.task.headers), "Range": "bytes=0-0"},
                               method="GET")
        await maybe_await(self.proto.merge_head_headers(gctx))
        return await self._range_probe(gctx.url, _with_identity(gctx.headers))

    async def _range_probe(self, url: str, headers: dict[str, str]) -> Probe:
        """``GET Range: bytes=0-0``: for servers (and presigned GET URLs) that refuse HEAD or give no length. A
        plugin that signs ranges puts its own range header in (``Range`` or e.g. ``x-ms-range``); else we add it."""
        if not any(k.lower() in ("range", "x-ms-range") for k in headers):
            headers = {**headers, "Range": "bytes=0-0"}
        resp = await self._send("GET", url, headers, "download_prepare probe")
        try:
            if resp.status_code == 206:
                try:
                    cr = parse_content_range(resp.headers.get("content-range", ""))
                except ContentRangeError as exc:
                    raise _invalid(str(exc)) from None
                return self._probe_result(resp, cr.total, True)
            if resp.status_code == 200:
                return self._probe_result(resp, content_length(resp.headers), False)
            if resp.status_code == 416:
                total = parse_unsatisfied_total(resp.headers.get("content-range"))
                return self._probe_result(resp, 0 if total is None else total, True)
            preview = await read_preview(resp)
            raise status_error(resp, "download_prepare probe failed:", preview, self.ctx.config.max_retry_after)
        finally:
            await resp.aclose()

    @staticmethod
    def _probe_result(resp: httpx.Response, total: int | None, ranged: bool | None) -> Probe:
        encoding = resp.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            ranged = False
        return Probe(total, resp.headers.get("etag"), resp.headers.get("last-modified"), ranged)

    # ------------------------------------------------------------------ the .part file
    def _open(self, probe: Probe) -> _PartFile:
        if os.path.isdir(self.dest):
            raise MeowError(InnerErrorCode.IO_ERROR, f"download destination is a directory: {self.dest}")
        try:
            os.makedirs(os.path.dirname(self.dest), exist_ok=True)
        except OSError as exc:
            raise io_error(exc, f"cannot create the folder for {self.dest}") from None
        old: DownloadCheckpoint | None = None
        if not self.fresh:
            try:
                old = checkpoint.load(self.ckpt_path)
            except CheckpointError as exc:
                log.warn("download_prepare", f"ignoring checkpoint {self.ckpt_path}: {exc}; starting over")
            except OSError as exc:
                raise io_error(exc, f"cannot read checkpoint {self.ckpt_path}") from None
        try:
            fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT | O_BINARY, 0o644)
        except OSError as exc:
            raise io_error(exc, f"cannot open {self.part_path}") from None
        try:
            boot = checkpoint.boot_id()
            if old is not None and self._resumable(old, probe):
                written = old.done(boot)
                size = os.fstat(fd).st_size
                written = RangeSet([(s, min(e, size)) for s, e in written.spans if s < size])
                ckpt = old
            else:
                os.ftruncate(fd, 0)
                written = RangeSet()
                ckpt = DownloadCheckpoint(
                    url=strip_query(self.task.url), total_size=probe.total, etag=probe.etag,
                    last_modified=probe.last_modified, chunk_size=self.task.chunk_size,
                    ranged=probe.total is not None and probe.ranged is not False,
                )
            ckpt.boot_id = boot
            if probe.total:
                preallocate(fd, probe.total)
            part = _PartFile(fd, self.ckpt_path, ckpt, written, self)
            part.save_sync(durable=True)
            return part
        except OSError as exc:
            os.close(fd)
            raise io_error(exc, f"cannot prepare {self.part_path}") from None
        except BaseException:
            os.close(fd)
            raise

    def _resumable(self, old: DownloadCheckpoint, probe: Probe) -> bool:
        if old.url != strip_query(self.task.url) or old.total_size != probe.total or not old.ranged:
            return False
        if probe.etag and old.etag:
            return probe.etag == old.etag
        if probe.last_modified and old.last_modified:
            return probe.last_modified == old.last_modified
        return not (probe.etag or probe.last_modified or old.etag or old.last_modified)

    def _finish(self, total: int) -> None:
        """Verify and move into place. Runs in a worker thread."""
        try:
            size = os.path.getsize(self.part_path)
            if size > total:
                os.truncate(self.part_path, total)
            elif size < total:
                raise _invalid(f"download incomplete: {size} of {total} bytes on disk")
            verify = getattr(self.proto, "verify_download", None)
            if verify is not None:  # a provider's whole-object check (OSS CRC-64), before the file is complete
                try:
                    verify(self.part_path, total)
                except MeowError as err:
                    if err.code == InnerErrorCode.CHECKSUM_MISMATCH:
                        checkpoint.remove(self.ckpt_path)  # the bytes are wrong: the next attempt starts over
                    raise
            expected = self.task.expected_checksum
            if expected is not None:
                actual = file_digest(self.part_path, expected.algorithm)
                if actual != expected.hex_digest:
                    checkpoint.remove(self.ckpt_path)  # the bytes are wrong: the next attempt starts over
                    raise MeowError(InnerErrorCode.CHECKSUM_MISMATCH,
                                    f"{expected.algorithm} mismatch: expected {expected.hex_digest}, got {actual}")
            os.replace(self.part_path, self.dest)
            checkpoint.fsync_dir(os.path.dirname(self.dest))
            checkpoint.remove(self.ckpt_path)
        except OSError as exc:
            raise io_error(exc, f"cannot finish {self.dest}") from None

    # ------------------------------------------------------------------ ranged, parallel
    async def _ranged(self, part: _PartFile, probe: Probe, total: int) -> None:
        queue = deque(_Segment(s, e) for s, e in plan_segments(part.missing(total), self.task.chunk_size,
                                                                 self.workers))
        active: list[_Segment] = []

        async def worker() -> None:
            while True:
                seg = queue.popleft() if queue else self._steal(active)
                if seg is None:
                    return
                active.append(seg)
                try:
                    await self._fetch_with_retries(part, probe, seg, total)
                finally:
                    active.remove(seg)

        # Every connection starts, even on a resume with one gap left: idle ones split the biggest tail.
        tasks = [asyncio.create_task(worker()) for _ in range(self.workers if queue else 0)]
        await run_all(tasks)

    def _steal(self, active: list[_Segment]) -> _Segment | None:
        """Split the biggest remaining tail so idle connections keep helping to the end."""
        chunk = self.task.chunk_size
        victim = max(active, key=lambda s: s.end - s.recv, default=None)
        if victim is None or victim.end - victim.recv < 2 * chunk:
            return None
        mid = -(-(victim.recv + (victim.end - victim.recv) // 2) // chunk) * chunk
        if not victim.recv < mid < victim.end:
            return None
        stolen = _Segment(mid, victim.end)
        victim.end = mid
        return stolen

    async def _refreshed(self, err: MeowError, total: int) -> bool:
        """On 401/403 ask the plugin once to renew its credentials (an expired presigned/SAS URL): a plugin
        with ``refresh_after_auth_failure(task) -> bool`` fetches a fresh URL, then the request is re-sent."""
        hook = getattr(self.proto, "refresh_after_auth_failure", None)
        if hook is None or err.status not in (401, 403):
            return False
        return bool(await maybe_await(hook(self.ctx.view(total))))

    async def _fetch_with_retries(self, part: _PartFile, probe: Probe, seg: _Segment, total: int) -> None:
        attempt = 0
        refreshed_at: int | None = None
        while seg.pos < seg.end:
            before = seg.pos
            try:
                await self._fetch(part, probe, seg, total)
            except MeowError as err:
                if refreshed_at != seg.pos and await self._refreshed(err, total):
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

    async def _fetch(self, part: _PartFile, probe: Probe, seg: _Segment, total: int) -> None:
        start, last = seg.pos, seg.end - 1
        seg.recv = start
        rctx = DownloadRangeGetCtx(
            task=self.ctx.view(total), url=self.task.url, range_value=f"bytes={start}-{last}", start=start,
            end=last, headers=dict(self.task.headers), validator=probe.etag,
            extra={"last_modified": probe.last_modified},
        )
        await maybe_await(self.proto.merge_range_get_headers(rctx))
        resp = await self._send("GET", rctx.url, _with_identity(rctx.headers), "download GET")
        try:
            resp_end = await self._check_range(resp, probe, start, last, total)
            await self._pump(resp, part, seg, resp_end, total)
        finally:
            await resp.aclose()

    async def _check_range(self, resp: httpx.Response, probe: Probe, start: int, last: int, total: int) -> int:
        """Strict 206 validation; returns the exclusive end of the bytes this response carries."""
        status = resp.status_code
        if status == 206:
            raw = resp.headers.get("content-range")
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
            encoding = resp.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise _invalid(f"server encoded a ranged response ({encoding}) despite Accept-Encoding: identity")
            return cr.end + 1
        if status == 200:
            etag, modified = resp.headers.get("etag"), resp.headers.get("last-modified")
            if (probe.etag and etag and etag != probe.etag) or (
                not probe.etag and probe.last_modified and modified and modified != probe.last_modified
            ):
                raise _Restart(MeowError(InnerErrorCode.REMOTE_CHANGED, "the remote file changed during the download"))
            raise _RangeIgnored(await read_preview(resp))
        if status == 412:
            raise _Restart(MeowError(InnerErrorCode.REMOTE_CHANGED, "the remote file changed (412)"))
        if status == 416:
            raise _Restart(MeowError(InnerErrorCode.REMOTE_CHANGED, "the remote file is shorter than expected (416)"))
        preview = await read_preview(resp)
        raise status_error(resp, "download GET requires 206 Partial Content, got", preview,
                           self.ctx.config.max_retry_after)

    async def _pump(self, resp: httpx.Response, part: _PartFile, seg: _Segment, resp_end: int, total: int) -> None:
        """Stream raw bytes into the file: batched writes in a worker thread, one in flight per connection."""
        start = seg.pos
        writer = _BatchWriter(self, part, seg, total)
        try:
            try:
                async for piece in resp.aiter_raw():
                    room = min(seg.end, resp_end) - seg.recv
                    if len(piece) > room:
                        if seg.end >= resp_end:
                            raise _invalid(f"download body length mismatch: expected {resp_end - start}, "
                                           f"got at least {seg.recv - start + len(piece)}")
                        piece = piece[:room]  # our tail was stolen by another connection
                    if piece:
                        seg.recv += len(piece)
                        await writer.add(piece)
                        await consume_all(self.ctx.buckets, len(piece))
                    if seg.end < resp_end and seg.recv >= seg.end:
                        break  # stolen tail: drop this connection; otherwise read to the end so it is reused
            except httpx.TransportError as exc:
                raise transport_error(exc, "download GET body") from None
        finally:
            await finish_despite_cancel(writer.drain())
        if seg.recv < min(seg.end, resp_end):
            if seg.recv == start:
                raise MeowError(InnerErrorCode.HTTP_ERROR, "download chunk empty body")
            raise MeowError(InnerErrorCode.HTTP_ERROR, f"download body length mismatch: expected {resp_end - start}, "
                            f"got {seg.recv - start} (the connection ended early)")

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
        resp = await self._send("GET", rctx.url, _with_identity(rctx.headers), "download GET")
        try:
            if not _whole_body(resp):
                preview = await read_preview(resp)
                raise status_error(resp, "download GET failed:", preview, self.ctx.config.max_retry_after)
            if probe.total and _identity(resp):
                seg = _Segment(0, probe.total)
                await self._pump(resp, part, seg, probe.total, probe.total)
            else:
                seg = _Segment(0, 1 << 62)
                await self._pump_open(resp, part, seg)
            return seg.pos
        finally:
            await resp.aclose()

    async def _pump_open(self, resp: httpx.Response, part: _PartFile, seg: _Segment) -> None:
        """Unknown length: read to the end; chunked framing tells a complete body from a broken one. A body the
        server encoded despite ``Accept-Encoding: identity`` is decoded: the file is the resource, not gzip."""
        writer = _BatchWriter(self, part, seg, 0)
        pieces = resp.aiter_raw() if _identity(resp) else resp.aiter_bytes()
        try:
            try:
                async for piece in pieces:
                    if piece:
                        seg.recv += len(piece)
                        await writer.add(piece)
                        await consume_all(self.ctx.buckets, len(piece))
            except httpx.DecodingError as exc:
                raise MeowError(InnerErrorCode.HTTP_ERROR, f"download GET body: broken encoded body ({exc})") from None
            except httpx.TransportError as exc:
                raise transport_error(exc, "download GET body") from None
        finally:
            await finish_despite_cancel(writer.drain())


class _BatchWriter:
    """Coalesces network pieces into ``batch``-sized pwritev calls; advances the segment only after the
    kernel accepted the bytes, then records them and reports progress."""

    def __init__(self, run: DownloadRun, part: _PartFile, seg: _Segment, total: int) -> None:
        self.run, self.part, self.seg, self.total = run, part, seg, total
        self.buf: list[bytes] = []
        self.size = 0
        self.offset = seg.pos
        self.inflight: asyncio.Future[int] | None = None

    async def add(self, piece: bytes) -> None:
        self.buf.append(piece)
        self.size += len(piece)
        if self.size >= self.run.batch:
            await self._flush()

    async def _flush(self) -> None:
        await self._settle()
        if not self.buf:
            return
        buffers, self.buf = self.buf, []
        at, self.offset, self.size = self.offset, self.offset + self.size, 0
        try:
            fut = asyncio.get_running_loop().run_in_executor(self.run.ctx.pool, self.part.write, buffers, at)
        except RuntimeError:  # pool shut down (client closing): nothing more can be written
            return
        fut.add_done_callback(lambda f: self._written(f, at))
        self.inflight = fut

    def _written(self, fut: asyncio.Future[int], at: int) -> None:
        """The batch is written and recorded (in the checkpoint too, unless a save was still running: then that
        save's next round has it): advance the segment and report progress at once, so a kill loses at most
        the batch still being received."""
        if fut.cancelled() or fut.exception() is not None:
            return
        self.seg.pos = at + fut.result()
        self.part.written_batch()
        self.run.ctx.report(self.part.done_bytes(), self.total)

    async def _settle(self) -> None:
        if self.inflight is None:
            return
        fut, self.inflight = self.inflight, None
        try:
            await fut
        except OSError as exc:
            raise io_error(exc, f"cannot write {self.run.part_path}") from None

    async def drain(self) -> None:
        await self._flush()
        await self._settle()


def _whole_body(resp: httpx.Response) -> bool:
    """A 200, or a 206 that starts at byte 0 and runs to the end (an answer to ``bytes=0-``)."""
    if resp.status_code == 200:
        return True
    if resp.status_code != 206:
        return False
    try:
        cr = parse_content_range(resp.headers.get("content-range", ""))
    except ContentRangeError:
        return False
    return cr.start == 0 and (cr.total is None or cr.end == cr.total - 1)


def _identity(resp: httpx.Response) -> bool:
    return resp.headers.get("content-encoding", "identity").strip().lower() in ("", "identity")


def _accepts_ranges(headers: httpx.Headers) -> bool | None:
    value = headers.get("accept-ranges")
    if value is None:
        return None
    return "bytes" in value.lower()


