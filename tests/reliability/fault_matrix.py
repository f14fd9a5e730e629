"""The fault matrix's machinery: one harness per provider behind a :class:`FaultProxy`, and the outcome table.

Every provider is reached through the same fault-injecting proxy (tests/support/fault_proxy.py), so a "reset
mid-body" or a "503" is byte-for-byte the same misbehaviour for the plain HTTP server, the fake OSS server and
Azurite; what differs per provider (how to seed a remote object, what the server holds of an unfinished upload,
which requests are parts or the commit, how an error body looks, how URLs expire) lives in the harness.

The outcome registry (:data:`RESULTS`) collects one :class:`Cell` per case and :func:`format_table` renders
provider x direction x fault -> outcome; ``make soak`` reuses both.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.engine.api import (
    DownloadPounceBuilder,
    FileTransferRecord,
    MeowClient,
    PounceTask,
    TransferStatus,
    UploadPounceBuilder,
)
from app.providers.aliyun_oss import ClockOffset, build_object_url
from app.providers.api import (
    AliOssDirectDownload,
    AliOssDirectUpload,
    AliOssPresignedDownload,
    AliOssPresignedUpload,
    AzureBlobDirectDownload,
    AzureBlobDirectUpload,
    AzureBlobSasDownload,
    AzureBlobSasUpload,
    PresignedRangeDownload,
    PresignedRequest,
)
from tests.support.engine_helpers import KIB, Recorder, fast_config
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer
from tests.support.fault_proxy import FaultProxy, ProxyFault, ProxyRequest
from tests.support.http_server import TestHttpServer

CHUNK = 64 * KIB  # download chunk
PART = 128 * KIB  # upload part (OSS parts can't be under 100 KiB)
EXPIRED_BODY = "Request has expired"

# ------------------------------------------------------------------------------------------------------------------
# outcome registry
# ------------------------------------------------------------------------------------------------------------------
COMPLETE = "complete"
FAILED_KEPT = "failed-kept"
FAILED_RESUMED = "failed-then-resumed"


@dataclass
class Cell:
    """One case of the matrix and what became of it (``outcome`` None = the case did not pass)."""

    provider: str
    direction: str
    fault: str
    outcome: str | None = None
    detail: str = ""
    faults_injected: int = 0
    bytes_verified: int = 0
    seconds: float = 0.0


RESULTS: list[Cell] = []


def format_table(cells: list[Cell], not_applicable: dict[tuple[str, str, str], str] | None = None) -> str:
    """The matrix as a fixed-width table, then totals (cases, outcomes, faults injected, bytes verified)."""
    rows = [(c.provider, c.direction, c.fault, c.outcome or "NOT PASSED", str(c.faults_injected),
             f"{c.seconds:.2f}s", c.detail) for c in cells]
    rows += [(p, d, f, "n/a", "", "", reason) for (p, d, f), reason in sorted((not_applicable or {}).items())]
    header = ("provider", "direction", "fault", "outcome", "faults", "time", "detail (the error of a failed run)")
    n = len(header)
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(n)]
    widths[-1] = min(widths[-1], 100)

    def line(r: tuple[str, ...]) -> str:
        return " | ".join((r[i][:widths[i]]).ljust(widths[i]) for i in range(n)).rstrip()

    out = [line(header), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    counts: dict[str, int] = {}
    for c in cells:
        counts[c.outcome or "NOT PASSED"] = counts.get(c.outcome or "NOT PASSED", 0) + 1
    out.append("")
    out.append(f"cases run: {len(cells)} ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}); "
               f"not applicable: {len(not_applicable or {})}; faults injected: "
               f"{sum(c.faults_injected for c in cells)}; bytes verified: {sum(c.bytes_verified for c in cells)}; "
               f"wall time: {sum(c.seconds for c in cells):.1f}s")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------------------------
# running one task
# ------------------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    final: FileTransferRecord
    payload: str | None
    seconds: float


async def run_task(task: PounceTask, *, timeout: float = 20.0, during: Callable[[Recorder, Any], Any] | None = None,
                   **config: object) -> Run:
    """Run one task on a fresh client (a fresh "process") to its end; ``during(rec, task_id)`` may act meanwhile."""
    values: dict[str, object] = {"http_timeout": 2.0}
    values.update(config)
    client = MeowClient(fast_config(**values))
    rec = Recorder()
    t0 = time.monotonic()
    try:
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        if during is not None:
            await during(rec, tid)
        final = await rec.wait_terminal(tid, timeout)
        if final.status is TransferStatus.COMPLETE:
            await rec.wait_for(lambda: any(t == tid for t, _ in rec.completes), 5)
    finally:
        await client.close()
    payloads = [p for t, p in rec.completes if t == tid]
    return Run(final, payloads[0] if payloads else None, time.monotonic() - t0)


# ------------------------------------------------------------------------------------------------------------------
# URL sources that can be told to hand out expired URLs
# ------------------------------------------------------------------------------------------------------------------
@dataclass
class ExpiringSource:
    """A presigned/SAS URL issuer (what an application backend does) whose URLs are valid while ``expired`` is
    False; set it (e.g. from a proxy fault's ``on_apply``, at the "moment of expiry") and every URL it hands out
    from then on is already expired, which the server itself rejects."""

    make: Callable[[bool, str | None, int | None, str | None], Any]
    expired: bool = False
    calls: int = 0

    def __call__(self, op: str = "get", part_number: int | None = None, *, upload_id: str | None = None) -> Any:
        self.calls += 1
        return self.make(self.expired, op, part_number, upload_id)

    def sas(self) -> str:
        """The zero-argument form Azure's SAS plugins call."""
        self.calls += 1
        return self.make(self.expired, None, None, None)


# ------------------------------------------------------------------------------------------------------------------
# harnesses
# ------------------------------------------------------------------------------------------------------------------
def is_body_get(req: ProxyRequest) -> bool:
    """A download data request: a GET for a range other than the one-byte probe."""
    return req.method == "GET" and req.range is not None and req.range.replace(" ", "") != "bytes=0-0"


def is_probe(req: ProxyRequest) -> bool:
    return req.method == "HEAD" or (req.method == "GET" and (req.range or "").replace(" ", "") == "bytes=0-0")


@dataclass
class Harness:
    """What a case needs from a provider. Subclasses fill in the provider-specific parts."""

    provider: str
    proxy: FaultProxy
    tmp: Path
    gates: list[ProxyFault] = field(default_factory=list)  # permanent server behaviour, kept by clear_faults()
    injected_before: int = 0  # faults applied before the last reset_log()

    # -- faults ------------------------------------------------------------------------------------------------------
    def is_part(self, req: ProxyRequest) -> bool:
        raise NotImplementedError

    def is_commit(self, req: ProxyRequest) -> bool:
        raise NotImplementedError

    def target(self, name: str) -> Callable[[ProxyRequest], bool]:
        return {"body_get": is_body_get, "probe": is_probe, "head": lambda r: r.method == "HEAD",
                "part": self.is_part, "commit": self.is_commit, "any": lambda r: True,
                "answer": lambda r: r.method != "HEAD"}[name]

    def fault(self, kind: str, target: str, **kw: Any) -> ProxyFault:
        return self.proxy.add_fault(ProxyFault(kind, where=self.target(target), **kw))

    def error(self, status: int, code: str, message: str) -> tuple[dict[str, str], bytes]:
        """A provider-flavoured error answer (headers, body) for a "status" fault."""
        return {}, f"{status} {message}\n".encode()

    def status_fault(self, target: str, status: int, code: str = "InjectedFault", message: str = "injected fault",
                     retry_after: str | None = None, **kw: Any) -> ProxyFault:
        headers, body = self.error(status, code, message)
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return self.fault("status", target, status=status, headers=headers, body=body, **kw)

    def clear_faults(self) -> None:
        self.proxy.clear_faults()
        for gate in self.gates:
            gate.remaining = -1
            self.proxy.add_fault(gate)

    def injected(self) -> int:
        """Requests a fault applied to (gates excluded: they are the server's normal behaviour), all runs."""
        gates = {g.kind for g in self.gates}
        now = sum(1 for ex in self.proxy.exchanges if ex.fault is not None and not (
            ex.fault in gates and any(g.matches(ex.request) for g in self.gates)))
        return self.injected_before + now

    def reset_log(self) -> None:
        """Start counting a new run's traffic (what a resume re-sends)."""
        self.injected_before = self.injected()
        self.proxy.clear_log()

    # -- downloads ---------------------------------------------------------------------------------------------------
    def put_remote(self, data: bytes, *, validators: str = "etag") -> None:
        raise NotImplementedError

    def download_task(self, dest: Path, *, flavour: str = "direct", source: ExpiringSource | None = None,
                      workers: int = 2, retries: int = 3, policy: Any = None) -> PounceTask:
        raise NotImplementedError

    def download_source(self) -> ExpiringSource:
        raise NotImplementedError

    def _download_builder(self, dest: Path, url: str, workers: int, retries: int, policy: Any,
                          plugin: Any = None) -> PounceTask:
        from app.engine.api import BreakpointDownloadHttpConfig

        builder = (DownloadPounceBuilder(dest.name, dest, CHUNK, url).with_max_chunk_concurrency(workers)
                   .with_max_chunk_retries(retries))
        if plugin is not None:
            builder = builder.with_breakpoint_download(plugin)
        if policy is not None:
            builder = builder.with_breakpoint_download_http(BreakpointDownloadHttpConfig(range_ignored=policy))
        return builder.build()

    # -- uploads -----------------------------------------------------------------------------------------------------
    def upload_task(self, src: Path, *, flavour: str = "direct", source: ExpiringSource | None = None,
                    conc: int = 2, retries: int = 3) -> PounceTask:
        raise NotImplementedError

    def upload_source(self) -> ExpiringSource:
        raise NotImplementedError

    def stored(self) -> bytes | None:
        """The committed remote object (what an upload produced), None if there is none."""
        raise NotImplementedError

    def pending_bytes(self) -> int:
        """Bytes the server holds for an unfinished upload (its remote session); 0 when there is none."""
        raise NotImplementedError

    def local_session_ok(self) -> bool:
        """Whatever the client keeps locally to find its remote upload session again after a restart is there."""
        return True

    def _upload_builder(self, src: Path, url: str, conc: int, retries: int, plugin: Any = None) -> PounceTask:
        builder = (UploadPounceBuilder(src.name, src, PART).with_url(url).with_max_chunk_retries(retries)
                   .with_max_chunk_concurrency(conc).with_max_upload_prepare_retries(retries))
        if plugin is not None:
            builder = builder.with_breakpoint_upload(plugin)
        return builder.build()


# -- plain HTTP ------------------------------------------------------------------------------------------------------
_FIELD = re.compile(rb'name="(offset|partSize|totalSize)"\r\n\r\n(\d+)\r\n')


def _upload_fields(req: ProxyRequest) -> dict[str, int]:
    return {m.group(1).decode(): int(m.group(2)) for m in _FIELD.finditer(req.body)}


class HttpHarness(Harness):
    """The local test server (static files with Range/If-Range, the seed's chunked upload protocol). Presigned
    downloads are the generic :class:`PresignedRangeDownload` on ``/f.bin?sig=...``: the proxy plays the server's
    expiry check (a 403 "Request has expired" for any ``sig=expired`` URL)."""

    def __init__(self, proxy: FaultProxy, tmp: Path, srv: TestHttpServer) -> None:
        super().__init__("http", proxy, tmp)
        self.srv = srv
        headers, body = self.error(403, "AccessDenied", EXPIRED_BODY)
        self.gates.append(ProxyFault("status", query_contains="sig=expired", status=403, headers=headers, body=body,
                                     times=-1))
        self.clear_faults()

    def is_part(self, req: ProxyRequest) -> bool:
        return req.method == "POST" and "offset" in _upload_fields(req)

    def is_commit(self, req: ProxyRequest) -> bool:
        f = _upload_fields(req)
        return req.method == "POST" and "offset" in f and f["offset"] + f.get("partSize", 0) == f.get("totalSize")

    def put_remote(self, data: bytes, *, validators: str = "etag") -> None:
        if validators == "last-modified":
            self.srv.add_file("/f.bin", data, etag=None)
        else:
            self.srv.add_file("/f.bin", data)

    def download_source(self) -> ExpiringSource:
        counter = iter(range(1, 1 << 30))

        def make(expired: bool, op: str | None, part: int | None, upload_id: str | None) -> PresignedRequest:
            return PresignedRequest(self.proxy.url(f"/f.bin?sig={'expired' if expired else 'ok'}{next(counter)}"))

        return ExpiringSource(make)

    def download_task(self, dest: Path, *, flavour: str = "direct", source: ExpiringSource | None = None,
                      workers: int = 2, retries: int = 3, policy: Any = None) -> PounceTask:
        plugin = PresignedRangeDownload(source) if flavour == "presigned" else None
        return self._download_builder(dest, self.proxy.url("/f.bin"), workers, retries, policy, plugin)

    def upload_task(self, src: Path, *, flavour: str = "direct", source: ExpiringSource | None = None,
                    conc: int = 2, retries: int = 3) -> PounceTask:
        return self._upload_builder(src, self.proxy.url("/upload"), conc, retries)

    def stored(self) -> bytes | None:
        done = [s for s in self.srv.uploads.values() if s.completed]
        assert len(done) <= 1, "one upload per case"
        if not done:
            return None
        assert done[0].md5_ok, "the server holds bytes whose MD5 is not the file's"
        return done[0].data

    def pending_bytes(self) -> int:
        return sum(s.prefix for s in self.srv.uploads.values() if not s.completed)


# -- Aliyun OSS ------------------------------------------------------------------------------------------------------
OSS_KEY = "matrix/object.bin"


class OssHarness(Harness):
    """The fake OSS server (every V4 signature verified): direct (signed) plugins by default, presigned ones for
    URL expiry. Upload sessions live in ``tmp/sessions``, so a new plugin instance (a restart) resumes."""

    def __init__(self, proxy: FaultProxy, tmp: Path, srv: FakeOssServer) -> None:
        super().__init__("oss", proxy, tmp)
        self.srv = srv
        self.sessions = tmp / "sessions"
        self.clock = ClockOffset()  # shared by this case's plugins, as clock_for_endpoint would share it

    def error(self, status: int, code: str, message: str) -> tuple[dict[str, str], bytes]:
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>"
                f"<RequestId>PROXY0001</RequestId><HostId>127.0.0.1</HostId><EC>0000-00000000</EC></Error>")
        return {"x-oss-request-id": "PROXY0001", "x-oss-ec": "0000-00000000"}, body.encode()

    def is_part(self, req: ProxyRequest) -> bool:
        return req.method == "PUT" and "partNumber=" in req.query

    def is_commit(self, req: ProxyRequest) -> bool:
        return req.method == "POST" and "uploadId=" in req.query

    def put_remote(self, data: bytes, *, validators: str = "etag") -> None:
        self.srv.put_object(DEFAULT_BUCKET, OSS_KEY, data)

    def _presign(self, method: str, expired: bool, query: dict[str, Any] | None = None) -> PresignedRequest:
        url = build_object_url(self.proxy.base_url, DEFAULT_BUCKET, OSS_KEY, query=query or {})
        now, expires = (datetime.now(UTC) - timedelta(hours=1), timedelta(seconds=60)) if expired else \
            (None, timedelta(minutes=10))
        signed = self.srv.signer().presign_request(method, url, bucket=DEFAULT_BUCKET, key=OSS_KEY, expires=expires,
                                                   now=now)
        return PresignedRequest(signed.url, signed.headers)

    def download_source(self) -> ExpiringSource:
        return ExpiringSource(lambda expired, op, part, upload_id: self._presign("GET", expired))

    def upload_source(self) -> ExpiringSource:
        methods = {"initiate": "POST", "upload_part": "PUT", "complete": "POST", "abort": "DELETE", "head": "HEAD"}

        def make(expired: bool, op: str | None, part: int | None, upload_id: str | None) -> PresignedRequest:
            assert op is not None
            query: dict[str, Any] = {}
            if op == "initiate":
                query = {"uploads": None}
            elif op == "upload_part":
                query = {"partNumber": part, "uploadId": upload_id}
            elif op in ("complete", "abort"):
                query = {"uploadId": upload_id}
            return self._presign(methods[op], expired, query)

        return ExpiringSource(make)

    def download_task(self, dest: Path, *, flavour: str = "direct", source: ExpiringSource | None = None,
                      workers: int = 2, retries: int = 3, policy: Any = None) -> PounceTask:
        plugin: Any
        if flavour == "presigned":
            assert source is not None
            plugin = AliOssPresignedDownload(source)
            url = build_object_url(self.proxy.base_url, DEFAULT_BUCKET, OSS_KEY)
        else:
            plugin = AliOssDirectDownload(self.srv.credentials, self.srv.region, bucket=DEFAULT_BUCKET, key=OSS_KEY,
                                          endpoint=self.proxy.base_url, clock=self.clock)
            url = plugin.object_url
        return self._download_builder(dest, url, workers, retries, policy, plugin)

    def upload_task(self, src: Path, *, flavour: str = "direct", source: ExpiringSource | None = None,
                    conc: int = 2, retries: int = 3) -> PounceTask:
        plugin: Any
        if flavour == "presigned":
            assert source is not None
            plugin = AliOssPresignedUpload(source, session_dir=self.sessions)
            url = build_object_url(self.proxy.base_url, DEFAULT_BUCKET, OSS_KEY)
        else:
            plugin = AliOssDirectUpload(self.srv.credentials, self.srv.region, bucket=DEFAULT_BUCKET, key=OSS_KEY,
                                        endpoint=self.proxy.base_url, session_dir=self.sessions, clock=self.clock)
            url = plugin.object_url
        return self._upload_builder(src, url, conc, retries, plugin)

    def stored(self) -> bytes | None:
        obj = self.srv.get_object(DEFAULT_BUCKET, OSS_KEY)
        return None if obj is None else obj.data

    def pending_bytes(self) -> int:
        with self.srv._lock:
            return sum(len(p.data) for u in self.srv.multipart_uploads.values() for p in u.parts.values())

    def local_session_ok(self) -> bool:
        return any(self.sessions.glob("*.upload.json"))


# -- Azure Blob (Azurite) --------------------------------------------------------------------------------------------
AZ_BLOB = "matrix/blob.bin"


class AzureHarness(Harness):
    """Azurite (Shared Key and SAS verified) behind the proxy: direct plugins by default, SAS ones for URL expiry
    and for "server ignores Range" (a proxy may drop ``x-ms-range`` only where it is not signed: under a SAS)."""

    def __init__(self, proxy: FaultProxy, tmp: Path, azurite: Any) -> None:
        super().__init__("azure", proxy, tmp)
        self.azurite = azurite
        self.container = azurite.create_container()
        self.blob = azurite.service_client().get_blob_client(self.container, AZ_BLOB)

    @property
    def blob_url(self) -> str:
        return self.proxy.rewrite(self.azurite.blob_url(self.container, AZ_BLOB))

    def error(self, status: int, code: str, message: str) -> tuple[dict[str, str], bytes]:
        body = (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\n"
                f"RequestId:proxy-0001\nTime:2024-01-01T00:00:00.0000000Z</Message></Error>")
        return {"x-ms-error-code": code, "x-ms-request-id": "proxy-0001"}, body.encode()

    def is_part(self, req: ProxyRequest) -> bool:
        return req.method == "PUT" and "comp=block&" in req.query + "&" and "blockid=" in req.query

    def is_commit(self, req: ProxyRequest) -> bool:
        return req.method == "PUT" and "comp=blocklist" in req.query

    def put_remote(self, data: bytes, *, validators: str = "etag") -> None:
        self.blob.upload_blob(data, overwrite=True)

    def _sas(self, expired: bool, permission: str) -> str:
        if expired:
            past = datetime.now(UTC) - timedelta(hours=1)
            url = self.azurite.blob_sas(self.container, AZ_BLOB, permission=permission, expiry=past,
                                        start=past - timedelta(hours=1))
        else:
            url = self.azurite.blob_sas(self.container, AZ_BLOB, permission=permission)
        return self.proxy.rewrite(url)

    def download_source(self) -> ExpiringSource:
        return ExpiringSource(lambda expired, *_: self._sas(expired, "r"))

    def upload_source(self) -> ExpiringSource:
        return ExpiringSource(lambda expired, *_: self._sas(expired, "racw"))

    def download_task(self, dest: Path, *, flavour: str = "direct", source: ExpiringSource | None = None,
                      workers: int = 2, retries: int = 3, policy: Any = None) -> PounceTask:
        plugin: Any
        if flavour in ("presigned", "sas"):
            src = source or self.download_source()
            plugin = AzureBlobSasDownload(src.sas)
        else:
            plugin = AzureBlobDirectDownload(self.azurite.shared_key())
        return self._download_builder(dest, self.blob_url, workers, retries, policy, plugin)

    def upload_task(self, src: Path, *, flavour: str = "direct", source: ExpiringSource | None = None,
                    conc: int = 2, retries: int = 3) -> PounceTask:
        plugin: Any
        if flavour in ("presigned", "sas"):
            assert source is not None
            plugin = AzureBlobSasUpload(source.sas)
        else:
            plugin = AzureBlobDirectUpload(self.azurite.shared_key())
        return self._upload_builder(src, self.blob_url, conc, retries, plugin)

    def stored(self) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.blob.download_blob().readall()
        except ResourceNotFoundError:
            return None

    def pending_bytes(self) -> int:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            _, staged = self.blob.get_block_list("uncommitted")
        except ResourceNotFoundError:
            return 0
        return sum(b.size for b in staged)
