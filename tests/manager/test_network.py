"""Network settings in the manager: NetworkSettings' rules, and every request the manager makes (transfers, the
file-name probe, connection tests, the presign service) through a real proxy (tinyproxy, whose log proves which
requests it carried) and against real TLS servers (a trustme CA), with settings changed while a transfer runs.

The proxy password is given once and must then live in the keyring only: the tests look for it in the history
files, the log, the job errors and the reprs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio
import trustme
from keyring.backends import fail

from app.manager.accounts import Account, AccountError, Auth, PresignServiceSource, Provider
from app.manager.jobs import Job, JobOptions, JobStatus
from app.manager.manager import KEEP, ManagerError, TransferManager
from app.manager.network import (
    PROXY_PASSWORD_KEY,
    HttpClients,
    NetworkSettings,
    NetworkSettingsError,
    ProxyMode,
    check_ca_bundle_file,
    split_proxy_url,
)
from app.manager.secrets import SecretStore
from tests.support.engine_helpers import KIB, MIB, blob
from tests.support.http_server import Fault, TestHttpServer
from tests.support.memory_keyring import MemoryKeyring
from tests.support.tinyproxy import Tinyproxy

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("memory_keyring")]  # keyring: conftest.py

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                   "NO_PROXY", "REQUEST_METHOD")
PASSWORD = "pr0xy-Pa55:w/rd@%"  # characters a URL must quote: proves the quoting as well as the secrecy
USER = "alice"


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own proxy variables would decide where "system" goes; each test sets what it needs."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy() -> Iterator[Tinyproxy]:
    with Tinyproxy() as tp:
        yield tp


@pytest.fixture
def auth_proxy() -> Iterator[Tinyproxy]:
    with Tinyproxy(basic_auth=(USER, "pr0xyPa55")) as tp:
        yield tp


@pytest_asyncio.fixture
async def manager(tmp_path: Path) -> AsyncIterator[TransferManager]:
    m = TransferManager(tmp_path / "data")
    await m.open()
    yield m
    await m.close()


class Statuses:
    """Every status each job was reported in (a ManagerListener)."""

    def __init__(self) -> None:
        self.seen: dict[str, list[JobStatus]] = {}

    def _note(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            history = self.seen.setdefault(job.id, [])
            if not history or history[-1] is not job.status:
                history.append(job.status)

    jobs_added = jobs_changed = _note

    def jobs_removed(self, job_ids: Sequence[str]) -> None:
        pass

    def job_finished(self, job: Job) -> None:
        self._note([job])


async def finished(job: Job, timeout: float = 30) -> Job:
    for _ in range(int(timeout / 0.02)):
        if job.status.is_finished:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"{job.name} still {job.status.value} after {timeout} s")


def manual(proxy: Tinyproxy, user: str = "", **more: str | None) -> NetworkSettings:
    return NetworkSettings(ProxyMode.MANUAL, proxy.url, user, **more)  # type: ignore[arg-type]


def pem(tmp_path: Path, name: str = "ca.pem") -> Path:
    path = tmp_path / name
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


# ---------------------------------------------------------------------------------------------- NetworkSettings
@pytest.mark.parametrize(("settings", "fragment"), [
    (NetworkSettings(ProxyMode.MANUAL), "enter the proxy's address"),
    (NetworkSettings(ProxyMode.MANUAL, "http://bob:secret@proxy:3128"), "in their own fields"),
    (NetworkSettings(ProxyMode.MANUAL, "https://proxy:3128"), "https:// proxy"),
    (NetworkSettings(ProxyMode.MANUAL, "ftp://proxy:21"), "unsupported proxy scheme"),
    (NetworkSettings(ProxyMode.MANUAL, "http://proxy:99999"), "not a proxy address"),
    (NetworkSettings(ProxyMode.MANUAL, "http://proxy:3128/path"), "without a path"),
    (NetworkSettings(ProxyMode.MANUAL, "http://proxy:3128", "bob:x"), "cannot contain ':'"),
    (NetworkSettings(no_proxy="a.example\nb.example"), "one line"),
])
def test_settings_are_checked_with_a_sentence(settings: NetworkSettings, fragment: str) -> None:
    with pytest.raises(NetworkSettingsError, match=fragment) as caught:
        settings.check()
    assert "secret" not in str(caught.value)


def test_unknown_mode_and_wrong_types_are_refused() -> None:
    with pytest.raises(NetworkSettingsError, match="unknown proxy mode"):
        NetworkSettings("sometimes")  # type: ignore[arg-type]
    with pytest.raises(NetworkSettingsError, match="must be text"):
        NetworkSettings(ProxyMode.MANUAL, 3128)  # type: ignore[arg-type]


def test_engine_options_carry_the_password_quoted_and_nothing_else_does() -> None:
    settings = NetworkSettings(ProxyMode.MANUAL, "proxy.example:3128", USER, "localhost", None)
    settings.check()
    options = settings.engine_options(PASSWORD)
    assert options == {"proxy": "http://alice:pr0xy-Pa55%3Aw%2Frd%40%25@proxy.example:3128",
                       "no_proxy": "localhost", "ca_bundle": None}
    assert settings.engine_options(None)["proxy"] == "http://alice@proxy.example:3128"
    assert NetworkSettings(ProxyMode.NONE, "http://kept:1").engine_options(PASSWORD)["proxy"] == "none"
    assert NetworkSettings().engine_options(PASSWORD)["proxy"] == "system"
    # What is stored, shown or logged has no password field at all.
    assert settings.as_mapping() == {"proxy_mode": "manual", "proxy_url": "proxy.example:3128", "proxy_user": USER,
                                     "no_proxy": "localhost", "ca_bundle": None}
    assert NetworkSettings.from_mapping(settings.as_mapping()) == settings
    assert "proxy.example:3128 as alice" in settings.describe()


def test_http_clients_repr_redacts_the_password() -> None:
    clients = HttpClients.for_settings(NetworkSettings(ProxyMode.MANUAL, "http://proxy:3128", USER), PASSWORD)
    assert "alice" not in repr(clients) or PASSWORD not in repr(clients)
    assert PASSWORD not in repr(clients) and "pr0xy" not in repr(clients)


@pytest.mark.parametrize(("url", "expected"), [
    ("proxy:3128", ("http://proxy:3128", "", None)),
    ("http://bob@proxy:3128", ("http://proxy:3128", "bob", None)),
    ("socks5h://bob:p%40ss@[::1]:1080", ("socks5h://[::1]:1080", "bob", "p@ss")),
    ("HTTP://bob:@proxy", ("http://proxy", "bob", "")),
])
def test_split_proxy_url(url: str, expected: tuple[str, str, str | None]) -> None:
    assert split_proxy_url(url) == expected


def test_a_bad_proxy_url_is_never_quoted_with_its_password() -> None:
    with pytest.raises(NetworkSettingsError) as caught:
        split_proxy_url("http://bob:hunter2@proxy:notaport")
    assert "hunter2" not in str(caught.value) and "REDACTED@proxy" in str(caught.value)


def test_ca_bundle_file_must_be_a_readable_pem_with_a_certificate(tmp_path: Path) -> None:
    good = pem(tmp_path)
    assert check_ca_bundle_file(str(good)) == str(good)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    cases = {str(tmp_path / "missing.pem"): "not found", str(tmp_path): "is a folder",
             str(tmp_path / "notes.txt"): "holds no PEM certificate", str(tmp_path / "broken.pem"): "not a valid PEM",
             "": "choose a CA bundle"}
    for path, fragment in cases.items():
        with pytest.raises(NetworkSettingsError, match=fragment):
            check_ca_bundle_file(path)


# ---------------------------------------------------------------------------------------------- through a proxy
@pytest.mark.asyncio
async def test_transfers_and_the_name_probe_go_through_the_manual_proxy(
        tmp_path: Path, srv: TestHttpServer, proxy: Tinyproxy) -> None:
    data = blob(300 * KIB)
    srv.add_file("/files/report.bin", data, content_disposition='attachment; filename="named-by-server.bin"')
    m = TransferManager(tmp_path / "data")
    await m.set_network(manual(proxy))  # before open: the engine starts with it
    await m.open()
    try:
        folder = tmp_path / "in"
        folder.mkdir()
        job = await finished(await m.add_download(srv.url("/files/report.bin"), str(folder)))
        assert job.status is JobStatus.COMPLETED, job.error
        assert (folder / "named-by-server.bin").read_bytes() == data  # the probe's answer came back through it
        target = srv.url("/files/report.bin")
        assert proxy.saw("HEAD", target) and proxy.saw("GET", target), proxy.output()
        assert len(proxy.requests()) >= srv.count(), "a request went around the proxy"
    finally:
        await m.close()


@pytest.mark.asyncio
async def test_system_mode_follows_the_environment_and_its_no_proxy(
        tmp_path: Path, srv: TestHttpServer, proxy: Tinyproxy, monkeypatch: pytest.MonkeyPatch) -> None:
    srv.add_file("/a.bin", blob(10 * KIB))
    monkeypatch.setenv("http_proxy", proxy.url)
    m = TransferManager(tmp_path / "data")
    await m.open()
    try:
        job = await finished(await m.add_download(srv.url("/a.bin"), str(tmp_path / "a.bin")))
        assert job.status is JobStatus.COMPLETED and proxy.saw("GET", srv.url("/a.bin"))
        proxy.clear_log()
        await m.set_network(NetworkSettings(no_proxy="127.0.0.1"))  # the bypass list replaces no_proxy
        job = await finished(await m.add_download(srv.url("/a.bin"), str(tmp_path / "b.bin")))
        assert job.status is JobStatus.COMPLETED and proxy.requests() == []
        await m.set_network(NetworkSettings(ProxyMode.NONE))
        job = await finished(await m.add_download(srv.url("/a.bin"), str(tmp_path / "c.bin")))
        assert job.status is JobStatus.COMPLETED and proxy.requests() == []
    finally:
        await m.close()


@pytest.mark.asyncio
async def test_changing_the_proxy_while_transfers_run_moves_them_without_losing_bytes(
        tmp_path: Path, srv: TestHttpServer, proxy: Tinyproxy) -> None:
    size = 3 * MIB
    data, other = blob(size, 1), blob(size, 2)
    srv.add_file("/big.bin", data)
    srv.add_file("/paused.bin", other)
    srv.rate_limit = 1 * MIB  # per connection: slow enough to change the settings mid-way
    statuses = Statuses()
    m = TransferManager(tmp_path / "data")
    await m.open()
    m.add_listener(statuses)
    try:
        small = JobOptions(chunk_size=256 * KIB, connections=2)
        running = await m.add_download(srv.url("/big.bin"), str(tmp_path / "big.bin"), options=small)
        held = await m.add_download(srv.url("/paused.bin"), str(tmp_path / "paused.bin"), options=small)
        for _ in range(1000):
            if running.done_bytes >= size // 2 and held.done_bytes > 0:
                break
            await asyncio.sleep(0.01)
        await m.pause([held.id])
        before = running.done_bytes
        assert size // 2 <= before < size and proxy.requests() == []
        seen_before = len(srv.requests)
        await m.set_network(manual(proxy))
        assert running.status.wants_to_run and held.status is JobStatus.PAUSED
        srv.rate_limit = None
        await finished(running)
        assert running.status is JobStatus.COMPLETED, running.error
        assert (tmp_path / "big.bin").read_bytes() == data
        assert proxy.saw("GET", srv.url("/big.bin")), "the transfer did not move to the proxy"
        after = sum(r.bytes_sent for r in srv.requests[seen_before:] if r.path == "/big.bin" and r.method == "GET")
        # Only what was not yet on disk comes again (at most a chunk per connection was in flight), not the file.
        assert after <= size - before + 4 * 256 * KIB, "the switch downloaded again what was already there"
        assert JobStatus.PAUSED not in statuses.seen[running.id]  # the switch is not the user's pause
        assert held.status is JobStatus.PAUSED and not proxy.saw("GET", srv.url("/paused.bin"))
        await m.resume([held.id])  # the user's pause holds; a resume continues on the new route
        await finished(held)
        assert held.status is JobStatus.COMPLETED and (tmp_path / "paused.bin").read_bytes() == other
        assert proxy.saw("GET", srv.url("/paused.bin"))
    finally:
        await m.close()


@pytest.mark.asyncio
async def test_the_same_settings_again_change_nothing(manager: TransferManager, proxy: Tinyproxy) -> None:
    await manager.set_network(manual(proxy))
    client = manager._client
    await manager.set_network(manual(proxy))
    assert manager._client is client  # no needless pause/resume of every transfer


@pytest.mark.asyncio
async def test_bad_settings_are_refused_and_change_nothing(manager: TransferManager, tmp_path: Path,
                                                           proxy: Tinyproxy) -> None:
    await manager.set_network(manual(proxy))
    for bad, fragment in [(NetworkSettings(ca_bundle=str(tmp_path / "gone.pem")), "not found"),
                          (NetworkSettings(ProxyMode.MANUAL, "ftp://proxy:21"), "unsupported proxy scheme"),
                          (NetworkSettings(ProxyMode.MANUAL), "address")]:
        with pytest.raises(ManagerError, match=fragment):
            await manager.set_network(bad)
        assert manager.network_settings == manual(proxy)


# ---------------------------------------------------------------------------------------------- the password
@pytest.mark.asyncio
async def test_the_proxy_password_lives_in_the_keyring_only(
        tmp_path: Path, srv: TestHttpServer, memory_keyring: MemoryKeyring, caplog: pytest.LogCaptureFixture) -> None:
    password = "pr0xyPa55"
    srv.add_file("/f.bin", blob(64 * KIB))
    caplog.set_level(logging.DEBUG)
    with Tinyproxy(basic_auth=(USER, password)) as tp:
        first = TransferManager(tmp_path / "data")
        await first.set_network(manual(tp, USER), password=password)
        assert memory_keyring.values[("rusty-cat", PROXY_PASSWORD_KEY)] == password
        assert all(thread != "MainThread" for _op, _key, thread in memory_keyring.calls)  # never on the loop
        await first.open()
        try:
            job = await finished(await first.add_download(srv.url("/f.bin"), str(tmp_path / "one.bin")))
            assert job.status is JobStatus.COMPLETED, job.error
            texts = [repr(first), repr(first.http_clients), repr(first.network_settings), repr(first._client)]
        finally:
            await first.close()

        # The next start reads it back from the keyring (KEEP) and the proxy takes it.
        second = TransferManager(tmp_path / "data")
        await second.set_network(manual(tp, USER))
        await second.open()
        try:
            job = await finished(await second.add_download(srv.url("/f.bin"), str(tmp_path / "two.bin")))
            assert job.status is JobStatus.COMPLETED, job.error
            # A wrong password fails the job (tinyproxy answers 401 to wrong credentials), never quoting it.
            await second.set_network(manual(tp, USER), password="wr0ng-" + password)
            bad = await finished(await second.add_download(srv.url("/f.bin"), str(tmp_path / "three.bin")))
            assert bad.status is JobStatus.FAILED
            # No credentials at all: the proxy's 407, and the job says it was the proxy.
            await second.set_network(manual(tp))
            refused = await finished(await second.add_download(srv.url("/f.bin"), str(tmp_path / "four.bin")))
            assert refused.status is JobStatus.FAILED and "proxy" in (refused.error or "").lower(), refused.error
            texts += [bad.error or "", refused.error or "", repr(second)]
        finally:
            await second.close()
        assert len(tp.saw("GET", srv.url("/f.bin"))) == 2 and len(tp.requests()) >= 4  # the refusals too
    assert memory_keyring.values[("rusty-cat", PROXY_PASSWORD_KEY)] == "wr0ng-" + password
    written = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    for secret in (password, "wr0ng-"):
        assert secret.encode() not in written  # history, locks, sessions
        assert all(secret not in text for text in texts), texts
        assert secret not in caplog.text


@pytest.mark.asyncio
async def test_clearing_the_password_deletes_it(manager: TransferManager, memory_keyring: MemoryKeyring,
                                                proxy: Tinyproxy) -> None:
    await manager.set_network(manual(proxy, USER), password="one-time")
    assert ("rusty-cat", PROXY_PASSWORD_KEY) in memory_keyring.values
    await manager.set_network(manual(proxy), password=None)
    assert ("rusty-cat", PROXY_PASSWORD_KEY) not in memory_keyring.values


@pytest.mark.asyncio
async def test_a_run_only_password_never_touches_the_keyring(tmp_path: Path, memory_keyring: MemoryKeyring,
                                                            proxy: Tinyproxy) -> None:
    m = TransferManager(tmp_path / "data")
    await m.set_network(manual(proxy, USER), password="cli-only", remember=False)
    await m.open()
    await m.close()
    assert memory_keyring.calls == []


@pytest.mark.asyncio
async def test_no_usable_keyring_refuses_the_password_and_changes_nothing(tmp_path: Path, proxy: Tinyproxy) -> None:
    m = TransferManager(tmp_path / "data", secrets=SecretStore(fail.Keyring()))
    await m.open()
    try:
        with pytest.raises(ManagerError, match="could not be saved") as caught:
            await m.set_network(manual(proxy, USER), password="nowhere-to-go")
        assert not caught.value.usage and "nowhere-to-go" not in str(caught.value)
        assert m.network_settings == NetworkSettings()
    finally:
        await m.close()


# ---------------------------------------------------------------------------------------------- own requests
@pytest.mark.asyncio
async def test_connection_tests_go_through_the_proxy_and_say_when_it_refuses(
        manager: TransferManager, srv: TestHttpServer, proxy: Tinyproxy, auth_proxy: Tinyproxy) -> None:
    srv.add_file("/", b"index")
    await manager.accounts.add(Account("web", Provider.HTTP, Auth.NONE, srv.url("/")), None)
    await manager.set_network(manual(proxy))
    assert "Connected" in await manager.accounts.test_connection("web")
    assert proxy.saw("HEAD", srv.url("/"))
    await manager.set_network(manual(auth_proxy))  # no credentials: the proxy answers 407 itself
    with pytest.raises(AccountError, match="proxy refused"):
        await manager.accounts.test_connection("web")


@pytest.mark.asyncio
async def test_the_presign_service_is_asked_through_the_proxy(manager: TransferManager, srv: TestHttpServer,
                                                              proxy: Tinyproxy) -> None:
    await manager.set_network(manual(proxy))
    source = PresignServiceSource(srv.url("/presign"), "service-token", "bucket", "key",
                                  http_clients=manager.http_clients)
    with pytest.raises(ValueError, match="presign service"):  # the test server does not sign: it answers 404
        await source("get", None)
    assert proxy.saw("POST", srv.url("/presign"))


# ---------------------------------------------------------------------------------------------- certificates
@pytest.mark.asyncio
async def test_a_private_ca_is_untrusted_until_the_ca_bundle_names_it(
        manager: TransferManager, tmp_path: Path, tls_server: TestHttpServer, ca_bundle: str) -> None:
    data = blob(50 * KIB)
    tls_server.add_file("/secure.bin", data)
    url = tls_server.url("/secure.bin")
    await manager.accounts.add(Account("tls", Provider.HTTP, Auth.NONE, tls_server.url("/")), None)
    with pytest.raises(AccountError, match="not trusted"):
        await manager.accounts.test_connection("tls")
    job = await finished(await manager.add_download(url, str(tmp_path / "secure.bin")))
    assert job.status is JobStatus.FAILED and "certificate" in (job.error or "").lower(), job.error
    gets = tls_server.count("GET")

    await manager.set_network(NetworkSettings(ca_bundle=ca_bundle))
    assert manager.network_settings.ca_bundle == ca_bundle
    await manager.retry([job.id])
    await finished(job)
    assert job.status is JobStatus.COMPLETED and (tmp_path / "secure.bin").read_bytes() == data
    assert gets == 0, "an untrusted server was sent a request"
    tls_server.add_file("/", b"index")
    assert "Connected" in await manager.accounts.test_connection("tls")


@pytest.mark.asyncio
async def test_https_goes_through_the_proxy_by_connect(manager: TransferManager, tmp_path: Path,
                                                      tls_server: TestHttpServer, ca_bundle: str,
                                                      proxy: Tinyproxy) -> None:
    data = blob(40 * KIB)
    tls_server.add_file("/s.bin", data)
    await manager.set_network(manual(proxy, ca_bundle=ca_bundle))
    job = await finished(await manager.add_download(tls_server.url("/s.bin"), str(tmp_path / "s.bin")))
    assert job.status is JobStatus.COMPLETED, job.error
    host_port = tls_server.url("/").split("://", 1)[1].rstrip("/")
    assert proxy.saw("CONNECT", host_port)


def test_keep_is_a_named_sentinel() -> None:
    assert repr(KEEP) == "KEEP"


# ---------------------------------------------------------------------------------------------- the sweep
def _forms(secret: str) -> set[bytes]:
    """How a proxy password could end up written: as is, URL-quoted (it sits in a proxy URL), and in a Basic
    Proxy-Authorization header (base64 of ``user:password``)."""
    import base64
    from urllib.parse import quote

    texts = {secret, quote(secret, safe=""), quote(secret)}
    raw = {t.encode() for t in texts}
    raw |= {base64.b64encode(f"{USER}:{t}".encode()) for t in texts}
    return raw


@pytest.mark.asyncio
async def test_no_file_the_run_wrote_holds_the_proxy_password(tmp_path: Path, srv: TestHttpServer,
                                                              memory_keyring: MemoryKeyring) -> None:
    """A run that uses the password for real (downloads, an upload, a connection test through an authenticating
    proxy), fails with it (a wrong one, a server error) and logs everything at DEBUG (Python logging, the engine's
    debug log): then every file under the test's folder, and every message and repr it produced, is searched."""
    from app.engine.api import set_debug_log_listener

    password = "Sw33pPr0xyPw9"  # tinyproxy.conf takes no quoting: letters and digits
    data = blob(200 * KIB)
    srv.add_file("/ok.bin", data)
    srv.add_file("/", b"index")
    srv.add_file("/broken.bin", data)
    srv.add_fault(Fault("status", path_prefix="/broken.bin", status=500, times=-1))
    (tmp_path / "up.bin").write_bytes(data)
    logs = tmp_path / "logs"
    logs.mkdir()
    handler = logging.FileHandler(logs / "python.log", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    engine_log = (logs / "engine.log").open("a", encoding="utf-8")
    set_debug_log_listener(lambda entry: (engine_log.write(f"{entry}\n"), engine_log.flush()))
    said: list[str] = []
    try:
        with Tinyproxy(basic_auth=(USER, password)) as tp:
            m = TransferManager(tmp_path / "data", session_dir=tmp_path / "sessions")
            await m.set_network(manual(tp, USER), password=password)
            m.retries = 1  # the failures need not wait through eight back-offs
            await m.open()
            m.add_record_listener(lambda job, rec: said.append(f"{job!r} {rec!r}"))
            try:
                ok = await finished(await m.add_download(srv.url("/ok.bin"), str(tmp_path / "ok.bin"),
                                                         options=JobOptions(chunk_size=64 * KIB)))
                up = await finished(await m.add_upload(str(tmp_path / "up.bin"), srv.url("/upload")))
                broken = await finished(await m.add_download(srv.url("/broken.bin"), str(tmp_path / "b.bin")))
                await m.accounts.add(Account("web", Provider.HTTP, Auth.NONE, srv.url("/")), None)
                said.append(await m.accounts.test_connection("web"))
                await m.set_network(manual(tp, USER), password="x" + password)
                wrong = await finished(await m.add_download(srv.url("/ok.bin"), str(tmp_path / "w.bin")))
                with pytest.raises(AccountError) as refused:
                    await m.accounts.test_connection("web")
                said += [str(refused.value), repr(m), repr(m.http_clients), repr(m.network_settings)]
                said += [f"{j.status.value} {j.error}" for j in (ok, up, broken, wrong)]
            finally:
                await m.close()
            assert ok.status is JobStatus.COMPLETED and up.status is JobStatus.COMPLETED, (ok.error, up.error)
            assert broken.status is JobStatus.FAILED and wrong.status is JobStatus.FAILED
            assert tp.saw("GET", srv.url("/ok.bin")) and tp.saw("HEAD", srv.url("/"))  # it really was used
    finally:
        set_debug_log_listener(None)
        engine_log.close()
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    (logs / "messages.txt").write_text("\n".join(said), encoding="utf-8")
    assert memory_keyring.values[("rusty-cat", PROXY_PASSWORD_KEY)] == "x" + password  # where it belongs
    assert (logs / "python.log").stat().st_size > 0 and (logs / "engine.log").stat().st_size > 0
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in ("up.bin", "ok.bin")]
    assert any(p.name.startswith("history.sqlite3") for p in written)
    forms = _forms(password) | _forms("x" + password)
    header = b"Proxy-Authorization: Basic " + __import__("base64").b64encode(f"{USER}:{password}".encode())
    assert any(form in header for form in forms)  # control: the scan would see the header form
    leaks = {str(p): sorted(f.decode() for f in forms if f in p.read_bytes()) for p in written}
    assert {path: found for path, found in leaks.items() if found} == {}


@pytest.mark.asyncio
async def test_a_locked_keyring_at_start_uses_the_proxy_without_the_password_and_says_so(
        tmp_path: Path, srv: TestHttpServer, memory_keyring: MemoryKeyring) -> None:
    import keyring.errors

    srv.add_file("/f.bin", blob(8 * KIB))
    memory_keyring.values[("rusty-cat", PROXY_PASSWORD_KEY)] = "locked-away"
    memory_keyring.fail_with = keyring.errors.KeyringLocked("locked")
    with Tinyproxy(basic_auth=(USER, "locked-away")) as tp:
        m = TransferManager(tmp_path / "data")
        await m.set_network(manual(tp, USER))  # the app's start: not refused, or it would go direct instead
        await m.open()
        try:
            assert m.network_settings == manual(tp, USER)
            assert m.network_problem is not None and "keyring" in m.network_problem
            job = await finished(await m.add_download(srv.url("/f.bin"), str(tmp_path / "f.bin")))
            assert job.status is JobStatus.FAILED and "proxy" in (job.error or "").lower()  # 407, said plainly
            assert srv.count() == 0  # it never went around the proxy
            with pytest.raises(ManagerError, match="could not be read"):  # later changes are refused instead
                await m.set_network(manual(tp, USER, no_proxy="example.com"))
            memory_keyring.fail_with = None
            await m.set_network(manual(tp, USER, no_proxy="example.com"))
            assert m.network_problem is None
            await m.retry([job.id])
            await finished(job)
            assert job.status is JobStatus.COMPLETED, job.error
        finally:
            await m.close()
