"""Tests of the local fault-injecting HTTP server itself, so engine tests can trust what it does on the wire.

Uses the plain sync httpx client and raw sockets (to see bytes httpx would hide or reject).
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.http_server import Fault, ScriptedServer, TestHttpServer, http_response, parse_multipart

DATA = bytes(range(256)) * 40  # 10 240 bytes, every offset distinguishable modulo 256


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        server.add_file("/f.bin", DATA)
        yield server
    assert server.errors == []


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """Shared across tests (each test's server has a new port) because building a client costs ~50 ms."""
    with httpx.Client(timeout=5) as c:
        yield c


def raw_request(srv: TestHttpServer, request: bytes, timeout: float = 2.0) -> bytes:
    """Send one raw request on a fresh socket and read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        try:
            while piece := s.recv(65536):
                out += piece
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def multipart(fields: list[tuple[str, bytes | str]], boundary: str = "rcB7MA4YWxk") -> tuple[bytes, str]:
    """Build a multipart/form-data body by hand, in the given order; a ``file`` field is the binary part."""
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\n".encode()
        if name == "file":
            out += (b'Content-Disposition: form-data; name="file"; filename="upload_chunk_data"\r\n'
                    b"Content-Type: application/octet-stream\r\n\r\n")
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value if isinstance(value, bytes) else value.encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def prepare(client: httpx.Client, srv: TestHttpServer, md5: str, total: int) -> httpx.Response:
    body, ctype = multipart([("fileMd5", md5), ("fileName", "a.bin"), ("category", ""),
                             ("totalSize", str(total))])
    return client.post(srv.url("/upload"), content=body, headers={"Content-Type": ctype})


def chunk(client: httpx.Client, srv: TestHttpServer, md5: str, data: bytes, offset: int, size: int,
          part_size: int | None = None) -> httpx.Response:
    body, ctype = multipart([("file", data[offset : offset + size]), ("fileMd5", md5), ("fileName", "a.bin"),
                             ("category", ""), ("offset", str(offset)),
                             ("partSize", str(size if part_size is None else part_size)),
                             ("totalSize", str(len(data)))])
    return client.post(srv.url("/upload?x=1"), content=body, headers={"Content-Type": ctype})


# -- files ---------------------------------------------------------------------------------------------------
def test_head_headers(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_file("/d.bin", b"abc", content_disposition='attachment; filename="d.bin"')
    r = client.head(srv.url("/f.bin?sig=1"))
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"] == '"' + hashlib.sha1(DATA).hexdigest()[:16] + '"'
    assert r.headers["last-modified"].endswith("GMT")
    assert r.headers["content-type"] == "application/octet-stream"
    assert "content-disposition" not in r.headers
    r = client.head(srv.url("/d.bin"))
    assert r.headers["content-disposition"] == 'attachment; filename="d.bin"'
    srv.add_file("/bare", b"x", etag=None, last_modified=None, accept_ranges=False)
    r = client.head(srv.url("/bare"))
    assert not {"etag", "last-modified", "accept-ranges"} & set(r.headers)
    assert client.get(srv.url("/nope")).status_code == 404


def test_get_full(srv: TestHttpServer, client: httpx.Client) -> None:
    r = client.get(srv.url("/f.bin"), headers={"Accept-Encoding": "gzip"})
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, DATA, str(len(DATA)))
    assert "content-encoding" not in r.headers
    assert srv.bytes_sent_total == len(DATA)
    assert srv.requests[-1].status == 200 and srv.requests[-1].bytes_sent == len(DATA)


@pytest.mark.parametrize(("rng", "start", "end"), [
    ("bytes=2-5", 2, 5), ("bytes=100-", 100, len(DATA) - 1), ("bytes=-3", len(DATA) - 3, len(DATA) - 1),
    ("bytes=10-999999", 10, len(DATA) - 1), ("bytes=-999999", 0, len(DATA) - 1), ("BYTES = 0 - 0", 0, 0),
])
def test_range_variants(srv: TestHttpServer, client: httpx.Client, rng: str, start: int, end: int) -> None:
    r = client.get(srv.url("/f.bin"), headers={"Range": rng})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert r.content == DATA[start : end + 1]
    assert srv.requests[-1].range == rng


def test_range_unsatisfiable(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_file("/empty", b"")
    for path, rng, total in [("/f.bin", f"bytes={len(DATA)}-", len(DATA)), ("/f.bin", "bytes=-0", len(DATA)),
                             ("/empty", "bytes=0-", 0), ("/empty", "bytes=-5", 0)]:
        r = client.get(srv.url(path), headers={"Range": rng})
        assert (r.status_code, r.headers["content-range"], r.content) == (416, f"bytes */{total}", b"")


@pytest.mark.parametrize("rng", ["bytes=abc", "items=0-1", "bytes=5-2", "bytes=0-1,4-5", "bytes=-", "0-4"])
def test_malformed_or_multi_range_gives_full_200(srv: TestHttpServer, client: httpx.Client, rng: str) -> None:
    r = client.get(srv.url("/f.bin"), headers={"Range": rng})
    assert (r.status_code, r.content) == (200, DATA)


def test_if_range_and_if_match(srv: TestHttpServer, client: httpx.Client) -> None:
    f = srv.get_file("/f.bin")
    get = lambda **h: client.get(srv.url("/f.bin"), headers={"Range": "bytes=0-9", **h})  # noqa: E731
    assert get(**{"If-Range": f.etag}).status_code == 206
    assert get(**{"If-Range": f.last_modified}).status_code == 206
    assert get(**{"If-Range": '"stale"'}).status_code == 200
    assert get(**{"If-Range": "W/" + f.etag}).status_code == 200  # weak never matches If-Range
    assert get(**{"If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
    assert get(**{"If-Match": '"stale"'}).status_code == 412
    assert get(**{"If-Match": f'"x", {f.etag}'}).status_code == 206
    assert get(**{"If-Match": "*"}).status_code == 206


def test_replace_file_changes_validators(srv: TestHttpServer, client: httpx.Client) -> None:
    old = srv.get_file("/f.bin")
    new = srv.replace_file("/f.bin", b"new content")
    assert new.etag != old.etag and new.last_modified != old.last_modified
    r = client.get(srv.url("/f.bin"), headers={"Range": "bytes=0-2", "If-Range": old.last_modified})
    assert (r.status_code, r.content) == (200, b"new content")
    srv.remove_file("/f.bin")
    assert client.head(srv.url("/f.bin")).status_code == 404


def test_keep_alive_reuses_connection(srv: TestHttpServer, client: httpx.Client) -> None:
    for _ in range(3):
        assert client.get(srv.url("/f.bin"), headers={"Range": "bytes=0-1"}).status_code == 206
    assert client.head(srv.url("/f.bin")).status_code == 200
    assert len({r.conn_id for r in srv.requests}) == 1
    assert srv.count("GET", "/f.bin") == 3 and srv.count(method="HEAD") == 1 and srv.count() == 4
    srv.clear_log()
    assert srv.requests == [] and srv.bytes_sent_total == 0


def test_keep_alive_disabled() -> None:
    with TestHttpServer(keep_alive=False) as srv, httpx.Client(timeout=5) as client:
        srv.add_file("/a", b"abc")
        for _ in range(2):
            r = client.get(srv.url("/a"))
            assert r.headers["connection"] == "close" and r.content == b"abc"
        assert len({r.conn_id for r in srv.requests}) == 2


def test_client_closing_mid_response_does_not_break_server(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_file("/big", bytes(8 << 20))
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(1000)
    assert client.get(srv.url("/f.bin")).content == DATA
    time.sleep(0.05)
    assert 0 < srv.requests[0].bytes_sent < 8 << 20


def test_concurrent_connections(srv: TestHttpServer, client: httpx.Client) -> None:
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda i: client.get(srv.url(f"/f.bin?i={i}")).content, range(16)))
    assert bodies == [DATA] * 16 and srv.count("GET", "/f.bin") == 16


def test_large_body_is_fast(srv: TestHttpServer) -> None:
    srv.add_file("/big", bytes(50 << 20))
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        buf = bytearray(1 << 20)
        got = 0
        while n := s.recv_into(buf):
            got += n
    assert got > 50 << 20
    assert time.monotonic() - t0 < 1.0


def test_bad_request_line(srv: TestHttpServer) -> None:
    assert raw_request(srv, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")


# -- uploads -------------------------------------------------------------------------------------------------
def test_multipart_parser_handles_quoting_and_binary() -> None:
    body, ctype = multipart([("file", b"\r\n--not-a-boundary\r\n\x00"), ("a", "1")], boundary="q b")
    parts = parse_multipart(body, 'multipart/form-data; boundary="q b"')
    assert [(p.name, p.filename, p.data) for p in parts] == [
        ("file", "upload_chunk_data", b"\r\n--not-a-boundary\r\n\x00"), ("a", None, b"1")]
    assert parts[0].content_type == "application/octet-stream"
    with pytest.raises(ValueError):
        parse_multipart(body[:-20], ctype)


def test_upload_protocol_resume_and_completion(srv: TestHttpServer, client: httpx.Client) -> None:
    data = bytes(range(256)) * 10
    md5 = hashlib.md5(data).hexdigest()
    assert prepare(client, srv, md5, len(data)).json() == {"nextByte": 0}
    assert chunk(client, srv, md5, data, 0, 1000).json() == {"nextByte": 1000}
    assert chunk(client, srv, md5, data, 2000, 560).json() == {"nextByte": 1000}  # gap: prefix unchanged
    with httpx.Client(timeout=5) as restarted:  # a new process resumes from the server's prefix
        assert prepare(restarted, srv, md5, len(data)).json() == {"nextByte": 1000}
        assert chunk(restarted, srv, md5, data, 1000, 1000).json() == {
            "fileId": f"dev-file-id-{md5[:8]}", "nextByte": len(data)}
    state = srv.uploads[md5]
    assert state.completed and state.md5_ok and state.data == data and state.total_size == len(data)
    assert prepare(client, srv, md5, len(data)).json() == {"fileId": state.file_id, "nextByte": len(data)}
    assert srv.upload_calls[1].field_names == [
        "file", "fileMd5", "fileName", "category", "offset", "partSize", "totalSize"]
    assert srv.requests[0].fields == ["fileMd5", "fileName", "category", "totalSize"]
    assert srv.upload_calls[1].file_part is not None and srv.upload_calls[1].file_part.filename == \
        "upload_chunk_data"
    insp = srv.upload_inspector()
    assert (insp.prepare_calls, insp.chunk_calls, insp.max_next_byte, insp.total_size_seen,
            insp.completed) == (3, 3, len(data), len(data), True)


def test_upload_rejects_bad_chunks_and_md5_mismatch(srv: TestHttpServer, client: httpx.Client) -> None:
    data = b"hello world"
    r = chunk(client, srv, "0" * 32, data, 0, 5, part_size=6)
    assert r.status_code == 400 and "partSize" in r.json()["error"]
    r = client.post(srv.url("/upload"), content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400
    assert chunk(client, srv, "0" * 32, data, 0, len(data)).json()["nextByte"] == len(data)
    assert srv.uploads["0" * 32].md5_ok is False


def test_upload_chunked_request_body(srv: TestHttpServer, client: httpx.Client) -> None:
    data = b"abcdef"
    md5 = hashlib.md5(data).hexdigest()
    body, ctype = multipart([("file", data), ("fileMd5", md5), ("fileName", "a"), ("category", ""),
                             ("offset", "0"), ("partSize", "6"), ("totalSize", "6")])
    r = client.put(srv.url("/upload/x"), content=iter([body[:10], body[10:]]),
                   headers={"Content-Type": ctype})
    assert r.json()["fileId"] and srv.uploads[md5].md5_ok
    assert srv.requests[-1].headers["Transfer-Encoding"] == "chunked"


@pytest.mark.parametrize("mode", ["no_progress", "not_json", "prepare_file_id"])
def test_upload_modes(srv: TestHttpServer, client: httpx.Client, mode: str) -> None:
    srv.upload_mode = mode  # type: ignore[assignment]
    data = b"0123456789"
    md5 = hashlib.md5(data).hexdigest()
    p, c = prepare(client, srv, md5, 10), chunk(client, srv, md5, data, 4, 3)
    if mode == "no_progress":
        assert (p.json(), c.json()) == ({"nextByte": 0}, {"nextByte": 4})
        assert srv.uploads[md5].ranges == []
    elif mode == "not_json":
        assert p.content == c.content == b"not-json"
    else:
        assert p.json() == {"fileId": f"dev-file-id-{md5[:8]}", "nextByte": 10}


def test_upload_rate_limit(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.upload_rate_limit = 200_000
    t0 = time.monotonic()
    client.post(srv.url("/nothing"), content=bytes(60_000))
    assert 0.2 < time.monotonic() - t0 < 1.0
    assert srv.requests[-1].body_size == 60_000


# -- faults --------------------------------------------------------------------------------------------------
def test_status_fault_with_retry_after_and_selection(srv: TestHttpServer, client: httpx.Client) -> None:
    fault = srv.add_fault(Fault("status", method="GET", path_prefix="/f", status=429, retry_after="2",
                                body=b"z" * 10_000, headers={"X-Test": "1"}, times=2, skip=1))
    assert client.head(srv.url("/f.bin")).status_code == 200  # method filter
    assert client.get(srv.url("/f.bin")).status_code == 200  # skipped
    r = client.get(srv.url("/f.bin"))
    assert (r.status_code, r.headers["retry-after"], r.headers["x-test"]) == (429, "2", "1")
    assert len(r.content) == 10_000
    assert fault.remaining == 1
    assert client.get(srv.url("/f.bin")).status_code == 429
    assert client.get(srv.url("/f.bin")).status_code == 200 and fault.remaining == 0
    srv.add_fault(Fault("status", status=503, times=-1))
    for _ in range(3):
        assert client.get(srv.url("/f.bin")).status_code == 503
    srv.clear_faults()
    assert client.get(srv.url("/f.bin")).status_code == 200
    assert [r.fault for r in srv.requests[2:4]] == ["status", "status"]


def test_reset_fault_gives_partial_data_then_error(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_fault(Fault("reset", after_bytes=1000))
    got = b""
    with pytest.raises(httpx.TransportError), client.stream("GET", srv.url("/f.bin")) as r:
        for piece in r.iter_raw():
            got += piece
    assert got == DATA[:1000]
    assert srv.bytes_sent_total == 1000 and srv.requests[-1].bytes_sent == 1000
    assert client.get(srv.url("/f.bin")).content == DATA  # the client recovers on a new connection
    srv.add_fault(Fault("reset", method="HEAD"))  # bodiless responses: cut right after the headers
    out = raw_request(srv, b"HEAD /f.bin HTTP/1.1\r\nHost: x\r\n\r\nHEAD /f.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 1 and srv.requests[-1].fault == "reset"


def test_truncate_fault_closes_gracefully(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_fault(Fault("truncate", after_bytes=10))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(srv.url("/f.bin"), headers={"Range": "bytes=0-99"})
    srv.add_fault(Fault("truncate", after_bytes=7))
    out = raw_request(srv, b"GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.endswith(b"\r\n\r\n" + DATA[:7])  # FIN after exactly 7 body bytes, no reset
    assert srv.requests[-1].bytes_sent == 7


def test_stall_fault_detected_by_read_timeout(srv: TestHttpServer) -> None:
    srv.add_fault(Fault("stall", after_bytes=5, seconds=0.5))
    with httpx.Client(timeout=httpx.Timeout(5, read=0.1)) as c, pytest.raises(httpx.ReadTimeout):
        c.get(srv.url("/f.bin"))
    srv.add_fault(Fault("stall", after_bytes=5, seconds=0.1))
    with httpx.Client(timeout=5) as c:
        assert c.get(srv.url("/f.bin")).content == DATA  # a stall without then_close finishes the body
    srv.add_fault(Fault("stall", after_bytes=5, seconds=0.05, then_close=True))
    with httpx.Client(timeout=5) as c, pytest.raises(httpx.RemoteProtocolError):
        c.get(srv.url("/f.bin"))


def test_drop_fault(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_fault(Fault("drop", method="GET", times=2))
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(srv.url("/f.bin"))
    assert client.get(srv.url("/f.bin")).status_code == 200
    assert [r.status for r in srv.requests] == [0, 0, 200]


def test_delay_fault(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_fault(Fault("delay", seconds=0.2))
    t0 = time.monotonic()
    assert client.get(srv.url("/f.bin"), headers={"Range": "bytes=0-0"}).status_code == 206
    assert time.monotonic() - t0 >= 0.2


def test_ignore_range_and_no_head_faults(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_fault(Fault("no_head", times=-1))
    srv.add_fault(Fault("ignore_range"))
    r = client.get(srv.url("/f.bin"), headers={"Range": "bytes=0-9"})
    assert (r.status_code, r.content) == (200, DATA)
    assert client.head(srv.url("/f.bin")).status_code == 405
    r = client.get(srv.url("/f.bin"), headers={"Range": "bytes=0-9"})
    assert (r.status_code, r.content) == (206, DATA[:10])


def test_no_content_length_fault(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_fault(Fault("no_content_length", times=3))
    h = client.head(srv.url("/f.bin"))
    assert h.status_code == 200 and "content-length" not in h.headers and "accept-ranges" not in h.headers
    r = client.get(srv.url("/f.bin"), headers={"Range": "bytes=0-9"})
    assert (r.status_code, r.headers["transfer-encoding"], r.content) == (200, "chunked", DATA)
    assert "content-length" not in r.headers
    out = raw_request(srv, b"GET /f.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Content-Length" not in out and out.endswith(b"\r\n0\r\n\r\n")
    srv.add_fault(Fault("no_content_length", honour_range=True))
    r = client.get(srv.url("/f.bin"), headers={"Range": "bytes=5-9"})
    assert (r.status_code, r.headers["transfer-encoding"], r.content) == (206, "chunked", DATA[5:10])


def test_long_body_fault_sends_unannounced_bytes(srv: TestHttpServer) -> None:
    srv.add_fault(Fault("long_body", extra=5))
    out = raw_request(srv, b"GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\n\r\n")
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"206 Partial Content" in head and b"Content-Length: 4" in head and b"bytes 0-3/" in head
    assert body == DATA[:4] + b"XXXXX"


def test_bad_content_range_fault(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_fault(Fault("bad_content_range", content_range="items 0-3/8"))
    r = client.get(srv.url("/f.bin"), headers={"Range": "bytes=2-5"})
    assert (r.status_code, r.headers["content-range"], r.content) == (206, "items 0-3/8", DATA[2:6])


def test_gzip_fault(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_fault(Fault("gzip"))
    r = client.get(srv.url("/f.bin"), headers={"Range": "bytes=0-9"})
    assert (r.status_code, r.headers["content-encoding"], r.content) == (200, "gzip", DATA)
    assert int(r.headers["content-length"]) < len(DATA)


def test_faults_apply_to_uploads(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_fault(Fault("status", method="POST", path_prefix="/upload", status=500, skip=1))
    data = b"abc"
    md5 = hashlib.md5(data).hexdigest()
    assert prepare(client, srv, md5, 3).status_code == 200
    assert chunk(client, srv, md5, data, 0, 3).status_code == 500  # the seed's flaky upload server
    assert srv.uploads[md5].ranges == []
    srv.add_fault(Fault("reset", method="POST"))  # stored, but the answer is lost
    with pytest.raises(httpx.TransportError):
        chunk(client, srv, md5, data, 0, 3)
    assert srv.uploads[md5].completed
    with pytest.raises(ValueError):
        Fault("bogus")


# -- throttling and lifecycle --------------------------------------------------------------------------------
def test_rate_limit_slows_body(srv: TestHttpServer, client: httpx.Client) -> None:
    srv.add_file("/200k", bytes(200 * 1024))
    srv.rate_limit = 800 * 1024
    t0 = time.monotonic()
    assert len(client.get(srv.url("/200k")).content) == 200 * 1024
    elapsed = time.monotonic() - t0
    assert 0.18 < elapsed < 0.6
    srv.rate_limit = None
    t0 = time.monotonic()
    client.get(srv.url("/200k"))
    assert time.monotonic() - t0 < 0.1


def test_stop_is_quick_with_open_connections() -> None:
    srv = TestHttpServer().start()
    srv.add_file("/a", b"abc")
    srv.add_fault(Fault("stall", path_prefix="/stall", seconds=30))
    client = httpx.Client(timeout=5)
    assert client.get(srv.url("/a")).status_code == 200  # leaves an idle keep-alive connection
    stalled = socket.create_connection(("127.0.0.1", srv.port))
    stalled.sendall(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.05)
    t0 = time.monotonic()
    srv.stop()
    srv.stop()  # idempotent
    assert time.monotonic() - t0 < 0.5
    client.close()
    stalled.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=0.5).close()


# -- scripted server -----------------------------------------------------------------------------------------
def test_scripted_server_replays_in_order() -> None:
    responses = [http_response(200, {"Content-Length-Ignored": "x"}, b""),
                 http_response(206, {"Content-Range": "bytes 0-2/3"}, b"abc")]
    with ScriptedServer(responses) as s, httpx.Client(timeout=5) as c:
        assert c.head(s.url("/download")).status_code == 200
        r = c.post(s.url("/download"), content=b"payload", headers={"Range": "bytes=0-2"})
        assert (r.status_code, r.content, r.headers["connection"]) == (206, b"abc", "close")
        with pytest.raises(httpx.TransportError):
            c.get(s.url("/download"))
    assert s.requests[0].startswith(b"HEAD /download HTTP/1.1\r\n")
    assert s.requests[1].startswith(b"POST /download") and s.requests[1].endswith(b"\r\n\r\npayload")
    assert s.connections >= 3
    assert len(s.requests) == 2
