"""A real HTTP proxy for tests: Debian's tinyproxy, started on a free loopback port with a config of the test's own.

Why tinyproxy: it is what an office proxy looks like to a client (absolute-form requests for http URLs, CONNECT
tunnels for https, 407/401 for missing or wrong credentials), it is small and packaged (``make test`` installs it),
and its log says which requests it carried, so a test can prove a transfer went through it -- or did not.

The log format, found by running tinyproxy 1.11.1 at ``LogLevel Connect`` (each request is logged, little else)::

    CONNECT   Dec 05 02:50:37.059 [19911]: Connect (file descriptor 5): 127.0.0.1
    CONNECT   Dec 05 02:50:37.060 [19911]: Request (file descriptor 5): GET http://127.0.0.1:18999/ HTTP/1.1
    CONNECT   Dec 05 02:50:37.060 [19911]: Established connection to host "127.0.0.1" using file descriptor 6.
    CONNECT   Dec 05 02:50:37.070 [19911]: Request (file descriptor 5): CONNECT 127.0.0.1:18999 HTTP/1.1

A request refused for its credentials is logged as a Request line too (with no "Established" line after it):
tinyproxy logs the request line before it checks ``BasicAuth``. Wrong credentials get 401, missing ones 407.

The config: ``Listen 127.0.0.1`` on a free port, no ``ConnectPort`` line (so CONNECT reaches any port, as the
tests' servers have random ones), ``Allow 127.0.0.1``, no ``User``/``Group`` (it keeps the test's user; as root it
warns and carries on), the log file in the temp dir, an optional ``BasicAuth USER PASSWORD``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest

__all__ = ["TINYPROXY", "ProxiedRequest", "Tinyproxy", "tinyproxy_unavailable"]

TINYPROXY = "/usr/bin/tinyproxy"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

# "Request (file descriptor 5): GET http://127.0.0.1:18999/ HTTP/1.1"
_REQUEST = re.compile(r"\]: Request \(file descriptor \d+\): (\S+) (\S+) HTTP/\d(?:\.\d)?\s*$")


@dataclass(frozen=True)
class ProxiedRequest:
    """One request tinyproxy handled: ``method`` and ``target`` as on the request line, e.g. ``CONNECT`` and
    ``127.0.0.1:8443``, or ``GET`` and ``http://127.0.0.1:8080/file``."""

    method: str
    target: str


def tinyproxy_unavailable() -> str | None:
    """None when tinyproxy can run here, else why not."""
    if shutil.which(TINYPROXY) is None:
        return f"tinyproxy is not installed ({TINYPROXY}); `make test` installs it (Debian package tinyproxy, as root)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tinyproxy:
    """tinyproxy in the foreground (``-d``) on 127.0.0.1; a context manager that skips the test when tinyproxy is
    absent, and stops the proxy and removes its directory on exit. ``basic_auth=(user, password)`` makes it demand
    those credentials."""

    __test__ = False

    def __init__(self, basic_auth: tuple[str, str] | None = None) -> None:
        self.basic_auth = basic_auth
        self.port = 0
        self.dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._log_mark = 0

    @property
    def url(self) -> str:
        """The proxy's URL, without credentials (see :meth:`url_with`)."""
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy's URL with ``user:password@`` (no quoting: keep test credentials URL-safe)."""
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "tinyproxy.log"

    def __enter__(self) -> Self:
        reason = tinyproxy_unavailable()
        if reason is not None:
            pytest.skip(reason)
        self.dir = Path(tempfile.mkdtemp(prefix="rc-tinyproxy-"))
        try:
            # The port is picked free, then handed to tinyproxy: another process may take it in between, so a
            # start that fails to bind is retried with a new port.
            for _attempt in range(5):
                if self._start():
                    return self
            raise RuntimeError(f"tinyproxy did not start:\n{self.output()}")
        except BaseException:
            self.__exit__()
            raise

    def _start(self) -> bool:
        assert self.dir is not None
        self.port = _free_port()
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 600",
            f'LogFile "{self.log_path}"',
            "LogLevel Connect",
            "MaxClients 100",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
        ]
        if self.basic_auth is not None:
            lines.append(f"BasicAuth {self.basic_auth[0]} {self.basic_auth[1]}")
        conf = self.dir / "tinyproxy.conf"
        conf.write_text("\n".join(lines) + "\n")
        self.log_path.write_text("")
        with (self.dir / "stderr.txt").open("wb") as err:
            self.process = subprocess.Popen([TINYPROXY, "-d", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                            stdout=err, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
            time.sleep(0.02)
        self._stop_process()
        raise RuntimeError(f"tinyproxy is not accepting on port {self.port} after {START_TIMEOUT:.0f} s:\n"
                           f"{self.output()}")

    def __exit__(self, *exc: object) -> None:
        self._stop_process()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _stop_process(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)

    def output(self) -> str:
        """tinyproxy's stderr and log, for a failure message."""
        if self.dir is None:
            return ""
        parts = [p.read_text(errors="replace") for p in (self.dir / "stderr.txt", self.log_path) if p.exists()]
        return "\n".join(parts)

    def requests(self) -> list[ProxiedRequest]:
        """Every request tinyproxy has handled since start or :meth:`clear_log`, in order (refused ones included:
        see the module doc)."""
        out = []
        with self.log_path.open("rb") as log:
            log.seek(self._log_mark)
            text = log.read().decode("utf-8", errors="replace")
        for line in text.splitlines():
            m = _REQUEST.search(line)
            if m:
                out.append(ProxiedRequest(m.group(1), m.group(2)))
        return out

    def saw(self, method: str, target_prefix: str) -> list[ProxiedRequest]:
        """The requests with ``method`` whose target starts with ``target_prefix``."""
        return [r for r in self.requests() if r.method == method and r.target.startswith(target_prefix)]

    def clear_log(self) -> None:
        """Forget the requests so far (a mark in the log: truncating a file tinyproxy writes could leave a hole)."""
        self._log_mark = self.log_path.stat().st_size
