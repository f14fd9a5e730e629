"""What the field tests do over and over: build a download or an upload (default protocol), run it to its end on a
client, run the CLI as a subprocess with an environment of the test's choosing."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from app.engine.api import (
    DownloadPounceBuilder,
    FileTransferRecord,
    MeowClient,
    PounceTask,
    TransferStatus,
    UploadPounceBuilder,
)
from tests.support.engine_helpers import KIB, Recorder, env_for
from tests.support.http_server import TestHttpServer

CHUNK = 256 * KIB
TIMEOUT = 60.0  # for a transfer of a few MiB on loopback: generous for a loaded 2-core machine
CLI_TIMEOUT = 120.0


def download_task(url: str, dest: Path, chunk: int = CHUNK, retries: int | None = None) -> PounceTask:
    builder = DownloadPounceBuilder(dest.name, dest, chunk, url)
    if retries is not None:
        builder = builder.with_max_chunk_retries(retries)
    return builder.build()


def upload_task(src: Path, url: str, chunk: int = CHUNK, retries: int | None = None) -> PounceTask:
    builder = UploadPounceBuilder(src.name, src, chunk).with_url(url)
    if retries is not None:
        builder = builder.with_max_chunk_retries(retries)
    return builder.build()


async def run_to_end(client: MeowClient, task: PounceTask, timeout: float = TIMEOUT) -> FileTransferRecord:
    """Enqueue ``task`` and wait for its terminal record."""
    rec = Recorder()
    tid = await client.try_enqueue(task, rec.progress, rec.complete)
    return await rec.wait_terminal(tid, timeout)


def completed(final: FileTransferRecord) -> None:
    """Assert the transfer completed, else say why it did not."""
    assert final.status is TransferStatus.COMPLETE, f"{final.status.name}: {final.error}"


def uploaded(srv: TestHttpServer, data: bytes) -> bytes:
    """What the default protocol's server holds of an upload of ``data`` (asserting it completed and its MD5)."""
    state = srv.uploads[hashlib.md5(data).hexdigest()]
    assert state.completed and state.md5_ok
    return state.data


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """rusty-cat-cli with per-user folders under ``home`` and ``env`` added to the (proxy-free) environment."""
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=home, capture_output=True, text=True,
                          env=env_for(home, **env), timeout=CLI_TIMEOUT, check=False)
