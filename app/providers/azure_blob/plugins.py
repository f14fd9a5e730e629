"""Azure Blob Storage plugins for the engine: block blob upload and ranged download, by Shared Key or SAS.

The engine owns scheduling, retries, checkpoints and progress; these classes only shape Azure requests:

* ``AzureBlobDirectUpload`` / ``AzureBlobSasUpload``: Put Block per part (parts may travel in parallel) and
  Put Block List at the end. Block ids are deterministic (a per-upload prefix plus the part index, all of one
  length), so a rebuilt task after a process restart lists the blob's blocks (Get Block List) and skips every
  block it already staged: nothing completed is sent twice, and nothing is kept locally that the service
  does not confirm.
* ``AzureBlobDirectDownload`` / ``AzureBlobSasDownload``: a signed HEAD probe, then ranged GETs with
  ``x-ms-range`` and ``If-Match: <ETag>``, so a blob replaced mid-download answers 412 and the engine restarts
  cleanly instead of splicing two versions.

A SAS can come from a *URL source*: a string, or a callable (sync or async) the caller supplies to hand out a
fresh SAS URL. It is asked lazily (at first use, never at construction) and asked again once when the service
answers 403, which is how an expired SAS shows itself (reference §2.6, pitfall 12).

Secrets (the account key, a request's signature, a SAS ``sig``) never reach an error message, a log line, a
record or a session file: errors carry redacted URLs and response previews scrubbed of the values we sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import inspect
import math
import os
import time
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

import httpx

from app.engine import log
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.failures import status_error, transport_error
from app.engine.protocols import (
    AuthRefreshCtx,
    DownloadHeadCtx,
    DownloadRangeGetCtx,
    TransferTask,
    UploadChunkCtx,
    UploadPart,
    UploadPrepareCtx,
    UploadResumeInfo,
)
from app.engine.redact import REDACTED, redact_text, redact_url, strip_query
from app.engine.standard_download import StandardRangeDownload
from app.providers.session_store import UploadSessionStore, session_key

from .blocks import INDEX_WIDTH, MAX_PREFIX_LEN, BlockList, block_id, block_list_xml, block_prefix, parse_block_list
from .sas import SasUrl, append_query
from .signer import X_MS_VERSION, AzureSharedKey, range_header

__all__ = [
    "DEFAULT_BLOCK_PREFIX_LEN",
    "MAX_BLOCKS",
    "MAX_BLOCK_SIZE",
    "AzureBlobDirectDownload",
    "AzureBlobDirectUpload",
    "AzureBlobSasDownload",
    "AzureBlobSasUpload",
    "SasUrlSource",
    "upload_block_prefix",
]

#: A SAS URL, or a function (sync or async) returning a fresh one; asked lazily and again after a 403.
SasUrlSource = str | Callable[[], str | Awaitable[str]]

#: Service limits (reference §2.7): committed blocks per blob, and bytes per block (versions >= 2019-12-12).
MAX_BLOCKS = 50_000
MAX_BLOCK_SIZE = 4000 * 1024 * 1024
#: Hex characters of our own block id prefix: ids of 27 bytes, 36 base64 characters without padding.
DEFAULT_BLOCK_PREFIX_LEN = 20
#: The shortest prefix we accept when matching the id length of blocks already on the blob: 64 bits keep an
#: accidental match with another upload's ids out of reach, which matters because a match would be trusted.
MIN_MATCHED_PREFIX_LEN = 16
#: Cap on a server's Retry-After, as for the engine's own protocol (the engine's policy caps it again).
MAX_RETRY_AFTER = 60.0
#: Parts at least this big are hashed in a worker thread rather than on the event loop.
_HASH_OFF_LOOP = 256 * 1024
#: Download 403s from parallel ranges within this many seconds of a renewal share it instead of asking the
#: source again (the engine's hook gets no request identity to compare with).
_REFRESH_COALESCE = 2.0
#: Task headers that must not be forwarded to Put Block List (we set or sign them ourselves).
_OWN_HEADERS = frozenset({"x-ms-date", "x-ms-version", "authorization", "content-length", "content-md5", "host"})


def upload_block_prefix(blob_url: str, total: int, file_md5: str, part_size: int,
                        length: int = DEFAULT_BLOCK_PREFIX_LEN) -> str:
    """The block id prefix of one upload: a digest of the blob (URL without its query, so direct and SAS agree),
    the size, the content MD5 and the part size. Any change to these gives other ids, so blocks staged for
    different bytes or another part layout are never mistaken for ours. Public so a cleanup tool (or a test)
    can name an upload's blocks."""
    return block_prefix(strip_query(blob_url), total, file_md5, part_size, length=length)


def _b64_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def _md5_hex_to_b64(value: str) -> str | None:
    """The whole-content MD5 (the task's ``file_sign``) as Azure wants it, or None if it isn't an MD5."""
    if len(value) != 32:
        return None
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError:
        return None


def _scrub(preview: bytes, secrets: Iterable[str]) -> bytes:
    """Remove values we sent from an error body: real Azure echoes the request's MAC signature in
    ``AuthenticationErrorDetail``, which ``redact_text`` (URL-based) would not catch."""
    text = preview.decode("utf-8", errors="replace")
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text.encode("utf-8")


def _remote_secrets(headers: Mapping[str, str], url: str) -> list[str]:
    """Every secret-bearing value of one request, raw and percent-encoded: the Shared Key signature and the
    SAS ``sig``."""
    out: list[str] = []
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    if ":" in auth:
        out.append(auth.rsplit(":", 1)[1])
    for item in urlsplit(url).query.split("&"):
        name, _, value = item.partition("=")
        if unquote(name).lower() == "sig" and value:
            out += [value, unquote(value)]
    return [*out, *(quote(s, safe="") for s in out)]


def _with_hint(err: MeowError, hint: str, *, retryable: bool | None = None) -> MeowError:
    return MeowError(err.code, f"{err.msg} ({hint})" if hint else err.msg, status=err.status,
                     remote_code=err.remote_code, retryable=err.retryable if retryable is None else retryable,
                     retry_after=err.retry_after)


# ---------------------------------------------------------------------------------------------- SAS URL source
class _SasSource:
    """Where a SAS plugin gets its URL: fixed, from the task's own URL (``source=None``), or from a callable.

    ``generation`` counts renewals so that parallel parts failing with one expired URL renew it once: a part
    that failed on generation N re-sends on N+1 if someone already renewed, and only asks the source when
    nobody has.
    """

    def __init__(self, source: SasUrlSource | None, blob_name: str | None) -> None:
        if isinstance(source, str):
            SasUrl.parse(source)  # fail fast on a string that is no SAS (the message is redacted)
        elif source is not None and not callable(source):
            raise TypeError("sas_url must be a SAS URL string or a callable returning one")
        if blob_name is not None and (not blob_name or blob_name.startswith("/")):
            raise ValueError(f"invalid blob name {blob_name!r}")
        self._source = source
        self._blob_name = blob_name
        self._current: SasUrl | None = None
        self.generation = 0
        self._renewed_at = -math.inf
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary())

    @property
    def renewable(self) -> bool:
        return callable(self._source)

    def describe(self) -> str:
        if self._source is None:
            return "task URL"
        if isinstance(self._source, str):
            return redact_url(self._source)
        return "callable"

    def _lock(self) -> asyncio.Lock:
        """One lock per event loop: a plugin may serve several clients, each with its own loop."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    def _resolve(self, url: str, task: TransferTask) -> SasUrl:
        try:
            sas = SasUrl.parse(url)
            if sas.blob is None:  # a container SAS: the blob is named by the plugin, else by the task
                sas = sas.blob_url(self._blob_name or task.file_name)
        except ValueError as exc:  # SasUrl's messages are already redacted
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, str(exc), retryable=False) from None
        return sas

    async def _ask(self, task: TransferTask) -> SasUrl:
        source = self._source
        if isinstance(source, str):
            return self._resolve(source, task)
        assert callable(source)
        try:
            value = source()
            if inspect.isawaitable(value):
                value = await value
        except MeowError:
            raise
        except Exception as exc:  # the caller's backend failed: worth another attempt, like a network error
            raise MeowError(InnerErrorCode.HTTP_ERROR, f"the SAS URL source failed: {type(exc).__name__}: "
                            f"{redact_text(str(exc))}") from None
        if not isinstance(value, str):
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY,
                            f"the SAS URL source returned {type(value).__name__}, not a URL string", retryable=False)
        return self._resolve(value, task)

    async def current(self, task: TransferTask) -> tuple[SasUrl, int]:
        """The URL to use now and its generation; the source is first asked here, not at construction."""
        if self._source is None:
            return self._resolve(task.url, task), 0
        if self._current is None:
            async with self._lock():
                if self._current is None:
                    self._current = await self._ask(task)
        return self._current, self.generation

    async def renew(self, task: TransferTask, failed_generation: int | None) -> bool:
        """After a 403: True when a (possibly) fresh URL is there to try once more.

        ``failed_generation`` is the generation the refused request used (uploads know it); None (downloads)
        coalesces renewals within a short window instead.
        """
        if not self.renewable:
            return False
        async with self._lock():
            if failed_generation is not None and failed_generation != self.generation:
                return True  # a parallel part renewed it already
            if failed_generation is None and time.monotonic() - self._renewed_at < _REFRESH_COALESCE:
                return True
            self._current = await self._ask(task)
            self.generation += 1
            self._renewed_at = time.monotonic()
            log.info("azure_sas", "asked the SAS URL source for a fresh URL after 403")
            return True


def _expiry_hint(sas: SasUrl) -> str:
    if sas.expiry is not None and sas.expiry <= datetime.now(UTC):
        return f"the SAS URL expired at {sas.expiry.isoformat()}"
    return f"the SAS URL was refused: expired, wrong signature or missing permission (sp={sas.permissions})"


# ---------------------------------------------------------------------------------------------- upload
@dataclass(frozen=True)
class _Target:
    """How to address one blob for one request: the secret-free identity and how to authorise a request."""

    base: str  # scheme://host/path, no query: identity for block ids and sessions, safe to show
    url: Callable[[Mapping[str, object]], str]
    authorize: Callable[[str, str, dict[str, str]], dict[str, str]]
    generation: int | None = None
    sas: SasUrl | None = None


@dataclass(frozen=True)
class _Layout:
    """One upload's block grid and id prefix."""

    blob: str
    total: int
    part: int
    prefix: str
    count: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "count", -(-self.total // self.part))

    def size_of(self, index: int) -> int:
        return min(self.part, self.total - index * self.part)

    def block_id(self, index: int) -> str:
        return block_id(self.prefix, index)

    def ids(self) -> list[str]:
        return [self.block_id(i) for i in range(self.count)]


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: httpx.Headers
    content: bytes


class _BlockBlobUpload:
    """Block blob upload over Put Block / Get Block List / Put Block List; subclasses say how to authorise."""

    parallel_parts = True
    streams_parts = True

    def __init__(self, *, session_dir: str | os.PathLike[str] | None, block_size: int | None,
                 max_blocks: int) -> None:
        if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, int)
                                       or not 1 <= block_size <= MAX_BLOCK_SIZE):
            raise ValueError(f"block_size must be an int in 1..{MAX_BLOCK_SIZE}, got {block_size!r}")
        if isinstance(max_blocks, bool) or not isinstance(max_blocks, int) or not 1 <= max_blocks <= MAX_BLOCKS:
            raise ValueError(f"max_blocks must be an int in 1..{MAX_BLOCKS}, got {max_blocks!r}")
        self.block_size = block_size
        self.max_blocks = max_blocks
        self._sessions = UploadSessionStore(session_dir) if session_dir is not None else None
        # Prefix chosen by prepare() per upload identity; upload_chunk/complete_upload of the same run use it.
        self._prefixes: dict[tuple[str, int, str, int], str] = {}

    # -------------------------------------------------------------- what subclasses provide
    async def _target(self, task: TransferTask) -> _Target:
        raise NotImplementedError

    async def _renew(self, task: TransferTask, target: _Target) -> bool:
        """Called once per request after a 403; True re-sends it (a SAS source handed out a new URL)."""
        return False

    def _refused_hint(self, target: _Target) -> str:
        return "check the account name and key"

    # -------------------------------------------------------------- engine hooks
    def part_size(self, total: int, requested: int) -> int:
        """``block_size`` (or the task's chunk size), doubled until the blob needs at most ``max_blocks``
        blocks, as AzCopy does. Never raises (the engine calls it outside its error handling); a file too big
        even for 4000 MiB blocks is refused by ``prepare`` with a clear error."""
        size = self.block_size or requested or 8 * 1024 * 1024
        while size < MAX_BLOCK_SIZE and -(-total // size) > self.max_blocks:
            size = min(size * 2, MAX_BLOCK_SIZE)
        return size

    async def prepare(self, ctx: UploadPrepareCtx) -> UploadResumeInfo:
        """List the blob's blocks: our committed full list means done; our staged blocks become done ranges."""
        task = ctx.task
        target = await self._target(task)
        part = task.chunk_size  # the engine's view carries the part size part_size() chose
        count = -(-task.total_size // part)
        if count > self.max_blocks or part > MAX_BLOCK_SIZE:
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY,
                            f"{task.total_size} bytes need {count} blocks of {part} bytes; a block blob takes at "
                            f"most {self.max_blocks} blocks of at most {MAX_BLOCK_SIZE} bytes", retryable=False)
        reply = await self._call(ctx.client, task, "GET", {"comp": "blocklist", "blocklisttype": "all"},
                                 what="Azure Get Block List", ok=(200,), absent_ok=True)
        listed = BlockList((), ()) if reply is None else _parse_list(reply.content)
        layout = await self._choose_layout(ctx.client, task, target, listed, reply)
        self._remember(task, layout)

        committed = [(b.name, b.size) for b in listed.committed]
        if reply is not None and committed == [(layout.block_id(i), layout.size_of(i)) for i in range(layout.count)]:
            etag = reply.headers.get("etag")
            log.info("upload_prepare", f"{layout.blob} already holds this content (committed blocks match)")
            self._forget(task, layout)
            return UploadResumeInfo(completed_file_id=etag or "")

        done: set[int] = set()
        for block in (*listed.uncommitted, *listed.committed):  # Put Block List "Latest" finds either
            index = self._our_index(layout, block.name)
            if index is not None and block.size == layout.size_of(index):
                done.add(index)
        if done:
            log.info("upload_prepare", f"resuming {layout.blob}: {len(done)} of {layout.count} blocks already staged")
        ranges = tuple((i * layout.part, i * layout.part + layout.size_of(i)) for i in sorted(done))
        return UploadResumeInfo(done_ranges=ranges)

    async def upload_chunk(self, ctx: UploadChunkCtx) -> UploadResumeInfo:
        """Put Block with the part's MD5 (the service checks it); a retry re-sends the same id and bytes."""
        task = ctx.task
        target = await self._target(task)
        layout = self._layout(task, target)
        index = ctx.index
        expected = layout.size_of(index) if index < layout.count else 0
        if ctx.length != expected or ctx.part is None:
            raise MeowError(InnerErrorCode.INVALID_RANGE, f"part {index} has {ctx.length} bytes; the block "
                            f"grid of {layout.part} bytes expects {expected}")
        md5 = base64.b64encode(await ctx.part.digest("md5")).decode("ascii")
        await self._call(ctx.client, task, "PUT", {"comp": "block", "blockid": layout.block_id(index)},
                         {"Content-MD5": md5}, part=ctx.part, what=f"Azure Put Block {index}", ok=(201,))
        return UploadResumeInfo()

    async def complete_upload(self, client: httpx.AsyncClient, task: TransferTask) -> str | None:
        """Put Block List of every id in order; records the whole-content MD5; returns the blob's ETag.

        Idempotent: after a lost response the retry finds the blocks committed and commits them again.
        Task headers starting with ``x-ms-`` (``x-ms-blob-content-type``, ``x-ms-meta-*``) are sent here,
        because this request sets the blob's properties.
        """
        target = await self._target(task)
        layout = self._layout(task, target)
        body = block_list_xml(layout.ids())
        headers = {k: v for k, v in task.headers
                   if k.lower().startswith("x-ms-") and k.lower() not in _OWN_HEADERS}
        content_md5 = _md5_hex_to_b64(task.file_sign)
        if content_md5 and not any(k.lower() == "x-ms-blob-content-md5" for k in headers):
            headers["x-ms-blob-content-md5"] = content_md5
        headers.update({"Content-Type": "application/xml; charset=utf-8", "Content-MD5": _b64_md5(body)})
        reply = await self._call(client, task, "PUT", {"comp": "blocklist"}, headers, body,
                                 what="Azure Put Block List", ok=(201,))
        assert reply is not None
        self._forget(task, layout)
        return reply.headers.get("etag")

    async def abort_upload(self, client: httpx.AsyncClient, task: TransferTask) -> None:
        """Nothing remote: uncommitted blocks expire on their own (about a week) and deleting the blob could
        destroy an older committed version. Only the local session record goes."""
        try:
            target = await self._target(task)
        except MeowError:
            return
        for key in [k for k in self._prefixes if k[:3] == (target.base, task.total_size, task.file_sign)]:
            del self._prefixes[key]
        if self._sessions is not None:
            self._sessions.remove(self._session_key(target.base, task))

    # -------------------------------------------------------------- layout and sessions
    def _identity(self, blob: str, task: TransferTask) -> tuple[str, int, str, int]:
        return (blob, task.total_size, task.file_sign, task.chunk_size)

    def _layout(self, task: TransferTask, target: _Target) -> _Layout:
        prefix = self._prefixes.get(self._identity(target.base, task))
        if prefix is None:  # prepare() always runs first; this only covers a plugin used without it
            prefix = upload_block_prefix(target.base, task.total_size, task.file_sign, task.chunk_size)
        return _Layout(target.base, task.total_size, task.chunk_size, prefix)

    @staticmethod
    def _our_index(layout: _Layout, name: str) -> int | None:
        try:
            raw = base64.b64decode(name, validate=True).decode("ascii")
        except (binascii.Error, ValueError):
            return None
        prefix, sep, digits = raw[:-INDEX_WIDTH - 1], raw[-INDEX_WIDTH - 1:-INDEX_WIDTH], raw[-INDEX_WIDTH:]
        if prefix != layout.prefix or sep != "-" or not (digits.isascii() and digits.isdigit()):
            return None
        index = int(digits)
        return index if index < layout.count else None

    async def _choose_layout(self, client: httpx.AsyncClient, task: TransferTask, target: _Target,
                             listed: BlockList, reply: _Reply | None) -> _Layout:
        """Our ids normally have a fixed length, but the service wants every staged id of a blob to have one
        length: blocks left by another tool (say the SDK's 48-byte ids) would make our Put Block fail with 400
        InvalidBlobOrBlock. So match the length of the ids already there (staged first, else committed) when
        that leaves a prefix long enough to be unambiguous; the choice is stable, since a resumed run finds
        its own blocks of that length."""
        part = task.chunk_size

        def layout(length: int = DEFAULT_BLOCK_PREFIX_LEN) -> _Layout:
            prefix = upload_block_prefix(target.base, task.total_size, task.file_sign, part, length)
            return _Layout(target.base, task.total_size, part, prefix)

        reference = listed.uncommitted or listed.committed
        if not reference:
            return layout()
        try:
            length = len(base64.b64decode(reference[0].name, validate=True)) - INDEX_WIDTH - 1
        except (binascii.Error, ValueError):
            length = -1
        if MIN_MATCHED_PREFIX_LEN <= length <= MAX_PREFIX_LEN:
            return layout(length)
        if not listed.uncommitted:
            return layout()  # committed ids of another length don't constrain new staged blocks
        size = reply.headers.get("x-ms-blob-content-length", "") if reply is not None else ""
        if not listed.committed and size.strip() in ("", "0"):
            # Nothing committed to lose: committing an empty list discards the foreign staged blocks.
            log.warn("upload_prepare", f"discarding {len(listed.uncommitted)} foreign uncommitted blocks of "
                     f"{target.base} (their ids are too short to share a length with ours)")
            await self._call(client, task, "PUT", {"comp": "blocklist"},
                             {"Content-Type": "application/xml; charset=utf-8"}, block_list_xml([]),
                             what="Azure Put Block List (discard foreign blocks)", ok=(201,))
            return layout()
        raise MeowError(InnerErrorCode.INVALID_TASK_STATE,
                        f"{target.base} has {len(listed.uncommitted)} uncommitted blocks from another upload whose "
                        "ids are too short to share a length with ours; the service would refuse our blocks. "
                        "Commit or delete them (or wait about a week for them to expire) and retry",
                        retryable=False)

    def _session_key(self, blob: str, task: TransferTask) -> str:
        return session_key("azure-blob", blob, task.total_size, task.file_sign)

    def _remember(self, task: TransferTask, layout: _Layout) -> None:
        self._prefixes[self._identity(layout.blob, task)] = layout.prefix
        if self._sessions is None:
            return
        data = {"provider": "azure-blob", "blob": layout.blob, "total_size": layout.total,
                "part_size": layout.part, "block_prefix": layout.prefix, "blocks": layout.count}
        key = self._session_key(layout.blob, task)
        if self._sessions.load(key) != data:
            self._sessions.save(key, data)

    def _forget(self, task: TransferTask, layout: _Layout) -> None:
        self._prefixes.pop(self._identity(layout.blob, task), None)
        if self._sessions is not None:
            self._sessions.remove(self._session_key(layout.blob, task))

    # -------------------------------------------------------------- one request
    async def _call(self, client: httpx.AsyncClient, task: TransferTask, method: str, params: Mapping[str, object],
                    headers: Mapping[str, str] | None = None, body: bytes | None = None, *, what: str,
                    ok: tuple[int, ...], absent_ok: bool = False, part: UploadPart | None = None) -> _Reply | None:
        """Send one request (authorised afresh per attempt); the body of a success, None for an allowed 404.

        A part (``part``) travels on the engine's part send path, streamed from the file; other requests are small
        and go on the httpx client. Errors follow the engine's rules: 408/429/5xx retryable with Retry-After, 403
        final (after one renewal of a SAS), others final with ``x-ms-error-code`` as ``remote_code``.
        """
        renewed = False
        while True:
            target = await self._target(task)
            url = target.url(params)
            hdrs = dict(headers or {})
            length = part.length if part is not None else (len(body) if body is not None else None)
            if length is not None:
                hdrs["Content-Length"] = str(length)
            hdrs = target.authorize(method, url, hdrs)
            if part is not None:
                response = await part.send(method, url, hdrs, part.body(), what)
                preview = response.content[:4096]
            else:
                try:
                    response = await client.request(method, url, headers=hdrs, content=body)
                except httpx.HTTPError as exc:
                    raise transport_error(exc, what) from None
                preview = response.content[:4096]
            if response.status_code in ok:
                return _Reply(response.status_code, response.headers, response.content)
            if absent_ok and response.status_code == 404:
                return None
            preview = _scrub(preview, _remote_secrets(hdrs, url))
            if response.status_code == 403 and not renewed and await self._renew(task, target):
                renewed = True
                continue
            raise self._error(response, preview, what, target)

    def _error(self, response: httpx.Response, preview: bytes, what: str, target: _Target) -> MeowError:
        err = status_error(response.status_code, response.headers, f"{what} of {target.base} failed:", preview,
                           MAX_RETRY_AFTER)
        if err.remote_code == "Md5Mismatch":  # bytes damaged on the way: the same bytes again will do
            return _with_hint(err, "the block was damaged in transit", retryable=True)
        if err.status in (401, 403):
            return _with_hint(err, self._refused_hint(target))
        return err


def _parse_list(content: bytes) -> BlockList:
    try:
        return parse_block_list(content)
    except (ET.ParseError, ValueError) as exc:
        preview = redact_text(content[:300].decode("utf-8", errors="replace"))
        raise MeowError(InnerErrorCode.RESPONSE_PARSE_ERROR, f"Azure Get Block List: {exc}: {preview}") from None


class AzureBlobDirectUpload(_BlockBlobUpload):
    """Block blob upload signed with the account key (Shared Key); the task's URL is the blob URL
    (``https://ACCOUNT.blob.core.windows.net/container/blob``, or ``http://127.0.0.1:PORT/devstoreaccount1/…``
    on Azurite).

    ``block_size`` overrides the task's chunk size; either is doubled until the file needs at most
    ``max_blocks`` blocks. ``session_dir`` keeps a small secret-free record of each unfinished upload (blob,
    part size, block prefix), e.g. for a cleanup tool; resuming does not need it, since block ids are derived
    from the task and the service's block list is the truth.
    """

    def __init__(self, credential: AzureSharedKey, *, session_dir: str | os.PathLike[str] | None = None,
                 block_size: int | None = None, max_blocks: int = MAX_BLOCKS) -> None:
        if not isinstance(credential, AzureSharedKey):
            raise TypeError("credential must be an AzureSharedKey")
        super().__init__(session_dir=session_dir, block_size=block_size, max_blocks=max_blocks)
        self.credential = credential

    def __repr__(self) -> str:
        return f"AzureBlobDirectUpload(account={self.credential.account_name!r}, block_size={self.block_size!r})"

    async def _target(self, task: TransferTask) -> _Target:
        url = task.url

        def authorize(method: str, request_url: str, headers: dict[str, str]) -> dict[str, str]:
            return self.credential.sign(method, request_url, headers)  # fresh x-ms-date per attempt

        return _Target(base=strip_query(url), url=lambda params: append_query(url, params), authorize=authorize)


def _sas_target(sas: SasUrl, generation: int) -> _Target:
    def authorize(method: str, request_url: str, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "x-ms-version": X_MS_VERSION}

    return _Target(base=strip_query(sas.base), url=sas.with_params, authorize=authorize, generation=generation, sas=sas)


class AzureBlobSasUpload(_BlockBlobUpload):
    """Block blob upload through a blob SAS (``sr=b``) or container SAS (``sr=c``) with write permission (and
    read, to resume: without ``r`` Get Block List is refused and the upload starts from its first block).

    ``sas_url`` is a URL source: the URL itself, or a function returning a fresh one, asked at first use and
    once more after a 403. ``None`` means the task's URL is the SAS URL. For a container SAS the blob is
    ``blob_name``, else the task's file name. The SAS query is kept byte-for-byte; ``comp``/``blockid`` are
    appended after it.
    """

    def __init__(self, sas_url: SasUrlSource | None = None, *, blob_name: str | None = None,
                 session_dir: str | os.PathLike[str] | None = None, block_size: int | None = None,
                 max_blocks: int = MAX_BLOCKS) -> None:
        super().__init__(session_dir=session_dir, block_size=block_size, max_blocks=max_blocks)
        self._source = _SasSource(sas_url, blob_name)

    def __repr__(self) -> str:
        return f"AzureBlobSasUpload(sas_url={self._source.describe()!r}, block_size={self.block_size!r})"

    async def _target(self, task: TransferTask) -> _Target:
        sas, generation = await self._source.current(task)
        return _sas_target(sas, generation)

    async def _renew(self, task: TransferTask, target: _Target) -> bool:
        return await self._source.renew(task, target.generation)

    def _refused_hint(self, target: _Target) -> str:
        assert target.sas is not None
        return _expiry_hint(target.sas)

    async def prepare(self, ctx: UploadPrepareCtx) -> UploadResumeInfo:
        try:
            return await super().prepare(ctx)
        except MeowError as err:
            sas = (await self._source.current(ctx.task))[0]
            if err.status == 403 and "r" not in sas.permissions:
                # A write-only SAS may stage and commit but not list: upload everything, resume nothing.
                log.warn("upload_prepare", f"the SAS for {sas.base} has no read permission; cannot list staged "
                         "blocks, uploading every block")
                target = await self._target(ctx.task)
                self._remember(ctx.task, self._layout(ctx.task, target))
                return UploadResumeInfo(done_ranges=())
            raise


# ---------------------------------------------------------------------------------------------- download
def _range_headers(ctx: DownloadRangeGetCtx) -> None:
    """``x-ms-range`` (pitfall 19) and ``If-Match`` on the probe's ETag, so a replaced blob answers 412."""
    for name in [k for k in ctx.headers if k.lower() in ("range", "if-range", "x-ms-range", "if-match")]:
        del ctx.headers[name]
    ctx.headers.update(range_header(ctx.start, ctx.end))
    ctx.headers["Accept"] = ctx.task.breakpoint_download_http.range_accept
    if ctx.validator:
        ctx.headers["If-Match"] = ctx.validator
    elif ctx.extra.get("last_modified"):
        ctx.headers["If-Unmodified-Since"] = str(ctx.extra["last_modified"])


class AzureBlobDirectDownload(StandardRangeDownload):
    """Ranged download of a blob signed with Shared Key; the task's URL is the blob URL.

    Every request is signed last, after all its headers are set (a header added later would break the
    signature; the engine adds only ``Accept-Encoding``, which Shared Key does not sign).
    """

    def __init__(self, credential: AzureSharedKey) -> None:
        if not isinstance(credential, AzureSharedKey):
            raise TypeError("credential must be an AzureSharedKey")
        self.credential = credential

    def __repr__(self) -> str:
        return f"AzureBlobDirectDownload(account={self.credential.account_name!r})"

    def _sign(self, method: str, url: str, headers: dict[str, str]) -> None:
        signed = self.credential.sign(method, url, headers)
        headers.clear()
        headers.update(signed)

    def merge_head_headers(self, ctx: DownloadHeadCtx) -> None:
        ctx.headers["x-ms-version"] = X_MS_VERSION
        self._sign(ctx.method, ctx.url, ctx.headers)

    def merge_range_get_headers(self, ctx: DownloadRangeGetCtx) -> None:
        _range_headers(ctx)
        self._sign("GET", ctx.url, ctx.headers)


class AzureBlobSasDownload(StandardRangeDownload):
    """Ranged download through a blob or container SAS with read permission.

    ``sas_url`` is a URL source (a URL, or a function returning a fresh one; ``None``: the task's URL is the
    SAS URL). It is asked at the first request and, through ``refresh_after_auth_failure``, once more when
    the service answers 403. The task's URL may then be the plain blob URL: it only names the download (and
    its checkpoint), the requests go to the source's URL.
    """

    def __init__(self, sas_url: SasUrlSource | None = None, *, blob_name: str | None = None) -> None:
        self._source = _SasSource(sas_url, blob_name)

    def __repr__(self) -> str:
        return f"AzureBlobSasDownload(sas_url={self._source.describe()!r})"

    async def merge_head_headers(self, ctx: DownloadHeadCtx) -> None:
        # head_url() is not awaited by the engine, so the (async) source is consulted here instead.
        sas, _ = await self._source.current(ctx.task)
        ctx.url = sas.url
        ctx.headers["x-ms-version"] = X_MS_VERSION

    async def merge_range_get_headers(self, ctx: DownloadRangeGetCtx) -> None:
        sas, _ = await self._source.current(ctx.task)
        ctx.url = sas.url
        _range_headers(ctx)
        ctx.headers["x-ms-version"] = X_MS_VERSION

    async def refresh_after_auth_failure(self, ctx: AuthRefreshCtx) -> bool:
        return await self._source.renew(ctx.task, None)
