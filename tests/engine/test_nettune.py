"""The tuned httpx data path (app/engine/nettune.py): the version gate, the socket backend's behaviour through the
real httpx stack (bodies, keep-alive, timeouts, resets, refused connects, TLS, Happy Eyeballs, fairness, the
fallback to httpcore's own backend) and h11's zero-copy receive buffer."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
import httpcore
import httpx
import pytest

from app.engine import nettune
from app.engine.http import build_client
from tests.support.http_server import Fault, TestHttpServer

MIB = 1 << 20
pytestmark = pytest.mark.timeout(30)

needs_tuning = pytest.mark.skipif(not nettune.supported(), reason="installed httpx/httpcore/h11 are not the tuned "
                                                                     "versions: the defaults run instead")


def tuned_client(**kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(retries=0, **kwargs)
    assert nettune.install(transport)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0))


# ---------------------------------------------------------------------------------------------- the version gate
def test_version_gate_accepts_only_the_tested_series() -> None:
    good = {"httpx": "0.28.1", "httpcore": "1.0.9", "h11": "0.16.0"}
    assert nettune.supported(good)
    for dist, other in (("httpx", "0.29.0"), ("httpcore", "1.1.0"), ("h11", "0.17.0"), ("h11", "")):
        assert not nettune.supported({**good, dist: other}), dist
    assert not nettune.supported({k: v for k, v in good.items() if k != "httpcore"})


@needs_tuning
def test_engine_client_uses_the_socket_backend_and_large_reads() -> None:
    from httpcore._async.http11 import AsyncHTTP11Connection

    client = build_client(5.0, 30.0)
    try:
        assert isinstance(nettune.backend_of(client), nettune.SocketBackend)
        assert AsyncHTTP11Connection.READ_NUM_BYTES >= nettune.READ_NUM_BYTES
        assert h11._connection.ReceiveBuffer.__name__ == "ZeroCopyReceiveBuffer"
    finally:
        asyncio.run(client.aclose())


def test_untested_versions_keep_httpx_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nettune, "tune_libraries", lambda: False)
    transport = httpx.AsyncHTTPTransport()
    assert not nettune.install(transport)
    assert not isinstance(transport._pool._network_backend, nettune.SocketBackend)


def test_a_proxy_transport_is_left_alone() -> None:
    transport = httpx.AsyncHTTPTransport(proxy="http://127.0.0.1:9")
    assert not nettune.install(transport)
    assert not isinstance(getattr(transport._pool, "_network_backend", None), nettune.SocketBackend)


# ---------------------------------------------------------------------------------------------- through httpx
@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        yield server


@needs_tuning
@pytest.mark.asyncio
async def test_bodies_ranges_and_keep_alive(srv: TestHttpServer) -> None:
    data = os.urandom(5 * MIB + 123)
    srv.add_file("/f.bin", data)
    async with tuned_client() as client:
        whole = await client.get(srv.url("/f.bin"))
        assert whole.status_code == 200 and whole.content == data
        async with client.stream("GET", srv.url("/f.bin"), headers={"Range": "bytes=1000-2099999"}) as resp:
            assert resp.status_code == 206
            pieces = [piece async for piece in resp.aiter_raw()]
        assert b"".join(pieces) == data[1000:2100000]
        head = await client.head(srv.url("/f.bin"))
        assert head.headers["content-length"] == str(len(data))
    assert {r.conn_id for r in srv.requests} == {srv.requests[0].conn_id}, "one kept-alive connection for all"


@needs_tuning
@pytest.mark.asyncio
async def test_upload_body_arrives_whole(srv: TestHttpServer, tmp_path: Path) -> None:
    """Request bodies go out through SocketStream.write (several MiB: the socket buffer fills, writes wait)."""
    import hashlib

    from app.engine.config import BreakpointDownloadHttpConfig
    from app.engine.default_upload import DefaultStyleUpload
    from app.engine.protocols import TransferTask, UploadChunkCtx, UploadPrepareCtx
    from app.engine.record import Direction

    data = os.urandom(6 * MIB)
    md5 = hashlib.md5(data).hexdigest()
    task = TransferTask(direction=Direction.UPLOAD, file_name="u.bin", file_path="", url=srv.url("/upload"),
                        method="POST", headers=(), chunk_size=len(data), total_size=len(data), file_sign=md5,
                        breakpoint_download_http=BreakpointDownloadHttpConfig())
    async with tuned_client() as client:
        proto = DefaultStyleUpload()
        await proto.prepare(UploadPrepareCtx(client, task, 0))
        info = await proto.upload_chunk(UploadChunkCtx(client, task, data, 0))
    assert info.completed_file_id is not None
    assert srv.uploads[md5].md5_ok is True


@needs_tuning
@pytest.mark.asyncio
async def test_read_timeout_fires_on_a_stalled_body(srv: TestHttpServer) -> None:
    srv.add_file("/f.bin", os.urandom(MIB))
    srv.add_fault(Fault("stall", after_bytes=64 * 1024, seconds=5))
    async with tuned_client() as client:
        client.timeout = httpx.Timeout(5.0, read=0.3)
        t0 = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            async with client.stream("GET", srv.url("/f.bin")) as resp:
                async for _ in resp.aiter_raw():
                    pass
        assert time.monotonic() - t0 < 3


@needs_tuning
@pytest.mark.asyncio
async def test_a_reset_is_a_read_error_that_says_so(srv: TestHttpServer) -> None:
    srv.add_file("/f.bin", os.urandom(4 * MIB))
    srv.add_fault(Fault("reset", after_bytes=256 * 1024))
    async with tuned_client() as client:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)) as info:
            async with client.stream("GET", srv.url("/f.bin")) as resp:
                async for _ in resp.aiter_raw():
                    pass
    text = str(info.value).lower()
    assert "reset" in text or "closed" in text, text


@needs_tuning
@pytest.mark.asyncio
async def test_refused_connect_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        async with tuned_client() as client:
            with pytest.raises(httpx.ConnectError) as info:
                await client.get(f"http://127.0.0.1:{port}/")
    assert "refused" in str(info.value).lower()


@needs_tuning
@pytest.mark.asyncio
async def test_localhost_finds_the_ipv4_listener(srv: TestHttpServer) -> None:
    """``localhost`` may resolve to ::1 first; the server listens on 127.0.0.1 only."""
    srv.add_file("/f.bin", b"hello")
    async with tuned_client() as client:
        resp = await client.get(f"http://localhost:{srv.port}/f.bin")
    assert resp.content == b"hello"


@needs_tuning
@pytest.mark.asyncio
async def test_happy_eyeballs_moves_on_from_a_hanging_address(srv: TestHttpServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The first address never answers: the second is tried after HAPPY_EYEBALLS_DELAY and wins; the hanging
    attempt is cancelled and its socket closed."""
    srv.add_file("/f.bin", b"hello")
    real_connect_one = nettune._connect_one
    hung: list[asyncio.Task[Any]] = []
    closed: list[bool] = []

    async def fake_getaddrinfo(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("192.0.2.1", port)),
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]

    async def connect_one(loop: asyncio.AbstractEventLoop, family: int, type_: int, proto: int, addr: Any,
                          *rest: Any) -> socket.socket:
        if addr[0] == "192.0.2.1":
            hung.append(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await asyncio.Event().wait()
            finally:
                closed.append(True)
        return await real_connect_one(loop, family, type_, proto, addr, *rest)

    monkeypatch.setattr(nettune, "_connect_one", connect_one)
    async with tuned_client() as client:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
        t0 = time.monotonic()
        resp = await client.get(f"http://example.invalid:{srv.port}/f.bin")
        elapsed = time.monotonic() - t0
    assert resp.content == b"hello"
    assert nettune.HAPPY_EYEBALLS_DELAY * 0.9 <= elapsed < 3
    assert len(hung) == 1 and hung[0].done() and closed == [True]


@needs_tuning
@pytest.mark.asyncio
async def test_a_busy_stream_still_lets_the_loop_run() -> None:
    """Data always ready: a read loop still yields every FAIR_READS reads, so other tasks are not starved."""
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        b.sendall(b"x" * 64 * 1024)
        stream = nettune.SocketStream(a, asyncio.get_running_loop())
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        for _ in range(8 * nettune.FAIR_READS):
            assert len(await stream.read(1024)) == 1024
        during = ticks - before
        task.cancel()
        assert during >= 6, f"the ticker ran {during} times during {8 * nettune.FAIR_READS} ready reads"
    finally:
        a.close()
        b.close()


async def _stream_until_cancelled(client: httpx.AsyncClient, url: str) -> None:
    async with client.stream("GET", url) as resp:
        async for _ in resp.aiter_raw():
            await asyncio.sleep(0)


@needs_tuning
@pytest.mark.asyncio
@pytest.mark.parametrize("extra_cancels", [0, 3], ids=["cancelled-once", "cancelled-again-while-unwinding"])
async def test_cancelled_requests_never_use_up_the_pool(srv: TestHttpServer, extra_cancels: int) -> None:
    """httpcore 1.0 loses a pool slot for good when a request is cancelled while its connection is set up, or
    cancelled again while it cleans up (encode/httpcore#1093, #1115); with ``max_connections`` slots lost every
    request waits forever. Hundreds of requests cancelled at random points (connecting, waiting for the headers,
    mid-body, closing), some several times, leave the pool clean and a fresh request goes through."""
    srv.add_file("/f.bin", os.urandom(300_000))
    srv.rate_limit = 200_000  # 1.5 s per body: every cancel lands mid-exchange
    rng = __import__("random").Random(5)
    async with tuned_client(limits=httpx.Limits(max_connections=4)) as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        created: list[Any] = []  # every connection the pool made, kept alive so the GC closes none of them
        make = pool.create_connection
        pool.create_connection = lambda origin: created.append(make(origin)) or created[-1]
        for _ in range(300):
            task = asyncio.ensure_future(_stream_until_cancelled(client, srv.url("/f.bin")))
            await asyncio.sleep(rng.random() * 0.01)
            task.cancel()
            for _ in range(rng.randint(0, extra_cancels)):
                await asyncio.sleep(rng.choice([0, 0, 0.0005]))
                task.cancel()
            started = time.monotonic()
            await asyncio.gather(task, return_exceptions=True)
            assert time.monotonic() - started < 1.0, "a cancelled request read on instead of stopping"
            assert task.cancelled()
        srv.rate_limit = None
        resp = await asyncio.wait_for(client.get(srv.url("/f.bin")), 5)
        assert resp.status_code == 200 and len(resp.content) == 300_000
        await asyncio.sleep(nettune.INTERRUPTED_CLOSE_AFTER * 1.2)  # a close interrupted mid-way is repaired by then
        assert not pool._requests, "cancelled requests left queued in the pool"
        assert all(c.is_idle() or c.is_closed() for c in pool.connections), pool.connections
        await asyncio.sleep(0.1)
        # Every connection out of the pool has closed its socket (one left open keeps the server sending into it).
        gone = [c for c in created if c not in pool.connections and c._connection is not None]
        assert len(created) > 4 and gone
        assert all(c._connection.is_closed() for c in gone), [c for c in gone if not c._connection.is_closed()]


@needs_tuning
@pytest.mark.asyncio
async def test_close_wakes_a_waiting_read() -> None:
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        stream = nettune.SocketStream(a, asyncio.get_running_loop())
        reader = asyncio.create_task(stream.read(1024, timeout=10))
        await asyncio.sleep(0.05)
        assert not reader.done()
        await stream.aclose()
        with pytest.raises(httpcore.ReadError):
            await asyncio.wait_for(reader, 2)
        assert stream.get_extra_info("is_readable") is True  # a closed stream reads as "gone" to the pool
    finally:
        b.close()


@needs_tuning
@pytest.mark.asyncio
async def test_other_loops_fall_back_to_httpcores_backend(srv: TestHttpServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the loop cannot watch sockets (Windows' proactor loop, trio) the default backend connects."""
    srv.add_file("/f.bin", b"fallback")
    monkeypatch.setattr(nettune, "_selector_loop", lambda: None)
    stream = await nettune.SocketBackend().connect_tcp("127.0.0.1", srv.port, timeout=5)
    try:
        assert not isinstance(stream, nettune.SocketStream)
    finally:
        await stream.aclose()
    async with tuned_client() as client:
        assert (await client.get(srv.url("/f.bin"))).content == b"fallback"


# ---------------------------------------------------------------------------------------------- TLS
@contextlib.contextmanager
def tls_server(tmp: Path, body: bytes) -> Iterator[tuple[int, ssl.SSLContext]]:
    """A one-thread HTTPS server with a fresh self-signed certificate for 127.0.0.1; yields (port, client ctx)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = tmp / "cert.pem"
    key_pem = tmp / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_pem, key_pem)
    client_ctx = ssl.create_default_context(cafile=str(cert_pem))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def handle(raw: socket.socket) -> None:
        raw.settimeout(5)
        try:
            with server_ctx.wrap_socket(raw, server_side=True) as conn, conn.makefile("rb") as f:
                while True:  # requests on one kept-alive connection, until the client closes it
                    line = f.readline()
                    if not line:
                        return
                    while line not in (b"\r\n", b""):
                        line = f.readline()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except (OSError, ssl.SSLError):
            pass

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=handle, args=(raw,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], client_ctx
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@needs_tuning
@pytest.mark.asyncio
async def test_https_goes_through_asyncios_tls(tmp_path: Path) -> None:
    body = os.urandom(3 * MIB)
    with tls_server(tmp_path, body) as (port, ctx):
        async with tuned_client(verify=ctx) as client:
            first = await client.get(f"https://127.0.0.1:{port}/a")
            second = await client.get(f"https://127.0.0.1:{port}/b")
            assert first.content == body and second.content == body
            async with client.stream("GET", f"https://127.0.0.1:{port}/c") as resp:
                stream = resp.extensions["network_stream"]
                assert isinstance(stream, nettune.TLSStream)
                assert stream.get_extra_info("ssl_object") is not None
                await resp.aread()


@needs_tuning
@pytest.mark.asyncio
async def test_https_with_an_untrusted_certificate_fails_to_connect(tmp_path: Path) -> None:
    with tls_server(tmp_path, b"x") as (port, _ctx):
        async with tuned_client() as client:  # the system's CAs: the self-signed certificate is not trusted
            with pytest.raises(httpx.ConnectError) as info:
                await client.get(f"https://127.0.0.1:{port}/")
    assert "certificate" in str(info.value).lower()


# ---------------------------------------------------------------------------------------------- h11's buffer
def _client_expecting(response_head: bytes) -> h11.Connection:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(response_head)
    assert isinstance(conn.next_event(), h11.Response)
    return conn


@needs_tuning
def test_zero_copy_buffer_passes_whole_reads_through() -> None:
    nettune.tune_libraries()
    conn = _client_expecting(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nab")
    first = conn.next_event()
    assert isinstance(first, h11.Data) and bytes(first.data) == b"ab"
    piece = b"cdefghij"
    conn.receive_data(piece)
    event = conn.next_event()
    assert isinstance(event, h11.Data) and event.data is piece, "a whole read goes out as the same object"
    assert conn.next_event() is h11.NEED_DATA
    conn.receive_data(b"klmnopqrst" + b"HTTP/1.1 ")  # the body's end, then bytes past it
    event = conn.next_event()
    assert isinstance(event, h11.Data) and bytes(event.data) == b"klmnopqrst"
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    assert conn.trailing_data == (b"HTTP/1.1 ", False)


@needs_tuning
def test_zero_copy_buffer_handles_chunked_bodies() -> None:
    nettune.tune_libraries()
    conn = _client_expecting(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    wire = b"5\r\nhello\r\n" + b"6\r\n world\r\n" + b"0\r\n\r\n"
    got = b""
    for i in range(0, len(wire), 3):  # fed in small reads: lines and data split across them
        conn.receive_data(wire[i:i + 3])
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or isinstance(event, h11.EndOfMessage):
                break
            assert isinstance(event, h11.Data)
            got += bytes(event.data)
    assert got == b"hello world"
    assert isinstance(event, h11.EndOfMessage)
