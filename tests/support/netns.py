"""A slow link of the tests' own: a network namespace whose loopback is throttled by the kernel, or a userspace relay.

Why: the field's uplinks are slow (a few Mbit/s), and a part that takes longer than a timeout is exactly what broke
uploads there. Loopback in the test's own namespace moves gigabytes a second, so nothing slow can be tested on it.

:class:`ThrottledNamespace` is the real thing: ``ip netns add``, then the namespace's ``lo`` up with an MTU of 1500
(Ethernet's, so the kernel cuts traffic into the packets a real link carries) and a token-bucket filter as its root
qdisc: ``tc qdisc add dev lo root tbf rate 6mbit burst 32kbit latency 400ms``. Both ends of a connection live in the
namespace, so every packet (data and ACKs) leaves through that ``lo`` once and pays the rate. Measured with curl
inside such a namespace (9 MiB from ``python -m http.server``): 5.6 Mbit/s, 93% of the rate, so the parameters give
the rate asked for. It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), iproute2's ``ip`` and ``tc`` and the kernel's
``sch_tbf``; :func:`netns_unavailable` says whether this machine has them, by making one.

Processes join it with :meth:`ThrottledNamespace.exec_argv` (``ip netns exec``); in-process servers create their
listening socket inside it with :meth:`ThrottledNamespace.inside` (setns(2) on the calling thread only): a socket
stays in the namespace it was made in, and so do the connections it accepts.

:class:`ThrottlingRelay` stands in where no namespace can be made (not root, a container without the capabilities):
a TCP relay on 127.0.0.1 in front of one server port that paces both directions with a token bucket at the same
rate, with small socket buffers so a sender cannot run far ahead of the pace.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Self

__all__ = ["ThrottledNamespace", "ThrottlingRelay", "netns_unavailable", "parse_rate"]

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
_TOOL_TIMEOUT = 30.0

_UNITS = {  # tc's rate units: bits, or bytes for the *bps forms
    "bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
    "bps": 1, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9,
}


def parse_rate(rate: str) -> float:
    """Bytes per second of a tc rate such as ``6mbit`` (10^6 bits/s) or ``500kbps`` (10^3 bytes/s)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]+)\s*", rate)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a tc rate: {rate!r} (e.g. 6mbit, 500kbit, 1mbps)")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def _run(argv: list[str]) -> None:
    """Run a setup command; a failure raises with its stderr (the words that say why, e.g. a missing module)."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=_TOOL_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    """setns(2) for the calling thread (os.setns only exists from Python 3.12)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


class ThrottledNamespace:
    """A network namespace whose loopback carries ``rate`` (tc syntax) in packets of ``mtu`` bytes; a context
    manager that deletes the namespace on exit, even after a failure (processes still inside keep running, in a
    namespace that no longer has a name, and should be ended by their owner first)."""

    def __init__(self, rate: str = "6mbit", mtu: int = 1500) -> None:
        parse_rate(rate)  # a typo fails here, not as a tc error
        self.rate = rate
        self.mtu = mtu
        self.name = f"rc-{secrets.token_hex(3)}"
        self._added = False

    def __enter__(self) -> Self:
        _run(["ip", "netns", "add", self.name])
        self._added = True
        try:
            _run(self.exec_argv(["ip", "link", "set", "lo", "up"]))
            _run(self.exec_argv(["ip", "link", "set", "dev", "lo", "mtu", str(self.mtu)]))
            _run(self.exec_argv(["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", self.rate,
                                 "burst", "32kbit", "latency", "400ms"]))
        except BaseException:
            self._delete()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._delete()

    def _delete(self) -> None:
        if self._added:
            self._added = False
            _run(["ip", "netns", "delete", self.name])

    @property
    def bytes_per_second(self) -> float:
        return parse_rate(self.rate)

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: the process keeps its pid)."""
        return ["ip", "netns", "exec", self.name, *argv]

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """The calling thread joins the namespace, and returns to the one it was in on exit. Only this thread moves
        (network namespaces are per thread); sockets it creates meanwhile belong to the namespace for good."""
        old = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            new = os.open(os.path.join(NETNS_DIR, self.name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(new)
            finally:
                os.close(new)
            try:
                yield
            finally:
                _setns(old)
        finally:
            os.close(old)


@functools.cache
def netns_unavailable() -> str | None:
    """None when a throttled namespace can be made here, else why not. The answer comes from making one (once per
    process): root and the tools are not enough in a container without CAP_SYS_ADMIN or without ``sch_tbf``."""
    if sys.platform != "linux":
        return f"network namespaces are Linux only (this is {sys.platform})"
    if os.geteuid() != 0:
        return "not root: `ip netns add` and `tc` need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found: install iproute2 (make test does, as root)"
    try:
        with ThrottledNamespace():
            pass
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"cannot make a throttled network namespace here: {exc}"
    return None


class _TokenBucket:
    """``rate`` bytes per second with a ``burst`` of credit; shared by every connection going one way, as one
    link is shared."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int, stop: threading.Event) -> bool:
        """Wait until ``n`` bytes may pass (False if ``stop`` was set meanwhile)."""
        with self._lock:  # the debt each sender takes on includes the others': together they keep to the rate
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        return not (wait > 0 and stop.wait(wait))


class ThrottlingRelay:
    """TCP relay on 127.0.0.1 in front of ``target_port``: each direction paced to ``rate`` (tc syntax) by a token
    bucket (4 KiB of burst, like the namespace's tbf), 16 KiB reads and small socket buffers. A context manager;
    clients connect to :attr:`port` (or :attr:`url`) instead of the target."""

    __test__ = False
    BUFFER = 32 * 1024  # SO_SNDBUF / SO_RCVBUF on both legs (the kernel doubles it)
    READ = 16 * 1024

    def __init__(self, target_port: int, rate: str = "6mbit", target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.rate = rate
        self.bytes_per_second = parse_rate(rate)
        self.port = 0
        self.connections = 0
        self._up = _TokenBucket(self.bytes_per_second, 4096)
        self._down = _TokenBucket(self.bytes_per_second, 4096)
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._small_buffers(listener)  # inherited by accepted sockets
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener, self.port = listener, listener.getsockname()[1]
        self._spawn(self._accept_loop, "relay-accept")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5)
        for sock in socks:
            sock.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _small_buffers(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.BUFFER)

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._small_buffers(upstream)
            with self._lock:
                self._socks += [client, upstream]
                self.connections += 1
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()  # as a refused connection looks to the client
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(self._pump, "relay-up", client, upstream, self._up)
            self._spawn(self._pump, "relay-down", upstream, client, self._down)

    def _pump(self, src: socket.socket, dst: socket.socket, bucket: _TokenBucket) -> None:
        """Copy ``src`` to ``dst`` at the bucket's pace; pass on a half-close (FIN) and a reset as a reset."""
        buf = bytearray(self.READ)
        view = memoryview(buf)
        try:
            while True:
                n = src.recv_into(view)
                if n == 0:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                if not bucket.take(n, self._stop):
                    return
                dst.sendall(view[:n])
        except OSError:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
