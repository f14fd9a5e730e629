"""The engine's httpx clients, for probes and control requests (bulk bodies take :mod:`app.engine.wire`).

* :func:`build_client`: the engine's own client, on the scheduler's loop, through the same proxy rules and TLS
  context as the data path (:class:`~app.engine.network.Network`), via a transport that picks the proxy per request.
* :func:`injected_client_view`: a program's own ``httpx.AsyncClient`` (``MeowConfig.http_client``) belongs to the
  program's loop; the engine's coroutines run on another. The view is a client whose transport hands each request to
  the program's client on the program's loop, so that client's proxy, TLS, headers, auth and hooks apply, and none of
  its connections ever live on the engine's loop.

Only public httpx API is used: clients, ``AsyncBaseTransport``, ``AsyncHTTPTransport``, ``Proxy``, streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import httpx

from app.engine.errors import InnerErrorCode, MeowError
from app.engine.network import Network, user_agent
from app.engine.redact import install_log_redaction
from app.engine.wire import keepalive_options

#: How long an idle pooled connection of the engine's own client is kept.
KEEPALIVE_EXPIRY = 30.0


class _ProxyRoutingTransport(httpx.AsyncBaseTransport):
    """One ``AsyncHTTPTransport`` per proxy and scheme, chosen per request by the proxy rules (curl's no_proxy
    included, which httpx's own mounts cannot express). Transports are made on first use, so the TLS context is built
    only when an https request needs it.

    And a cancelled request never cancels httpcore: httpcore 1.0 loses a connection-pool slot for good when a request
    is cancelled while its connection is set up or cleaned up (encode/httpcore#1093, #1115, open upstream), and after
    ``max_connections`` such losses every request waits forever. So each exchange, each body read and each close runs
    in a task of its own that a cancellation does not reach: a cancelled caller leaves at once, the request finishes
    (or times out) behind it and its response is closed, giving the slot back. That costs one task per step, on
    probes and control requests only (bulk bodies take the data path)."""

    def __init__(self, network: Network, keepalive: float, max_connections: int) -> None:
        self._network = network
        self._keepalive = keepalive
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                                    keepalive_expiry=KEEPALIVE_EXPIRY)
        self._transports: dict[tuple[str | None, bool], httpx.AsyncHTTPTransport] = {}

    def _transport(self, request: httpx.Request) -> httpx.AsyncHTTPTransport:
        url = request.url
        proxy = self._network.proxy_for(url.scheme, url.host, url.port)
        tls = url.scheme == "https"
        key = (None if proxy is None else proxy.url, tls)
        transport = self._transports.get(key)
        if transport is None:
            transport = httpx.AsyncHTTPTransport(
                verify=self._network.ssl_context() if tls else False, retries=0, limits=self._limits,
                socket_options=keepalive_options(self._keepalive),
                proxy=None if proxy is None else httpx.Proxy(proxy.url),
            )
            self._transports[key] = transport
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await cancel_safe(self._transport(request).handle_async_request(request))

    async def aclose(self) -> None:
        transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            await transport.aclose()


_background: set[asyncio.Future[Any]] = set()


def _keep(fut: asyncio.Future[Any]) -> None:
    """Hold a background step until it ends (the loop keeps only weak references to tasks)."""
    _background.add(fut)
    fut.add_done_callback(_background.discard)


async def _closed(response: httpx.Response) -> None:
    try:
        await response.aclose()
    except Exception:  # the connection is gone either way; nobody is waiting for this
        pass


Runner = Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]]


async def _here(coro: Coroutine[Any, Any, Any]) -> Any:
    return await coro


async def cancel_safe(exchange: Coroutine[Any, Any, httpx.Response], run: Runner = _here) -> httpx.Response:
    """Run one exchange in a task of its own (through ``run``: here, or on the loop that owns the client); a
    cancelled caller leaves it to finish and be closed behind it. The answer's body reads and close are wrapped the
    same way (:class:`_CancelSafeStream`)."""
    step = asyncio.ensure_future(run(exchange))
    try:
        response: httpx.Response = await asyncio.shield(step)
    except asyncio.CancelledError:
        def close_when_done(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                _keep(asyncio.ensure_future(run(_closed(done.result()))))

        step.add_done_callback(close_when_done)
        raise
    return httpx.Response(response.status_code, headers=response.headers,
                          stream=_CancelSafeStream(response, run), extensions=response.extensions)


_END = object()


async def _next_piece(pieces: AsyncIterator[bytes]) -> object:
    try:
        return await pieces.__anext__()
    except StopAsyncIteration:
        return _END


class _CancelSafeStream(httpx.AsyncByteStream):
    """An answer's body whose reads and close a cancellation cannot interrupt half-way (see cancel_safe)."""

    def __init__(self, response: httpx.Response, run: Runner) -> None:
        self._response = response
        self._run = run
        self._closing: asyncio.Future[None] | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pieces = self._response.aiter_raw()
        while True:
            step = asyncio.ensure_future(self._run(_next_piece(pieces)))
            try:
                piece = await asyncio.shield(step)
            except asyncio.CancelledError:
                step.add_done_callback(lambda _: self._close_in_background())
                raise
            if piece is _END:
                return
            yield piece  # type: ignore[misc]

    def _close_in_background(self) -> asyncio.Future[None]:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._run(_closed(self._response)))
            _keep(self._closing)
        return self._closing

    async def aclose(self) -> None:
        await asyncio.shield(self._close_in_background())


def build_client(network: Network, timeout: float, keepalive: float, max_connections: int = 64) -> httpx.AsyncClient:
    """An HTTP/1.1 client with per-operation timeouts (never a whole-request one), TCP keepalive, the network's
    proxies and certificates. Redirects are followed per request by the caller; nothing is retried inside httpx, so
    the engine's retry policy sees every failure. The environment is read by :class:`Network`, not by httpx."""
    try:
        return httpx.AsyncClient(
            transport=_ProxyRoutingTransport(network, keepalive, max_connections),
            timeout=httpx.Timeout(connect=timeout, read=timeout, write=timeout, pool=None),
            headers={"User-Agent": user_agent()},
            trust_env=False,
        )
    except Exception as exc:  # pragma: no cover - only with a broken SSL setup
        raise MeowError(InnerErrorCode.HTTP_CLIENT_BUILD_FAILED, f"cannot build HTTP client: {exc}") from None


# ---------------------------------------------------------------------------------------------- injected clients
class _ForwardingTransport(httpx.AsyncBaseTransport):
    """Sends each request with the program's client on the program's loop; the answer's body is read there too,
    cancel-safe as the engine's own client is (a cancellation here never cancels the program's client mid-step)."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    async def _on_owner(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.ByteStream):
            await request.aread()  # a control request's body is small: take it along as bytes
        return await cancel_safe(self._client.send(request, stream=True), self._on_owner)


def injected_client_view(client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> httpx.AsyncClient:
    """A client for the engine's loop that sends everything through ``client`` on ``loop`` (its owner's).

    Requests built on the view already carry ``client``'s default headers and timeouts; ``client.send`` then
    applies its auth, event hooks and transport (proxy, TLS)."""
    return httpx.AsyncClient(transport=_ForwardingTransport(client, loop), headers=client.headers,
                             timeout=client.timeout, trust_env=False, follow_redirects=client.follow_redirects)


# ---------------------------------------------------------------------------------------------- small answers
async def read_preview(response: httpx.Response, limit: int = 4096) -> bytes:
    """At most ``limit`` bytes of a body (error previews are capped so a huge error page costs nothing)."""
    buf = bytearray()
    try:
        async for piece in response.aiter_raw():
            buf += piece
            if len(buf) >= limit:
                break
    except httpx.StreamConsumed:  # an already-read (non-streamed) response, e.g. from a mock transport
        return response.content[:limit]
    except (httpx.HTTPError, OSError):
        pass
    return bytes(buf[:limit])


# httpx logs every request's full URL at INFO: redact signatures there too, whoever turns that logging on.
install_log_redaction("httpx", "httpcore")
