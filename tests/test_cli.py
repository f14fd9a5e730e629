"""rusty-cat-cli end to end: the real CLI in a subprocess against the real test HTTP server.

Subprocesses on purpose: exit codes, signal handling (SIGINT/SIGTERM → 130), kill -9 followed by a resume,
and "nothing but JSON on stdout" are properties of a whole process, not of a function call. Each test runs
in its own working directory, so a file name chosen by the server is provably kept inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.cli import RateMeter, format_duration, format_progress, main
from app.engine import checkpoint
from tests.support.http_server import Fault, TestHttpServer

REPO_ROOT = Path(__file__).resolve().parent.parent
KiB, MiB = 1024, 1024 * 1024
RUN_TIMEOUT = 60


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        yield server


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """A working directory with an empty sibling-free parent we can check for escapes."""
    work = tmp_path / "work"
    work.mkdir()
    return work


def payload(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def run_cli(*args: str, cwd: Path, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_cmd(*args), cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def start_cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(cli_cmd(*args), cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_until(predicate: Callable[[], bool], proc: subprocess.Popen[str] | None = None, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"CLI exited early with {proc.returncode}: {err}")
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def json_lines(stdout: str) -> list[dict[str, object]]:
    """Every stdout line must be one JSON object (--json allows nothing else)."""
    lines = stdout.splitlines()
    assert lines, "no JSON output"
    return [json.loads(line) for line in lines]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".part", ".ckpt", ".tmp")))


# ------------------------------------------------------------------------------------------- help, version
def test_help_version_and_subcommand_help(cwd: Path) -> None:
    top = run_cli("--help", cwd=cwd)
    assert top.returncode == 0 and "download" in top.stdout and "upload" in top.stdout and "130" in top.stdout
    dl = run_cli("download", "--help", cwd=cwd)
    assert dl.returncode == 0
    for option in ("--output", "--connections", "--chunk-size", "--retries", "--limit-rate", "--header", "--sha256",
                   "--json", "1024-based"):
        assert option in dl.stdout
    up = run_cli("upload", "--help", cwd=cwd)
    assert up.returncode == 0 and "FILE" in up.stdout
    from app import __version__

    ver = run_cli("--version", cwd=cwd)
    assert ver.returncode == 0 and __version__ in ver.stdout


def test_main_returns_codes_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert main([]) == 2
    assert main(["download"]) == 2
    assert main(["download", "http://h/x", "--chunk-size", "lots"]) == 2
    err = capsys.readouterr().err
    assert "not a size" in err


# ---------------------------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize(("args", "fragment"), [
    (["download", "URL", "--chunk-size", "0"], "at least 1 byte"),
    (["download", "URL", "--chunk-size", "12 parsecs"], "not a size"),
    (["download", "URL", "--limit-rate=-5k"], "positive"),
    (["download", "URL", "--header", "Authorization Bearer s3cr3t-token"], "Name: value"),
    (["download", "URL", "--header", "Bad Name: v"], "invalid header name"),
    (["download", "URL", "--connections", "0"], "between 1 and 64"),
    (["download", "URL", "--connections", "65"], "between 1 and 64"),
    (["download", "URL", "--connections", "two"], "whole number"),
    (["download", "URL", "--retries", "-1"], "between 0 and"),
    (["download", "URL", "--sha256", "abc"], "64 hexadecimal"),
    (["download", "ftp://example.com/file.bin"], "unsupported URL scheme"),
    (["download", "file:///etc/passwd"], "unsupported URL scheme"),
    (["download", "not a url"], "unsupported URL scheme"),
    (["download", "http://"], "no host"),
    (["download", "http://127.0.0.1:99999/x"], "malformed URL"),
    (["download", "URL", "-o", ""], "needs a file or directory"),
    (["upload", "missing.bin", "URL"], "not found"),
    (["upload", ".", "URL"], "directory"),
    (["upload", "URL"], "required"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2(args: list[str], fragment: str, cwd: Path, srv: TestHttpServer) -> None:
    args = [srv.url("/f.bin") if a == "URL" else a for a in args]
    result = run_cli(*args, cwd=cwd)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert result.stdout == ""
    assert "s3cr3t-token" not in result.stderr  # header values are never echoed
    assert srv.requests == []  # rejected before any network traffic
    assert list(cwd.iterdir()) == []


# ---------------------------------------------------------------------------------------------- downloads
def test_download_json_happy_path(srv: TestHttpServer, cwd: Path) -> None:
    data = payload(3 * MiB + 123)
    srv.add_file("/files/data.bin", data)
    result = run_cli("download", srv.url("/files/data.bin"), "-o", "out.bin", "--json", "--connections", "3",
                     "--chunk-size", "256KiB", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert file_sha256(cwd / "out.bin") == sha256(data)
    assert leftovers(cwd) == []
    events = json_lines(result.stdout)
    records, final = events[:-1], events[-1]
    assert final["event"] == "complete" and final["payload"] is None
    assert final["file_path"] == str(cwd / "out.bin")
    assert records and all(set(r) >= {"task_id", "status", "direction", "file_name", "file_path",
                                      "transferred_bytes", "total_size", "progress", "error"} for r in records)
    assert {r["task_id"] for r in records} == {records[0]["task_id"]}
    assert all(r["direction"] == "download" and r["file_name"] == "out.bin" for r in records)
    last = records[-1]
    assert last["status"] == "complete" and last["error"] is None
    assert last["transferred_bytes"] == last["total_size"] == len(data) and last["progress"] == 1.0
    assert all(r["status"] in ("pending", "transmission", "complete") for r in records)
    done = [r["transferred_bytes"] for r in records]
    assert done == sorted(done)


def test_download_plain_mode_prints_nothing_on_stdout(srv: TestHttpServer, cwd: Path) -> None:
    data = payload(200 * KiB)
    srv.add_file("/a/plain.bin", data)
    result = run_cli("download", srv.url("/a/plain.bin"), cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal
    assert "saved" in result.stderr
    assert file_sha256(cwd / "plain.bin") == sha256(data)


def test_default_name_from_url_is_percent_decoded(srv: TestHttpServer, cwd: Path) -> None:
    data = payload(100 * KiB)
    srv.add_file("/files/report 2024 €.bin", data)
    result = run_cli("download", srv.url("/files/report%202024%20%E2%82%AC.bin?sig=abc"), cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert os.listdir(cwd) == ["report 2024 €.bin"]
    assert file_sha256(cwd / "report 2024 €.bin") == sha256(data)


def test_default_name_without_path_is_download(srv: TestHttpServer, cwd: Path) -> None:
    data = payload(10 * KiB)
    srv.add_file("/", data)
    result = run_cli("download", srv.base_url + "/", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert os.listdir(cwd) == ["download"]


@pytest.mark.parametrize(("disposition", "expected"), [
    ('attachment; filename="server-name.bin"', "server-name.bin"),
    ("attachment; filename=\"fallback.bin\"; filename*=UTF-8''%E2%82%AC%20rates.bin", "€ rates.bin"),
    ('attachment; filename="../../etc/passwd"', "passwd"),
    ("attachment; filename*=UTF-8''..%2F..%2Fescape.txt", "escape.txt"),
    ('attachment; filename="CON"', "_CON"),
    ('attachment; filename="nul.txt"', "_nul.txt"),
    ('attachment; filename=".."', "url-name.bin"),  # nothing usable: fall back to the URL's name
])
def test_default_name_from_content_disposition_is_sanitised(disposition: str, expected: str, srv: TestHttpServer,
                                                            cwd: Path) -> None:
    data = payload(64 * KiB)
    srv.add_file("/dl/url-name.bin", data, content_disposition=disposition)
    before = sorted(p.name for p in cwd.parent.iterdir())
    result = run_cli("download", srv.url("/dl/url-name.bin"), "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert os.listdir(cwd) == [expected]
    assert file_sha256(cwd / expected) == sha256(data)
    assert sorted(p.name for p in cwd.parent.iterdir()) == before  # nothing written outside cwd
    assert json_lines(result.stdout)[-1]["file_path"] == str(cwd / expected)


def test_name_probe_falls_back_to_range_get_when_head_is_refused(srv: TestHttpServer, cwd: Path) -> None:
    data = payload(64 * KiB)
    srv.add_file("/nohead/x.bin", data, content_disposition='attachment; filename="from-get.bin"')
    srv.add_fault(Fault("no_head", times=-1))
    result = run_cli("download", srv.url("/nohead/x.bin"), cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert os.listdir(cwd) == ["from-get.bin"]
    probes = [r for r in srv.requests if r.method == "GET" and r.range == "bytes=0-0"]
    assert probes, "expected a Range: bytes=0-0 GET after HEAD was refused"


def test_output_directory_gets_the_derived_name(srv: TestHttpServer, cwd: Path) -> None:
    data = payload(64 * KiB)
    srv.add_file("/d/inner.bin", data, content_disposition='attachment; filename="../named.bin"')
    (cwd / "target").mkdir()
    result = run_cli("download", srv.url("/d/inner.bin"), "-o", "target", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert os.listdir(cwd / "target") == ["named.bin"]
    assert file_sha256(cwd / "target" / "named.bin") == sha256(data)
    # A trailing separator means "a directory", even one that does not exist yet.
    result = run_cli("download", srv.url("/d/inner.bin"), "-o", "new-dir/", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert os.listdir(cwd / "new-dir") == ["named.bin"]


def test_sha256_mismatch_fails_and_match_succeeds(srv: TestHttpServer, cwd: Path) -> None:
    data = payload(300 * KiB)
    srv.add_file("/c/file.bin", data)
    wrong = "0" * 64
    bad = run_cli("download", srv.url("/c/file.bin"), "-o", "file.bin", "--sha256", wrong, cwd=cwd)
    assert bad.returncode == 1
    assert "CHECKSUM_MISMATCH" in bad.stderr and "sha256" in bad.stderr
    assert not (cwd / "file.bin").exists()  # never moved into place
    good = run_cli("download", srv.url("/c/file.bin"), "-o", "file.bin", "--sha256", sha256(data).upper(), cwd=cwd)
    assert good.returncode == 0, good.stderr
    assert file_sha256(cwd / "file.bin") == sha256(data)
    assert leftovers(cwd) == []


def test_http_404_fails_with_status_and_no_secret(srv: TestHttpServer, cwd: Path) -> None:
    result = run_cli("download", srv.url("/missing.bin?token=SUPERSECRET&x=1"), "--json",
                     "--header", "Authorization: Bearer HEADERSECRET", cwd=cwd)
    assert result.returncode == 1
    assert "404" in result.stderr and "RESPONSE_STATUS_ERROR" in result.stderr
    assert "SUPERSECRET" not in result.stderr + result.stdout
    assert "HEADERSECRET" not in result.stderr + result.stdout
    events = json_lines(result.stdout)
    assert events[-1]["status"] == "failed"
    error = events[-1]["error"]
    assert isinstance(error, dict) and error["code"] == "RESPONSE_STATUS_ERROR" and error["http_status"] == 404
    assert not any(e.get("event") == "complete" for e in events)


def test_connection_refused_fails_with_exit_1(cwd: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("download", f"http://127.0.0.1:{port}/x.bin", "--retries", "0", cwd=cwd)
    assert result.returncode == 1
    assert "HTTP_ERROR" in result.stderr


def test_header_and_rate_limit_are_applied(srv: TestHttpServer, cwd: Path) -> None:
    data = payload(256 * KiB)
    srv.add_file("/h/x.bin", data)
    start = time.monotonic()
    result = run_cli("download", srv.url("/h/x.bin"), "-o", "x.bin", "-H", "X-Test: hello", "--limit-rate", "512k",
                     "--connections", "1", cwd=cwd)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    gets = [r for r in srv.requests if r.method == "GET"]
    assert gets and all(r.headers.get("x-test") == "hello" for r in gets)
    assert elapsed >= 0.3  # 256 KiB at 512 KiB/s takes ~0.5 s (some burst allowed)


# ---------------------------------------------------------------------------------------------- interruptions
SIZE = 8 * MiB
CHUNK = 256 * KiB
CONNS = 2


def _start_slow_download(srv: TestHttpServer, cwd: Path) -> tuple[bytes, list[str], subprocess.Popen[str]]:
    data = payload(SIZE, seed=11)
    srv.add_file("/big/movie.bin", data)
    srv.rate_limit = 2 * MiB  # per connection: the whole file takes ~2 s with 2 connections
    args = ["download", srv.url("/big/movie.bin"), "--connections", str(CONNS), "--chunk-size", "256KiB"]
    proc = start_cli(*args, cwd=cwd)
    ckpt = cwd / "movie.bin.part.ckpt"
    wait_until(lambda: ckpt.exists() and srv.bytes_sent_total >= 2 * MiB, proc)
    return data, args, proc


def _recorded(cwd: Path) -> int:
    """Bytes the (stopped) first run's checkpoint says are written."""
    saved = checkpoint.load(str(cwd / "movie.bin.part.ckpt"))
    assert saved is not None, "no checkpoint after the first run"
    return sum(end - start for start, end in saved.written)


def _resume(srv: TestHttpServer, cwd: Path, args: list[str], data: bytes) -> tuple[int, int]:
    """Let the first run's server threads notice the dead peer, then rerun at full speed: (B1, B2)."""
    time.sleep(0.3)
    b1 = srv.bytes_sent_total
    srv.clear_log()
    srv.rate_limit = None
    result = run_cli(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert file_sha256(cwd / "movie.bin") == sha256(data)
    assert leftovers(cwd) == []
    return b1, srv.bytes_sent_total


def test_kill_9_mid_download_then_rerun_resumes(srv: TestHttpServer, cwd: Path) -> None:
    data, args, proc = _start_slow_download(srv, cwd)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert (cwd / "movie.bin.part").exists() and not (cwd / "movie.bin").exists()
    recorded = _recorded(cwd)
    b1, b2 = _resume(srv, cwd, args, data)
    assert b1 >= 2 * MiB
    assert b2 < SIZE, "the rerun downloaded everything again instead of resuming"
    # What the server sent in run 1 but the checkpoint does not hold: at most one chunk per segment lost in the
    # writer plus one in-flight batch (socket buffers) per segment. Counted from the checkpoint, not from the
    # rerun's traffic, which work stealing inflates (a stolen tail's bytes already sat in socket buffers).
    assert b1 - recorded <= 2 * CONNS * CHUNK, (b1, recorded)


def _wait_until_quiet(path: Path, at_least: float, quiet: float, timeout: float = 15.0) -> None:
    """Return once ``path`` has existed unchanged for ``quiet`` seconds (and ``at_least`` has passed)."""
    start = time.monotonic()
    last, since = None, start
    while time.monotonic() - start < timeout:
        try:
            stamp = path.stat().st_mtime_ns, path.stat().st_size
        except FileNotFoundError:
            stamp = None
        now = time.monotonic()
        if stamp != last:
            last, since = stamp, now
        elif stamp is not None and now - since >= quiet and now - start >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never settled")


def test_kill_9_loses_less_than_one_chunk_per_segment(srv: TestHttpServer, cwd: Path) -> None:
    """Deterministic version of the kill -9 bound: each segment's GET sends 3.5 chunks, then stalls. Whatever
    the CLI wrote in whole batches must be in the checkpoint by the time it is killed, so the rerun may only
    re-fetch the unwritten half chunk of each segment (< one chunk per segment)."""
    data = payload(SIZE, seed=13)
    srv.add_file("/big/movie.bin", data)
    per_segment = 3 * CHUNK + CHUNK // 2
    srv.add_fault(Fault("stall", method="GET", path_prefix="/big/", after_bytes=per_segment, seconds=60,
                        then_close=True, times=CONNS))
    args = ["download", srv.url("/big/movie.bin"), "--connections", str(CONNS), "--chunk-size", "256KiB"]
    proc = start_cli(*args, cwd=cwd)
    wait_until(lambda: srv.bytes_sent_total >= CONNS * per_segment, proc)
    # Nothing more arrives (the server stalls). Wait until the CLI has taken in what was sent: its checkpoint stops
    # changing (at least 0.7 s; on a loaded machine the CLI may still be reading its socket after that).
    _wait_until_quiet(cwd / "movie.bin.part.ckpt", at_least=0.7, quiet=0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    recorded = _recorded(cwd)
    b1, _b2 = _resume(srv, cwd, args, data)
    assert b1 == CONNS * per_segment
    # Bytes the CLI had received in run 1 but not recorded, so the rerun must fetch them again. (Counted from the
    # checkpoint, not from the rerun's traffic: when a connection's tail is stolen, the server has already pushed
    # socket buffers past the hand-over point, which says nothing about what the kill lost.)
    lost = b1 - recorded
    assert lost < CONNS * CHUNK, f"{lost} bytes received but not in the checkpoint: more than one chunk per segment"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_download_exits_130_and_rerun_resumes(signum: signal.Signals, srv: TestHttpServer,
                                                         cwd: Path) -> None:
    data, args, proc = _start_slow_download(srv, cwd)
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert (cwd / "movie.bin.part.ckpt").exists() and not (cwd / "movie.bin").exists()
    recorded = _recorded(cwd)
    b1, b2 = _resume(srv, cwd, args, data)
    assert b2 < SIZE
    assert b1 - recorded <= 2 * CONNS * CHUNK, (b1, recorded)


def test_kill_9_mid_upload_then_rerun_resumes(srv: TestHttpServer, cwd: Path) -> None:
    size, chunk = 4 * MiB, 256 * KiB
    data = payload(size, seed=5)
    md5 = hashlib.md5(data).hexdigest()
    (cwd / "upload.bin").write_bytes(data)
    srv.upload_rate_limit = 1 * MiB  # ~4 s for the whole file
    args = ["upload", "upload.bin", srv.url("/upload"), "--chunk-size", "256KiB"]
    proc = start_cli(*args, cwd=cwd)
    wait_until(lambda: md5 in srv.uploads and srv.uploads[md5].prefix >= 1 * MiB, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    time.sleep(0.3)  # the server drops the half-received chunk once it sees the dead connection
    prefix1 = srv.uploads[md5].prefix
    assert 1 * MiB <= prefix1 < size
    calls_before = len(srv.upload_calls)
    srv.upload_rate_limit = None
    result = run_cli(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    state = srv.uploads[md5]
    assert state.completed and state.md5_ok is True
    assert result.stdout.strip() == state.file_id
    run2 = [c for c in srv.upload_calls[calls_before:] if c.kind == "chunk"]
    resent = sum(int(c.values["partSize"]) for c in run2)
    assert resent < size, "the rerun uploaded everything again"
    assert resent <= size - prefix1 + chunk, (prefix1, resent)
    assert min(int(c.values["offset"]) for c in run2) >= prefix1 - chunk


def test_upload_json_reports_file_id(srv: TestHttpServer, cwd: Path) -> None:
    data = payload(600 * KiB, seed=3)
    (cwd / "small.bin").write_bytes(data)
    result = run_cli("upload", "small.bin", srv.url("/upload"), "--chunk-size", "128k", "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stdout)
    md5 = hashlib.md5(data).hexdigest()
    assert events[-1] == {"event": "complete", "payload": srv.uploads[md5].file_id,
                          "file_path": str(cwd / "small.bin")}
    records = events[:-1]
    assert records[-1]["status"] == "complete" and records[-1]["direction"] == "upload"
    assert records[-1]["transferred_bytes"] == records[-1]["total_size"] == len(data)
    assert srv.uploads[md5].md5_ok is True


def test_upload_server_error_exits_1(srv: TestHttpServer, cwd: Path) -> None:
    (cwd / "f.bin").write_bytes(b"x" * 1000)
    result = run_cli("upload", "f.bin", srv.url("/not-an-upload-endpoint"), "--retries", "0", cwd=cwd)
    assert result.returncode == 1
    assert "404" in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------------------------------------- progress bar
def test_format_progress_layout() -> None:
    line = format_progress(4 * MiB, 8 * MiB, 2 * MiB, width=80)
    assert len(line) <= 80
    assert line.startswith(" 50.0% [")
    assert "4.0 MiB/8.0 MiB" in line and "2.0 MiB/s" in line and "ETA 0:02" in line
    full = format_progress(8 * MiB, 8 * MiB, 0, width=80)
    assert full.startswith("100.0% [") and "ETA 0:00" in full and "--/s" in full
    start = format_progress(0, 8 * MiB, 0, width=80)
    assert "ETA --:--" in start and "#" not in start
    unknown = format_progress(3 * MiB, 0, 1024, width=80)
    assert unknown == "3.0 MiB  1.0 KiB/s"
    narrow = format_progress(1, 2, 1, width=30)
    assert len(narrow) <= 30 and "[" not in narrow


def test_format_progress_bar_fill_is_proportional() -> None:
    line = format_progress(1, 4, 1.0, width=100)
    bar = line[line.index("[") + 1 : line.index("]")]
    assert bar.count("#") == len(bar) // 4


def test_format_duration() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(7.4) == "0:07"
    assert format_duration(754) == "12:34"
    assert format_duration(3723) == "1:02:03"


def test_rate_meter_uses_a_sliding_window() -> None:
    meter = RateMeter(window=2.0)
    assert meter.rate() == 0.0
    meter.add(0.0, 0)
    meter.add(1.0, 1000)
    assert meter.rate() == pytest.approx(1000)
    for t in range(2, 10):
        meter.add(float(t), 1000 + (t - 1) * 10)  # slows to 10 B/s
    assert meter.rate() == pytest.approx(10, rel=0.01)
    meter.add(10.0, 5)  # restarted from scratch: forget the old samples
    assert meter.rate() == 0.0


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_progress_bar_drawn_on_a_terminal(srv: TestHttpServer, cwd: Path) -> None:
    data = payload(1 * MiB)
    srv.add_file("/tty/x.bin", data)
    srv.rate_limit = 1 * MiB
    master, slave = os.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows x 100 columns
    chunks: list[bytes] = []

    def reader() -> None:
        while True:
            try:
                piece = os.read(master, 4096)
            except OSError:  # EIO once the child closed the terminal
                return
            if not piece:
                return
            chunks.append(piece)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        proc = subprocess.Popen(cli_cmd("download", srv.url("/tty/x.bin"), "--connections", "1",
                                                "--chunk-size", "64k"), cwd=cwd,
                                env=cli_env(), stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
        thread.join(timeout=5)
    finally:
        os.close(master)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    assert proc.returncode == 0, text
    assert out == b""
    assert text.count("\r") >= 3, text  # redrawn in place several times
    assert "100.0%" in text and "ETA 0:0" in text and "1.0 MiB/1.0 MiB" in text
    assert re.search(r"\d\.\d [KM]iB/s", text), text
    assert file_sha256(cwd / "x.bin") == sha256(data)


# ---------------------------------------------------------------------------------------------- start-up
_LOADED_PROVIDERS = ("import json, sys; from app.cli import main; rc = main(sys.argv[1:]); "
                     "print(json.dumps([rc, sorted(m for m in sys.modules if m.startswith('app.providers'))]))")


def test_plain_url_transfers_do_not_load_the_provider_plugins(srv: TestHttpServer, cwd: Path) -> None:
    """Every CLI start pays for what it imports (docs/performance.md): the OSS and Azure plugins load only for a
    URL or account that needs them, never for a plain http(s) download or default-protocol upload."""
    data = payload(64 * KiB)
    srv.add_file("/p/plain.bin", data)
    (cwd / "up.bin").write_bytes(data)
    for args in (["download", srv.url("/p/plain.bin"), "-o", "plain.bin"], ["upload", "up.bin", srv.url("/upload")]):
        child = subprocess.run([sys.executable, "-c", _LOADED_PROVIDERS, *args], cwd=cwd, env=cli_env(),
                               capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert child.returncode == 0, child.stderr
        rc, providers = json.loads(child.stdout.splitlines()[-1])
        assert rc == 0, child.stderr
        assert providers == [], f"{args[0]} loaded {providers}"
    assert file_sha256(cwd / "plain.bin") == sha256(data)


def test_a_sas_url_loads_the_azure_plugin(srv: TestHttpServer, cwd: Path) -> None:
    """The other side of the test above: the check sees provider imports when there are some."""
    sas = srv.url("/c/blob.bin") + "?sv=2021-08-06&sr=b&sp=r&se=2000-01-01T00%3A00%3A00Z&sig=c2ln"
    child = subprocess.run([sys.executable, "-c", _LOADED_PROVIDERS, "download", sas, "-o", "b.bin", "--retries", "0"],
                           cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    rc, providers = json.loads(child.stdout.splitlines()[-1])
    assert rc == 1  # the test server is no Azure: the download fails, after the plugin was chosen
    assert "app.providers.azure_blob.plugins" in providers


# ---------------------------------------------------------------------------------------------- accounts
def _accounts_env(tmp_path: Path) -> dict[str, str]:
    """A file keyring in a private XDG tree: the test machines have no Secret Service."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring"}


def _accounts(tmp_path: Path, *args: str, stdin: str = "", extra_env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "app.cli", "accounts", *args], input=stdin, text=True,
                          capture_output=True, env={**_accounts_env(tmp_path), **(extra_env or {})}, timeout=60)


def test_accounts_add_list_remove_keeps_the_secret_in_the_keyring_only(tmp_path: Path) -> None:
    secret = "oss-secret-9f8e7d"
    added = _accounts(tmp_path, "add", "prod", "--provider", "aliyun-oss", "--endpoint", "https://oss.example.com",
                      "--region", "cn-hangzhou", "--access-key-id", "LTAIkey", "--path-style",
                      "--secret-env", "RC_SECRET", extra_env={"RC_SECRET": secret})
    assert added.returncode == 0, added.stderr
    az = _accounts(tmp_path, "add", "blob", "--provider", "azure-blob", "--endpoint", "http://127.0.0.1:1/devstoreaccount1",
                   "--account-name", "devstoreaccount1", stdin="YXp1cmUta2V5\n")
    assert az.returncode == 0, az.stderr
    listed = _accounts(tmp_path, "list")
    assert listed.returncode == 0
    assert "prod\taliyun-oss" in listed.stdout and "blob\tazure-blob" in listed.stdout
    everything = listed.stdout + listed.stderr + added.stdout + added.stderr + az.stdout + az.stderr
    assert secret not in everything and "YXp1cmUta2V5" not in everything
    profile = b"".join(p.read_bytes() for p in (tmp_path / "data" / "rusty-cat").glob("history.sqlite3*"))
    assert secret.encode() not in profile and b"LTAIkey" in profile
    from_ring = subprocess.run([sys.executable, "-c", "import keyring; print(keyring.get_password('rusty-cat', "
                                "'account:prod'))"], capture_output=True, text=True, env=_accounts_env(tmp_path))
    assert from_ring.stdout.strip() == secret  # the keyring holds it, under the app's service name
    removed = _accounts(tmp_path, "remove", "prod")
    assert removed.returncode == 0
    assert "prod" not in _accounts(tmp_path, "list").stdout


def test_accounts_bad_input_and_missing_keyring_are_clear(tmp_path: Path) -> None:
    bad = _accounts(tmp_path, "add", "x", "--provider", "aliyun-oss", "--endpoint", "https://o.example.com",
                    "--region", "oss-cn-hangzhou", "--access-key-id", "k", stdin="s\n")
    assert bad.returncode == 2 and "OSS region" in bad.stderr
    none = _accounts(tmp_path, "add", "y", "--provider", "azure-blob", "--endpoint", "http://h/devstoreaccount1",
                     "--account-name", "devstoreaccount1", stdin="s\n",
                     extra_env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert none.returncode == 1 and "no usable OS keyring" in none.stderr
    assert "y\t" not in _accounts(tmp_path, "list").stdout
