"""The default download protocol: plain HTTP HEAD probe and ranged GETs (the seed's StandardRangeDownload)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.engine.errors import InnerErrorCode, MeowError
from app.engine.protocols import DownloadHeadCtx, DownloadRangeGetCtx, TransferTask

if TYPE_CHECKING:
    from app.engine.datapath import HeaderMap


def content_length(headers: HeaderMap) -> int | None:
    """Content-Length as an int; None when absent; MeowError(110) when present but not a number."""
    raw = headers.get("content-length")
    if raw is None:
        return None
    raw = raw.split(",")[0].strip()
    if not (raw.isascii() and raw.isdigit()):
        raise MeowError(InnerErrorCode.MISSING_OR_INVALID_CONTENT_LENGTH,
                        f"missing or invalid content-length from HEAD: {raw!r}")
    return int(raw)


class StandardRangeDownload:
    """Override any hook to add authentication or rewrite URLs; keep ``Range`` in the range headers."""

    def head_url(self, task: TransferTask) -> str:
        return task.url

    def merge_head_headers(self, ctx: DownloadHeadCtx) -> None:
        return None

    def merge_range_get_headers(self, ctx: DownloadRangeGetCtx) -> None:
        ctx.headers["Range"] = ctx.range_value
        ctx.headers["Accept"] = ctx.task.breakpoint_download_http.range_accept
        if ctx.validator and not ctx.validator.startswith("W/"):
            ctx.headers["If-Range"] = ctx.validator
        elif ctx.extra.get("last_modified"):
            ctx.headers["If-Range"] = str(ctx.extra["last_modified"])

    def total_size_from_head(self, headers: HeaderMap) -> int | None:
        return content_length(headers)
