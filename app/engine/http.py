"""The engine's HTTP layer: one tuned httpx client per scheduler loop, and transport-error mapping."""

from __future__ import annotations

import re
import socket
from email.utils import parsedate_to_datetime
from importlib.metadata import version
from time import time
from urllib.parse import quote

import httpcore
import httpx

from app.engine import nettune
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.redact import REDACTED, SECRET_HEADERS, SECRET_PARAMS, install_log_redaction, redact_text

# httpx logs every request's full URL at INFO: redact signatures there too, whoever turns that logging on.
install_log_redaction("httpx", "httpcore")


def _keepalive_options(keepalive: float) -> list[tuple[int, int, int]]:
    opts = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    idle = max(1, int(keepalive))
    if hasattr(socket, "TCP_KEEPIDLE"):
        opts.append((socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle))
        opts.append((socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, idle // 3)))
    elif hasattr(socket, "TCP_KEEPALIVE"):  # macOS
        opts.append((socket.IPPROTO_TCP, socket.TCP_KEEPALIVE, idle))
    return opts


def build_client(timeout: float, keepalive: float, max_connections: int = 64) -> httpx.AsyncClient:
    """An HTTP/1.1 client with per-operation timeouts (never a whole-request one) and TCP keepalive.

    Redirects are followed explicitly per request by the engine, not here; nothing is retried inside httpx,
    so the engine's retry policy sees every failure.
    """
    try:
        transport = httpx.AsyncHTTPTransport(
            retries=0,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                                keepalive_expiry=30.0),
            socket_options=_keepalive_options(keepalive),
        )
        nettune.install(transport)  # the tuned data path, where the installed httpx is one it knows
        return httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(connect=timeout, read=timeout, write=timeout, pool=None),
            headers={"User-Agent": f"rusty-cat/{version('rusty-cat') if _installed() else 'dev'}"},
        )
    except Exception as exc:  # pragma: no cover - only with a broken SSL setup
        raise MeowError(InnerErrorCode.HTTP_CLIENT_BUILD_FAILED, f"cannot build HTTP client: {exc}") from exc


async def release_connections(client: httpx.AsyncClient) -> None:
    """Close the pooled connections an injected client opened on the engine's loop, leaving the client open.

    Those sockets belong to the loop that is shutting down; once it is gone nobody could close them, and the
    owner's own ``aclose()`` would fail. httpx has no public API for this, so its transports are reached
    through its private attributes, checked rather than assumed.
    """
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        if isinstance(transport, httpx.AsyncBaseTransport):
            await transport.aclose()


def _installed() -> bool:
    try:
        version("rusty-cat")
        return True
    except Exception:
        return False


def transport_error(exc: BaseException, what: str) -> MeowError:
    """Every network-level failure (connect, reset, timeout, broken body) is a retryable HttpError."""
    kind = type(exc).__name__
    detail = redact_text(str(exc)) or _cause_text(exc, kind)
    if isinstance(exc, httpx.TimeoutException | httpcore.TimeoutException):
        detail = f"timed out ({kind})"
    return MeowError(InnerErrorCode.HTTP_ERROR, f"{what}: {detail}")


def _cause_text(exc: BaseException, kind: str) -> str:
    """httpx wraps an OS error in message-less exceptions (a reset reads "ReadError"); name the cause instead,
    e.g. "ReadError: [Errno 104] Connection reset by peer", so the error says what happened."""
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen and len(seen) < 8:
        seen.add(id(cause))
        text = redact_text(str(cause))
        if text:
            return f"{kind}: {text}"
        cause = cause.__cause__ or cause.__context__
    return kind


#: The slowest steady rate at which a server may drain an upload body from our socket buffers before the wait for
#: its answer counts as a stall: the read timeout of an upload grows with the body it follows.
UPLOAD_DRAIN_FLOOR = 32 * 1024


def upload_timeout(client: httpx.AsyncClient, body_length: int) -> httpx.Timeout:
    """A request body can sit in kernel buffers (megabytes on loopback) after the last write returned, and the
    server reads it at its own pace; without this a slow-but-steady upload would hit the read timeout."""
    base = client.timeout
    read = None if base.read is None else base.read + body_length / UPLOAD_DRAIN_FLOOR
    return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)


#: Statuses worth another attempt; Retry-After is honoured on them.
RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


def parse_retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), cap)


def status_error(response: httpx.Response, what: str, preview: bytes, max_retry_after: float,
                 code: InnerErrorCode = InnerErrorCode.RESPONSE_STATUS_ERROR) -> MeowError:
    """A non-success response as a MeowError: retryable for 408/429/5xx, final otherwise."""
    status = response.status_code
    text = scrub_request_secrets(redact_text(preview.decode("utf-8", errors="replace")), response)
    remote_code = response.headers.get("x-ms-error-code") or response.headers.get("x-oss-ec")
    return MeowError(
        code,
        f"{what} {status}: {text}" if text else f"{what} {status}",
        status=status,
        remote_code=remote_code,
        retryable=status in RETRYABLE_STATUSES,
        retry_after=parse_retry_after(response.headers.get("retry-after"), max_retry_after),
    )


def scrub_request_secrets(text: str, response: httpx.Response) -> str:
    """Remove from a server's error text every secret our request carried: services echo them (Azure's 403
    quotes the Shared Key signature; OSS's SignatureDoesNotMatch quotes the canonical request)."""
    try:
        request = response.request
    except RuntimeError:  # a response built without a request (mock transports)
        return text
    secrets: set[str] = set()
    for name, value in request.headers.items():
        if name.lower() in SECRET_HEADERS:
            secrets.add(value)
            secrets.update(p for p in re.split(r"[\s,:]+", value) if len(p) >= 12)
            secrets.update(m.group(1) for m in re.finditer(r"Signature=([^,\s]+)", value))
    for name, value in request.url.params.multi_items():
        if name.lower() in SECRET_PARAMS and value:
            secrets.update({value, quote(value, safe=""), quote(value, safe="/")})
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    return text


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
    except (httpx.HTTPError, httpcore.NetworkError, OSError):
        pass
    return bytes(buf[:limit])
