"""rusty-cat-cli killed with SIGKILL in the middle of a provider upload, then run again: it resumes.

SIGKILL gives the CLI no chance to pause, flush or clean up, so everything the re-run knows comes from the
session file (upload-sessions in the per-user state folder) and from what the service says it holds:

* Azure (``azure://ACCOUNT/container/blob`` against Azurite): the first run is slowed by ``--limit-rate``
  (Azurite can't be throttled); at the kill some blocks are staged but uncommitted (SDK Get Block List), and
  the re-run starts from exactly those blocks and commits the right content.
* OSS (``oss://ACCOUNT/bucket/key`` against the fake OSS server, whose request-body reads are throttled):
  at the kill the multipart upload holds some parts; the re-run continues that same upload (no new
  InitiateMultipartUpload) and sends only the missing parts, give or take one per connection.

Both end with the object equal to the file and no open session left behind, as does a plain upload (a
finished OSS upload leaves only a record of its completion, checked by HEAD if the upload is ever run again).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.azurite import AzuriteServer
from tests.support.engine_helpers import KIB, MIB, env_for
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer

SIZE = 8 * MIB
PART = 512 * KIB
PARTS = SIZE // PART  # 16
CONNECTIONS = 4
KILL_AT = 0.35  # fraction of the file reported done when the CLI is killed
RUN_TIMEOUT = 30.0  # seconds for any one CLI run


def cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env_for(tmp_path, **extra), timeout=RUN_TIMEOUT)


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def first_progress(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The first TRANSMISSION record that knows the size: where the run started from."""
    return next(r for r in lines if r.get("status") == "transmission" and r.get("total_size", 0) > 0)


def session_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "rusty-cat" / "upload-sessions"


def session_files(tmp_path: Path) -> list[Path]:
    """Upload sessions still open (resumable); not the record a completed OSS upload leaves."""
    folder = session_dir(tmp_path)
    paths = sorted(folder.iterdir()) if folder.exists() else []
    return [p for p in paths if not json.loads(p.read_text())["data"].get("completed")]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "payload.bin"
    path.parent.mkdir()
    with path.open("wb") as f:
        for _ in range(SIZE // MIB):
            f.write(os.urandom(MIB))
    return path


@contextlib.contextmanager
def started(tmp_path: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """The CLI as a child process with stdout piped; killed (and reaped) on the way out, whatever happened."""
    stderr = (tmp_path / "killed-run.stderr").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=stderr, stdin=subprocess.DEVNULL, text=True, env=env_for(tmp_path))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        stderr.close()
        if proc.stdout is not None:
            proc.stdout.close()


def kill_midway(proc: subprocess.Popen[str], tmp_path: Path, fraction: float = KILL_AT,
                timeout: float = RUN_TIMEOUT) -> list[dict[str, Any]]:
    """Read --json records until ``fraction`` of the file is reported done, then SIGKILL the CLI.

    A reader thread feeds a queue so every wait has a deadline (a silent child can't hang the test)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in proc.stdout:
                lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="cli-stdout", daemon=True).start()
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {fraction:.0%} progress within {timeout}s: {seen[-3:]}"
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        if line is None:
            err = (tmp_path / "killed-run.stderr").read_text()
            raise AssertionError(f"the CLI ended (exit {proc.wait(5)}) before it could be killed: {seen[-3:]} {err}")
        record = json.loads(line)
        seen.append(record)
        assert record.get("event") != "complete" and record.get("status") in ("pending", "transmission"), record
        total = record.get("total_size", 0)
        if total > 0 and record["transferred_bytes"] >= fraction * total:
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
            assert record["transferred_bytes"] < total, "killed too late: nothing left to resume"
            return seen


def settle(read: Any, timeout: float = 5.0, quiet: float = 0.3) -> Any:
    """``read()`` once it stops changing for ``quiet`` seconds (a request whose body was fully sent before
    the kill may still be finishing server-side)."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = read()
        if now == last:
            return now
        last = now
    return last


# ---------------------------------------------------------------------------------------------- Azure
def add_azure_account(azurite: AzuriteServer, tmp_path: Path) -> None:
    added = cli(tmp_path, "accounts", "add", "az", "--provider", "azure-blob", "--endpoint", azurite.endpoint,
                "--account-name", azurite.account_name, "--secret-env", "AZ_KEY", AZ_KEY=azurite.account_key)
    assert added.returncode == 0, added.stderr


@pytest.mark.timeout(60)
def test_azure_upload_killed_with_sigkill_resumes(azurite: AzuriteServer, tmp_path: Path, src: Path) -> None:
    container, blob = azurite.create_container(), "kill/resume.bin"
    add_azure_account(azurite, tmp_path)
    command = ["upload", str(src), f"azure://az/{container}/{blob}", "--chunk-size", "512k",
               "--connections", str(CONNECTIONS), "--json"]
    client = azurite.service_client().get_blob_client(container, blob)

    with started(tmp_path, *command, "--limit-rate", "1M") as proc:
        kill_midway(proc, tmp_path)
    staged = settle(lambda: sorted((b.id, b.size) for b in client.get_block_list("uncommitted")[1]))
    assert 0 < len(staged) < PARTS, staged
    assert all(size == PART for _, size in staged)
    assert not client.get_block_list("committed")[0], "nothing is committed before every block is staged"
    assert len(session_files(tmp_path)) == 1, "the unfinished upload is on record"

    again = cli(tmp_path, *command)
    assert again.returncode == 0, again.stderr
    lines = json_lines(again.stdout)
    assert lines[-1]["event"] == "complete" and lines[-1]["payload"]
    # Records are throttled and coalesced (latest wins), so the first one may already be past the resume point,
    # never before it: a resumed upload must not report 0 bytes done first.
    assert first_progress(lines)["transferred_bytes"] >= len(staged) * PART, "the re-run starts from the staged blocks"
    assert azurite.read_blob(container, blob) == src.read_bytes()
    committed, uncommitted = client.get_block_list("all")
    assert len(committed) == PARTS and not uncommitted
    assert session_files(tmp_path) == [], "a finished upload leaves no session file"
    assert azurite.account_key not in again.stdout + again.stderr


@pytest.mark.timeout(60)
def test_azure_plain_upload_leaves_no_session(azurite: AzuriteServer, tmp_path: Path, src: Path) -> None:
    container = azurite.create_container()
    add_azure_account(azurite, tmp_path)
    up = cli(tmp_path, "upload", str(src), f"azure://az/{container}/plain.bin", "--chunk-size", "1M")
    assert up.returncode == 0, up.stderr
    assert azurite.read_blob(container, "plain.bin") == src.read_bytes()
    assert session_files(tmp_path) == []


# ---------------------------------------------------------------------------------------------- OSS
def add_oss_account(oss: FakeOssServer, tmp_path: Path) -> None:
    creds = oss.credentials
    added = cli(tmp_path, "accounts", "add", "oss", "--provider", "aliyun-oss", "--endpoint", oss.endpoint,
                "--region", oss.region, "--access-key-id", creds.access_key_id, "--path-style",
                "--secret-env", "OSS_SECRET", OSS_SECRET=creds.access_key_secret)
    assert added.returncode == 0, added.stderr


def stored_parts(oss: FakeOssServer, key: str) -> dict[str, list[int]]:
    """upload id -> part numbers the fake holds for ``key``."""
    with oss._lock:
        return {u.upload_id: sorted(u.parts) for u in oss.multipart_uploads.values()
                if (u.bucket, u.key) == (DEFAULT_BUCKET, key)}


@pytest.mark.timeout(60)
def test_oss_upload_killed_with_sigkill_resumes(tmp_path: Path, src: Path) -> None:
    key = "kill/resume.bin"
    with FakeOssServer(min_part_size=64 * KIB) as oss:
        add_oss_account(oss, tmp_path)
        command = ["upload", str(src), f"oss://oss/{DEFAULT_BUCKET}/{key}", "--chunk-size", "512k",
                   "--connections", str(CONNECTIONS), "--json"]
        oss.upload_rate_limit = 512 * KIB  # per connection: one part a second each

        with started(tmp_path, *command) as proc:
            kill_midway(proc, tmp_path)
        uploads = settle(lambda: stored_parts(oss, key))
        [(upload_id, held)] = uploads.items()
        assert 0 < len(held) < PARTS, held
        assert oss.get_object(DEFAULT_BUCKET, key) is None
        assert len(session_files(tmp_path)) == 1, "the upload id is on record"
        missing = PARTS - len(held)

        oss.upload_rate_limit = None
        first_run_calls = len(oss.calls)
        again = cli(tmp_path, *command)
        assert again.returncode == 0, again.stderr
        lines = json_lines(again.stdout)
        assert lines[-1]["event"] == "complete" and lines[-1]["payload"]
        assert first_progress(lines)["transferred_bytes"] >= len(held) * PART, "the re-run starts from the parts held"

        stored = oss.get_object(DEFAULT_BUCKET, key)
        assert stored is not None and bytes(stored.data) == src.read_bytes()
        assert stored.object_type == "Multipart"
        assert oss.count_op("InitiateMultipartUpload") == 1, "the re-run continued the killed run's upload"
        sent = [c.part_number for c in oss.calls[first_run_calls:] if c.op == "UploadPart"]
        assert missing <= len(sent) <= missing + CONNECTIONS, (missing, sorted(sent))
        assert set(sent) >= set(range(1, PARTS + 1)) - set(held), "every missing part was sent"
        assert all(c.upload_id == upload_id for c in oss.calls[first_run_calls:] if c.op == "UploadPart")
        assert upload_id not in oss.multipart_uploads
        assert session_files(tmp_path) == [], "a finished upload leaves no session file"
        assert oss.credentials.access_key_secret not in again.stdout + again.stderr


@pytest.mark.timeout(60)
def test_oss_plain_upload_leaves_no_session(tmp_path: Path, src: Path) -> None:
    with FakeOssServer(min_part_size=64 * KIB) as oss:
        add_oss_account(oss, tmp_path)
        up = cli(tmp_path, "upload", str(src), f"oss://oss/{DEFAULT_BUCKET}/plain.bin", "--chunk-size", "1M")
        assert up.returncode == 0, up.stderr
        stored = oss.get_object(DEFAULT_BUCKET, "plain.bin")
        assert stored is not None and bytes(stored.data) == src.read_bytes()
        assert session_files(tmp_path) == []
