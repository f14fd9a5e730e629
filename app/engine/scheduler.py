"""The scheduler: one thread, one asyncio loop, the single owner of every task table.

Commands arrive from any thread through a bounded queue (``try_enqueue`` fails fast when it is full);
transfers run as asyncio tasks on this loop; records leave through the CallbackDispatcher. Every state
change happens here, so there are no locks around task state and no race between control operations.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TYPE_CHECKING, Any

from app.engine import log
from app.engine.callbacks import CallbackDispatcher, CompleteCallback, ProgressCallback
from app.engine.config import MeowConfig
from app.engine.datapath import DataPath
from app.engine.download import DownloadRun
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.fileio import content_md5, file_digest, new_pool
from app.engine.ids import TaskId
from app.engine.network import user_agent
from app.engine.protocols import TransferTask
from app.engine.ratelimit import TokenBucket
from app.engine.record import Direction, FileTransferRecord, TransferSnapshot, TransferStatus
from app.engine.redact import redact_text, redact_url
from app.engine.retry import RetryPolicy
from app.engine.run import RunContext
from app.engine.task import PounceTask
from app.engine.upload import UploadRun
from app.engine.wire import StopToken, Wire

if TYPE_CHECKING:
    import httpx

#: Threads that run exchanges on the data path: one per connection in use, made on demand.
DATA_THREADS = 256
STOP_TIMEOUT = 15.0  # seconds close() waits for transfers to flush their checkpoints
ABORT_TIMEOUT = 30.0


class State(Enum):
    HASHING = auto()  # upload identity (content MD5) being computed off-loop
    QUEUED = auto()
    RUNNING = auto()
    PAUSED = auto()
    FINISHED = auto()


@dataclass(eq=False)
class Group:
    """One task and its callbacks (the seed's "group": a dedupe key with a single task)."""

    task_id: TaskId
    task: PounceTask
    progress_cb: ProgressCallback | None
    complete_cb: CompleteCallback | None
    state: State = State.QUEUED
    key: str | None = None
    path: str | None = None
    file_sign: str = ""
    offset: int = 0
    total: int = 0
    runner: asyncio.Task[Any] | None = None
    run_id: int = 0
    queue_token: int = 0
    hasher: asyncio.Future[str] | None = None
    hash_stop: StopToken = field(default_factory=StopToken)  # tells the hashing thread to give up
    hash_result: asyncio.Future[str] | None = None
    bucket: TokenBucket = field(default_factory=TokenBucket)
    last_emit: float = 0.0
    timer: asyncio.TimerHandle | None = None

    @property
    def direction(self) -> Direction:
        return self.task.direction


def internal_error_text(exc: BaseException) -> str:
    """An unexpected exception as a record or a log line may show it: its type and its message with every URL's
    credentials and signatures redacted (a repr would show a plugin's signed URL or token as it is)."""
    return f"{type(exc).__name__}: {redact_text(str(exc))}"[:1000]


async def _run(kind: type[DownloadRun] | type[UploadRun], ctx: RunContext) -> tuple[int, str | None]:
    """Build the run inside the task, so an error raised while building (a plugin's ``part_size``) fails the
    task like any other, instead of escaping the scheduler and leaving the task pending forever."""
    return await kind(ctx).run()


@dataclass
class Command:
    kind: str
    task_id: TaskId | None = None
    args: tuple[Any, ...] = ()
    reply: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


class Scheduler:
    def __init__(self, config: MeowConfig, dispatcher: CallbackDispatcher) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.policy = RetryPolicy(config.retry_base_delay, config.retry_max_delay, config.max_retry_after)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._thread_main, name="rusty-cat-scheduler", daemon=True)
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._pending_lock = threading.Lock()
        self._pending = 0
        self.closed = False  # set on the loop once Close is processed
        self.groups: dict[TaskId, Group] = {}
        self.keys: dict[str, Group] = {}
        self.paths: dict[str, Group] = {}
        self.queues: dict[Direction, deque[tuple[int, Group]]] = {d: deque() for d in Direction}
        self.running: dict[Direction, set[Group]] = {d: set() for d in Direction}
        self.stopping: dict[str, asyncio.Task[Any]] = {}  # key/path → cleanup of a cancelled task
        self.limits: dict[Direction, int] = {}  # concurrency changed live (set_max_concurrency)
        self.hashing: deque[Group] = deque()  # uploads in enqueue order, admitted in that order once hashed
        self.global_bucket = TokenBucket(config.rate_limit)
        self._tokens = 0
        self._http: httpx.AsyncClient | None = None  # made on first use: a plain download needs none
        self.data: DataPath | None = None
        self.pool = new_pool()
        self.data_pool = ThreadPoolExecutor(max_workers=DATA_THREADS, thread_name_prefix="rusty-cat-data")
        self._shutdown_task: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ thread and command plumbing
    def start(self) -> None:
        self.thread.start()
        self._ready.wait(10)
        if self._start_error is not None or self.loop is None:
            raise MeowError(InnerErrorCode.RUNTIME_CREATION_FAILED,
                            f"cannot start the scheduler thread: {self._start_error}")

    def _thread_main(self) -> None:
        try:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self.data = self._build_data_path()
            self.loop = loop
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._ready.set()
            return
        log.debug("executor", "executor worker started")
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
            log.debug("executor", "executor worker stopped")

    def _build_data_path(self) -> DataPath:
        """The data path for probes and bodies: the engine's own, or through the program's injected client (used on
        the program's loop)."""
        config = self.config
        if config.http_client is not None:
            from app.engine.datapath import HttpxDataPath

            return HttpxDataPath(config.http_client, self.dispatcher.loop)
        self.network = config.network()
        return Wire(self.network, timeout=config.http_timeout, keepalive=config.tcp_keepalive,
                    user_agent=user_agent())

    @property
    def http(self) -> httpx.AsyncClient:
        """The httpx client for control requests (a provider's initiate, list, commit…), made on first use (on the
        loop): the engine's own through the same proxies and certificates as the data path, or a view of the
        program's injected client that sends on the program's loop. httpx is imported only then."""
        if self._http is None:
            from app.engine import http

            config = self.config
            if config.http_client is not None:
                self._http = http.injected_client_view(config.http_client, self.dispatcher.loop)
            else:
                self._http = http.build_client(self.network, config.http_timeout, config.tcp_keepalive)
        return self._http

    def submit(self, cmd: Command, *, fail_fast: bool) -> concurrent.futures.Future[Any]:
        """Hand a command to the loop; with ``fail_fast`` a full queue raises CommandSendFailed at once."""
        with self._pending_lock:
            if self._pending >= self.config.command_queue_capacity:
                if fail_fast:
                    raise MeowError(InnerErrorCode.COMMAND_SEND_FAILED, "command queue is full; retry later")
                return None  # type: ignore[return-value]  # caller waits for space and retries
            self._pending += 1
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(self._on_command, cmd)
        except RuntimeError:
            with self._pending_lock:
                self._pending -= 1
            raise MeowError(InnerErrorCode.COMMAND_SEND_FAILED, "scheduler is not running") from None
        return cmd.reply

    def _on_command(self, cmd: Command) -> None:
        with self._pending_lock:
            self._pending -= 1
        if cmd.reply.done():
            return
        if self.closed:
            cmd.reply.set_exception(MeowError(InnerErrorCode.CLIENT_CLOSED, "meow client is already closed"))
            return
        try:
            handler: Callable[[Command], Any] = getattr(self, f"_cmd_{cmd.kind}")
            result = handler(cmd)
        except MeowError as err:
            cmd.reply.set_exception(err)
        except Exception as exc:  # a scheduler bug must surface, not hang the caller
            what = internal_error_text(exc)
            log.warn("scheduler", f"command {cmd.kind} failed: {what}")
            cmd.reply.set_exception(MeowError(InnerErrorCode.UNKNOWN, f"internal error in {cmd.kind}: {what}"))
        else:
            if cmd.kind not in ("close", "cancel_wait"):
                cmd.reply.set_result(result)
        if cmd.kind not in ("snapshot", "close"):
            self._dispatch()

    # ------------------------------------------------------------------ records
    def _record(self, g: Group, status: TransferStatus, error: MeowError | None = None) -> FileTransferRecord:
        return FileTransferRecord(
            task_id=g.task_id, file_sign=g.file_sign, file_name=g.task.file_name, total_size=g.total,
            transferred_bytes=g.offset, status=status, direction=g.direction, error=error, file_path=g.task.file_path,
        )

    def _emit(self, g: Group, status: TransferStatus, error: MeowError | None = None,
              complete: tuple[CompleteCallback | None, str | None] | None = None) -> None:
        if g.timer is not None:
            g.timer.cancel()
            g.timer = None
        self.dispatcher.post_record(self._record(g, status, error), g.progress_cb, complete)

    def _progress(self, g: Group, run_id: int, done: int, total: int) -> None:
        """A running transfer reports bytes done; records are throttled to one per progress_interval."""
        if g.run_id != run_id or g.state is not State.RUNNING:
            return  # a late report from a paused or cancelled run: never after Paused/Canceled
        g.offset = done
        if total:
            g.total = total
        now = time.monotonic()
        interval = self.config.progress_interval
        if (total and done >= total) or now - g.last_emit >= interval:
            g.last_emit = now
            self._emit(g, TransferStatus.TRANSMISSION)
        elif g.timer is None:
            assert self.loop is not None
            g.timer = self.loop.call_later(interval - (now - g.last_emit), self._flush_progress, g, run_id)

    def _flush_progress(self, g: Group, run_id: int) -> None:
        g.timer = None
        if g.run_id == run_id and g.state is State.RUNNING:
            g.last_emit = time.monotonic()
            self._emit(g, TransferStatus.TRANSMISSION)

    # ------------------------------------------------------------------ enqueue and identity
    def _cmd_enqueue(self, cmd: Command) -> None:
        task, progress_cb, complete_cb = cmd.args
        assert cmd.task_id is not None
        g = Group(cmd.task_id, task, progress_cb, complete_cb, total=task.total_size)
        g.bucket.set_rate(task.rate_limit)
        self.groups[g.task_id] = g
        if task.direction is Direction.DOWNLOAD:
            g.file_sign = task.client_file_sign or ""
            g.path = os.path.normcase(os.path.abspath(task.file_path))
            g.key = f"{task.url} -> {g.path}"
            self._admit(g)
        else:
            g.state = State.HASHING
            g.hasher = asyncio.ensure_future(self._hash(task, g.hash_stop))
            g.hasher.add_done_callback(lambda fut, g=g: self._hashed(g, fut))
            self.hashing.append(g)

    async def _hash(self, task: PounceTask, stop: StopToken) -> str:
        """The content MD5 (the seed's upload identity and ``fileMd5``), computed in a worker thread."""
        loop = asyncio.get_running_loop()
        if task.upload_source is not None:
            return await loop.run_in_executor(self.pool, lambda: hashlib.md5(task.upload_source).hexdigest())
        try:  # from the per-user cache when this file version was hashed before (a resume, a repeat)
            return await loop.run_in_executor(self.pool, content_md5, task.file_path, stop.is_set, None,
                                              file_digest)
        except FileNotFoundError:
            raise MeowError(InnerErrorCode.FILE_NOT_FOUND, f"upload source not found: {task.file_path}") from None
        except OSError as exc:
            raise MeowError(InnerErrorCode.IO_ERROR, f"cannot read upload source {task.file_path}: {exc}") from None

    def _hashed(self, g: Group, fut: asyncio.Future[str]) -> None:
        """Admit hashed uploads strictly in enqueue order, so the first of two identical uploads leads."""
        g.hasher = None
        g.hash_result = fut
        while self.hashing and self.hashing[0].hasher is None:
            head = self.hashing.popleft()
            result, head.hash_result = head.hash_result, None
            if result is None or result.cancelled() or self.groups.get(head.task_id) is not head:
                continue
            exc = result.exception()
            if exc is not None:
                err = exc if isinstance(exc, MeowError) else MeowError(InnerErrorCode.IO_ERROR, str(exc))
                self._finish(head, TransferStatus.FAILED, err)
                continue
            head.file_sign = head.key = result.result()
            self._admit(head)
        self._dispatch()

    def _admit(self, g: Group) -> None:
        """Duplicate check, then Pending and into the queue (or stay paused if paused while hashing)."""
        assert g.key is not None
        leader = self.keys.get(g.key) or (self.paths.get(g.path) if g.path else None)
        if leader is not None:
            same = "content" if g.direction is Direction.UPLOAD else (
                "URL and destination" if self.keys.get(g.key) is leader else "destination file")
            err = MeowError(InnerErrorCode.DUPLICATE_TASK,
                            f"duplicate of task {leader.task_id}: same {same} is already being transferred")
            self._finish(g, TransferStatus.FAILED, err)
            return
        self.keys[g.key] = g
        if g.path:
            self.paths[g.path] = g
        if g.state is State.PAUSED:
            return
        self._queue(g)

    def _queue(self, g: Group) -> None:
        g.state = State.QUEUED
        self._tokens += 1
        g.queue_token = self._tokens
        self.queues[g.direction].append((g.queue_token, g))
        self._emit(g, TransferStatus.PENDING)

    # ------------------------------------------------------------------ dispatch
    def _limit(self, direction: Direction) -> int:
        limit = self.limits.get(direction)
        if limit is not None:
            return limit
        return (self.config.max_upload_concurrency if direction is Direction.UPLOAD
                else self.config.max_download_concurrency)

    def _dispatch(self) -> None:
        if self.closed:
            return
        for direction, queue in self.queues.items():
            running, limit = self.running[direction], self._limit(direction)
            blocked: list[tuple[int, Group]] = []
            while queue and len(running) < limit:
                token, g = queue.popleft()
                if g.state is not State.QUEUED or g.queue_token != token:
                    continue  # stale entry of a group paused, resumed or finished since
                if g.runner is not None or g.key in self.stopping or (g.path and g.path in self.stopping):
                    blocked.append((token, g))  # the previous run has not let go of the file yet
                    continue
                self._start(g)
            queue.extendleft(reversed(blocked))

    def _start(self, g: Group) -> None:
        g.state = State.RUNNING
        g.run_id += 1
        run_id = g.run_id
        self.running[g.direction].add(g)
        ctx = RunContext(
            task=g.task, http=lambda: self.http, config=self.config, policy=self.policy,
            buckets=(self.global_bucket, g.bucket), pool=self.pool, file_sign=g.file_sign, start_offset=g.offset,
            report=lambda done, total: self._progress(g, run_id, done, total), data=self.data,
            data_pool=self.data_pool,
        )
        # No record before the run knows where it resumes (the seed sent the in-memory offset, 0 after a restart):
        # the first Transmission is the one after the probe/prepare, and it is never throttled.
        g.last_emit = 0.0
        g.runner = asyncio.ensure_future(_run(DownloadRun if g.direction is Direction.DOWNLOAD else UploadRun, ctx))
        g.runner.add_done_callback(lambda t, g=g: self._runner_done(g, t))

    def _runner_done(self, g: Group, t: asyncio.Task[Any]) -> None:
        if g.runner is not t:
            return  # already reaped
        g.runner = None
        self.running[g.direction].discard(g)
        if self.groups.get(g.task_id) is not g or t.cancelled():
            self._dispatch()  # cancelled for pause/cancel/close: whoever cancelled it has emitted already
            return
        exc = t.exception()
        if g.state is not State.RUNNING and exc is not None:
            self._dispatch()  # a paused run failed on its way out: the pause stands, resume will retry
            return
        if exc is None:
            total, payload = t.result()
            g.offset = g.total = total
            self._finish(g, TransferStatus.COMPLETE, payload=payload)
        elif isinstance(exc, MeowError):
            self._finish(g, TransferStatus.FAILED, exc)
        else:
            what = internal_error_text(exc)
            log.warn("run_group", f"task {g.task_id} crashed: {what}")
            self._finish(g, TransferStatus.FAILED, MeowError(InnerErrorCode.UNKNOWN, f"internal error: {what}"))
        self._dispatch()

    def _reap(self, g: Group) -> None:
        """Apply a run's result now if it already finished, so a control op never races a completion."""
        if g.runner is not None and g.runner.done():
            self._runner_done(g, g.runner)

    def _finish(self, g: Group, status: TransferStatus, error: MeowError | None = None,
                payload: str | None = None) -> None:
        self._forget(g)
        g.state = State.FINISHED
        self._emit(g, status, error, complete=(g.complete_cb, payload) if status is TransferStatus.COMPLETE else None)

    def _forget(self, g: Group) -> None:
        self.groups.pop(g.task_id, None)
        if g.key is not None and self.keys.get(g.key) is g:
            del self.keys[g.key]
        if g.path is not None and self.paths.get(g.path) is g:
            del self.paths[g.path]

    def _lookup(self, task_id: TaskId | None) -> Group:
        g = self.groups.get(task_id) if task_id is not None else None
        if g is not None:
            self._reap(g)
            g = self.groups.get(task_id)  # type: ignore[arg-type]
        if g is None:
            raise MeowError(InnerErrorCode.TASK_NOT_FOUND, f"task not found: {task_id}")
        return g

    # ------------------------------------------------------------------ control
    def _cmd_pause(self, cmd: Command) -> None:
        g = self._lookup(cmd.task_id)
        if g.state is State.RUNNING and g.runner is not None:
            g.runner.cancel()  # interrupts in-flight requests; the run flushes its checkpoint on the way out
        g.state = State.PAUSED
        self._emit(g, TransferStatus.PAUSED)

    def _cmd_resume(self, cmd: Command) -> None:
        g = self._lookup(cmd.task_id)
        if g.state is not State.PAUSED:
            raise MeowError(InnerErrorCode.INVALID_TASK_STATE, "resume target is not paused")
        if g.key is None:
            g.state = State.HASHING  # still hashing: it queues itself when the hash is known
            return
        self._queue(g)  # if the old run is still stopping, dispatch waits for it: no "retry later" for callers

    def _cmd_cancel_wait(self, cmd: Command) -> None:
        """Cancel, replying only once the task's files are let go (its last write and checkpoint save are done
        and an upload's remote session is aborted), so the caller may delete them."""
        g = self._lookup(cmd.task_id)
        self._cmd_cancel(cmd)
        cleanup = next((self.stopping[k] for k in (g.key, g.path) if k and k in self.stopping), None)
        if cleanup is None:
            cmd.reply.set_result(None)
        else:
            cleanup.add_done_callback(lambda _t: cmd.reply.done() or cmd.reply.set_result(None))

    def _cmd_cancel(self, cmd: Command) -> None:
        g = self._lookup(cmd.task_id)
        self._forget(g)
        g.state = State.FINISHED
        if g.hasher is not None:
            g.hash_stop.set()
            g.hasher.cancel()
        runner, g.runner = g.runner, None
        if runner is not None:
            runner.cancel()
            self.running[g.direction].discard(g)
        if runner is not None or (g.direction is Direction.UPLOAD and g.key is not None):
            cleanup = asyncio.ensure_future(self._cleanup(g, runner))
            for k in (g.key, g.path):
                if k:
                    self.stopping[k] = cleanup
            cleanup.add_done_callback(lambda t, g=g: self._cleanup_done(g, t))
        self._emit(g, TransferStatus.CANCELED)

    async def _cleanup(self, g: Group, runner: asyncio.Task[Any] | None) -> None:
        """Wait for the cancelled run to let go of its files, then abort the remote session (uploads),
        off the command path, so neither a slow abort nor a late write can touch a new task."""
        if runner is not None:
            await asyncio.gather(runner, return_exceptions=True)
        if g.direction is Direction.UPLOAD and g.task.breakpoint_upload is not None:
            view = TransferTask(
                direction=g.direction, file_name=g.task.file_name, file_path=g.task.file_path, url=g.task.url,
                method=g.task.method, headers=g.task.headers, chunk_size=g.task.chunk_size, total_size=g.total,
                file_sign=g.file_sign,
                breakpoint_download_http=g.task.breakpoint_download_http or self.config.breakpoint_download_http,
            )
            try:
                await asyncio.wait_for(g.task.breakpoint_upload.abort_upload(self.http, view), ABORT_TIMEOUT)
            except Exception as exc:
                log.warn("cancel_group", f"abort_upload for {redact_url(g.task.url)} failed: "
                         f"{exc.msg if isinstance(exc, MeowError) else internal_error_text(exc)}")

    def _cleanup_done(self, g: Group, t: asyncio.Task[Any]) -> None:
        for k in (g.key, g.path):
            if k and self.stopping.get(k) is t:
                del self.stopping[k]
        self._dispatch()

    def _cmd_snapshot(self, cmd: Command) -> TransferSnapshot:
        queued = paused = 0
        for g in self.groups.values():
            if g.state in (State.QUEUED, State.HASHING):
                queued += 1
            elif g.state is State.PAUSED:
                paused += 1
        active = [g for d in Direction for g in self.running[d]]
        return TransferSnapshot(
            queued_groups=queued, active_groups=len(active),
            active_keys=tuple((g.direction, g.key if g.path is None else redact_url(g.task.url)) for g in active),
            paused_groups=paused,
        )

    def _cmd_set_rate(self, cmd: Command) -> None:
        (rate,) = cmd.args
        if cmd.task_id is None:
            self.global_bucket.set_rate(rate)
        else:
            self._lookup(cmd.task_id).bucket.set_rate(rate)

    def _cmd_set_concurrency(self, cmd: Command) -> None:
        """Lowering a limit lets running transfers finish; it only holds back the next dispatch."""
        direction, limit = cmd.args
        self.limits[direction] = limit
        self._dispatch()

    def _cmd_close(self, cmd: Command) -> None:
        self.closed = True
        for g in list(self.groups.values()):
            self._reap(g)
        for g in list(self.groups.values()):
            g.state = State.PAUSED
            self._emit(g, TransferStatus.PAUSED)
        self._shutdown_task = asyncio.ensure_future(self._shutdown(cmd))

    async def _shutdown(self, cmd: Command) -> None:
        """Stop every run (each flushes its checkpoint on the way out), then the HTTP client and the loop."""
        tasks: list[asyncio.Future[Any]] = []
        for g in self.groups.values():
            g.hash_stop.set()
            for fut in (g.runner, g.hasher):
                if fut is not None:
                    fut.cancel()
                    tasks.append(fut)
        tasks.extend(self.stopping.values())
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        self.groups.clear()
        self.keys.clear()
        self.paths.clear()
        for q in self.queues.values():
            q.clear()
        if self._http is not None:
            try:
                await self._http.aclose()  # the engine's own client, or the view of an injected one (which stays open)
            except Exception as exc:
                log.debug("executor", f"closing HTTP connections failed: {type(exc).__name__}")
        if self.data is not None:
            self.data.close()
        self.data_pool.shutdown(wait=True)
        self.pool.shutdown(wait=True)
        cmd.reply.set_result(None)
        assert self.loop is not None
        self.loop.stop()

    def close_nowait(self) -> bool:
        """Best-effort close for a client dropped without close(): never blocks."""
        try:
            fut = self.submit(Command("close"), fail_fast=True)
        except MeowError:
            return False
        return fut is not None
