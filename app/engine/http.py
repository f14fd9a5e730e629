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
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx

from app.engine.errors import InnerErrorCode, MeowError
from app.engine.network import Network
from app.engine.redact import install_log_redaction
from app.engine.wire import keepalive_options

#: How long an idle pooled connection of the engine's own client is kept.
KEEPALIVE_EXPIRY = 30.0


def user_agent() -> str:
    try:
        return f"rusty-cat/{version('rusty-cat')}"
    except PackageNotFoundError:
        return "rusty-cat/dev"


class _ProxyRoutingTransport(httpx.AsyncBaseTransport):
    """One ``AsyncHTTPTransport`` per proxy (and one for direct requests), chosen per request by the proxy rules
    (curl's no_proxy included, which httpx's own mounts cannot express). Transports are made on first use, so the
    TLS context is built only when an https request needs it."""

    def __init__(self, network: Network, keepalive: float, max_connections: int) -> None:
        self._network = network
        self._keepalive = keepalive
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                                    keepalive_expiry=KEEPALIVE_EXPIRY)
        self._transports: dict[str | None, httpx.AsyncHTTPTransport] = {}

    def _transport(self, request: httpx.Request) -> httpx.AsyncHTTPTransport:
        url = request.url
        proxy = self._network.proxy_for(url.scheme, url.host, url.port)
        key = None if proxy is None else proxy.url
        transport = self._transports.get(key)
        if transport is None:
            verify = self._network.ssl_context() if (url.scheme == "https" or proxy is not None) else True
            transport = httpx.AsyncHTTPTransport(
                verify=verify, retries=0, limits=self._limits, socket_options=keepalive_options(self._keepalive),
                proxy=None if proxy is None else httpx.Proxy(proxy.url),
            )
            self._transports[key] = transport
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport(request).handle_async_request(request)

    async def aclose(self) -> None:
        transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            await transport.aclose()


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
    """Sends each request with the program's client on the program's loop; the answer's body is read there too."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    async def _on_owner(self, coro: Any) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.ByteStream):
            await request.aread()  # a control request's body is small: take it along as bytes
        response: httpx.Response = await self._on_owner(self._client.send(request, stream=True))
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=_ForwardedStream(response, self), extensions=response.extensions)


class _ForwardedStream(httpx.AsyncByteStream):
    def __init__(self, response: httpx.Response, transport: _ForwardingTransport) -> None:
        self._response, self._transport = response, transport

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pieces = self._response.aiter_raw()
        while True:
            try:
                yield await self._transport._on_owner(_next_piece(pieces))
            except StopAsyncIteration:
                return

    async def aclose(self) -> None:
        await self._transport._on_owner(self._response.aclose())


async def _next_piece(pieces: AsyncIterator[bytes]) -> bytes:
    return await pieces.__anext__()


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
