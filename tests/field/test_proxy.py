"""An office proxy, as users have it: a real tinyproxy carries our downloads and uploads, bodies included.

The field report (issue 11): with ``http_proxy`` set, tinyproxy saw curl's requests and none of ours. Here the
proxy's own log is the witness: every request the test server answered must appear in it (so no body went
around it), and none may when ``no_proxy`` names the server. Proxies come from the environment (a CLI subprocess,
as a user's shell sets them, in either case) and from the setting (``MeowConfig.proxy``), which overrides the
environment. HTTPS goes through a CONNECT tunnel to a TLS server whose certificate a private CA signed. A proxy's
password is a secret: a refusal fails at once, as a proxy error, without it in the words.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.api import InnerErrorCode, TransferStatus
from tests.field.transfers import cli, completed, download_task, run_to_end, upload_task, uploaded
from tests.support.engine_helpers import MIB, meow, sha
from tests.support.http_server import TestHttpServer
from tests.support.tinyproxy import Tinyproxy
from tests.support.tls import PrivateCA

pytestmark = pytest.mark.timeout(120)

DATA = os.urandom(3 * MIB + 5)
USER, PASSWORD = "rusty", "Cat-s3cret-7f3a"
WRONG = "not-the-password-91c2"


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        server.add_file("/files/data.bin", DATA)
        yield server
    assert server.errors == []


@pytest.fixture
def tls_srv(tls_server: TestHttpServer) -> TestHttpServer:
    tls_server.add_file("/files/data.bin", DATA)
    return tls_server


@pytest.fixture
def proxy() -> Iterator[Tinyproxy]:
    with Tinyproxy() as tp:
        yield tp


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "upload.bin"
    path.parent.mkdir()
    path.write_bytes(DATA)
    return path


def dead_proxy_url() -> str:
    """A proxy URL nobody listens on: a request sent there fails, so a test sees that a setting overrode it."""
    return "http://127.0.0.1:9"  # the discard port; nothing listens on it here


def all_through(proxy: Tinyproxy, srv: TestHttpServer) -> None:
    """Every request ``srv`` answered came through the proxy: its log holds as many absolute-form requests for
    ``srv`` as ``srv`` saw requests (tinyproxy carries one request per client connection, and logs each)."""
    answered = srv.requests
    carried = [r for r in proxy.requests() if r.target.startswith(srv.base_url + "/")]
    assert answered, "the server saw no request at all"
    assert len(carried) == len(answered), (
        f"the server answered {[(r.method, r.path) for r in answered]} but the proxy carried "
        f"{[(r.method, r.target) for r in carried]}")
    assert {r.method for r in carried} == {r.method for r in answered}


# --------------------------------------------------------------------------------------------- from the environment


def test_environment_proxy_carries_cli_download_and_upload(proxy: Tinyproxy, srv: TestHttpServer,
                                                           src: Path, tmp_path: Path) -> None:
    """``http_proxy`` (lower case) in the CLI's environment: the download's probe and ranged GETs and every upload
    POST go through tinyproxy, and both transfers complete."""
    down = cli(tmp_path, "download", srv.url("/files/data.bin"), "-o", "back.bin", http_proxy=proxy.url)
    assert down.returncode == 0, down.stderr
    assert sha((tmp_path / "back.bin").read_bytes()) == sha(DATA)
    up = cli(tmp_path, "upload", str(src), srv.url("/upload"), "--chunk-size", "1MiB", http_proxy=proxy.url)
    assert up.returncode == 0, up.stderr
    assert sha(uploaded(srv, DATA)) == sha(DATA)
    assert proxy.saw("GET", srv.url("/files/data.bin")) and proxy.saw("POST", srv.url("/upload"))
    all_through(proxy, srv)


def test_environment_https_proxy_tunnels_cli_download(proxy: Tinyproxy, tls_srv: TestHttpServer,
                                                      private_ca: PrivateCA, tmp_path: Path) -> None:
    """``HTTPS_PROXY`` (upper case): an https download goes through a CONNECT tunnel (never as an absolute-form
    request, which would hand the proxy the plain text), and TLS is end to end: the server shook hands itself.
    The CLI trusts the private CA through OpenSSL's SSL_CERT_FILE, as a system store would."""
    down = cli(tmp_path, "download", tls_srv.url("/files/data.bin"), "-o", "back.bin",
               HTTPS_PROXY=proxy.url, SSL_CERT_FILE=str(private_ca.pem))
    assert down.returncode == 0, down.stderr
    assert sha((tmp_path / "back.bin").read_bytes()) == sha(DATA)
    tunnels = proxy.saw("CONNECT", f"127.0.0.1:{tls_srv.port}")
    assert tunnels and len(tunnels) == len(proxy.requests()), proxy.requests()
    assert tls_srv.tls_handshakes >= 1 and tls_srv.tls_failures == 0


def test_environment_no_proxy_is_respected_by_the_cli(proxy: Tinyproxy, srv: TestHttpServer, src: Path,
                                                      tmp_path: Path) -> None:
    """``NO_PROXY`` (upper case) naming the server: the same transfers go direct, complete, and the proxy's log
    stays empty; without it the proxy carries them (so the variables were read at all)."""
    env = {"http_proxy": proxy.url, "NO_PROXY": "example.invalid, 127.0.0.1"}
    down = cli(tmp_path, "download", srv.url("/files/data.bin"), "-o", "back.bin", **env)
    assert down.returncode == 0, down.stderr
    assert sha((tmp_path / "back.bin").read_bytes()) == sha(DATA)
    up = cli(tmp_path, "upload", str(src), srv.url("/upload"), "--chunk-size", "1MiB", **env)
    assert up.returncode == 0, up.stderr
    assert sha(uploaded(srv, DATA)) == sha(DATA)
    assert proxy.requests() == []
    again = cli(tmp_path, "download", srv.url("/files/data.bin"), "-o", "again.bin", http_proxy=proxy.url)
    assert again.returncode == 0, again.stderr
    assert proxy.saw("GET", srv.url("/files/data.bin"))


# --------------------------------------------------------------------------------------------------- from the setting


@pytest.mark.asyncio
async def test_proxy_setting_carries_download_and_upload(proxy: Tinyproxy, srv: TestHttpServer, src: Path,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``MeowConfig(proxy=URL)``: downloads and uploads go through that proxy, overriding an environment whose
    proxy would fail every request."""
    monkeypatch.setenv("http_proxy", dead_proxy_url())
    async with meow(proxy=proxy.url) as client:
        completed(await run_to_end(client, download_task(srv.url("/files/data.bin"), tmp_path / "back.bin")))
        completed(await run_to_end(client, upload_task(src, srv.url("/upload"))))
    assert sha((tmp_path / "back.bin").read_bytes()) == sha(DATA)
    assert sha(uploaded(srv, DATA)) == sha(DATA)
    assert proxy.saw("GET", srv.url("/files/data.bin")) and proxy.saw("POST", srv.url("/upload"))
    all_through(proxy, srv)


@pytest.mark.asyncio
async def test_proxy_setting_none_goes_direct(proxy: Tinyproxy, srv: TestHttpServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``MeowConfig(proxy="none")`` ignores the environment's proxy."""
    monkeypatch.setenv("http_proxy", proxy.url)
    async with meow(proxy="none") as client:
        completed(await run_to_end(client, download_task(srv.url("/files/data.bin"), tmp_path / "back.bin")))
    assert sha((tmp_path / "back.bin").read_bytes()) == sha(DATA)
    assert proxy.requests() == []


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["setting", "environment"])
async def test_no_proxy_is_respected_with_the_proxy_setting(where: str, proxy: Tinyproxy, srv: TestHttpServer,
                                                            src: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The bypass list from ``MeowConfig.no_proxy``, or (without one) from the environment's ``no_proxy``, as
    ``curl --proxy`` does: the transfers go direct and complete; the same client config without it uses the
    proxy."""
    bypass = "localhost,127.0.0.0/8"
    if where == "environment":
        monkeypatch.setenv("no_proxy", bypass)
        options: dict[str, object] = {"proxy": proxy.url}
    else:
        options = {"proxy": proxy.url, "no_proxy": bypass}
    async with meow(**options) as client:
        completed(await run_to_end(client, download_task(srv.url("/files/data.bin"), tmp_path / "back.bin")))
        completed(await run_to_end(client, upload_task(src, srv.url("/upload"))))
    assert sha((tmp_path / "back.bin").read_bytes()) == sha(DATA)
    assert sha(uploaded(srv, DATA)) == sha(DATA)
    assert proxy.requests() == []
    monkeypatch.delenv("no_proxy", raising=False)
    async with meow(proxy=proxy.url) as client:
        completed(await run_to_end(client, download_task(srv.url("/files/data.bin"), tmp_path / "again.bin")))
    assert proxy.saw("GET", srv.url("/files/data.bin"))


@pytest.mark.asyncio
async def test_https_through_connect_with_ca_bundle(proxy: Tinyproxy, tls_srv: TestHttpServer, ca_bundle: str,
                                                    src: Path, tmp_path: Path) -> None:
    """HTTPS through the proxy: CONNECT tunnels to the trustme-certified server, trusted through ``ca_bundle``;
    the download and the upload complete, and the proxy never sees an https request in the clear."""
    async with meow(proxy=proxy.url, ca_bundle=ca_bundle) as client:
        completed(await run_to_end(client, download_task(tls_srv.url("/files/data.bin"), tmp_path / "back.bin")))
        completed(await run_to_end(client, upload_task(src, tls_srv.url("/upload"))))
    assert sha((tmp_path / "back.bin").read_bytes()) == sha(DATA)
    assert sha(uploaded(tls_srv, DATA)) == sha(DATA)
    carried = proxy.requests()
    assert carried and all(r.method == "CONNECT" and r.target == f"127.0.0.1:{tls_srv.port}" for r in carried), \
        carried
    assert tls_srv.tls_handshakes >= 1 and tls_srv.tls_failures == 0


# ----------------------------------------------------------------------------------------------------- credentials


@pytest.fixture
def auth_proxy() -> Iterator[Tinyproxy]:
    with Tinyproxy(basic_auth=(USER, PASSWORD)) as tp:
        yield tp


@pytest.mark.asyncio
async def test_proxy_with_the_right_credentials_carries_transfers(auth_proxy: Tinyproxy, srv: TestHttpServer,
                                                                  tls_srv: TestHttpServer, ca_bundle: str,
                                                                  tmp_path: Path) -> None:
    """BasicAuth: with ``user:password@`` in the proxy URL, http (absolute-form) and https (CONNECT) downloads go
    through and complete."""
    async with meow(proxy=auth_proxy.url_with(USER, PASSWORD), ca_bundle=ca_bundle) as client:
        completed(await run_to_end(client, download_task(srv.url("/files/data.bin"), tmp_path / "plain.bin")))
        completed(await run_to_end(client, download_task(tls_srv.url("/files/data.bin"), tmp_path / "tls.bin")))
    assert sha((tmp_path / "plain.bin").read_bytes()) == sha(DATA)
    assert sha((tmp_path / "tls.bin").read_bytes()) == sha(DATA)
    assert auth_proxy.saw("GET", srv.url("/files/data.bin"))
    assert auth_proxy.saw("CONNECT", f"127.0.0.1:{tls_srv.port}")


@pytest.mark.asyncio
@pytest.mark.parametrize("credentials", ["wrong", "missing"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_proxy_refusing_credentials_fails_at_once(scheme: str, credentials: str, auth_proxy: Tinyproxy,
                                                        srv: TestHttpServer, tls_srv: TestHttpServer, ca_bundle: str,
                                                        tmp_path: Path) -> None:
    """A proxy refusing our credentials fails the transfer at once -- one request, no retries even with 5 allowed
    and a 10 s back-off -- as PROXY_ERROR, and a wrong password appears in no message. tinyproxy answers a wrong
    password with 401 (and WWW-Authenticate), missing credentials with 407, to an absolute-form request (http) and
    to a CONNECT (https) alike."""
    target = (srv if scheme == "http" else tls_srv).url("/files/data.bin")
    proxy_url = auth_proxy.url_with(USER, WRONG) if credentials == "wrong" else auth_proxy.url
    started = time.monotonic()
    async with meow(proxy=proxy_url, ca_bundle=ca_bundle, retry_base_delay=10.0, retry_max_delay=10.0) as client:
        final = await run_to_end(client, download_task(target, tmp_path / "never.bin", retries=5))
    elapsed = time.monotonic() - started
    assert final.status is TransferStatus.FAILED and final.error is not None, final
    if scheme == "http" and credentials == "wrong":
        # tinyproxy answers a wrong password on a proxied request with a plain 401, which an origin server could
        # send as well: the error keeps the 401 and says which proxy it came through.
        assert final.error.status == 401 and "through the proxy" in final.error.msg, final.error
    else:
        assert final.error.code == InnerErrorCode.PROXY_ERROR, final.error
    assert WRONG not in final.error.msg and WRONG not in repr(final.error) and WRONG not in repr(final)
    assert len(auth_proxy.requests()) == 1, auth_proxy.requests()
    assert elapsed < 10.0, f"failed after {elapsed:.1f} s: at least one back-off was waited"
    assert srv.requests == [] and tls_srv.requests == []
    assert not (tmp_path / "never.bin").exists()


def test_cli_download_through_a_proxy_needing_credentials(auth_proxy: Tinyproxy, srv: TestHttpServer,
                                                          tmp_path: Path) -> None:
    """The CLI with ``http_proxy=http://user:password@host:port``: the download completes through the proxy, and the
    password is printed nowhere; with a wrong one it fails (exit 1) and that password is printed nowhere either."""
    down = cli(tmp_path, "download", srv.url("/files/data.bin"), "-o", "back.bin",
               http_proxy=auth_proxy.url_with(USER, PASSWORD))
    assert down.returncode == 0, down.stderr
    assert sha((tmp_path / "back.bin").read_bytes()) == sha(DATA)
    assert auth_proxy.saw("GET", srv.url("/files/data.bin"))
    assert PASSWORD not in down.stdout + down.stderr
    refused = cli(tmp_path, "download", srv.url("/files/data.bin"), "-o", "never.bin", "--retries", "5",
                  http_proxy=auth_proxy.url_with(USER, WRONG))
    assert refused.returncode == 1, refused.stderr
    assert WRONG not in refused.stdout + refused.stderr

