"""A real Azure Blob service for tests: Azurite, started once per session on a free loopback port.

Why Azurite: it verifies Shared Key and SAS signatures and enforces the block blob rules, so a
request our signer gets wrong fails here exactly as it would on Azure (reference §3.1).

``make test`` installs Azurite into ``tests/azurite/`` (see the Makefile). When it is not installed
(or Node.js is missing) every test using the ``azurite`` fixture is skipped with the reason.
``RUSTY_CAT_AZURITE=/path/to/azurite-blob`` overrides where it is looked for.

Azurite is started with:
* ``--blobPort 0``: a free port, parsed from its "successfully listens on" line (a fixed port
  may be taken by another Azurite on the same host);
* ``--inMemoryPersistence``: nothing left on disk;
* ``--disableTelemetry``: telemetry is on by default and would try to reach the Internet;
* ``--skipApiVersionCheck``: the SDK (used here to make SAS tokens and read blobs back) sends a
  newer x-ms-version than Azurite knows;
* ``--loose``: tolerate headers strict mode rejects (e.g. ``x-ms-range-get-content-crc64``).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.providers.azure_blob.signer import EMULATOR_ACCOUNT_KEY, EMULATOR_ACCOUNT_NAME, AzureSharedKey

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_DIR = REPO_ROOT / "tests" / "azurite"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
_LISTEN = re.compile(r"successfully listens on https?://[^\s:]+:(\d+)")
_counter = itertools.count(1)


def find_azurite() -> str | None:
    """The ``azurite-blob`` executable: $RUSTY_CAT_AZURITE, then ``tests/azurite/``, then $PATH."""
    override = os.environ.get("RUSTY_CAT_AZURITE")
    if override:
        return override if Path(override).exists() else None
    local = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


_LIBC = None
if sys.platform == "linux":
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(None)  # loaded here, not in the forked child


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: have the kernel SIGTERM Azurite if pytest dies without running teardown."""
    with contextlib.suppress(Exception):
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class AzuriteServer:
    """A running Azurite blob service plus helpers that use the official SDK as an oracle.

    The helpers (container creation, SAS generation, read-back) go through azure-storage-blob,
    not our code, so a smoke test of our signer never depends on that signer for its setup.
    """

    process: subprocess.Popen[str]
    port: int
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200), repr=False)
    host: str = "127.0.0.1"
    account_name: str = EMULATOR_ACCOUNT_NAME
    account_key: str = field(default=EMULATOR_ACCOUNT_KEY, repr=False)

    @property
    def endpoint(self) -> str:
        """The blob service URL, path-style: ``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f"http://{self.host}:{self.port}/{self.account_name}"

    def shared_key(self) -> AzureSharedKey:
        return AzureSharedKey(self.account_name, self.account_key)

    def blob_url(self, container: str, blob: str) -> str:
        from urllib.parse import quote

        return f"{self.endpoint}/{container}/{quote(blob, safe='/~')}"

    def service_client(self):  # -> azure.storage.blob.BlobServiceClient
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            account_url=self.endpoint,
            credential={"account_name": self.account_name, "account_key": self.account_key},
        )

    def create_container(self, name: str | None = None) -> str:
        """Create a container (a fresh unique name by default) and return its name."""
        name = name or f"t{next(_counter)}-{uuid.uuid4().hex[:12]}"
        self.service_client().create_container(name)
        return name

    def read_blob(self, container: str, blob: str) -> bytes:
        """Read a blob back with the SDK (independent of our code)."""
        return self.service_client().get_blob_client(container, blob).download_blob().readall()

    def blob_sas(self, container: str, blob: str, permission: str = "racw",
                 expiry: datetime | timedelta = timedelta(hours=1), start: datetime | None = None) -> str:
        """A full blob SAS URL (``sr=b``) made by the SDK's ``generate_blob_sas``."""
        from azure.storage.blob import generate_blob_sas

        token = self._sas_token(generate_blob_sas, container, blob, permission=permission, expiry=expiry, start=start)
        return f"{self.blob_url(container, blob)}?{token}"

    def container_sas(self, container: str, permission: str = "racwl",
                      expiry: datetime | timedelta = timedelta(hours=1), start: datetime | None = None) -> str:
        """A full container SAS URL (``sr=c``) made by the SDK's ``generate_container_sas``."""
        from azure.storage.blob import generate_container_sas

        token = self._sas_token(generate_container_sas, container, permission=permission, expiry=expiry, start=start)
        return f"{self.endpoint}/{container}?{token}"

    def _sas_token(self, generate: Callable[..., str], *names: str, permission: str,
                   expiry: datetime | timedelta, start: datetime | None) -> str:
        """The SDK's SAS query for ``names`` (the container, then the blob for a blob SAS), signed with the
        account key, so the tests' tokens never depend on our signer."""
        return generate(self.account_name, *names, account_key=self.account_key, permission=permission,
                        expiry=_when(expiry), start=start)

    def log_tail(self) -> str:
        return "".join(self.output)

    def stop(self) -> None:
        """SIGTERM (Azurite closes in about 1-2 s), then SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)


def _when(value: datetime | timedelta) -> datetime:
    return datetime.now(UTC) + value if isinstance(value, timedelta) else value


def start_azurite(executable: str, *, wrap_argv: Callable[[list[str]], list[str]] | None = None,
                  reach_in: Callable[[], contextlib.AbstractContextManager[object]] | None = None) -> AzuriteServer:
    """Start Azurite on a free port and return once it answers HTTP. ``wrap_argv`` runs it through a launcher and
    ``reach_in`` is the context its readiness probe runs in: ``ThrottledNamespace.exec_argv`` and ``.inside`` start
    it in a network namespace (tests/support/netns.py); callers then reach it from inside that context too."""
    cmd = [
        executable,
        "--blobHost", "127.0.0.1",
        "--blobPort", "0",
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
    ]  # fmt: skip
    process = subprocess.Popen(
        wrap_argv(cmd) if wrap_argv is not None else cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        cwd=AZURITE_DIR if AZURITE_DIR.is_dir() else None,
        preexec_fn=_die_with_parent if _LIBC is not None else None,
    )
    output: deque[str] = deque(maxlen=200)
    port_found = threading.Event()
    port_box: list[int] = []

    def pump() -> None:
        # Keep draining so a chatty Azurite never blocks on a full pipe.
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if not port_box and (m := _LISTEN.search(line)):
                port_box.append(int(m.group(1)))
                port_found.set()
        port_found.set()

    threading.Thread(target=pump, name="azurite-output", daemon=True).start()
    server = AzuriteServer(process=process, port=0, output=output)
    deadline = time.monotonic() + START_TIMEOUT
    if not port_found.wait(START_TIMEOUT) or not port_box:
        server.stop()
        raise RuntimeError(f"Azurite did not report its port (exit code {process.poll()}):\n{''.join(output)}")
    server.port = port_box[0]
    # "listens" is printed once the socket is bound; confirm it answers before handing it out.
    while True:
        try:
            with reach_in() if reach_in is not None else contextlib.nullcontext():
                httpx.get(f"http://127.0.0.1:{server.port}/", timeout=1.0, trust_env=False)
            return server
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                server.stop()
                raise RuntimeError(f"Azurite is not answering on port {server.port}:\n{''.join(output)}") from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """The session's Azurite blob service (skips the test when Azurite can't run here)."""
    pytest.importorskip("azure.storage.blob", reason="azure-storage-blob (test extra) is not installed")
    executable = find_azurite()
    if executable is None:
        pytest.skip("Azurite is not installed (run `make test`, which installs it into tests/azurite/ with npm)")
    if shutil.which("node") is None:
        pytest.skip("Azurite needs Node.js, which is not on PATH")
    server = start_azurite(executable)
    try:
        yield server
    finally:
        server.stop()
