"""What a provider plugin may use of the engine: its contracts and their contexts, errors, a part's request body,
the rules that classify a failure, the log, redaction helpers and durable file writes. Providers import the engine
through this module only (an import-linter contract in pyproject.toml checks it), so the engine's internals can
move without breaking a plugin, and what a plugin needs is written down in one place."""

from __future__ import annotations

from app.engine import log
from app.engine.checkpoint import write_atomic
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.failures import RETRYABLE_STATUSES, parse_retry_after, request_secrets, scrub, transport_error
from app.engine.protocols import (
    AuthRefreshCtx,
    BreakpointDownload,
    BreakpointUpload,
    DownloadHeadCtx,
    DownloadRangeGetCtx,
    TransferTask,
    UploadChunkCtx,
    UploadPart,
    UploadPrepareCtx,
    UploadResumeInfo,
)
from app.engine.redact import redact_headers, redact_text, redact_url, strip_query
from app.engine.standard_download import StandardRangeDownload, content_length
from app.engine.wire import Body, FileRange

__all__ = [
    "RETRYABLE_STATUSES",
    "AuthRefreshCtx",
    "Body",
    "BreakpointDownload",
    "BreakpointUpload",
    "DownloadHeadCtx",
    "DownloadRangeGetCtx",
    "FileRange",
    "InnerErrorCode",
    "MeowError",
    "StandardRangeDownload",
    "TransferTask",
    "UploadChunkCtx",
    "UploadPart",
    "UploadPrepareCtx",
    "UploadResumeInfo",
    "content_length",
    "log",
    "parse_retry_after",
    "redact_headers",
    "redact_text",
    "redact_url",
    "request_secrets",
    "scrub",
    "strip_query",
    "transport_error",
    "write_atomic",
]
