"""A slow uplink, as users have it: 8 MiB parts over a 6 Mbit/s link complete, to every provider and back.

The field report (issue 11): on a ~6 Mbit/s link, ``rusty-cat-cli upload FILE oss://... --chunk-size 8MiB`` failed
every time with ``WriteTimeout``: an 8 MiB part takes ~11 s there, and the OSS path bounded a whole part by the
5 s timeout. Timeouts must bound a stall, never a part. These tests run the real CLI over a link that really is
that slow -- the kernel's tbf on the loopback of a network namespace of the test's own, or a userspace throttling
relay where no namespace can be made (the test says which ran) -- with files just over one 8 MiB part, and prove
the link was slow by the time the transfer took (at least 70% of bytes / rate: an unthrottled loopback moves
9 MiB in well under a second, so these tests cannot pass on one).

``RUSTY_CAT_THROTTLE=relay`` forces the userspace relay (to test the fallback on a machine that has namespaces).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.azurite import AzuriteServer, find_azurite, start_azurite
from tests.support.engine_helpers import MIB, env_for, sha
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer
from tests.support.http_server import TestHttpServer
from tests.support.loopback import LoopbackServer
from tests.support.netns import ThrottledNamespace, ThrottlingRelay, netns_unavailable, parse_rate

RATE = "6mbit"
SIZE = 9 * MIB  # one 8 MiB part (~11 s at 6 Mbit/s, more than the 5 s default timeout) and a 1 MiB one
PART = "8MiB"
FLOOR = 0.7  # of bytes / rate: the least time a transfer over the throttled link can take
CLI_TIMEOUT = 120.0  # a 9 MiB transfer takes ~13 s here; generous for a loaded 2-core machine

pytestmark = pytest.mark.timeout(180)


@dataclass
class Link:
    """The throttled link that runs: where processes and servers go so that their traffic pays the rate."""

    kind: str  # says which one ran, for the test report
    bytes_per_second: float
    ns: ThrottledNamespace | None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def argv(self, argv: list[str]) -> list[str]:
        """A command whose connections cross the link."""
        return self.ns.exec_argv(argv) if self.ns is not None else argv

    def reach(self) -> contextlib.AbstractContextManager[object]:
        """The context in which this thread reaches the link's servers (the namespace, or anywhere)."""
        return self.ns.inside() if self.ns is not None else contextlib.nullcontext()

    def serve(self, server: LoopbackServer) -> str:
        """Start ``server`` behind the link (stopped with the link); its base URL through the link."""
        if self.ns is not None:
            server.start(listen_in=self.ns.inside)
            self.stack.callback(server.stop)
            return server.base_url
        server.start()
        self.stack.callback(server.stop)
        return self._relay(server.port)

    def azurite(self) -> tuple[AzuriteServer, str]:
        """An Azurite of its own behind the link, and its blob endpoint through the link."""
        executable = find_azurite()
        if executable is None:
            pytest.skip("Azurite is not installed (run `make test`, which installs it into tests/azurite/ with npm)")
        if self.ns is not None:
            server = start_azurite(executable, wrap_argv=self.ns.exec_argv, reach_in=self.ns.inside)
            self.stack.callback(server.stop)
            return server, server.endpoint
        server = start_azurite(executable)
        self.stack.callback(server.stop)
        return server, f"{self._relay(server.port)}/{server.account_name}"

    def _relay(self, port: int) -> str:
        return self.stack.enter_context(ThrottlingRelay(port, RATE)).url

    def floor(self, size: int) -> float:
        return FLOOR * size / self.bytes_per_second


@pytest.fixture(scope="module")
def link() -> Iterator[Link]:
    """A 6 Mbit/s link for this module's tests: a namespace with tbf on its loopback where the machine allows it,
    else the userspace relay. Everything started behind it is stopped before the namespace is deleted."""
    reason = "RUSTY_CAT_THROTTLE=relay" if os.environ.get("RUSTY_CAT_THROTTLE") == "relay" else netns_unavailable()
    with contextlib.ExitStack() as outer:
        if reason is None:
            ns = outer.enter_context(ThrottledNamespace(RATE, mtu=1500))
            found = Link(f"network namespace {ns.name}: tc tbf {RATE} on lo, MTU 1500", parse_rate(RATE), ns)
        else:
            found = Link(f"userspace ThrottlingRelay {RATE} (no namespace: {reason})", parse_rate(RATE), None)
        with found.stack:
            yield found


@pytest.fixture
def said(link: Link, record_property: pytest.RecordProperty) -> Link:
    """The link, after saying which one runs (in the JUnit properties, and in the -rA summary's output)."""
    record_property("throttled_link", link.kind)
    print(f"throttled link: {link.kind}")
    return link


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("throttled") / "payload.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


def cli(link: Link, home: Path, *args: str, **extra_env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """rusty-cat-cli across the link (per-user folders and a file keyring under ``home``), and its wall time."""
    started = time.monotonic()
    done = subprocess.run(link.argv([sys.executable, "-m", "app.cli", *args]), cwd=home, capture_output=True,
                          text=True, env=env_for(home, **extra_env), timeout=CLI_TIMEOUT, check=False)
    return done, time.monotonic() - started


def assert_throttled(link: Link, elapsed: float, size: int) -> None:
    assert elapsed >= link.floor(size), (
        f"{size} bytes took {elapsed:.1f} s, less than {FLOOR:.0%} of {size / link.bytes_per_second:.1f} s at "
        f"{RATE}: the link was not throttled ({link.kind})")


def test_oss_upload_of_8mib_parts_completes(said: Link, payload: Path, tmp_path: Path) -> None:
    """The field failure itself: an 8 MiB OSS part over 6 Mbit/s goes through, first time, with no retry."""
    oss = FakeOssServer()
    endpoint = said.serve(oss)
    creds = oss.credentials
    added, _ = cli(said, tmp_path, "accounts", "add", "oss", "--provider", "aliyun-oss", "--endpoint", endpoint,
                   "--region", oss.region, "--access-key-id", creds.access_key_id, "--path-style",
                   "--secret-env", "OSS_SECRET", OSS_SECRET=creds.access_key_secret)
    assert added.returncode == 0, added.stderr
    up, elapsed = cli(said, tmp_path, "upload", str(payload), f"oss://oss/{DEFAULT_BUCKET}/slow/payload.bin",
                      "--chunk-size", PART)
    assert up.returncode == 0, f"exit {up.returncode} after {elapsed:.1f} s over {said.kind}:\n{up.stderr}"
    stored = oss.get_object(DEFAULT_BUCKET, "slow/payload.bin")
    assert stored is not None and sha(bytes(stored.data)) == sha(payload.read_bytes())
    # Two parts, each sent once: a part that timed out and was retried would show as a third UploadPart.
    assert oss.count_op("UploadPart") == 2 == oss.count_op("UploadPart", status=200), oss.ops()
    assert_throttled(said, elapsed, SIZE)


def test_azure_upload_of_8mib_blocks_completes(said: Link, payload: Path, tmp_path: Path) -> None:
    """The same 8 MiB part as an Azure block, to Azurite behind the slow link."""
    azurite, endpoint = said.azurite()
    with said.reach():
        container = azurite.create_container()
    added, _ = cli(said, tmp_path, "accounts", "add", "az", "--provider", "azure-blob", "--endpoint", endpoint,
                   "--account-name", azurite.account_name, "--secret-env", "AZ_KEY", AZ_KEY=azurite.account_key)
    assert added.returncode == 0, added.stderr
    up, elapsed = cli(said, tmp_path, "upload", str(payload), f"azure://az/{container}/slow/payload.bin",
                      "--chunk-size", PART)
    assert up.returncode == 0, f"exit {up.returncode} after {elapsed:.1f} s over {said.kind}:\n{up.stderr}"
    with said.reach():
        assert sha(azurite.read_blob(container, "slow/payload.bin")) == sha(payload.read_bytes())
        blob = azurite.service_client().get_blob_client(container, "slow/payload.bin")
        committed, _ = blob.get_block_list("committed")
    assert sorted(b.size for b in committed) == [1 * MIB, 8 * MIB]
    assert_throttled(said, elapsed, SIZE)


def test_default_protocol_upload_of_8mib_parts_completes(said: Link, payload: Path, tmp_path: Path) -> None:
    """The default chunk protocol (multipart POSTs to /upload) with an 8 MiB part over the slow link."""
    srv = TestHttpServer()
    base = said.serve(srv)
    up, elapsed = cli(said, tmp_path, "upload", str(payload), f"{base}/upload", "--chunk-size", PART)
    assert up.returncode == 0, f"exit {up.returncode} after {elapsed:.1f} s over {said.kind}:\n{up.stderr}"
    data = payload.read_bytes()
    state = srv.uploads[hashlib.md5(data).hexdigest()]
    assert state.completed and state.md5_ok and sha(state.data) == sha(data)
    assert srv.upload_inspector().chunk_calls == 2, "a part was sent more than once"
    assert srv.errors == []
    assert_throttled(said, elapsed, SIZE)


def test_download_of_8mib_ranges_completes(said: Link, payload: Path, tmp_path: Path) -> None:
    """And back: a download in 8 MiB ranges over the slow link, every byte sent once."""
    srv = TestHttpServer()
    base = said.serve(srv)
    data = payload.read_bytes()
    srv.add_file("/slow/payload.bin", data)
    out = tmp_path / "back.bin"
    down, elapsed = cli(said, tmp_path, "download", f"{base}/slow/payload.bin", "-o", str(out), "--chunk-size", PART)
    assert down.returncode == 0, f"exit {down.returncode} after {elapsed:.1f} s over {said.kind}:\n{down.stderr}"
    assert sha(out.read_bytes()) == sha(data)
    assert srv.bytes_sent_total == len(data), "a range was sent more than once (a retry after a timeout?)"
    assert srv.errors == []
    assert_throttled(said, elapsed, SIZE)
