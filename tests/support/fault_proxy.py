"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, for servers that cannot misbehave on their own (Azurite).

The proxy forwards every request byte for byte (head and body, Host included) to one upstream server, so Shared
Key, SAS, OSS V4 and presigned signatures stay valid: none of them covers the host, and nothing the proxy
forwards is changed unless a fault says so. Each client connection is served by its own thread; every request
gets a fresh upstream connection that is closed after the answer, so a fault can never leave a half-used upstream
socket behind for the next request.

What it can do (:class:`ProxyFault`, matched per request like :class:`tests.support.http_server.Fault`, with the
same ``skip``/``times`` counting) — the transport misbehaviours of engine-and-protocols.md §4:

* answer for the server without forwarding: ``status`` (500/503 with an error body, 429 + Retry-After, a 403
  "expired" rejection, a 416 ``bytes */N``), ``drop`` (close without a word);
* mangle the request: ``reset_request`` / ``truncate_request`` (forward part of the body, then RST or FIN both
  sides: a connection that dies mid-upload), ``strip_range`` (forward without ``Range``/``x-ms-range``/``If-Range``,
  so the server answers 200 with the whole body: a server that ignores Range), ``delay`` (a slow server);
* mangle the answer: ``lose_response`` (the server acted, the client never hears), ``reset`` / ``truncate``
  (part of the body, then RST or FIN), ``stall`` (silence mid-body or before the status line), ``long_body``
  (more bytes than Content-Length promised), ``no_content_length`` (chunked, or a HEAD without the header).

``on_apply`` runs in the proxy thread once a fault has done its damage (after the partial body of a reset,
truncate or stall; after the server acted for ``lose_response``; before answering for the others), e.g. "replace
the remote object now", to change it between two requests of one run. :attr:`exchanges` logs what passed;
:meth:`body_bytes` counts response body bytes sent to the client (downloads) and request body bytes forwarded
upstream (uploads).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Literal
from urllib.parse import urlsplit

from tests.support.http_server import LINE_LIMIT, Headers, _reason, read_head, take_fault
from tests.support.loopback import LoopbackServer, close_socket

__all__ = ["PROXY_FAULT_KINDS", "FaultProxy", "ProxyExchange", "ProxyFault", "ProxyRequest"]

PROXY_FAULT_KINDS = frozenset({
    "status", "drop", "delay", "reset_request", "truncate_request", "strip_range", "lose_response", "reset",
    "truncate", "stall", "long_body", "no_content_length",
})
_RANGE_HEADERS = frozenset({"range", "x-ms-range", "if-range"})
_FRAMING = frozenset({"content-length", "transfer-encoding"})
_Framing = Literal["length", "chunked", "close", "none"]


@dataclass
class ProxyRequest:
    """One client request as read (``body`` is the raw body as framed on the wire, ``body_len`` its length
    once de-chunked)."""

    method: str
    target: str
    version: str
    header_pairs: list[tuple[str, str]]
    body: bytes = b""
    body_len: int = 0

    @property
    def headers(self) -> Headers:
        return Headers(self.header_pairs)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    @property
    def range(self) -> str | None:
        """The byte range asked for, whichever header carries it (``Range`` or Azure's ``x-ms-range``)."""
        h = self.headers
        return h.get("x-ms-range") or h.get("range")


@dataclass
class ProxyFault:
    """One injected misbehaviour (see the module docstring for the kinds).

    Matching: ``method``, ``path_contains``, ``query_contains`` and ``where(request)`` (None = any) must all hold;
    then the request passes ``skip`` times untouched and the fault applies ``times`` times (-1 = forever).
    """

    kind: str
    method: str | None = None
    path_contains: str | None = None
    query_contains: str | None = None
    where: Callable[[ProxyRequest], bool] | None = None
    times: int = 1
    skip: int = 0
    status: int = 500  # "status"
    headers: dict[str, str] = field(default_factory=dict)  # "status": extra response headers
    body: bytes = b""  # "status": response body
    after_bytes: int | None = 0  # reset/truncate (both phases) and stall: body bytes before misbehaving
    seconds: float = 0.0  # "stall" / "delay"
    extra: int = 16  # "long_body": unannounced bytes after the body
    on_apply: Callable[[ProxyRequest], object] | None = None
    remaining: int = field(init=False)
    applied: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.kind not in PROXY_FAULT_KINDS:
            raise ValueError(f"unknown proxy fault kind {self.kind!r}")
        if self.after_bytes is None and self.kind != "stall":
            raise ValueError("after_bytes=None (before the status line) only makes sense for a stall")
        self.remaining = self.times

    def matches(self, req: ProxyRequest) -> bool:
        if self.method is not None and self.method.upper() != req.method:
            return False
        if self.path_contains is not None and self.path_contains not in req.path:
            return False
        if self.query_contains is not None and self.query_contains not in req.query:
            return False
        return self.where is None or bool(self.where(req))


@dataclass
class ProxyExchange:
    """What one request met: ``forwarded`` request body bytes reached the server, ``sent`` response body bytes
    reached the client (partial sends included), ``status`` 0 = the client got no status line."""

    conn_id: int
    request: ProxyRequest
    fault: str | None = None
    status: int = 0
    response_headers: Headers = field(default_factory=Headers)
    forwarded: int = 0
    sent: int = 0

    @property
    def method(self) -> str:
        return self.request.method


@dataclass
class _Upstream:
    status: int
    reason: str
    pairs: list[tuple[str, str]]
    body: bytes
    framing: _Framing

    @property
    def headers(self) -> Headers:
        return Headers(self.pairs)


class _Close(Exception):
    """End this client connection: ``reset`` with RST instead of FIN."""

    def __init__(self, reset: bool = False) -> None:
        super().__init__("close")
        self.reset = reset


class FaultProxy(LoopbackServer):
    """Threaded fault-injecting proxy in front of ``upstream`` (``http://host:port``); a context manager."""

    thread_name = "fault-proxy"

    def __init__(self, upstream: str) -> None:
        super().__init__()
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"the proxy needs an upstream like http://127.0.0.1:PORT, got {upstream!r}")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self._faults: list[ProxyFault] = []
        self._log: list[ProxyExchange] = []

    def rewrite(self, url: str) -> str:
        """``url`` (pointing at the upstream) pointed at the proxy instead, path and query untouched."""
        parts = urlsplit(url)
        return parts._replace(netloc=f"127.0.0.1:{self.port}").geturl()

    # -- faults and log ----------------------------------------------------------------------------------------------
    def add_fault(self, fault: ProxyFault) -> ProxyFault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def exchanges(self) -> list[ProxyExchange]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def body_bytes(self, method: str | None = None) -> int:
        """Body bytes that crossed the proxy for ``method``: sent to the client for GET/HEAD, forwarded to the
        server for anything else (uploads)."""
        total = 0
        for ex in self.exchanges:
            if method is not None and ex.method != method.upper():
                continue
            total += ex.sent if ex.method in ("GET", "HEAD") else ex.forwarded
        return total

    def _take(self, req: ProxyRequest) -> ProxyFault | None:
        with self._lock:
            return take_fault(self._faults, lambda f: f.matches(req))

    # -- connections -------------------------------------------------------------------------------------------------
    def _serve_conn(self, conn: socket.socket, rfile: BinaryIO, conn_id: int) -> bool:
        try:
            while not self._stop.is_set():
                req = _read_request(rfile)
                if req is None or not self._exchange(conn, conn_id, req):
                    break
        except _Close as close:
            return close.reset
        except ValueError:
            pass  # the client sent garbage
        return False

    def _exchange(self, conn: socket.socket, conn_id: int, req: ProxyRequest) -> bool:
        """Answer one request; False closes the client connection afterwards."""
        fault = self._take(req)
        ex = ProxyExchange(conn_id, req, fault.kind if fault else None)
        with self._lock:
            self._log.append(ex)
        kind = fault.kind if fault else None
        if kind in ("drop", "status", "delay", "strip_range", "long_body", "no_content_length"):
            _fire(fault, req)  # these act on the whole exchange: the hook runs first
        if kind == "drop":
            raise _Close()
        if kind == "status":
            assert fault is not None
            pairs = [*fault.headers.items()]
            if not any(k.lower() == "content-type" for k, _ in pairs) and fault.body:
                pairs.append(("Content-Type", "application/xml" if fault.body.startswith(b"<") else "text/plain"))
            answer = _Upstream(fault.status, _reason(fault.status), pairs, fault.body, "length")
            self._respond(conn, req, answer, ex, None)
            return _keep_alive(req, answer)
        if kind == "delay" and self._stop.wait(fault.seconds):  # type: ignore[union-attr]
            raise _Close()
        if kind == "strip_range":
            req = ProxyRequest(req.method, req.target, req.version,
                               [(k, v) for k, v in req.header_pairs if k.lower() not in _RANGE_HEADERS],
                               req.body, req.body_len)
        answer = self._forward(req, ex, fault)
        if kind == "lose_response":
            _fire(fault, req)  # the server acted; the client will never hear
            raise _Close()
        self._respond(conn, req, answer, ex, fault)
        return _keep_alive(req, answer) and kind not in ("long_body",)

    def _forward(self, req: ProxyRequest, ex: ProxyExchange, fault: ProxyFault | None) -> _Upstream:
        """Send the request to the upstream on a fresh connection and read the whole answer."""
        up = socket.create_connection((self.upstream_host, self.upstream_port), timeout=60)
        kind = fault.kind if fault else None
        try:
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            head = f"{req.method} {req.target} {req.version}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in req.header_pairs) + "\r\n"
            body = req.body
            if kind in ("reset_request", "truncate_request"):
                assert fault is not None and fault.after_bytes is not None
                body = body[: fault.after_bytes]
            up.sendall(head.encode("latin-1") + body)
            ex.forwarded = len(body) if kind in ("reset_request", "truncate_request") else req.body_len
            if kind in ("reset_request", "truncate_request"):
                # The server has part of the body; both sides see the connection die (RST) or end (FIN).
                reset = kind == "reset_request"
                close_socket(up, reset)
                _fire(fault, req)
                raise _Close(reset)
            with up.makefile("rb") as ufile:
                return _read_response(ufile, req.method)
        finally:
            close_socket(up, False)

    def _respond(self, conn: socket.socket, req: ProxyRequest, answer: _Upstream, ex: ProxyExchange,
                 fault: ProxyFault | None) -> None:
        kind = fault.kind if fault else None
        is_head = req.method == "HEAD"
        framing: _Framing = answer.framing
        if kind == "no_content_length" and framing == "length":
            framing = "chunked"
        pairs = [(k, v) for k, v in answer.pairs if k.lower() not in _FRAMING]
        if is_head or framing == "none":
            pairs = list(answer.pairs)  # a HEAD's Content-Length describes the resource: pass it as is
            if kind == "no_content_length":
                pairs = [(k, v) for k, v in pairs if k.lower() not in _FRAMING] + [("Transfer-Encoding", "chunked")]
        elif framing == "chunked":
            pairs.append(("Transfer-Encoding", "chunked"))
        elif framing == "length":
            pairs.append(("Content-Length", str(len(answer.body))))
        else:
            pairs.append(("Connection", "close"))
        head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n"
        body = b"" if is_head or framing == "none" else answer.body
        ex.response_headers = Headers(pairs)
        if kind == "stall" and fault is not None and fault.after_bytes is None:
            _fire(fault, req)
            self._stop.wait(fault.seconds)
            raise _Close()
        ex.status = answer.status
        conn.sendall(head.encode("latin-1"))
        if kind in ("reset", "truncate", "stall"):
            assert fault is not None and fault.after_bytes is not None
            self._send(conn, body[: fault.after_bytes], framing == "chunked", ex, last=False)
            _fire(fault, req)  # after the damage: e.g. the remote changes while this client waits or retries
            if kind == "stall":
                self._stop.wait(fault.seconds)
            raise _Close(reset=kind == "reset")
        self._send(conn, body, framing == "chunked", ex, last=True)
        if kind == "long_body":
            assert fault is not None
            conn.sendall(b"X" * fault.extra)

    @staticmethod
    def _send(conn: socket.socket, body: bytes, chunked: bool, ex: ProxyExchange, *, last: bool) -> None:
        view = memoryview(body)
        step = 64 * 1024
        for i in range(0, len(view), step):
            piece = view[i : i + step]
            if chunked:
                conn.sendall(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
            else:
                conn.sendall(piece)
            ex.sent += len(piece)
        if chunked and last:
            conn.sendall(b"0\r\n\r\n")


def _fire(fault: ProxyFault | None, req: ProxyRequest) -> None:
    if fault is not None and fault.on_apply is not None:
        fault.on_apply(req)


# -- wire helpers ----------------------------------------------------------------------------------------------------
def _keep_alive(req: ProxyRequest, answer: _Upstream) -> bool:
    if answer.framing == "close" or "close" in answer.headers.get("connection", "").lower():
        return False
    return req.version != "HTTP/1.0" and "close" not in req.headers.get("connection", "").lower()


def _read_exact(rfile: BinaryIO, n: int) -> bytes:
    data = rfile.read(n)
    if len(data) != n:
        raise ConnectionError(f"body cut short: {len(data)} of {n} bytes")
    return data


def _read_chunked(rfile: BinaryIO) -> tuple[bytes, bytes]:
    """(raw bytes as framed, decoded body) of a chunked body, trailers included in the raw form."""
    raw, body = bytearray(), bytearray()
    while True:
        size_line = rfile.readline(LINE_LIMIT)
        if not size_line:
            raise ConnectionError("chunked body cut short")
        raw += size_line
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:
                trailer = rfile.readline(LINE_LIMIT)
                raw += trailer
                if trailer in (b"\r\n", b"\n", b""):
                    return bytes(raw), bytes(body)
        piece = _read_exact(rfile, size)
        raw += piece + _read_exact(rfile, 2)
        body += piece


def _read_request(rfile: BinaryIO) -> ProxyRequest | None:
    head = read_head(rfile)
    if head is None:
        return None
    line, pairs = head
    method, target, version = line.split()
    req = ProxyRequest(method.upper(), target, version, pairs)
    h = req.headers
    if "chunked" in h.get("transfer-encoding", "").lower():
        req.body, decoded = _read_chunked(rfile)
        req.body_len = len(decoded)
    elif "content-length" in h:
        req.body = _read_exact(rfile, int(h["content-length"]))
        req.body_len = len(req.body)
    return req


def _read_response(ufile: BinaryIO, method: str) -> _Upstream:
    while True:
        head = read_head(ufile)
        if head is None:
            raise ConnectionError("the upstream closed without answering")
        line, pairs = head
        _, _, rest = line.partition(" ")
        status_text, _, reason = rest.partition(" ")
        status = int(status_text)
        if status >= 200 or status == 101:
            break  # 1xx interim answers (100 Continue) are skipped
    h = Headers(pairs)
    body = b""
    framing: _Framing
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        framing = "none"
    elif "chunked" in h.get("transfer-encoding", "").lower():
        _, body = _read_chunked(ufile)
        framing = "chunked"
    elif "content-length" in h:
        body = _read_exact(ufile, int(h["content-length"].split(",")[0]))
        framing = "length"
    else:
        body = ufile.read()
        framing = "close"
    return _Upstream(status, reason or _reason(status), pairs, body, framing)
