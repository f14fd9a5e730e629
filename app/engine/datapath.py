"""The contract of the bulk data path, and its second implementation: through an httpx client the embedding program
injected (``MeowConfig.http_client``), so that client's proxy, TLS settings and headers apply to bodies as well.

A data path is used from worker threads: :meth:`DataPath.exchange` blocks until the answer's head has arrived and
returns it with its body unread. The engine's own path is :class:`app.engine.wire.Wire` (http.client on blocking
sockets). :class:`HttpxDataPath` runs each exchange and each read on the loop that owns the injected client and waits
for it in the thread: a hop per read, slower than the engine's own path, but exactly the client the program chose.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from app.engine.wire import Body, FileRange, ShortSource, Stopped, StopToken, read_at_most

if TYPE_CHECKING:
    import httpx

#: How often a thread waiting on the loop looks at its stop token.
_POLL = 0.1


class HeaderMap(Protocol):
    def get(self, name: str, default: Any = None) -> Any: ...


class DataResponse(Protocol):
    status: int
    reason: str
    url: str
    via: str | None  # the proxy it came through (credentials redacted), if an HTTP proxy answered for the server

    @property
    def headers(self) -> HeaderMap: ...

    def header(self, name: str) -> str | None: ...

    def readinto(self, view: memoryview) -> int: ...

    def read(self, limit: int) -> bytes: ...

    def close(self) -> None: ...


class DataPath(Protocol):
    def exchange(self, method: str, url: str, headers: Iterable[tuple[str, str]], stop: StopToken, *,
                 body: Body | None = None, follow_redirects: bool = False,
                 on_sent: Callable[[int], None] | None = None) -> DataResponse: ...

    def close(self) -> None: ...


class HttpxDataPath:
    """Bodies through an injected ``httpx.AsyncClient``, driven from worker threads."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop

    def _wait(self, coro: Any, stop: StopToken) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        while True:
            try:
                return fut.result(timeout=_POLL)
            except concurrent.futures.TimeoutError:
                if stop.is_set():
                    fut.cancel()
                    try:
                        fut.result()
                    except BaseException:
                        pass
                    raise Stopped from None
            except concurrent.futures.CancelledError:
                raise Stopped from None

    def exchange(self, method: str, url: str, headers: Iterable[tuple[str, str]], stop: StopToken, *,
                 body: Body | None = None, follow_redirects: bool = False,
                 on_sent: Callable[[int], None] | None = None) -> _HttpxResponse:
        stop.check()
        pairs = list(headers)
        if body is not None and not any(k.lower() == "content-length" for k, _ in pairs):
            pairs.append(("Content-Length", str(body.length)))

        async def send() -> httpx.Response:
            content = None if body is None else _async_body(body, on_sent)
            request = self.client.build_request(method, url, headers=pairs, content=content)
            return await self.client.send(request, stream=True, follow_redirects=follow_redirects)

        response = self._wait(send(), stop)
        return _HttpxResponse(self, response, stop)

    def close(self) -> None:
        """The injected client belongs to the program that made it: nothing to close here."""


async def _async_body(body: Body, on_sent: Callable[[int], None] | None) -> AsyncIterator[bytes]:
    for observer in body.observers:
        observer.start()
    for piece in body.pieces:
        if isinstance(piece, FileRange):
            done = 0
            while done < piece.length:
                size = min(1 << 20, piece.length - done)
                data = await asyncio.to_thread(os.pread, piece.fd, size, piece.offset + done)
                if not data:
                    raise ShortSource(piece.offset + done, piece.offset + piece.length)
                done += len(data)
                yield _observed(body, data, on_sent)
        else:
            yield _observed(body, bytes(piece), on_sent)


def _observed(body: Body, data: bytes, on_sent: Callable[[int], None] | None) -> bytes:
    view = memoryview(data)
    for observer in body.observers:
        observer.update(view)
    if on_sent is not None:
        on_sent(len(data))
    return data


class _HttpxResponse:
    def __init__(self, path: HttpxDataPath, response: httpx.Response, stop: StopToken) -> None:
        self._path, self._response, self._stop = path, response, stop
        self.status = response.status_code
        self.via = None
        self.reason = response.reason_phrase
        self.url = str(response.url)
        self._pieces = response.aiter_raw()
        self._left = memoryview(b"")

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    def readinto(self, view: memoryview) -> int:
        self._stop.check()
        if not self._left:
            try:
                self._left = memoryview(self._path._wait(self._next(), self._stop))
            except StopAsyncIteration:
                return 0
        n = min(len(view), len(self._left))
        view[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    async def _next(self) -> bytes:
        return await self._pieces.__anext__()

    def read(self, limit: int) -> bytes:
        return read_at_most(self.readinto, limit)

    def close(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._response.aclose(), self._path.loop).result()
        except BaseException:
            pass
