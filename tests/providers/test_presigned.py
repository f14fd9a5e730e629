"""Provider-neutral presigned primitives: the request type, the URL source contract, the per-(op, part) leases that
renews a rejected URL once (and once only for a burst of parallel failures), and the generic presigned range
download through the real engine against the fake OSS server (a stand-in for any S3/OSS-style presigned GET)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.engine.api import DownloadPounceBuilder, InnerErrorCode, MeowClient, MeowError, TransferStatus
from app.providers.aliyun_oss import build_object_url
from app.providers.presigned import (
    GET,
    PresignedRangeDownload,
    PresignedRequest,
    UrlKey,
    ask_source,
    is_expired_rejection,
    presigned_leases,
)
from tests.support.engine_helpers import KIB, Recorder, blob, fast_config
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer

pytestmark = pytest.mark.timeout(30)

KEY = "shared/report.bin"
DATA = blob(700 * KIB + 123, 3)
S = TransferStatus


@pytest.fixture
def srv(srv: FakeOssServer) -> FakeOssServer:
    """The shared fake OSS server (tests/providers/conftest.py), holding DATA at KEY."""
    srv.put_object(DEFAULT_BUCKET, KEY, DATA)
    return srv


class GetSource:
    """Issues presigned GET URLs for one object; the first ``expired`` of them are already expired."""

    def __init__(self, srv: FakeOssServer, *, expired: int = 0, always_expired: bool = False,
                 is_async: bool = False) -> None:
        self.srv, self.expired, self.always_expired, self.is_async = srv, expired, always_expired, is_async
        self.calls = 0

    def _sign(self) -> PresignedRequest:
        self.calls += 1
        stale = self.always_expired or self.calls <= self.expired
        url = build_object_url(self.srv.endpoint, DEFAULT_BUCKET, KEY)
        now = datetime.now(UTC) - timedelta(hours=1) if stale else None
        signed = self.srv.signer().presign_request("GET", url, bucket=DEFAULT_BUCKET, key=KEY,
                                                   expires=timedelta(seconds=30 if stale else 300), now=now)
        return PresignedRequest(signed.url, signed.headers)

    def __call__(self, op: str, part_number: int | None) -> PresignedRequest:
        assert op == "get" and part_number is None
        if self.is_async:
            async def later() -> PresignedRequest:
                await asyncio.sleep(0.001)
                return self._sign()
            return later()  # type: ignore[return-value]
        return self._sign()


async def download(srv: FakeOssServer, plugin: PresignedRangeDownload, dest: Path, *, conc: int = 4):
    task = (DownloadPounceBuilder("f", dest, 64 * KIB, srv.object_url(DEFAULT_BUCKET, KEY))
            .with_breakpoint_download(plugin).with_max_chunk_concurrency(conc).build())
    client = MeowClient(fast_config())
    rec = Recorder()
    try:
        tid = await client.try_enqueue(task, rec.progress)
        return await rec.wait_terminal(tid)
    finally:
        await client.close()


# ----------------------------------------------------------------------------------------------------------------
# units
# ----------------------------------------------------------------------------------------------------------------
def test_presigned_request_validates_and_hides_its_signature() -> None:
    req = PresignedRequest("https://h/b/k?x-oss-signature=deadbeef&x-oss-expires=60", {"x-oss-meta-a": "1"})
    assert "deadbeef" not in repr(req) and "x-oss-expires=60" in repr(req)
    assert PresignedRequest("https://h/k").headers == {}
    with pytest.raises(TypeError):
        PresignedRequest("")
    with pytest.raises(TypeError):
        PresignedRequest("https://h/k", {"a": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        PresignedRequest("https://h/k", expires_at=datetime(2030, 1, 1))


def test_expiry_rejections() -> None:
    assert is_expired_rejection(403, "AccessDenied", "Request has expired.")
    assert is_expired_rejection(403, "", "")  # any 403 on a presigned URL is worth one fresh URL
    assert is_expired_rejection(400, "ExpiredRequest", "")
    assert is_expired_rejection(400, "InvalidArgument", "Request has expired")
    assert not is_expired_rejection(400, "InvalidArgument", "x-oss-expires must be 1..604800.")
    assert not is_expired_rejection(404, "NoSuchKey", "expired")
    assert not is_expired_rejection(500, "InternalError", "")


@pytest.mark.asyncio
async def test_the_cache_reuses_one_url_per_op_and_part_until_it_is_rejected() -> None:
    asked: list[tuple[str, int | None]] = []

    def source(op: str, part: int | None) -> PresignedRequest:
        asked.append((op, part))
        return PresignedRequest(f"https://h/k?op={op}&part={part}&n={len(asked)}")

    cache = presigned_leases(source)
    a = await cache.get(UrlKey("upload_part", 1))
    assert (await cache.get(UrlKey("upload_part", 1))) == a
    b = await cache.get(UrlKey("upload_part", 2))
    assert a.value.url != b.value.url and len(asked) == 2
    renewed = await cache.renew(UrlKey("upload_part", 1), a.generation)
    assert renewed.generation != a.generation and len(asked) == 3
    # A second failure with the old URL (another request that was in flight) doesn't ask again.
    assert (await cache.renew(UrlKey("upload_part", 1), a.generation)) == renewed and len(asked) == 3
    cache.discard(UrlKey("upload_part", 2))
    await cache.get(UrlKey("upload_part", 2))
    assert len(asked) == 4 and cache.asked == 4


@pytest.mark.asyncio
async def test_concurrent_asks_share_one_call_and_a_url_near_expiry_is_replaced() -> None:
    calls = 0

    async def source(op: str, part: int | None) -> PresignedRequest:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        soon = datetime.now(UTC) + timedelta(seconds=5 if calls == 1 else 600)
        return PresignedRequest(f"https://h/k?n={calls}", expires_at=soon)

    cache = presigned_leases(source, refresh_margin=timedelta(seconds=30))
    leases = await asyncio.gather(*(cache.get(GET) for _ in range(5)))
    assert calls == 1 and len({lease.value.url for lease in leases}) == 1
    fresh = await cache.get(GET)  # the first URL expires within the margin: ask before it is refused
    assert calls == 2 and fresh.value.url.endswith("n=2")
    assert (await cache.get(GET)) == fresh and calls == 2


@pytest.mark.asyncio
async def test_source_failures_become_meow_errors_without_urls() -> None:
    def unsupported(op: str, part: int | None) -> PresignedRequest:
        raise NotImplementedError("no head URLs here")

    def flaky(op: str, part: int | None) -> PresignedRequest:
        raise ConnectionError("backend down at https://backend/presign?token=s3cr3t")

    def wrong(op: str, part: int | None) -> str:
        return "https://h/k"

    with pytest.raises(MeowError) as info:
        await ask_source(unsupported, "head")
    assert info.value.code == InnerErrorCode.PARAMETER_EMPTY and not info.value.retryable
    with pytest.raises(MeowError) as info:
        await ask_source(flaky, "get")
    assert info.value.code == InnerErrorCode.HTTP_ERROR and info.value.retryable
    assert "s3cr3t" not in info.value.msg
    with pytest.raises(MeowError) as info:
        await ask_source(wrong, "get")
    assert "PresignedRequest" in info.value.msg
    with pytest.raises(ValueError):
        await ask_source(flaky, "list")


@pytest.mark.asyncio
async def test_the_upload_id_is_passed_only_to_sources_that_take_it() -> None:
    seen: list[object] = []

    def plain(op: str, part: int | None) -> PresignedRequest:
        seen.append(("plain", op, part))
        return PresignedRequest("https://h/k")

    def keyed(op: str, part: int | None, *, upload_id: str | None = None) -> PresignedRequest:
        seen.append(("keyed", op, part, upload_id))
        return PresignedRequest("https://h/k")

    class Backend:
        def __call__(self, op: str, part: int | None, **context: object) -> PresignedRequest:
            seen.append(("kwargs", context.get("upload_id")))
            return PresignedRequest("https://h/k")

    await ask_source(plain, "upload_part", 3, "U1")
    await ask_source(keyed, "upload_part", 3, "U1")
    await ask_source(Backend(), "complete", None, "U2")
    assert seen == [("plain", "upload_part", 3), ("keyed", "upload_part", 3, "U1"), ("kwargs", "U2")]


# ----------------------------------------------------------------------------------------------------------------
# the generic presigned range download, through the engine
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("is_async", [False, True])
async def test_presigned_range_download_probes_with_a_ranged_get(srv: FakeOssServer, tmp_path: Path,
                                                                 is_async: bool) -> None:
    source = GetSource(srv, is_async=is_async)
    final = await download(srv, PresignedRangeDownload(source), tmp_path / "f")
    assert final.status is S.COMPLETE, final.error
    assert hashlib.sha256((tmp_path / "f").read_bytes()).digest() == hashlib.sha256(DATA).digest()
    assert source.calls == 1  # one URL for the whole download
    assert srv.count_op("HeadObject") == 0
    gets = [c for c in srv.calls if c.op == "GetObject"]
    assert gets[0].headers.get("range") == "bytes=0-0" and len(gets) > 4
    assert all(c.auth == "query" and c.status == 206 for c in gets)


@pytest.mark.asyncio
async def test_an_expired_url_is_renewed_once_and_the_download_completes(srv: FakeOssServer, tmp_path: Path) -> None:
    source = GetSource(srv, expired=1)
    final = await download(srv, PresignedRangeDownload(source), tmp_path / "f")
    assert final.status is S.COMPLETE, final.error
    assert (tmp_path / "f").read_bytes() == DATA
    assert source.calls == 2 and srv.count_op("GetObject", status=403) == 1


@pytest.mark.asyncio
async def test_parallel_requests_refused_together_renew_the_url_once(srv: FakeOssServer, tmp_path: Path) -> None:
    class ServerTimeSource(GetSource):
        """Signs on the server's clock with a one-minute lifetime."""

        def _sign(self) -> PresignedRequest:
            self.calls += 1
            url = build_object_url(self.srv.endpoint, DEFAULT_BUCKET, KEY)
            signed = self.srv.signer().presign_request("GET", url, bucket=DEFAULT_BUCKET, key=KEY,
                                                       expires=timedelta(seconds=60), now=self.srv.server_now())
            return PresignedRequest(signed.url, signed.headers)

    class ExpiresAfterProbe(PresignedRangeDownload):
        async def merge_range_get_headers(self, ctx):  # type: ignore[no-untyped-def]
            if srv.clock_offset == 0:
                srv.clock_offset = 120  # two minutes pass: the probe's URL is expired for every first range
            await super().merge_range_get_headers(ctx)

    source = ServerTimeSource(srv)
    final = await download(srv, ExpiresAfterProbe(source), tmp_path / "f", conc=4)
    assert final.status is S.COMPLETE, final.error
    assert (tmp_path / "f").read_bytes() == DATA
    assert srv.count_op("GetObject", status=403) == 4
    assert source.calls == 2  # four refusals of the same URL: one renewal


@pytest.mark.asyncio
async def test_a_url_that_stays_refused_fails_without_looping(srv: FakeOssServer, tmp_path: Path) -> None:
    source = GetSource(srv, always_expired=True)
    final = await download(srv, PresignedRangeDownload(source), tmp_path / "f")
    assert final.status is S.FAILED and final.error is not None and final.error.status == 403
    assert source.calls == 2
    assert "x-oss-signature" not in final.error.msg or "REDACTED" in final.error.msg


@pytest.mark.asyncio
async def test_a_waiter_is_not_cancelled_with_the_coroutine_that_was_asking() -> None:
    calls = 0

    async def source(op: str, part: int | None) -> PresignedRequest:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return PresignedRequest(f"https://h/k?n={calls}")

    cache = presigned_leases(source)
    first = asyncio.ensure_future(cache.get(GET))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(cache.get(GET))
    await asyncio.sleep(0.01)
    first.cancel()
    lease = await second
    assert lease.value.url.endswith("n=2") and first.cancelled()
