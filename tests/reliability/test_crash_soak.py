"""Crash-and-resume soak: the app's TransferManager is killed with SIGKILL at random points, again and again, and
every transfer still ends complete and byte-exact, in the history, having re-sent little.

A child process (:mod:`tests.reliability.crash_child`) runs six jobs at once on one data folder -- download and
upload over plain HTTP (tests/support/http_server.py, the seed's chunk-upload protocol for the upload), Aliyun OSS
(the fake OSS server, multipart upload) and Azure Blob (Azurite, through a counting proxy) -- with every link slowed
so kills land mid-transfer. The test SIGKILLs it ``RUSTY_CAT_SOAK_KILLS`` times (default 3) at seeded random points
(``RUSTY_CAT_SOAK_SEED``, printed), each restart opening the manager with ``restore=True`` as the app does; then lets
it finish unthrottled. Between kills it tears files the way a crash on a bad disk could: a download's ``.part.ckpt``
and upload session files are truncated, zeroed or filled with garbage.

What is checked:

* every file's SHA-256 matches (downloads on disk, uploads as the servers hold them), no ``.part``/``.part.ckpt``
  or session file is left, and every job is in ``history.sqlite3`` with status ``completed`` and all its bytes;
* re-transferred bytes, **per job and per kill**: the bytes a server counted during one run, minus the progress
  that run made durable (the resume point read back from what survives the kill: the download checkpoint's
  ranges, the parts/blocks/prefix the server holds) must stay within ``2 x connections x chunk`` -- one chunk per
  segment in flight, doubled for what sat in socket buffers, the same allowance as tests/test_cli.py's kill test.
  The final, unkilled run may re-send nothing beyond probes;
* torn files: a torn download checkpoint makes that download start over from zero (asserted on the bytes: the
  server sent the file again on top of what the checkpoint had recorded); a torn OSS session loses the upload id,
  so a new multipart upload starts (asserted: one more InitiateMultipartUpload, the parts sent again); a torn Azure
  session costs nothing, because block ids derive from the content and the staged blocks are found again (the
  per-kill bound above holds without any allowance).

``RUSTY_CAT_SOAK_SIZE`` (default 4M) sizes the files; ``RUSTY_CAT_SOAK_SECONDS`` (default 0: one round) keeps
starting new rounds of ``RUSTY_CAT_SOAK_KILLS`` kills until the time is up (``make soak``). Figures go to
:mod:`tests.reliability.soak_summary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.engine import checkpoint
from app.engine.checkpoint import CheckpointError, checkpoint_path
from app.engine.ranges import RangeSet
from app.manager.accounts import Account, Auth, Provider
from app.manager.database import DB_FILE_NAME
from app.manager.jobs import JobOptions, JobStatus
from app.manager.manager import TransferManager
from app.manager.secrets import SecretStore
from app.sizes import parse_size
from tests.reliability import soak_summary
from tests.support.azurite import AzuriteServer
from tests.support.engine_helpers import KIB, MIB, env_for
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer
from tests.support.fault_proxy import FaultProxy, ProxyFault, ProxyRequest
from tests.support.http_server import TestHttpServer
from tests.support.memory_keyring import MemoryKeyring


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


KILLS = _env_int("RUSTY_CAT_SOAK_KILLS", 3)
SECONDS = float(os.environ.get("RUSTY_CAT_SOAK_SECONDS", "").strip() or 0)
SIZE = parse_size(os.environ.get("RUSTY_CAT_SOAK_SIZE", "").strip() or "4M")
CHUNK = 128 * KIB
CONNECTIONS = 4
SLACK_PER_KILL = 2 * CONNECTIONS * CHUNK  # bytes one kill may cost one job (see the module docstring)
# The unkilled last run re-sends nothing for the kills; what it may waste is a connection's tail given to an idle
# connection (work stealing) while the server had already sent past the split: at most a chunk per connection at
# the pace the last run keeps (FINAL_SPEEDUP times the throttle, so socket buffers stay shallow).
FINAL_SLACK = CONNECTIONS * CHUNK
FINAL_SPEEDUP = 8
CYCLE = 0.7  # seconds of transfer a run gets on average before its kill (sizes the throttle)
WAIT = 30.0  # seconds any one wait for the child may take
TORN_MODES = ("truncated", "zeroed", "garbage")

pytestmark = pytest.mark.timeout(90 + SECONDS * 1.5)


# ---------------------------------------------------------------------------------------------- the child
class Child:
    """crash_child as a subprocess; a reader thread feeds its JSON lines to a queue so every wait has a deadline."""

    def __init__(self, spec: Path, env: dict[str, str], stderr: Path) -> None:
        self._stderr_path = stderr
        self._stderr = stderr.open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.crash_child", str(spec)],
                                     stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
                                     text=True, env=env)
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.last: dict[str, Any] | None = None  # the latest progress line
        self.reopened: Counter[str] = Counter()  # job name -> times the child saw it run again after completing
        threading.Thread(target=self._pump, name="crash-child-stdout", daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for raw in self.proc.stdout:
                with contextlib.suppress(ValueError):
                    self.lines.put(json.loads(raw))
        self.lines.put(None)

    def stderr_tail(self) -> str:
        return self._stderr_path.read_text(errors="replace")[-3000:]

    def _note(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "failed":
            raise AssertionError(f"job {event['name']} failed in the child: {event['error']}\n{self.stderr_tail()}")
        if kind == "progress":
            self.last = event
        elif kind == "reopened":
            self.reopened[event["name"]] += 1

    def next_event(self, deadline: float) -> dict[str, Any] | None:
        """The next line (progress lines are remembered in ``last``); None when the child's stdout ended."""
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"the child went quiet; last progress {self.last}\n{self.stderr_tail()}"
            try:
                event = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if event is None:
                return None
            self._note(event)
            return event

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT) -> dict[str, Any] | None:
        """Read lines until one satisfies ``predicate``; None if the child finished everything (or ended) first."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(deadline)
            if event is None or event.get("event") == "done":
                return None
            if predicate(event):
                return event

    def drain_for(self, seconds: float) -> bool:
        """Keep reading for ``seconds``; False if the child finished everything meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                event = self.lines.get(timeout=max(0.001, end - time.monotonic()))
            except queue.Empty:
                break
            if event is None or event.get("event") == "done":
                return False
            self._note(event)
        return True

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        end = time.monotonic() + 2  # what it said before it died still counts
        while time.monotonic() < end:
            try:
                event = self.lines.get(timeout=0.2)
            except queue.Empty:
                break
            if event is None:
                break
            self._note(event)
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


# ---------------------------------------------------------------------------------------------- one job's view
@dataclass
class JobView:
    """One job of a round, and how to read what its server was sent and what survives a kill."""

    name: str
    direction: str  # "download" | "upload"
    remote: str
    local: Path
    data: bytes
    moved: Callable[[], int]  # bytes the server counted for this job so far (sent for downloads, received for uploads)
    resume_point: Callable[[], int]  # bytes a restart can trust now (0 .. size)
    verify: Callable[[], bool]  # the finished transfer holds exactly ``data``
    session_match: Callable[[dict[str, Any]], bool] | None = None  # recognises this upload's session file
    trace: Callable[[], list[str]] = list  # the job's requests as the server saw them (for failure messages)
    trace_before: int = 0
    tear_loses_progress: bool = True  # False: a torn session costs nothing (Azure)
    moved_before: int = 0
    point_before: int = 0
    torn_loss: int = 0  # resume-point bytes thrown away by torn files
    tears: list[str] = field(default_factory=list)
    in_window: bool = False  # the last kill landed after it completed but before the history said so
    waste: list[int] = field(default_factory=list)  # per kill, then the final run

    @property
    def size(self) -> int:
        return len(self.data)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_resume_point(dest: Path, size: int) -> int:
    """What the engine will trust on restart: the whole file once renamed, else the ranges its two records hold (the
    per-batch one's written ranges, same boot, and the fsynced durable one's) -- read with the engine's own decoder,
    so a torn record reads as nothing, as the engine treats it."""
    if dest.exists():
        return size
    files = checkpoint.sidecars(str(dest))
    trusted = RangeSet()
    for path in (files.checkpoint, files.durable):
        try:
            ckpt = checkpoint.load(path)
        except CheckpointError:
            continue
        if ckpt is not None:
            for s, e in ckpt.done(checkpoint.boot_id()).spans:
                trusted.add(s, e)
    return trusted.total()


@dataclass
class Round:
    index: int
    seed: int
    root: Path
    jobs: list[JobView]
    kills: int = 0
    torn: int = 0
    window_kills: int = 0
    reopened_runs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def session_dir(self) -> Path:
        return self.data_dir / "upload-sessions"


# ---------------------------------------------------------------------------------------------- the services
@dataclass
class Services:
    http: TestHttpServer
    oss: FakeOssServer
    azurite: AzuriteServer | None
    proxy: PacedProxy | None
    container: str | None
    rate: float = 0.0

    def throttle(self, rate: float | None) -> None:
        """Per-connection bytes/s on every link. The Azure proxy paces response bodies and delays each Put Block
        by one chunk's worth (it reads a request whole before forwarding it, so it can't pace request bodies)."""
        self.rate = rate or 0.0
        for server in (self.http, self.oss):
            server.rate_limit = rate
            server.upload_rate_limit = rate
        if self.proxy is not None:
            self.proxy.rate = rate
            self.proxy.clear_faults()
            if rate:
                self.proxy.add_fault(ProxyFault("delay", where=_azure_put_block, times=-1, seconds=CHUNK / rate))

    def settle(self, jobs: list[JobView], quiet: float = 0.4, timeout: float = 5.0) -> None:
        """Wait until no server counter moves for ``quiet`` seconds: a request whose body sat in a socket buffer
        when the client died may still be arriving (and a delayed Azure request still being forwarded)."""
        def snapshot() -> list[int]:
            return [j.moved() for j in jobs]

        deadline = time.monotonic() + timeout
        last = snapshot()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = snapshot()
            if now == last:
                return
            last = now


class PacedProxy(FaultProxy):
    """The counting proxy in front of Azurite, sending response bodies at ``rate`` bytes/s per connection.

    Azurite itself can't be throttled, and a proxy that forwards a whole range at once fills the socket buffers
    with up to a segment that a kill then throws away: pacing at the source keeps the buffers as shallow as the
    other test servers keep theirs (they pace their bodies the same way), so the per-kill bound means the same for
    every provider. ``paced`` counts the bytes that went out paced, so a change to the proxy that bypasses this
    hook fails the test instead of silently un-pacing it."""

    rate: float | None = None
    paced = 0

    def _send(self, conn: Any, body: bytes, chunked: bool, ex: Any, *, last: bool) -> None:  # type: ignore[override]
        rate = self.rate
        if not rate or chunked:
            FaultProxy._send(conn, body, chunked, ex, last=last)
            return
        view, step = memoryview(body), max(1024, int(rate / 50))
        deadline = time.monotonic()
        for i in range(0, len(view), step):
            piece = view[i: i + step]
            conn.sendall(piece)
            ex.sent += len(piece)
            self.paced += len(piece)
            deadline = max(deadline, time.monotonic() - 0.05) + len(piece) / rate
            if self._stop.wait(max(0.0, deadline - time.monotonic())):
                raise OSError("proxy stopping")


def _azure_put_block(req: ProxyRequest) -> bool:
    return req.method == "PUT" and "comp=block" in req.query and "comp=blocklist" not in req.query


@contextlib.contextmanager
def services(request: pytest.FixtureRequest) -> Iterator[Services]:
    try:
        azurite: AzuriteServer | None = request.getfixturevalue("azurite")
    except pytest.skip.Exception as skip:  # no Node.js/Azurite here: soak the other providers, say so
        print(f"crash soak: Azure left out ({skip.msg})")
        azurite = None
    with contextlib.ExitStack() as stack:
        http = stack.enter_context(TestHttpServer())
        oss = stack.enter_context(FakeOssServer(min_part_size=64 * KIB))
        proxy = stack.enter_context(PacedProxy(f"http://127.0.0.1:{azurite.port}")) if azurite else None
        container = azurite.create_container() if azurite else None
        yield Services(http, oss, azurite, proxy, container)
        assert http.errors == [] and oss.errors == []
        assert proxy is None or proxy.errors == []
        assert proxy is None or proxy.paced > 0, "the Azure proxy no longer paces bodies through PacedProxy._send"


# ---------------------------------------------------------------------------------------------- building a round
def _accounts(svc: Services) -> list[dict[str, Any]]:
    accounts = [{"name": "oss", "provider": "aliyun-oss", "auth": "access-key", "endpoint": svc.oss.endpoint,
                 "fields": {"region": svc.oss.region, "access_key_id": svc.oss.credentials.access_key_id,
                            "path_style": "true"}, "secret_env": "SOAK_OSS_SECRET"}]
    if svc.azurite is not None and svc.proxy is not None:
        accounts.append({"name": "az", "provider": "azure-blob", "auth": "shared-key",
                         "endpoint": f"{svc.proxy.base_url}/{svc.azurite.account_name}",
                         "fields": {"account_name": svc.azurite.account_name}, "secret_env": "SOAK_AZ_KEY"})
    return accounts


def _build_round(index: int, seed: int, root: Path, svc: Services) -> Round:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    (root / "downloads").mkdir()
    (root / "sources").mkdir()

    def data() -> bytes:  # not a whole number of chunks: the short last chunk is exercised too
        return rng.randbytes(SIZE + rng.randrange(1, CHUNK))

    jobs: list[JobView] = []
    http, oss = svc.http, svc.oss

    # plain HTTP download
    d_http, p_http = data(), f"/soak/r{index}/http.bin"
    http.add_file(p_http, d_http)
    dest = root / "downloads" / "http.bin"
    jobs.append(JobView(
        "http-down", "download", http.url(p_http), dest, d_http,
        moved=lambda p=p_http: sum(r.bytes_sent for r in http.requests if r.method == "GET" and r.path == p),
        trace=lambda p=p_http: _server_trace(http, p),
        resume_point=lambda d=dest, n=len(d_http): _download_resume_point(d, n),
        verify=lambda d=dest, x=d_http: d.exists() and _sha(d.read_bytes()) == _sha(x)))

    # plain HTTP upload (the seed's chunk protocol: the server's nextByte is the resume point)
    u_http = data()
    src = root / "sources" / "http-up.bin"
    src.write_bytes(u_http)
    md5 = hashlib.md5(u_http).hexdigest()

    def http_up_moved(m: str = md5) -> int:
        return sum(len(c.file_part.data) for c in list(http.upload_calls)
                   if c.kind == "chunk" and c.file_part is not None and c.values.get("fileMd5") == m)

    def http_up_point(m: str = md5, n: int = len(u_http)) -> int:
        state = http.uploads.get(m)
        return 0 if state is None else (n if state.completed else state.prefix)

    jobs.append(JobView(
        "http-up", "upload", http.url("/upload"), src, u_http, moved=http_up_moved, resume_point=http_up_point,
        verify=lambda m=md5, x=u_http: (s := http.uploads.get(m)) is not None and s.completed and s.data == x))

    # OSS download and multipart upload
    bucket = DEFAULT_BUCKET
    d_oss, k_down = data(), f"soak/r{index}/down.bin"
    oss.put_object(bucket, k_down, d_oss)
    dest = root / "downloads" / "oss.bin"
    jobs.append(JobView(
        "oss-down", "download", f"oss://oss/{bucket}/{k_down}", dest, d_oss,
        moved=lambda p=f"/{bucket}/{k_down}": sum(r.bytes_sent for r in oss.requests
                                                 if r.method == "GET" and r.path == p),
        trace=lambda p=f"/{bucket}/{k_down}": _server_trace(oss, p),
        resume_point=lambda d=dest, n=len(d_oss): _download_resume_point(d, n),
        verify=lambda d=dest, x=d_oss: d.exists() and _sha(d.read_bytes()) == _sha(x)))

    u_oss, k_up = data(), f"soak/r{index}/up.bin"
    src = root / "sources" / "oss-up.bin"
    src.write_bytes(u_oss)
    jobs.append(JobView(
        "oss-up", "upload", f"oss://oss/{bucket}/{k_up}", src, u_oss,
        moved=lambda p=f"/{bucket}/{k_up}": sum(r.body_size for r in oss.requests
                                               if r.method == "PUT" and r.path == p and "partNumber=" in r.query),
        resume_point=lambda k=k_up, x=u_oss, r=root: _oss_up_point(oss, bucket, k, x, r),
        verify=lambda k=k_up, x=u_oss: (o := oss.get_object(bucket, k)) is not None and bytes(o.data) == x,
        session_match=lambda s, k=k_up: str(s.get("kind", "")).startswith("aliyun-oss") and
        s.get("identity", {}).get("key") == k))

    # Azure Blob download and block upload, through the counting proxy
    if svc.azurite is not None and svc.proxy is not None and svc.container is not None:
        az, proxy, container = svc.azurite, svc.proxy, svc.container
        d_az, b_down = data(), f"soak/r{index}/down.bin"
        az.service_client().get_blob_client(container, b_down).upload_blob(d_az, overwrite=True)
        dest = root / "downloads" / "azure.bin"
        path_down = f"/{az.account_name}/{container}/{b_down}"
        jobs.append(JobView(
            "azure-down", "download", f"azure://az/{container}/{b_down}", dest, d_az,
            moved=lambda p=path_down: sum(e.sent for e in proxy.exchanges
                                          if e.method == "GET" and e.request.path == p),
            trace=lambda p=path_down: [f"{e.method} {e.request.range} {e.status} {e.sent}" for e in proxy.exchanges
                                       if e.request.path == p],
            resume_point=lambda d=dest, n=len(d_az): _download_resume_point(d, n),
            verify=lambda d=dest, x=d_az: d.exists() and _sha(d.read_bytes()) == _sha(x)))

        u_az, b_up = data(), f"soak/r{index}/up.bin"
        src = root / "sources" / "azure-up.bin"
        src.write_bytes(u_az)
        path_up = f"/{az.account_name}/{container}/{b_up}"
        jobs.append(JobView(
            "azure-up", "upload", f"azure://az/{container}/{b_up}", src, u_az,
            moved=lambda p=path_up: sum(e.forwarded for e in proxy.exchanges
                                        if e.method == "PUT" and e.request.path == p
                                        and _azure_put_block(e.request)),
            resume_point=lambda b=b_up, x=u_az: _azure_up_point(az, container, b, x),
            verify=lambda b=b_up, x=u_az: az.read_blob(container, b) == x,
            session_match=lambda s, b=path_up: s.get("provider") == "azure-blob" and
            str(s.get("blob", "")).endswith(b),
            tear_loses_progress=False))
    return Round(index, seed, root, jobs)


def _server_trace(server: TestHttpServer, path: str) -> list[str]:
    return [f"{r.method} {r.range} {r.status} {r.bytes_sent}" for r in server.requests if r.path == path]


def _oss_up_point(oss: FakeOssServer, bucket: str, key: str, data: bytes, root: Path) -> int:
    """Parts of the upload whose id the session file names (what ListParts will tell the restarted plugin)."""
    obj = oss.get_object(bucket, key)
    if obj is not None and bytes(obj.data) == data:
        return len(data)
    for _path, session in _sessions(root / "data" / "upload-sessions"):
        if session.get("identity", {}).get("key") == key:
            upload = oss.multipart_uploads.get(session.get("upload_id", ""))
            return 0 if upload is None else sum(len(p.data) for p in list(upload.parts.values()))
    return 0


def _azure_up_point(az: AzuriteServer, container: str, blob: str, data: bytes) -> int:
    from azure.core.exceptions import ResourceNotFoundError

    client = az.service_client().get_blob_client(container, blob)
    try:
        committed, uncommitted = client.get_block_list("all")
    except ResourceNotFoundError:
        return 0
    if committed:
        return len(data) if sum(b.size for b in committed) == len(data) else 0
    return sum({b.id: b.size for b in uncommitted}.values())


def _sessions(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Readable session files and their data (a torn one reads as nothing, as the store itself treats it)."""
    found = []
    for path in sorted(folder.glob("*.upload.json")) if folder.is_dir() else []:
        try:
            found.append((path, json.loads(path.read_bytes())["data"]))
        except (ValueError, KeyError, TypeError):
            continue
    return found


# ---------------------------------------------------------------------------------------------- tearing files
def tear(path: Path, mode: str, rng: random.Random) -> None:
    """Leave ``path`` as a crash on a bad disk might: cut short, zeroed (a block never written) or garbage."""
    raw = path.read_bytes()
    if mode == "truncated":
        path.write_bytes(raw[: rng.randrange(len(raw))] if raw else b"")
    elif mode == "zeroed":
        path.write_bytes(b"\0" * max(1, len(raw)))
    else:
        path.write_bytes(rng.randbytes(max(16, len(raw))))


def tear_files(rnd: Round, rng: random.Random, wanted: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Tear each (job name, mode) whose file exists; returns those that could not be torn (try again later)."""
    left = []
    for name, mode in wanted:
        job = next(j for j in rnd.jobs if j.name == name)
        if job.direction == "download":
            path: Path | None = Path(checkpoint_path(str(job.local)))
            if not path.exists() or job.local.exists():
                path = None
        else:
            assert job.session_match is not None
            # not the record a completed OSS upload leaves (a tear there costs a restart nothing: the job is done)
            path = next((p for p, s in _sessions(rnd.session_dir) if job.session_match(s) and not s.get("completed")),
                        None)
        if path is None:
            left.append((name, mode))
            continue
        tear(path, mode, rng)
        rnd.torn += 1
        job.tears.append(mode)
        if job.tear_loses_progress:
            # A torn download record costs only what the durable record does not hold; a torn session, everything.
            after = job.resume_point() if job.direction == "download" else 0
            job.torn_loss += job.point_before - after
            job.point_before = after
    return left


# ---------------------------------------------------------------------------------------------- one round
def _spec(rnd: Round, svc: Services) -> Path:
    spec = {"data_dir": str(rnd.data_dir), "concurrency": len(rnd.jobs), "accounts": _accounts(svc),
            "jobs": [{"name": j.name, "direction": j.direction, "remote": j.remote, "local": str(j.local),
                      "connections": CONNECTIONS, "chunk_size": CHUNK} for j in rnd.jobs]}
    path = rnd.root / "spec.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


def _history_status(rnd: Round) -> dict[str, str]:
    """local path -> status, as the history file says (read-only: the child is dead, nobody writes)."""
    db_path = rnd.data_dir / DB_FILE_NAME
    if not db_path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT local_path, status FROM jobs").fetchall())


def _close_run(rnd: Round, svc: Services, what: str, child: Child, final: bool = False) -> None:
    """After a run ended (killed or finished): how much each job re-sent beyond the progress it made durable.

    Kills that land after a transfer completed but before the history recorded it are counted: the restart must
    recognise the finished transfer and send nothing again (test_kill_between_completion_and_history_write). (The
    manager's poll of its own history used to start a job that had just completed anew, sometimes several times in a
    row; the child still reports it, and test_the_history_poll_does_not_restart_a_job_that_just_completed guards
    the fix.)"""
    svc.settle(rnd.jobs)
    history = {} if final else _history_status(rnd)
    for job in rnd.jobs:
        moved, point = job.moved(), job.resume_point()
        waste = (moved - job.moved_before) - (point - job.point_before)
        job.waste.append(waste)
        job.moved_before, job.point_before = moved, point
        limit = FINAL_SLACK if final else SLACK_PER_KILL
        rnd.window_kills += job.in_window
        again = child.reopened[job.name]
        if again and waste > limit:
            rnd.reopened_runs += again
            rnd.notes.append(f"{job.name} completed and was started again {again}x in the same run ({waste} bytes)")
            limit += again * job.size
        job.in_window = point == job.size and history.get(str(job.local)) not in (None, "completed")
        where = f"round {rnd.index} (seed {rnd.seed}) {what}: {job.name}"
        trace = job.trace()
        run_trace, job.trace_before = trace[job.trace_before:], len(trace)
        assert waste <= limit, (f"{where} re-sent {waste} bytes beyond its durable progress (limit {limit}); "
                                f"per run so far {job.waste}, tears {job.tears}; resume point {point}; this run's "
                                f"requests {run_trace[:60]}")
        # Progress no server saw would mean a restart trusted bytes it should not have (e.g. a torn checkpoint).
        assert waste >= 0, f"{where} advanced {-waste} bytes more than it was sent; tears {job.tears}"


def run_round(rnd: Round, svc: Services, kills: int, deadline: float | None) -> None:
    rng = random.Random(rnd.seed ^ 0x5EED)
    spec = _spec(rnd, svc)
    env = env_for(rnd.root, SOAK_OSS_SECRET=svc.oss.credentials.access_key_secret,
                  SOAK_AZ_KEY=svc.azurite.account_key if svc.azurite else "")
    stderr = rnd.root / "child.stderr"
    # The first kill tears one download checkpoint and both session files, one mode each; later kills tear a
    # random file now and then.
    modes = list(TORN_MODES)
    rng.shuffle(modes)
    names = [j.name for j in rnd.jobs]
    pending = [("http-down", modes[0]), ("oss-up", modes[1])]
    if "azure-up" in names:
        pending.append(("azure-up", modes[2]))
    tearable = [j.name for j in rnd.jobs if j.direction == "download" or j.session_match is not None]

    svc.throttle(SIZE / ((kills + 1) * CYCLE * CONNECTIONS))
    for k in range(1, kills + 1):
        child = Child(spec, env, stderr)
        try:
            if child.wait_for(lambda e: e.get("event") == "open") is None:
                break  # everything finished already
            if k == 1:  # every job has started moving bytes: checkpoints and sessions exist to be torn
                if child.wait_for(lambda e: e.get("event") == "progress" and
                                  all(v[1] > 0 for v in e["jobs"].values())) is None:
                    break
                delay = rng.uniform(0.0, 0.4)
            else:
                delay = rng.uniform(0.0, 2 * CYCLE)
            if not child.drain_for(delay):
                break
        finally:
            child.kill()
        rnd.kills += 1
        _close_run(rnd, svc, f"kill {k}", child)
        if k > 1 and rng.random() < 0.3:
            pending.append((rng.choice(tearable), rng.choice(TORN_MODES)))
        pending = tear_files(rnd, rng, pending)
        if deadline is not None and time.monotonic() > deadline:
            break

    svc.throttle(svc.rate * FINAL_SPEEDUP)
    child = Child(spec, env, stderr)
    try:
        deadline_final = time.monotonic() + WAIT + 2 * SIZE / (svc.rate * CONNECTIONS)
        while True:
            event = child.next_event(deadline_final)
            if event is None or event.get("event") == "done":
                break
        assert child.proc.wait(15) == 0, f"the last run ended with {child.proc.returncode}\n{child.stderr_tail()}"
    finally:
        child.close()
    _close_run(rnd, svc, "the final run", child, final=True)


def verify_round(rnd: Round) -> tuple[int, int, list[str]]:
    """(bytes verified, lost, problems): every file exact, no partial state left, every job completed in the
    history. Lost = a transfer whose result differs from its source, or a job the history no longer has."""
    lost = 0
    problems = []
    for job in rnd.jobs:
        if not job.verify():
            lost += 1
            problems.append(f"{job.name}: content differs from the source")
        if job.direction == "download":
            leftovers = [p for p in checkpoint.sidecars(str(job.local)).all if os.path.exists(p)]
            if leftovers:
                problems.append(f"{job.name}: left behind {leftovers}")
    # Open sessions must be gone; a completed OSS upload leaves only the record of its completion.
    records = {p for p, s in _sessions(rnd.session_dir) if s.get("completed") is True}
    left_sessions = [p.name for p in rnd.session_dir.glob("*") if p not in records] if rnd.session_dir.is_dir() else []
    if left_sessions:
        problems.append(f"session files left behind: {left_sessions}")
    with contextlib.closing(sqlite3.connect(f"file:{rnd.data_dir / DB_FILE_NAME}?mode=ro", uri=True)) as db:
        rows = {r[0]: r[1:] for r in db.execute(
            "SELECT local_path, direction, status, done_bytes, total_bytes FROM jobs")}
    for job in rnd.jobs:
        row = rows.get(str(job.local))
        if row is None:
            lost += 1
            problems.append(f"{job.name}: not in the history")
        elif row[1:] != ("completed", job.size, job.size):
            problems.append(f"{job.name}: history says {row}")
    if len(rows) != len(rnd.jobs):
        problems.append(f"the history holds {len(rows)} jobs, expected {len(rnd.jobs)}")
    verified = sum(j.size for j in rnd.jobs if j.verify())
    return verified, lost, [f"round {rnd.index} (seed {rnd.seed}): {p}" for p in problems]


def check_tears(rnd: Round, oss: FakeOssServer) -> None:
    """A torn checkpoint or OSS session makes that transfer start over, which shows in the bytes: the server sent
    (or received) the whole file again on top of the progress the torn file had recorded. A torn Azure session
    costs nothing (its per-kill waste stayed within the bound with no allowance, checked in _close_run)."""
    for job in rnd.jobs:
        if job.tears and job.tear_loses_progress:
            assert job.moved_before >= job.size + job.torn_loss, (
                f"{job.name}: torn {job.tears}, yet only {job.moved_before} bytes moved for {job.size} bytes plus "
                f"{job.torn_loss} the torn file had recorded: a torn file was trusted")
    oss_up = next(j for j in rnd.jobs if j.name == "oss-up")
    key = oss_up.remote.split("/", 4)[4]
    initiated = sum(1 for c in oss.calls if c.op == "InitiateMultipartUpload" and c.key == key and c.status == 200)
    assert initiated >= 1 + len(oss_up.tears), \
        f"oss-up: {len(oss_up.tears)} torn sessions but {initiated} multipart uploads: a torn session was trusted"


# ---------------------------------------------------------------------------------------------- the test
def test_kill_9_again_and_again_then_every_transfer_completes_exactly(request: pytest.FixtureRequest,
                                                                       tmp_path: Path) -> None:
    seed = _env_int("RUSTY_CAT_SOAK_SEED", random.SystemRandom().randrange(2**32))
    print(f"crash soak: seed={seed} kills={KILLS} size={SIZE} seconds={SECONDS:g} "
          "(RUSTY_CAT_SOAK_SEED / _KILLS / _SIZE / _SECONDS)")
    started = time.monotonic()
    deadline = started + SECONDS if SECONDS > 0 else None
    rounds: list[Round] = []
    verified = lost = 0
    problems: list[str] = []
    try:
        with services(request) as svc:
            while True:
                rnd = _build_round(len(rounds), seed + len(rounds), tmp_path / f"round{len(rounds)}", svc)
                rounds.append(rnd)
                run_round(rnd, svc, KILLS, deadline)
                ok_bytes, round_lost, round_problems = verify_round(rnd)
                verified += ok_bytes
                lost += round_lost
                problems += round_problems
                if round_problems:
                    break
                check_tears(rnd, svc.oss)
                print(f"crash soak: round {rnd.index} seed={rnd.seed}: {rnd.kills} kills, {rnd.torn} torn files "
                      f"{[(j.name, j.tears) for j in rnd.jobs if j.tears]}; re-sent per run "
                      f"{[(j.name, j.waste) for j in rnd.jobs]}; {'; '.join(rnd.notes)}")
                if deadline is None or time.monotonic() >= deadline:
                    break
    finally:
        transfers = sum(len(r.jobs) for r in rounds)
        soak_summary.record("crash_soak", cases=transfers, faults=sum(r.torn for r in rounds),
                            kills=sum(r.kills for r in rounds), bytes_verified=verified, lost=lost, seed=seed,
                            note=f"{len(rounds)} rounds of {len(rounds[0].jobs) if rounds else 0} transfers; "
                                 f"faults = torn checkpoint/session files; "
                                 f"{sum(r.window_kills for r in rounds)} kills landed between a completion and its "
                                 f"history write (nothing re-sent); {sum(r.reopened_runs for r in rounds)} completed "
                                 "transfers were started again by the manager's history poll")
    assert not problems, problems
    assert lost == 0
    assert sum(r.kills for r in rounds) >= 1, "no kill landed before the transfers finished"


# ---------------------------------------------------------------------------------------------- a known gap
async def _until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", [
    "http-download",
    "oss-upload",
    "http-upload",
])
async def test_kill_between_completion_and_history_write(kind: str, tmp_path: Path) -> None:
    """The state a SIGKILL leaves when it lands after the engine finished a transfer (the download renamed into
    place; the OSS upload completed, its session file kept only as a record of that) but before the manager's
    batched history write: the file is done, the history still says active. The restart sees that (the download's
    file in place; the upload's object checked by HEAD: size and CRC-64) and transfers nothing again."""
    data = random.Random(7).randbytes(MIB + 5)
    data_dir = tmp_path / "data"
    with TestHttpServer() as http, FakeOssServer(min_part_size=64 * KIB) as oss:
        source = tmp_path / "source.bin"
        source.write_bytes(data)
        dest = tmp_path / "downloads" / "file.bin"
        dest.parent.mkdir()
        http.add_file("/file.bin", data)
        moved = {
            "http-download": lambda: http.bytes_sent_total,
            "http-upload": lambda: sum(len(c.file_part.data) for c in list(http.upload_calls)
                                       if c.kind == "chunk" and c.file_part is not None),
            "oss-upload": lambda: sum(r.body_size for r in oss.requests if r.method == "PUT"),
        }[kind]
        secrets = SecretStore(MemoryKeyring())
        options = JobOptions(chunk_size=CHUNK, connections=CONNECTIONS)
        manager = TransferManager(data_dir, secrets=secrets)
        await manager.open()
        try:
            await manager.accounts.add(Account("oss", Provider.ALIYUN_OSS, Auth.ACCESS_KEY, oss.endpoint, {
                "region": oss.region, "access_key_id": oss.credentials.access_key_id, "path_style": "true"}),
                oss.credentials.access_key_secret)
            if kind == "http-download":
                job = await manager.add_download(http.url("/file.bin"), str(dest), options=options, new_name=False)
            else:
                remote = http.url("/upload") if kind == "http-upload" else f"oss://oss/{DEFAULT_BUCKET}/file.bin"
                job = await manager.add_upload(str(source), remote, options=options)
            await _until(lambda: job.status is JobStatus.COMPLETED)
        finally:
            await manager.close()
        with contextlib.closing(sqlite3.connect(data_dir / DB_FILE_NAME)) as db, db:
            db.execute("UPDATE jobs SET status='active', done_bytes=?, finished_at=NULL", (len(data) // 2,))
        before = moved()

        again = TransferManager(data_dir, secrets=secrets)
        await again.open(restore=True)
        try:
            restored = again.get(job.id)
            await _until(lambda: restored.status is JobStatus.COMPLETED)
        finally:
            await again.close()
        if kind == "http-download":
            assert dest.read_bytes() == data
        resent = moved() - before
        assert resent <= CHUNK, f"the restart transferred {resent} bytes of a {len(data)}-byte file that was done"


# Fixed: the manager's poll of the history (for jobs other processes changed) used to read its own last 'active'
# row after the job completed in memory but before the completion was written, set the job back to active and
# start it again; it now skips rows it wrote itself and jobs with unsaved changes.


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_the_history_poll_does_not_restart_a_job_that_just_completed(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's manager polls its history every 2 s and takes over any job that wants to run and whose lock is
    free. Its own rows come back too: when the last progress row it wrote ('active') is read after the job
    completed in memory (lock released) but before the batched write of the completion (up to 0.1 s later), the
    stale row wins. Found by the soak (twice in its first four rounds of 16 MiB files). Here the
    poll runs every 50 ms, batched writes are held back, and that last 'active' row is the one written at the
    moment of completion: the state the race leaves, made certain."""
    import app.manager.manager as manager_module

    monkeypatch.setattr(manager_module, "EXTERNAL_POLL_INTERVAL", 0.05)
    monkeypatch.setattr(manager_module, "NOTIFY_INTERVAL", 10.0)
    monkeypatch.setattr(manager_module, "PERSIST_INTERVAL", 10.0)
    data = random.Random(8).randbytes(MIB)
    dest = tmp_path / "file.bin"
    with TestHttpServer() as http:
        http.add_file("/file.bin", data)
        manager = TransferManager(tmp_path / "data", secrets=SecretStore(MemoryKeyring()))
        await manager.open(restore=True)
        try:
            job = await manager.add_download(http.url("/file.bin"), str(dest), new_name=False)
            await _until(lambda: job.status is JobStatus.COMPLETED)
            with contextlib.closing(sqlite3.connect(tmp_path / "data" / DB_FILE_NAME)) as db, db:
                db.execute("UPDATE jobs SET status='active', done_bytes=?, updated_at=? WHERE id=?",
                           (len(data) // 2, time.time(), job.id))
            await asyncio.sleep(0.5)
            assert job.status is JobStatus.COMPLETED
            assert http.bytes_sent_total == len(data), f"{http.bytes_sent_total} bytes sent for a {len(data)}-byte file"
        finally:
            await manager.close()
