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
import sys
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


def ensure_pip(wanted: dict[str, str]) -> dict[str, bool]:
    """``{import name or venv command: PyPI name}`` → whether each is usable, pip-installing the missing ones into
    this interpreter's environment first.

    For the bench's own tools only (aiohttp, one of the data path candidates; py-spy, for the profile of a missed
    target): never the app's dependencies, so they are installed here rather than listed in pyproject.toml."""
    import importlib.util

    bindir = os.path.dirname(sys.executable)

    def usable(name: str) -> bool:
        if importlib.util.find_spec(name) is not None:
            return True
        return os.access(os.path.join(bindir, name), os.X_OK)

    missing = sorted({pkg for name, pkg in wanted.items() if not usable(name)})
    if missing:
        note(f"installing the bench's own Python packages: {' '.join(missing)}")
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *missing],
                              check=False)
        if done.returncode != 0:
            note(f"pip could not install {' '.join(missing)}: the rows that need them are skipped")
        importlib.invalidate_caches()
    return {name: usable(name) for name in wanted}


def venv_command(name: str) -> str | None:
    """A console script of this interpreter's environment (py-spy), else one on PATH."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.access(path, os.X_OK) else which(name)


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
{user}worker_processes {workers}; daemon off; pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{ access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path {prefix}/tmp/body; proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi; uwsgi_temp_path {prefix}/tmp/uwsgi; scgi_temp_path {prefix}/tmp/scgi;
  types {{ application/octet-stream bin; }}
  default_type application/octet-stream;
  server {{ listen 127.0.0.1:{port} reuseport; root {root}; location / {{ }}
    location /capped/ {{ alias {root}/; limit_rate {capped_rate}; }} }}
{tls_server}}}
"""
#: The HTTPS server: the same files, a certificate for 127.0.0.1 from the bench's private CA.
NGINX_TLS_SERVER = """\
  server {{ listen 127.0.0.1:{port} ssl reuseport; root {root}; location / {{ }}
    ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3; }}
"""
#: nginx's per-request rate cap on /capped/ (as CDNs and object stores cap each connection).
CAPPED_RATE = "40m"


class Nginx:
    """nginx in the foreground on 127.0.0.1 (config as in machine-recipes §7), serving ``root``; a child of the
    bench in its own session, so a Ctrl-C reaches the bench, which then stops it.

    Three views of the same files: ``base_url`` (plain HTTP, sendfile), ``capped_url`` (``/capped/``: each request
    limited to :data:`CAPPED_RATE`) and, when ``tls`` (a certificate PEM and its key) is given, ``https_url`` (TLS,
    so nginx encrypts every byte). ``workers`` (0: one per core, up to 4) with ``reuseport``, so the connections of
    one client spread over them: a single worker would make nginx, not the client, the limit for a multi-connection
    HTTPS client on a larger machine (a real object store is never one process on one core)."""

    def __init__(self, binary: str, workdir: str, root: str, tls: tuple[str, str] | None = None,
                 workers: int = 0) -> None:
        self.binary = binary
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.prefix = os.path.join(workdir, "nginx")
        self.root = root
        self.tls = tls
        self.port = 0
        self.tls_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def capped_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/capped"

    @property
    def https_url(self) -> str | None:
        return f"https://127.0.0.1:{self.tls_port}" if self.tls else None

    def _config(self) -> str:
        user = ""
        if os.geteuid() == 0:  # workers would drop to "nobody", who may not reach the work dir
            user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}; "
        tls_server = ""
        if self.tls:
            tls_server = NGINX_TLS_SERVER.format(port=self.tls_port, root=self.root, cert=self.tls[0],
                                                 key=self.tls[1])
        return NGINX_CONF.format(user=user, workers=self.workers, prefix=self.prefix, port=self.port, root=self.root,
                                 capped_rate=CAPPED_RATE, tls_server=tls_server)

    def start(self) -> None:
        for sub in ("logs", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            os.makedirs(os.path.join(self.prefix, sub), exist_ok=True)
        conf = os.path.join(self.prefix, "nginx.conf")
        for _ in range(3):  # the port is free when chosen; retry if something grabs it before nginx binds
            self.port = free_port()
            self.tls_port = free_port() if self.tls else 0
            with open(conf, "w") as f:
                f.write(self._config())
            self.proc = subprocess.Popen(
                [self.binary, "-e", os.path.join(self.prefix, "logs", "error.log"), "-p", self.prefix + "/",
                 "-c", conf], stdin=subprocess.DEVNULL, start_new_session=True)
            if wait_port(self.port, 10, self.proc) and (not self.tls or wait_port(self.tls_port, 10, self.proc)):
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


# ---------------------------------------------------------------------------------------------- TLS
@dataclass(frozen=True)
class PrivateCa:
    """A private CA (its certificate in ``ca_pem``) and a server certificate for 127.0.0.1 signed by it
    (``cert_pem`` holds the chain, ``key_pem`` the key), as a company's internal server would have."""

    ca_pem: str
    cert_pem: str
    key_pem: str


def make_private_ca(folder: str) -> PrivateCa | None:
    """Made with trustme (a test dependency; None, with a note, where it is missing), in a child process: trustme's
    imports (cryptography) would raise the bench's own peak RSS, the floor under every child's (:func:`run_child`)."""
    paths = PrivateCa(os.path.join(folder, "ca.pem"), os.path.join(folder, "server.pem"),
                      os.path.join(folder, "server.key"))
    code = "import sys; from tests.bench.common import write_private_ca; write_private_ca(*sys.argv[1:])"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = run_child([sys.executable, "-c", code, paths.ca_pem, paths.cert_pem, paths.key_pem], timeout=120,
                      cwd=root)
    if child.rc != 0:
        note(f"no private CA for the HTTPS rows ({(child.err or child.out).strip()[-300:]}); they are skipped "
             "(trustme is in the test extra: pip install trustme)")
        return None
    return paths


def write_private_ca(ca_pem: str, cert_pem: str, key_pem: str) -> None:
    """The CA's certificate, then the server's certificate chain and key, for 127.0.0.1 (see make_private_ca)."""
    import trustme

    os.makedirs(os.path.dirname(ca_pem), exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(ca_pem)
    cert.private_key_pem.write_to_path(key_pem)
    with open(cert_pem, "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())


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
    its own peak RSS from os.wait4. The child leads a process group of its own, so on Ctrl-C, SIGTERM or a timeout
    everything it started is killed too (py-spy's target, say), and it is reaped.

    That peak cannot read below the bench's own peak RSS (:func:`own_peak_rss_mib`): subprocess starts the child
    with vfork, and Linux counts the high-water mark of the memory the child leaves at exec (ours) as its own."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                process_group=0)
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            timer.cancel()
            _kill_group(proc.pid)  # anything the child left running in its group
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


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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
