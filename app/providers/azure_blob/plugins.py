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

A SAS can come from a *URL source* (:class:`~app.providers.azure_blob.sas.SasSource`): a string, or a callable
(sync or async) the caller supplies to hand out a fresh SAS URL, asked at first use and again once when the service
answers 403, which is how an expired SAS shows itself.

Requests go through :class:`~app.providers.base.ProviderBase`, so secrets (the account key, a request's
signature, a SAS ``sig``) never reach an error message, a log line, a record or a session file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import httpx

from app.engine.plugin_sdk import (
    AuthRefreshCtx,
    DownloadHeadCtx,
    DownloadRangeGetCtx,
    InnerErrorCode,
    MeowError,
    StandardRangeDownload,
    TransferTask,
    UploadChunkCtx,
    UploadPart,
    UploadPrepareCtx,
    UploadResumeInfo,
    log,
    strip_query,
)
from app.providers.base import Attempt, ProviderBase, Request
from app.providers.parts import Growth, grown_part_size
from app.providers.session_store import SessionFile, UploadSessionStore, session_key

from .blocks import (
    INDEX_WIDTH,
    MAX_PREFIX_LEN,
    BlockList,
    block_id,
    block_list_xml,
    block_prefix,
    parse_block_id,
    parse_block_list,
)
from .sas import SasKey, SasSource, SasUrl, SasUrlSource, append_query
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

#: Service limits: committed blocks per blob, and bytes per block (versions >= 2019-12-12).
MAX_BLOCKS = 50_000
MAX_BLOCK_SIZE = 4000 * 1024 * 1024
#: Hex characters of our own block id prefix: ids of 27 bytes, 36 base64 characters without padding.
DEFAULT_BLOCK_PREFIX_LEN = 20
#: The shortest prefix we accept when matching the id length of blocks already on the blob: 64 bits keep an
#: accidental match with another upload's ids out of reach, which matters because a match would be trusted.
MIN_MATCHED_PREFIX_LEN = 16
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


class _AzureService(ProviderBase):
    """What every Azure request shares: the error code in ``x-ms-error-code``, and a block damaged on the way
    (the service checked its Content-MD5) is sent again."""

    retry_codes: ClassVar[Mapping[str, str]] = {"Md5Mismatch": "the block was damaged in transit"}

    def error_code(self, answer: httpx.Response) -> str:
        return answer.headers.get("x-ms-error-code", "")


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

    def index_of(self, name: str) -> int | None:
        """The part a listed block id names, if it is one of this layout's."""
        try:
            prefix, index = parse_block_id(name)
        except ValueError:
            return None
        return index if prefix == self.prefix and index < self.count else None

    def ids(self) -> list[str]:
        return [self.block_id(i) for i in range(self.count)]


class _BlockBlobUpload(_AzureService):
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
    async def _blob(self, task: TransferTask) -> str:
        """The blob's URL without a query: the upload's identity (block ids, sessions), safe to show."""
        raise NotImplementedError

    # -------------------------------------------------------------- engine hooks
    def part_size(self, total: int, requested: int) -> int:
        """``block_size`` (or the task's chunk size), doubled until the blob needs at most ``max_blocks``
        blocks, as AzCopy does. Never raises (the engine calls it outside its error handling); a file too big
        even for 4000 MiB blocks is refused by ``prepare`` with a clear error."""
        return grown_part_size(total, self.block_size or requested or 8 * 1024 * 1024, max_parts=self.max_blocks,
                               max_size=MAX_BLOCK_SIZE, growth=Growth.DOUBLING)

    async def prepare(self, ctx: UploadPrepareCtx) -> UploadResumeInfo:
        """List the blob's blocks: our committed full list means done; our staged blocks become done ranges."""
        task = ctx.task
        blob = await self._blob(task)
        part = task.chunk_size  # the engine's view carries the part size part_size() chose
        count = -(-task.total_size // part)
        if count > self.max_blocks or part > MAX_BLOCK_SIZE:
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY,
                            f"{task.total_size} bytes need {count} blocks of {part} bytes; a block blob takes at "
                            f"most {self.max_blocks} blocks of at most {MAX_BLOCK_SIZE} bytes", retryable=False)
        reply = await self._call(ctx.client, task, "GET", {"comp": "blocklist", "blocklisttype": "all"},
                                 what=f"Azure Get Block List of {blob}", ok=(200,), absent_ok=True)
        listed = BlockList((), ()) if reply is None else _parse_list(reply.content)
        layout = await self._choose_layout(ctx.client, task, blob, listed, reply)
        await self._remember(task, layout)

        committed = [(b.name, b.size) for b in listed.committed]
        if reply is not None and committed == [(layout.block_id(i), layout.size_of(i)) for i in range(layout.count)]:
            etag = reply.headers.get("etag")
            log.info("upload_prepare", f"{layout.blob} already holds this content (committed blocks match)")
            await self._forget(task, layout.blob)
            return UploadResumeInfo(completed_file_id=etag or "")

        done: set[int] = set()
        for block in (*listed.uncommitted, *listed.committed):  # Put Block List "Latest" finds either
            index = layout.index_of(block.name)
            if index is not None and block.size == layout.size_of(index):
                done.add(index)
        if done:
            log.info("upload_prepare", f"resuming {layout.blob}: {len(done)} of {layout.count} blocks already staged")
        ranges = tuple((i * layout.part, i * layout.part + layout.size_of(i)) for i in sorted(done))
        return UploadResumeInfo(done_ranges=ranges)

    async def upload_chunk(self, ctx: UploadChunkCtx) -> UploadResumeInfo:
        """Put Block with the part's MD5 (the service checks it); a retry re-sends the same id and bytes."""
        task = ctx.task
        layout = self._layout(task, await self._blob(task))
        index = ctx.index
        expected = layout.size_of(index) if index < layout.count else 0
        if ctx.length != expected or ctx.part is None:
            raise MeowError(InnerErrorCode.INVALID_RANGE, f"part {index} has {ctx.length} bytes; the block "
                            f"grid of {layout.part} bytes expects {expected}")
        md5 = base64.b64encode(await ctx.part.digest("md5")).decode("ascii")
        await self._call(ctx.client, task, "PUT", {"comp": "block", "blockid": layout.block_id(index)},
                         {"Content-MD5": md5}, part=ctx.part, what=f"Azure Put Block {index} of {layout.blob}",
                         ok=(201,))
        return UploadResumeInfo()

    async def complete_upload(self, client: httpx.AsyncClient, task: TransferTask) -> str | None:
        """Put Block List of every id in order; records the whole-content MD5; returns the blob's ETag.

        Idempotent: after a lost response the retry finds the blocks committed and commits them again.
        Task headers starting with ``x-ms-`` (``x-ms-blob-content-type``, ``x-ms-meta-*``) are sent here,
        because this request sets the blob's properties.
        """
        layout = self._layout(task, await self._blob(task))
        body = block_list_xml(layout.ids())
        headers = {k: v for k, v in task.headers
                   if k.lower().startswith("x-ms-") and k.lower() not in _OWN_HEADERS}
        content_md5 = _md5_hex_to_b64(task.file_sign)
        if content_md5 and not any(k.lower() == "x-ms-blob-content-md5" for k in headers):
            headers["x-ms-blob-content-md5"] = content_md5
        headers.update({"Content-Type": "application/xml; charset=utf-8", "Content-MD5": _b64_md5(body)})
        reply = await self._call(client, task, "PUT", {"comp": "blocklist"}, headers, body,
                                 what=f"Azure Put Block List of {layout.blob}", ok=(201,))
        assert reply is not None
        await self._forget(task, layout.blob)
        return reply.headers.get("etag")

    async def abort_upload(self, client: httpx.AsyncClient, task: TransferTask) -> None:
        """Nothing remote: uncommitted blocks expire on their own (about a week) and deleting the blob could
        destroy an older committed version. Only the local session record goes."""
        try:
            blob = await self._blob(task)
        except MeowError:
            return
        await self._forget(task, blob)

    # -------------------------------------------------------------- layout and sessions
    def _identity(self, blob: str, task: TransferTask) -> tuple[str, int, str, int]:
        return (blob, task.total_size, task.file_sign, task.chunk_size)

    def _layout(self, task: TransferTask, blob: str) -> _Layout:
        prefix = self._prefixes.get(self._identity(blob, task))
        if prefix is None:  # prepare() always runs first; this only covers a plugin used without it
            prefix = upload_block_prefix(blob, task.total_size, task.file_sign, task.chunk_size)
        return _Layout(blob, task.total_size, task.chunk_size, prefix)

    async def _choose_layout(self, client: httpx.AsyncClient, task: TransferTask, blob: str,
                             listed: BlockList, reply: httpx.Response | None) -> _Layout:
        """Our ids normally have a fixed length, but the service wants every staged id of a blob to have one
        length: blocks left by another tool (say the SDK's 48-byte ids) would make our Put Block fail with 400
        InvalidBlobOrBlock. So match the length of the ids already there (staged first, else committed) when
        that leaves a prefix long enough to be unambiguous; the choice is stable, since a resumed run finds
        its own blocks of that length."""
        part = task.chunk_size

        def layout(length: int = DEFAULT_BLOCK_PREFIX_LEN) -> _Layout:
            prefix = upload_block_prefix(blob, task.total_size, task.file_sign, part, length)
            return _Layout(blob, task.total_size, part, prefix)

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
                     f"{blob} (their ids are too short to share a length with ours)")
            await self._call(client, task, "PUT", {"comp": "blocklist"},
                             {"Content-Type": "application/xml; charset=utf-8"}, block_list_xml([]),
                             what=f"Azure Put Block List of {blob} (discard foreign blocks)", ok=(201,))
            return layout()
        raise MeowError(InnerErrorCode.INVALID_TASK_STATE,
                        f"{blob} has {len(listed.uncommitted)} uncommitted blocks from another upload whose "
                        "ids are too short to share a length with ours; the service would refuse our blocks. "
                        "Commit or delete them (or wait about a week for them to expire) and retry",
                        retryable=False)

    def _session_key(self, blob: str, task: TransferTask) -> str:
        return session_key("azure-blob", blob, task.total_size, task.file_sign)

    async def _remember(self, task: TransferTask, layout: _Layout) -> None:
        self._prefixes[self._identity(layout.blob, task)] = layout.prefix
        if self._sessions is not None:
            data = {"provider": "azure-blob", "blob": layout.blob, "total_size": layout.total,
                    "part_size": layout.part, "block_prefix": layout.prefix, "blocks": layout.count}
            await SessionFile(self._sessions, self._session_key(layout.blob, task)).save(data)

    async def _forget(self, task: TransferTask, blob: str) -> None:
        """The upload is committed or cancelled: its prefixes (any part size) and session record go."""
        for key in [k for k in self._prefixes if k[:3] == (blob, task.total_size, task.file_sign)]:
            del self._prefixes[key]
        if self._sessions is not None:
            await SessionFile(self._sessions, self._session_key(blob, task)).remove()

    # -------------------------------------------------------------- one request
    async def _call(self, client: httpx.AsyncClient, task: TransferTask, method: str, query: Mapping[str, str],
                    headers: dict[str, str] | None = None, body: bytes | None = None, *, what: str,
                    ok: tuple[int, ...], absent_ok: bool = False, part: UploadPart | None = None
                    ) -> httpx.Response | None:
        """The answer to one request when its status is ``ok``, None for an allowed 404; a MeowError otherwise."""
        answer = await self.send(client, Request(method, what, url=task.url, query=query,
                                                 headers=dict(headers or {}), body=part.body() if part else body,
                                                 part=part, lease=SasKey.of(task)))
        if answer.status_code in ok:
            return answer
        if absent_ok and answer.status_code == 404:
            return None
        raise self.error(answer, what)


def _parse_list(content: bytes) -> BlockList:
    try:
        return parse_block_list(content)
    except (ET.ParseError, ValueError) as exc:  # the body itself is not quoted: answers to us stay out of errors
        raise MeowError(InnerErrorCode.RESPONSE_PARSE_ERROR, f"Azure Get Block List: {exc}") from None


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

    async def _blob(self, task: TransferTask) -> str:
        return strip_query(task.url)

    async def authorize(self, request: Request) -> Attempt:
        url = append_query(request.url, request.query)
        return Attempt(url, self.credential.sign(request.method, url, request.headers))  # a fresh x-ms-date

    def refused_hint(self, answer: httpx.Response) -> str:
        return "check the account name and key"


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
        self._source = SasSource(sas_url, blob_name)

    def __repr__(self) -> str:
        return f"AzureBlobSasUpload(sas_url={self._source.describe()!r}, block_size={self.block_size!r})"

    async def _blob(self, task: TransferTask) -> str:
        sas, _ = await self._source.current(SasKey.of(task))
        return strip_query(sas.base)

    async def authorize(self, request: Request) -> Attempt:
        assert isinstance(request.lease, SasKey)
        sas, generation = await self._source.current(request.lease)
        return Attempt(sas.with_params(request.query), {**request.headers, "x-ms-version": X_MS_VERSION}, generation)

    async def renew(self, request: Request, attempt: Attempt, answer: httpx.Response) -> bool:
        assert isinstance(request.lease, SasKey)
        return answer.status_code == 403 and await self._source.renew(request.lease, attempt.generation)

    def refused_hint(self, answer: httpx.Response) -> str:
        try:
            return SasUrl.parse(str(answer.request.url)).refused_hint()
        except ValueError:
            return ""

    async def prepare(self, ctx: UploadPrepareCtx) -> UploadResumeInfo:
        try:
            return await super().prepare(ctx)
        except MeowError as err:
            sas, _ = await self._source.current(SasKey.of(ctx.task))
            if err.status == 403 and "r" not in sas.permissions:
                # A write-only SAS may stage and commit but not list: upload everything, resume nothing.
                log.warn("upload_prepare", f"the SAS for {sas.base} has no read permission; cannot list staged "
                         "blocks, uploading every block")
                await self._remember(ctx.task, self._layout(ctx.task, strip_query(sas.base)))
                return UploadResumeInfo(done_ranges=())
            raise


# ---------------------------------------------------------------------------------------------- download
def _range_headers(ctx: DownloadRangeGetCtx) -> None:
    """``x-ms-range`` (what the official SDK sends, so signatures compare with its) and ``If-Match`` on the probe's
    ETag, so a replaced blob answers 412."""
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
        self._source = SasSource(sas_url, blob_name)

    def __repr__(self) -> str:
        return f"AzureBlobSasDownload(sas_url={self._source.describe()!r})"

    async def merge_head_headers(self, ctx: DownloadHeadCtx) -> None:
        await self._use_url(ctx)

    async def merge_range_get_headers(self, ctx: DownloadRangeGetCtx) -> None:
        await self._use_url(ctx)
        _range_headers(ctx)

    async def _use_url(self, ctx: DownloadHeadCtx | DownloadRangeGetCtx) -> None:
        sas, generation = await self._source.current(SasKey.of(ctx.task))
        ctx.extra["generation"] = generation  # comes back after a refusal: renew only a URL still current
        ctx.url = sas.url
        ctx.headers["x-ms-version"] = X_MS_VERSION

    async def refresh_after_auth_failure(self, ctx: AuthRefreshCtx) -> bool:
        generation = ctx.generation if isinstance(ctx.generation, int) else None
        return await self._source.renew(SasKey.of(ctx.task), generation)
