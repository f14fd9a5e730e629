"""SOCKS5 proxies (``socks5://`` resolves names here, ``socks5h://`` at the proxy), through a real SOCKS5 server
(pproxy) for both of the engine's HTTP stacks: the probe (httpx with socksio) and the bodies (the data path with
python-socks). Both libraries are dependencies of Rusty Cat."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.api import DownloadPounceBuilder, InnerErrorCode, TransferStatus, UploadPounceBuilder
from tests.support.engine_helpers import KIB, MIB, Recorder, blob, failed_with, meow
from tests.support.http_server import TestHttpServer

PPROXY = Path(sys.executable).with_name("pproxy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Socks5Server:
    """pproxy as a SOCKS5 server on 127.0.0.1, optionally with a user and password; ``connections()`` lists the
    destinations it connected to, from its verbose log."""

    def __init__(self, tmp: Path, auth: str | None = None) -> None:
        self.port = _free_port()
        self.log = tmp / f"pproxy-{self.port}.log"
        listen = f"socks5://127.0.0.1:{self.port}" + (f"#{auth}" if auth else "")
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen([str(PPROXY), "-l", listen, "-v"], stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pproxy did not start: {self.log.read_text(errors='replace')}")

    def connections(self) -> list[str]:
        return [line.split("->", 1)[1].strip() for line in self.log.read_text(errors="replace").splitlines()
                if line.startswith("socks5 ") and "->" in line]

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


@pytest.fixture
def socks(tmp_path: Path) -> Iterator[Socks5Server]:
    if not PPROXY.exists():
        pytest.fail(f"{PPROXY} is missing: `make test` installs pproxy with the test extra")
    server = Socks5Server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        yield server


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_download_and_upload_go_through_a_socks5_proxy(scheme: str, socks: Socks5Server, srv: TestHttpServer,
                                                             tmp_path: Path) -> None:
    data = blob(3 * MIB, 7)
    srv.add_file("/f.bin", data)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    rec = Recorder()
    async with meow(proxy=f"{scheme}://127.0.0.1:{socks.port}") as client:
        down = DownloadPounceBuilder("f.bin", tmp_path / "f.bin", 512 * KIB, srv.url("/f.bin")).build()
        up = UploadPounceBuilder("up.bin", src, 1 * MIB).with_url(srv.url("/upload")).build()
        for task in (down, up):
            final = await rec.wait_terminal(await client.try_enqueue(task, rec.progress, rec.complete))
            assert final.status is TransferStatus.COMPLETE, final.error
    assert (tmp_path / "f.bin").read_bytes() == data
    assert srv.uploads[hashlib.md5(data).hexdigest()].data == data
    seen = socks.connections()
    assert len(seen) >= 3 and all(c.endswith(f":{srv.port}") for c in seen), seen  # probe, ranges, upload


@pytest.mark.asyncio
async def test_wrong_socks_credentials_fail_at_once_without_the_password(srv: TestHttpServer,
                                                                          tmp_path: Path) -> None:
    server = Socks5Server(tmp_path, auth="alice:right-password")
    try:
        srv.add_file("/f.bin", b"x" * 1000)
        rec = Recorder()
        async with meow(proxy=f"socks5://alice:WRONG-PASSWORD-123@127.0.0.1:{server.port}") as client:
            task = DownloadPounceBuilder("f.bin", tmp_path / "f.bin", 64 * KIB, srv.url("/f.bin"))
            final = await rec.wait_terminal(await client.try_enqueue(task.with_max_chunk_retries(5).build(),
                                                                     rec.progress))
        msg = failed_with(final, InnerErrorCode.PROXY_ERROR)
        assert "WRONG-PASSWORD" not in msg and srv.requests == []
    finally:
        server.stop()
