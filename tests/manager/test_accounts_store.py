"""AccountStore on a real SQLite file: no secret in the database, updates, "Test connection" against real local
servers (fake OSS, Azurite, the test HTTP server, a presign service), and resolve_remote -- including real transfers
through the engine with the plugins it builds."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from app.engine.api import DownloadPounceBuilder, TransferStatus, UploadPounceBuilder
from app.manager.accounts import (
    Account,
    AccountError,
    AccountStore,
    Auth,
    PresignServiceSource,
    Provider,
    Target,
    TargetError,
    resolve_remote,
)
from app.manager.database import Database
from app.manager.jobs import Direction
from app.providers.api import (
    AliOssDirectDownload,
    AliOssDirectUpload,
    AliOssPresignedDownload,
    AliOssPresignedUpload,
    AzureBlobDirectUpload,
    AzureBlobSasDownload,
    AzureBlobSasUpload,
)
from tests.support.engine_helpers import Recorder, blob, meow, sha
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer
from tests.support.http_server import Fault, TestHttpServer
from tests.support.memory_keyring import MemoryKeyring

KIB = 1024
TOKEN = "presign-token-Zx81"
AZ_KEY = "YXp1cmUta2V5"


def oss_account(oss: FakeOssServer, name: str = "oss") -> Account:
    return Account(name, Provider.ALIYUN_OSS, Auth.ACCESS_KEY, oss.endpoint,
                   {"region": oss.region, "access_key_id": oss.credentials.access_key_id, "path_style": "true"})


# ---------------------------------------------------------------------------------------------- the database
@pytest.mark.asyncio
async def test_the_sqlite_file_contains_no_secret(db: Database, store: AccountStore, tmp_path: Path) -> None:
    secrets = {
        "oss": "OssSecret-1f2e3d4c5b6a",
        "api": "BearerToken-77aa88bb99cc",
        "dav": "BasicPassword-0x5150",
        "box": "sv=2021-08-06&sr=c&sp=racwl&sig=SasSignature0a1b2c3d",
        "signer": "PresignToken-feedface",
        "az": base64.b64encode(b"azure-account-key-0123456789").decode(),
    }
    await store.add(Account("oss", Provider.ALIYUN_OSS, Auth.ACCESS_KEY, "https://oss-cn-hangzhou.aliyuncs.com",
                            {"region": "cn-hangzhou", "access_key_id": "LTAIvisibleKeyId"}), secrets["oss"])
    await store.add(Account("api", Provider.HTTP, Auth.BEARER, "https://api.example.com"), secrets["api"])
    await store.add(Account("dav", Provider.HTTP, Auth.BASIC, "https://dav.example.com", {"username": "ann"}),
                    secrets["dav"])
    await store.add(Account("box", Provider.AZURE_BLOB, Auth.SAS, "https://acct.blob.core.windows.net/box"),
                    secrets["box"])
    await store.add(Account("signer", Provider.ALIYUN_OSS, Auth.PRESIGN_SERVICE, "https://sign.example.com"),
                    secrets["signer"])
    await store.add(Account("az", Provider.AZURE_BLOB, Auth.SHARED_KEY, "https://acct.blob.core.windows.net",
                            {"account_name": "acct"}), secrets["az"])
    await store.update(Account("api", Provider.HTTP, Auth.BEARER, "https://api.example.com/v2"), "Rotated-Token-5")
    secrets["rotated"] = "Rotated-Token-5"

    def forms(secret: str) -> set[bytes]:
        return {secret.encode(), quote(secret, safe="").encode(), base64.b64encode(secret.encode()),
                base64.b64encode(f"ann:{secret}".encode())}

    def database_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("history.sqlite3*")))

    for when in ("open", "closed"):
        if when == "closed":
            await db.close()
        data = database_bytes()
        assert b"LTAIvisibleKeyId" in data and b"https://api.example.com/v2" in data  # the search sees the rows
        for name, secret in secrets.items():
            for form in forms(secret):
                assert form not in data, f"the secret of {name} ({form!r}) is in the database ({when})"


@pytest.mark.asyncio
async def test_update_keeps_replaces_or_drops_the_secret(store: AccountStore, ring: MemoryKeyring) -> None:
    api = Account("api", Provider.HTTP, Auth.BEARER, "https://api.example.com")
    await store.add(api, "tok-1")
    await store.update(Account("api", Provider.HTTP, Auth.BEARER, "https://api.example.com/v2"))
    assert (await store.get("api")).endpoint == "https://api.example.com/v2"
    assert await store.secret("api") == "tok-1"  # None keeps the stored secret
    await store.update(api, "tok-2")
    assert await store.secret("api") == "tok-2"
    with pytest.raises(AccountError, match="needs its new secret"):
        await store.update(Account("api", Provider.HTTP, Auth.BASIC, "https://api.example.com", {"username": "u"}))
    assert (await store.get("api")).auth is Auth.BEARER  # unchanged after the refusal
    await store.update(Account("api", Provider.HTTP, Auth.NONE, "https://api.example.com"))
    assert ("rusty-cat", "account:api") not in ring.values
    assert await store.secret("api") is None
    with pytest.raises(AccountError, match="no account named 'ghost'"):
        await store.update(Account("ghost", Provider.HTTP, Auth.NONE, "https://x.example.com"))


@pytest.mark.asyncio
async def test_a_secret_lost_from_the_keyring_is_a_clear_error(store: AccountStore, ring: MemoryKeyring) -> None:
    await store.add(Account("api", Provider.HTTP, Auth.BEARER, "https://api.example.com"), "tok-1")
    ring.values.clear()  # e.g. it was kept for the last run only
    with pytest.raises(AccountError, match=r"not in the keyring .*enter it again"):
        await store.secret("api")
    loop_thread = threading.current_thread().name
    assert ring.calls and all(thread != loop_thread for _, _, thread in ring.calls)  # never on the event loop


# ---------------------------------------------------------------------------------------------- test connection
@pytest.mark.asyncio
async def test_connection_oss_access_key(store: AccountStore) -> None:
    with FakeOssServer() as oss:
        await store.add(oss_account(oss), oss.credentials.access_key_secret)
        text = await store.test_connection("oss")
        assert "signature was accepted" in text and "127.0.0.1" in text
        assert oss.ops() == ["ListBuckets"] and oss.calls[0].auth == "header"
        await store.add(oss_account(oss, "wrong"), "not-the-secret-42")
        with pytest.raises(AccountError, match="refused the credentials: HTTP 403 SignatureDoesNotMatch") as err:
            await store.test_connection("wrong")
        assert "not-the-secret-42" not in str(err.value)


@pytest.mark.asyncio
async def test_connection_oss_learns_a_skewed_server_clock(store: AccountStore) -> None:
    with FakeOssServer(clock_offset=3600) as oss:
        await store.add(oss_account(oss), oss.credentials.access_key_secret)
        assert "signature was accepted" in await store.test_connection("oss")
        assert [c.code for c in oss.calls] == ["RequestTimeTooSkewed", "NotImplemented"]


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        yield server


@pytest.mark.asyncio
async def test_connection_http(store: AccountStore, srv: TestHttpServer) -> None:
    srv.add_file("/api", b"index")
    await store.add(Account("api", Provider.HTTP, Auth.BEARER, srv.url("/api")), "tok-abc")
    await store.add(Account("dav", Provider.HTTP, Auth.BASIC, srv.url("/api"), {"username": "ann"}), "pw-1")
    await store.add(Account("missing", Provider.HTTP, Auth.NONE, srv.url("/nothing-here")), None)
    assert "HTTP 200, credentials accepted" in await store.test_connection("api")
    assert srv.requests[-1].method == "HEAD" and srv.requests[-1].headers["authorization"] == "Bearer tok-abc"
    await store.test_connection("dav")
    assert srv.requests[-1].headers["authorization"] == "Basic " + base64.b64encode(b"ann:pw-1").decode()
    srv.add_fault(Fault("status", method="HEAD", status=401))
    with pytest.raises(AccountError, match="refused the credentials: HTTP 401") as err:
        await store.test_connection("api")
    assert "tok-abc" not in str(err.value)
    with pytest.raises(AccountError, match="HTTP 404"):
        await store.test_connection("missing")


@pytest.mark.asyncio
async def test_connection_unreachable_or_silent(store: AccountStore, srv: TestHttpServer) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    await store.add(Account("gone", Provider.HTTP, Auth.NONE, f"http://127.0.0.1:{closed_port}"), None)
    with pytest.raises(AccountError, match=r"cannot reach 127\.0\.0\.1"):
        await store.test_connection("gone")
    srv.add_file("/slow", b"x")
    srv.add_fault(Fault("delay", seconds=3.0))
    await store.add(Account("slow", Provider.HTTP, Auth.NONE, srv.url("/slow")), None)
    store.test_timeout = 0.3
    with pytest.raises(AccountError, match=r"did not answer within 0\.3 s"):
        await store.test_connection("slow")


@pytest.mark.asyncio
async def test_connection_azure(store: AccountStore, azurite: Any) -> None:
    container = azurite.create_container()
    await store.add(Account("az", Provider.AZURE_BLOB, Auth.SHARED_KEY, azurite.endpoint,
                            {"account_name": azurite.account_name}), azurite.account_key)
    assert "account key works" in await store.test_connection("az")
    wrong = base64.b64encode(b"w" * 64).decode()
    await store.add(Account("bad", Provider.AZURE_BLOB, Auth.SHARED_KEY, azurite.endpoint,
                            {"account_name": azurite.account_name}), wrong)
    with pytest.raises(AccountError, match=r"HTTP 403 (AuthorizationFailure|AuthenticationFailed)") as err:
        await store.test_connection("bad")
    assert wrong not in str(err.value)

    url, token = azurite.container_sas(container, permission="racwl").split("?", 1)
    await store.add(Account("box", Provider.AZURE_BLOB, Auth.SAS, url), token)
    assert f"the SAS works for container {container!r}" in await store.test_connection("box")
    url, token = azurite.container_sas(container, permission="rw").split("?", 1)
    await store.add(Account("nolist", Provider.AZURE_BLOB, Auth.SAS, url), token)
    assert "may not list blobs" in await store.test_connection("nolist")
    url, token = azurite.container_sas(container, expiry=timedelta(hours=-1)).split("?", 1)
    await store.add(Account("old", Provider.AZURE_BLOB, Auth.SAS, url), token)
    with pytest.raises(AccountError, match="SAS token expired"):
        await store.test_connection("old")


# ---------------------------------------------------------------------------------------------- presign service
_METHODS = {"get": "GET", "head": "HEAD", "initiate": "POST", "upload_part": "PUT", "complete": "POST",
            "abort": "DELETE"}


class PresignService:
    """A tiny presign service (the protocol in app.manager.accounts' docstring) signing with the real OSS signer for
    a FakeOssServer: what a user's backend would run."""

    def __init__(self, oss: FakeOssServer, token: str = TOKEN) -> None:
        self.oss, self.token = oss, token
        self.calls: list[dict[str, Any]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {service.token}":
                    return True
                self._answer(401, {"error": "unknown token"})
                return False

            def do_GET(self) -> None:
                if self._authorized():
                    self._answer(200, {"ok": True})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                if not self._authorized():
                    return
                service.calls.append(body)
                self._answer(200, service.presign(body))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/presign"

    def presign(self, body: dict[str, Any]) -> dict[str, Any]:
        op, bucket, key = body["op"], body["bucket"], body["key"]
        query: dict[str, str | int | None] = {}
        if op == "initiate":
            query = {"uploads": None}
        elif op == "upload_part":
            query = {"partNumber": body["part_number"], "uploadId": body["upload_id"]}
        elif op in ("complete", "abort"):
            query = {"uploadId": body["upload_id"]}
        signed = self.oss.signer().presign_request(
            _METHODS[op], self.oss.object_url(bucket, key, **query), bucket=bucket, key=key,
            expires=timedelta(minutes=5), headers={"x-oss-range-behavior": "standard"} if op == "get" else None)
        expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        return {"url": signed.url, "headers": signed.headers, "expires_at": expires}

    def ops(self) -> list[str]:
        return [c["op"] for c in self.calls]

    def __enter__(self) -> PresignService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


async def run_task(task: Any) -> Any:
    rec = Recorder()
    async with meow() as client:
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        return await rec.wait_terminal(tid, timeout=25)


def upload_task(target: Target, src: Path, chunk: int = 128 * KIB) -> Any:
    builder = (UploadPounceBuilder(target.name or "up.bin", src, chunk).with_url(target.url)
               .with_max_chunk_concurrency(2))
    if target.upload is not None:
        builder = builder.with_breakpoint_upload(target.upload)
    return builder.with_headers(list(target.headers)).build()


def download_task(target: Target, dest: Path, chunk: int = 128 * KIB) -> Any:
    builder = DownloadPounceBuilder(target.name or "down.bin", dest, chunk, target.url).with_headers(
        list(target.headers))
    if target.download is not None:
        builder = builder.with_breakpoint_download(target.download)
    return builder.build()


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_presign_service_account_uploads_and_downloads(store: AccountStore, tmp_path: Path) -> None:
    data = blob(300 * KIB + 17)
    src = tmp_path / "payload.bin"
    src.write_bytes(data)
    with FakeOssServer(min_part_size=64 * KIB) as oss, PresignService(oss) as service:
        await store.add(Account("signer", Provider.ALIYUN_OSS, Auth.PRESIGN_SERVICE, service.url), TOKEN)
        assert "token was accepted" in await store.test_connection("signer")

        up = await resolve_remote(store, f"oss://signer/{DEFAULT_BUCKET}/dir/payload.bin", Direction.UPLOAD,
                                  str(tmp_path / "sessions"))
        assert isinstance(up.upload, AliOssPresignedUpload) and up.name == "payload.bin"
        assert TOKEN not in up.url and TOKEN not in repr(up)
        final = await run_task(upload_task(up, src))
        assert final.status is TransferStatus.COMPLETE, final
        stored = oss.get_object(DEFAULT_BUCKET, "dir/payload.bin")
        assert stored is not None and sha(bytes(stored.data)) == sha(data)
        assert service.ops()[0] == "initiate" and service.ops()[-1] == "complete"
        assert service.ops().count("upload_part") == 3
        assert {c["bucket"] for c in service.calls} == {DEFAULT_BUCKET}
        assert all(c["upload_id"] for c in service.calls if c["op"] != "initiate")
        assert {c.auth for c in oss.calls} == {"query"}  # every OSS request was presigned by the service

        down = await resolve_remote(store, f"oss://signer/{DEFAULT_BUCKET}/dir/payload.bin", "download",
                                    str(tmp_path / "sessions"))
        assert isinstance(down.download, AliOssPresignedDownload)
        final = await run_task(download_task(down, tmp_path / "back.bin"))
        assert final.status is TransferStatus.COMPLETE, final
        assert sha((tmp_path / "back.bin").read_bytes()) == sha(data)
        assert "get" in service.ops()


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_presign_service_refusing_the_token_fails_without_showing_it(store: AccountStore,
                                                                          tmp_path: Path) -> None:
    with FakeOssServer() as oss, PresignService(oss, token="the-right-one") as service:
        oss.put_object(DEFAULT_BUCKET, "f.bin", b"x" * 1000)
        await store.add(Account("signer", Provider.ALIYUN_OSS, Auth.PRESIGN_SERVICE, service.url), TOKEN)
        with pytest.raises(AccountError, match="refused the token: HTTP 401: unknown token") as err:
            await store.test_connection("signer")
        assert TOKEN not in str(err.value)
        down = await resolve_remote(store, f"oss://signer/{DEFAULT_BUCKET}/f.bin", "download", str(tmp_path))
        final = await run_task(download_task(down, tmp_path / "f.bin"))
        assert final.status is TransferStatus.FAILED and final.error is not None
        assert "token was refused" in final.error.msg and TOKEN not in final.error.msg
        assert oss.calls == []


@pytest.mark.asyncio
async def test_presign_source_protocol_errors() -> None:
    import httpx

    def answer(status: int, body: object) -> httpx.MockTransport:
        return httpx.MockTransport(lambda request: httpx.Response(status, json=body))

    def source(status: int, body: object) -> PresignServiceSource:
        return PresignServiceSource("https://sign.example.com", TOKEN, "b", "k", transport=answer(status, body))

    ok = await source(200, {"url": "https://b.example.com/k?x=1", "headers": {"x-oss-a": "1"},
                            "expires_at": 2_000_000_000})("get", None)
    assert ok.headers == {"x-oss-a": "1"} and ok.expires_at == datetime.fromtimestamp(2_000_000_000, UTC)
    with pytest.raises(NotImplementedError, match="not offered"):
        await source(501, {"error": "no head"})("head", None)
    with pytest.raises(RuntimeError, match="HTTP 503"):
        await source(503, {})("get", None)
    with pytest.raises(ValueError, match="does not follow the protocol"):
        await source(200, {"url": "ftp://x"})("get", None)
    with pytest.raises(ValueError, match="HTTP 400: bad key <hidden>"):
        await source(400, {"error": f"bad key {TOKEN}"})("get", None)


# ---------------------------------------------------------------------------------------------- resolve_remote
@pytest.mark.asyncio
async def test_storage_urls_resolve_to_the_accounts_plugins(store: AccountStore, tmp_path: Path) -> None:
    with FakeOssServer() as oss:
        await store.add(oss_account(oss), oss.credentials.access_key_secret)
    await store.add(Account("az", Provider.AZURE_BLOB, Auth.SHARED_KEY, "http://127.0.0.1:1/devstoreaccount1",
                            {"account_name": "devstoreaccount1"}), AZ_KEY)
    up = await resolve_remote(store, f"oss://oss/{DEFAULT_BUCKET}/a/b.bin", Direction.UPLOAD, str(tmp_path))
    assert isinstance(up.upload, AliOssDirectUpload) and up.url == oss.object_url(DEFAULT_BUCKET, "a/b.bin")
    assert up.name == "b.bin" and up.headers == ()
    down = await resolve_remote(store, f"oss://oss/{DEFAULT_BUCKET}/a/b.bin", Direction.DOWNLOAD, str(tmp_path))
    assert isinstance(down.download, AliOssDirectDownload)
    az = await resolve_remote(store, "azure://az/box/dir/c d.bin", "upload", str(tmp_path))
    assert isinstance(az.upload, AzureBlobDirectUpload)
    assert az.url == "http://127.0.0.1:1/devstoreaccount1/box/dir/c%20d.bin" and az.name == "c d.bin"
    for remote, message in [
        ("oss://nobody/b/k.bin", "no account named 'nobody'"),
        ("azure://oss/c/k.bin", "account 'oss' is aliyun-oss, not azure-blob"),
        ("oss://oss/only-bucket", r"expected oss://ACCOUNT/bucket/key"),
        ("azure://az/c/k.bin?x=1", "take no query"),
        ("ftp://h/f", "unsupported remote"),
    ]:
        with pytest.raises(TargetError, match=message):
            await resolve_remote(store, remote, Direction.DOWNLOAD, str(tmp_path))


@pytest.mark.asyncio
async def test_urls_carrying_their_own_credentials(store: AccountStore, tmp_path: Path) -> None:
    sas = "https://acct.blob.core.windows.net/c/f.bin?sv=2021-08-06&sr=b&sp=r&sig=abc"
    target = await resolve_remote(store, sas, "download", str(tmp_path))
    assert isinstance(target.download, AzureBlobSasDownload) and target.name == "f.bin"
    presigned = "https://b.oss-cn-hangzhou.aliyuncs.com/k.bin?x-oss-signature=abc&x-oss-date=20240101T000000Z"
    assert isinstance((await resolve_remote(store, presigned, "download", str(tmp_path))).download,
                      AliOssPresignedDownload)
    with pytest.raises(TargetError, match="one URL per part"):
        await resolve_remote(store, presigned, "upload", str(tmp_path))
    assert await resolve_remote(None, "https://h.example.com/f.bin", "download", str(tmp_path)) == Target(
        "https://h.example.com/f.bin", None)


@pytest.mark.asyncio
async def test_http_accounts_add_authorization_where_their_endpoint_covers_the_url(store: AccountStore,
                                                                                  tmp_path: Path) -> None:
    await store.add(Account("site", Provider.HTTP, Auth.BEARER, "https://files.example.com"), "site-token")
    await store.add(Account("team", Provider.HTTP, Auth.BASIC, "https://files.example.com/team/",
                            {"username": "ann"}), "team-pw")
    await store.add(Account("open", Provider.HTTP, Auth.NONE, "https://other.example.com"), None)

    async def headers(url: str, **kw: Any) -> dict[str, str]:
        return dict((await resolve_remote(store, url, Direction.DOWNLOAD, str(tmp_path), **kw)).headers)

    assert await headers("https://files.example.com/a.bin") == {"Authorization": "Bearer site-token"}
    assert await headers("https://FILES.example.com:443/team/x/y.bin") == {
        "Authorization": "Basic " + base64.b64encode(b"ann:team-pw").decode()}  # the longest prefix wins
    assert await headers("https://files.example.com/teamwork.bin") == {"Authorization": "Bearer site-token"}
    assert await headers("http://files.example.com/a.bin") == {}  # never over another scheme
    assert await headers("https://files.example.com:8443/a.bin") == {}  # nor to another port
    assert await headers("https://evil.example.com/a.bin") == {}
    assert await headers("https://other.example.com/a.bin") == {}
    assert await headers("https://files.example.com/team/a.bin", account="site") == {
        "Authorization": "Bearer site-token"}
    with pytest.raises(TargetError, match="does not cover"):
        await headers("https://evil.example.com/a.bin", account="site")
    target = await resolve_remote(store, "https://files.example.com/a.bin", "download", str(tmp_path))
    assert "site-token" not in repr(target) and target.url == "https://files.example.com/a.bin"


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_http_account_header_reaches_the_server_through_the_engine(store: AccountStore, srv: TestHttpServer,
                                                                        tmp_path: Path) -> None:
    data = blob(200 * KIB)
    srv.add_file("/private/f.bin", data)
    await store.add(Account("priv", Provider.HTTP, Auth.BEARER, srv.url("/private")), "tok-engine")
    target = await resolve_remote(store, srv.url("/private/f.bin"), Direction.DOWNLOAD, str(tmp_path))
    final = await run_task(download_task(target, tmp_path / "f.bin", chunk=64 * KIB))
    assert final.status is TransferStatus.COMPLETE, final
    assert sha((tmp_path / "f.bin").read_bytes()) == sha(data)
    assert srv.requests and all(r.headers.get("authorization") == "Bearer tok-engine" for r in srv.requests)


@pytest.mark.timeout(90)
@pytest.mark.asyncio
async def test_azure_sas_account_uploads_and_downloads(store: AccountStore, azurite: Any, tmp_path: Path) -> None:
    container = azurite.create_container()
    data = blob(700 * KIB + 3)
    src = tmp_path / "payload.bin"
    src.write_bytes(data)
    container_url, token = azurite.container_sas(container, permission="racwl").split("?", 1)
    await store.add(Account("box", Provider.AZURE_BLOB, Auth.SAS, container_url), token)
    await store.add(Account("acct", Provider.AZURE_BLOB, Auth.SAS, azurite.endpoint), token)
    signature = next(p.split("=", 1)[1] for p in token.split("&") if p.startswith("sig="))
    assert "checked when a transfer starts" in await store.test_connection("acct")  # no container to list

    up = await resolve_remote(store, f"azure://box/{container}/dir/payload.bin", "upload", str(tmp_path / "s"))
    assert isinstance(up.upload, AzureBlobSasUpload)
    assert up.url == f"{container_url}/dir/payload.bin" and signature not in up.url + repr(up)
    final = await run_task(upload_task(up, src, chunk=256 * KIB))
    assert final.status is TransferStatus.COMPLETE, final
    assert azurite.read_blob(container, "dir/payload.bin") == data

    down = await resolve_remote(store, f"azure://acct/{container}/dir/payload.bin", "download", str(tmp_path))
    assert isinstance(down.download, AzureBlobSasDownload)
    final = await run_task(download_task(down, tmp_path / "back.bin"))
    assert final.status is TransferStatus.COMPLETE, final
    assert (tmp_path / "back.bin").read_bytes() == data
    with pytest.raises(TargetError, match=f"is for container {container!r}"):
        await resolve_remote(store, "azure://box/other/f.bin", "download", str(tmp_path))
