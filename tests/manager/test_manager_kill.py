"""kill -9 of a process running the manager: the next start resumes the job and the file is right."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.manager.jobs import JobStatus
from app.manager.manager import TransferManager
from tests.support.engine_helpers import KIB, MIB, ROOT, blob, sha
from tests.support.http_server import TestHttpServer

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

CHILD = textwrap.dedent("""
    import asyncio, sys
    from app.manager.manager import TransferManager
    from app.manager.jobs import JobOptions

    async def main(data_dir, url, folder):
        m = TransferManager(data_dir)
        await m.open()
        job = await m.add_download(url, folder, options=JobOptions(chunk_size=256 * 1024))
        print(job.id, flush=True)
        while True:
            await asyncio.sleep(0.05)
            print(job.done_bytes, flush=True)

    asyncio.run(main(*sys.argv[1:]))
""")


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        yield server


async def test_kill_9_then_restart_resumes_with_the_right_checksum(srv: TestHttpServer, tmp_path: Path) -> None:
    data = blob(8 * MIB, seed=21)
    srv.add_file("/killme.bin", data)
    srv.rate_limit = 512 * KIB  # per connection: the child is mid-way when it is killed
    data_dir, folder = tmp_path / "data", tmp_path / "downloads"
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), srv.url("/killme.bin"), str(folder)],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        job_id = (await asyncio.to_thread(child.stdout.readline)).strip()
        while True:
            line = await asyncio.to_thread(child.stdout.readline)
            assert line, "the child exited early"
            if int(line) > 2 * MIB:
                break
        await asyncio.sleep(1.2)  # let a history write happen, as it would in real use
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not (folder / "killme.bin").exists()

    srv.rate_limit = None
    manager = TransferManager(data_dir)
    await manager.open()
    try:
        job = manager.get(job_id)
        deadline = asyncio.get_running_loop().time() + 30
        while job.status is not JobStatus.COMPLETED:
            assert job.status is not JobStatus.FAILED, job.error
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    finally:
        await manager.close()
    assert sha((folder / "killme.bin").read_bytes()) == sha(data)
    refetched = srv.bytes_sent_total - len(data)
    # Bytes sent twice: one chunk per connection in flight when the child died, plus what sat in socket buffers
    # (the same allowance as the CLI's kill test; tests/test_cli.py proves the tight engine bound).
    assert refetched <= 2 * 4 * 256 * KIB, f"re-fetched {refetched} bytes"
