"""A minimal local upload sink: the seed's default chunk protocol on POST, and a plain drain for PUT (curl -T).

nginx cannot take our uploads, so the bench runs this threaded stdlib server on 127.0.0.1. It keeps nothing: a
chunk request is drained like a PUT (into one reused buffer, so both peers pay the same per byte), its text fields
are found in the last bytes of the body (after the file part) or else in the first, and the answer is
``{"nextByte": offset + partSize}`` (with ``"fileId"`` on the last part); a prepare request (no offset) gets
``{"nextByte": 0}``. It counts the bytes it accepted so the bench can check that every upload arrived whole.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

READ_STEP = 1 << 20
_FIELD = re.compile(rb'name="(offset|partSize|totalSize)"\r\n\r\n(\d+)\r\n')
_TAIL = 16 * 1024


class SinkStats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.put_bytes = 0
        self.part_bytes = 0
        self.parts = 0
        self.prepares = 0
        self.next_byte = 0
        self.gaps = 0
        self.file_id_sent = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self._buf: memoryview | None = None
        # Headers and body go out in two writes; with Nagle on, the second waits for the client's delayed ACK
        # (40 ms a request on Linux), which would cap a chunked upload at ~25 parts/s.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None or not raw.isdigit():
            self._answer(411, {"error": "Content-Length required"}, close=True)
            return None
        return int(raw)

    def _answer(self, status: int, obj: dict[str, object], close: bool = False) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _drain(self, n: int) -> tuple[bytes, bytes] | None:
        """Read ``n`` body bytes into this connection's one buffer; returns the body's first and last _TAIL bytes
        (None if the client went away)."""
        if self._buf is None:
            self._buf = memoryview(bytearray(READ_STEP))
        buf = self._buf
        head = tail = b""
        left = n
        while left:
            got = self.rfile.readinto(buf[:min(READ_STEP, left)])
            if not got:
                self.close_connection = True
                return None
            if len(head) < _TAIL:
                head += bytes(buf[:min(got, _TAIL - len(head))])
            tail = (tail + bytes(buf[max(0, got - _TAIL):got]))[-_TAIL:]
            left -= got
        return head, tail

    def do_PUT(self) -> None:
        n = self._length()
        if n is None or self._drain(n) is None:
            return
        with self.server.stats.lock:
            self.server.stats.put_bytes += n
        self._answer(201, {"received": n})

    def do_POST(self) -> None:
        n = self._length()
        if n is None:
            return
        ends = self._drain(n)
        if ends is None:
            return
        head, tail = ends
        fields = {m.group(1).decode(): int(m.group(2)) for m in _FIELD.finditer(tail)}
        if "offset" not in fields:  # a prepare request, or text fields before the file part
            fields = {m.group(1).decode(): int(m.group(2)) for m in _FIELD.finditer(head)}
        stats = self.server.stats
        if "offset" not in fields:
            with stats.lock:
                stats.prepares += 1
                stats.next_byte = 0
            self._answer(200, {"nextByte": 0})
            return
        offset, size, total = fields["offset"], fields.get("partSize", 0), fields.get("totalSize", 0)
        end = offset + size
        with stats.lock:
            stats.parts += 1
            stats.part_bytes += size
            if offset != stats.next_byte:
                stats.gaps += 1
            stats.next_byte = end
            last = total > 0 and end >= total
            stats.file_id_sent = stats.file_id_sent or last
        self._answer(200, {"fileId": "x", "nextByte": total} if last else {"nextByte": end})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stats: SinkStats


class UploadSink:
    """``with UploadSink() as sink: sink.url('/upload')``; POST = chunk protocol, PUT = drain."""

    def __init__(self) -> None:
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.stats = SinkStats()
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="bench-sink", daemon=True)

    @property
    def stats(self) -> SinkStats:
        return self.httpd.stats

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def __enter__(self) -> UploadSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
