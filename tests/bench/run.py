"""``make bench``: Rusty Cat against curl and aria2c on loopback nginx (plain HTTP, HTTPS with a private CA, and a
per-connection rate cap) or on a URL you give; the data path candidates side by side; uploads on a throttled
6 Mbit/s link (OSS, Azure, default protocol) against ``curl -T``; and the engine's upload (chunk protocol and Azure
blocks), CPU, start-up, memory and queue figures of issues 11 and 5, and the window's 10,000-job table of issue 4.
Prints a table with each target (every ratio the median of per-round ratios, the tools side by side in each
round) and writes every raw figure to a JSON file; a missed target gets a py-spy profile, named there.

    python -m tests.bench.run                      # 1 GiB, 3 rounds (about 12 minutes on 2 cores)
    python -m tests.bench.run --size 64MiB --rss-size 128MiB --link-size 2MiB --repeat 2   # quick check
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
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

from app.engine.fileio import filesystem_type
from tests.bench.common import (
    ChildRun,
    GiB,
    MiB,
    Nginx,
    PrivateCa,
    ensure_pip,
    ensure_tools,
    fmt_size,
    generate_file,
    generate_repeating_file,
    make_private_ca,
    note,
    parse_size,
    remove,
    run_child,
    tool_version,
)
from tests.bench.core import (
    PY,
    ROOT,
    UPLOAD_CHUNK,
    Bench,
    Stop,
    app_env,
    app_get,
    aria2_get,
    child_env,
    cli_get,
    cli_trust,
    curl_get,
    rounds,
)
from tests.bench.report import importtime_profile, print_report, profile_misses, summarize, write_json

SMALL = 256 * MiB
HUGE = 4 * GiB  # the download whose peak RSS is compared with the small one's (memory must not grow with size)
LINK_SIZE = 18 * MiB  # issue 11: 18 MiB, three 8 MiB parts, on the throttled link
LINK_RATE = "6mbit"
QUEUE_TASKS = 10_000
STARTUP_RUNS = 11  # measured runs of each start-up figure, after one warm-up
UI_TABLE_TIMEOUT = 300.0  # seconds for the window bench child (two 10 s phases plus start-up)
TOOLS = {"nginx": "nginx", "aria2c": "aria2", "curl": "curl", "ip": "iproute2", "tc": "iproute2"}
#: The bench's own Python tools (never the app's dependencies): {import or command name: PyPI name}.
PIP_TOOLS = {"aiohttp": "aiohttp", "py-spy": "py-spy"}


# ---------------------------------------------------------------------------------------------- phases
def download_rounds(b: Bench, tools: dict[str, str | None], url: str, size: int, sha: str | None,
                    with_app: bool) -> None:
    """curl -o, aria2c -x4 -s4, our CLI (and the app's path) downloading the big file over plain HTTP."""
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
    for rep, order in rounds(b, plan):
        for tool, argv, env in order:
            out = os.path.join(outdir, tool.replace(" ", "_") + ".bin")
            remove(out)
            b.measure("download", tool, rep, size, argv(out), output=out, expect_sha=sha, env=env)
    out = os.path.join(outdir, "profile.bin")
    profile_misses(b, ["dl_curl", "dl_aria", "cpu"], cli_get(url, out), child_env(b), "download-http",
                   output=out, timeout=b.timeout(size) * 3)
    if with_app:
        profile_misses(b, ["app", "tick"], app_get(url, out), app_env(b), "download-app-path", output=out,
                       timeout=b.timeout(size) * 3)


def https_rounds(b: Bench, tools: dict[str, str | None], url: str, size: int, sha: str, ca: PrivateCa) -> None:
    """The same file over TLS from the same nginx (certificate from the bench's private CA): curl --cacert,
    aria2c -x4 -s4 --ca-certificate, our CLI trusting the CA as a user would (core.cli_trust)."""
    outdir = os.path.join(b.workdir, "out")
    os.makedirs(outdir, exist_ok=True)
    extra, env_extra = cli_trust(b, ca.ca_pem)
    env = child_env(b, **env_extra)
    plan: list[tuple[str, Callable[[str], list[str]], dict[str, str] | None]] = []
    if tools.get("curl"):
        plan.append(("curl", lambda out: curl_get(tools["curl"] or "curl", url, out, ca.ca_pem), None))
    if tools.get("aria2c"):
        plan.append(("aria2c", lambda out: aria2_get(tools["aria2c"] or "aria2c", url, out, cafile=ca.ca_pem), None))
    plan.append(("CLI", lambda out: cli_get(url, out, extra=extra), env))
    for rep, order in rounds(b, plan):
        for tool, argv, run_env in order:
            out = os.path.join(outdir, f"tls-{tool}.bin")
            remove(out)
            b.measure("https", tool, rep, size, argv(out), output=out, expect_sha=sha, env=run_env)
    out = os.path.join(outdir, "profile.bin")
    profile_misses(b, ["tls_curl", "tls_aria"], cli_get(url, out, extra=extra), env, "download-https",
                   output=out, timeout=b.timeout(size) * 3)


def capped_rounds(b: Bench, tools: dict[str, str | None], url: str, size: int, sha: str) -> None:
    """nginx caps every request on /capped/ at 40 MB/s (limit_rate 40m), as CDNs and object stores cap each
    connection: aria2c -xN -sN against our CLI --connections N, at N = 4 and 16. Parallelism, not per-connection
    speed, decides here, and how evenly each tool keeps its N connections busy to the end."""
    if not tools.get("aria2c"):
        return
    outdir = os.path.join(b.workdir, "out")
    os.makedirs(outdir, exist_ok=True)
    env = child_env(b)
    for n in (4, 16):
        phase = f"cap{n}"
        plan: list[tuple[str, Callable[[str], list[str]], dict[str, str] | None]] = [
            ("aria2c", lambda out, n=n: aria2_get(tools["aria2c"] or "aria2c", url, out, connections=n), None),
            ("CLI", lambda out, n=n: cli_get(url, out, connections=n), env),
        ]
        for rep, order in rounds(b, plan):
            for tool, argv, run_env in order:
                out = os.path.join(outdir, f"{phase}-{tool}.bin")
                remove(out)
                b.measure(phase, tool, rep, size, argv(out), output=out, expect_sha=sha, env=run_env)
        out = os.path.join(outdir, "profile.bin")
        profile_misses(b, [phase], cli_get(url, out, connections=n), env, f"download-capped-{n}", output=out,
                       timeout=b.timeout(size) * 3)


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
        for rep, order in rounds(b, plan):
            for tool, argv, check, cache_home in order:
                sink.stats.reset()
                env = None
                if cache_home is not None:
                    cache_home = cache_home or tempfile.mkdtemp(prefix="md5-cold-", dir=b.workdir)
                    env = child_env(b, XDG_CACHE_HOME=cache_home)
                b.measure("upload", tool, rep, size, argv, check=check, env=env)
                if cache_home and cache_home != warm:
                    shutil.rmtree(cache_home, ignore_errors=True)
        profile_misses(b, ["up", "up_first"], cli, child_env(b, XDG_CACHE_HOME=warm), "upload-chunk-protocol",
                       timeout=b.timeout(size) * 3)


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
        for rep, order in rounds(b, plan):
            for tool, argv, env in order:
                name = f"{tool.split()[0].lower()}-{rep}.bin"
                b.measure("azure", tool, rep, size, argv(server.blob_sas(container, name, permission="racwd")),
                          env=env, check=lambda _child, name=name, tool=tool: stored_ok(name, tool))
                with contextlib.suppress(ResourceNotFoundError):  # a failed run may have left none
                    blobs.delete_blob(name)  # Azurite keeps blobs in memory
        cli_argv, cli_env = next((argv, env) for tool, argv, env in plan if tool == "CLI")
        profile_misses(b, ["azure"], cli_argv(server.blob_sas(container, "profile.bin", permission="racwd")),
                       cli_env, "upload-azure-blocks", timeout=b.timeout(size) * 3)
        with contextlib.suppress(ResourceNotFoundError):
            blobs.delete_blob("profile.bin")
    finally:
        server.stop()




def startup_time(b: Bench, url: str | None, sha: str | None = None) -> None:
    """The CLI's fixed costs, included in every CLI wall time: ``--version`` (interpreter and imports) and, on
    loopback, a 1,000-byte download (everything but the bytes), alternating, ``--startup-runs`` of each after one
    warm-up of each (which fills the bytecode cache: what an installed app has)."""
    env = child_env(b)
    out = os.path.join(b.workdir, "out", "tiny.bin")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    plan: list[tuple[str, list[str], str | None]] = [("--version", [PY, "-m", "app.cli", "--version"], None)]
    if url is not None:
        plan.append(("1,000 B", cli_get(url, out), out))
    for rep in range(-1, b.args.startup_runs):
        for tool, argv, output in plan:
            remove(out)
            if rep < 0:  # the warm-up: not counted
                run_child(argv, timeout=60, cwd=ROOT, env=env)
                continue
            b.measure("startup", tool, rep, 1000 if output else 0, argv, output=output, expect_sha=sha, env=env,
                      timeout=60, quiet=True)
    remove(out)
    for tool, _argv, _output in plan:
        walls = sorted(r.wall for r in b.good("startup", tool))
        if walls:
            note(f"start-up {tool}: median {walls[len(walls) // 2]:.3f} s of {len(walls)} "
                 f"({walls[0]:.3f}-{walls[-1]:.3f})")
    if url is not None:
        importtime_profile(b, ["start_tiny"], cli_get(url, out), env, out)


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




def local_mode(b: Bench, tools: dict[str, str | None], pip_ok: dict[str, bool]) -> None:
    # Loopback figures must never go through a proxy the user's environment names (curl, aria2c and our CLI all
    # honour http_proxy and friends); every child inherits this.
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    size = b.args.size
    small = SMALL if size > SMALL else max(16 * MiB, size // 4)
    huge = b.args.rss_size
    www = os.path.join(b.workdir, "www")
    os.makedirs(www, exist_ok=True)
    cand_sizes = (max(16 * MiB, size // 2), max(16 * MiB, size // 4))  # HTTP, HTTPS (512 and 256 MiB at 1 GiB)
    note(f"generating {fmt_size(size)}, {fmt_size(small)} and the candidates' {fmt_size(cand_sizes[0])} and "
         f"{fmt_size(cand_sizes[1])} of random data in {www}"
         + (f", and {fmt_size(huge)} (a random 1 MiB block repeated) for the memory rows" if huge else ""))
    files: dict[int, tuple[str, str]] = {}  # size → (name under www, sha256): one file per size

    def random_file(name: str, n: int) -> tuple[str, str]:
        if n not in files:
            files[n] = (name, generate_file(os.path.join(www, name), n))
        return files[n]

    big_name, big_sha = random_file("big.bin", size)
    small_name, small_sha = random_file("small.bin", small)
    cand_http = random_file("cand-http.bin", cand_sizes[0])
    cand_tls = random_file("cand-tls.bin", cand_sizes[1])
    huge_sha = generate_repeating_file(os.path.join(www, "huge.bin"), huge) if huge else ""
    tiny_sha = generate_file(os.path.join(www, "tiny.bin"), 1000)
    b.figures.update(size=size, small_size=small, huge_size=huge)
    ca = make_private_ca(os.path.join(b.workdir, "tls"))  # in a child: trustme's imports would raise our RSS
    if tools.get("nginx") is None:
        note("nginx is not available: skipping the download figures")
        startup_time(b, None)
    else:
        nginx = Nginx(tools["nginx"] or "nginx", b.workdir, www, tls=(ca.cert_pem, ca.key_pem) if ca else None,
                      workers=b.args.nginx_workers)
        try:
            nginx.start()
            note(f"nginx on {nginx.base_url}" + (f" and {nginx.https_url}" if ca else "")
                 + f" (pid {nginx.proc.pid if nginx.proc else '?'}, {nginx.workers} workers)")
            b.figures["nginx_workers"] = nginx.workers
            check_server(nginx.base_url, f"/{big_name}", size)
            startup_time(b, f"{nginx.base_url}/tiny.bin", tiny_sha)
            download_rounds(b, tools, f"{nginx.base_url}/{big_name}", size, big_sha, with_app=True)
            if ca is not None:
                https_rounds(b, tools, f"{nginx.https_url}/{big_name}", size, big_sha, ca)
            else:
                b.figures.setdefault("skipped", {}).update(tls_curl="no private CA (trustme)",
                                                           tls_aria="no private CA (trustme)")
            capped_rounds(b, tools, f"{nginx.capped_url}/{small_name}", small, small_sha)
            from tests.bench.candidates import candidate_rounds

            candidate_rounds(b, tools, nginx, ca, cand_http, cand_tls, aiohttp=pip_ok.get("aiohttp", False))
            rss_rounds(b, "small", f"{nginx.base_url}/{small_name}", small, small_sha)
            if huge:
                rss_rounds(b, "huge", f"{nginx.base_url}/huge.bin", huge, huge_sha)
        finally:
            nginx.stop()
    upload_rounds(b, tools, os.path.join(www, big_name), size)
    azure_rounds(b, tools, os.path.join(www, small_name), small, small_sha)
    if b.args.link_size:
        from tests.bench.link import link_rounds

        link_rounds(b, tools, b.args.link_size, b.args.link_rate)
    else:
        b.figures.setdefault("skipped", {}).update({k: "--link-size 0" for k in
                                                    ("link_oss", "link_azure", "link_default")})
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




def _meta(b: Bench, tools: dict[str, str | None]) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for name, argv in (("curl", ["--version"]), ("aria2c", ["--version"]), ("nginx", ["-v"])):
        if tools.get(name):
            versions[name] = tool_version([tools[name] or name, *argv])
    for dist in ("httpx", "httpcore", "h11", "urllib3", "aiohttp", "qasync", "PySide6-Essentials"):
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
    p.add_argument("--work-dir", help="where files, downloads and nginx live (default: a new temp dir in /dev/shm "
                                      "when it has room, as issue 11 measured, else in the system's temp dir; it "
                                      "must have room for 2.5 times --size and twice --rss-size, plus 512 MiB)")
    p.add_argument("--json-out", help="raw figures as JSON (default: bench-results.json in the work dir)")
    p.add_argument("--keep-files", action="store_true", help="keep the generated test files in the work dir")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds one transfer may take before it is killed (default: loopback 60 s + 10 s/GiB, "
                        "--url 1800 s)")
    p.add_argument("--link-size", type=_size_or_zero, default=LINK_SIZE,
                   help="the upload on the throttled link (default 18MiB: three 8 MiB parts; 0 skips those rows)")
    p.add_argument("--link-rate", default=LINK_RATE, help="the throttled link's rate, as tc writes it (default 6mbit)")
    p.add_argument("--startup-runs", type=_positive, default=STARTUP_RUNS,
                   help="measured runs of each start-up figure, after one warm-up (default 11)")
    p.add_argument("--nginx-workers", type=int, default=0,
                   help="nginx worker processes (default 0: one per core, up to 4; 1 is what issue 5 measured with)")
    p.add_argument("--no-profile", action="store_true",
                   help="take no py-spy profile of a missed target (they cost one more run of the command each)")
    return p


def default_workdir(args: argparse.Namespace) -> str:
    """A temp dir in memory (/dev/shm) when it has room, as issue 11 measured: the figures are the data path's and
    the peers', not the disk's. On a disk the download rows also pay for durability, which the peers skip: Rusty Cat
    makes the file durable (fdatasync) before it calls it complete, so a power cut never leaves a finished-looking
    file of zeros; curl and aria2c leave that to the kernel's writeback. ``--work-dir`` measures any disk."""
    need = int(2.5 * args.size) + 2 * args.rss_size + 512 * MiB
    for parent in ("/dev/shm", tempfile.gettempdir()):
        try:
            vfs = os.statvfs(parent)
        except OSError:
            continue
        if vfs.f_bavail * vfs.f_frsize >= need and os.access(parent, os.W_OK):
            return tempfile.mkdtemp(prefix="rusty-cat-bench-", dir=parent)
    return tempfile.mkdtemp(prefix="rusty-cat-bench-")


def _on_signal(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    workdir = os.path.abspath(args.work_dir) if args.work_dir else default_workdir(args)
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)  # nginx's worker reads the files from here
    b = Bench(args, workdir)
    note(f"work dir {workdir} ({filesystem_type(workdir) or 'file system unknown'})")
    wanted = {k: v for k, v in TOOLS.items() if not (args.url and k in ("nginx", "ip", "tc"))}
    tools = ensure_tools(wanted)
    for name, path in tools.items():
        if path is None:
            note(f"{name} not available: its rows are skipped")
    pip_ok = ensure_pip(PIP_TOOLS if not args.url else {"py-spy": "py-spy"})
    status = 0
    try:
        if args.url:
            url_mode(b, tools)
        else:
            local_mode(b, tools, pip_ok)
    except (KeyboardInterrupt, Stop) as exc:
        why = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else str(exc)
        note(f"interrupted ({why}): the running transfer, nginx and the other servers were stopped; partial "
             "figures follow")
        status = 130
    finally:
        if not args.keep_files:
            for sub in ("www", "out", "queue", "md5-cache", "pycache", "home", "link"):
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
