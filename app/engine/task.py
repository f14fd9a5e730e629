"""Transfer tasks and their builders (UploadPounceBuilder, DownloadPounceBuilder)."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.engine.config import BreakpointDownloadHttpConfig
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.protocols import BreakpointDownload, BreakpointUpload
from app.engine.record import Direction

DEFAULT_CHUNK_SIZE = 1 << 20
DEFAULT_MAX_CHUNK_RETRIES = 3
DEFAULT_MAX_UPLOAD_PREPARE_RETRIES = 3
MAX_RETRIES = 1000

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CHECKSUM_LENGTHS = {"sha256": 64, "md5": 32, "sha1": 40, "sha512": 128}

Headers = tuple[tuple[str, str], ...]


def normalize_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> Headers:
    """Validate header names/values up front: a bad header is a clear error, never silently skipped."""
    if headers is None:
        return ()
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    out: list[tuple[str, str]] = []
    for name, value in pairs:
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"invalid header name: {name!r}")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"invalid value for header {name}")
        out.append((name, value))
    return tuple(out)


def _check_retries(name: str, n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_RETRIES:
        raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"{name} must be an integer in 0..={MAX_RETRIES}, got {n!r}")
    return n


def _normalize_chunk(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 0:
        raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"chunk_size must be an integer >= 0, got {chunk_size!r}")
    return chunk_size or DEFAULT_CHUNK_SIZE


@dataclass(frozen=True)
class ExpectedChecksum:
    algorithm: str
    hex_digest: str

    def __post_init__(self) -> None:
        algo = self.algorithm.lower()
        digest = self.hex_digest.lower()
        if algo not in _CHECKSUM_LENGTHS:
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"unsupported checksum algorithm {self.algorithm!r} "
                            f"(use one of {', '.join(sorted(_CHECKSUM_LENGTHS))})")
        if len(digest) != _CHECKSUM_LENGTHS[algo] or any(c not in "0123456789abcdef" for c in digest):
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"{algo} checksum must be {_CHECKSUM_LENGTHS[algo]} "
                            f"hex digits, got {self.hex_digest!r}")
        object.__setattr__(self, "algorithm", algo)
        object.__setattr__(self, "hex_digest", digest)


@dataclass(frozen=True)
class PounceTask:
    """An executable, immutable transfer description. Build it with a PounceBuilder."""

    direction: Direction
    file_name: str
    file_path: str
    url: str
    chunk_size: int
    total_size: int = 0
    method: str = "POST"
    headers: Headers = ()
    upload_source: bytes | None = None
    source_mtime_ns: int | None = None
    client_file_sign: str | None = None
    breakpoint_upload: BreakpointUpload | None = None
    breakpoint_download: BreakpointDownload | None = None
    breakpoint_download_http: BreakpointDownloadHttpConfig | None = None
    max_chunk_retries: int = DEFAULT_MAX_CHUNK_RETRIES
    max_upload_prepare_retries: int = DEFAULT_MAX_UPLOAD_PREPARE_RETRIES
    max_chunk_concurrency: int | None = None
    rate_limit: int | None = None
    expected_checksum: ExpectedChecksum | None = None

    def validation_error(self) -> str | None:
        """Why this task cannot run, or None. (The seed's ``is_empty``, with a reason.)"""
        if not self.file_name:
            return "file_name is empty"
        if not self.url:
            return "url is empty"
        if self.direction is Direction.DOWNLOAD and not self.file_path:
            return "file_path (the download destination) is empty"
        if self.direction is Direction.UPLOAD:
            if self.upload_source is None and not self.file_path:
                return "upload has no source (neither file path nor bytes)"
            if self.total_size == 0:
                return "upload source is empty (0 bytes)"
        return None

    def __repr__(self) -> str:
        source = "None" if self.upload_source is None else f"Bytes(len={len(self.upload_source)})"
        parts = [
            f"direction: {self.direction.name}", f"file_name: {self.file_name!r}", f"file_path: {self.file_path!r}",
            f"upload_source: {'Some(' + source + ')' if self.upload_source is not None else 'None'}",
            f"total_size: {self.total_size}", f"chunk_size: {self.chunk_size}", f"url: {_redact(self.url)!r}",
            f"method: {self.method}", f"headers: [{', '.join(n for n, _ in self.headers)}]",
            f"client_file_sign: {self.client_file_sign!r}",
            f"breakpoint_upload: {'Some(..)' if self.breakpoint_upload is not None else 'None'}",
            f"breakpoint_download: {'Some(..)' if self.breakpoint_download is not None else 'None'}",
            f"breakpoint_download_http: {self.breakpoint_download_http!r}",
            f"max_chunk_retries: {self.max_chunk_retries}",
            f"max_upload_prepare_retries: {self.max_upload_prepare_retries}",
        ]
        return "PounceTask { " + ", ".join(parts) + " }"


def _redact(url: str) -> str:
    from app.engine.redact import redact_url

    return redact_url(url)


class UploadPounceBuilder:
    """Builds an upload task from a file (streamed from disk, never read whole) or from bytes."""

    def __init__(self, file_name: str, file_path: str | os.PathLike[str], chunk_size: int = 0) -> None:
        self._v: dict[str, Any] = {
            "direction": Direction.UPLOAD, "file_name": file_name, "file_path": os.fspath(file_path),
            "url": "", "chunk_size": _normalize_chunk(chunk_size), "method": "POST",
        }

    @classmethod
    def new(cls, file_name: str, file_path: str | os.PathLike[str], chunk_size: int = 0) -> UploadPounceBuilder:
        return cls(file_name, file_path, chunk_size)

    @classmethod
    def from_bytes(cls, file_name: str, data: bytes, chunk_size: int = 0) -> UploadPounceBuilder:
        builder = cls(file_name, "", chunk_size)
        return builder.with_bytes(data)

    def with_url(self, url: str) -> UploadPounceBuilder:
        self._v["url"] = url
        return self

    def with_file_path(self, path: str | os.PathLike[str]) -> UploadPounceBuilder:
        self._v["file_path"] = os.fspath(path)
        self._v["upload_source"] = None
        return self

    def with_bytes(self, data: bytes) -> UploadPounceBuilder:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, "with_bytes needs bytes")
        self._v["upload_source"] = bytes(data)
        return self

    def with_method(self, method: str) -> UploadPounceBuilder:
        if not isinstance(method, str) or not _TOKEN.match(method):
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"invalid HTTP method: {method!r}")
        self._v["method"] = method.upper()
        return self

    def with_headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> UploadPounceBuilder:
        self._v["headers"] = normalize_headers(headers)
        return self

    def with_breakpoint_upload(self, upload: BreakpointUpload) -> UploadPounceBuilder:
        self._v["breakpoint_upload"] = upload
        return self

    def with_max_chunk_retries(self, retries: int) -> UploadPounceBuilder:
        self._v["max_chunk_retries"] = _check_retries("max_chunk_retries", retries)
        return self

    def with_max_upload_prepare_retries(self, retries: int) -> UploadPounceBuilder:
        self._v["max_upload_prepare_retries"] = _check_retries("max_upload_prepare_retries", retries)
        return self

    def with_max_chunk_concurrency(self, n: int) -> UploadPounceBuilder:
        self._v["max_chunk_concurrency"] = _check_concurrency(n)
        return self

    def with_rate_limit(self, bytes_per_second: int | None) -> UploadPounceBuilder:
        self._v["rate_limit"] = check_rate(bytes_per_second)
        return self

    def build(self) -> PounceTask:
        """Reads the source file's metadata (size, mtime); raises MeowError(FILE_NOT_FOUND/IO_ERROR)."""
        v = dict(self._v)
        if v.get("upload_source") is not None:
            v["total_size"] = len(v["upload_source"])
            v["file_path"] = v["file_name"]
        elif v["file_path"]:
            v["total_size"], v["source_mtime_ns"] = stat_source(v["file_path"])
        return PounceTask(**v)


def stat_source(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise MeowError(InnerErrorCode.FILE_NOT_FOUND, f"upload source not found: {path}") from None
    except OSError as exc:
        raise MeowError(InnerErrorCode.IO_ERROR, f"cannot read upload source {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise MeowError(InnerErrorCode.IO_ERROR, f"upload source is a directory, not a file: {path}")
    if not stat.S_ISREG(st.st_mode):
        raise MeowError(InnerErrorCode.IO_ERROR, f"upload source is not a regular file: {path}")
    return st.st_size, st.st_mtime_ns


def _check_concurrency(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
        raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"chunk concurrency must be in 1..=64, got {n!r}")
    return n


def check_rate(rate: int | None) -> int | None:
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0):
        raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"rate limit must be a positive byte count, got {rate!r}")
    return rate


class DownloadPounceBuilder:
    """Builds a resumable range download of ``url`` into ``file_path``."""

    def __init__(self, file_name: str, file_path: str | os.PathLike[str], chunk_size: int, url: str) -> None:
        self._v: dict[str, Any] = {
            "direction": Direction.DOWNLOAD, "file_name": file_name, "file_path": os.fspath(file_path),
            "url": url, "chunk_size": _normalize_chunk(chunk_size), "method": "GET",
        }

    @classmethod
    def new(cls, file_name: str, file_path: str | os.PathLike[str], chunk_size: int, url: str) -> DownloadPounceBuilder:
        return cls(file_name, file_path, chunk_size, url)

    def with_url(self, url: str) -> DownloadPounceBuilder:
        self._v["url"] = url
        return self

    def with_file_path(self, path: str | os.PathLike[str]) -> DownloadPounceBuilder:
        self._v["file_path"] = os.fspath(path)
        return self

    def with_headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> DownloadPounceBuilder:
        self._v["headers"] = normalize_headers(headers)
        return self

    def with_client_file_sign(self, sign: str) -> DownloadPounceBuilder:
        self._v["client_file_sign"] = sign
        return self

    def with_breakpoint_download(self, download: BreakpointDownload) -> DownloadPounceBuilder:
        self._v["breakpoint_download"] = download
        return self

    def with_breakpoint_download_http(self, config: BreakpointDownloadHttpConfig) -> DownloadPounceBuilder:
        self._v["breakpoint_download_http"] = config
        return self

    def with_max_chunk_retries(self, retries: int) -> DownloadPounceBuilder:
        self._v["max_chunk_retries"] = _check_retries("max_chunk_retries", retries)
        return self

    def with_max_chunk_concurrency(self, n: int) -> DownloadPounceBuilder:
        self._v["max_chunk_concurrency"] = _check_concurrency(n)
        return self

    def with_rate_limit(self, bytes_per_second: int | None) -> DownloadPounceBuilder:
        self._v["rate_limit"] = check_rate(bytes_per_second)
        return self

    def with_expected_checksum(self, algorithm: str, hex_digest: str) -> DownloadPounceBuilder:
        self._v["expected_checksum"] = ExpectedChecksum(algorithm, hex_digest)
        return self

    def build(self) -> PounceTask:
        return PounceTask(**self._v)


def replace_task(task: PounceTask, **changes: Any) -> PounceTask:
    return dataclasses.replace(task, **changes)
