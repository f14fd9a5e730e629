"""httpx's data path, tuned: every use of httpx, httpcore or h11 internals lives in this one module, and applies only
to the versions checked here (anything else runs on httpx's defaults, just slower).

Why: a profile of a 1 GiB loopback download (py-spy, README "Performance") showed the engine thread saturated, and
most of it was not HTTP at all. httpcore's default backend goes through anyio, whose ``receive`` resumes and pauses
the asyncio transport around every read -- two ``epoll_ctl`` system calls, a timer and a cancel scope per 64 KiB --
about a quarter of the thread. h11 then copies each body byte three times in its receive buffer, and httpcore once
more. So:

* :class:`SocketBackend`, an httpcore network backend over plain non-blocking sockets: a read tries ``recv`` first
  and waits for readiness (``loop.add_reader``) only when the socket is empty, so a busy download costs one system
  call per read. TLS connections are handed to asyncio's own SSL transport (:class:`TLSStream`). It needs a
  selector event loop (the engine's own loop is one); on any other loop (Windows' proactor, trio) it delegates to
  httpcore's default backend.
* httpcore reads up to :data:`READ_NUM_BYTES` per call instead of 64 KiB.
* h11's receive buffer passes body reads through as they are, instead of copying every body byte four times on
  the way from the socket to httpx (:func:`_zero_copy_buffer_class`).

And one fix that is not about speed but lives here because it touches httpcore's internals too: the
:class:`ReclaimingConnectionPool`, which keeps httpcore's pool from losing connection slots to cancelled requests.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import time
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import httpcore
import httpx

#: The (prefix of the) versions whose internals this module was written against and tested with.
TESTED_VERSIONS = {"httpx": "0.28.", "httpcore": "1.0.", "h11": "0.16."}

#: Bytes per socket read: large reads are what make a Python HTTP client fast (per-read overhead is fixed).
READ_NUM_BYTES = 1 << 20

#: Reads in a row that found data at once before a read yields to the event loop anyway, so one connection whose
#: socket never runs dry cannot keep the loop's other work (other transfers, control commands) waiting.
FAIR_READS = 8

#: Delay before trying the next address of a host (RFC 8305 "Happy Eyeballs"), as anyio and asyncio do.
HAPPY_EYEBALLS_DELAY = 0.25

#: asyncio stream buffer for TLS connections: big enough that flow control rarely pauses the transport.
TLS_BUFFER = 1 << 20

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover - a frozen build without metadata
        return getattr(__import__(dist), "__version__", "")


def supported(versions: dict[str, str] | None = None) -> bool:
    """Whether the installed httpx, httpcore and h11 are versions this module knows the internals of."""
    found = versions if versions is not None else {dist: _version(dist) for dist in TESTED_VERSIONS}
    return all(found.get(dist, "").startswith(prefix) for dist, prefix in TESTED_VERSIONS.items())


_applied: bool | None = None


def tune_libraries() -> bool:
    """Raise httpcore's read size and make h11's body extraction copy-free, once per process; False (and nothing
    changed) on versions not listed in :data:`TESTED_VERSIONS`."""
    global _applied
    if _applied is None:
        _applied = supported()
        if _applied:
            _tune_httpcore_reads()
            _tune_h11_buffer()
    return _applied


def _tune_httpcore_reads() -> None:
    from httpcore._async.http11 import AsyncHTTP11Connection

    AsyncHTTP11Connection.READ_NUM_BYTES = max(AsyncHTTP11Connection.READ_NUM_BYTES, READ_NUM_BYTES)


def _tune_h11_buffer() -> None:
    import h11._connection

    if h11._connection.ReceiveBuffer is h11._receivebuffer.ReceiveBuffer:
        h11._connection.ReceiveBuffer = _zero_copy_buffer_class()  # type: ignore[misc]


def _zero_copy_buffer_class() -> type:
    """A subclass of h11's ``ReceiveBuffer`` that passes bulk body data through without copying it.

    h11 appends every read to a bytearray (copy one), slices the body out of it twice (copies two and three), and
    httpcore turns the slice into ``bytes`` (copy four). Here a ``bytes`` read that arrives while the buffer is
    empty is kept as it is (``_head``); when the body reader takes all of it, the very same object goes out (and
    ``bytes(obj)`` of a bytes object is no copy). Anything else -- header parsing, a partial take -- first turns
    ``_head`` into the ordinary bytearray (``_data`` is a property doing that), and h11's own code runs unchanged.
    """
    from h11._receivebuffer import ReceiveBuffer

    class ZeroCopyReceiveBuffer(ReceiveBuffer):
        _head: bytes | None = None

        @property  # type: ignore[override]
        def _data(self) -> bytearray:
            head = self._head
            if head is not None:
                self._head = None
                self._buf: bytearray = bytearray(head)
            return self._buf

        @_data.setter
        def _data(self, value: bytearray) -> None:
            self._head = None
            self._buf = value

        def __iadd__(self, byteslike: bytes | bytearray) -> ZeroCopyReceiveBuffer:
            if self._head is None and not self._buf and type(byteslike) is bytes:
                self._head = byteslike
            else:
                self._data += byteslike
            return self

        def __len__(self) -> int:
            head = self._head
            return len(self._buf) if head is None else len(head)

        def maybe_extract_at_most(self, count: int) -> bytes | bytearray | None:  # type: ignore[override]
            head = self._head
            if head is not None and count >= len(head):
                self._head = None
                self._next_line_search = 0
                self._multiple_lines_search = 0
                return head
            data = self._data
            if not data:
                return None
            if count >= len(data):  # everything: hand over the bytearray itself rather than two slices of it
                self._buf = bytearray()
                self._next_line_search = 0
                self._multiple_lines_search = 0
                return data
            return self._extract(count)

    return ZeroCopyReceiveBuffer


def install(transport: httpx.AsyncHTTPTransport) -> bool:
    """Make ``transport`` use :class:`SocketBackend` and a :class:`ReclaimingConnectionPool` (and tune the
    libraries); False, leaving the transport as it was, on untested versions or a transport of another shape (a
    proxy)."""
    if not tune_libraries():
        return False
    pool = getattr(transport, "_pool", None)
    if type(pool) is not httpcore.AsyncConnectionPool or not hasattr(pool, "_network_backend"):
        return False
    pool._network_backend = SocketBackend()
    pool.__class__ = ReclaimingConnectionPool
    return True


# ---------------------------------------------------------------------------------------------- the pool
_ORPHANS_CLOSING: set[asyncio.Future[None]] = set()  # strong references to the tasks closing orphans

#: A response marked closed whose request is still queued this long after the pool first saw it had its close
#: interrupted (a close in progress takes microseconds).
INTERRUPTED_CLOSE_AFTER = 1.0


class ReclaimingConnectionPool(httpcore.AsyncConnectionPool):
    """httpcore's pool, made safe for the engine's cancellations: pause, cancel and close cancel requests in flight,
    and a task is often cancelled again while it unwinds. httpcore 1.0 loses a connection slot for good when

    * a request is cancelled again while httpcore cleans up after a first cancellation -- in ``send``, in the body
      iterator or in ``aclose`` (encode/httpcore#1115), and a single cancellation during ``aclose`` does it too: the
      connection stays ACTIVE, and the request may stay queued in the pool with its response marked closed;
    * a request is cancelled while its new connection is being set up (encode/httpcore#1093): the connection stays
      NEW, neither idle, closed nor reusable.

    Once ``max_connections`` slots are lost, every later request waits for a connection forever (the engine sets no
    pool timeout): a long control storm left every transfer "pending". So ``send`` sees the caller's cancellation
    at most once and a response's close never sees it (:func:`_cancel_once`), and whatever an interrupted clean-up
    still leaves behind is repaired the next time the pool assigns connections: a request whose response is closed
    leaves the queue, and a connection no queued request uses that is neither idle nor closed is an orphan, closed
    and its slot given back. Body reads are not guarded one by one: a task per read cost 15-25% of the CLI's
    download CPU, and the repair covers what an interrupted read leaves.
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        streams: dict[typing.Any, _ResponseSeen] = self.__dict__.setdefault("_response_streams", {})
        now = time.monotonic()
        for pool_request, seen in list(streams.items()):
            if pool_request not in self._requests:
                del streams[pool_request]
            elif getattr(seen.stream, "_closed", False):
                # Marked closed but still queued: a close in progress (it takes microseconds), or one that was
                # interrupted and will never finish. Only the second is still so a while later.
                seen.closed_at = seen.closed_at or now
                if now - seen.closed_at > INTERRUPTED_CLOSE_AFTER:
                    self._requests.remove(pool_request)
                    del streams[pool_request]
                elif not seen.recheck:  # look again then, even if nothing else happens in the pool meanwhile
                    seen.recheck = True
                    asyncio.get_running_loop().call_later(INTERRUPTED_CLOSE_AFTER * 1.1, self._recheck)
        serving = {id(r.connection) for r in self._requests if r.connection is not None}
        orphans = [c for c in self._connections if id(c) not in serving and not (c.is_idle() or c.is_closed())]
        if orphans:
            for connection in orphans:
                self._connections.remove(connection)
            # Closed in a task of their own: the caller's close of what this returns may itself be cancelled, and
            # an orphan out of the pool but never closed would keep its socket (and the server's sends) open.
            closing = asyncio.ensure_future(self._close_connections(orphans))
            _ORPHANS_CLOSING.add(closing)
            closing.add_done_callback(_ORPHANS_CLOSING.discard)
        return super()._assign_requests_to_connections()

    def _recheck(self) -> None:
        """Repair what an interrupted close left, and hand the slots it frees to waiting requests."""
        closing = self._assign_requests_to_connections()
        if closing:
            task = asyncio.ensure_future(self._close_connections(closing))
            _ORPHANS_CLOSING.add(task)
            task.add_done_callback(_ORPHANS_CLOSING.discard)

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        send = super().handle_async_request
        response = await _cancel_once(send(request), lambda r: _cancel_once(r.aclose(), forward=False))
        pool_request = getattr(response.stream, "_pool_request", None)
        if pool_request is not None:
            self.__dict__.setdefault("_response_streams", {})[pool_request] = _ResponseSeen(response.stream)
        response.stream = _CloseToTheEnd(response.stream)
        return response


@dataclass
class _ResponseSeen:
    stream: typing.Any  # httpcore's PoolByteStream
    closed_at: float = 0.0  # when the pool first saw it marked closed while its request was still queued
    recheck: bool = False  # a later look is scheduled


class _CloseToTheEnd:
    """A response body whose close never sees the caller's cancellation: httpcore marks the response closed before
    its clean-up awaits anything, so a close interrupted there is never finished by a later one."""

    def __init__(self, stream: typing.Any) -> None:
        self._stream = stream

    def __aiter__(self) -> typing.AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        await _cancel_once(self._stream.aclose(), forward=False)


T = typing.TypeVar("T")


async def _cancel_once(aw: typing.Awaitable[T], discard: typing.Callable[[T], typing.Awaitable[object]] | None = None,
                       *, forward: bool = True) -> T:
    """Await ``aw`` in its own task, passing the first cancellation of the caller on to it (none if not
    ``forward``) and then waiting for it to finish, however often the caller is cancelled again: httpcore's clean-up
    after a cancellation is then never itself interrupted. A result that arrives after the caller was cancelled is
    handed to ``discard``; the caller's cancellation is raised once ``aw`` is done."""
    inner = asyncio.ensure_future(aw)
    cancelled = False
    while True:
        try:
            await asyncio.shield(inner)
            break
        except asyncio.CancelledError:
            if inner.cancelled():
                raise
            if not cancelled and forward:
                inner.cancel()
            cancelled = True
            if inner.done():
                break  # finished (or failed) just as we were cancelled
    if cancelled:
        if not inner.cancelled() and inner.exception() is None and discard is not None:
            await discard(inner.result())
        raise asyncio.CancelledError
    return inner.result()


# ---------------------------------------------------------------------------------------------- the streams
def _oserror_text(exc: OSError) -> str:
    """"[Errno 111] Connection refused" (asyncio's own wording, "Connect call failed", does not say why)."""
    if exc.errno is not None:
        try:
            return f"[Errno {exc.errno}] {os.strerror(exc.errno)}"
        except ValueError:
            pass
    return str(exc) or type(exc).__name__


def _wake(fut: asyncio.Future[bool], ready: bool) -> None:
    if not fut.done():
        fut.set_result(ready)


class SocketStream(httpcore.AsyncNetworkStream):
    """A connected non-blocking TCP socket, read and written directly on the event loop's thread."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._loop = loop
        self._burst = 0
        self._waiter: asyncio.Future[bool] | None = None

    async def _wait(self, writing: bool, deadline: float | None, timeout_error: type[Exception]) -> None:
        """Wait until the socket is readable (writable), or raise ``timeout_error`` at ``deadline``."""
        loop = self._loop
        if deadline is not None and deadline <= loop.time():
            raise timeout_error("timed out")
        fut: asyncio.Future[bool] = loop.create_future()
        add, remove = (loop.add_writer, loop.remove_writer) if writing else (loop.add_reader, loop.remove_reader)
        add(self._fd, _wake, fut, True)
        timer = None if deadline is None else loop.call_at(deadline, _wake, fut, False)
        self._waiter = fut
        try:
            ready = await fut
        finally:
            self._waiter = None
            remove(self._fd)
            if timer is not None:
                timer.cancel()
        if not ready:
            raise timeout_error("timed out")

    def _closed_error(self, error: type[Exception]) -> Exception:
        return error("the connection is closed")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._burst >= FAIR_READS:
            self._burst = 0
            await asyncio.sleep(0)
        deadline = None
        while True:
            sock = self._sock
            if sock is None:
                raise self._closed_error(httpcore.ReadError)
            try:
                data = sock.recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                self._burst = 0
                if deadline is None and timeout is not None:
                    deadline = self._loop.time() + timeout
                await self._wait(False, deadline, httpcore.ReadTimeout)
                continue
            except OSError as exc:
                raise httpcore.ReadError(_oserror_text(exc)) from exc
            self._burst += 1
            return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        deadline = None
        while view:
            sock = self._sock
            if sock is None:
                raise self._closed_error(httpcore.WriteError)
            try:
                sent = sock.send(view)
            except (BlockingIOError, InterruptedError):
                if deadline is None and timeout is not None:
                    deadline = self._loop.time() + timeout
                await self._wait(True, deadline, httpcore.WriteTimeout)
                continue
            except OSError as exc:
                raise httpcore.WriteError(_oserror_text(exc)) from exc
            view = view[sent:]

    async def aclose(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)  # the waiting read/write retries, finds the socket closed and says so
        sock.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        """TLS goes through asyncio's SSL transport (its handshake, shutdown and buffering are well tried);
        this stream gives up its socket to it."""
        sock, self._sock = self._sock, None
        if sock is None:
            raise httpcore.ConnectError("the connection is closed")
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    sock=sock, ssl=ssl_context, server_hostname=server_hostname, limit=TLS_BUFFER,
                    ssl_handshake_timeout=timeout)
        except TimeoutError as exc:
            sock.close()
            raise httpcore.ConnectTimeout("timed out during the TLS handshake") from exc
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            sock.close()
            raise
        return TLSStream(reader, writer)

    def get_extra_info(self, info: str) -> typing.Any:
        sock = self._sock
        if info == "is_readable":
            return httpcore._utils.is_socket_readable(sock)
        if sock is None:
            return None
        if info == "socket":
            return sock
        try:
            if info == "client_addr":
                return sock.getsockname()
            if info == "server_addr":
                return sock.getpeername()
        except OSError:
            return None
        return None


class TLSStream(httpcore.AsyncNetworkStream):
    """An asyncio SSL transport behind httpcore's stream interface."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout("timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._writer.close()  # no wait for the peer's close_notify, as httpcore's own backends do

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("TLS over TLS (an HTTPS proxy to an HTTPS origin) is not supported here")

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            transport = self._writer.transport
            return self._reader.at_eof() or transport.is_closing() or httpcore._utils.is_socket_readable(
                self._writer.get_extra_info("socket"))
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        return None


# ---------------------------------------------------------------------------------------------- the backend
def _selector_loop() -> asyncio.AbstractEventLoop | None:
    """The running loop if it can watch sockets (add_reader); None under trio or on a proactor loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop if isinstance(loop, asyncio.SelectorEventLoop) else None


def _default_backend() -> httpcore.AsyncNetworkBackend:
    """httpcore's own choice (anyio on asyncio, trio under trio)."""
    from httpcore._backends.auto import AutoBackend

    return AutoBackend()


class SocketBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on plain sockets (see the module docstring); delegates to httpcore's default
    backend where it cannot run."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None) -> httpcore.AsyncNetworkStream:
        loop = _selector_loop()
        if loop is None:
            return await _default_backend().connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                                        socket_options=socket_options)
        options = list(socket_options or ())
        try:
            async with asyncio.timeout(timeout):
                sock = await _connect(loop, host, port, local_address, options)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("timed out connecting") from exc
        except OSError as exc:
            raise httpcore.ConnectError(_oserror_text(exc)) from exc
        return SocketStream(sock, loop)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SocketOption] | None = None
                                  ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - the engine never uses it
        return await _default_backend().connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int, local_address: str | None,
                   options: list[SocketOption]) -> socket.socket:
    """Resolve and connect, trying the addresses in the resolver's order, IPv6 and IPv4 interleaved, a new attempt
    every HAPPY_EYEBALLS_DELAY while the earlier ones are still pending; the first to connect wins."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    if not infos:
        raise OSError(errno.EHOSTUNREACH, f"no address for {host}")
    addrs = _interleave(infos)
    errors: list[OSError] = []
    pending: set[asyncio.Task[socket.socket]] = set()
    winner: socket.socket | None = None
    try:
        for family, type_, proto, addr in addrs:
            pending.add(loop.create_task(_connect_one(loop, family, type_, proto, addr, local_address, options)))
            winner = await _first_success(pending, errors, HAPPY_EYEBALLS_DELAY)
            if winner is not None:
                return winner
        while pending:
            winner = await _first_success(pending, errors, None)
            if winner is not None:
                return winner
    finally:
        for task in pending:
            task.cancel()
        if pending:
            done = await asyncio.gather(*pending, return_exceptions=True)
            for result in done:  # a loser that connected anyway
                if isinstance(result, socket.socket) and result is not winner:
                    result.close()
    raise errors[0] if len(errors) == 1 else OSError(errors[-1].errno, "; ".join(_oserror_text(e) for e in errors))


async def _first_success(pending: set[asyncio.Task[socket.socket]], errors: list[OSError],
                         delay: float | None) -> socket.socket | None:
    """Wait up to ``delay`` (None: until none is pending) for an attempt to connect; failures go to ``errors``."""
    loop = asyncio.get_running_loop()
    deadline = None if delay is None else loop.time() + delay
    while pending:
        wait = None if deadline is None else max(0.0, deadline - loop.time())
        done, _ = await asyncio.wait(pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return None
        for task in done:
            pending.discard(task)
            exc = task.exception()
            if exc is None:
                winner = task.result()
                for other in done:  # two finished at once: keep one
                    if other is not task and not other.cancelled() and other.exception() is None:
                        other.result().close()
                return winner
            errors.append(exc if isinstance(exc, OSError) else OSError(str(exc)))
        if delay is not None and not pending:
            return None
    return None


def _interleave(infos: list[tuple[typing.Any, ...]]) -> list[tuple[typing.Any, ...]]:
    """Alternate address families, keeping the resolver's order within each (RFC 8305 §4)."""
    by_family: dict[int, list[tuple[typing.Any, ...]]] = {}
    for family, type_, proto, _name, addr in infos:
        by_family.setdefault(family, []).append((family, type_, proto, addr))
    lists = list(by_family.values())
    out: list[tuple[typing.Any, ...]] = []
    for i in range(max(len(lst) for lst in lists)):
        out.extend(lst[i] for lst in lists if i < len(lst))
    return out


async def _connect_one(loop: asyncio.AbstractEventLoop, family: int, type_: int, proto: int, addr: typing.Any,
                       local_address: str | None, options: list[SocketOption]) -> socket.socket:
    sock = socket.socket(family, type_, proto)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio (and so httpcore) does
        for option in options:
            sock.setsockopt(*option)
        if local_address is not None:
            sock.bind((local_address, 0))
        await loop.sock_connect(sock, addr)
    except BaseException:
        sock.close()
        raise
    return sock


def backend_of(client: httpx.AsyncClient) -> httpcore.AsyncNetworkBackend | None:
    """The network backend a client's default transport uses (for tests and diagnostics)."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    return getattr(pool, "_network_backend", None)


