"""Plugin contracts: how a provider takes over the wire protocol of an upload or a download.

The engine owns scheduling, retry, checkpoints, files and progress; a plugin only shapes requests and reads
responses. Hooks may be plain functions or coroutines (the engine awaits what needs awaiting), so a plugin
can fetch a fresh presigned URL from its backend lazily, per part.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from app.engine.redact import redact_headers, redact_url

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from app.engine.config import BreakpointDownloadHttpConfig
    from app.engine.record import Direction
    from app.engine.wire import Body


def _safe_value(name: str, value: Any) -> str:
    """A field as a repr may show it: URLs without their signatures, credential headers as REDACTED, a part's bytes
    as their count, clients and tasks elided."""
    if name == "url" and isinstance(value, str):
        return repr(redact_url(value))
    if name == "headers" and isinstance(value, dict | tuple | list):
        pairs = value.items() if isinstance(value, dict) else value
        return repr(dict(redact_headers(list(pairs))))
    if name == "chunk" and isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if name in ("client", "part") and value is not None:
        return ".."
    return repr(value)


class _SafeRepr:
    """A dataclass repr that never shows a secret: plugin contexts carry signed URLs, Authorization headers and
    bearer tokens, and reprs end up in logs, tracebacks and error messages."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={_safe_value(f.name, getattr(self, f.name))}"
                          for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return f"{type(self).__name__}({shown})"


@dataclass(frozen=True, repr=False)
class TransferTask(_SafeRepr):
    """Read-only view of a task given to plugins, built fresh for every run (so it reflects the probe)."""

    direction: Direction
    file_name: str
    file_path: str
    url: str
    method: str
    headers: tuple[tuple[str, str], ...]
    chunk_size: int
    total_size: int
    file_sign: str
    breakpoint_download_http: BreakpointDownloadHttpConfig


@dataclass(frozen=True)
class UploadResumeInfo:
    """A server's answer about an upload: done (``completed_file_id``), where to go on (``next_byte``),
    or, for protocols with independent parts, which byte ranges the server already holds."""

    completed_file_id: str | None = None
    next_byte: int | None = None
    done_ranges: tuple[tuple[int, int], ...] | None = None  # half-open [start, end)


@dataclass(repr=False)
class UploadPrepareCtx(_SafeRepr):
    client: httpx.AsyncClient
    task: TransferTask
    local_offset: int


class UploadPart(Protocol):
    """One part of an upload, as the engine hands it to a plugin: never read whole into memory.

    :meth:`send` is the one way parts travel, for every provider: the body streams from the file in batches on the
    engine's data path, in a worker thread, with timeouts that bound a stall (never the part's duration), the
    transfer's rate limits and progress, and cooperative pause and cancel. The answer comes back read (at most
    :data:`app.engine.upload.MAX_ANSWER` bytes of it) as an ``httpx.Response``."""

    offset: int
    length: int

    def body(self, head: bytes = b"", tail: bytes = b"") -> Body:
        """The part's bytes (between ``head`` and ``tail``, e.g. multipart framing) as a request body."""
        ...

    async def digest(self, algorithm: str) -> bytes:
        """A digest of the part's bytes (``"md5"`` for a Content-MD5 header), read once in a worker thread."""
        ...

    async def send(self, method: str, url: str, headers: Mapping[str, str], body: Body, what: str
                   ) -> httpx.Response: ...


@dataclass(repr=False)
class UploadChunkCtx(_SafeRepr):
    """One part to upload. ``part`` is always set by the engine. ``chunk`` holds the part's bytes only for a plugin
    that does not declare ``streams_parts = True`` (the seed's contract: the part in memory); a streaming plugin
    builds its body from ``part`` instead."""

    client: httpx.AsyncClient
    task: TransferTask
    chunk: bytes | None
    offset: int
    part: UploadPart | None = None

    @property
    def index(self) -> int:
        """Zero-based part index on the task's chunk grid."""
        return self.offset // self.task.chunk_size

    @property
    def length(self) -> int:
        if self.part is not None:
            return self.part.length
        return len(self.chunk or b"")


@runtime_checkable
class BreakpointUpload(Protocol):
    """Upload wire protocol. ``parallel_parts`` says parts may travel at once and in any order.

    Optional: ``part_size(total, requested) -> int`` lets a protocol with part-count limits grow the part size
    (the engine then uses it for reading, resuming and ``ctx.index``); ``streams_parts = True`` says the plugin sends
    ``ctx.part`` (streamed from the file) and needs no ``ctx.chunk`` in memory.
    """

    parallel_parts: bool

    async def prepare(self, ctx: UploadPrepareCtx) -> UploadResumeInfo: ...

    async def upload_chunk(self, ctx: UploadChunkCtx) -> UploadResumeInfo: ...

    async def complete_upload(self, client: httpx.AsyncClient, task: TransferTask) -> str | None: ...

    async def abort_upload(self, client: httpx.AsyncClient, task: TransferTask) -> None: ...


@dataclass(repr=False)
class DownloadHeadCtx(_SafeRepr):
    """The probe request being built. A plugin may switch ``method`` to GET (with ``Range: bytes=0-0``) where
    HEAD is not allowed, and may rewrite ``url`` (e.g. a freshly presigned one). ``extra`` is the plugin's own:
    what it puts there (say the ``generation`` of the URL it used) comes back in an :class:`AuthRefreshCtx`."""

    task: TransferTask
    url: str
    headers: dict[str, str]
    method: str = "HEAD"
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, repr=False)
class AuthRefreshCtx(_SafeRepr):
    """What a plugin learns when a request it built was refused (401/403): the task, the engine's client (for a
    request of its own), the refusal's status and headers (an OSS ``x-oss-ec``, a ``Date`` to learn clock skew
    from), and the ``generation`` the plugin put in the refused request's ``extra`` (so parallel requests refused
    with one expired URL renew it once)."""

    task: TransferTask
    client: httpx.AsyncClient
    status: int
    headers: Mapping[str, str]
    generation: object | None = None


@dataclass(repr=False)
class DownloadRangeGetCtx(_SafeRepr):
    task: TransferTask
    url: str
    range_value: str
    start: int
    end: int | None  # inclusive; None for an open-ended range
    headers: dict[str, str]
    validator: str | None = None  # the ETag the engine expects, for If-Match / If-Range
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class BreakpointDownload(Protocol):
    """Download wire protocol: the seed's four hooks (each may be sync or async).

    Optional: ``refresh_after_auth_failure(ctx: AuthRefreshCtx) -> bool`` is called once per position when a
    request gets 401 or 403; returning True (after renewing an expired presigned/SAS URL, or learning the clock's
    skew) re-sends the request.
    ``verify_download(part_path, total)`` runs in a worker thread once every byte is on disk, before the file is
    renamed into place; raising MeowError (CHECKSUM_MISMATCH) fails the task and discards the bytes.
    """

    def head_url(self, task: TransferTask) -> str: ...

    def merge_head_headers(self, ctx: DownloadHeadCtx) -> None: ...

    def merge_range_get_headers(self, ctx: DownloadRangeGetCtx) -> None: ...

    def total_size_from_head(self, headers: httpx.Headers) -> int | None: ...
