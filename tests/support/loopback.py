"""The socket plumbing the tests' fake servers share: a listener on 127.0.0.1 at a free port, an accept thread, a
thread per connection, and a stop() that leaves no thread or socket behind.

Threads, not asyncio, so a server never competes with the event loop of the test that drives it. The accept loop
polls (0.05 s) so stop() never depends on waking a blocked accept(); stop() cuts every open connection, idle
keep-alive ones included, so a test never waits for a client to hang up.

Two optional hooks, for the field tests: an ``ssl_context`` makes it a TLS server (each accepted connection is
wrapped and its handshake runs in the connection's thread, counted in ``tls_handshakes``), and ``start(listen_in=...)``
creates the listening socket inside a context, e.g. a network namespace (tests/support/netns.py): a socket lives in
the namespace it was made in, and so does every connection it accepts, whatever thread serves it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import BinaryIO, Self

__all__ = ["LoopbackServer", "close_socket"]


class LoopbackServer:
    """Threaded TCP server on 127.0.0.1; a context manager. A subclass answers one connection in
    :meth:`_serve_conn`; anything but an OSError escaping it is a bug in the server, kept in :attr:`errors` (tests
    may assert it empty) and printed."""

    __test__ = False
    thread_name = "loopback"  # prefix of the accept and connection threads' names

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.port = 0
        self.ssl_context = ssl_context  # server side: every accepted connection speaks TLS
        self.tls_handshakes = 0  # TLS handshakes started (one per accepted connection of a TLS server)
        self.tls_failures = 0  # ... and those that failed (the client rejected the certificate, or hung up)
        self.errors: list[BaseException] = []
        self._lock = threading.RLock()  # guards the connections, and the subclass's own state
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._conns: dict[int, tuple[socket.socket, threading.Thread]] = {}
        self._next_conn = 0

    def start(self, listen_in: Callable[[], contextlib.AbstractContextManager[object]] | None = None) -> Self:
        """Listen and start accepting (no-op when already started). ``listen_in``: a context the listening socket is
        created in (e.g. ``ThrottledNamespace.inside``), so the server is reachable where that context places it."""
        if self._listener is not None:
            return self
        self._stop.clear()
        with listen_in() if listen_in is not None else contextlib.nullcontext():
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(0.05)
        self._listener, self.port = listener, listener.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"{self.thread_name}-accept",
                                               daemon=True)
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every open connection (waking threads blocked in recv/send) and join all threads."""
        if self._listener is None:
            return
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() at once on Linux
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            conns = list(self._conns.values())
        for sock, _ in conns:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown, also for a TLS one: SSLSocket.shutdown would drop its TLS state
                # under the thread still reading it.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        for _, thread in conns:
            thread.join(timeout=5)
        self._listener = self._accept_thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ssl_context is not None else 'http'}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def _accepted(self) -> Iterator[socket.socket]:
        """Each new connection, until stop()."""
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # stop() shut the listener
            yield conn

    def _accept_loop(self) -> None:
        for conn in self._accepted():
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._next_conn += 1
                conn_id = self._next_conn
                thread = threading.Thread(target=self._run_conn, args=(conn, conn_id),
                                          name=f"{self.thread_name}-{conn_id}", daemon=True)
                self._conns[conn_id] = (conn, thread)
            thread.start()

    def _run_conn(self, conn: socket.socket, conn_id: int) -> None:
        rfile: BinaryIO | None = None
        reset = False
        try:
            if self.ssl_context is not None:
                conn = self._tls_handshake(conn, conn_id)
            rfile = conn.makefile("rb")
            reset = self._serve_conn(conn, rfile, conn_id)
        except OSError:
            pass  # the client went away mid-exchange (or refused our certificate), or stop() cut the socket
        except Exception as exc:
            self.errors.append(exc)
            traceback.print_exc(file=sys.stderr)
        finally:
            if rfile is not None:
                with contextlib.suppress(OSError):
                    rfile.close()
            close_socket(conn, reset)
            with self._lock:
                self._conns.pop(conn_id, None)

    def _serve_conn(self, conn: socket.socket, rfile: BinaryIO, conn_id: int) -> bool:
        """Answer what comes on one connection; True ends it with an RST instead of a FIN."""
        raise NotImplementedError

    def _tls_handshake(self, conn: socket.socket, conn_id: int) -> ssl.SSLSocket:
        """Wrap an accepted connection in TLS and shake hands (in the connection's thread, so a slow or refusing
        client never holds up the accept loop). Registered before the handshake, so stop() can cut it."""
        assert self.ssl_context is not None
        tls = self.ssl_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        with self._lock:
            self.tls_handshakes += 1
            self._conns[conn_id] = (tls, self._conns[conn_id][1])
        try:
            tls.do_handshake()
        except OSError:
            with self._lock:
                self.tls_failures += 1
            tls.close()  # the caller still holds the plain socket, which wrapping emptied
            raise
        return tls


def close_socket(sock: socket.socket, reset: bool) -> None:
    """Close after a FIN, or with an RST (``reset``: the peer sees the connection die, not end)."""
    with contextlib.suppress(OSError):
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        sock.close()
