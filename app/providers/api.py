"""The providers' one import point: the option objects for the engine builders, named as in the seed.

The engine (``app.engine.api``) knows no provider, so a program that only moves plain HTTP never loads a signer;
one that talks to a service imports its plugins from here.
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
