"""Provider-neutral presigned-URL primitives: where per-request URLs come from, how they are cached and renewed,
and a range download driven by nothing but a presigned GET URL.

Why it is shaped like this:

* Presigned URLs expire, sometimes long before a large transfer ends, so they are never all fetched up front. A
  :class:`UrlSource` -- a callable the application supplies, usually a call to its own backend -- is asked lazily,
  per operation and per part, and asked *again* only when the service rejects a URL as expired (any 403, or a 400
  whose error says "expired"). :func:`presigned_leases` keeps one URL per :class:`UrlKey` until it is rejected, and
  collapses concurrent renewals of the same URL into one question to the source.
* A presigned request must carry exactly the signed headers the issuer returned: adding a signed kind of header
  (an ``x-oss-*`` header, Content-Type, Content-MD5) breaks the signature, leaving one out does too. So
  :class:`PresignedRequest` carries the URL *and* those headers, and callers send them verbatim, with bodies passed as
  raw bytes so httpx adds no Content-Type.
* HEAD is refused on URLs presigned for GET (the method is signed), so :class:`PresignedRangeDownload` probes with a
  one-byte ranged GET instead.
* A presigned URL is a bearer credential: ``repr`` of a :class:`PresignedRequest` is redacted, and nothing here logs
  a URL other than through :func:`app.engine.redact.redact_url`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from app.engine.plugin_sdk import InnerErrorCode, MeowError, content_length, redact_headers, redact_text, redact_url
from app.providers.leases import Leases

if TYPE_CHECKING:
    import httpx

    from app.engine.plugin_sdk import AuthRefreshCtx, DownloadHeadCtx, DownloadRangeGetCtx, TransferTask

__all__ = [
    "GET",
    "OPS",
    "PresignedRangeDownload",
    "PresignedRequest",
    "UrlKey",
    "UrlSource",
    "ask_source",
    "is_expired_rejection",
    "presigned_leases",
]

#: The operations a URL source may be asked for.
OPS = frozenset({"get", "head", "initiate", "upload_part", "complete", "abort"})

#: Error codes (S3, OSS, R2, GCS-XML) that mean "this signed request is too old", answered with 400 by some services.
EXPIRY_CODES = frozenset({"ExpiredRequest", "ExpiredToken", "RequestExpired", "TokenExpired", "ExpiredSignature"})


@dataclass(frozen=True)
class PresignedRequest:
    """One presigned request: the URL and exactly the signed headers the issuer says it must carry (no others).

    ``expires_at`` (aware UTC), when the issuer knows it, lets the cache re-ask a little before expiry instead of
    paying a rejected request first. ``repr`` hides the signature and any credential-like header.
    """

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url:
            raise TypeError("PresignedRequest.url must be a non-empty string")
        if not isinstance(self.headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()):
            raise TypeError("PresignedRequest.headers must be a dict of str to str")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("PresignedRequest.expires_at must be timezone-aware")

    def __repr__(self) -> str:
        return (f"PresignedRequest(url={redact_url(self.url)!r}, headers={dict(redact_headers(self.headers))!r}, "
                f"expires_at={self.expires_at!r})")

    __str__ = __repr__


class UrlSource(Protocol):
    """``source(op, part_number) -> PresignedRequest`` (or an awaitable of one).

    ``op`` is one of :data:`OPS`; ``part_number`` is the 1-based part for ``"upload_part"`` and None otherwise.
    Multipart sources usually also need the upload id the client got from "initiate": a source whose signature
    accepts a keyword ``upload_id`` (or ``**kwargs``) receives it. Raise ``NotImplementedError`` (or ``LookupError``
    / ``ValueError``) for an operation the issuer does not offer; any other exception counts as a transient failure.
    """

    def __call__(self, op: str, part_number: int | None, /) -> PresignedRequest | Awaitable[PresignedRequest]: ...


def _accepts_upload_id(source: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(source).parameters.values()
    except (TypeError, ValueError):
        return False
    return any((p.name == "upload_id" and p.kind is not p.POSITIONAL_ONLY) or p.kind is p.VAR_KEYWORD for p in params)


async def ask_source(source: Callable[..., Any], op: str, part_number: int | None = None,
                     upload_id: str | None = None) -> PresignedRequest:
    """Ask ``source`` for one URL, turning its failures into MeowErrors that say what was asked (never the URL).

    An operation the source does not offer is final; anything else it raises is retryable, because a URL issuer
    is typically a backend call that can fail transiently.
    """
    if op not in OPS:
        raise ValueError(f"unknown presigned operation {op!r}")
    try:
        if upload_id is not None and _accepts_upload_id(source):
            result = source(op, part_number, upload_id=upload_id)
        else:
            result = source(op, part_number)
        if inspect.isawaitable(result):
            result = await result
    except MeowError:
        raise
    except asyncio.CancelledError:
        raise
    except (NotImplementedError, LookupError, ValueError, TypeError) as exc:
        raise MeowError(InnerErrorCode.PARAMETER_EMPTY,
                        f"the URL source cannot issue a {op!r} URL{_part(part_number)}: "
                        f"{type(exc).__name__}: {redact_text(str(exc))[:200]}", retryable=False) from None
    except Exception as exc:
        raise MeowError(InnerErrorCode.HTTP_ERROR,
                        f"the URL source failed for {op!r}{_part(part_number)}: "
                        f"{type(exc).__name__}: {redact_text(str(exc))[:200]}", retryable=True) from None
    if not isinstance(result, PresignedRequest):
        raise MeowError(InnerErrorCode.PARAMETER_EMPTY,
                        f"the URL source returned {type(result).__name__} for {op!r}, not a PresignedRequest",
                        retryable=False)
    return result


def _part(part_number: int | None) -> str:
    return "" if part_number is None else f" (part {part_number})"


def is_expired_rejection(status: int, code: str | None = "", message: str | None = "") -> bool:
    """Whether a response may mean "the presigned URL expired", so asking the source once more is worth it.

    Any 403 qualifies: services word expiry differently (OSS AccessDenied "Request has expired", S3 AccessDenied,
    Azure AuthenticationFailed) and a fresh URL is cheap, while the caller still asks only once per request. A 400
    qualifies only with an expiry error code or message (R2-like services answer 400 ExpiredRequest).
    """
    if status == 403:
        return True
    if status != 400:
        return False
    return (code or "") in EXPIRY_CODES or "expired" in (message or "").lower()


class UrlKey(NamedTuple):
    """What one presigned URL is for: the operation, the part (``"upload_part"`` only) and the upload id (after
    "initiate", for sources that take it)."""

    op: str
    part_number: int | None = None
    upload_id: str | None = None


#: The URL of a download: the source's ``"get"``.
GET = UrlKey("get")


def presigned_leases(source: UrlSource | Callable[..., Any], *,
                     refresh_margin: timedelta = timedelta(seconds=30)) -> Leases[UrlKey, PresignedRequest]:
    """One URL per :class:`UrlKey`, asked of ``source`` at first use, reused until it is refused or about to expire
    (when the issuer says when), renewed once for a burst of parallel requests refused with it."""
    if not callable(source):
        raise TypeError("a URL source must be callable: (op, part_number) -> PresignedRequest")

    async def fetch(key: UrlKey) -> PresignedRequest:
        return await ask_source(source, key.op, key.part_number, key.upload_id)

    return Leases(fetch, what="presigned URL", expires_at=lambda request: request.expires_at,
                  refresh_margin=refresh_margin)


class PresignedRangeDownload:
    """A :class:`~app.engine.protocols.BreakpointDownload` for any S3/OSS-style presigned GET URL.

    The probe is ``GET Range: bytes=0-0`` (HEAD is refused on a URL presigned for GET); every ranged GET uses the
    source's current ``"get"`` URL and exactly its signed headers plus the unsigned Range / If-Match / Accept; a 401
    or 403 renews the URL through the source (the engine asks once per position). The task's own URL is only its
    identity and display name: give the builder the presigned GET URL or any stable URL of the object.

    ``If-Match`` is added from the probe's strong ETag: it is not a signed header on S3 or OSS presigned URLs, and it
    turns "the object changed mid-download" into a 412 the engine answers by starting over.
    """

    def __init__(self, source: UrlSource | Callable[..., Any], *,
                 refresh_margin: timedelta = timedelta(seconds=30)) -> None:
        self.urls = presigned_leases(source, refresh_margin=refresh_margin)

    def head_url(self, task: TransferTask) -> str:
        return task.url  # merge_head_headers puts the source's URL in its place

    async def merge_head_headers(self, ctx: DownloadHeadCtx) -> None:
        ctx.method = "GET"  # the engine then probes with Range: bytes=0-0
        await self._use_url(ctx)

    async def merge_range_get_headers(self, ctx: DownloadRangeGetCtx) -> None:
        await self._use_url(ctx)
        self.add_range_headers(ctx)

    async def _use_url(self, ctx: DownloadHeadCtx | DownloadRangeGetCtx) -> None:
        lease = await self.urls.get(GET)
        ctx.extra["generation"] = lease.generation  # comes back after a refusal: renew only a URL still current
        ctx.url = lease.value.url
        ctx.headers.update(lease.value.headers)

    def add_range_headers(self, ctx: DownloadRangeGetCtx) -> None:
        """Range, Accept and If-Match: unsigned on S3/OSS presigned URLs, so they never disturb the signature."""
        ctx.headers["Range"] = ctx.range_value
        ctx.headers["Accept"] = ctx.task.breakpoint_download_http.range_accept
        if ctx.validator and not ctx.validator.startswith("W/"):
            ctx.headers["If-Match"] = ctx.validator

    def total_size_from_head(self, headers: httpx.Headers) -> int | None:
        return content_length(headers)

    async def refresh_after_auth_failure(self, ctx: AuthRefreshCtx) -> bool:
        stale = ctx.generation if isinstance(ctx.generation, int) else None
        lease = await self.urls.renew(GET, stale)
        return lease.generation != stale
