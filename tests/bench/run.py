"""``make bench``: Rusty Cat against curl and aria2c on loopback nginx (or on a URL you give), plus the engine's
upload (chunk protocol and Azure blocks), CPU, memory and queue figures of issue 5 and the window's 10,000-job
table of issue 4. Prints a table of medians with each target, and writes every raw figure to a JSON file.

    python -m tests.bench.run                      # 1 GiB, 3 rounds (about 3 minutes on 2 cores)
    python -m tests.bench.run --size 256MiB        # quick
    python -m tests.bench.run --url https://host/f # your network: curl, aria2c and our CLI only
    python -m tests.bench.ui_table                 # only the window's table (about 25 s)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.bench.common import (
    ChildRun,
    GiB,
    MiB,
    Nginx,
    ensure_tools,
    fmt_size,
    generate_file,
    generate_repeating_file,
    median,
    note,
    own_peak_rss_mib,
    parse_size,
    remove,
    run_child,
    settle_disk,
    sha256_file,
    tool_version,
)

ROOT = str(Path(__file__).resolve().parents[2])
PY = sys.executable
CONNECTIONS = 4
UPLOAD_CHUNK = "8MiB"
SMALL = 256 * MiB
HUGE = 4 * GiB  # the download whose peak RSS is compared with the small one's (memory must not grow with size)
QUEUE_TASKS = 10_000
UI_TABLE_TIMEOUT = 300.0  # seconds for the window bench child (two 10 s phases plus start-up)
TOOLS = {"nginx": "nginx", "aria2c": "aria2", "curl": "curl"}

# (figure, target text, comparison): every target row of issue 5, in its order.
TARGETS: list[tuple[str, str, Callable[[float], bool]]] = [
    ("download: CLI vs curl -o (throughput)", ">= 1.0x", lambda v: v >= 1.0),
    ("download: CLI vs aria2c -x4 -s4", ">= 1.0x", lambda v: v >= 1.0),
    ("download: app path (qasync) vs CLI", ">= 0.9x", lambda v: v >= 0.9),
    ("upload (chunk protocol): CLI vs curl -T", ">= 0.8x", lambda v: v >= 0.8),
    ("upload (chunk protocol), first: CLI vs curl -T", ">= 0.8x", lambda v: v >= 0.8),
    ("upload (Azure blocks, Azurite): CLI vs curl -T", ">= 0.8x", lambda v: v >= 0.8),
    ("CPU s per GiB downloaded: CLI vs aria2c", "<= 1.5x", lambda v: v <= 1.5),
    ("peak RSS: huge vs small download (CLI)", "<= 1.1x", lambda v: v <= 1.1),
    ("peak RSS downloading the huge file", "< 120 MiB", lambda v: v < 120),
    ("try_enqueue of 10,000 tasks", "< 2 s", lambda v: v < 2.0),
    ("snapshot() with 10,000 queued", "< 20 ms", lambda v: v < 20.0),
    ("UI: 16 ms QTimer tick gap p99 during download", "< 50 ms", lambda v: v < 50.0),
]
#: The rows a --url run can measure (curl, aria2c and the CLI downloading someone else's file).
URL_MODE_FIGURES = frozenset({"download: CLI vs curl -o (throughput)", "download: CLI vs aria2c -x4 -s4",
                              "CPU s per GiB downloaded: CLI vs aria2c"})
#: The rows read from the CLI's peak RSS (unreadable when it is no higher than the bench's own, see run_child).
RSS_FIGURES = frozenset({"peak RSS: huge vs small download (CLI)", "peak RSS downloading the huge file"})
assert (URL_MODE_FIGURES | RSS_FIGURES).issubset(figure for figure, _, _ in TARGETS)


class Stop(Exception):
    """SIGTERM/SIGHUP: unwind like Ctrl-C so nginx and any running child are stopped."""


@dataclass
class Run:
    phase: str
    tool: str
    rep: int
    size: int
    wall: float
    cpu: float
    user: float
    sys: float
    maxrss_mib: float
    rc: int
    ok: bool
    mib_s: float
    sha256_ok: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: str
    runs: list[Run] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    checked: set[tuple[str, str]] = field(default_factory=set)

    # ------------------------------------------------------------------ one measured child
    def measure(self, phase: str, tool: str, rep: int, size: int, argv: list[str], *, output: str | None = None,
                expect_sha: str | None = None, env: dict[str, str] | None = None,
                check: Callable[[ChildRun], str | None] | None = None) -> Run:
        settle_disk()
        floor = own_peak_rss_mib()
        child = run_child(argv, timeout=self.timeout(size), cwd=ROOT, env=env)
        error = None if child.rc == 0 else f"exit {child.rc}: {(child.err or child.out).strip()[-500:]}"
        if error is None and check is not None:
            error = check(child)
        if error is None and output is not None:
            got = os.path.getsize(output) if os.path.exists(output) else -1
            if size and got != size:
                error = f"output has {got} bytes, expected {size}"
            size = size or max(0, got)  # --url without Content-Length: what arrived
        sha_ok = None
        if error is None and output is not None and (phase, tool) not in self.checked:
            digest = sha256_file(output)
            self.checked.add((phase, tool))
            if expect_sha is None:
                self.figures.setdefault("sha256", {})[tool] = digest
            else:
                sha_ok = digest == expect_sha
                if not sha_ok:
                    error = f"sha256 mismatch: {digest} != {expect_sha}"
        extra: dict[str, Any] = {"rss_floor_mib": floor}
        if tool == "app path" and child.out.strip():
            try:
                extra.update(json.loads(child.out.strip().splitlines()[-1]))
            except ValueError:
                pass
        run = Run(phase=phase, tool=tool, rep=rep, size=size, wall=child.wall, cpu=child.cpu, user=child.user,
                  sys=child.sys, maxrss_mib=child.maxrss_mib, rc=child.rc, ok=error is None,
                  mib_s=(size / MiB / child.wall) if size and child.wall > 0 else 0.0, sha256_ok=sha_ok,
                  extra=extra, error=error)
        self.runs.append(run)
        state = "ok" if run.ok else f"FAILED ({error})"
        note(f"{phase:<9} {tool:<9} #{rep + 1}: {run.wall:6.2f} s  {run.mib_s:7.1f} MiB/s  cpu {run.cpu:5.2f} s  "
             f"rss {run.maxrss_mib:6.1f} MiB  {state}")
        if output is not None:
            remove(output)
        return run

    def timeout(self, size: int) -> float:
        """--timeout, else loopback 60 s + 10 s per GiB of this transfer, --url 1800 s."""
        if self.args.timeout is not None:
            return float(self.args.timeout)
        return 1800.0 if self.args.url else 60.0 + 10.0 * size / GiB

    def good(self, phase: str, tool: str) -> list[Run]:
        return [r for r in self.runs if r.phase == phase and r.tool == tool and r.ok]

    def med(self, phase: str, tool: str, attr: str) -> float | None:
        return median([getattr(r, attr) for r in self.good(phase, tool)])

    def at_floor(self, phase: str, tool: str, rss: float) -> bool:
        """Whether ``rss`` may be the bench's own peak rather than the child's (common.run_child)."""
        floors = [r.extra.get("rss_floor_mib", 0.0) for r in self.good(phase, tool)]
        return bool(floors) and rss <= max(floors) + 0.5


# ---------------------------------------------------------------------------------------------- commands
def curl_get(curl: str, url: str, out: str) -> list[str]:
    return [curl, "-sS", "-f", "-o", out, url]


def aria2_get(aria2c: str, url: str, out: str) -> list[str]:
    return [aria2c, f"-x{CONNECTIONS}", f"-s{CONNECTIONS}", "-k1M", "--file-allocation=none", "-q",
            "--allow-overwrite=true", "--auto-file-renaming=false", "--console-log-level=error",
            "--summary-interval=0", "-d", os.path.dirname(out), "-o", os.path.basename(out), url]


def cli_get(url: str, out: str) -> list[str]:
    return [PY, "-m", "app.cli", "download", url, "-o", out, "--connections", str(CONNECTIONS)]


def app_get(url: str, out: str) -> list[str]:
    return [PY, "-m", "tests.bench.app_path", url, out, "--connections", str(CONNECTIONS)]


def child_env(b: Bench, **extra: str) -> dict[str, str]:
    """The environment of our own children (CLI, app path): their bytecode is cached in the work dir, so every
    start after the first pays what an installed app pays, even where PYTHONDONTWRITEBYTECODE is set (a start
    that compiles the app's modules again costs about 0.1 s more)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(b.workdir, "pycache")
    env.update(extra)
    return env


def app_env(b: Bench) -> dict[str, str]:
    return child_env(b, QT_QPA_PLATFORM="offscreen")


# ---------------------------------------------------------------------------------------------- phases
def download_rounds(b: Bench, tools: dict[str, str | None], url: str, size: int, sha: str | None,
                    with_app: bool) -> None:
    outdir = os.path.join(b.workdir, "out")
    os.makedirs(outdir, exist_ok=True)
    plan: list[tuple[str, Callable[[str], list[str]], dict[str, str] | None]] = []
    if tools.get("curl"):
        plan.append(("curl", lambda out: curl_get(tools["curl"] or "curl", url, out), None))
    if tools.get("aria2c"):
        plan.append(("aria2c", lambda out: aria2_get(tools["aria2c"] or "aria2c", url, out), None))
    plan.append(("CLI", lambda out: cli_get(url, out), child_env(b)))
    if with_app:
        plan.append(("app path", lambda out: app_get(url, out), app_env(b)))
    for rep in range(b.args.repeat):
        k = rep % len(plan)  # rotate the order each round, so no tool always runs first after a sync
        for tool, argv, env in plan[k:] + plan[:k]:
            out = os.path.join(outdir, tool.replace(" ", "_") + ".bin")
            remove(out)
            b.measure("download", tool, rep, size, argv(out), output=out, expect_sha=sha, env=env)


def rss_rounds(b: Bench, phase: str, url: str, size: int, sha: str) -> None:
    out = os.path.join(b.workdir, "out", f"{phase}.bin")
    for rep in range(b.args.repeat):
        remove(out)
        b.measure(phase, "CLI", rep, size, cli_get(url, out), output=out, expect_sha=sha, env=child_env(b))


def warm_md5_cache(b: Bench, path: str) -> str:
    """The XDG_CACHE_HOME of the "MD5 cached" upload runs, with ``path``'s upload MD5 already in it: hashed once
    by a child with that environment, so the entry is exactly where and what the CLI looks for."""
    cache_home = os.path.join(b.workdir, "md5-cache")
    age = time.time() - os.stat(path).st_mtime
    if age < 2.5:  # the cache only keeps files that were at least 2 s old when hashed (fileio.MD5_CACHE_MIN_AGE_NS)
        time.sleep(2.5 - age)
    code = "import sys; from app.engine.fileio import content_md5; print(content_md5(sys.argv[1]))"
    run_child([PY, "-c", code, path], timeout=600, cwd=ROOT, env=child_env(b, XDG_CACHE_HOME=cache_home))
    entries = [n for _, _, names in os.walk(cache_home) for n in names if n.endswith(".json")]
    if not entries:
        note("the upload MD5 cache could not be warmed: the 'cached' upload rows hash the file as well")
    return cache_home


def upload_rounds(b: Bench, tools: dict[str, str | None], path: str, size: int) -> None:
    """curl -T against the CLI's first upload of the file (MD5 not cached: each run gets an empty cache folder)
    and a repeated one (MD5 cached), all into the same sink."""
    from tests.bench.sink import UploadSink

    warm = warm_md5_cache(b, path)
    with UploadSink() as sink:
        def put_ok(_child: ChildRun) -> str | None:
            got = sink.stats.put_bytes
            return None if got == size else f"sink drained {got} bytes, expected {size}"

        def parts_ok(_child: ChildRun) -> str | None:
            s = sink.stats
            if s.part_bytes != size or s.gaps or not s.file_id_sent:
                return f"sink got {s.part_bytes} bytes in {s.parts} parts ({s.gaps} gaps, fileId sent: " \
                       f"{s.file_id_sent}), expected {size}"
            return None

        cli = [PY, "-m", "app.cli", "upload", path, sink.url("/upload"), "--chunk-size", UPLOAD_CHUNK]
        plan: list[tuple[str, list[str], Callable[[ChildRun], str | None], str | None]] = []
        if tools.get("curl"):
            plan.append(("curl -T", [tools["curl"] or "curl", "-sS", "-f", "-T", path, "-H", "Expect:", "-o",
                                     os.devnull, sink.url("/put/big.bin")], put_ok, None))
        plan.append(("CLI first", cli, parts_ok, ""))  # "": a new, empty cache folder for every run
        plan.append(("CLI", cli, parts_ok, warm))
        for rep in range(b.args.repeat):
            k = rep % len(plan)
            for tool, argv, check, cache_home in plan[k:] + plan[:k]:
                sink.stats.reset()
                env = None
                if cache_home is not None:
                    cache_home = cache_home or tempfile.mkdtemp(prefix="md5-cold-", dir=b.workdir)
                    env = child_env(b, XDG_CACHE_HOME=cache_home)
                b.measure("upload", tool, rep, size, argv, check=check, env=env)
                if cache_home and cache_home != warm:
                    shutil.rmtree(cache_home, ignore_errors=True)


def azure_rounds(b: Bench, tools: dict[str, str | None], path: str, size: int, sha: str) -> None:
    """The Azure block protocol (Put Block in parallel, then Put Block List) against curl's single Put Blob, both
    into the same Azurite (tests/support/azurite.py; ``make test`` installs it). The CLI gets a blob SAS URL, as a
    user would paste one, and the file's MD5 is cached (as in the repeated chunk-protocol upload). It uses the small
    file: Azurite (Node.js, in memory) takes curl itself about 5 s per GiB."""
    try:
        from azure.core.exceptions import ResourceNotFoundError

        from tests.support.azurite import find_azurite, start_azurite
    except ImportError as exc:  # the test dependencies (azure-storage-blob, pytest) are not installed
        note(f"cannot check Azure uploads here ({exc}): skipping the Azure upload rows")
        return
    executable = find_azurite()
    if executable is None:
        note("Azurite is not installed (make azurite, or RUSTY_CAT_AZURITE=...): skipping the Azure upload rows")
        return
    try:
        server = start_azurite(executable)
    except (OSError, RuntimeError) as exc:
        note(f"Azurite did not start, skipping the Azure upload rows: {exc}")
        return
    try:
        warm = warm_md5_cache(b, path)
        container = server.create_container("bench")
        blobs = server.service_client().get_container_client(container)
        checked: set[str] = set()

        def stored_ok(name: str, tool: str) -> str | None:
            from azure.storage.blob import BlobClient

            # The SDK (not our code) reads it back, in 4 MiB pieces: its default first read of 32 MiB would raise
            # the bench's own peak RSS, the floor under every later child's (common.run_child).
            blob = BlobClient.from_blob_url(server.blob_sas(container, name, permission="r"),
                                            max_single_get_size=4 * MiB, max_chunk_get_size=4 * MiB)
            got = blob.get_blob_properties().size
            if got != size:
                return f"Azurite holds {got} bytes, expected {size}"
            if tool not in checked:  # the content, once per tool
                checked.add(tool)
                h = hashlib.sha256()
                for piece in blob.download_blob().chunks():
                    h.update(piece)
                if h.hexdigest() != sha:
                    return "the blob's sha256 differs from the file's"
            return None

        plan: list[tuple[str, Callable[[str], list[str]], dict[str, str] | None]] = []
        if tools.get("curl"):
            plan.append(("curl -T", lambda url: [tools["curl"] or "curl", "-sS", "-f", "-T", path, "-H", "Expect:",
                                                 "-H", "x-ms-blob-type: BlockBlob", "-o", os.devnull, url], None))
        plan.append(("CLI", lambda url: [PY, "-m", "app.cli", "upload", path, url, "--chunk-size", UPLOAD_CHUNK],
                     child_env(b, XDG_CACHE_HOME=warm)))
        for rep in range(b.args.repeat):
            k = rep % len(plan)
            for tool, argv, env in plan[k:] + plan[:k]:
                name = f"{tool.split()[0].lower()}-{rep}.bin"
                b.measure("azure", tool, rep, size, argv(server.blob_sas(container, name, permission="racwd")),
                          env=env, check=lambda _child, name=name, tool=tool: stored_ok(name, tool))
                with contextlib.suppress(ResourceNotFoundError):  # a failed run may have left none
                    blobs.delete_blob(name)  # Azurite keeps blobs in memory
    finally:
        server.stop()


def startup_time(b: Bench, url: str | None) -> None:
    """The CLI's fixed costs, included in every CLI wall time: ``--version`` (interpreter and imports; the first
    run also fills the bytecode cache) and, on loopback, a 1,000-byte download (everything but the bytes)."""
    env = child_env(b)
    walls = [run_child([PY, "-m", "app.cli", "--version"], timeout=60, cwd=ROOT, env=env).wall for _ in range(4)]
    b.figures["cli_startup_s"] = median(walls[1:])
    if url is None:
        return
    out = os.path.join(b.workdir, "out", "tiny.bin")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tiny: list[float] = []
    for _ in range(4):
        remove(out)
        child = run_child(cli_get(url, out), timeout=60, cwd=ROOT, env=env)
        if child.rc == 0:
            tiny.append(child.wall)
    remove(out)
    b.figures["cli_tiny_download_s"] = median(tiny[1:] or tiny)


def check_server(base: str, path: str, size: int) -> None:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Range": "bytes=0-9"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 206 or resp.getheader("Content-Range") != f"bytes 0-9/{size}":
            raise RuntimeError(f"nginx answered a Range request with {resp.status} "
                               f"{resp.getheader('Content-Range')}; expected 206 bytes 0-9/{size}")
    finally:
        conn.close()


def local_mode(b: Bench, tools: dict[str, str | None]) -> None:
    size = b.args.size
    small = SMALL if size > SMALL else max(16 * MiB, size // 4)
    huge = b.args.rss_size
    www = os.path.join(b.workdir, "www")
    os.makedirs(www, exist_ok=True)
    note(f"generating {fmt_size(size)} and {fmt_size(small)} of random data in {www}"
         + (f", and {fmt_size(huge)} (a random 1 MiB block repeated) for the memory rows" if huge else ""))
    big_path, small_path = os.path.join(www, "big.bin"), os.path.join(www, "small.bin")
    huge_path = os.path.join(www, "huge.bin")
    big_sha = generate_file(big_path, size)
    small_sha = generate_file(small_path, small)
    huge_sha = generate_repeating_file(huge_path, huge) if huge else ""
    generate_file(os.path.join(www, "tiny.bin"), 1000)
    b.figures.update(size=size, small_size=small, huge_size=huge)
    if tools.get("nginx") is None:
        note("nginx is not available: skipping the download figures")
        startup_time(b, None)
    else:
        nginx = Nginx(tools["nginx"] or "nginx", b.workdir, www)
        try:
            nginx.start()
            note(f"nginx on {nginx.base_url} (pid {nginx.proc.pid if nginx.proc else '?'})")
            check_server(nginx.base_url, "/big.bin", size)
            startup_time(b, f"{nginx.base_url}/tiny.bin")
            download_rounds(b, tools, f"{nginx.base_url}/big.bin", size, big_sha, with_app=True)
            rss_rounds(b, "small", f"{nginx.base_url}/small.bin", small, small_sha)
            if huge:
                rss_rounds(b, "huge", f"{nginx.base_url}/huge.bin", huge, huge_sha)
        finally:
            nginx.stop()
    upload_rounds(b, tools, big_path, size)
    azure_rounds(b, tools, small_path, small, small_sha)
    note(f"engine queue: try_enqueue x {QUEUE_TASKS:,} and snapshot()")
    from tests.bench import engine_queue

    b.figures["queue"] = engine_queue.run(b.workdir, QUEUE_TASKS)
    ui_table_round(b)


def ui_table_round(b: Bench) -> None:
    """The window with 10,000 jobs all updating (tests/bench/ui_table.py), in its own process so its peak RSS is
    the app's alone; its rows are already in this report's shape."""
    note("UI table: 10,000 jobs all updating in the real window (offscreen), arrival order then sorted by speed")
    child = run_child([PY, "-m", "tests.bench.ui_table"], timeout=UI_TABLE_TIMEOUT, cwd=ROOT, env=app_env(b))
    result: dict[str, Any] = {}
    lines = child.out.strip().splitlines()
    if lines:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            result = {}
    if child.rc != 0 or not result.get("ok"):
        result["error"] = result.get("error") or f"exit {child.rc}: {(child.err or child.out).strip()[-500:]}"
        note(f"UI table bench FAILED ({result['error']})")
    else:
        phases = result["phases"]
        note("UI table: tick gap p99 " + ", ".join(f"{name} {phase['tick_gap_ms']['p99']:.1f} ms"
                                                   for name, phase in phases.items())
             + f"; peak RSS {result['rss_mib']['peak']:.1f} MiB")
    result.update(wall_s=child.wall, child_maxrss_mib=child.maxrss_mib)
    b.figures["ui_table"] = result


def url_mode(b: Bench, tools: dict[str, str | None]) -> None:
    url = b.args.url
    size = _remote_size(tools.get("curl"), url)
    if size is None:
        note("the server sent no Content-Length; throughput uses the size of the first download")
    startup_time(b, None)
    download_rounds(b, tools, url, size or 0, None, with_app=False)
    if not size:
        size = max((r.size for r in b.runs if r.ok), default=0)
    digests = b.figures.get("sha256", {})
    b.figures["sha256_agree"] = len(set(digests.values())) <= 1
    if not b.figures["sha256_agree"]:
        note(f"the tools downloaded different bytes: {digests}")
    b.figures.update(size=size or 0)


def _remote_size(curl: str | None, url: str) -> int | None:
    if curl is None:
        return None
    child = run_child([curl, "-sSfIL", url], timeout=60)
    length = None
    for line in child.out.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())  # the last one wins (after redirects)
    return length


# ---------------------------------------------------------------------------------------------- report
def summarize(b: Bench) -> None:
    size = b.figures.get("size") or 0
    gib = size / GiB if size else 0

    def ratio(a: float | None, c: float | None) -> float | None:
        return a / c if a is not None and c else None

    wall = {t: b.med("download", t, "wall") for t in ("curl", "aria2c", "CLI", "app path")}
    cpu = {t: b.med("download", t, "cpu") for t in ("aria2c", "CLI")}
    app_transfer = median([r.extra["transfer_s"] for r in b.good("download", "app path")
                           if isinstance(r.extra.get("transfer_s"), float)])
    tick_p99 = median([r.extra["tick_gap_ms"]["p99"] for r in b.good("download", "app path")
                       if isinstance(r.extra.get("tick_gap_ms"), dict) and r.extra["tick_gap_ms"].get("p99")])
    up = {t: b.med("upload", t, "wall") for t in ("curl -T", "CLI first", "CLI")}
    azure = {t: b.med("azure", t, "wall") for t in ("curl -T", "CLI")}
    # Medians for the ratio (a single run's peak wanders by a few MiB either way); the worst run for the cap.
    rss_huge = b.med("huge", "CLI", "maxrss_mib")
    rss_small = b.med("small", "CLI", "maxrss_mib")
    rss_worst = max((r.maxrss_mib for r in b.good("huge", "CLI")), default=None)
    queue = b.figures.get("queue") or {}
    cpu_gib = {t: (v / gib if v is not None and gib else None) for t, v in cpu.items()}
    b.figures["medians"] = {"download_wall_s": wall, "upload_wall_s": up, "azure_upload_wall_s": azure,
                            "cpu_s_per_gib": cpu_gib, "app_transfer_s": app_transfer,
                            "rss_big_mib": b.med("download", "CLI", "maxrss_mib"), "rss_huge_mib": rss_huge,
                            "rss_small_mib": rss_small, "rss_huge_worst_mib": rss_worst, "tick_gap_p99_ms": tick_p99}

    def mbs(w: float | None, n: int = size) -> str:
        return f"{n / MiB / w:.0f} MiB/s" if w and n else "-"

    small_size = b.figures.get("small_size") or 0
    small, huge = fmt_size(small_size), fmt_size(b.figures.get("huge_size") or 0)
    values: list[tuple[float | None, str]] = [
        (ratio(wall["curl"], wall["CLI"]), f"{mbs(wall['CLI'])} vs {mbs(wall['curl'])}"),
        (ratio(wall["aria2c"], wall["CLI"]), f"{mbs(wall['CLI'])} vs {mbs(wall['aria2c'])}"),
        (ratio(wall["CLI"], wall["app path"]),
         f"{mbs(wall['app path'])} vs {mbs(wall['CLI'])}; transfer only {mbs(app_transfer)}"),
        (ratio(up["curl -T"], up["CLI"]), f"{mbs(up['CLI'])} vs {mbs(up['curl -T'])} (MD5 cached)"),
        (ratio(up["curl -T"], up["CLI first"]), f"{mbs(up['CLI first'])} vs {mbs(up['curl -T'])} (hashes first)"),
        (ratio(azure["curl -T"], azure["CLI"]),
         f"{mbs(azure['CLI'], small_size)} vs {mbs(azure['curl -T'], small_size)} ({small}, Put Blob)"),
        (ratio(cpu_gib["CLI"], cpu_gib["aria2c"]),
         f"{_f(cpu_gib['CLI'])} vs {_f(cpu_gib['aria2c'])} CPU s/GiB"),
        (ratio(rss_huge, rss_small), f"{_f(rss_huge, 1)} MiB ({huge}) vs {_f(rss_small, 1)} MiB ({small})"),
        (rss_worst, f"{_f(rss_worst, 1)} MiB (worst run, {huge})"),
        (queue.get("enqueue_s"), f"{_f(queue.get('enqueue_s'))} s (scheduler intake {_f(queue.get('intake_s'))} s)"),
        (queue.get("snapshot_ms"), f"{_f(queue.get('snapshot_ms'), 1)} ms ({queue.get('queued_groups', '-')} queued)"),
        (tick_p99, f"{_f(tick_p99, 1)} ms (app path runs)"),
    ]
    unreadable = RSS_FIGURES if any(
        v is not None and b.at_floor(phase, "CLI", v) for phase, v in (("huge", rss_huge), ("small", rss_small))
    ) else frozenset()
    for (figure, target, passes), (value, shown) in zip(TARGETS, values, strict=True):
        if b.args.url and figure not in URL_MODE_FIGURES:
            continue
        is_ratio = "x" in target
        verdict = "n/a" if value is None else ("PASS" if passes(value) else "MISS")
        if figure in unreadable:
            verdict, shown = "n/a", shown + "; at the bench's own peak RSS, not the CLI's"
        measured = f"{value:.2f}x ({shown})" if is_ratio and value is not None else shown
        b.rows.append({"figure": figure, "measured": measured, "value": value, "target": target,
                       "result": verdict})
    if not b.args.url:
        b.rows.append({"figure": "bytes re-sent after kill -9 and resume", "measured": "not measured yet",
                       "value": None, "target": "<= 1 chunk per segment", "result": "n/a"})
        ui = b.figures.get("ui_table") or {}
        if ui.get("targets"):
            b.rows.extend(ui["targets"])
        elif "ui_table" in b.figures:
            b.rows.append({"figure": "UI 10k jobs: loop lag, scrolling, RSS", "measured": "the bench failed",
                           "value": None, "target": "< 50 ms; < 300 MiB", "result": "n/a"})


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_report(b: Bench) -> None:
    size = b.figures.get("size") or 0
    print()
    print(f"Per tool, medians of {b.args.repeat} ({fmt_size(size) if size else 'size unknown'}):")
    print(f"| {'phase':<8} | {'tool':<9} | {'wall s':>7} | {'MiB/s':>7} | {'range MiB/s':>13} | {'CPU s':>6} | "
          f"{'peak RSS MiB':>12} | {'ok':>5} |")
    print(f"|{'-' * 10}|{'-' * 11}|{'-' * 8}:|{'-' * 8}:|{'-' * 14}:|{'-' * 7}:|{'-' * 13}:|{'-' * 6}:|")
    seen: list[tuple[str, str]] = []
    for r in b.runs:
        if (r.phase, r.tool) not in seen:
            seen.append((r.phase, r.tool))
    for phase, tool in seen:
        runs = [r for r in b.runs if r.phase == phase and r.tool == tool]
        good = [r for r in runs if r.ok]
        rates = [r.mib_s for r in good]
        span = f"{min(rates):.0f}–{max(rates):.0f}" if rates else "-"
        wall = median([r.wall for r in good])
        rate = good[0].size / MiB / wall if good and wall else None  # size / median wall, as in the ratios
        rss = max((r.maxrss_mib for r in good), default=None)
        rss_text = _f(rss, 1) if rss is None or not b.at_floor(phase, tool, rss) else f"<={rss:.1f}"
        print(f"| {phase:<8} | {tool:<9} | {_f(wall):>7} | "
              f"{_f(rate, 0):>7} | {span:>13} | {_f(median([r.cpu for r in good])):>6} | "
              f"{rss_text:>12} | {f'{len(good)}/{len(runs)}':>5} |")
    if b.runs:
        print("(peak RSS \"<=\": no higher than the bench's own peak at that point, which Linux counts as every "
              "child's floor; the tool's own is lower)")
    if "cli_startup_s" in b.figures:
        tiny = b.figures.get("cli_tiny_download_s")
        shown = f"; a 1,000-byte download: {tiny:.2f} s" if tiny is not None else ""
        print(f"(CLI start-up, `rusty-cat-cli --version`: {b.figures['cli_startup_s']:.2f} s{shown}; part of every "
              "CLI wall time)")
    if b.args.url:
        digests = b.figures.get("sha256", {})
        same = "the same bytes" if b.figures.get("sha256_agree") else "DIFFERENT bytes"
        shown = ", ".join(f"{t} {d[:16]}…" for t, d in digests.items())
        print(f"sha256 of each tool's first download: {same} ({shown})")
    print()
    print("Targets (issue 5; the UI rows: issue 4):")
    print(f"| {'figure':<46} | {'measured':<58} | {'target':<22} | result |")
    print(f"|{'-' * 48}|{'-' * 60}|{'-' * 24}|--------|")
    for row in b.rows:
        print(f"| {row['figure']:<46} | {row['measured']:<58} | {row['target']:<22} | {row['result']:<6} |")
    print()


def write_json(b: Bench, path: str, meta: dict[str, Any]) -> None:
    data = {"meta": meta, "figures": b.figures, "targets": b.rows, "runs": [asdict(r) for r in b.runs]}
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
    note(f"raw figures written to {path}")


def _meta(b: Bench, tools: dict[str, str | None]) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for name, argv in (("curl", ["--version"]), ("aria2c", ["--version"]), ("nginx", ["-v"])):
        if tools.get(name):
            versions[name] = tool_version([tools[name] or name, *argv])
    for dist in ("httpx", "httpcore", "h11", "qasync", "PySide6-Essentials"):
        try:
            versions[dist] = version(dist)
        except Exception:
            versions[dist] = "?"
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
        "mode": "url" if b.args.url else "loopback", "url": b.args.url, "repeat": b.args.repeat,
        "size": b.figures.get("size"), "workdir": b.workdir, "versions": versions,
        "argv": sys.argv[1:],
    }


# ---------------------------------------------------------------------------------------------- main
def _size_arg(text: str) -> int:
    try:
        n = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if n < MiB:
        raise argparse.ArgumentTypeError("use at least 1MiB")
    return n


def _size_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else _size_arg(text)


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=_size_arg, default=GiB, help="test file size (default 1GiB; e.g. 256MiB)")
    p.add_argument("--repeat", type=_positive, default=3, help="rounds of every tool, alternating (default 3)")
    p.add_argument("--rss-size", type=_size_or_zero, default=HUGE,
                   help="the download whose peak RSS is compared with the 256 MiB one's (default 4GiB; 0 skips it)")
    p.add_argument("--url", help="benchmark this URL instead (no nginx, no files; curl, aria2c and the CLI only)")
    p.add_argument("--work-dir", help="where files, downloads and nginx live (default: a new temp dir; it must "
                                      "have room for twice --size and twice --rss-size, plus 512 MiB)")
    p.add_argument("--json-out", help="raw figures as JSON (default: bench-results.json in the work dir)")
    p.add_argument("--keep-files", action="store_true", help="keep the generated test files in the work dir")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds one transfer may take before it is killed (default: loopback 60 s + 10 s/GiB, "
                        "--url 1800 s)")
    return p


def _on_signal(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    workdir = os.path.abspath(args.work_dir) if args.work_dir else tempfile.mkdtemp(prefix="rusty-cat-bench-")
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)  # nginx's worker reads the files from here
    b = Bench(args, workdir)
    note(f"work dir {workdir}")
    wanted = {k: v for k, v in TOOLS.items() if not (args.url and k == "nginx")}
    tools = ensure_tools(wanted)
    for name, path in tools.items():
        if path is None:
            note(f"{name} not available: its rows are skipped")
    status = 0
    try:
        if args.url:
            url_mode(b, tools)
        else:
            local_mode(b, tools)
    except (KeyboardInterrupt, Stop) as exc:
        why = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else str(exc)
        note(f"interrupted ({why}): the running transfer and nginx were stopped; partial figures follow")
        status = 130
    finally:
        if not args.keep_files:
            for sub in ("www", "out", "queue", "md5-cache", "pycache"):
                shutil.rmtree(os.path.join(workdir, sub), ignore_errors=True)
    summarize(b)
    print_report(b)
    write_json(b, args.json_out or os.path.join(workdir, "bench-results.json"), _meta(b, tools))
    if status == 0 and (any(not r.ok for r in b.runs) or (b.figures.get("ui_table") or {}).get("error")):
        note("some runs failed (see above); their figures are left out of the medians")
        status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
