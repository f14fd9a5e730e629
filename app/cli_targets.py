"""What a CLI URL means: plain HTTP, an Azure SAS URL, an OSS presigned URL, or ``oss://ACCOUNT/bucket/key`` /
``azure://ACCOUNT/container/blob`` through a stored account (its secret read from the keyring here, at the
last moment, and handed to the provider plugin only)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import platformdirs

from app.accounts import AccountError, AccountStore, Provider


class TargetError(ValueError):
    """The URL names something that cannot work (unknown account, wrong provider, missing key): exit 2."""


@dataclass(frozen=True)
class Target:
    url: str  # the http(s) URL the engine task carries (its identity and display name)
    name: str | None  # the file name the URL implies; None: ask the server (Content-Disposition) or the URL
    upload: Any = None  # a BreakpointUpload, or None for the default chunk protocol
    download: Any = None  # a BreakpointDownload, or None for plain HTTP ranges


def session_dir() -> str:
    """Provider upload sessions (upload ids, part ETags; never secrets) live in the per-user state folder."""
    return str(platformdirs.user_state_path("rusty-cat") / "upload-sessions")


def is_storage_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("oss", "azure")


def is_oss_presigned(url: str) -> bool:
    return any(k.lower() == "x-oss-signature" for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _split_storage_url(url: str) -> tuple[str, str, str, str]:
    parts = urlsplit(url)
    scheme, account = parts.scheme.lower(), parts.netloc
    bucket, _, key = unquote(parts.path.lstrip("/")).partition("/")
    what = "bucket/key" if scheme == "oss" else "container/blob"
    if not account or not bucket or not key or key.endswith("/"):
        raise TargetError(f"expected {scheme}://ACCOUNT/{what}, got {url!r}")
    if parts.query or parts.fragment:
        raise TargetError(f"{scheme}:// URLs take no query or fragment: {url!r}")
    return scheme, account, bucket, key


def resolve(url: str, direction: str, store: AccountStore | None = None) -> Target:
    """The engine task URL and plugin for ``url``; ``direction`` is "upload" or "download"."""
    from app.providers.api import (
        AliOssDirectDownload,
        AliOssDirectUpload,
        AliOssPresignedDownload,
        AzureBlobDirectDownload,
        AzureBlobDirectUpload,
        AzureBlobSasDownload,
        AzureBlobSasUpload,
        AzureSharedKey,
        OssCredentials,
        PresignedRequest,
    )
    from app.providers.azure_blob import is_sas_url

    if is_storage_url(url):
        scheme, name, bucket, key = _split_storage_url(url)
        store = store or AccountStore()
        try:
            account = store.get(name)
        except AccountError as exc:
            raise TargetError(str(exc)) from None
        wanted = Provider.ALIYUN_OSS if scheme == "oss" else Provider.AZURE_BLOB
        if account.provider is not wanted:
            raise TargetError(f"account {name!r} is {account.provider.value}, not {wanted.value}")
        secret = store.secret(name)  # AccountError (keyring trouble) propagates: exit 1, not a usage error
        file_name = posixpath.basename(key)
        if scheme == "oss":
            assert account.access_key_id is not None and account.region is not None
            creds = OssCredentials(account.access_key_id, secret)
            common = {"bucket": bucket, "key": key, "endpoint": account.endpoint, "path_style": account.path_style}
            if direction == "upload":
                plugin = AliOssDirectUpload(creds, account.region, session_dir=session_dir(), **common)
                return Target(plugin.object_url, file_name, upload=plugin)
            plugin = AliOssDirectDownload(creds, account.region, **common)
            return Target(plugin.object_url, file_name, download=plugin)
        assert account.account_name is not None
        credential = AzureSharedKey(account.account_name, secret)
        blob_url = f"{account.endpoint}/{quote(bucket)}/{quote(key)}"
        if direction == "upload":
            return Target(blob_url, file_name, upload=AzureBlobDirectUpload(credential, session_dir=session_dir()))
        return Target(blob_url, file_name, download=AzureBlobDirectDownload(credential))
    if is_sas_url(url):
        name = posixpath.basename(unquote(urlsplit(url).path)) or None
        if direction == "upload":
            return Target(url, name, upload=AzureBlobSasUpload(None, session_dir=session_dir()))
        return Target(url, name, download=AzureBlobSasDownload(None))
    if is_oss_presigned(url):
        name = posixpath.basename(unquote(urlsplit(url).path)) or None
        if direction == "upload":
            raise TargetError("an OSS presigned URL signs a single request, but a resumable upload needs one URL per "
                              "part: use oss://ACCOUNT/bucket/key, or AliOssPresignedUpload with a URL source")
        return Target(url, name, download=AliOssPresignedDownload(lambda op, part: PresignedRequest(url)))
    return Target(url, None)
