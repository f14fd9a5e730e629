"""A fake Aliyun OSS server for tests: real HTTP on 127.0.0.1, every request's V4 signature verified.

No OSS emulator exists that checks signatures or implements ListParts/Abort, so
this is our own, built on :class:`tests.support.http_server.TestHttpServer` (connection handling, request log,
generic :class:`Fault` injection such as resets, truncated bodies and stalls) and checked against the official
``alibabacloud_oss_v2`` client in tests/providers/test_fake_oss.py, so a client that passes it passes for a reason.

What it speaks (path-style ``/<bucket>/<key>`` only):

* auth: header form and presigned query form via :func:`verify_request` (below) against
  the configured credentials; 403 SignatureDoesNotMatch / InvalidAccessKeyId / RequestTimeTooSkewed (15 min, with
  the server's ``Date``; shift the server clock with ``clock_offset``) / AccessDenied "Request has expired";
* PutObject, HeadObject, GetObject (Range in both behaviours: by default an invalid or out-of-bounds range is
  ignored and the whole object comes back with 200; with ``x-oss-range-behavior: standard`` the end is clamped
  and a start at/after EOF gives 416 InvalidRange), If-Match / If-None-Match / If-(Un)Modified-Since, DeleteObject;
* InitiateMultipartUpload, UploadPart (ETag = quoted upper-case MD5, optional Content-MD5 check), ListParts with
  paging, CompleteMultipartUpload (ascending order, minimum part size ``min_part_size`` except the last, ETag
  match, ``x-oss-complete-all``), AbortMultipartUpload, NoSuchUpload;
* ``x-oss-hash-crc64ecma`` on object and part responses (computed from the bytes, independently of any combine);
* errors as OSS XML ``<Error>`` with Code/Message/RequestId/HostId/EC plus ``x-oss-ec``/``x-oss-request-id``
  headers, and the base64 ``x-oss-err`` header on bodiless HEAD errors. EC values are the ones OSS documents where
  it gives them (expired URL, bad expiry, part order, part too small) and ``0000-00000000`` otherwise.

Knobs: ``clock_offset`` (server clock vs real time), ``min_part_size``, ``list_parts_page_limit`` (force small
ListParts pages), ``verify_signatures``, :meth:`inject_error` / :meth:`drop_connection` / :meth:`lose_response`
(per OSS operation, optionally per part number, e.g. "lose the response of a successful CompleteMultipartUpload"
so a retry sees NoSuchUpload), :meth:`put_object` (seed or change an object: new ETag), and :attr:`calls`, an
OSS-level request log (:meth:`ops`, :meth:`count_op`). The inherited :meth:`add_fault` takes the transport
faults of :class:`Fault` that make sense here: "drop", "delay", "status" (answered as an OSS XML error, or with
``body`` verbatim), "reset" / "truncate" / "stall" (mid-body) and "ignore_range" (200 + whole object); the other
kinds are ignored. Operation names in :attr:`OssCall.op` and fault filters: PutObject, GetObject, HeadObject,
DeleteObject, InitiateMultipartUpload, UploadPart, ListParts, CompleteMultipartUpload, AbortMultipartUpload
(plus PutBucket, HeadBucket and Unsupported).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from app.providers.aliyun_oss.crc64 import crc64
from app.providers.aliyun_oss.signer import (
    _DATE_FORMAT,
    ALGORITHM,
    MAX_PRESIGN_EXPIRES,
    TERMINATOR,
    UNSIGNED_PAYLOAD,
    ClockOffset,
    OssCredentials,
    OssV4Signer,
    _canonical_headers,
    _canonical_request,
    _hmac_hex,
    _split_query,
    _string_to_sign,
    _utc,
    build_object_url,
    canonical_query_string,
    canonical_uri,
    signing_key,
)
from tests.support.http_server import (
    RequestRecord,
    TestHttpServer,
    _Action,
    _Request,
    _Response,
    http_date,
    take_fault,
)

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_CREDENTIALS",
    "DEFAULT_REGION",
    "FakeOssServer",
    "MultipartUpload",
    "OssAuthError",
    "OssCall",
    "OssFault",
    "OssObject",
    "OssPart",
    "VerifiedRequest",
    "verify_request",
]

DEFAULT_CREDENTIALS = OssCredentials("fake-oss-access-key-id", "fake-oss-access-key-secret")
DEFAULT_REGION = "cn-hangzhou"
DEFAULT_BUCKET = "test-bucket"
MIN_PART_SIZE = 100 * 1024
MAX_PART_NUMBER = 10000
_UNKNOWN_EC = "0000-00000000"
_XML = "application/xml"


def _md5_etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest().upper() + '"'


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class OssObject:
    """A stored object. ``etag`` is quoted like the service sends it; ``crc64`` is the unsigned CRC-64/XZ."""

    data: bytes
    etag: str
    crc64: int
    last_modified: float
    content_type: str = "application/octet-stream"
    object_type: Literal["Normal", "Multipart"] = "Normal"


@dataclass
class OssPart:
    number: int
    data: bytes
    etag: str
    crc64: int
    last_modified: float


@dataclass
class MultipartUpload:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    content_type: str
    parts: dict[int, OssPart] = field(default_factory=dict)


@dataclass
class OssCall:
    """One request as the fake understood it: the OSS operation, how it was signed and what it answered."""

    op: str
    method: str
    bucket: str | None
    key: str | None
    params: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    request_id: str = ""
    auth: Literal["header", "query"] | None = None
    status: int = 0
    code: str | None = None
    fault: str | None = None

    @property
    def upload_id(self) -> str | None:
        return self.params.get("uploadId")

    @property
    def part_number(self) -> int | None:
        value = self.params.get("partNumber")
        return int(value) if value and value.isdigit() else None


@dataclass
class OssFault:
    """A fault for one OSS operation (``op`` None = any), optionally only for one part number.

    ``action``: "error" answers an OSS error (``status``/``code``, ``Retry-After`` when given) without doing the
    operation; "drop" closes the connection without doing it; "lose_response" DOES the operation and then closes
    the connection without answering (the client can't tell it succeeded). Matching requests pass ``skip`` times
    first, then the fault applies ``times`` times (-1 = forever).
    """

    op: str | None
    action: Literal["error", "drop", "lose_response"] = "error"
    status: int = 503
    code: str = "ServiceUnavailable"
    message: str = "Injected fault: please retry."
    retry_after: str | None = None
    part_number: int | None = None
    times: int = 1
    skip: int = 0
    remaining: int = field(init=False)
    applied: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.remaining = self.times


class _OssError(Exception):
    def __init__(self, status: int, code: str, message: str, *, ec: str = _UNKNOWN_EC,
                 details: dict[str, str] | None = None, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code, self.message, self.ec = status, code, message, ec or _UNKNOWN_EC
        self.details = details or {}
        self.headers = headers or []


def _parse_query(query: str) -> dict[str, str]:
    """Decoded query (no '+'-as-space: OSS clients percent-encode); a repeated key keeps its first value."""
    out: dict[str, str] = {}
    for piece in query.split("&"):
        if piece:
            k, _, v = piece.partition("=")
            out.setdefault(unquote(k), unquote(v))
    return out


def _classify(method: str, bucket: str | None, key: str | None, params: dict[str, str],
              headers: dict[str, str]) -> str:
    if bucket is None:
        return "ListBuckets" if method == "GET" else "Unsupported"
    if key is None:
        return {"PUT": "PutBucket", "HEAD": "HeadBucket"}.get(method, "Unsupported")
    if method == "PUT":
        if "partNumber" in params or "uploadId" in params:
            return "UploadPart"
        return "CopyObject" if "x-oss-copy-source" in headers else "PutObject"
    if method == "GET":
        return "ListParts" if "uploadId" in params else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "POST":
        if "uploads" in params:
            return "InitiateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        return "Unsupported"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in params else "DeleteObject"
    return "Unsupported"


class FakeOssServer(TestHttpServer):
    """Threaded fake OSS on 127.0.0.1:0; use as a context manager. See the module docstring for the protocol."""

    __test__ = False

    def __init__(self, *, credentials: Iterable[OssCredentials] = (DEFAULT_CREDENTIALS,),
                 region: str = DEFAULT_REGION, buckets: Iterable[str] = (DEFAULT_BUCKET,),
                 min_part_size: int = MIN_PART_SIZE, max_skew: timedelta = timedelta(minutes=15),
                 clock_offset: float = 0.0, verify_signatures: bool = True,
                 list_parts_page_limit: int | None = None, keep_alive: bool = True) -> None:
        super().__init__(keep_alive=keep_alive)
        self.credentials_list = list(credentials)
        if not self.credentials_list:
            raise ValueError("the fake needs at least one credential")
        self.region = region
        self.buckets: set[str] = set(buckets)
        self.min_part_size = min_part_size
        self.max_skew = max_skew
        self.clock_offset = clock_offset  # seconds the server clock is ahead of real time
        self.verify_signatures = verify_signatures
        self.list_parts_page_limit = list_parts_page_limit
        self.objects: dict[tuple[str, str], OssObject] = {}
        self.multipart_uploads: dict[str, MultipartUpload] = {}
        self.calls: list[OssCall] = []
        self.oss_faults: list[OssFault] = []
        self._request_ids = itertools.count(1)

    # -- conveniences for tests ------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """What an OSS client's ``endpoint`` should be (path-style addressing, plain HTTP)."""
        return self.base_url

    @property
    def credentials(self) -> OssCredentials:
        """The first configured credentials (the ones tests normally sign with)."""
        return self.credentials_list[0]

    def signer(self, credentials: OssCredentials | None = None, *, clock: ClockOffset | None = None) -> OssV4Signer:
        return OssV4Signer(credentials or self.credentials, self.region, clock=clock)

    def object_url(self, bucket: str, key: str | None = None, **query: str | int | None) -> str:
        return build_object_url(self.endpoint, bucket, key, path_style=True, query=query)

    def server_now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset)

    def add_bucket(self, name: str) -> None:
        with self._lock:
            self.buckets.add(name)

    def put_object(self, bucket: str, key: str, data: bytes, *,
                   content_type: str = "application/octet-stream") -> OssObject:
        """Store an object directly (also the way to make "the remote changed": a new ETag)."""
        with self._lock:
            self.buckets.add(bucket)
            obj = OssObject(bytes(data), _md5_etag(data), crc64(data), self._now_ts(), content_type)
            self.objects[(bucket, key)] = obj
            return obj

    def get_object(self, bucket: str, key: str) -> OssObject | None:
        with self._lock:
            return self.objects.get((bucket, key))

    def inject_error(self, op: str | None, status: int = 503, code: str = "ServiceUnavailable", *,
                     message: str = "Injected fault: please retry.", retry_after: str | None = None,
                     part_number: int | None = None, times: int = 1, skip: int = 0) -> OssFault:
        return self.add_oss_fault(OssFault(op, "error", status, code, message, retry_after, part_number, times,
                                           skip))

    def drop_connection(self, op: str | None, *, part_number: int | None = None, times: int = 1,
                        skip: int = 0) -> OssFault:
        return self.add_oss_fault(OssFault(op, "drop", part_number=part_number, times=times, skip=skip))

    def lose_response(self, op: str, *, part_number: int | None = None, times: int = 1, skip: int = 0) -> OssFault:
        """Perform ``op`` for real, then close the connection without answering."""
        return self.add_oss_fault(OssFault(op, "lose_response", part_number=part_number, times=times, skip=skip))

    def add_oss_fault(self, fault: OssFault) -> OssFault:
        with self._lock:
            self.oss_faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.oss_faults.clear()
        super().clear_faults()

    def ops(self) -> list[str]:
        """The OSS operations seen so far, in order (handy for asserting what a client did)."""
        with self._lock:
            return [c.op for c in self.calls]

    def count_op(self, op: str, *, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c.op == op and (status is None or c.status == status))

    # -- dispatch --------------------------------------------------------------------------------------------------
    def _now_ts(self) -> float:
        return time.time() + self.clock_offset

    def _take_oss_fault(self, call: OssCall) -> OssFault | None:
        with self._lock:
            return take_fault(self.oss_faults, lambda f: (f.op is None or f.op == call.op)
                              and (f.part_number is None or f.part_number == call.part_number))

    def _respond(self, conn: socket.socket, conn_id: int, req: _Request) -> _Action:
        headers = {k.lower(): v for k, v in req.headers.items()}
        params = _parse_query(req.query)
        bucket, key = self._bucket_key(req.path)
        op = _classify(req.method, bucket, key, params, headers)
        fault = self._take_fault(req, op in ("GetObject", "HeadObject"))
        rec = RequestRecord(conn_id, req.method, req.path, req.query, req.headers, req.pairs,
                            req.headers.get("range"), len(req.body), fault=fault.kind if fault else None)
        with self._lock:
            request_id = f"FAKE{next(self._request_ids):020X}"
        call = OssCall(op, req.method, bucket, key, params, headers, request_id)
        with self._lock:
            self._log.append(rec)
            self.calls.append(call)
        kind = fault.kind if fault else None
        if kind == "drop":
            return "close"
        if kind == "delay" and self._stop.wait(fault.seconds):  # type: ignore[union-attr]
            return "close"

        oss_fault = None if kind == "status" else self._take_oss_fault(call)
        call.fault = kind or (oss_fault.action if oss_fault else None)
        try:
            if kind == "status":
                assert fault is not None
                extra = [("Retry-After", fault.retry_after)] if fault.retry_after is not None else []
                extra += list(fault.headers.items())
                if fault.body is not None:  # a non-OSS answer, e.g. an HTML 502 from a proxy in front
                    body = fault.body.encode() if isinstance(fault.body, str) else fault.body
                    call.status = fault.status
                    resp = _Response(fault.status, [("Content-Type", "text/html"), *extra], body)
                    resp.headers[:0] = self._common_headers(request_id)
                    return self._write(conn, req, resp, fault, rec)
                code = {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(fault.status, "InternalError")
                raise _OssError(fault.status, code, "Injected transport fault.", headers=extra)
            if oss_fault is not None and oss_fault.action == "drop":
                return "close"
            if oss_fault is not None and oss_fault.action == "error":
                extra = [("Retry-After", oss_fault.retry_after)] if oss_fault.retry_after is not None else []
                raise _OssError(oss_fault.status, oss_fault.code, oss_fault.message, headers=extra)
            if self.verify_signatures:
                call.auth = self._authenticate(req, headers, bucket, key)
            resp = self._dispatch(op, req, headers, params, bucket, key, fault)
        except _OssError as err:
            resp = self._error_response(req, err, bucket, key, request_id)
            call.code = err.code
        call.status = resp.status
        if oss_fault is not None and oss_fault.action == "lose_response" and resp.status < 300:
            rec.status = 0
            return "close"
        resp.headers[:0] = self._common_headers(request_id)
        return self._write(conn, req, resp, fault, rec)

    @staticmethod
    def _bucket_key(path: str) -> tuple[str | None, str | None]:
        """``req.path`` is already percent-decoded by the base server."""
        if path in ("", "/"):
            return None, None
        bucket, sep, key = path.lstrip("/").partition("/")
        return bucket, (key if sep and key else None)

    def _authenticate(self, req: _Request, headers: dict[str, str], bucket: str | None,
                      key: str | None) -> Literal["header", "query"]:
        by_id = {c.access_key_id: c for c in self.credentials_list}
        url = f"http://127.0.0.1:{self.port}{quote(req.path, safe='/')}" + (f"?{req.query}" if req.query else "")
        try:
            verified = verify_request(req.method, url, headers, by_id.get, self.server_now(), self.max_skew,
                                      region=self.region, bucket_key=(bucket, key))
        except OssAuthError as exc:
            raise _OssError(exc.status, exc.code, exc.message, ec=exc.ec, details=exc.details) from None
        return verified.form

    def _common_headers(self, request_id: str) -> list[tuple[str, str]]:
        return [("Date", http_date(self._now_ts())), ("x-oss-request-id", request_id)]

    def _error_response(self, req: _Request, err: _OssError, bucket: str | None, key: str | None,
                        request_id: str) -> _Response:
        root = ET.Element("Error")
        fields = {"Code": err.code, "Message": err.message, "RequestId": request_id, "HostId": "127.0.0.1",
                  **({"BucketName": bucket} if bucket else {}), **({"Key": key} if key else {}), **err.details,
                  "EC": err.ec}
        for tag, text in fields.items():
            ET.SubElement(root, tag).text = text
        body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        hdrs = [("Content-Type", _XML), ("x-oss-ec", err.ec), *err.headers]
        if req.method == "HEAD":
            hdrs.append(("x-oss-err", base64.b64encode(body).decode("ascii")))
        return _Response(err.status, hdrs, body)

    def _dispatch(self, op: str, req: _Request, headers: dict[str, str], params: dict[str, str],
                  bucket: str | None, key: str | None, fault: object) -> _Response:
        if op == "PutBucket":
            self.add_bucket(bucket)  # type: ignore[arg-type]
            return _Response(200, [])
        if op in ("ListBuckets", "Unsupported", "CopyObject"):
            raise _OssError(501, "NotImplemented", f"The fake OSS server does not implement {req.method} here.")
        with self._lock:
            if bucket not in self.buckets:
                raise _OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
        if op == "HeadBucket":
            return _Response(200, [])
        assert bucket is not None and key is not None
        if len(key.encode("utf-8")) > 1023 or key.startswith(("/", "\\")):
            raise _OssError(400, "InvalidObjectName", "The object name is invalid.")
        self._check_content_md5(req.body, headers)
        handler = getattr(self, "_op_" + op)
        return handler(req, headers, params, bucket, key, fault)

    @staticmethod
    def _check_content_md5(body: bytes, headers: dict[str, str]) -> None:
        given = headers.get("content-md5")
        if given is None:
            return
        if base64.b64encode(hashlib.md5(body).digest()).decode("ascii") != given.strip():
            raise _OssError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")

    # -- objects ---------------------------------------------------------------------------------------------------
    def _object_headers(self, obj: OssObject) -> list[tuple[str, str]]:
        return [("Content-Type", obj.content_type), ("ETag", obj.etag), ("Last-Modified", http_date(obj.last_modified)),
                ("x-oss-hash-crc64ecma", str(obj.crc64)), ("x-oss-object-type", obj.object_type),
                ("x-oss-storage-class", "Standard"), ("Accept-Ranges", "bytes")]

    def _store(self, bucket: str, key: str, obj: OssObject, headers: dict[str, str]) -> None:
        with self._lock:
            if headers.get("x-oss-forbid-overwrite", "").lower() == "true" and (bucket, key) in self.objects:
                raise _OssError(409, "FileAlreadyExists", "The object you specified already exists.")
            self.objects[(bucket, key)] = obj

    def _op_PutObject(self, req: _Request, headers: dict[str, str], params: dict[str, str], bucket: str, key: str,
                      fault: object) -> _Response:
        data = req.body
        obj = OssObject(data, _md5_etag(data), crc64(data), self._now_ts(),
                        headers.get("content-type", "application/octet-stream"))
        self._store(bucket, key, obj, headers)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        return _Response(200, [("ETag", obj.etag), ("x-oss-hash-crc64ecma", str(obj.crc64)), ("Content-MD5", md5)])

    def _op_DeleteObject(self, req: _Request, headers: dict[str, str], params: dict[str, str], bucket: str,
                         key: str, fault: object) -> _Response:
        with self._lock:
            self.objects.pop((bucket, key), None)
        return _Response(204, [])

    def _lookup(self, bucket: str, key: str) -> OssObject:
        with self._lock:
            obj = self.objects.get((bucket, key))
        if obj is None:
            raise _OssError(404, "NoSuchKey", "The specified key does not exist.")
        return obj

    def _check_conditions(self, obj: OssObject, headers: dict[str, str]) -> int | None:
        """412 or 304 when a conditional header says so, else None (the order RFC 9110 §13.2.2 gives)."""
        def tags(value: str) -> list[str]:
            return [t.strip() for t in value.split(",")]

        def date(value: str) -> float | None:
            try:
                return parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError):
                return None

        lm = int(obj.last_modified)
        if "if-match" in headers:
            if "*" not in tags(headers["if-match"]) and obj.etag not in tags(headers["if-match"]):
                return 412
        elif "if-unmodified-since" in headers:
            when = date(headers["if-unmodified-since"])
            if when is not None and lm > when:
                return 412
        if "if-none-match" in headers:
            if "*" in tags(headers["if-none-match"]) or obj.etag in tags(headers["if-none-match"]):
                return 304
        elif "if-modified-since" in headers:
            when = date(headers["if-modified-since"])
            if when is not None and lm <= when:
                return 304
        return None

    def _op_HeadObject(self, req: _Request, headers: dict[str, str], params: dict[str, str], bucket: str, key: str,
                       fault: object) -> _Response:
        obj = self._lookup(bucket, key)
        cond = self._check_conditions(obj, headers)
        if cond == 412:
            raise _OssError(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")
        if cond == 304:
            return _Response(304, [("ETag", obj.etag)], length=None)
        return _Response(200, self._object_headers(obj), length=len(obj.data))

    def _op_GetObject(self, req: _Request, headers: dict[str, str], params: dict[str, str], bucket: str, key: str,
                      fault: object) -> _Response:
        obj = self._lookup(bucket, key)
        cond = self._check_conditions(obj, headers)
        if cond == 412:
            raise _OssError(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")
        if cond == 304:
            return _Response(304, [("ETag", obj.etag)], length=None)
        hdrs = self._object_headers(obj)
        total = len(obj.data)
        rng = headers.get("range")
        if rng is None or getattr(fault, "kind", None) == "ignore_range":
            return _Response(200, hdrs, memoryview(obj.data))
        standard = headers.get("x-oss-range-behavior", "").strip().lower() == "standard"
        span = _oss_range(rng, total, standard)
        if span == "416":
            raise _OssError(416, "InvalidRange", "The requested range cannot be satisfied.",
                            headers=[("Content-Range", f"bytes */{total}")])
        if span is None:
            return _Response(200, hdrs, memoryview(obj.data))
        start, end = span
        return _Response(206, [*hdrs, ("Content-Range", f"bytes {start}-{end}/{total}")],
                         memoryview(obj.data)[start : end + 1])

    # -- multipart -------------------------------------------------------------------------------------------------
    @staticmethod
    def _xml(root: ET.Element, extra: list[tuple[str, str]] | None = None) -> _Response:
        return _Response(200, [("Content-Type", _XML), *(extra or [])],
                         ET.tostring(root, encoding="utf-8", xml_declaration=True))

    @staticmethod
    def _key_for_xml(key: str, params: dict[str, str]) -> str:
        return quote(key, safe="") if params.get("encoding-type") == "url" else key

    @staticmethod
    def _children(root: ET.Element, items: Iterable[tuple[str, str]]) -> None:
        for tag, text in items:
            ET.SubElement(root, tag).text = text

    def _upload(self, params: dict[str, str], bucket: str, key: str) -> MultipartUpload:
        with self._lock:
            upload = self.multipart_uploads.get(params.get("uploadId", ""))
        if upload is None or upload.bucket != bucket or upload.key != key:
            raise _OssError(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
                            "or the upload may have been aborted or completed.")
        return upload

    def _op_InitiateMultipartUpload(self, req: _Request, headers: dict[str, str], params: dict[str, str],
                                    bucket: str, key: str, fault: object) -> _Response:
        upload_id = uuid.uuid4().hex.upper()
        with self._lock:
            self.multipart_uploads[upload_id] = MultipartUpload(
                upload_id, bucket, key, self._now_ts(), headers.get("content-type", "application/octet-stream"))
        root = ET.Element("InitiateMultipartUploadResult")
        items = [("Bucket", bucket), ("Key", self._key_for_xml(key, params)), ("UploadId", upload_id)]
        if params.get("encoding-type") == "url":
            items.insert(0, ("EncodingType", "url"))
        self._children(root, items)
        return self._xml(root)

    def _op_UploadPart(self, req: _Request, headers: dict[str, str], params: dict[str, str], bucket: str, key: str,
                       fault: object) -> _Response:
        upload = self._upload(params, bucket, key)
        number_text = params.get("partNumber", "")
        if not number_text.isdigit() or not 1 <= int(number_text) <= MAX_PART_NUMBER:
            raise _OssError(400, "InvalidArgument", f"Part number must be an integer between 1 and {MAX_PART_NUMBER}.")
        data = req.body
        part = OssPart(int(number_text), data, _md5_etag(data), crc64(data), self._now_ts())
        with self._lock:
            upload.parts[part.number] = part
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        return _Response(200, [("ETag", part.etag), ("x-oss-hash-crc64ecma", str(part.crc64)), ("Content-MD5", md5)])

    def _op_ListParts(self, req: _Request, headers: dict[str, str], params: dict[str, str], bucket: str, key: str,
                      fault: object) -> _Response:
        upload = self._upload(params, bucket, key)
        max_text, marker_text = params.get("max-parts", "1000"), params.get("part-number-marker", "0") or "0"
        if not max_text.isdigit() or not 1 <= int(max_text) <= 1000 or not marker_text.isdigit():
            raise _OssError(400, "InvalidArgument", "max-parts must be 1..1000 and part-number-marker an integer.")
        max_parts, marker = int(max_text), int(marker_text)
        limit = min(max_parts, self.list_parts_page_limit or max_parts)
        with self._lock:
            remaining = sorted((p for p in upload.parts.values() if p.number > marker), key=lambda p: p.number)
        page, truncated = remaining[:limit], len(remaining) > limit
        root = ET.Element("ListPartsResult")
        items = [("Bucket", bucket), ("Key", self._key_for_xml(key, params)), ("UploadId", upload.upload_id),
                 ("PartNumberMarker", str(marker)), ("NextPartNumberMarker", str(page[-1].number if page else marker)),
                 ("MaxParts", str(limit)), ("IsTruncated", "true" if truncated else "false")]
        if params.get("encoding-type") == "url":
            items.insert(0, ("EncodingType", "url"))
        self._children(root, items)
        for p in page:
            self._children(ET.SubElement(root, "Part"), [
                ("PartNumber", str(p.number)), ("LastModified", _iso(p.last_modified)), ("ETag", p.etag),
                ("HashCrc64ecma", str(p.crc64)), ("Size", str(len(p.data)))])
        return self._xml(root)

    def _op_CompleteMultipartUpload(self, req: _Request, headers: dict[str, str], params: dict[str, str],
                                    bucket: str, key: str, fault: object) -> _Response:
        upload = self._upload(params, bucket, key)
        with self._lock:
            stored = dict(upload.parts)
        if headers.get("x-oss-complete-all", "").lower() == "yes":
            if req.body.strip():
                raise _OssError(400, "InvalidArgument", "x-oss-complete-all: yes requires an empty body.")
            chosen = [stored[n] for n in sorted(stored)]
            if not chosen:
                raise _OssError(400, "InvalidPart", "There is no uploaded part.")
        else:
            chosen = self._chosen_parts(req.body, stored)
        for p in chosen[:-1]:
            if len(p.data) < self.min_part_size:
                raise _OssError(400, "EntityTooSmall", f"Part {p.number} is smaller than the minimum allowed size "
                                f"({self.min_part_size} bytes); only the last part may be.", ec="0042-00000213")
        data = b"".join(p.data for p in chosen)
        digest = hashlib.md5(b"".join(hashlib.md5(p.data).digest() for p in chosen)).hexdigest().upper()
        obj = OssObject(data, f'"{digest}-{len(chosen)}"', crc64(data), self._now_ts(), upload.content_type,
                        "Multipart")
        with self._lock:
            if self.multipart_uploads.get(upload.upload_id) is not upload:  # a concurrent Complete/Abort won
                raise _OssError(404, "NoSuchUpload", "The specified upload does not exist.")
            self._store(bucket, key, obj, headers)
            del self.multipart_uploads[upload.upload_id]
        root = ET.Element("CompleteMultipartUploadResult")
        items = [("Location", self.object_url(bucket, key)), ("Bucket", bucket),
                 ("Key", self._key_for_xml(key, params)), ("ETag", obj.etag)]
        if params.get("encoding-type") == "url":
            items.insert(0, ("EncodingType", "url"))
        self._children(root, items)
        return self._xml(root, [("ETag", obj.etag), ("x-oss-hash-crc64ecma", str(obj.crc64))])

    @staticmethod
    def _chosen_parts(body: bytes, stored: dict[int, OssPart]) -> list[OssPart]:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            raise _OssError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        if root.tag != "CompleteMultipartUpload":
            raise _OssError(400, "MalformedXML", "Root element must be CompleteMultipartUpload.")
        chosen: list[OssPart] = []
        last = 0
        for elem in root.findall("Part"):
            number_text = (elem.findtext("PartNumber") or "").strip()
            etag = (elem.findtext("ETag") or "").strip()
            if not number_text.isdigit() or not etag:
                raise _OssError(400, "MalformedXML", "Each Part needs a PartNumber and an ETag.")
            number = int(number_text)
            if number <= last:
                raise _OssError(400, "InvalidPartOrder", "The list of parts was not in ascending order. Parts must "
                                "be ordered by part number.", ec="0042-00000209")
            last = number
            part = stored.get(number)
            if part is None or part.etag.strip('"').upper() != etag.strip('"').upper():
                raise _OssError(400, "InvalidPart", f"Part {number} was not found or its ETag does not match.",
                                details={"PartNumber": str(number)})
            chosen.append(part)
        if not chosen:
            raise _OssError(400, "MalformedXML", "CompleteMultipartUpload lists no Part.")
        return chosen

    def _op_AbortMultipartUpload(self, req: _Request, headers: dict[str, str], params: dict[str, str],
                                 bucket: str, key: str, fault: object) -> _Response:
        upload = self._upload(params, bucket, key)
        with self._lock:
            self.multipart_uploads.pop(upload.upload_id, None)
        return _Response(204, [])


def _oss_range(value: str, total: int, standard: bool) -> tuple[int, int] | Literal["416"] | None:
    """OSS Range semantics: inclusive (start, end), "416", or None = ignore the header and send everything.

    Only the first range of a multi-range header is served. Without ``x-oss-range-behavior: standard`` any range
    that is not fully inside the object is invalid and ignored (200 + whole object); with it the end is clamped,
    a suffix larger than the object means the whole object, and a start at/after EOF is 416.
    """
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes":
        return None
    first = spec.split(",")[0].strip()
    start_text, dash, end_text = first.partition("-")
    start_text, end_text = start_text.strip(), end_text.strip()
    if not dash or not (start_text or end_text) or not all(t.isdigit() for t in (start_text, end_text) if t):
        return None
    if not start_text:  # suffix
        n = int(end_text)
        if n == 0:
            return "416" if standard else None
        if n > total:
            return (0, total - 1) if standard and total else ("416" if standard else None)
        return total - n, total - 1
    start = int(start_text)
    end = int(end_text) if end_text else total - 1
    if end < start:
        return None
    if start >= total:
        return "416" if standard else None
    if end >= total:
        if not standard and end_text:
            return None
        end = total - 1
    return start, end


# --------------------------------------------------------------------------------------------------------------
# the V4 verifier: the server's side of app.providers.aliyun_oss.signer, from the same canonical pieces
# --------------------------------------------------------------------------------------------------------------
DEFAULT_MAX_SKEW = timedelta(seconds=900)  # OSS rejects requests more than 15 minutes off


class OssAuthError(Exception):
    """Why a request failed authentication, in OSS terms (HTTP status, error Code, Message, EC, extra fields)."""

    def __init__(self, status: int, code: str, message: str, *, ec: str = "",
                 details: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.ec = status, code, message, ec
        self.details: dict[str, str] = dict(details or {})


@dataclass(frozen=True)
class VerifiedRequest:
    """A request whose signature checked out."""

    access_key_id: str
    form: Literal["header", "query"]
    signing_time: datetime
    expires: int | None
    canonical_request: str = field(repr=False)
    string_to_sign: str = field(repr=False)


_CREDENTIAL_RE = re.compile(r"^(?P<ak>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<product>[^/]+)/" + TERMINATOR + "$")


def _parse_time(value: str | None, what: str) -> datetime:
    try:
        return datetime.strptime(value or "", _DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise OssAuthError(400, "InvalidArgument", f"{what} is missing or not in ISO8601 basic format "
                           "(YYYYMMDDTHHMMSSZ).") from None


def _parse_authorization(value: str) -> tuple[str, list[str], str]:
    """(credential, additional header names, signature) from an OSS4-HMAC-SHA256 Authorization header."""
    rest = value[len(ALGORITHM):].strip()
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, val = item.strip().partition("=")
        if not sep:
            raise OssAuthError(400, "InvalidArgument", "Authorization header is malformed.")
        fields[name.strip()] = val.strip()
    if "Credential" not in fields or "Signature" not in fields:
        raise OssAuthError(400, "InvalidArgument", "Authorization header needs Credential and Signature.")
    extra = [n for n in fields.get("AdditionalHeaders", "").split(";") if n]
    return fields["Credential"], extra, fields["Signature"]


def _bucket_key_from_path(path: str) -> tuple[str | None, str | None]:
    path = unquote(path or "/")
    if path in ("", "/"):
        return None, None
    bucket, sep, key = path.lstrip("/").partition("/")
    return bucket, (key if sep else None)


def verify_request(method: str, url: str, headers: Mapping[str, str],
                   secret_lookup: Callable[[str], str | OssCredentials | None], now: datetime,
                   max_skew: timedelta = DEFAULT_MAX_SKEW, *, region: str | None = None, product: str = "oss",
                   bucket_key: tuple[str | None, str | None] | None = None) -> VerifiedRequest:
    """Recompute and check a V4 signature (header or query form) as OSS would; raise :class:`OssAuthError`.

    ``secret_lookup(access_key_id)`` returns the secret (or :class:`OssCredentials`, whose token must then be
    presented) or None for an unknown key. ``now`` is the server's clock. The header form is rejected with
    403 RequestTimeTooSkewed beyond ``max_skew``; a presigned URL with 403 AccessDenied once ``x-oss-date +
    x-oss-expires`` has passed. The method is part of the signature, so a URL presigned for GET fails for HEAD.
    ``bucket_key`` defaults to ``(bucket, key)`` parsed from the path-style URL path; pass it for virtual-hosted
    URLs or when the caller already decoded the path. Both ", " and "," separate the Authorization fields (oss2
    writes the former, the v2 SDK the latter).
    """
    now = _utc(now)
    parts = urlsplit(url)
    bucket, key = bucket_key if bucket_key is not None else _bucket_key_from_path(parts.path)
    hdrs = {k.lower(): str(v).strip(" \t") for k, v in headers.items()}
    raw_query = {unquote(k): unquote(v) for k, v in _split_query(parts.query)}
    method = method.upper()

    if "x-oss-signature" in raw_query:
        form: Literal["header", "query"] = "query"
        if raw_query.get("x-oss-signature-version") != ALGORITHM:
            raise OssAuthError(400, "InvalidArgument", "x-oss-signature-version must be OSS4-HMAC-SHA256.")
        credential = raw_query.get("x-oss-credential", "")
        additional = [n for n in raw_query.get("x-oss-additional-headers", "").split(";") if n]
        given_sig = raw_query["x-oss-signature"]
        timestamp = raw_query.get("x-oss-date")
        token = raw_query.get("x-oss-security-token")
        try:
            expires: int | None = int(raw_query.get("x-oss-expires", ""))
        except ValueError:
            expires = None
        if expires is None or not 1 <= expires <= MAX_PRESIGN_EXPIRES:
            raise OssAuthError(400, "InvalidArgument", f"x-oss-expires must be 1..{MAX_PRESIGN_EXPIRES}.",
                               ec="0002-00000232")
    else:
        form, expires = "header", None
        auth = hdrs.get("authorization", "")
        if not auth:
            raise OssAuthError(403, "AccessDenied", "You have no right to access this object because of bucket acl.")
        if not auth.startswith(ALGORITHM):
            raise OssAuthError(400, "InvalidArgument", "Only OSS4-HMAC-SHA256 signatures are supported here.")
        credential, additional, given_sig = _parse_authorization(auth)
        timestamp = hdrs.get("x-oss-date")
        token = hdrs.get("x-oss-security-token")
        if "x-oss-content-sha256" not in hdrs:
            raise OssAuthError(400, "InvalidArgument", "x-oss-content-sha256 is required for V4 signatures.")

    m = _CREDENTIAL_RE.match(credential)
    if not m:
        raise OssAuthError(400, "InvalidArgument", "Credential is malformed.")
    signing_time = _parse_time(timestamp, "x-oss-date")
    if m["date"] != (timestamp or "")[:8]:
        raise OssAuthError(403, "SignatureDoesNotMatch", "Credential date does not match x-oss-date.")
    if m["product"] != product or (region is not None and m["region"] != region):
        raise OssAuthError(403, "SignatureDoesNotMatch", "Invalid signing region or product in credential.")

    found = secret_lookup(m["ak"])
    if found is None:
        raise OssAuthError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist.")
    secret, want_token = (found.access_key_secret, found.security_token) if isinstance(found, OssCredentials) \
        else (found, None)
    if (want_token or None) != (token or None):
        raise OssAuthError(403, "InvalidAccessKeyId", "The security token is missing or does not match.")

    if form == "header":
        if abs(now - signing_time) > max_skew:
            raise OssAuthError(403, "RequestTimeTooSkewed",
                               "The difference between the request time and the current time is too large.",
                               details=_skew_details(now, signing_time, max_skew))
    else:
        assert expires is not None
        if signing_time - now > max_skew:
            raise OssAuthError(403, "RequestTimeTooSkewed", "The request time is too far in the future.",
                               details=_skew_details(now, signing_time, max_skew))
        if now > signing_time + timedelta(seconds=expires):
            raise OssAuthError(403, "AccessDenied", "Request has expired.", ec="0002-00000236",
                               details={"Expires": (signing_time + timedelta(seconds=expires)).isoformat(),
                                        "ServerTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")})

    present = {k: v for k, v in hdrs.items() if k != "authorization"}
    canon_headers = _canonical_headers(present, additional)
    query = canonical_query_string(parts.query, exclude=("x-oss-signature",) if form == "query" else ())
    creq = _canonical_request(method, canonical_uri(bucket, key), query, canon_headers, additional,
                              present.get("x-oss-content-sha256", UNSIGNED_PAYLOAD))
    scope = f"{m['date']}/{m['region']}/{m['product']}/{TERMINATOR}"
    sts = _string_to_sign(timestamp or "", scope, creq)
    expected = _hmac_hex(signing_key(secret, m["date"], m["region"], m["product"]), sts)
    if not hmac.compare_digest(expected, given_sig.strip().lower()):
        raise OssAuthError(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature you provided.",
                           details={"StringToSign": sts, "CanonicalRequest": creq})
    return VerifiedRequest(m["ak"], form, signing_time, expires, creq, sts)


def _skew_details(now: datetime, request_time: datetime, max_skew: timedelta) -> dict[str, str]:
    iso = "%Y-%m-%dT%H:%M:%S.000Z"
    return {"RequestTime": request_time.strftime(iso), "ServerTime": now.strftime(iso),
            "MaxAllowedSkewMilliseconds": str(int(max_skew.total_seconds() * 1000))}
