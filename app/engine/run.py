"""What a running transfer gets from the scheduler, and the retry loop shared by both directions."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from app.engine import log
from app.engine.config import BreakpointDownloadHttpConfig, MeowConfig
from app.engine.datapath import DataPath
from app.engine.errors import MeowError
from app.engine.protocols import TransferTask
from app.engine.ratelimit import TokenBucket
from app.engine.retry import RetryPolicy
from app.engine.task import PounceTask
from app.engine.wire import StopToken

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")


class ProgressRelay:
    """Carries a run's progress from its worker threads to the loop: a thread only pokes it, at most one hop per
    ``interval`` crosses to the loop, never one per read, and the figure is read on the loop when the hop arrives,
    so a late hop can never report an older figure than the run reported itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop, figure: Callable[[], tuple[int, int]],
                 report: Callable[[int, int], None], interval: float) -> None:
        self._loop, self._figure, self._report, self._interval = loop, figure, report, interval
        self._lock = threading.Lock()
        self._last = 0.0
        self._pending = False

    def poke(self) -> None:
        """Progress was made (any thread)."""
        now = time.monotonic()
        with self._lock:
            if self._pending or now - self._last < self._interval:
                return
            self._pending, self._last = True, now
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop closed under a late thread: nobody is listening any more
            pass

    def _deliver(self) -> None:
        with self._lock:
            self._pending = False
        self._report(*self._figure())


@dataclass
class RunContext:
    task: PounceTask
    http: Callable[[], httpx.AsyncClient]  # the control-request client, made on first use
    config: MeowConfig
    policy: RetryPolicy
    buckets: tuple[TokenBucket, ...]
    pool: ThreadPoolExecutor
    file_sign: str
    start_offset: int
    report: Callable[[int, int], None]  # (bytes done, total or 0) → the scheduler's throttled Transmission
    data: DataPath  # the bulk data path: request bodies and responses, in worker threads
    data_pool: ThreadPoolExecutor  # the threads that run exchanges (one per connection in use)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.http()

    def relay(self, figure: Callable[[], tuple[int, int]]) -> ProgressRelay:
        """A relay for this run's worker threads; ``figure()`` gives (bytes done, total) on the loop."""
        return ProgressRelay(asyncio.get_running_loop(), figure, self.report, self.config.progress_interval)

    async def in_data_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(stop, *args)`` in a data thread. If the caller is cancelled (pause, cancel, a sibling's failure),
        ``stop`` is set -- the thread stops between reads, a blocked socket is shut down -- and the cancellation goes
        on only once the thread has let go of the file and the connection."""
        stop = StopToken()
        fut = asyncio.get_running_loop().run_in_executor(self.data_pool, fn, stop, *args)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            stop.set()
            await wait_despite_cancel(fut)
            raise

    @property
    def http_config(self) -> BreakpointDownloadHttpConfig:
        return self.task.breakpoint_download_http or self.config.breakpoint_download_http

    def view(self, total: int) -> TransferTask:
        t = self.task
        return TransferTask(
            direction=t.direction, file_name=t.file_name, file_path=t.file_path, url=t.url, method=t.method,
            headers=t.headers, chunk_size=t.chunk_size, total_size=total, file_sign=self.file_sign,
            breakpoint_download_http=self.http_config,
        )

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)


async def maybe_await(value: T | Awaitable[T]) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


async def retrying(op: Callable[[int], Awaitable[T]], retries: int, policy: RetryPolicy, tag: str) -> T:
    """Run ``op(attempt)``; retry retryable MeowErrors up to ``retries`` extra times with back-off.

    Pause and cancel interrupt the back-off (it is an ordinary cancellable sleep), unlike the seed.
    """
    attempt = 0
    while True:
        try:
            return await op(attempt)
        except MeowError as err:
            if not err.retryable or attempt >= retries:
                raise
            delay = policy.delay_for(err, attempt)
            log.debug(tag, lambda e=err, d=delay, a=attempt: f"attempt {a + 1} failed ({e}); retrying in {d:.2f}s")
            attempt += 1
            await asyncio.sleep(delay)


async def run_all(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for every worker; on the first failure (or our own cancellation) stop the others, then re-raise."""
    if not tasks:
        return
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    errors = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
    if errors:
        raise errors[0]  # the others are retrieved above, so none is reported as "never retrieved"


async def wait_despite_cancel(fut: asyncio.Future[Any]) -> bool:
    """Wait until ``fut`` is done, whatever it ends with, however often the caller is cancelled meanwhile; True when
    the caller was (it re-raises its own cancellation afterwards). Its exception counts as retrieved."""
    cancelled = False
    while not fut.done():
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            cancelled = cancelled or not fut.cancelled()
        except BaseException:
            pass
    if not fut.cancelled():
        fut.exception()
    return cancelled


async def finish_despite_cancel(aw: Awaitable[T]) -> T:
    """Run ``aw`` to its end even if the calling task is cancelled meanwhile (as often as it is), then re-raise
    the cancellation. A plain ``await asyncio.shield(...)`` returns at the first cancel while the work goes on in
    the background: a paused run would then count as stopped while its last writes and checkpoint save still
    touch the file, racing the run that resumes it (or an fd number the OS has reused)."""
    fut = asyncio.ensure_future(aw)
    if await wait_despite_cancel(fut) or fut.cancelled():
        raise asyncio.CancelledError
    return fut.result()


async def acquire_despite_cancel(aw: Awaitable[T], release: Callable[[T], object]) -> T:
    """Await ``aw``, work that acquires something in a worker thread (opens a file); if the caller is cancelled
    meanwhile, let the work end -- a thread cannot be interrupted -- and ``release`` what it acquired before the
    cancellation goes on. A plain ``await ctx.in_thread(open...)`` cancelled by a pause drops the result: the
    descriptor leaks, and the thread may still truncate or preallocate the file after the run counts as stopped,
    under the run that resumes it."""
    fut = asyncio.ensure_future(aw)
    try:
        return await finish_despite_cancel(fut)
    except asyncio.CancelledError:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            release(fut.result())
        raise
