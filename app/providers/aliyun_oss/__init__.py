"""Aliyun OSS building blocks: the V4 signer (header and presigned forms, clock-skew correction),
CRC-64/XZ as reported in ``x-oss-hash-crc64ecma``, and the multipart XML documents.

The transfer plugins (direct and presigned upload/download, in ``plugins``) are built on these; keeping the building
blocks separate lets the signer and checksum be pinned by the official SDK's vectors and a fake server without any
engine code.
The one-shot function is ``app.providers.aliyun_oss.crc64.crc64``; it is deliberately not re-exported here, because
a package attribute named ``crc64`` would shadow the ``crc64`` submodule.
"""

from __future__ import annotations

from app.providers.aliyun_oss.crc64 import Crc64, combine, format_crc64, parse_crc64
from app.providers.aliyun_oss.plugins import (
    AliOssDirectDownload,
    AliOssDirectUpload,
    AliOssPresignedDownload,
    AliOssPresignedUpload,
    clock_for_endpoint,
    file_crc64,
    oss_part_size,
)
from app.providers.aliyun_oss.signer import (
    ClockOffset,
    OssCredentials,
    OssV4Signer,
    SigningResult,
    build_object_url,
    encode_query,
    is_time_skewed,
    redact_headers,
    redact_url,
)
from app.providers.aliyun_oss.xml import (
    CompleteResult,
    InitiateResult,
    ListPartsPage,
    OssErrorInfo,
    OssXmlError,
    PartInfo,
    build_complete_body,
    parse_complete,
    parse_error,
    parse_initiate,
    parse_list_parts,
)

__all__ = [
    "AliOssDirectDownload",
    "AliOssDirectUpload",
    "AliOssPresignedDownload",
    "AliOssPresignedUpload",
    "ClockOffset",
    "CompleteResult",
    "Crc64",
    "InitiateResult",
    "ListPartsPage",
    "OssCredentials",
    "OssErrorInfo",
    "OssV4Signer",
    "OssXmlError",
    "PartInfo",
    "SigningResult",
    "build_complete_body",
    "build_object_url",
    "clock_for_endpoint",
    "combine",
    "encode_query",
    "file_crc64",
    "format_crc64",
    "is_time_skewed",
    "oss_part_size",
    "parse_complete",
    "parse_crc64",
    "parse_error",
    "parse_initiate",
    "parse_list_parts",
    "redact_headers",
    "redact_url",
]
