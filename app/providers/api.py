"""The providers' one import point: the option objects for the engine builders, named as in the seed.

``app.engine.api`` re-exports these names lazily (on first access), so the engine itself never imports
provider code; programs that only move plain HTTP never load a signer.
"""

from __future__ import annotations

from app.providers.aliyun_oss import (
    AliOssDirectDownload,
    AliOssDirectUpload,
    AliOssPresignedDownload,
    AliOssPresignedUpload,
    OssCredentials,
)
from app.providers.azure_blob import (
    AzureBlobDirectDownload,
    AzureBlobDirectUpload,
    AzureBlobSasDownload,
    AzureBlobSasUpload,
    AzureSharedKey,
)
from app.providers.presigned import PresignedRangeDownload, PresignedRequest, UrlSource
from app.providers.session_store import UploadSessionStore

__all__ = [
    "AliOssDirectDownload", "AliOssDirectUpload", "AliOssPresignedDownload", "AliOssPresignedUpload",
    "AzureBlobDirectDownload", "AzureBlobDirectUpload", "AzureBlobSasDownload", "AzureBlobSasUpload",
    "AzureSharedKey", "OssCredentials", "PresignedRangeDownload", "PresignedRequest", "UploadSessionStore",
    "UrlSource",
]
