"""The engine's one public import point (the seed's ``rusty_cat::api``)."""

from __future__ import annotations

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
    "redact_url",
    "set_debug_log_listener",
    "try_set_debug_log_listener",
]

#: Provider options, importable from here in the seed's style but loaded only when first used.
_PROVIDER_NAMES = frozenset({
    "AliOssDirectDownload", "AliOssDirectUpload", "AliOssPresignedDownload", "AliOssPresignedUpload",
    "AzureBlobDirectDownload", "AzureBlobDirectUpload", "AzureBlobSasDownload", "AzureBlobSasUpload",
    "AzureSharedKey", "OssCredentials", "PresignedRangeDownload", "PresignedRequest", "UploadSessionStore",
})


def __getattr__(name: str) -> object:
    if name in _PROVIDER_NAMES:
        from app.providers import api as providers

        return getattr(providers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
