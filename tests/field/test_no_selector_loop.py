"""The data path on a loop without ``add_reader``/``add_writer``, as Windows' proactor loop is.

Why: on Windows asyncio's default loop is the ProactorEventLoop, whose public ``add_reader``, ``add_writer``,
``remove_reader`` and ``remove_writer`` raise NotImplementedError. The old fast path needed them and was off there;
the data path must not. Linux has no proactor, so these tests install an event-loop policy (public asyncio API) whose
``new_event_loop`` -- what the engine's scheduler thread calls -- returns a selector loop with those four methods
refusing as the proactor's do, and run the test's own coroutine on such a loop as well. asyncio's own plumbing keeps
working on it (the selector loop's ``sock_connect`` calls ``remove_writer`` itself, where the proactor has plumbing
of its own); anything in the engine or a library it uses that watches a socket through the public API fails, and
each test also fails if such a call was made and swallowed somewhere.

The policy counts the loops it made and in which thread, so each test proves the scheduler really ran on one.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

from app.engine.api import MeowClient, TransferStatus
from tests.field.transfers import completed, download_task, run_to_end, upload_task, uploaded
from tests.support.engine_helpers import KIB, MIB, Recorder, closed_client, fast_config, sha
from tests.support.http_server import TestHttpServer

pytestmark = pytest.mark.timeout(120)

T = TypeVar("T")
SCHEDULER_THREAD = "rusty-cat-scheduler"
DATA = os.urandom(4 * MIB + 7)


class NoSelectorLoop(asyncio.SelectorEventLoop):
    """A selector loop whose public fd-watching methods refuse, as ``asyncio.ProactorEventLoop``'s do, to every
    caller but asyncio itself: the selector loop's own plumbing calls them (``sock_connect`` ends with
    ``remove_writer``, under every ``create_connection``), where a proactor loop has plumbing of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []  # each refused call, with the stack that made it

    def _refuse(self, name: str) -> NoReturn:
        self.refused.append(f"{name}() called from:\n{''.join(traceback.format_stack(limit=16)[:-2])}")
        raise NotImplementedError(f"{name}() is not available on this loop (as on Windows' proactor loop)")

    @staticmethod
    def _asyncio_calls() -> bool:
        """Whether the caller of the method calling this is asyncio's own code."""
        module = sys._getframe(2).f_globals.get("__name__", "")
        return module == "asyncio" or module.startswith("asyncio.")

    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        if not self._asyncio_calls():
            self._refuse("add_reader")
        super().add_reader(fd, callback, *args)

    def add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        if not self._asyncio_calls():
            self._refuse("add_writer")
        super().add_writer(fd, callback, *args)

    def remove_reader(self, fd: Any) -> bool:
        if not self._asyncio_calls():
            self._refuse("remove_reader")
        return super().remove_reader(fd)

    def remove_writer(self, fd: Any) -> bool:
        if not self._asyncio_calls():
            self._refuse("remove_writer")
        return super().remove_writer(fd)


class NoSelectorPolicy(asyncio.DefaultEventLoopPolicy):
    """Every new loop is a :class:`NoSelectorLoop`; ``made`` lists (thread name, loop) of each."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[tuple[str, NoSelectorLoop]] = []
        self._lock = threading.Lock()

    def new_event_loop(self) -> NoSelectorLoop:
        loop = NoSelectorLoop()
        with self._lock:
            self.made.append((threading.current_thread().name, loop))
        return loop

    def scheduler_loops(self) -> list[NoSelectorLoop]:
        with self._lock:
            return [loop for name, loop in self.made if name == SCHEDULER_THREAD]


@pytest.fixture
def policy() -> Iterator[NoSelectorPolicy]:
    """The restricted policy for the test's duration (the previous one restored even if the test fails)."""
    previous = asyncio.get_event_loop_policy()
    installed = NoSelectorPolicy()
    asyncio.set_event_loop_policy(installed)
    try:
        yield installed
    finally:
        asyncio.set_event_loop_policy(previous)


def run_restricted(policy: NoSelectorPolicy, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` on a loop of the policy's (the client's callbacks arrive there), then check the engine's
    scheduler ran on one too, that nothing called the refused methods (an error swallowed somewhere is still a
    failure on Windows) and that the restriction is real."""
    loop = policy.new_event_loop()
    try:
        result = loop.run_until_complete(_on_restricted_loop(body))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
    assert policy.scheduler_loops(), f"the scheduler did not make its loop through the policy: {policy.made}"
    refused = [call for _, made in policy.made for call in made.refused]
    assert not refused, "on a proactor loop these calls fail:\n" + "\n".join(refused)
    probe = policy.new_event_loop()
    try:
        with pytest.raises(NotImplementedError):
            probe.add_reader(0, lambda: None)
    finally:
        probe.close()
    return result


async def _on_restricted_loop(body: Callable[[], Awaitable[T]]) -> T:
    assert isinstance(asyncio.get_running_loop(), NoSelectorLoop)
    return await body()


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        server.add_file("/files/data.bin", DATA)
        yield server
    assert server.errors == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_ranged_download(scheme: str, policy: NoSelectorPolicy, srv: TestHttpServer, tls_server: TestHttpServer,
                         ca_bundle: str, tmp_path: Path) -> None:
    """A download in ranges over parallel connections, plain and over TLS, completes intact on the restricted
    loops."""
    server = srv if scheme == "http" else tls_server
    server.add_file("/files/data.bin", DATA)
    dest = tmp_path / "back.bin"

    async def body() -> None:
        client = MeowClient(fast_config(ca_bundle=ca_bundle))
        try:
            completed(await run_to_end(client, download_task(server.url("/files/data.bin"), dest)))
        finally:
            await closed_client(client)

    run_restricted(policy, body)
    assert sha(dest.read_bytes()) == sha(DATA)
    ranges = [r.range for r in server.requests if r.method == "GET"]
    assert len(ranges) > 1 and all(ranges), ranges  # several ranged GETs, each asking for its range


def test_upload_default_protocol(policy: NoSelectorPolicy, srv: TestHttpServer, tmp_path: Path) -> None:
    """An upload with the default chunk protocol completes intact on the restricted loops."""
    src = tmp_path / "up.bin"
    src.write_bytes(DATA)

    async def body() -> None:
        client = MeowClient(fast_config())
        try:
            completed(await run_to_end(client, upload_task(src, srv.url("/upload"), chunk=512 * KIB)))
        finally:
            await closed_client(client)

    run_restricted(policy, body)
    assert sha(uploaded(srv, DATA)) == sha(DATA)
    assert srv.upload_inspector().chunk_calls >= 9


def test_pause_and_resume(policy: NoSelectorPolicy, srv: TestHttpServer, tmp_path: Path) -> None:
    """Pause a slow download mid-way, resume it: it completes intact, without fetching the file again (the pause
    stopped the ranges between reads, and the resume kept what was written)."""
    srv.rate_limit = 512 * KIB  # per connection: ~2 s for the file over 4 connections
    dest = tmp_path / "back.bin"

    async def body() -> list[TransferStatus]:
        client = MeowClient(fast_config(max_download_concurrency=1))
        rec = Recorder()
        try:
            tid = await client.try_enqueue(download_task(srv.url("/files/data.bin"), dest), rec.progress,
                                           rec.complete)
            await rec.wait_for(lambda: any(r.transferred_bytes >= 512 * KIB for r in rec.of(tid)), timeout=30)
            await client.pause(tid)
            await rec.wait_status(tid, TransferStatus.PAUSED, timeout=30)
            await client.resume(tid)
            completed(await rec.wait_terminal(tid, timeout=60))
            return rec.statuses(tid)
        finally:
            await closed_client(client)

    statuses = run_restricted(policy, body)
    assert statuses.index(TransferStatus.PAUSED) < statuses.index(TransferStatus.COMPLETE)
    assert sha(dest.read_bytes()) == sha(DATA)
    assert srv.bytes_sent_total < 2 * len(DATA), "the resume fetched the whole file again"


def test_cancel(policy: NoSelectorPolicy, srv: TestHttpServer, tmp_path: Path) -> None:
    """Cancel a slow download mid-way: it ends CANCELED long before the server could have sent the file, leaves no
    file, and the client goes on to complete another transfer (the loop and the data path are still sound)."""
    srv.rate_limit = 128 * KIB  # per connection: ~8 s for the file over 4 connections
    srv.add_file("/files/small.bin", DATA[:300 * KIB])
    dest = tmp_path / "back.bin"
    small = tmp_path / "small.bin"

    async def body() -> list[TransferStatus]:
        client = MeowClient(fast_config(max_download_concurrency=1))
        rec = Recorder()
        try:
            tid = await client.try_enqueue(download_task(srv.url("/files/data.bin"), dest), rec.progress,
                                           rec.complete)
            await rec.wait_for(lambda: any(r.transferred_bytes > 0 for r in rec.of(tid)), timeout=30)
            await client.cancel(tid)
            final = await rec.wait_terminal(tid, timeout=30)
            assert final.status is TransferStatus.CANCELED, final
            completed(await run_to_end(client, download_task(srv.url("/files/small.bin"), small)))
            return rec.statuses(tid)
        finally:
            await closed_client(client)

    statuses = run_restricted(policy, body)
    assert TransferStatus.COMPLETE not in statuses
    assert not dest.exists()
    assert srv.bytes_sent_total < len(DATA) + 300 * KIB, "the canceled download went on to the end"
    assert sha(small.read_bytes()) == sha(DATA[:300 * KIB])
