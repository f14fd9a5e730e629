"""The provider base: a refusal is renewed once and a failure told once, without the secrets the request carried;
parallel refusals with one leased URL renew it once; the OSS download learns clock skew from the refusal itself."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, ClassVar

import httpx
import pytest

from app.engine.api import AuthRefreshCtx, DownloadHeadCtx, InnerErrorCode
from app.providers.aliyun_oss import AliOssDirectDownload, ClockOffset
from app.providers.azure_blob import AzureBlobSasDownload
from app.providers.base import Attempt, ProviderBase, Request
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer

pytestmark = pytest.mark.timeout(30)

SIGNATURE = "c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw=="
SAS = "https://acct.blob.core.windows.net/c/b?sv=2021-08-06&sr=b&sp=r&sig="


class Service(ProviderBase):
    """Signs with a secret each attempt; renews after a refusal when told to."""

    retry_codes: ClassVar[Mapping[str, str]] = {"Damaged": "sent again"}

    def __init__(self, *, renewable: bool) -> None:
        self.renewable, self.renewed = renewable, 0

    async def authorize(self, request: Request) -> Attempt:
        return Attempt(f"{request.url}?sig={SIGNATURE}", {"Authorization": f"SharedKey acct:{SIGNATURE}"}, 1)

    async def renew(self, request: Request, attempt: Attempt, answer: httpx.Response) -> bool:
        self.renewed += 1
        return self.renewable

    def error_code(self, answer: httpx.Response) -> str:
        return answer.headers.get("x-error-code", "")

    def refused_hint(self, answer: httpx.Response) -> str:
        return "check the key"


def answering(status: int, code: str, seen: list[httpx.Request], **headers: str) -> httpx.AsyncClient:
    body = (f"<Error><Code>{code}</Code><Message>refused</Message><AuthenticationErrorDetail>the signature "
            f"'{SIGNATURE}' is wrong</AuthenticationErrorDetail><CanonicalRequest>GET {SIGNATURE}</CanonicalRequest>"
            "</Error>").encode()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers={"x-error-code": code, **headers}, content=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.asyncio
async def test_a_refusal_is_renewed_once_and_told_without_the_secrets_it_carried() -> None:
    seen: list[httpx.Request] = []
    service = Service(renewable=True)
    async with answering(403, "AuthenticationFailed", seen) as client:
        answer = await service.send(client, Request("PUT", "Put Thing", url="https://h/x", body=b"abc"))
    assert answer.status_code == 403 and len(seen) == 2 and service.renewed == 1  # renewed once, not twice
    assert seen[0].headers["content-length"] == "3"
    err = service.error(answer, "Put Thing")
    assert err.code == InnerErrorCode.RESPONSE_STATUS_ERROR and err.status == 403 and not err.retryable
    assert err.remote_code == "AuthenticationFailed" and err.msg.startswith("Put Thing failed: HTTP 403")
    assert "refused" in err.msg and "the signature" in err.msg and "(check the key)" in err.msg
    assert SIGNATURE not in err.msg and "CanonicalRequest" not in err.msg and "GET " not in err.msg


@pytest.mark.asyncio
async def test_busy_answers_and_codes_a_retry_cures_are_retryable() -> None:
    service = Service(renewable=False)
    async with answering(503, "ServerBusy", [], **{"Retry-After": "2"}) as client:
        err = service.error(await service.send(client, Request("GET", "Get Thing", url="https://h/x")), "Get Thing")
    assert err.retryable and err.retry_after == 2.0 and service.renewed == 0  # not a refusal: nothing renewed
    async with answering(400, "Damaged", []) as client:
        err = service.error(await service.send(client, Request("GET", "Get Thing", url="https://h/x")), "Get Thing")
    assert err.retryable and "(sent again)" in err.msg


@pytest.mark.asyncio
async def test_parallel_refusals_of_one_sas_url_renew_it_once() -> None:
    handed: list[str] = []

    async def source() -> str:
        handed.append(f"{SAS}n{len(handed)}")
        await asyncio.sleep(0.01)
        return handed[-1]

    plugin = AzureBlobSasDownload(source)
    task: Any = SimpleNamespace(url="https://acct.blob.core.windows.net/c/b", file_name="b")
    probe = DownloadHeadCtx(task=task, url=task.url, headers={})
    await plugin.merge_head_headers(probe)
    assert probe.url.endswith("n0") and len(handed) == 1
    refused = [AuthRefreshCtx(task=task, client=None, status=403, headers={},  # type: ignore[arg-type]
                              generation=probe.extra["generation"]) for _ in range(5)]
    assert all(await asyncio.gather(*(plugin.refresh_after_auth_failure(ctx) for ctx in refused)))
    assert len(handed) == 2  # one question for the five refusals
    again = DownloadHeadCtx(task=task, url=task.url, headers={})
    await plugin.merge_head_headers(again)
    assert again.url.endswith("n1") and again.extra["generation"] != probe.extra["generation"]


@pytest.mark.asyncio
async def test_the_oss_download_learns_skew_from_the_refusal_or_one_head_on_the_engines_client() -> None:
    with FakeOssServer(clock_offset=3600) as srv:
        srv.put_object(DEFAULT_BUCKET, "k", b"data")
        clock = ClockOffset()
        plugin = AliOssDirectDownload(srv.credentials, srv.region, bucket=DEFAULT_BUCKET, key="k",
                                      endpoint=srv.endpoint, clock=clock)
        async with httpx.AsyncClient() as client:
            probe = DownloadHeadCtx(task=None, url=plugin.object_url, headers={})  # type: ignore[arg-type]
            plugin.merge_head_headers(probe)
            refusal = await client.head(probe.url, headers=probe.headers)  # a HEAD's code is in x-oss-err
            assert refusal.status_code == 403 and "x-oss-err" in refusal.headers
            before = len(srv.calls)
            ctx = AuthRefreshCtx(task=None, client=client, status=403,  # type: ignore[arg-type]
                                 headers=dict(refusal.headers))
            assert await plugin.refresh_after_auth_failure(ctx)
            assert abs(clock.seconds - 3600) < 5 and len(srv.calls) == before  # learnt without a request

            clock.set(0)  # a refused GET keeps its code in the body: one signed HEAD on the engine's client tells
            ctx = AuthRefreshCtx(task=None, client=client, status=403,  # type: ignore[arg-type]
                                 headers={"Date": refusal.headers["date"]})
            assert await plugin.refresh_after_auth_failure(ctx)
            assert abs(clock.seconds - 3600) < 5 and [c.op for c in srv.calls[before:]] == ["HeadObject"] * 2
