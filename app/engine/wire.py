"""The bulk data path: HTTP/1.1 exchanges over blocking sockets, run in worker threads, on the stdlib's http.client.

Why threads and blocking sockets (measured, ``make bench`` "data path candidates"): ``recv_into``, OpenSSL's
decryption and ``pwrite`` all run without the GIL, so several ranges in several threads use both cores, where an
asyncio client decrypts and parses on its one loop thread. ``http.client`` reads straight into a reused buffer
(``readinto``), and costs a few milliseconds to import. It is a public, documented API: nothing here reaches into a
library's internals, and it works whatever event loop the caller runs (selector, proactor, Qt's).

What this module adds to http.client, and nothing more:

* a pool of keep-alive connections per route (scheme, host, port, proxy), checked for a server's hang-up before
  reuse, and one retry on a fresh connection when a reused one turns out dead before the answer began;
* connecting: directly, through an HTTP proxy (absolute-form requests for http, a CONNECT tunnel for https) or a
  SOCKS5 proxy (with the python-socks package), TLS verified against :class:`~app.engine.network.Network`'s context;
* timeouts that bound a stall, never a request: the socket's timeout applies to each connect, send and receive, and
  bodies go out in partial sends, so a slow but moving transfer never times out;
* a :class:`StopToken` the event loop sets on pause or cancel: the thread stops between reads, and a socket blocked
  on a stalled peer is shut down so the read returns at once. A connection stopped mid-body is closed, never reused.

Errors are raised as they come (OSError, ssl.SSLError, http.client.HTTPException); :mod:`app.engine.failures`
turns them into MeowErrors in one place.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urljoin, urlsplit

from app.engine.network import Network, Proxy, ProxyKind

#: Bytes per socket read and per file read of a body: large reads are what make Python I/O fast.
READ_SIZE = 1 << 20
#: Largest single send of a body: a send returns after a partial write anyway; this bounds one batch's memory.
SEND_SIZE = 1 << 20
#: The slowest steady rate at which a server may read a body its kernel already took before the wait for its answer
#: counts as a stall: the wait for an answer may last the timeout plus the body's length at this rate.
DRAIN_FLOOR = 32 * 1024
#: How long an idle keep-alive connection is kept.
IDLE_EXPIRY = 30.0
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Headers that must not follow a redirect to another host.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


_DOTTED = re.compile(r"[0-9.]+")


class InvalidTarget(ValueError):
    """A URL the data path cannot send (another scheme, no host)."""


class Stopped(Exception):
    """The transfer was paused or cancelled: raised in the worker thread between reads."""


class ProxyRefused(OSError):
    """A proxy refused the CONNECT tunnel (e.g. 407 Proxy Authentication Required)."""

    def __init__(self, proxy: Proxy, status: int, reason: str) -> None:
        super().__init__(f"the proxy {proxy.display()} refused the tunnel: {status} {reason}".strip())
        self.proxy = proxy
        self.status = status


class ProxyUnreachable(OSError):
    """The proxy itself could not be reached (a network fault like any other, but the words name the proxy)."""

    def __init__(self, proxy: Proxy, cause: OSError) -> None:
        super().__init__(cause.errno, f"cannot reach the proxy {proxy.display()}: {cause.strerror or cause}")


class StopToken:
    """Set on the loop when a run pauses or is cancelled; read by its worker threads between reads.

    Setting it also shuts down every socket registered with :meth:`watch`, so a thread blocked in ``recv`` or ``send``
    on a stalled connection wakes at once instead of after the stall timeout."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[_Connection] = set()

    def set(self) -> None:
        with self._lock:
            self._event.set()
            conns = list(self._conns)
        for conn in conns:
            conn.abort()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True (at once) when the token is set meanwhile."""
        return self._event.wait(seconds)

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped

    def watch(self, conn: _Connection) -> None:
        with self._lock:
            if self._event.is_set():
                conn.abort()
            self._conns.add(conn)

    def unwatch(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.discard(conn)


@dataclass(frozen=True)
class Route:
    scheme: str
    host: str
    port: int
    proxy: Proxy | None

    @property
    def absolute_form(self) -> bool:
        """Plain http through an HTTP proxy: the request line carries the whole URL."""
        return self.scheme == "http" and self.proxy is not None and self.proxy.kind is ProxyKind.HTTP


def unsent_bytes(sock: socket.socket) -> int | None:
    """Bytes still in the kernel's send queue (sent or not, not yet acknowledged); None where it cannot be read."""
    try:
        if sys.platform.startswith("linux"):
            import fcntl
            import termios

            raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            return int.from_bytes(raw, sys.byteorder, signed=True)
        if sys.platform == "darwin":
            return sock.getsockopt(socket.SOL_SOCKET, 0x1024)  # SO_NWRITE
    except (OSError, ValueError):
        pass
    return None


def keepalive_options(idle: float) -> list[tuple[int, int, int]]:
    opts = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    seconds = max(1, int(idle))
    if hasattr(socket, "TCP_KEEPIDLE"):
        opts.append((socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, seconds))
        opts.append((socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, seconds // 3)))
    elif hasattr(socket, "TCP_KEEPALIVE"):  # macOS
        opts.append((socket.IPPROTO_TCP, socket.TCP_KEEPALIVE, seconds))
    return opts


class _Connection(http.client.HTTPConnection):
    """One connection of a route. ``connect`` (http.client's documented override point) chooses how to reach the
    server; everything else -- request line, headers, response parsing, chunked bodies -- is http.client's own."""

    def __init__(self, route: Route, network: Network, timeout: float, keepalive: float) -> None:
        super().__init__(route.host, route.port, timeout=timeout)
        if route.scheme == "https":
            self.default_port = 443  # so the Host header omits the default port, as every client does
        self.route = route
        self.network = network
        self.keepalive = keepalive
        self.idle_since = 0.0
        self._raw: socket.socket | None = None
        self._abort_lock = threading.Lock()
        self.aborted = False

    def connect(self) -> None:
        route, proxy = self.route, self.route.proxy
        if proxy is None:
            raw = socket.create_connection((route.host, route.port), self.timeout)
        else:
            try:
                raw = socket.create_connection((proxy.host, proxy.port), self.timeout) \
                    if proxy.kind is ProxyKind.HTTP else _socks_connect(proxy, route.host, route.port, self.timeout)
            except (ProxyRefused, TimeoutError):
                raise
            except OSError as exc:
                raise ProxyUnreachable(proxy, exc) from exc
        with self._abort_lock:
            self._raw = raw
            aborted = self.aborted
        if aborted:
            raw.close()
            raise Stopped
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for level, name, value in keepalive_options(self.keepalive):
                try:
                    raw.setsockopt(level, name, value)
                except OSError:  # pragma: no cover - an OS without one of the options
                    pass
            if route.scheme == "https" and proxy is not None and proxy.kind is ProxyKind.HTTP:
                _open_tunnel(raw, proxy, route.host, route.port)
            if route.scheme == "https":
                self.sock = self.network.ssl_context().wrap_socket(raw, server_hostname=route.host)
            else:
                self.sock = raw
        except BaseException:
            raw.close()  # a refused tunnel or handshake: http.client's close() only knows self.sock
            raise

    def abort(self) -> None:
        """Wake a thread blocked on this connection (any thread may call it); the connection is not reused."""
        with self._abort_lock:
            self.aborted = True
            raw = self._raw
        if raw is not None:
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def dead(self) -> bool:
        """A kept connection the server has closed (or sent unasked bytes on) must not be reused. A TLS connection
        may be readable for a record that carries no data (a TLS 1.3 session ticket): that one is alive."""
        sock = self.sock
        if sock is None or self.aborted:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        if not isinstance(sock, ssl.SSLSocket):
            return True
        sock.setblocking(False)
        try:
            sock.recv(1)
            return True  # end of stream, or data nobody asked for
        except ssl.SSLWantReadError:
            return False  # only a TLS record without data
        except OSError:
            return True
        finally:
            sock.settimeout(self.timeout)


def _open_tunnel(raw: socket.socket, proxy: Proxy, host: str, port: int) -> None:
    """CONNECT host:port through an HTTP proxy; the reply is read byte by byte so nothing of the tunnel is taken."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    auth = proxy.authorization()
    if auth is not None:
        lines.append(f"Proxy-Authorization: {auth}")
    raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    reader = raw.makefile("rb", buffering=0)
    try:
        status_line = _read_line(reader)
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise http.client.BadStatusLine(status_line)
        while _read_line(reader):
            pass
    finally:
        reader.close()
    status = int(parts[1])
    if not 200 <= status < 300:
        raise ProxyRefused(proxy, status, parts[2] if len(parts) > 2 else "")


def _read_line(reader: object) -> str:
    out = bytearray()
    while not out.endswith(b"\n"):
        byte = reader.read(1)  # type: ignore[attr-defined]
        if not byte:
            raise http.client.RemoteDisconnected("the proxy closed the connection during CONNECT")
        out += byte
        if len(out) > 65536:
            raise http.client.LineTooLong("proxy reply line")
    return out.decode("latin-1").strip()


def _socks_connect(proxy: Proxy, host: str, port: int, timeout: float | None) -> socket.socket:
    from python_socks import ProxyError, ProxyTimeoutError, ProxyType  # only a SOCKS proxy needs it
    from python_socks.sync import Proxy as SocksProxy

    client = SocksProxy.create(ProxyType.SOCKS5, proxy.host, proxy.port, username=proxy.username,
                               password=proxy.password, rdns=proxy.kind is ProxyKind.SOCKS5H)
    try:
        return client.connect(dest_host=host, dest_port=port, timeout=timeout)
    except ProxyTimeoutError as exc:
        raise TimeoutError(str(exc)) from None
    except ProxyError as exc:  # the proxy answered and said no (credentials, rules, an unreachable host)
        refused_auth = "auth" in str(exc).lower()
        raise ProxyRefused(proxy, 407 if refused_auth else 502, str(exc)) from None


# ---------------------------------------------------------------------------------------------- request bodies
@dataclass(frozen=True)
class FileRange:
    """Bytes of an open file, read in batches when sent (never read whole)."""

    fd: int
    offset: int
    length: int


Piece = bytes | memoryview | FileRange


class BodyObserver(Protocol):
    def start(self) -> None: ...

    def update(self, data: memoryview) -> None: ...


class Body:
    """A request body of known length: bytes and file ranges, sent in order as Content-Length (never chunked).

    ``observers`` see every batch of bytes as it goes out (a CRC-64 of what was sent, say), restarted with each
    send; ``on_sent(n)`` of an exchange counts bytes the kernel accepted, for progress and rate limits.
    Re-sendable: each send reads the file again."""

    def __init__(self, *pieces: Piece) -> None:
        self.pieces = list(pieces)
        self.length = sum(p.length if isinstance(p, FileRange) else len(p) for p in pieces)
        self.observers: list[BodyObserver] = []

    def batches(self, buffer: bytearray) -> Iterator[memoryview]:
        """The body as views: bytes pieces as they are, file ranges through ``buffer`` (valid until the next one)."""
        view = memoryview(buffer)
        for observer in self.observers:
            observer.start()
        for piece in self.pieces:
            if not isinstance(piece, FileRange):
                out = memoryview(piece)
                for observer in self.observers:
                    observer.update(out)
                yield out
                continue
            done = 0
            while done < piece.length:
                want = min(len(buffer), piece.length - done)
                try:
                    got = pread_into(piece.fd, view[:want], piece.offset + done)
                except OSError as exc:
                    raise SourceError(exc.errno, exc.strerror) from None
                if got == 0:
                    raise ShortSource(piece.offset + done, piece.offset + piece.length)
                out = view[:got]
                for observer in self.observers:
                    observer.update(out)
                yield out
                done += got


class SourceError(OSError):
    """Reading a body's file failed (not the network): the caller reports it as a disk error."""


class ShortSource(OSError):
    """A file range ended early: the source shrank while it was being uploaded."""

    def __init__(self, at: int, expected: int) -> None:
        super().__init__(f"the source ended at byte {at}, expected {expected}")
        self.at = at


def pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Read into ``view`` at ``offset`` (one call; fewer bytes only at the end of the file)."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset) if hasattr(os, "pread") else _seek_read(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


def _seek_read(fd: int, size: int, offset: int) -> bytes:  # pragma: no cover - Windows
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


# ---------------------------------------------------------------------------------------------- responses
class WireResponse:
    """An answer whose body is read in the worker thread. ``close()`` gives a fully read keep-alive connection back
    to the pool and closes any other."""

    def __init__(self, wire: Wire, conn: _Connection, raw: http.client.HTTPResponse, stop: StopToken,
                 url: str) -> None:
        self._wire, self._conn, self._raw, self._stop = wire, conn, raw, stop
        self.status = raw.status
        self.reason = raw.reason
        self.url = url
        self.headers = raw.msg  # case-insensitive ``get``
        proxy = conn.route.proxy
        self.via = proxy.display() if proxy is not None and conn.route.absolute_form else None
        self._closed = False

    def header(self, name: str) -> str | None:
        """One header (repeated ones joined by ", "), case-insensitive."""
        values = self._raw.msg.get_all(name)
        return None if not values else ", ".join(values)

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` from the body (fewer bytes only at its end); 0 at the end. Raises :class:`Stopped`."""
        self._stop.check()
        return self._raw.readinto(view)

    def read(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body (an error page, a small XML or JSON answer)."""
        return read_at_most(self._raw.readinto, limit)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.unwatch(self._conn)
        reusable = (self._raw.isclosed() and not self._conn.aborted and self._raw.version == 11
                    and "close" not in (self.header("connection") or "").lower())
        if reusable:
            self._wire.checkin(self._conn)
        else:
            self._raw.close()
            self._conn.close()


def read_at_most(readinto: Callable[[memoryview], int], limit: int) -> bytes:
    """A body's first ``limit`` bytes (or all of a shorter one), through ``readinto``, 64 KiB at a time."""
    buf = bytearray(min(limit, 1 << 16))
    out = bytearray()
    while len(out) < limit:
        view = memoryview(buf)[:min(len(buf), limit - len(out))]
        n = readinto(view)
        if not n:
            break
        out += view[:n]
    return bytes(out)


# ---------------------------------------------------------------------------------------------- the pool
class Wire:
    """Keep-alive connections per route, shared by a client's worker threads (thread-safe)."""

    def __init__(self, network: Network, *, timeout: float, keepalive: float, user_agent: str,
                 max_idle: int = 64) -> None:
        self.network = network
        self.timeout = timeout
        self.keepalive = keepalive
        self.user_agent = user_agent
        self.max_idle = max_idle
        self._idle: dict[Route, list[_Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def route(self, url: str) -> tuple[Route, str]:
        """The route of a URL and the request target to send on it."""
        try:
            parts = urlsplit(url)
            explicit_port = parts.port
        except ValueError as exc:
            raise InvalidTarget(str(exc)) from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise InvalidTarget(f"unsupported URL scheme {scheme!r} (use http:// or https://)")
        if not parts.hostname:
            raise InvalidTarget("the URL names no host")
        bad = next(((i, c) for i, c in enumerate(url) if not c.isprintable() or c.isspace()), None)
        if bad is not None:  # before anything is sent: a CR/LF in a URL would smuggle a header into the request
            raise InvalidTarget(f"Invalid non-printable character {bad[1]!r} at position {bad[0]}")
        if _DOTTED.fullmatch(parts.hostname):
            try:
                ipaddress.IPv4Address(parts.hostname)
            except ValueError:
                raise InvalidTarget(f"Invalid IPv4 address: {parts.hostname!r}") from None
        port = explicit_port or (443 if scheme == "https" else 80)
        proxy = self.network.proxy_for(scheme, parts.hostname, port)
        route = Route(scheme, parts.hostname, port, proxy)
        if route.absolute_form:  # the whole URL, without credentials or a fragment
            netloc = parts.netloc.rsplit("@", 1)[-1]
            target = f"{scheme}://{netloc}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
        else:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not target.isascii():  # as every client sends it: UTF-8, percent-encoded (httpx does the same)
            target = "".join(c if c.isascii() else quote(c, safe="") for c in target)
        return route, target

    def _checkout(self, route: Route) -> tuple[_Connection, bool]:
        now = time.monotonic()
        with self._lock:
            stack = self._idle.get(route)
            while stack:
                conn = stack.pop()
                if now - conn.idle_since < IDLE_EXPIRY and not conn.dead():
                    return conn, True
                conn.close()
        return _Connection(route, self.network, self.timeout, self.keepalive), False

    def checkin(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        with self._lock:
            if not self._closed:
                stack = self._idle.setdefault(conn.route, [])
                if len(stack) < self.max_idle:
                    stack.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [c for stack in self._idle.values() for c in stack]
            self._idle.clear()
        for conn in conns:
            conn.close()

    # ------------------------------------------------------------------ one exchange
    def exchange(self, method: str, url: str, headers: Iterable[tuple[str, str]], stop: StopToken, *,
                 body: Body | None = None, follow_redirects: bool = False,
                 on_sent: Callable[[int], None] | None = None) -> WireResponse:
        """Send one request and return the answer with its body unread (blocking: call it in a worker thread)."""
        pairs = list(headers)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._exchange_once(method, url, pairs, stop, body, on_sent)
            location = response.header("location")
            if not (follow_redirects and response.status in REDIRECT_STATUSES and location):
                return response
            response.close()
            target = urljoin(url, location)
            if urlsplit(target).hostname != urlsplit(url).hostname:
                pairs = [(k, v) for k, v in pairs if k.lower() not in _CREDENTIAL_HEADERS]
            if response.status == 303 and method not in ("GET", "HEAD"):
                method, body = "GET", None
            url = target
        raise http.client.HTTPException(f"more than {MAX_REDIRECTS} redirects")

    def _exchange_once(self, method: str, url: str, headers: list[tuple[str, str]], stop: StopToken,
                       body: Body | None, on_sent: Callable[[int], None] | None) -> WireResponse:
        route, target = self.route(url)
        for attempt in (0, 1):
            stop.check()
            conn, reused = self._checkout(route)
            stop.watch(conn)
            try:
                self._send(conn, method, target, headers, body, stop, on_sent)
                if body is not None and body.length:
                    self._await_answer(conn, body.length, stop)
                raw = conn.getresponse()
            except Stopped:
                self._drop(conn, stop)
                raise
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                early = self._early_answer(conn) if not isinstance(exc, http.client.RemoteDisconnected) else None
                if early is not None:
                    return WireResponse(self, conn, early, stop, url)
                self._drop(conn, stop)
                if stop.is_set():
                    raise Stopped from None
                if reused and attempt == 0:
                    continue  # a kept connection the server had closed: once more on a new one
                raise
            except BaseException:
                self._drop(conn, stop)
                if stop.is_set():
                    raise Stopped from None
                raise
            return WireResponse(self, conn, raw, stop, url)
        raise AssertionError("unreachable")

    def _await_answer(self, conn: _Connection, length: int, stop: StopToken) -> None:
        """Wait for the answer to a body: that is not a stall while the body is still on its way.

        After the last send returned, megabytes can still sit in our kernel's send queue (a slow link drains them
        at its pace) and in the server's receive buffer (a server reads them at its own). While our queue shrinks the
        body is moving; a queue that stays full for a whole timeout is a stall (the peer takes nothing). Once the
        peer has acknowledged everything, it may still be reading what its kernel buffered: that is allowed the
        timeout plus the body's length at DRAIN_FLOOR (the engine's rule since the seed's port), then it stalls."""
        sock = conn.sock
        assert sock is not None
        timeout = self.timeout or 60.0
        began = moved = time.monotonic()
        allowance = timeout + length / DRAIN_FLOOR
        last: int | None = None
        while True:
            if stop.is_set():
                raise Stopped
            readable, _, _ = select.select([sock], [], [], min(timeout, 0.25))
            if readable:
                return
            now = time.monotonic()
            queued = unsent_bytes(sock)
            if queued:
                if last is None or queued < last:
                    last, moved = queued, now
                elif now - moved >= timeout:
                    raise TimeoutError("the server took none of the request body for the whole timeout")
            elif now - max(began, moved) >= allowance:
                raise TimeoutError("no answer to the request body within the timeout")

    @staticmethod
    def _drop(conn: _Connection, stop: StopToken) -> None:
        stop.unwatch(conn)
        conn.close()

    @staticmethod
    def _early_answer(conn: _Connection) -> http.client.HTTPResponse | None:
        """A server that refuses a body (403, 413) often answers and closes before reading all of it; the send then
        fails. Its answer says more than "connection reset", so read it if it is there."""
        try:
            return conn.getresponse()
        except (OSError, http.client.HTTPException):
            return None

    def _send(self, conn: _Connection, method: str, target: str, headers: list[tuple[str, str]],
              body: Body | None, stop: StopToken, on_sent: Callable[[int], None] | None) -> None:
        names = {k.lower() for k, _ in headers}
        conn.putrequest(method, target, skip_accept_encoding=True)
        if "user-agent" not in names:
            conn.putheader("User-Agent", self.user_agent)
        if "accept-encoding" not in names:
            conn.putheader("Accept-Encoding", "identity")
        proxy = conn.route.proxy
        if conn.route.absolute_form and proxy is not None and (auth := proxy.authorization()) is not None:
            conn.putheader("Proxy-Authorization", auth)
        for name, value in headers:
            if name.lower() != "content-length":
                conn.putheader(name, value)
        if body is not None or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(body.length if body is not None else 0))
        conn.endheaders()
        if body is None or body.length == 0:
            return
        sock = conn.sock
        assert sock is not None
        buffer = bytearray(min(SEND_SIZE, max(body.length, 1)))
        for batch in body.batches(buffer):
            sent = 0
            while sent < len(batch):
                stop.check()
                n = sock.send(batch[sent:sent + SEND_SIZE])
                sent += n
                if on_sent is not None:
                    on_sent(n)
