"""Azure Blob Storage building blocks: Shared Key signing, SAS URLs and block ids.

These are the protocol pieces the Azure provider plugins (direct and SAS upload/download) are
built from; they do no I/O themselves, so they can be tested against the documented algorithm,
the official SDK (as an oracle) and Azurite independently of the engine. The plugins themselves
(``AzureBlobDirectUpload``, ``AzureBlobSasUpload``, ``AzureBlobDirectDownload``,
``AzureBlobSasDownload``) live in ``plugins`` and are re-exported here for the engine builders.
"""

from __future__ import annotations

from .blocks import (
    BlockInfo,
    BlockList,
    block_id,
    block_list_xml,
    block_prefix,
    parse_block_id,
    parse_block_list,
)
from .plugins import (
    MAX_BLOCK_SIZE,
    MAX_BLOCKS,
    AzureBlobDirectDownload,
    AzureBlobDirectUpload,
    AzureBlobSasDownload,
    AzureBlobSasUpload,
    upload_block_prefix,
)
from .sas import SasUrl, SasUrlSource, append_query, is_sas_url
from .signer import (
    EMULATOR_ACCOUNT_KEY,
    EMULATOR_ACCOUNT_NAME,
    X_MS_VERSION,
    AzureSharedKey,
    range_header,
    string_to_sign,
)

__all__ = [
    "EMULATOR_ACCOUNT_KEY",
    "EMULATOR_ACCOUNT_NAME",
    "MAX_BLOCKS",
    "MAX_BLOCK_SIZE",
    "X_MS_VERSION",
    "AzureBlobDirectDownload",
    "AzureBlobDirectUpload",
    "AzureBlobSasDownload",
    "AzureBlobSasUpload",
    "AzureSharedKey",
    "BlockInfo",
    "BlockList",
    "SasUrl",
    "SasUrlSource",
    "append_query",
    "block_id",
    "block_list_xml",
    "block_prefix",
    "is_sas_url",
    "parse_block_id",
    "parse_block_list",
    "range_header",
    "string_to_sign",
    "upload_block_prefix",
]
