"""rusty-cat-cli's network options, for real: ``--proxy``, ``--noproxy`` and ``--cacert`` in a subprocess against the
test HTTP server, a real proxy (tinyproxy: its log proves which requests it carried) and a TLS server whose
certificate a private CA (trustme) issued; what a run imports (start-up); and that a proxy password given on the
command line appears in no output and in no file the run wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import DEFAULT_CHUNK, DEFAULT_CHUNK_BYTES, DEFAULT_RETRIES, build_parser
from tests.support.engine_helpers import KIB, blob, env_for
from tests.support.http_server import TestHttpServer
from tests.support.tinyproxy import Tinyproxy
from tests.support.tls import PrivateCA, tls_test_server

pytestmark = pytest.mark.timeout(120)
RUN_TIMEOUT = 60
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                   "NO_PROXY", "REQUEST_METHOD")
PASSWORD = "Cl1-pr0xy-pw"


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def proxy() -> Iterator[Tinyproxy]:
    with Tinyproxy() as tp:
        yield tp


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture(scope="module")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return PrivateCA(tmp_path_factory.mktemp("cli-tls"), "cli")


@pytest.fixture
def tls_srv(tls_ca: PrivateCA) -> Iterator[TestHttpServer]:
    with tls_test_server(tls_ca) as server:
        yield server


def run(tmp_path: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI with private folders and a file keyring, and no proxy variables but those given."""
    base = {k: v for k, v in env_for(tmp_path).items() if k not in PROXY_VARIABLES}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd, env={**base, **env},
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)


def test_the_options_are_offered_where_data_moves_or_a_server_is_asked() -> None:
    parser = build_parser()
    for argv in (["download", "URL"], ["upload", "FILE", "URL"], ["accounts", "test", "NAME"]):
        args = parser.parse_args([*argv, "--proxy", "http://p:1", "--noproxy", "*", "--cacert", "ca.pem"])
        assert (args.proxy, args.noproxy, args.cacert) == ("http://p:1", "*", "ca.pem")


def test_defaults_written_out_for_start_up_match_their_sources() -> None:
    from app.engine.api import DEFAULT_MAX_CHUNK_RETRIES
    from app.sizes import parse_size

    assert DEFAULT_RETRIES == DEFAULT_MAX_CHUNK_RETRIES
    assert parse_size(DEFAULT_CHUNK) == DEFAULT_CHUNK_BYTES


def test_download_and_upload_go_through_the_proxy_given(tmp_path: Path, cwd: Path, srv: TestHttpServer,
                                                      proxy: Tinyproxy) -> None:
    data = blob(200 * KIB)
    srv.add_file("/d/file.bin", data)
    (cwd / "up.bin").write_bytes(data)
    down = run(tmp_path, cwd, "download", srv.url("/d/file.bin"), "-o", "file.bin", "--proxy", proxy.url)
    assert down.returncode == 0, down.stderr
    assert (cwd / "file.bin").read_bytes() == data
    assert proxy.saw("GET", srv.url("/d/file.bin")), proxy.output()
    up = run(tmp_path, cwd, "upload", "up.bin", srv.url("/upload"), "--proxy", proxy.url.removeprefix("http://"))
    assert up.returncode == 0, up.stderr
    assert proxy.saw("POST", srv.url("/upload")) or proxy.saw("PUT", srv.url("/upload")), proxy.requests()


def test_the_options_override_the_environment(tmp_path: Path, cwd: Path, srv: TestHttpServer,
                                              proxy: Tinyproxy) -> None:
    srv.add_file("/e.bin", blob(10 * KIB))
    url = srv.url("/e.bin")
    by_env = run(tmp_path, cwd, "download", url, "-o", "a.bin", http_proxy=proxy.url)
    assert by_env.returncode == 0, by_env.stderr
    assert proxy.saw("GET", url)  # the environment is read as curl reads it
    for i, options in enumerate((["--noproxy", "127.0.0.1"], ["--noproxy", "*"], ["--proxy", ""])):
        proxy.clear_log()
        direct = run(tmp_path, cwd, "download", url, "-o", f"b{i}.bin", *options, http_proxy=proxy.url)
        assert direct.returncode == 0, direct.stderr
        assert proxy.requests() == [], f"{options} still went through the proxy"
    proxy.clear_log()
    no_proxy_env = run(tmp_path, cwd, "download", url, "-o", "c.bin", "--proxy", proxy.url, no_proxy="127.0.0.1")
    assert no_proxy_env.returncode == 0 and proxy.requests() == []  # as curl --proxy: the env's no_proxy holds


def test_proxy_credentials_from_the_command_line_work_and_are_never_shown(tmp_path: Path, cwd: Path,
                                                                         srv: TestHttpServer) -> None:
    data = blob(64 * KIB)
    srv.add_file("/s.bin", data)
    outputs: list[str] = []
    with Tinyproxy(basic_auth=("carol", PASSWORD)) as tp:
        with_auth = tp.url_with("carol", PASSWORD)
        ok = run(tmp_path, cwd, "download", srv.url("/s.bin"), "-o", "s.bin", "--proxy", with_auth, "--json")
        assert ok.returncode == 0, ok.stderr
        assert (cwd / "s.bin").read_bytes() == data and tp.saw("GET", srv.url("/s.bin"))
        wrong = run(tmp_path, cwd, "download", srv.url("/s.bin"), "-o", "t.bin", "--retries", "0",
                    "--proxy", tp.url_with("carol", "x" + PASSWORD))
        assert wrong.returncode == 1
        missing = run(tmp_path, cwd, "download", srv.url("/s.bin"), "-o", "u.bin", "--retries", "0", "--proxy", tp.url)
        assert missing.returncode == 1 and "proxy" in missing.stderr.lower(), missing.stderr
        bad = run(tmp_path, cwd, "download", srv.url("/s.bin"), "-o", "v.bin",
                  "--proxy", f"http://carol:{PASSWORD}@127.0.0.1:notaport")
        assert bad.returncode == 2 and "--proxy" in bad.stderr and "REDACTED" in bad.stderr
        outputs += [p.stdout + p.stderr for p in (ok, wrong, missing, bad)]
    for text in outputs:
        assert PASSWORD not in text, text
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("history.sqlite3") for p in written)  # the scan sees the history
    leaks = [str(p) for p in written if PASSWORD.encode() in p.read_bytes()]
    assert leaks == []  # not in the history, the keyring file, a checkpoint or a lock


@pytest.mark.parametrize(("options", "fragment"), [
    (["--proxy", f"ftp://dave:{PASSWORD}@proxy:21"], "--proxy: unsupported proxy scheme"),
    (["--proxy", f"https://dave:{PASSWORD}@proxy:3128"], "--proxy: an https:// proxy"),
    (["--proxy", "http://:3128"], "--proxy: the proxy address names no host"),
    (["--noproxy", "a.example\nb.example"], "--noproxy: the bypass list must be one line"),
    (["--cacert", "missing.pem"], "--cacert: CA bundle not found"),
    (["--cacert", "."], "--cacert: "),
    (["--cacert", "notes.txt"], "--cacert: "),
])
def test_bad_values_exit_2_before_any_request(tmp_path: Path, cwd: Path, srv: TestHttpServer, options: list[str],
                                              fragment: str) -> None:
    (cwd / "notes.txt").write_text("not a certificate")
    result = run(tmp_path, cwd, "download", srv.url("/x.bin"), *options)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and PASSWORD not in result.stderr
    assert srv.requests == []
    accounts = run(tmp_path, cwd, "accounts", "test", "nobody", *options)
    assert accounts.returncode == 2 and fragment in accounts.stderr and PASSWORD not in accounts.stderr


def test_cacert_makes_a_private_ca_trusted_also_through_the_proxy(tmp_path: Path, cwd: Path,
                                                                 tls_srv: TestHttpServer, tls_ca: PrivateCA,
                                                                 proxy: Tinyproxy) -> None:
    data = blob(30 * KIB)
    tls_srv.add_file("/t.bin", data)
    url = tls_srv.url("/t.bin")
    untrusted = run(tmp_path, cwd, "download", url, "-o", "t.bin")
    assert untrusted.returncode == 1
    assert "certificate" in untrusted.stderr.lower() and "CERTIFICATE_UNTRUSTED" in untrusted.stderr, untrusted.stderr
    assert tls_srv.count("GET") == 0 and not (cwd / "t.bin").exists()
    trusted = run(tmp_path, cwd, "download", url, "-o", "t.bin", "--cacert", str(tls_ca.pem), "--proxy", proxy.url)
    assert trusted.returncode == 0, trusted.stderr
    assert (cwd / "t.bin").read_bytes() == data
    assert proxy.saw("CONNECT", url.split("://", 1)[1].split("/", 1)[0])


def test_accounts_test_takes_the_network_options(tmp_path: Path, cwd: Path, srv: TestHttpServer,
                                                 proxy: Tinyproxy) -> None:
    srv.add_file("/", b"index")
    added = run(tmp_path, cwd, "accounts", "add", "web", "--provider", "http", "--endpoint", srv.url("/"))
    assert added.returncode == 0, added.stderr
    tested = run(tmp_path, cwd, "accounts", "test", "web", "--proxy", proxy.url)
    assert tested.returncode == 0 and "Connected" in tested.stdout, tested.stderr
    assert proxy.saw("HEAD", srv.url("/"))


# ---------------------------------------------------------------------------------------------- start-up
_IMPORTED = ("import json, sys; from app.cli import main; rc = main(sys.argv[1:]); "
             "print(json.dumps([rc, sorted(sys.modules)]), file=sys.stderr)")
_NEVER_FOR_A_PLAIN_DOWNLOAD = ("keyring", "app.providers", "PySide6", "qasync", "app.ui", "certifi", "httpx",
                               "xml.etree")


def _modules(cwd: Path, tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    base = {k: v for k, v in env_for(tmp_path).items() if k not in PROXY_VARIABLES}
    child = subprocess.run([sys.executable, "-c", _IMPORTED, *args], cwd=cwd, env=base, capture_output=True,
                           text=True, timeout=RUN_TIMEOUT)
    rc, modules = json.loads(child.stderr.strip().splitlines()[-1])
    return rc, set(modules)


def test_version_and_help_import_no_engine_and_no_event_loop(tmp_path: Path, cwd: Path) -> None:
    rc, modules = _modules(cwd, tmp_path, "--version")
    assert rc == 0
    heavy = {m for m in modules if m.split(".")[0] in ("asyncio", "httpx", "httpcore", "keyring", "sqlite3", "ssl")
             or m.startswith(("app.engine", "app.manager.manager", "app.manager.accounts"))}
    assert heavy == set()


def test_a_plain_download_loads_no_keyring_plugin_or_certificates(tmp_path: Path, cwd: Path,
                                                                 srv: TestHttpServer) -> None:
    srv.add_file("/p.bin", blob(1000))
    rc, modules = _modules(cwd, tmp_path, "download", srv.url("/p.bin"), "-o", "p.bin")
    assert rc == 0
    loaded = {m for m in modules if m.startswith(_NEVER_FOR_A_PLAIN_DOWNLOAD)}
    assert loaded == set()
    # The other side: a header (a secret) needs the keyring, and the check sees it load.
    rc, modules = _modules(cwd, tmp_path, "download", srv.url("/p.bin"), "-o", "q.bin", "-H", "X-Token: t")
    assert rc == 0 and "keyring" in modules


def test_cacert_on_an_http_download_is_checked_but_costs_no_tls_context(tmp_path: Path, cwd: Path,
                                                                       srv: TestHttpServer, tls_ca: PrivateCA) -> None:
    """The bundle is checked at once (a wrong file is exit 2), yet a plain-http run builds no TLS context."""
    srv.add_file("/p.bin", blob(1000))
    rc, modules = _modules(cwd, tmp_path, "download", srv.url("/p.bin"), "-o", "p.bin", "--cacert", str(tls_ca.pem))
    assert rc == 0 and os.path.getsize(cwd / "p.bin") == 1000
    assert "certifi" not in modules
