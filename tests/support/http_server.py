"""Real local HTTP/1.1 test server with fault injection (stdlib only).

Engine and CLI tests talk to it through the real httpx stack on a loopback socket, so keep-alive, partial
bodies, resets and slow links behave like they do in production. It serves static files with full Range /
If-Range / If-Match support, implements the seed's default chunked-upload protocol (seed-behavior.md §5.2)
with state that survives client restarts, logs every request, throttles bodies, and injects faults
(:class:`Fault`). :class:`ScriptedServer` replays canned raw responses, one per connection, like the seed's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from typing import Any, BinaryIO, Literal, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from tests.support.loopback import LoopbackServer


class _Countable(Protocol):
    remaining: int
    skip: int
    applied: int


FaultT = TypeVar("FaultT", bound=_Countable)

LINE_LIMIT = 65537  # longest start, header or chunk-size line read
SLICE = 256 * 1024  # send granularity: big enough for speed, small enough to count partial sends
FAULT_KINDS = frozenset({
    "status", "reset", "truncate", "stall", "drop", "ignore_range", "no_head", "no_content_length",
    "long_body", "bad_content_range", "gzip", "delay",
})
# Faults that only make sense for a file GET (or HEAD) do not consume uses on other requests.
_GET_ONLY = frozenset({"ignore_range", "long_body", "bad_content_range", "gzip"})
UploadMode = Literal["normal", "no_progress", "not_json", "prepare_file_id"]
_Action = Literal["keep", "close", "reset"]


class Headers(dict[str, str]):
    """Header map with lower-cased keys, so lookups are case-insensitive; repeated headers are joined."""

    def __init__(self, pairs: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        super().__init__()
        for key, value in pairs:
            k = key.lower()
            self[k] = f"{dict.__getitem__(self, k)}, {value}" if dict.__contains__(self, k) else value

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class Fault:
    """One injected misbehaviour. Matching requests (``method``/``path_prefix``, None = any) first pass
    through ``skip`` times untouched, then the fault applies ``times`` times (-1 = forever); ``remaining``
    shows what is left. Kind-specific parameters are ignored by the other kinds."""

    kind: str
    method: str | None = None
    path_prefix: str | None = None
    times: int = 1
    skip: int = 0
    status: int = 500  # "status"
    body: bytes | str | None = None  # "status": response body (default short text)
    retry_after: str | None = None  # "status": Retry-After value
    headers: dict[str, str] = field(default_factory=dict)  # "status": extra headers
    after_bytes: int = 0  # "reset" / "truncate" / "stall": body bytes sent before misbehaving
    seconds: float = 0.0  # "stall" / "delay"
    then_close: bool = False  # "stall": close instead of finishing the body
    honour_range: bool = False  # "no_content_length": still answer 206 to a Range
    extra: int = 16  # "long_body": bytes beyond the promised length
    content_range: str = "bytes 0-0/0"  # "bad_content_range": header value to send
    remaining: int = field(init=False)
    applied: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        self.remaining = self.times

    def _matches(self, method: str, path: str, is_file: bool) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path_prefix is not None and not path.startswith(self.path_prefix):
            return False
        if self.kind == "no_head":
            return method == "HEAD"
        if self.kind in _GET_ONLY:
            return method == "GET" and is_file
        if self.kind == "no_content_length":
            return method in ("GET", "HEAD") and is_file
        return True


@dataclass
class ServedFile:
    """A file served at an exact path; ``etag``/``last_modified`` None means the header is omitted."""

    data: bytes
    etag: str | None
    last_modified: str | None
    accept_ranges: bool = True
    content_disposition: str | None = None


@dataclass
class RequestRecord:
    """What the server saw and answered; ``status``/``bytes_sent`` are filled in while responding
    (status 0 = nothing was sent). ``fields`` lists multipart field names in wire order for uploads."""

    conn_id: int
    method: str
    path: str
    query: str
    headers: Headers
    header_pairs: list[tuple[str, str]]
    range: str | None
    body_size: int
    status: int = 0
    bytes_sent: int = 0
    fault: str | None = None
    fields: list[str] | None = None


@dataclass
class FormPart:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class UploadCall:
    """One upload request as parsed: ``kind`` is "prepare" or "chunk" (presence of offset/partSize)."""

    kind: str
    field_names: list[str]
    values: dict[str, str]
    file_part: FormPart | None
    response: dict[str, Any] | None


@dataclass
class UploadState:
    """Server-side state of one upload, keyed by fileMd5. ``data`` is the contiguous prefix from 0."""

    file_md5: str
    file_name: str
    total_size: int
    buf: bytearray
    ranges: list[tuple[int, int]] = field(default_factory=list)  # merged half-open received ranges
    completed: bool = False
    md5_ok: bool | None = None
    file_id: str | None = None

    @property
    def prefix(self) -> int:
        return self.ranges[0][1] if self.ranges and self.ranges[0][0] == 0 else 0

    @property
    def data(self) -> bytes:
        return bytes(self.buf[: self.prefix])

    def store(self, offset: int, chunk: bytes) -> None:
        self.buf[offset : offset + len(chunk)] = chunk
        merged: list[tuple[int, int]] = []
        for start, end in sorted([*self.ranges, (offset, offset + len(chunk))]):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        self.ranges = merged


@dataclass(frozen=True)
class UploadInspector:
    """Snapshot of upload counters across all uploads (the seed's ``upload_inspector``)."""

    prepare_calls: int
    chunk_calls: int
    max_next_byte: int
    total_size_seen: int
    completed: bool


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes | memoryview = b""
    length: int | None = -1  # Content-Length to announce; -1 = len(body); None = omit
    chunked: bool = False
    extra: bytes = b""  # written after the body without being announced ("long_body")


class _BadRequest(ValueError):
    """A malformed request: the test server answers 400, the fault proxy drops the connection."""


def read_head(rfile: BinaryIO) -> tuple[str, list[tuple[str, str]]] | None:
    """The start line and header fields of the next HTTP/1.1 message, stray CRLFs before it (between keep-alive
    requests) skipped; None when the stream ends first. One parser for the test server and the fault proxy."""
    line = rfile.readline(LINE_LIMIT)
    while line in (b"\r\n", b"\n"):
        line = rfile.readline(LINE_LIMIT)
    if not line:
        return None
    pairs: list[tuple[str, str]] = []
    while True:
        hline = rfile.readline(LINE_LIMIT)
        if not hline:
            return None
        if hline in (b"\r\n", b"\n"):
            return line.decode("latin-1").rstrip("\r\n"), pairs
        name, sep, value = hline.decode("latin-1").partition(":")
        if not sep:
            raise _BadRequest("header line")
        pairs.append((name.strip(), value.strip()))


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def http_date(ts: float | None = None) -> str:
    """RFC 1123 date as used in Last-Modified / Retry-After."""
    return formatdate(ts, usegmt=True)


def http_response(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """Raw HTTP/1.1 response with Content-Length and ``Connection: close`` (for :class:`ScriptedServer`)."""
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``type; a=1; b="x"`` into its main value and lower-cased parameters (quotes undone)."""
    main, _, rest = value.partition(";")
    params = {}
    for m in re.finditer(r';?\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', ";" + rest):
        raw = m.group(2).strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[m.group(1).lower()] = raw
    return main.strip().lower(), params


def parse_multipart(body: bytes, content_type: str) -> list[FormPart]:
    """Parse a multipart/form-data body per RFC 7578; raises ValueError when it is malformed."""
    kind, params = _header_params(content_type)
    boundary = params.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        raise ValueError(f"not multipart/form-data with a boundary: {content_type!r}")
    delim = b"--" + boundary.encode("latin-1")
    pos = body.find(delim)
    if pos < 0:
        raise ValueError("opening boundary missing")
    pos += len(delim)
    parts: list[FormPart] = []
    while not body.startswith(b"--", pos):
        eol = body.find(b"\r\n", pos)  # skip transport padding after the delimiter
        if eol < 0:
            raise ValueError("truncated multipart body")
        head_end = body.find(b"\r\n\r\n", eol)
        if head_end < 0:
            raise ValueError("part headers not terminated")
        head = body[eol + 2 : head_end].decode("utf-8")
        hdrs = Headers([tuple(p.strip() for p in ln.split(":", 1)) for ln in head.split("\r\n") if ln])
        end = body.find(b"\r\n" + delim, head_end + 4)
        if end < 0:
            raise ValueError("closing boundary missing")
        disp, dparams = _header_params(hdrs.get("content-disposition", ""))
        if disp != "form-data" or "name" not in dparams:
            raise ValueError(f"bad part Content-Disposition: {hdrs.get('content-disposition')!r}")
        parts.append(FormPart(dparams["name"], dparams.get("filename"), hdrs.get("content-type"),
                              body[head_end + 4 : end]))
        pos = end + 2 + len(delim)
    return parts


def _parse_range(value: str, total: int) -> tuple[int, int] | Literal["416"] | None:
    """Single byte range -> inclusive (start, end); "416" if unsatisfiable; None = ignore the header."""
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # other units and multi-range requests get the full 200 body
    m = re.fullmatch(r"\s*(\d*)\s*-\s*(\d*)\s*", spec)
    if not m or not (m.group(1) or m.group(2)):
        return None
    if not m.group(1):  # suffix: last n bytes
        n = int(m.group(2))
        return "416" if n == 0 or total == 0 else (max(0, total - n), total - 1)
    start = int(m.group(1))
    if m.group(2) and int(m.group(2)) < start:
        return None
    if start >= total:
        return "416"
    return start, min(int(m.group(2)) if m.group(2) else total - 1, total - 1)


class _Request:
    def __init__(self, method: str, target: str, version: str, pairs: list[tuple[str, str]]) -> None:
        self.method, self.version, self.pairs = method, version, pairs
        split = urlsplit(target)
        self.path, self.query = unquote(split.path or "/"), split.query
        self.headers = Headers(pairs)
        self.body = b""


class TestHttpServer(LoopbackServer):
    """Threaded HTTP/1.1 server on 127.0.0.1 (one thread per connection, keep-alive by default)."""

    thread_name = "test-http"

    def __init__(self, *, keep_alive: bool = True, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context=ssl_context)  # with a context: HTTPS (tests/support/tls.py)
        self.keep_alive = keep_alive
        self.rate_limit: float | None = None  # bytes/s per connection for GET bodies
        self.upload_rate_limit: float | None = None  # bytes/s per connection for request bodies
        self.upload_mode: UploadMode = "normal"
        self.uploads: dict[str, UploadState] = {}
        self.upload_calls: list[UploadCall] = []
        self._files: dict[str, ServedFile] = {}
        self._faults: list[Fault] = []
        self._log: list[RequestRecord] = []
        self._bytes_sent_total = 0
        self._counters = {"prepare": 0, "chunk": 0, "max_next": 0, "total_seen": 0, "completed": 0}

    # -- files -------------------------------------------------------------------------------------------
    def add_file(self, path: str, data: bytes, *, etag: str | None = "auto",
                 last_modified: str | None = "auto", accept_ranges: bool = True,
                 content_disposition: str | None = None) -> ServedFile:
        """Serve ``data`` at ``path`` (query ignored). ``accept_ranges`` only controls the advertised header;
        use an "ignore_range" fault for a server that does not honour Range."""
        if etag == "auto":
            etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
        if last_modified == "auto":
            old = self._files.get(unquote(path))
            ts = time.time()
            if old is not None and old.last_modified:  # a replacement must look newer, even within a second
                ts = max(ts, parsedate_to_datetime(old.last_modified).timestamp() + 1)
            last_modified = http_date(ts)
        served = ServedFile(bytes(data), etag, last_modified, accept_ranges, content_disposition)
        with self._lock:
            self._files[unquote(path)] = served
        return served

    def replace_file(self, path: str, data: bytes, **overrides: Any) -> ServedFile:
        """Swap the content (simulates a remote changed between or during runs). Fresh auto validators,
        except that a header that was omitted stays omitted; other options are kept unless overridden."""
        old = self._files[unquote(path)]
        opts: dict[str, Any] = {"etag": "auto" if old.etag is not None else None,
                                "last_modified": "auto" if old.last_modified is not None else None,
                                "accept_ranges": old.accept_ranges,
                                "content_disposition": old.content_disposition}
        return self.add_file(path, data, **{**opts, **overrides})

    def remove_file(self, path: str) -> None:
        with self._lock:
            self._files.pop(unquote(path), None)

    def get_file(self, path: str) -> ServedFile:
        return self._files[unquote(path)]

    # -- faults and log ----------------------------------------------------------------------------------
    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, req: _Request, is_file: bool) -> Fault | None:
        with self._lock:
            return take_fault(self._faults, lambda f: f._matches(req.method, req.path, is_file))

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of the request log (records keep updating status/bytes_sent while responding)."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._bytes_sent_total = 0

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(1 for r in self.requests
                   if (method is None or r.method == method.upper()) and (path is None or r.path == path))

    @property
    def bytes_sent_total(self) -> int:
        """Body bytes written in answer to GETs (partial sends included) since start / clear_log()."""
        return self._bytes_sent_total

    def upload_inspector(self) -> UploadInspector:
        c = self._counters
        return UploadInspector(c["prepare"], c["chunk"], c["max_next"], c["total_seen"], bool(c["completed"]))

    # -- connection handling -----------------------------------------------------------------------------
    def _serve_conn(self, conn: socket.socket, rfile: BinaryIO, conn_id: int) -> bool:
        while not self._stop.is_set():
            try:
                req = self._read_request(rfile, conn)
            except _BadRequest as exc:
                self._write(conn, None, _Response(400, [], f"bad request: {exc}\n".encode()), None)
                return False
            if req is None:
                return False
            action = self._respond(conn, conn_id, req)
            if action != "keep":
                return action == "reset"
        return False

    def _read_request(self, rfile: Any, conn: socket.socket) -> _Request | None:
        head = read_head(rfile)
        if head is None:
            return None
        line, pairs = head
        try:
            method, target, version = line.split()
        except ValueError:
            raise _BadRequest("request line") from None
        req = _Request(method.upper(), target, version, pairs)
        if req.headers.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in req.headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size_line = rfile.readline(LINE_LIMIT)
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BadRequest("chunk size") from None
                if size == 0:
                    while rfile.readline(LINE_LIMIT) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                body += self._read_body(rfile, size)
                rfile.readline(3)
            req.body = bytes(body)
        elif "content-length" in req.headers:
            try:
                req.body = self._read_body(rfile, int(req.headers["content-length"]))
            except ValueError:
                raise _BadRequest("content-length") from None
        return req

    def _read_body(self, rfile: Any, n: int) -> bytes:
        out = bytearray()
        deadline = time.monotonic()
        while len(out) < n:
            rate = self.upload_rate_limit
            piece = rfile.read(min(n - len(out), max(1, int(rate / 50)) if rate else 1 << 20))
            if not piece:
                raise ConnectionError("request body cut short")
            out += piece
            deadline = self._pace(deadline, len(piece), rate)
        return bytes(out)

    def _pace(self, deadline: float, n: int, rate: float | None) -> float:
        """Sleep so that ``n`` more bytes keep to ``rate``; interruptible by stop()."""
        now = time.monotonic()
        if not rate:
            return now
        deadline = max(deadline, now - 0.05) + n / rate
        if deadline > now and self._stop.wait(deadline - now):
            raise ConnectionAbortedError("server stopping")
        return deadline

    # -- responding --------------------------------------------------------------------------------------
    def _respond(self, conn: socket.socket, conn_id: int, req: _Request) -> _Action:
        with self._lock:
            served = self._files.get(req.path) if req.method in ("GET", "HEAD") else None
        fault = self._take_fault(req, served is not None)
        rec = RequestRecord(conn_id, req.method, req.path, req.query, req.headers, req.pairs,
                            req.headers.get("range"), len(req.body), fault=fault.kind if fault else None)
        with self._lock:
            self._log.append(rec)
        kind = fault.kind if fault else None
        if kind == "drop":
            return "close"
        if kind == "delay" and self._stop.wait(fault.seconds):  # type: ignore[union-attr]
            return "close"
        if kind == "status":
            assert fault is not None
            body = fault.body if fault.body is not None else f"{fault.status} injected fault\n"
            hdrs = [("Content-Type", "text/plain; charset=utf-8")]
            if fault.retry_after is not None:
                hdrs.append(("Retry-After", fault.retry_after))
            resp = _Response(fault.status, hdrs + list(fault.headers.items()),
                             body.encode() if isinstance(body, str) else body)
        elif served is not None:
            resp = self._file_response(req, served, fault)
        elif req.method in ("POST", "PUT") and req.path.startswith("/upload"):
            resp = self._upload_response(req, rec)
        else:
            resp = _Response(404, [("Content-Type", "text/plain")], b"not found\n")
        return self._write(conn, req, resp, fault, rec)

    def _file_response(self, req: _Request, f: ServedFile, fault: Fault | None) -> _Response:
        kind = fault.kind if fault else None
        data, total = f.data, len(f.data)
        hdrs = [("Content-Type", "application/octet-stream")]
        if f.accept_ranges and kind != "no_content_length":
            hdrs.append(("Accept-Ranges", "bytes"))
        hdrs += [(k, v) for k, v in (("ETag", f.etag), ("Last-Modified", f.last_modified),
                                      ("Content-Disposition", f.content_disposition)) if v is not None]
        if kind == "no_head":
            return _Response(405, [("Allow", "GET"), ("Content-Type", "text/plain")], b"method not allowed\n")
        if_match = req.headers.get("if-match")
        if if_match is not None and if_match.strip() != "*" and (
                f.etag is None or f.etag not in [t.strip() for t in if_match.split(",")]):
            return _Response(412, [("Content-Type", "text/plain")], b"precondition failed\n")
        if req.method == "HEAD":
            if kind == "no_content_length":
                return _Response(200, hdrs, length=None, chunked=True)
            return _Response(200, hdrs, length=total)
        if kind == "gzip":
            return _Response(200, [*hdrs, ("Content-Encoding", "gzip")], gzip.compress(data))
        rng = req.headers.get("range")
        honour = rng is not None and kind != "ignore_range" and self._if_range_ok(req, f)
        if kind == "no_content_length" and not fault.honour_range:  # type: ignore[union-attr]
            honour = False
        parsed = _parse_range(rng, total) if honour else None  # type: ignore[arg-type]
        chunked = kind == "no_content_length"
        if parsed == "416":
            return _Response(416, [*hdrs, ("Content-Range", f"bytes */{total}")])
        if parsed is None and kind not in ("long_body", "bad_content_range"):
            return _Response(200, hdrs, memoryview(data), length=None if chunked else -1, chunked=chunked)
        start, end = parsed if parsed else (0, total - 1)  # type: ignore[misc]
        body = memoryview(data)[start : end + 1]
        content_range = f"bytes {start}-{end}/{total}"
        extra = b""
        if kind == "bad_content_range":
            content_range = fault.content_range  # type: ignore[union-attr]
        elif kind == "long_body":
            extra = b"X" * fault.extra  # type: ignore[union-attr]
        return _Response(206, [*hdrs, ("Content-Range", content_range)], body,
                         length=None if chunked else -1, chunked=chunked, extra=extra)

    @staticmethod
    def _if_range_ok(req: _Request, f: ServedFile) -> bool:
        """If-Range absent or matching the current validator (strong etag, or exact Last-Modified date)."""
        cond = req.headers.get("if-range")
        if cond is None:
            return True
        cond = cond.strip()
        if cond.startswith(('"', "W/")):
            return f.etag is not None and not cond.startswith("W/") and cond == f.etag
        if f.last_modified is None:
            return False
        try:
            return parsedate_to_datetime(cond) == parsedate_to_datetime(f.last_modified)
        except (TypeError, ValueError):
            return False

    def _upload_response(self, req: _Request, rec: RequestRecord) -> _Response:
        def answer(status: int, obj: dict[str, Any]) -> _Response:
            call.response = obj
            return _Response(status, [("Content-Type", "application/json")], json.dumps(obj).encode())

        try:
            parts = parse_multipart(req.body, req.headers.get("content-type", ""))
        except ValueError as exc:
            return _Response(400, [("Content-Type", "application/json")],
                             json.dumps({"error": f"multipart: {exc}"}).encode())
        rec.fields = [p.name for p in parts]
        values = {p.name: p.data.decode("utf-8", "replace") for p in parts if p.filename is None}
        file_part = next((p for p in parts if p.name == "file"), None)
        is_chunk = "offset" in values or "partSize" in values
        call = UploadCall("chunk" if is_chunk else "prepare", rec.fields, values, file_part, None)
        with self._lock:
            self.upload_calls.append(call)
            c = self._counters
            c["chunk" if is_chunk else "prepare"] += 1
            try:
                md5, total = values["fileMd5"], int(values["totalSize"])
                offset, size = (int(values["offset"]), int(values["partSize"])) if is_chunk else (0, 0)
            except (KeyError, ValueError) as exc:
                return answer(400, {"error": f"missing or invalid field: {exc}"})
            c["total_seen"] = total
            if self.upload_mode == "not_json":
                call.response = None
                return _Response(200, [("Content-Type", "text/plain")], b"not-json")
            if self.upload_mode == "no_progress" and is_chunk:
                return answer(200, {"nextByte": offset})
            state = self.uploads.get(md5)
            if state is None or state.total_size != total:
                state = UploadState(md5, values.get("fileName", ""), total, bytearray(total))
                self.uploads[md5] = state
            file_id = f"dev-file-id-{md5[:8]}"
            if not is_chunk:
                if state.completed or self.upload_mode == "prepare_file_id":
                    return answer(200, {"fileId": state.file_id or file_id, "nextByte": total})
                return answer(200, {"nextByte": state.prefix})
            if file_part is None or len(file_part.data) != size:
                got = None if file_part is None else len(file_part.data)
                return answer(400, {"error": f"file part length {got} != partSize {size}"})
            if offset < 0 or offset + size > total:
                return answer(400, {"error": f"chunk {offset}+{size} outside totalSize {total}"})
            state.store(offset, file_part.data)
            prefix = state.prefix
            c["max_next"] = max(c["max_next"], prefix)
            if prefix >= total:
                if not state.completed:
                    state.completed, state.file_id = True, file_id
                    state.md5_ok = hashlib.md5(state.buf).hexdigest() == md5
                c["completed"] = 1
                return answer(200, {"fileId": state.file_id, "nextByte": total})
            return answer(200, {"nextByte": prefix})

    def _write(self, conn: socket.socket, req: _Request | None, resp: _Response, fault: Fault | None,
               rec: RequestRecord | None = None) -> _Action:
        kind = fault.kind if fault else None
        wants_close = req is None or not self.keep_alive or req.version == "HTTP/1.0" or \
            "close" in req.headers.get("connection", "").lower()
        head = [f"HTTP/1.1 {resp.status} {_reason(resp.status)}", "Server: rusty-cat-test",
                *(f"{k}: {v}" for k, v in resp.headers)]
        if resp.chunked:
            head.append("Transfer-Encoding: chunked")
        elif resp.length is not None:
            head.append(f"Content-Length: {len(resp.body) if resp.length == -1 else resp.length}")
        if wants_close:
            head.append("Connection: close")
        if rec is not None:  # before sending: a client may read the log as soon as it has the response
            rec.status = resp.status
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        no_body = req is None or req.method == "HEAD" or resp.status in (204, 304)
        body = memoryview(b"" if no_body else resp.body)
        is_get = req is not None and req.method == "GET"
        if kind in ("reset", "truncate", "stall"):
            assert fault is not None
            cut = min(fault.after_bytes, len(body))
            self._send_body(conn, body[:cut], rec, is_get, False)
            if kind == "reset":
                return "reset"
            if kind == "truncate" or self._stop.wait(fault.seconds) or fault.then_close:
                return "close"
            body = body[cut:]
        if no_body:
            return "close" if wants_close else "keep"
        self._send_body(conn, body, rec, is_get, resp.chunked)
        if resp.extra:
            conn.sendall(resp.extra)
            return "close"
        return "close" if wants_close else "keep"

    def _count_sent(self, rec: RequestRecord | None, is_get: bool, n: int) -> None:
        with self._lock:
            if rec is not None:
                rec.bytes_sent += n
            if is_get:
                self._bytes_sent_total += n

    def _send_body(self, conn: socket.socket, body: memoryview, rec: RequestRecord | None, is_get: bool,
                   chunked: bool) -> None:
        """Write ``body`` in slices, pacing GETs to ``rate_limit`` and counting every byte the kernel took."""
        pos, deadline = 0, time.monotonic()
        while pos < len(body):
            rate = self.rate_limit if is_get else None
            piece = body[pos : pos + (max(1, min(SLICE, int(rate / 50))) if rate else SLICE)]
            if chunked:
                conn.sendall(b"%x\r\n" % len(piece))
            sent = 0
            while sent < len(piece):
                # Counted before the send and corrected after it, so a client that already holds the bytes
                # never reads a count that is still missing them.
                want = len(piece) - sent
                self._count_sent(rec, is_get, want)
                n = 0
                try:
                    n = conn.send(piece[sent:])
                finally:
                    self._count_sent(rec, is_get, n - want)
                sent += n
            if chunked:
                conn.sendall(b"\r\n")
            pos += len(piece)
            deadline = self._pace(deadline, len(piece), rate)
        if chunked:
            conn.sendall(b"0\r\n\r\n")


def take_fault(faults: Iterable[FaultT], matches: Callable[[FaultT], bool]) -> FaultT | None:
    """The first fault with uses left that matches, after its ``skip`` passes; counts the use. (Call it under
    the server's lock.) Shared by every fake server so they count skips and uses the same way."""
    for fault in faults:
        if fault.remaining == 0 or not matches(fault):
            continue
        if fault.skip > 0:
            fault.skip -= 1
            continue
        if fault.remaining > 0:
            fault.remaining -= 1
        fault.applied += 1
        return fault
    return None


class ScriptedServer(LoopbackServer):
    """The seed's scripted server: connections are served one at a time; each gets one full request read
    (stored raw in ``requests``), the next canned raw response, and is closed. Once the list is exhausted
    connections are closed at once. An empty ``b""`` response closes without answering. Listening from the
    start: a context manager only to stop it."""

    thread_name = "scripted-server"

    def __init__(self, responses: list[bytes]) -> None:
        super().__init__()
        self.responses = list(responses)
        self.requests: list[bytes] = []
        self.connections = 0
        self.start()

    def _accept_loop(self) -> None:
        """Each connection served in this thread, so the script is answered in the order connections arrive."""
        for conn in self._accepted():
            self.connections += 1
            with conn:
                conn.settimeout(5)
                try:
                    if not self.responses:
                        continue
                    response = self.responses.pop(0)
                    self.requests.append(self._read_one(conn))
                    if response:
                        conn.sendall(response)
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    @staticmethod
    def _read_one(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return data
            data += piece
        head = data.split(b"\r\n\r\n", 1)[0]
        m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        want = len(head) + 4 + (int(m.group(1)) if m else 0)
        while len(data) < want:
            piece = conn.recv(65536)
            if not piece:
                break
            data += piece
        return data
