"""The engine's one public import point (the seed's ``rusty_cat::api``). It names no provider: the provider
plugins are in :mod:`app.providers.api`, built on the engine's plugin SDK (:mod:`app.engine.plugin_sdk`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.engine.callbacks import CompleteCallback, ProgressCallback
from app.engine.checkpoint import CheckpointError, DownloadCheckpoint
from app.engine.client import MeowClient
from app.engine.config import BreakpointDownloadHttpConfig, MeowConfig, MeowConfigBuilder, RangeIgnoredPolicy
from app.engine.default_upload import DefaultStyleUpload, MultipartBody
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.ids import GlobalProgressListenerId, TaskId
from app.engine.log import (
    DebugLogListener,
    DebugLogListenerError,
    Log,
    LogLevel,
    debug_log_listener_active,
    emit,
    emit_lazy,
    set_debug_log_listener,
    try_set_debug_log_listener,
)
from app.engine.protocols import (
    AuthRefreshCtx,
    BreakpointDownload,
    BreakpointUpload,
    DownloadHeadCtx,
    DownloadRangeGetCtx,
    TransferTask,
    UploadChunkCtx,
    UploadPrepareCtx,
    UploadResumeInfo,
)
from app.engine.record import Direction, FileTransferRecord, TransferSnapshot, TransferStatus
from app.engine.redact import redact_url
from app.engine.standard_download import StandardRangeDownload
from app.engine.task import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_CHUNK_RETRIES,
    DEFAULT_MAX_UPLOAD_PREPARE_RETRIES,
    DownloadPounceBuilder,
    PounceTask,
    UploadPounceBuilder,
)

if TYPE_CHECKING:
    import httpx

    from app.engine.network import Network

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_CHUNK_RETRIES",
    "DEFAULT_MAX_UPLOAD_PREPARE_RETRIES",
    "AuthRefreshCtx",
    "BreakpointDownload",
    "BreakpointDownloadHttpConfig",
    "BreakpointUpload",
    "CheckpointError",
    "CompleteCallback",
    "DebugLogListener",
    "DebugLogListenerError",
    "DefaultStyleUpload",
    "Direction",
    "DownloadCheckpoint",
    "DownloadHeadCtx",
    "DownloadPounceBuilder",
    "DownloadRangeGetCtx",
    "FileTransferRecord",
    "GlobalProgressListenerId",
    "InnerErrorCode",
    "Log",
    "LogLevel",
    "MeowClient",
    "MeowConfig",
    "MeowConfigBuilder",
    "MeowError",
    "MultipartBody",
    "PounceTask",
    "ProgressCallback",
    "RangeIgnoredPolicy",
    "StandardRangeDownload",
    "TaskId",
    "TransferSnapshot",
    "TransferStatus",
    "TransferTask",
    "UploadChunkCtx",
    "UploadPounceBuilder",
    "UploadPrepareCtx",
    "UploadResumeInfo",
    "debug_log_listener_active",
    "emit",
    "emit_lazy",
    "new_http_client",
    "redact_url",
    "set_debug_log_listener",
    "try_set_debug_log_listener",
]


def new_http_client(config: MeowConfig, timeout: float | None = None, *,
                    network: Network | None = None) -> httpx.AsyncClient:
    """A new httpx client whose requests go where the engine's go: through ``config``'s proxy (or the environment's,
    as curl reads it) and trusting its CA bundle on top of the system's certificates.

    For a program's own requests beside its transfers (connection tests, probes, a signing service), so that they
    never take a different route than the transfers. The caller owns and closes it. ``timeout`` bounds each
    connect/read/write (default: ``config.http_timeout``). ``network`` (``config.network()``) may be passed to share
    one proxy resolution and one TLS context between many short-lived clients."""
    from app.engine.http import build_client

    return build_client(network if network is not None else config.network(),
                        config.http_timeout if timeout is None else timeout, config.tcp_keepalive)
