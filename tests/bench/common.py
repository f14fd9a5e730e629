"""Helpers for the bench: Debian packages, a loopback nginx, child processes with resource usage, test files."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

MiB = 1 << 20
GiB = 1 << 30
BLOCK = MiB
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def note(text: str) -> None:
    print(f"bench: {text}", flush=True)


# ---------------------------------------------------------------------------------------------- packages
def which(name: str) -> str | None:
    """``command -v`` that also looks in the sbin directories (nginx lives in /usr/sbin)."""
    return shutil.which(name, path=SBIN_PATH)


def _dpkg_installed(pkg: str) -> bool:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg], capture_output=True, text=True,
                             check=False)
    except OSError:
        return False
    return out.stdout.startswith("ii")


def ensure_tools(wanted: dict[str, str]) -> dict[str, str | None]:
    """``{command: debian package}`` → ``{command: path or None}``. Missing commands are installed with apt-get
    when we are root (the Makefile's install_debs pattern); otherwise a note says what to install."""
    found = {cmd: which(cmd) for cmd in wanted}
    absent = sorted({wanted[cmd] for cmd, path in found.items() if path is None})
    missing = [pkg for pkg in absent if not _dpkg_installed(pkg)]
    for pkg in sorted(set(absent) - set(missing)):
        note(f"Debian package {pkg} is installed but its command is not on PATH; skipping it")
    if not missing:
        return found
    if which("apt-get") is None or which("dpkg-query") is None:
        note(f"apt-get not found; install {' '.join(missing)} (or your distribution's equivalents) to compare")
        return found
    if os.geteuid() != 0:
        note(f"missing Debian packages: {' '.join(missing)}; not root, skipping them "
             f"(install with: sudo apt-get install {' '.join(missing)})")
        return found
    note(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    ok = subprocess.run(["apt-get", "update", "-qq"], env=env, check=False).returncode == 0
    ok = ok and subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                               env=env, check=False).returncode == 0
    if not ok:
        note(f"apt-get could not install {' '.join(missing)}; the peers that need them are skipped")
    return {cmd: which(cmd) for cmd in wanted}


def tool_version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


# ---------------------------------------------------------------------------------------------- sockets
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, alive: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------------- nginx
NGINX_CONF = """\
{user}worker_processes 1; daemon off; pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{ access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path {prefix}/tmp/body; proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi; uwsgi_temp_path {prefix}/tmp/uwsgi; scgi_temp_path {prefix}/tmp/scgi;
  types {{ application/octet-stream bin; }}
  default_type application/octet-stream;
  server {{ listen 127.0.0.1:{port}; root {root}; location / {{ }} }} }}
"""


class Nginx:
    """nginx in the foreground on 127.0.0.1 (config as in machine-recipes §7), serving ``root``; a child of the
    bench in its own session, so a Ctrl-C reaches the bench, which then stops it."""

    def __init__(self, binary: str, workdir: str, root: str) -> None:
        self.binary = binary
        self.prefix = os.path.join(workdir, "nginx")
        self.root = root
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> str:
        user = ""
        if os.geteuid() == 0:  # workers would drop to "nobody", who may not reach the work dir
            user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}; "
        return NGINX_CONF.format(user=user, prefix=self.prefix, port=self.port, root=self.root)

    def start(self) -> None:
        for sub in ("logs", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            os.makedirs(os.path.join(self.prefix, sub), exist_ok=True)
        conf = os.path.join(self.prefix, "nginx.conf")
        for _ in range(3):  # the port is free when chosen; retry if something grabs it before nginx binds
            self.port = free_port()
            with open(conf, "w") as f:
                f.write(self._config())
            self.proc = subprocess.Popen(
                [self.binary, "-e", os.path.join(self.prefix, "logs", "error.log"), "-p", self.prefix + "/",
                 "-c", conf], stdin=subprocess.DEVNULL, start_new_session=True)
            if wait_port(self.port, 10, self.proc):
                return
            self.stop()
        log = os.path.join(self.prefix, "logs", "error.log")
        tail = ""
        if os.path.exists(log):
            with open(log) as f:
                tail = f.read()[-2000:]
        raise RuntimeError(f"nginx did not start (see {log}):\n{tail}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # fast shutdown of master and worker
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# ---------------------------------------------------------------------------------------------- children
@dataclass
class ChildRun:
    argv: list[str]
    wall: float
    user: float
    sys: float
    maxrss_mib: float
    rc: int
    out: str = ""
    err: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def run_child(argv: Sequence[str], *, timeout: float, cwd: str | None = None,
              env: dict[str, str] | None = None) -> ChildRun:
    """Run one command to the end and measure it: wall time, CPU from RUSAGE_CHILDREN deltas around it, and
    its own peak RSS from os.wait4. On Ctrl-C or a timeout the child is killed and reaped.

    That peak cannot read below the bench's own peak RSS (:func:`own_peak_rss_mib`): subprocess starts the child
    with vfork, and Linux counts the high-water mark of the memory the child leaves at exec (ours) as its own."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        return ChildRun(
            argv=list(argv), wall=wall, user=after.ru_utime - before.ru_utime, sys=after.ru_stime - before.ru_stime,
            maxrss_mib=usage.ru_maxrss / 1024, rc=proc.returncode,
            out=out.read().decode(errors="replace")[-4000:], err=err.read().decode(errors="replace")[-4000:],
        )


def own_peak_rss_mib() -> float:
    """This process's peak RSS so far: the floor under every child's (see run_child)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------- files
def generate_file(path: str, size: int) -> str:
    """Random data written in 1 MiB blocks; returns the sha256. An existing file of the right size with a
    matching ``.sha256`` beside it is reused (``--work-dir`` runs)."""
    side = path + ".sha256"
    if os.path.exists(path) and os.path.getsize(path) == size and os.path.exists(side):
        with open(side) as f:
            return f.read().strip()
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(BLOCK, left))
            h.update(block)
            f.write(block)
            left -= len(block)
    os.chmod(path, 0o644)
    digest = h.hexdigest()
    with open(side, "w") as f:
        f.write(digest + "\n")
    return digest


def generate_repeating_file(path: str, size: int) -> str:
    """``size`` bytes of one random 1 MiB block over and over; returns the sha256 (reused like generate_file).

    For the memory rows, whose bytes only have to be checked, not unique: 4 GiB of os.urandom takes about 15 s
    here, this about 5 (mostly the sha256). One small block, because the bench's own peak RSS is the floor of
    every child's (see :func:`run_child`)."""
    side = path + ".sha256"
    if os.path.exists(path) and os.path.getsize(path) == size and os.path.exists(side):
        with open(side) as f:
            return f.read().strip()
    pattern = os.urandom(BLOCK)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            piece = pattern[:left] if left < len(pattern) else pattern
            h.update(piece)
            f.write(piece)
            left -= len(piece)
    os.chmod(path, 0o644)
    digest = h.hexdigest()
    with open(side, "w") as f:
        f.write(digest + "\n")
    return digest


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * BLOCK):
            h.update(block)
    return h.hexdigest()


def remove(*paths: str) -> None:
    for p in paths:
        for candidate in (p, p + ".part", p + ".part.ckpt", p + ".aria2"):
            try:
                os.remove(candidate)
            except FileNotFoundError:
                pass


def settle_disk() -> None:
    """Flush dirty pages before a timed run, so one tool's writeback does not land in the next one's time."""
    os.sync()


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def parse_size(text: str) -> int:
    from app.sizes import parse_size as app_parse_size

    return app_parse_size(text)


def fmt_size(n: int) -> str:
    if n % GiB == 0:
        return f"{n // GiB} GiB"
    if n % MiB == 0:
        return f"{n // MiB} MiB"
    return f"{n / MiB:.1f} MiB"
