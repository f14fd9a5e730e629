"""MeowClient: the SDK's entry point. Owns the config, lazily starts one scheduler, routes commands."""

from __future__ import annotations

import asyncio
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.engine import log
from app.engine.callbacks import CallbackDispatcher, CompleteCallback, ProgressCallback
from app.engine.config import MeowConfig
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.ids import GlobalProgressListenerId, TaskId
from app.engine.log import DebugLogListener
from app.engine.record import Direction, TransferSnapshot
from app.engine.scheduler import Command, Scheduler
from app.engine.task import PounceTask, check_rate, stat_source

if TYPE_CHECKING:
    import httpx

_WAIT_FOR_SPACE = 0.002


@dataclass
class _ClientState:
    """What the drop finaliser needs, held apart from the client so the client itself can be collected."""

    scheduler: Scheduler | None = None
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def _on_drop(state: _ClientState) -> None:
    scheduler = state.scheduler
    if scheduler is None:
        return
    if state.closed:
        log.debug("executor_drop", "executor dropped after explicit close()")
        return
    log.warn("executor_drop", "MeowClient dropped without close(); closing it best-effort")
    if scheduler.close_nowait():
        log.debug("executor_drop", "best-effort Close command queued during Drop")
    else:
        log.debug("executor_drop", "best-effort Close try_send skipped (queue full or scheduler gone)")


class MeowClient:
    """Submit, control and observe transfers. Not shareable across event loops: callbacks run on the loop
    where the client was created (or first used), one at a time, in order."""

    def __init__(self, config: MeowConfig | None = None) -> None:
        self._config = config if config is not None else MeowConfig()
        self._state = _ClientState()
        self._listeners: dict[GlobalProgressListenerId, ProgressCallback] = {}
        self._listeners_lock = threading.Lock()
        self._dispatcher: CallbackDispatcher | None = None
        weakref.finalize(self, _on_drop, self._state)

    def __repr__(self) -> str:
        return f"MeowClient {{ config: {self._config!r}, global_progress_listener: \"..\" }}"

    @property
    def config(self) -> MeowConfig:
        return self._config

    # ------------------------------------------------------------------ listeners and logs
    def http_client(self) -> httpx.AsyncClient:
        """The injected client, or a new one built like the engine's own (for plugin authors)."""
        config = self._config
        if config.http_client is not None:
            return config.http_client
        from app.engine.http import build_client

        return build_client(config.network(), config.http_timeout, config.tcp_keepalive)

    def register_global_progress_listener(self, listener: ProgressCallback) -> GlobalProgressListenerId:
        lid = GlobalProgressListenerId()
        with self._listeners_lock:
            self._listeners[lid] = listener
        return lid

    def unregister_global_progress_listener(self, listener_id: GlobalProgressListenerId) -> bool:
        with self._listeners_lock:
            return self._listeners.pop(listener_id, None) is not None

    def clear_global_listener(self) -> None:
        with self._listeners_lock:
            self._listeners.clear()

    @staticmethod
    def set_debug_log_listener(listener: DebugLogListener | None) -> None:
        """Process-global, as in the seed: it affects every client."""
        log.set_debug_log_listener(listener)

    # ------------------------------------------------------------------ lifecycle
    def is_closed(self) -> bool:
        return self._state.closed

    def _check_open(self) -> None:
        if self._state.closed:
            raise MeowError(InnerErrorCode.CLIENT_CLOSED, "meow client is already closed")

    def _scheduler(self) -> Scheduler:
        with self._state.lock:
            self._check_open()
            if self._state.scheduler is None:
                loop = asyncio.get_running_loop()
                # A closure over the listener table, not a bound method: the scheduler thread must not keep
                # the client alive, or a client dropped without close() would never be finalised.
                listeners, lock = self._listeners, self._listeners_lock

                def snapshot() -> list[ProgressCallback]:
                    with lock:
                        return list(listeners.values())

                self._dispatcher = CallbackDispatcher(loop, snapshot)
                scheduler = Scheduler(self._config, self._dispatcher)
                scheduler.start()
                self._state.scheduler = scheduler
            return self._state.scheduler

    async def _call(self, kind: str, task_id: TaskId | None = None, *args: object) -> object:
        """Send a control command, waiting (without blocking the loop) for queue space, then for the reply."""
        scheduler = self._scheduler()
        cmd = Command(kind, task_id, tuple(args))
        while (fut := scheduler.submit(cmd, fail_fast=False)) is None:
            await asyncio.sleep(_WAIT_FOR_SPACE)
            self._check_open()
        try:
            return await asyncio.wrap_future(fut)
        except MeowError as err:
            if err.code == InnerErrorCode.CLIENT_CLOSED or self._state.closed:
                raise MeowError(InnerErrorCode.CLIENT_CLOSED, "meow client is already closed") from None
            raise

    async def try_enqueue(self, task: PounceTask, progress_cb: ProgressCallback | None = None,
                          complete_cb: CompleteCallback | None = None) -> TaskId:
        """Submit a task and return its id at once (before the scheduler looks at it).

        Raises ParameterEmpty for an invalid task, FileNotFound for a missing upload source, ClientClosed,
        and CommandSendFailed when the command queue is full (fail-fast back-pressure; retry later).
        """
        self._check_open()
        if not isinstance(task, PounceTask):
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, "try_enqueue needs a PounceTask (use a builder)")
        reason = task.validation_error()
        if reason is not None:
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, reason)
        custom = task.breakpoint_download if task.direction is Direction.DOWNLOAD else task.breakpoint_upload
        if custom is None:
            _check_http_url(task.url)
        if task.direction is Direction.UPLOAD and task.upload_source is None:
            await asyncio.to_thread(stat_source, task.file_path)
        scheduler = self._scheduler()
        task_id = TaskId()
        scheduler.submit(Command("enqueue", task_id, (task, progress_cb, complete_cb)), fail_fast=True)
        return task_id

    async def pause(self, task_id: TaskId) -> None:
        await self._call("pause", task_id)

    async def resume(self, task_id: TaskId) -> None:
        await self._call("resume", task_id)

    async def cancel(self, task_id: TaskId, *, wait_released: bool = False) -> None:
        """Cancel a task. With ``wait_released`` return only once its run has let go of its files (last write and
        checkpoint save done; an upload's remote session aborted), e.g. before deleting the partial file."""
        await self._call("cancel_wait" if wait_released else "cancel", task_id)

    async def snapshot(self) -> TransferSnapshot:
        result = await self._call("snapshot")
        assert isinstance(result, TransferSnapshot)
        return result

    async def set_rate_limit(self, bytes_per_second: int | None) -> None:
        """Change the global bandwidth limit (all tasks together) while transfers run; None = unlimited."""
        check_rate(bytes_per_second)
        await self._call("set_rate", None, bytes_per_second)

    async def set_task_rate_limit(self, task_id: TaskId, bytes_per_second: int | None) -> None:
        check_rate(bytes_per_second)
        await self._call("set_rate", task_id, bytes_per_second)

    async def set_max_concurrency(self, direction: Direction, limit: int) -> None:
        """Change how many transfers of ``direction`` run at once, live (MeowConfig only sets the start value).
        Lowering it never stops a running transfer; it holds back the next ones."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1024:
            raise MeowError(InnerErrorCode.INVALID_CONFIG, f"max concurrency must be 1..1024, got {limit!r}")
        if not isinstance(direction, Direction):
            raise MeowError(InnerErrorCode.INVALID_CONFIG, f"direction must be a Direction, got {direction!r}")
        await self._call("set_concurrency", None, direction, limit)

    async def close(self) -> None:
        """Pause everything (each task gets a Paused record and keeps its checkpoint), stop the scheduler,
        join its thread and deliver every pending callback. A closed client cannot be reopened."""
        with self._state.lock:
            self._check_open()
            self._state.closed = True
            scheduler = self._state.scheduler
        if scheduler is None:
            return
        cmd = Command("close")
        try:
            while (fut := scheduler.submit(cmd, fail_fast=False)) is None:
                await asyncio.sleep(_WAIT_FOR_SPACE)
            await asyncio.wrap_future(fut)
        except MeowError:
            with self._state.lock:
                self._state.closed = False  # let the caller retry, as the seed does
            raise
        await asyncio.to_thread(scheduler.thread.join, 10)
        if self._dispatcher is not None:
            await self._dispatcher.drained()


def _check_http_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range or not a number)
    except ValueError:
        raise MeowError(InnerErrorCode.PARAMETER_EMPTY, "malformed URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        shown = parts.scheme or "none"
        raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"unsupported URL scheme {shown!r} (use http or https)")
    if not parts.hostname:
        raise MeowError(InnerErrorCode.PARAMETER_EMPTY, "URL has no host")

