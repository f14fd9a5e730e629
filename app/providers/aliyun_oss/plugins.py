"""Aliyun OSS transfer plugins for the engine: direct (V4-signed) and presigned multipart upload and range download.

The engine owns scheduling, retries, files and progress; these classes only shape OSS requests and judge answers.
Why they work the way they do:

* Uploads are multipart with independent parts (``parallel_parts``), numbered 1..10000 on the engine's part grid,
  the part grown so the file fits in 10,000 parts and no non-last part is under 100 KiB. Each part's CRC-64 is
  computed from the bytes sent and checked against the part's ``x-oss-hash-crc64ecma``; the combined CRC-64 of the
  parts must equal the completed object's, so a wrongly assembled object is never reported as a success.
* Resume survives a process restart: the upload id (and, for presigned uploads, the part ETags) live in an
  :class:`~app.providers.session_store.UploadSessionStore` keyed by the target and the content MD5 the engine
  computed (``task.file_sign``), so the same logical task, rebuilt, finds its session. A direct upload asks the
  service which parts it holds (ListParts, paged); a presigned one can't (ListParts can't be presigned) and trusts its
  locally recorded ETags. Session files hold no secret: no key, no token, no URL query.
* Complete is not idempotent: a retried Complete whose first answer was lost gets ``NoSuchUpload`` while the object
  exists. Then the object is HEADed and accepted only if its size and CRC-64 match what was uploaded. A 200 whose
  body is an ``<Error>`` is a failure (retryable, since the retry is verified the same way).
* Requests go through :class:`~app.providers.base.ProviderBase`: every direct request is signed afresh for each
  attempt (``x-oss-range-behavior`` and other ``x-oss-*`` headers are set before signing); a ``RequestTimeTooSkewed``
  answer teaches the endpoint's shared :class:`ClockOffset` the server's time from its ``Date`` and the request is
  re-signed once. Bodies go out as raw bytes so httpx adds no Content-Type (it would be signed).
* Cancel aborts the multipart upload (AbortMultipartUpload) and removes the session; pause keeps both.

Use one plugin instance per target object; it may be reused for pause/resume and across runs of the same task.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from os import PathLike
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from app.engine.plugin_sdk import (
    InnerErrorCode,
    MeowError,
    UploadChunkCtx,
    UploadPart,
    UploadPrepareCtx,
    UploadResumeInfo,
    content_length,
    log,
    redact_text,
    strip_query,
)
from app.providers.aliyun_oss.crc64 import Crc64, crc64, parse_crc64
from app.providers.aliyun_oss.signer import ClockOffset, OssCredentials, OssV4Signer, build_object_url
from app.providers.aliyun_oss.xml import (
    OssXmlError,
    build_complete_body,
    parse_complete,
    parse_error,
    parse_initiate,
    parse_list_parts,
)
from app.providers.base import Attempt, ProviderBase, Request, service_words
from app.providers.parts import Growth, grown_part_size, part_count
from app.providers.presigned import (
    GET,
    PresignedRangeDownload,
    UrlKey,
    UrlSource,
    is_expired_rejection,
    presigned_leases,
)
from app.providers.session_store import SessionFile, UploadSessionStore, session_key

if TYPE_CHECKING:
    from app.engine.plugin_sdk import AuthRefreshCtx, Body, DownloadHeadCtx, DownloadRangeGetCtx, TransferTask

__all__ = [
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "AliOssDirectDownload",
    "AliOssDirectUpload",
    "AliOssPresignedDownload",
    "AliOssPresignedUpload",
    "PartRecord",
    "clock_for_endpoint",
    "file_crc64",
    "oss_part_size",
    "part_count",
]

MAX_PARTS = 10000
MIN_PART_SIZE = 100 * 1024  # OSS refuses a smaller non-last part at Complete (EntityTooSmall)
MAX_PART_SIZE = 5 << 30
LIST_PARTS_PAGE = 1000
#: How long the session file of a completed upload is kept. A process killed between the Complete and the moment
#: its caller recorded the completion (the manager's history) restarts the upload; this record, verified by HEAD
#: (size and CRC-64), tells it the object is already there instead of sending the file again.
COMPLETED_RETENTION = 30 * 24 * 3600.0
#: ``<Error>`` codes in a 200 Complete body that a retry may cure (S3 documents InternalError there).
_TRANSIENT_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"})

_METHODS = {"initiate": "POST", "upload_part": "PUT", "complete": "POST", "abort": "DELETE", "head": "HEAD",
            "get": "GET"}
_OP_NAMES = {"initiate": "InitiateMultipartUpload", "upload_part": "UploadPart",
             "complete": "CompleteMultipartUpload", "abort": "AbortMultipartUpload", "head": "HeadObject",
             "get": "GetObject"}

Credentials = OssCredentials | Callable[[], OssCredentials]


# --------------------------------------------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------------------------------------------
_clocks: dict[str, ClockOffset] = {}
_clocks_lock = threading.Lock()


def clock_for_endpoint(endpoint: str) -> ClockOffset:
    """The process-wide clock offset of one endpoint, shared by every plugin that talks to it, so a skew one
    request learned (from a ``Date`` after ``RequestTimeTooSkewed``) is used by all later signatures."""
    parts = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
    ident = f"{parts.scheme.lower()}://{parts.netloc.rsplit('@', 1)[-1].lower()}"
    with _clocks_lock:
        return _clocks.setdefault(ident, ClockOffset())


def oss_part_size(total: int, requested: int, *, min_part: int = MIN_PART_SIZE) -> int:
    """The part size to use: at least ``min_part`` (only the last part may be smaller), grown in whole multiples
    of the request (as the official SDK does) until the file fits in 10,000 parts; capped at 5 GiB (a larger
    file can't be uploaded in parts at all, which ``prepare`` then reports)."""
    return grown_part_size(total, requested, max_parts=MAX_PARTS, max_size=MAX_PART_SIZE, growth=Growth.MULTIPLES,
                           min_size=min_part)


def file_crc64(path: str | PathLike[str], block: int = 4 << 20) -> int:
    """CRC-64/XZ of a file, read in blocks (blocking: call it in a worker thread), to compare with the
    ``x-oss-hash-crc64ecma`` a download probe reported (:attr:`AliOssDirectDownload.remote_crc64`)."""
    crc = 0
    with open(path, "rb") as f:
        while piece := f.read(block):
            crc = crc64(piece, crc)
    return crc


class _SentCrc64:
    """The CRC-64 of what a part's body sent (restarted with each send), to compare with the service's."""

    def __init__(self) -> None:
        self.crc = Crc64()

    def start(self) -> None:
        self.crc = Crc64()

    def update(self, data: memoryview) -> None:
        self.crc.update(data)


def learn_skew(resp: httpx.Response, clock: ClockOffset) -> bool:
    """On 403 RequestTimeTooSkewed, set ``clock`` from the response's Date; True when a re-sign may now succeed.

    HEAD errors have no body, so the code is also read from the base64 ``x-oss-err`` header (parse_error does).
    """
    date = resp.headers.get("date")
    if resp.status_code != 403 or not date or \
            parse_error(resp.status_code, resp.content, resp.headers).code != "RequestTimeTooSkewed":
        return False
    try:
        offset = clock.learn_from_date_header(date)
    except ValueError:
        return False
    log.info("oss_clock", f"server clock differs by {offset:+.0f}s; re-signing with the corrected time")
    return True


@dataclass
class PartRecord:
    """One uploaded part: its ETag (as OSS returned it), CRC-64 (None when unknown) and size."""

    etag: str
    crc64: int | None
    size: int


@dataclass
class _Upload:
    """One multipart upload as this process knows it."""

    key: str
    upload_id: str
    part_size: int
    total: int
    identity: dict[str, str]
    parts: dict[int, PartRecord] = field(default_factory=dict)
    completing: bool = False
    expected_crc: int | None = None  # the object's CRC-64, recorded when Complete is first sent
    completed: bool = False  # Complete succeeded (the object was verified): the session file is only a record
    session: SessionFile | None = None
    limiter: asyncio.Semaphore | None = None

    @property
    def count(self) -> int:
        return part_count(self.total, self.part_size)

    def expected_size(self, number: int) -> int:
        start = (number - 1) * self.part_size
        return max(0, min(self.part_size, self.total - start))

    def keep_grid_parts(self) -> None:
        """Drop parts that don't fit this grid (another part size, past the end): they get uploaded again."""
        self.parts = {n: p for n, p in self.parts.items()
                      if 1 <= n <= self.count and p.size == self.expected_size(n) and p.etag}

    def done_ranges(self) -> tuple[tuple[int, int], ...]:
        size = self.part_size
        return tuple(((n - 1) * size, (n - 1) * size + p.size) for n, p in sorted(self.parts.items()))

    def combined_crc(self) -> int | None:
        """CRC-64 of the whole object from the part CRCs (None if a part's CRC is unknown)."""
        acc = Crc64()
        for n in range(1, self.count + 1):
            part = self.parts.get(n)
            if part is None or part.crc64 is None:
                return None
            acc.combine(Crc64(value=part.crc64, length=part.size))
        return acc.value

    def snapshot(self, kind: str, with_parts: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": kind, "upload_id": self.upload_id, "part_size": self.part_size,
                                "total_size": self.total, "identity": dict(self.identity),
                                "completing": self.completing, "expected_crc": self.expected_crc,
                                "completed": self.completed}
        if with_parts:
            data["parts"] = {str(n): [p.etag, p.crc64, p.size] for n, p in sorted(self.parts.items())}
        return data


def _parse_session(data: dict[str, Any], kind: str, key: str, total: int) -> _Upload | None:
    """A stored session, or None when it is not ours or not usable (then a new upload starts)."""
    try:
        if data.get("kind") != kind or data.get("total_size") != total:
            return None
        upload_id, part_size = data["upload_id"], data["part_size"]
        if not isinstance(upload_id, str) or not upload_id or not isinstance(part_size, int) or part_size <= 0:
            return None
        parts: dict[int, PartRecord] = {}
        for number, (etag, crc, size) in (data.get("parts") or {}).items():
            if isinstance(etag, str) and isinstance(size, int) and (crc is None or isinstance(crc, int)):
                parts[int(number)] = PartRecord(etag, crc, size)
        identity = {str(k): str(v) for k, v in (data.get("identity") or {}).items()}
        expected = data.get("expected_crc")
        return _Upload(key, upload_id, part_size, total, identity, parts, bool(data.get("completing")),
                       expected if isinstance(expected, int) else None, data.get("completed") is True)
    except (KeyError, TypeError, ValueError):
        return None


class _OssService(ProviderBase):
    """What every OSS plugin's requests share: OSS error documents (the base64 ``x-oss-err`` header stands in for
    the body of a HEAD)."""

    def error_code(self, answer: httpx.Response) -> str:
        info = parse_error(answer.status_code, answer.content, answer.headers)
        return info.code or info.ec


# --------------------------------------------------------------------------------------------------------------
# multipart upload: what direct and presigned share
# --------------------------------------------------------------------------------------------------------------
class _OssMultipartUpload(_OssService):
    """The multipart state machine; subclasses say how a request is authorised and how a session is found again."""

    parallel_parts = True  # parts are independent, numbered by position: any order, several at once
    streams_parts = True
    kind = "aliyun-oss"
    remember_parts = False  # keep part ETags in the session file (presigned: ListParts is not available)
    send_content_md5 = False

    def __init__(self, *, session_dir: str | PathLike[str] | None, part_size: int | None,
                 max_parallel: int | None) -> None:
        if part_size is not None and (isinstance(part_size, bool) or not isinstance(part_size, int) or part_size <= 0):
            raise ValueError(f"part_size must be a positive integer, got {part_size!r}")
        if max_parallel is not None and (isinstance(max_parallel, bool) or not isinstance(max_parallel, int)
                                         or max_parallel <= 0):
            raise ValueError(f"max_parallel must be a positive integer, got {max_parallel!r}")
        self.store = UploadSessionStore(session_dir) if session_dir is not None else None
        self.requested_part_size = part_size
        self.max_parallel = max_parallel
        self._uploads: dict[str, _Upload] = {}

    # -- hooks for subclasses ------------------------------------------------------------------------------------
    def _identity(self, task: TransferTask) -> dict[str, str]:
        raise NotImplementedError

    async def _resume(self, client: httpx.AsyncClient, upload: _Upload) -> _Upload | None:
        """Bring a known upload's part list up to date; None if the service no longer has it."""
        raise NotImplementedError

    def _initiate_headers(self, task: TransferTask) -> dict[str, str]:
        return {}

    async def _call(self, client: httpx.AsyncClient, op: str, upload: _Upload | None, number: int | None = None, *,
                    body: bytes | Body | None = None, part: UploadPart | None = None,
                    headers: dict[str, str] | None = None) -> httpx.Response:
        """One multipart operation (``op`` as a :class:`~app.providers.presigned.UrlSource` names it)."""
        upload_id = upload.upload_id if upload is not None and op not in ("initiate", "head") else None
        query: dict[str, str | int | None] = {"uploadId": upload_id} if upload_id else {}
        if op == "initiate":
            query = {"uploads": None}
        elif op == "upload_part":
            query = {"partNumber": number, **query}
        what = f"OSS {_OP_NAMES[op]}" + (f" {number}" if number is not None else "")
        return await self.send(client, Request(_METHODS[op], what, query=query, headers=dict(headers or {}),
                                               body=body, part=part, lease=UrlKey(op, number, upload_id)))

    # -- engine hooks --------------------------------------------------------------------------------------------
    def part_size(self, total: int, requested: int) -> int:
        return oss_part_size(total, self.requested_part_size or requested)

    def _session_key(self, task: TransferTask) -> str:
        ident = self._identity(task)
        return session_key(self.kind, *(f"{k}={ident[k]}" for k in sorted(ident)), task.file_sign, task.total_size)

    async def prepare(self, ctx: UploadPrepareCtx) -> UploadResumeInfo:
        task, client = ctx.task, ctx.client
        total, size = task.total_size, task.chunk_size
        if size > MAX_PART_SIZE or part_count(total, size) > MAX_PARTS:
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"{total} bytes don't fit in {MAX_PARTS} OSS parts of at "
                            f"most {MAX_PART_SIZE} bytes", retryable=False)
        key = self._session_key(task)
        upload = self._uploads.get(key) or await self._load(key, task)
        if upload is not None and upload.part_size != size:
            log.info("upload_prepare", f"stored OSS upload used {upload.part_size}-byte parts, now {size}: "
                     "starting a new upload")
            await self._abort_quietly(client, upload)
            upload = None
        if upload is not None and upload.completing:
            etag = await self._completed_before(client, upload)
            if etag is not None:
                return UploadResumeInfo(completed_file_id=etag)
            if upload.completed:  # the object was replaced or deleted since: upload it again
                await self._forget(upload)
                upload = None
        if upload is not None:
            upload = await self._resume(client, upload)
        if upload is None:
            upload = await self._initiate(client, task, key)
        upload.keep_grid_parts()
        upload.limiter = asyncio.Semaphore(self.max_parallel) if self.max_parallel else None
        self._uploads[key] = upload
        log.debug("upload_prepare", lambda: f"OSS upload {upload.upload_id}: {len(upload.parts)} of {upload.count} "
                  "parts already on the server")
        return UploadResumeInfo(done_ranges=upload.done_ranges())

    async def upload_chunk(self, ctx: UploadChunkCtx) -> UploadResumeInfo:
        upload = self._current(ctx.task)
        if ctx.offset % upload.part_size:
            raise MeowError(InnerErrorCode.INVALID_RANGE, f"part at byte {ctx.offset} is off the "
                            f"{upload.part_size}-byte part grid", retryable=False)
        number = ctx.offset // upload.part_size + 1
        if ctx.part is None:
            raise MeowError(InnerErrorCode.INVALID_TASK_STATE, "OSS upload_chunk needs the engine's part (ctx.part)",
                            retryable=False)
        headers = {"Content-MD5": base64.b64encode(await ctx.part.digest("md5")).decode("ascii")} \
            if self.send_content_md5 else None
        body = ctx.part.body()
        sent = _SentCrc64()
        body.observers.append(sent)
        async with upload.limiter or contextlib.nullcontext():
            resp = await self._call(ctx.client, "upload_part", upload, number, body=body, part=ctx.part,
                                    headers=headers)
        crc = sent.crc.value
        if not resp.is_success:
            err = self.error(resp, f"OSS UploadPart {number}")
            if resp.status_code == 404 and err.remote_code == "NoSuchUpload":
                await self._forget(upload)
                raise MeowError(err.code, f"{err.msg}; the multipart upload is gone (aborted or expired elsewhere), "
                                "so the next attempt starts a new one", status=404, remote_code="NoSuchUpload",
                                retryable=False)
            raise err
        etag = resp.headers.get("etag")
        if not etag:
            raise MeowError(InnerErrorCode.RESPONSE_PARSE_ERROR, f"OSS UploadPart {number} answered without an ETag")
        server_crc = _crc_header(resp)
        if server_crc is not None and server_crc != crc:
            raise MeowError(InnerErrorCode.CHECKSUM_MISMATCH, f"OSS UploadPart {number}: the service stored CRC-64 "
                            f"{server_crc}, the part sent has {crc}; sending it again", retryable=True)
        upload.parts[number] = PartRecord(etag, crc, ctx.length)
        self._part_done(upload, number)
        if self.remember_parts:
            await self._persist(upload)
        return UploadResumeInfo()

    async def complete_upload(self, client: httpx.AsyncClient, task: TransferTask) -> str | None:
        upload = self._current(task)
        missing = [n for n in range(1, upload.count + 1) if n not in upload.parts]
        if missing:
            raise MeowError(InnerErrorCode.INVALID_RANGE, f"cannot complete the OSS upload: parts {missing[:5]} "
                            f"({len(missing)} in all) were never uploaded", retryable=False)
        body = build_complete_body((n, upload.parts[n].etag) for n in range(1, upload.count + 1))
        expected = upload.combined_crc()
        if not upload.completing:
            # Recorded first: a Complete that may have happened (answer lost, process killed) is verified by HEAD
            # against this CRC-64, never redone blindly nor uploaded again.
            upload.completing, upload.expected_crc = True, expected
            await self._persist(upload)
        headers = {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode("ascii")} \
            if self.send_content_md5 else None
        resp = await self._call(client, "complete", upload, body=body, headers=headers)
        if resp.status_code == 404 and self.error_code(resp) == "NoSuchUpload":
            return await self._verify_after_lost_complete(client, upload, expected)
        if not resp.is_success:
            raise self.error(resp, "OSS CompleteMultipartUpload")
        try:
            result = parse_complete(resp.content)
        except OssXmlError:
            info = parse_error(200, resp.content, {})
            if info.code:
                raise MeowError(InnerErrorCode.RESPONSE_STATUS_ERROR, f"OSS CompleteMultipartUpload answered 200 with "
                                f"an error document: {info.code}: {redact_text(service_words(resp.content))}",
                                status=200, remote_code=info.code, retryable=info.code in _TRANSIENT_CODES) from None
            # The object may well exist: the session records the Complete, so the next run verifies it by HEAD.
            raise MeowError(InnerErrorCode.RESPONSE_PARSE_ERROR, "OSS CompleteMultipartUpload answered 200 with an "
                            "unreadable body") from None
        server_crc = _crc_header(resp)
        if server_crc is not None and expected is not None and server_crc != expected:
            await self._forget(upload)
            raise MeowError(InnerErrorCode.CHECKSUM_MISMATCH, f"OSS assembled an object whose CRC-64 {server_crc} "
                            f"differs from the uploaded parts' {expected}: the object is not what was sent",
                            retryable=False)
        if server_crc is None or expected is None:
            log.warn("upload_complete", "OSS CompleteMultipartUpload: no CRC-64 to verify the object against")
        await self._retire(upload)
        return result.etag or resp.headers.get("etag")

    async def abort_upload(self, client: httpx.AsyncClient, task: TransferTask) -> None:
        key = self._session_key(task)
        upload = self._uploads.get(key) or await self._load(key, task)
        if upload is None:
            return
        resp = await self._call(client, "abort", upload)
        if not resp.is_success and not (resp.status_code == 404 and self.error_code(resp) == "NoSuchUpload"):
            raise self.error(resp, "OSS AbortMultipartUpload")  # the session stays, so a later clean-up can abort
        await self._forget(upload)
        log.info("cancel_group", f"aborted OSS multipart upload {upload.upload_id}")

    # -- internals -----------------------------------------------------------------------------------------------
    def _current(self, task: TransferTask) -> _Upload:
        upload = self._uploads.get(self._session_key(task))
        if upload is None:
            raise MeowError(InnerErrorCode.INVALID_TASK_STATE, "OSS upload has no multipart session (prepare did not "
                            "run, or the upload was completed or aborted)", retryable=False)
        return upload

    def _part_done(self, upload: _Upload, number: int) -> None:
        """A part succeeded (the presigned flavour forgets its URL)."""

    async def _load(self, key: str, task: TransferTask) -> _Upload | None:
        if self.store is None:
            return None
        data = await asyncio.to_thread(self.store.load, key)
        if data is None:
            return None
        upload = _parse_session(data, self.kind, key, task.total_size)
        if upload is None:
            log.warn("upload_session", f"ignoring upload session {key}: not a usable {self.kind} session")
            return None
        upload.session = SessionFile(self.store, key)
        return upload

    async def _persist(self, upload: _Upload) -> None:
        if upload.session is not None:
            await upload.session.save(upload.snapshot(self.kind, self.remember_parts))

    async def _retire(self, upload: _Upload) -> None:
        """The upload is complete: drop it here, and keep its session file as a record of the completion (see
        :data:`COMPLETED_RETENTION`), pruning records older than that."""
        if self._uploads.get(upload.key) is upload:
            del self._uploads[upload.key]
        if upload.expected_crc is None or self.store is None:
            await self._forget(upload)  # nothing to verify a later HEAD against: no record
            return
        upload.completing = upload.completed = True
        if upload.session is None:
            upload.session = SessionFile(self.store, upload.key)
        await self._persist(upload)
        await asyncio.to_thread(self.store.prune, COMPLETED_RETENTION, lambda data: data.get("completed") is True)

    async def _forget(self, upload: _Upload) -> None:
        """The upload is finished, aborted or gone: drop it here and on disk."""
        if self._uploads.get(upload.key) is upload:
            del self._uploads[upload.key]
        if upload.session is not None:
            await upload.session.remove()

    async def _initiate(self, client: httpx.AsyncClient, task: TransferTask, key: str) -> _Upload:
        resp = await self._call(client, "initiate", None, headers=self._initiate_headers(task))
        if not resp.is_success:
            raise self.error(resp, "OSS InitiateMultipartUpload")
        try:
            upload_id = parse_initiate(resp.content).upload_id
        except OssXmlError as exc:
            raise MeowError(InnerErrorCode.RESPONSE_PARSE_ERROR, f"OSS InitiateMultipartUpload: {exc}") from None
        upload = _Upload(key, upload_id, task.chunk_size, task.total_size, self._identity(task))
        if self.store is not None:
            upload.session = SessionFile(self.store, key)
            await self._persist(upload)
        log.info("upload_prepare", f"started OSS multipart upload {upload_id} ({upload.count} parts of "
                 f"{upload.part_size} bytes)")
        return upload

    async def _abort_quietly(self, client: httpx.AsyncClient, upload: _Upload) -> None:
        try:
            resp = await self._call(client, "abort", upload)
            if not resp.is_success and not (resp.status_code == 404 and self.error_code(resp) == "NoSuchUpload"):
                log.warn("upload_prepare", f"could not abort the stale OSS upload {upload.upload_id}: "
                         f"HTTP {resp.status_code} {self.error_code(resp)}")
        except MeowError as err:
            log.warn("upload_prepare", f"could not abort the stale OSS upload {upload.upload_id}: {err.msg}")
        await self._forget(upload)

    async def _completed_before(self, client: httpx.AsyncClient, upload: _Upload) -> str | None:
        """A stored session whose Complete was sent before the process stopped: if the object is there with this
        upload's size and CRC-64, the upload is done (the payload is its ETag). Anything else: carry on resuming."""
        if upload.expected_crc is None:
            return None
        try:
            resp = await self._call(client, "head", upload)
        except MeowError as err:
            log.debug("upload_prepare", f"cannot check for a completed object: {err.msg}")
            return None
        if not resp.is_success or content_length(resp.headers) != upload.total or \
                _crc_header(resp) != upload.expected_crc:
            return None
        log.info("upload_prepare", f"OSS upload {upload.upload_id} was completed before the restart "
                 "(verified size and CRC-64)")
        if not upload.completed:
            await self._abort_quietly(client, upload)  # no-op (NoSuchUpload) unless Complete never got there
            await self._retire(upload)
        elif self._uploads.get(upload.key) is upload:
            del self._uploads[upload.key]
        return resp.headers.get("etag")

    async def _verify_after_lost_complete(self, client: httpx.AsyncClient, upload: _Upload,
                                          expected: int | None) -> str | None:
        """Complete said NoSuchUpload: an earlier Complete may have succeeded without us hearing. Accept the
        object only if its size and CRC-64 are exactly what this upload's parts make."""
        resp = await self._call(client, "head", upload)
        if resp.status_code == 404:
            await self._forget(upload)
            raise MeowError(InnerErrorCode.RESPONSE_STATUS_ERROR, "OSS CompleteMultipartUpload answered NoSuchUpload "
                            "and the object does not exist: the upload was aborted or expired; the next attempt "
                            "uploads again", status=404, remote_code="NoSuchUpload", retryable=False)
        if not resp.is_success:
            raise self.error(resp, "OSS HeadObject (verifying a completed upload)")
        size = content_length(resp.headers)
        crc = _crc_header(resp)
        if size != upload.total or expected is None or crc != expected:
            await self._forget(upload)
            why = (f"size {size} instead of {upload.total}" if size != upload.total else
                   "no CRC-64 to compare" if expected is None or crc is None else
                   f"CRC-64 {crc} instead of {expected}")
            raise MeowError(InnerErrorCode.CHECKSUM_MISMATCH, "OSS CompleteMultipartUpload answered NoSuchUpload and "
                            f"the object there is not this upload ({why}); the next attempt uploads again",
                            retryable=False)
        log.info("upload_complete", f"OSS upload {upload.upload_id} was completed by an earlier attempt "
                 "(verified size and CRC-64)")
        await self._retire(upload)
        return resp.headers.get("etag")


def _crc_header(resp: httpx.Response) -> int | None:
    try:
        return parse_crc64(resp.headers.get("x-oss-hash-crc64ecma"))
    except ValueError:
        log.warn("oss_crc", "ignoring a malformed x-oss-hash-crc64ecma header")
        return None


# --------------------------------------------------------------------------------------------------------------
# direct (V4-signed) upload and download
# --------------------------------------------------------------------------------------------------------------
class _Signed(_OssService):
    """Requests to one object, signed with V4 credentials afresh for every attempt; a refusal for clock skew teaches
    the endpoint's clock the server's time (from the refusal's ``Date``) and the request is signed again."""

    def _address(self, credentials: Credentials, region: str, *, bucket: str, key: str, endpoint: str,
                 path_style: bool, clock: ClockOffset | None) -> None:
        if not bucket or not key:
            raise ValueError("bucket and key must be non-empty")
        self.bucket, self.key, self.endpoint, self.path_style = bucket, key, endpoint, path_style
        self.signer = OssV4Signer(credentials, region, clock=clock if clock is not None else
                                  clock_for_endpoint(endpoint))
        self.object_url = build_object_url(endpoint, bucket, key, path_style=path_style)

    def sign(self, method: str, query: Mapping[str, str | int | None], headers: dict[str, str]
             ) -> tuple[str, dict[str, str]]:
        url = build_object_url(self.endpoint, self.bucket, self.key, path_style=self.path_style, query=query)
        signed = self.signer.sign_request(method, url, headers, bucket=self.bucket, key=self.key)
        return signed.url, signed.headers

    async def authorize(self, request: Request) -> Attempt:
        return Attempt(*self.sign(request.method, request.query, request.headers))

    async def renew(self, request: Request, attempt: Attempt, answer: httpx.Response) -> bool:
        return learn_skew(answer, self.signer.clock)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bucket={self.bucket!r}, key={self.key!r})"


class AliOssDirectUpload(_Signed, _OssMultipartUpload):
    """Multipart upload to ``bucket``/``key`` signed with OSS V4 credentials (AccessKey or STS).

    Give the engine builder ``with_url(plugin.object_url)`` (the task URL is the task's identity and display name)
    and ``with_breakpoint_upload(plugin)``. ``session_dir`` makes resume survive a process restart (the stored upload
    id is checked with ListParts); without it, only pause/resume within this process resumes. ``part_size``
    overrides the builder's chunk size (both are grown to fit 10,000 parts); ``max_parallel`` caps the parts in
    flight below the engine's chunk concurrency; ``content_md5`` lets OSS check each part's bytes on arrival.
    """

    kind = "aliyun-oss-direct"

    def __init__(self, credentials: Credentials, region: str, *, bucket: str, key: str, endpoint: str,
                 path_style: bool = True, session_dir: str | PathLike[str] | None = None,
                 part_size: int | None = None, max_parallel: int | None = None, content_md5: bool = True,
                 clock: ClockOffset | None = None) -> None:
        super().__init__(session_dir=session_dir, part_size=part_size, max_parallel=max_parallel)
        self._address(credentials, region, bucket=bucket, key=key, endpoint=endpoint, path_style=path_style,
                      clock=clock)
        self.send_content_md5 = content_md5

    def _identity(self, task: TransferTask) -> dict[str, str]:
        return {"endpoint": strip_query(self.endpoint), "bucket": self.bucket, "key": self.key}

    def _initiate_headers(self, task: TransferTask) -> dict[str, str]:
        """The task's headers (x-oss-meta-*, storage class, Content-Type …) describe the object: they go (signed)
        on Initiate, where OSS takes object properties for a multipart upload."""
        return dict(task.headers)

    async def _resume(self, client: httpx.AsyncClient, upload: _Upload) -> _Upload | None:
        """ListParts (paged) is the truth about which parts the service holds, whatever we remembered."""
        parts: dict[int, PartRecord] = {}
        marker = 0
        for _ in range(MAX_PARTS + 1):
            query: dict[str, str | int | None] = {"uploadId": upload.upload_id, "max-parts": LIST_PARTS_PAGE}
            if marker:
                query["part-number-marker"] = marker
            resp = await self.send(client, Request("GET", "OSS ListParts", query=query))
            if resp.status_code == 404 and self.error_code(resp) == "NoSuchUpload":
                log.info("upload_prepare", f"OSS upload {upload.upload_id} no longer exists; starting a new one")
                await self._forget(upload)
                return None
            if not resp.is_success:
                raise self.error(resp, "OSS ListParts")
            try:
                page = parse_list_parts(resp.content)
            except OssXmlError as exc:
                raise MeowError(InnerErrorCode.RESPONSE_PARSE_ERROR, f"OSS ListParts: {exc}") from None
            for p in page.parts:
                parts[p.part_number] = PartRecord(p.etag, p.crc64, p.size)
            if not page.is_truncated:
                break
            marker = page.next_part_number_marker
        upload.parts = parts
        return upload


class AliOssDirectDownload(_Signed):
    """Range download of ``bucket``/``key`` signed with OSS V4 credentials.

    The probe is a signed HEAD (size, ETag, ``x-oss-hash-crc64ecma``); each ranged GET is signed afresh with
    ``x-oss-range-behavior: standard`` (so an out-of-range request is a 416, never a silent 200 with the whole object)
    and ``If-Match: <ETag>`` (a changed object answers 412 and the engine starts over). Give the builder
    ``plugin.object_url`` as the URL.

    After a 401/403 the engine asks :meth:`refresh_after_auth_failure`, which learns the server's time when the
    refusal was for clock skew and lets the request be re-signed once.

    Whole-file CRC-64: the probe's ``x-oss-hash-crc64ecma`` is kept in :attr:`remote_crc64`, and
    :meth:`verify_download` (called by the engine in a worker thread before the file is moved into place) fails
    the download with CHECKSUM_MISMATCH when the bytes on disk disagree.
    """

    def __init__(self, credentials: Credentials, region: str, *, bucket: str, key: str, endpoint: str,
                 path_style: bool = True, clock: ClockOffset | None = None) -> None:
        self._address(credentials, region, bucket=bucket, key=key, endpoint=endpoint, path_style=path_style,
                      clock=clock)
        self.remote_crc64: int | None = None

    def head_url(self, task: TransferTask) -> str:
        return self.object_url

    def merge_head_headers(self, ctx: DownloadHeadCtx) -> None:
        ctx.method = ctx.method.upper()
        if ctx.method == "GET":
            ctx.headers.update({"Range": "bytes=0-0", "x-oss-range-behavior": "standard"})
        self._sign_into(ctx, ctx.method)

    def merge_range_get_headers(self, ctx: DownloadRangeGetCtx) -> None:
        ctx.headers["Range"] = ctx.range_value
        ctx.headers["x-oss-range-behavior"] = "standard"  # x-oss-* is signed: set before signing
        ctx.headers["Accept"] = ctx.task.breakpoint_download_http.range_accept
        if ctx.validator and not ctx.validator.startswith("W/"):
            ctx.headers["If-Match"] = ctx.validator
        self._sign_into(ctx, "GET")

    def _sign_into(self, ctx: DownloadHeadCtx | DownloadRangeGetCtx, method: str) -> None:
        """Signed last, once every header is set: a signed kind of header added later would break it."""
        ctx.url, signed = self.sign(method, {}, ctx.headers)
        ctx.headers.clear()
        ctx.headers.update(signed)

    def verify_download(self, part_path: str, total: int) -> None:
        """Compare the finished file with the object's CRC-64 (blocking: the engine runs it in a worker thread)."""
        if self.remote_crc64 is None:
            return  # objects written by some tools carry no CRC: nothing to compare with
        local = file_crc64(part_path)
        if local != self.remote_crc64:
            raise MeowError(InnerErrorCode.CHECKSUM_MISMATCH,
                            f"CRC-64 mismatch: the object says {self.remote_crc64}, the downloaded file is {local}")

    def total_size_from_head(self, headers: httpx.Headers) -> int | None:
        try:
            self.remote_crc64 = parse_crc64(headers.get("x-oss-hash-crc64ecma"))
        except ValueError:
            self.remote_crc64 = None
        return content_length(headers)

    async def refresh_after_auth_failure(self, ctx: AuthRefreshCtx) -> bool:
        """True when a fresh signature can help: the clock was skewed (now learnt) or it already works again.

        A refused HEAD (the probe) carries its error code in the base64 ``x-oss-err`` header, so the refusal's own
        headers tell skew (and its ``Date`` the server's time); a refused GET's code is in its body, which the engine
        does not keep, so one signed HEAD on the engine's client tells instead.
        """
        refusal = httpx.Response(ctx.status, headers=ctx.headers)
        if parse_error(ctx.status, None, refusal.headers).code:
            return learn_skew(refusal, self.signer.clock)
        try:
            resp = await self.send(ctx.client, Request("HEAD", "OSS HeadObject (auth check)"))
        except MeowError as err:
            log.debug("oss_clock", f"auth check failed: {err.msg}")
            return False
        return resp.is_success


# --------------------------------------------------------------------------------------------------------------
# presigned upload and download
# --------------------------------------------------------------------------------------------------------------
class AliOssPresignedUpload(_OssMultipartUpload):
    """Multipart upload through presigned URLs from a :class:`~app.providers.presigned.UrlSource`.

    The source is asked lazily for ``"initiate"`` (a POST ``?uploads`` URL), ``"upload_part"`` with the part
    number, ``"complete"``, ``"abort"`` and, only to verify a Complete whose answer was lost, ``"head"``. A source
    that accepts the keyword ``upload_id`` gets the upload id for everything after "initiate" (a URL for a part must
    name it, and after a restart a new source instance must learn it). A URL rejected as expired (403, or 400 with an
    expiry error) is asked for again once per request. Requests carry exactly the issuer's signed headers: no
    Content-MD5 is added (OSS signs it), bodies go out as raw bytes.

    ListParts can't be presigned, so the part ETags and CRC-64s are kept in the session file (``session_dir``) after
    each part: a restarted upload skips the recorded parts. The session is keyed by the task URL without its query
    (a presigned URL's signature changes, the object path doesn't), the content MD5 and the size.
    """

    kind = "aliyun-oss-presigned"
    remember_parts = True

    def __init__(self, source: UrlSource | Callable[..., Any], *, session_dir: str | PathLike[str] | None = None,
                 part_size: int | None = None, max_parallel: int | None = None,
                 refresh_margin: timedelta = timedelta(seconds=30)) -> None:
        super().__init__(session_dir=session_dir, part_size=part_size, max_parallel=max_parallel)
        self.urls = presigned_leases(source, refresh_margin=refresh_margin)

    def __repr__(self) -> str:
        return "AliOssPresignedUpload(source=...)"

    def _identity(self, task: TransferTask) -> dict[str, str]:
        return {"url": strip_query(task.url)}

    async def _resume(self, client: httpx.AsyncClient, upload: _Upload) -> _Upload | None:
        return upload  # nothing to ask: UploadPart on a vanished upload says NoSuchUpload and we start over

    def _part_done(self, upload: _Upload, number: int) -> None:
        self.urls.discard(UrlKey("upload_part", number, upload.upload_id))

    async def authorize(self, request: Request) -> Attempt:
        """The source's URL for this operation, sent with exactly the headers it says (no Content-MD5: signed)."""
        key = request.lease
        assert isinstance(key, UrlKey)
        lease = await self.urls.get(key)
        query = dict(parse_qsl(urlsplit(lease.value.url).query, keep_blank_values=True))
        if key.upload_id is not None and query.get("uploadId", key.upload_id) != key.upload_id:
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"the URL source gave a {key.op!r} URL for another upload "
                            f"({query['uploadId']!r}, expected {key.upload_id!r})", retryable=False)
        if key.part_number is not None and query.get("partNumber", str(key.part_number)) != str(key.part_number):
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, f"the URL source gave the URL of part "
                            f"{query['partNumber']} when asked for part {key.part_number}", retryable=False)
        return Attempt(lease.value.url, lease.value.headers, lease.generation)

    async def renew(self, request: Request, attempt: Attempt, answer: httpx.Response) -> bool:
        """A URL refused as expired is asked for once more (once for all the parts refused with it)."""
        info = parse_error(answer.status_code, answer.content, answer.headers)
        if not is_expired_rejection(answer.status_code, info.code, info.message):
            return False
        log.info("presigned", f"{request.what}: URL rejected ({answer.status_code} {info.code}); asking for a new one")
        assert isinstance(request.lease, UrlKey)
        await self.urls.renew(request.lease, attempt.generation)
        return True


class AliOssPresignedDownload(PresignedRangeDownload):
    """Range download from an OSS presigned GET URL (the source's ``"get"`` URL).

    Probe with ``GET Range: bytes=0-0`` (HEAD is refused on a GET URL); ranged GETs send the issuer's URL and signed
    headers plus the unsigned Range / If-Match / Accept. ``x-oss-range-behavior: standard`` is sent only if the issuer
    signed it (it is then among the headers it returned): an ``x-oss-*`` header the signature did not cover breaks the
    signature, so it is never added here. Without it, OSS ignores an out-of-range Range and answers 200 with the
    whole object; the engine requests only ranges inside the probed size and treats a 200 as "range ignored"
    (restart as one stream from byte 0, or fail), never appending it, so the file is not corrupted either way.
    Issuers that can should presign with ``headers={"x-oss-range-behavior": "standard"}``.
    """

    def standard_range_signed(self) -> bool:
        """Whether the current URL carries the standard range behaviour (i.e. the issuer signed it)."""
        lease = self.urls.peek(GET)
        return lease is not None and any(k.lower() == "x-oss-range-behavior" for k in lease.value.headers)
