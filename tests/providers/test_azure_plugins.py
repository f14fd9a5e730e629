"""The Azure Blob plugins through the real engine against a real blob service (Azurite).

What is proven here, each time read back with the official SDK as the oracle:
* direct (Shared Key) and SAS uploads stage MD5-checked blocks and commit them, and downloads of both kinds
  use ``x-ms-range`` with ``If-Match``;
* a NEW client with a NEW plugin instance (a process restart) resumes an interrupted upload by sending only
  the blocks the service does not hold, ignoring foreign or wrong-sized blocks and coping with foreign ids
  of another length;
* a blob replaced under a download ends with the new content (412 mid-run, or ETag change across a pause);
* an expired SAS fails clearly without retries, or is renewed once from a URL source;
* no secret (account key, request signature, SAS ``sig``) reaches a log, a record, an error or a file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from app.engine import log as engine_log
from app.engine.api import (
    DownloadPounceBuilder,
    FileTransferRecord,
    InnerErrorCode,
    Log,
    MeowClient,
    PounceTask,
    TransferStatus,
    UploadPounceBuilder,
)
from app.providers.azure_blob import (
    MAX_BLOCK_SIZE,
    AzureBlobDirectDownload,
    AzureBlobDirectUpload,
    AzureBlobSasDownload,
    AzureBlobSasUpload,
    AzureSharedKey,
    append_query,
    block_id,
    upload_block_prefix,
)
from tests.support.azurite import AzuriteServer
from tests.support.engine_helpers import KIB, MIB, Recorder, fast_config, sha

BLOCK = 256 * KIB


# ---------------------------------------------------------------------------------------------- wire recorder
@dataclass
class Exchange:
    method: str
    url: str
    headers: dict[str, str]
    status: int

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)

    @property
    def comp(self) -> str | None:
        return (self.query.get("comp") or [None])[0]

    @property
    def block_index(self) -> int:
        raw = base64.b64decode(self.query["blockid"][0]).decode()
        return int(raw.rsplit("-", 1)[1])


Hook = Callable[[httpx.Request], Awaitable[httpx.Response | None]]


@dataclass
class Wire(httpx.AsyncBaseTransport):
    """The real transport, plus a log of every exchange and an optional hook that may delay a request,
    act before it is sent, or answer it instead of the server (fault injection)."""

    hook: Hook | None = None
    log: list[Exchange] = field(default_factory=list)
    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.hook(request) if self.hook is not None else None
        if response is None:
            response = await self.inner.handle_async_request(request)
        self.log.append(Exchange(request.method, str(request.url), dict(request.headers), response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def put_blocks(self, status: int | None = 201) -> list[Exchange]:
        return [e for e in self.log if e.method == "PUT" and e.comp == "block"
                and (status is None or e.status == status)]

    def signatures(self) -> set[str]:
        sigs = {e.headers["authorization"].rsplit(":", 1)[1] for e in self.log if "authorization" in e.headers}
        for e in self.log:
            sigs.update(e.query.get("sig", []))
        return sigs


@dataclass
class Outcome:
    final: FileTransferRecord
    payload: str | None
    records: list[FileTransferRecord]


async def run(task: PounceTask, wire: Wire | None = None, *, stop_when: Callable[[Recorder], bool] | None = None,
              timeout: float = 20.0) -> Outcome | None:
    """Run one task on a fresh client; with ``stop_when``, close the client (a "process exit") once it holds."""
    http = httpx.AsyncClient(transport=wire or Wire(), timeout=10.0)
    client = MeowClient(fast_config(http_client=http))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        if stop_when is not None:
            await rec.wait_for(lambda: stop_when(rec), timeout)
            return None
        final = await rec.wait_terminal(tid, timeout)
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await http.aclose()
    payloads = [p for t, p in rec.completes if t == tid]
    return Outcome(final, payloads[0] if payloads else None, list(rec.records))


# ---------------------------------------------------------------------------------------------- secrets
@pytest.fixture
def logs() -> Iterator[list[Log]]:
    seen: list[Log] = []
    engine_log.set_debug_log_listener(seen.append)
    try:
        yield seen
    finally:
        engine_log.set_debug_log_listener(None)


def sas_sig(url: str) -> str:
    return unquote(parse_qs(urlsplit(url).query, keep_blank_values=True)["sig"][0])


def assert_no_secrets(secrets: set[str], *, logs: list[Log], outcomes: list[Outcome | None] = (),
                      files_under: Path | None = None, extra: list[str] = ()) -> None:
    """No secret (raw or percent-encoded) in any log, record, error message or small file we left behind."""
    texts = [str(entry) for entry in logs] + list(extra)
    for outcome in outcomes:
        if outcome is not None:
            texts += [repr(r) for r in outcome.records] + [repr(outcome.final), str(outcome.payload)]
            texts += [r.error.msg for r in outcome.records if r.error is not None]
    if files_under is not None:
        for path in files_under.rglob("*"):
            if path.is_file() and not path.name.endswith((".bin", ".part")):
                texts.append(path.read_text(errors="replace"))
    needles = {s for s in secrets if s} | {s.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
                                           for s in secrets if s}
    for text in texts:
        for needle in needles:
            assert needle not in text, f"secret leaked into: {text[:300]}"


# ---------------------------------------------------------------------------------------------- helpers
def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def upload_task(path: Path, url: str, plugin: object, chunk: int = BLOCK, concurrency: int = 4) -> PounceTask:
    return (UploadPounceBuilder(path.name, path, chunk).with_url(url).with_breakpoint_upload(plugin)
            .with_max_chunk_concurrency(concurrency).build())


def download_task(dest: Path, url: str, plugin: object, chunk: int = BLOCK) -> PounceTask:
    return (DownloadPounceBuilder(dest.name, dest, chunk, url).with_breakpoint_download(plugin)
            .with_max_chunk_concurrency(2).build())


def stage(azurite: AzuriteServer, url: str, block: str, data: bytes) -> None:
    """Put Block with plain httpx (to plant blocks another uploader left behind)."""
    target = append_query(url, {"comp": "block", "blockid": block})
    headers = azurite.shared_key().sign("PUT", target, {"Content-Length": str(len(data))})
    response = httpx.put(target, headers=headers, content=data)
    assert response.status_code == 201, response.text


def uncommitted(azurite: AzuriteServer, container: str, blob: str) -> list[tuple[str, int]]:
    _, staged = azurite.service_client().get_blob_client(container, blob).get_block_list("uncommitted")
    return [(b.id, b.size) for b in staged]


# ---------------------------------------------------------------------------------------------- unit: part size
def test_part_size_grows_to_fit_the_block_limit_and_never_raises() -> None:
    key = AzureSharedKey("devstoreaccount1", base64.b64encode(b"k" * 64).decode())
    plugin = AzureBlobDirectUpload(key)
    assert plugin.parallel_parts is True
    assert plugin.part_size(10 * MIB, MIB) == MIB
    assert plugin.part_size(50_000 * MIB, MIB) == MIB
    assert plugin.part_size(50_000 * MIB + 1, MIB) == 2 * MIB  # doubled, as AzCopy does
    assert AzureBlobDirectUpload(key, max_blocks=4).part_size(10 * MIB, MIB) == 4 * MIB
    assert AzureBlobDirectUpload(key, block_size=3 * MIB).part_size(10 * MIB, MIB) == 3 * MIB
    assert plugin.part_size(60_000 * MAX_BLOCK_SIZE, MIB) == MAX_BLOCK_SIZE  # too big: prepare() refuses it
    assert key.account_key not in repr(plugin)
    with pytest.raises(ValueError):
        AzureBlobDirectUpload(key, max_blocks=50_001)
    sas = "http://127.0.0.1:1/devstoreaccount1/c/b?sv=2021-08-06&sr=b&sp=rw&sig=c2VjcmV0"
    assert "c2VjcmV0" not in repr(AzureBlobSasUpload(sas)) and "c2VjcmV0" not in repr(AzureBlobSasDownload(sas))
    with pytest.raises(ValueError):
        AzureBlobSasUpload("http://127.0.0.1:1/devstoreaccount1/c/b?sv=1")  # no sig: not a SAS


# ---------------------------------------------------------------------------------------------- round trips
@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_direct_upload_and_download(azurite: AzuriteServer, tmp_path: Path, logs: list[Log]) -> None:
    container = azurite.create_container()
    name = "dir/direct ü.bin"
    url = azurite.blob_url(container, name)
    data = os.urandom(3 * MIB + 12_345)
    source = write(tmp_path / "src.bin", data)
    sessions = tmp_path / "sessions"
    up_wire = Wire()
    plugin = AzureBlobDirectUpload(azurite.shared_key(), session_dir=sessions)
    task = (UploadPounceBuilder("src.bin", source, BLOCK).with_url(url).with_breakpoint_upload(plugin)
            .with_headers({"x-ms-blob-content-type": "application/x-test"}).build())
    up = await run(task, up_wire)
    assert up is not None and up.final.status is TransferStatus.COMPLETE, up.final.error

    props = azurite.service_client().get_blob_client(container, name).get_blob_properties()
    assert azurite.read_blob(container, name) == data
    assert props.content_settings.content_type == "application/x-test"  # x-ms-* task headers: Put Block List
    assert up.payload == props.etag
    assert bytes(props.content_settings.content_md5) == hashlib.md5(data).digest()  # x-ms-blob-content-md5
    blocks = up_wire.put_blocks()
    assert sorted(e.block_index for e in blocks) == list(range(-(-len(data) // BLOCK)))
    assert all("content-md5" in e.headers for e in blocks)
    assert not list(sessions.glob("*")), "a finished upload leaves no session file"

    dest = tmp_path / "out" / "direct.bin"
    down_wire = Wire()
    down = await run(download_task(dest, url, AzureBlobDirectDownload(azurite.shared_key())), down_wire)
    assert down is not None and down.final.status is TransferStatus.COMPLETE, down.final.error
    assert sha(dest.read_bytes()) == sha(data)
    gets = [e for e in down_wire.log if e.method == "GET"]
    assert gets and all(e.status == 206 for e in gets)
    assert all("x-ms-range" in e.headers and "range" not in e.headers for e in gets)
    assert all(e.headers.get("if-match") == props.etag for e in gets)

    secrets = {azurite.account_key} | up_wire.signatures() | down_wire.signatures()
    assert_no_secrets(secrets, logs=logs, outcomes=[up, down], files_under=tmp_path)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_sas_upload_via_container_sas_source_and_download_via_blob_sas(
        azurite: AzuriteServer, tmp_path: Path, logs: list[Log]) -> None:
    container = azurite.create_container()
    name = "sas/blob + one.bin"
    data = os.urandom(2 * MIB + 7)
    source = write(tmp_path / "src.bin", data)
    container_sas = azurite.container_sas(container, permission="racw")
    asked = 0

    async def fresh_url() -> str:  # an async URL source, as a backend issuing SAS URLs would be
        nonlocal asked
        asked += 1
        return container_sas

    up_wire = Wire()
    plugin = AzureBlobSasUpload(fresh_url, blob_name=name)
    up = await run(upload_task(source, azurite.blob_url(container, name), plugin), up_wire)
    assert up is not None and up.final.status is TransferStatus.COMPLETE, up.final.error
    assert asked == 1, "the source is asked lazily, once, while its URL works"
    assert azurite.read_blob(container, name) == data
    for e in up_wire.log:  # the SAS query reaches the service intact, our parameters after it
        assert e.query["sig"] == [sas_sig(container_sas)] and e.url.index("sig=") < e.url.index("comp=")
        assert "authorization" not in e.headers

    blob_sas = azurite.blob_sas(container, name, permission="r")
    dest = tmp_path / "sas.bin"
    down_wire = Wire()
    down = await run(download_task(dest, azurite.blob_url(container, name), AzureBlobSasDownload(blob_sas)),
                     down_wire)
    assert down is not None and down.final.status is TransferStatus.COMPLETE, down.final.error
    assert sha(dest.read_bytes()) == sha(data)
    assert all("x-ms-range" in e.headers and "if-match" in e.headers for e in down_wire.log if e.method == "GET")

    secrets = {azurite.account_key, sas_sig(container_sas), sas_sig(blob_sas)}
    assert_no_secrets(secrets, logs=logs, outcomes=[up, down], files_under=tmp_path)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_write_only_sas_in_the_task_url_uploads_without_resume(
        azurite: AzuriteServer, tmp_path: Path, logs: list[Log]) -> None:
    """No ``r``: Get Block List is refused, so the upload sends every block instead of failing."""
    container = azurite.create_container()
    data = os.urandom(600 * KIB)
    sas = azurite.blob_sas(container, "w.bin", permission="cw")
    wire = Wire()
    out = await run(upload_task(write(tmp_path / "w.bin", data), sas, AzureBlobSasUpload()), wire)
    assert out is not None and out.final.status is TransferStatus.COMPLETE, out.final.error
    assert azurite.read_blob(container, "w.bin") == data
    assert len(wire.put_blocks()) == 3
    assert_no_secrets({sas_sig(sas)}, logs=logs, outcomes=[out])


# ---------------------------------------------------------------------------------------------- resume
@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_resume_after_restart_puts_only_missing_blocks(
        azurite: AzuriteServer, tmp_path: Path, logs: list[Log]) -> None:
    container = azurite.create_container()
    name = "resume.bin"
    url = azurite.blob_url(container, name)
    data = os.urandom(4 * MIB)  # 16 blocks
    source = write(tmp_path / "src.bin", data)
    sessions = tmp_path / "sessions"

    async def slow(request: httpx.Request) -> None:
        if request.method == "PUT":
            await asyncio.sleep(0.05)

    first = Wire(hook=slow)
    plugin = AzureBlobDirectUpload(azurite.shared_key(), session_dir=sessions)
    await run(upload_task(source, url, plugin, concurrency=2), first,
              stop_when=lambda _: len(first.put_blocks()) >= 8)
    staged = uncommitted(azurite, container, name)
    assert 8 <= len(staged) < 16
    [session] = sessions.glob("*")  # the unfinished upload is on record, without secrets
    assert_no_secrets({azurite.account_key} | first.signatures(), logs=[], extra=[session.read_text()])

    second = Wire()
    again = AzureBlobDirectUpload(azurite.shared_key(), session_dir=sessions)  # a new process: new instance
    out = await run(upload_task(source, url, again, concurrency=2), second)
    assert out is not None and out.final.status is TransferStatus.COMPLETE, out.final.error
    assert azurite.read_blob(container, name) == data
    resent = sorted(e.block_index for e in second.put_blocks(None))
    already = {int(bid.rsplit("-", 1)[1]) for bid, _ in staged}  # the SDK hands ids back decoded
    assert len(resent) == 16 - len(staged) and not already & set(resent)
    assert not list(sessions.glob("*"))

    # Uploading the same content again finds it committed: done without sending a block.
    third = Wire()
    out3 = await run(upload_task(source, url, AzureBlobDirectUpload(azurite.shared_key()), concurrency=2), third)
    assert out3 is not None and out3.final.status is TransferStatus.COMPLETE and not third.put_blocks(None)
    assert out3.payload

    secrets = {azurite.account_key} | first.signatures() | second.signatures()
    assert_no_secrets(secrets, logs=logs, outcomes=[out], files_under=tmp_path)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_cancel_forgets_the_session_and_leaves_blocks_to_expire(azurite: AzuriteServer, tmp_path: Path) -> None:
    container = azurite.create_container()
    url = azurite.blob_url(container, "cancel.bin")
    sessions = tmp_path / "sessions"
    wire = Wire(hook=lambda request: asyncio.sleep(0.05 if request.method == "PUT" else 0))
    task = upload_task(write(tmp_path / "c.bin", os.urandom(2 * MIB)), url,
                       AzureBlobDirectUpload(azurite.shared_key(), session_dir=sessions), concurrency=1)
    client = MeowClient(fast_config(http_client=httpx.AsyncClient(transport=wire)))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(task, rec.progress)
        await rec.wait_for(lambda: len(wire.put_blocks()) >= 2)
        assert list(sessions.glob("*"))
        await client.cancel(tid)
        await rec.wait_for(lambda: not list(sessions.glob("*")), timeout=10)
    finally:
        await client.close()
    assert len(uncommitted(azurite, container, "cancel.bin")) >= 2  # nothing deleted remotely


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_foreign_and_wrong_sized_blocks_are_ignored(azurite: AzuriteServer, tmp_path: Path) -> None:
    container = azurite.create_container()
    url = azurite.blob_url(container, "stale.bin")
    data = os.urandom(4 * BLOCK + 100)  # 5 blocks
    source = write(tmp_path / "src.bin", data)
    ours = upload_block_prefix(url, len(data), hashlib.md5(data).hexdigest(), BLOCK)
    foreign = "f" * len(ours)  # same id length, another upload
    stage(azurite, url, block_id(foreign, 2), os.urandom(BLOCK))
    stage(azurite, url, block_id(ours, 0), data[:100])  # our id, wrong size: re-staged
    stage(azurite, url, block_id(ours, 1), data[BLOCK:2 * BLOCK])  # ours and right: kept

    wire = Wire()
    out = await run(upload_task(source, url, AzureBlobDirectUpload(azurite.shared_key())), wire)
    assert out is not None and out.final.status is TransferStatus.COMPLETE, out.final.error
    assert azurite.read_blob(container, "stale.bin") == data
    assert sorted(e.block_index for e in wire.put_blocks(None)) == [0, 2, 3, 4]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["long foreign ids", "short foreign ids, empty blob", "short foreign ids, content"])
async def test_foreign_ids_of_another_length(azurite: AzuriteServer, tmp_path: Path, case: str) -> None:
    """The service wants one id length per blob: match a long foreign length, discard short foreign blocks
    when nothing committed can be lost, and otherwise refuse clearly."""
    container = azurite.create_container()
    url = azurite.blob_url(container, "foreign.bin")
    if case.endswith("content"):
        azurite.service_client().get_blob_client(container, "foreign.bin").upload_blob(b"keep me")
    raw = os.urandom(48 if case.startswith("long") else 9)  # the SDK's two id styles
    stage(azurite, url, base64.b64encode(raw).decode(), b"left over")
    data = os.urandom(3 * BLOCK)
    wire = Wire()
    out = await run(upload_task(write(tmp_path / "f.bin", data), url, AzureBlobDirectUpload(azurite.shared_key())),
                    wire)
    assert out is not None
    if case.endswith("content"):
        assert out.final.status is TransferStatus.FAILED
        assert out.final.error is not None and out.final.error.code == InnerErrorCode.INVALID_TASK_STATE
        assert "uncommitted blocks from another upload" in out.final.error.msg
        assert azurite.read_blob(container, "foreign.bin") == b"keep me" and not wire.put_blocks(None)
    else:
        assert out.final.status is TransferStatus.COMPLETE, out.final.error
        assert azurite.read_blob(container, "foreign.bin") == data
        assert len(wire.put_blocks(None)) == 3


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_busy_and_md5_mismatch_are_retried_and_a_wrong_key_is_not(
        azurite: AzuriteServer, tmp_path: Path, logs: list[Log]) -> None:
    container = azurite.create_container()
    url = azurite.blob_url(container, "busy.bin")
    data = os.urandom(3 * BLOCK)
    source = write(tmp_path / "busy.bin", data)
    faults = [(503, "ServerBusy"), (400, "Md5Mismatch")]  # throttled, then a block damaged in transit

    async def busy(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PUT" and "comp=block&" in str(request.url) and faults:
            status, code = faults.pop(0)
            body = f"<Error><Code>{code}</Code></Error>".encode()  # as a stream, like a real transport's
            return httpx.Response(status, headers={"Retry-After": "0", "x-ms-error-code": code},
                                  stream=httpx.ByteStream(body))
        return None

    wire = Wire(hook=busy)
    out = await run(upload_task(source, url, AzureBlobDirectUpload(azurite.shared_key()), concurrency=1), wire)
    assert out is not None and out.final.status is TransferStatus.COMPLETE, out.final.error
    assert [e.status for e in wire.put_blocks(None)][:3] == [503, 400, 201]
    assert azurite.read_blob(container, "busy.bin") == data

    wrong_key = base64.b64encode(b"w" * 64).decode()
    wrong = AzureSharedKey(azurite.account_name, wrong_key)
    wire2 = Wire()
    out2 = await run(upload_task(source, azurite.blob_url(container, "denied.bin"), AzureBlobDirectUpload(wrong)),
                     wire2)
    assert out2 is not None and out2.final.status is TransferStatus.FAILED
    err = out2.final.error
    assert err is not None and err.status == 403 and err.code == InnerErrorCode.RESPONSE_STATUS_ERROR
    assert err.remote_code == "AuthorizationFailure" and not err.retryable
    assert len(wire2.log) == 1, "a 403 is final: no retry"
    assert_no_secrets({azurite.account_key, wrong_key} | wire.signatures() | wire2.signatures(),
                      logs=logs, outcomes=[out, out2])


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_signature_echoed_by_the_service_is_scrubbed_from_errors(
        azurite: AzuriteServer, tmp_path: Path, logs: list[Log]) -> None:
    """Real Azure's 403 AuthenticationFailed quotes the request's MAC signature (Azurite doesn't): the
    error must not carry it."""

    async def echo(request: httpx.Request) -> httpx.Response:
        signature = request.headers["authorization"].rsplit(":", 1)[1]
        body = (f"<Error><Code>AuthenticationFailed</Code><AuthenticationErrorDetail>The MAC signature found in "
                f"the HTTP request '{signature}' is not the same as any computed signature."
                f"</AuthenticationErrorDetail></Error>").encode()
        return httpx.Response(403, headers={"x-ms-error-code": "AuthenticationFailed"}, stream=httpx.ByteStream(body))

    wire = Wire(hook=echo)
    url = azurite.blob_url(azurite.create_container(), "echo.bin")
    out = await run(upload_task(write(tmp_path / "e.bin", b"e" * 1000), url,
                                AzureBlobDirectUpload(azurite.shared_key())), wire)
    assert out is not None and out.final.error is not None and out.final.error.status == 403
    assert "The MAC signature found" in out.final.error.msg and "REDACTED" in out.final.error.msg
    assert_no_secrets({azurite.account_key} | wire.signatures(), logs=logs, outcomes=[out])


def _expired_and_valid(azurite: AzuriteServer, container: str, blob: str, permission: str) -> tuple[str, str]:
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = azurite.blob_sas(container, blob, permission=permission, expiry=past, start=past - timedelta(hours=1))
    return expired, azurite.blob_sas(container, blob, permission=permission)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_expired_sas_fails_clearly_or_is_renewed_from_the_source(
        azurite: AzuriteServer, tmp_path: Path, logs: list[Log]) -> None:
    container = azurite.create_container()
    data = os.urandom(700 * KIB)
    source = write(tmp_path / "x.bin", data)
    expired, valid = _expired_and_valid(azurite, container, "x.bin", "racw")
    outcomes: list[Outcome | None] = []

    # A fixed, expired SAS: one refused request, a final error that says why, no secret in it.
    wire = Wire()
    out = await run(upload_task(source, azurite.blob_url(container, "x.bin"), AzureBlobSasUpload(expired)), wire)
    outcomes.append(out)
    assert out is not None and out.final.status is TransferStatus.FAILED
    err = out.final.error
    assert err is not None and err.status == 403 and not err.retryable
    assert err.remote_code == "AuthorizationFailure" and "SAS URL expired at" in err.msg
    assert len(wire.log) == 1

    dest = tmp_path / "d.bin"
    out = await run(download_task(dest, azurite.blob_url(container, "x.bin"), AzureBlobSasDownload(expired)))
    outcomes.append(out)
    assert out is not None and out.final.status is TransferStatus.FAILED
    assert out.final.error is not None and out.final.error.status == 403

    # A source that first hands out an expired SAS, then a valid one: asked again once, and it works.
    handed: list[str] = []

    def source_of(*urls: str) -> Callable[[], str]:
        queue = list(urls)

        def next_url() -> str:
            handed.append(queue[0])
            return queue.pop(0) if len(queue) > 1 else queue[0]

        return next_url

    wire = Wire()
    out = await run(upload_task(source, azurite.blob_url(container, "x.bin"),
                                AzureBlobSasUpload(source_of(expired, valid)), concurrency=2), wire)
    outcomes.append(out)
    assert out is not None and out.final.status is TransferStatus.COMPLETE, out.final.error
    assert handed == [expired, valid] and azurite.read_blob(container, "x.bin") == data
    assert wire.log[0].status == 403  # the expired URL, once

    handed.clear()
    out = await run(download_task(dest, azurite.blob_url(container, "x.bin"),
                                  AzureBlobSasDownload(source_of(expired, valid))))
    outcomes.append(out)
    assert out is not None and out.final.status is TransferStatus.COMPLETE, out.final.error
    assert handed == [expired, valid] and sha(dest.read_bytes()) == sha(data)

    assert_no_secrets({azurite.account_key, sas_sig(expired), sas_sig(valid)}, logs=logs, outcomes=outcomes,
                      files_under=tmp_path)


# ---------------------------------------------------------------------------------------------- changed blob
@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("when", ["between range GETs (412)", "between pause and resume"])
async def test_blob_replaced_during_download_ends_with_the_new_content(
        azurite: AzuriteServer, tmp_path: Path, when: str) -> None:
    container = azurite.create_container()
    blob = azurite.service_client().get_blob_client(container, "moving.bin")
    old, new = os.urandom(2 * MIB), os.urandom(2 * MIB)  # same size: only the ETag tells them apart
    blob.upload_blob(old)
    url = azurite.blob_url(container, "moving.bin")
    dest = tmp_path / "moving.bin"
    replaced = False

    async def replace_before_first_get(request: httpx.Request) -> None:
        nonlocal replaced
        if request.method == "GET" and "x-ms-range" in request.headers and not replaced:
            replaced = True  # the probe saw the old ETag; this GET still asks If-Match for it
            await asyncio.to_thread(blob.upload_blob, new, overwrite=True)

    if when.endswith("(412)"):
        wire = Wire(hook=replace_before_first_get)
        out = await run(download_task(dest, url, AzureBlobDirectDownload(azurite.shared_key())), wire)
        assert out is not None and out.final.status is TransferStatus.COMPLETE, out.final.error
        assert 412 in [e.status for e in wire.log]
    else:
        wire = Wire()
        task = (DownloadPounceBuilder(dest.name, dest, BLOCK, url)
                .with_breakpoint_download(AzureBlobDirectDownload(azurite.shared_key()))
                .with_max_chunk_concurrency(1).with_rate_limit(2 * MIB).build())
        client = MeowClient(fast_config(http_client=httpx.AsyncClient(transport=wire)))
        rec = Recorder()
        try:
            tid = await client.try_enqueue(task, rec.progress)
            await rec.wait_for(lambda: any(r.transferred_bytes >= MIB // 2 for r in rec.of(tid)))
            await client.pause(tid)
            await rec.wait_status(tid, TransferStatus.PAUSED)
            blob.upload_blob(new, overwrite=True)
            await client.set_task_rate_limit(tid, None)
            await client.resume(tid)
            final = await rec.wait_terminal(tid)
        finally:
            await client.close()
        assert final.status is TransferStatus.COMPLETE, final.error
        assert 412 not in [e.status for e in wire.log]  # the probe's new ETag already invalidated the checkpoint
    assert sha(dest.read_bytes()) == sha(new)
