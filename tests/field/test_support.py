"""The field tests' instruments, checked on their own: a witness that lies makes every test built on it worthless.

* the throttled namespace really is isolated, really has the tbf qdisc and MTU asked for, moves bytes at about the
  rate, returns a thread to its own namespace, and is deleted even when the body fails;
* the userspace relay paces both directions to the rate and delivers every byte;
* tinyproxy's log, as parsed, lists exactly the requests that went through it;
* the TLS test server shakes hands with a client that trusts its CA, counts the handshakes, and refuses plain text.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.engine_helpers import KIB
from tests.support.http_server import TestHttpServer
from tests.support.netns import NETNS_DIR, ThrottledNamespace, ThrottlingRelay, netns_unavailable, parse_rate
from tests.support.tinyproxy import ProxiedRequest, Tinyproxy
from tests.support.tls import PrivateCA

pytestmark = pytest.mark.timeout(120)

SIZE = 1536 * KIB  # ~2 s at 6 Mbit/s
FLOOR = 0.7


def _netns_id() -> str:
    return os.readlink(f"/proc/self/task/{threading.get_native_id()}/ns/net")


def _get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        return resp.read()
    finally:
        conn.close()


def test_parse_rate_reads_tc_units() -> None:
    assert parse_rate("6mbit") == 750_000
    assert parse_rate("500kbit") == 62_500
    assert parse_rate("1mbps") == 1_000_000
    with pytest.raises(ValueError):
        parse_rate("6 megs")


@pytest.mark.skipif(netns_unavailable() is not None, reason=f"{netns_unavailable()}")
def test_throttled_namespace_is_isolated_throttled_and_deleted(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    outside = _netns_id()
    with ThrottledNamespace("6mbit", mtu=1500) as ns:
        assert os.path.exists(os.path.join(NETNS_DIR, ns.name))
        qdisc = subprocess.run(ns.exec_argv(["tc", "qdisc", "show", "dev", "lo"]), capture_output=True, text=True,
                               check=True).stdout
        assert "tbf" in qdisc and "rate 6Mbit" in qdisc, qdisc
        link = subprocess.run(ns.exec_argv(["ip", "link", "show", "lo"]), capture_output=True, text=True,
                              check=True).stdout
        assert "mtu 1500" in link and "UP" in link, link
        with ns.inside():
            inside = _netns_id()
        assert inside != outside and _netns_id() == outside, "the thread did not return to its namespace"
        # A server outside is not reachable from inside.
        with TestHttpServer() as plain, ns.inside(), pytest.raises(ConnectionRefusedError), \
                socket.create_connection(("127.0.0.1", plain.port), timeout=5):
            pass
        srv = TestHttpServer().start(listen_in=ns.inside)
        with srv:
            srv.add_file("/data.bin", data)
            started = time.monotonic()
            with ns.inside():
                got = _get(srv.port, "/data.bin")
            elapsed = time.monotonic() - started
        assert got == data
        assert elapsed >= FLOOR * SIZE / ns.bytes_per_second, f"{SIZE} bytes in {elapsed:.2f} s: not throttled"
        name = ns.name
    assert not os.path.exists(os.path.join(NETNS_DIR, name))
    with pytest.raises(RuntimeError, match="the body failed"), ThrottledNamespace() as failing:
        name = failing.name
        raise RuntimeError("the body failed")
    assert not os.path.exists(os.path.join(NETNS_DIR, name)), "a failing body left its namespace behind"


def test_throttling_relay_paces_both_directions() -> None:
    data = os.urandom(SIZE)
    with TestHttpServer() as srv, ThrottlingRelay(srv.port, "6mbit") as relay:
        srv.add_file("/data.bin", data)
        started = time.monotonic()
        assert _get(relay.port, "/data.bin") == data
        down = time.monotonic() - started
        conn = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=30)
        started = time.monotonic()
        try:
            conn.request("PUT", "/sink", body=data)
            assert conn.getresponse().status == 404  # answered once the whole body arrived
        finally:
            conn.close()
        up = time.monotonic() - started
        assert [r.body_size for r in srv.requests if r.method == "PUT"] == [len(data)]
        assert relay.connections == 2
    floor = FLOOR * SIZE / relay.bytes_per_second
    assert down >= floor and up >= floor, f"down {down:.2f} s, up {up:.2f} s, floor {floor:.2f} s"


def test_tinyproxy_log_lists_the_requests_it_carried(private_ca: PrivateCA) -> None:
    with TestHttpServer() as srv, Tinyproxy() as proxy:
        srv.add_file("/a.bin", b"a" * 1000)
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        conn.request("GET", srv.url("/a.bin"))
        assert conn.getresponse().read() == b"a" * 1000
        conn.close()
        tunnel = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        tunnel.set_tunnel("127.0.0.1", srv.port)
        tunnel.request("GET", "/a.bin")
        assert tunnel.getresponse().read() == b"a" * 1000
        tunnel.close()
        assert proxy.requests() == [ProxiedRequest("GET", srv.url("/a.bin")),
                                    ProxiedRequest("CONNECT", f"127.0.0.1:{srv.port}")]
        proxy.clear_log()
        assert proxy.requests() == []
        assert len(srv.requests) == 2


def test_tls_server_counts_handshakes_and_needs_tls(private_ca: PrivateCA) -> None:
    ctx = ssl.create_default_context(cafile=str(private_ca.pem))
    with TestHttpServer(ssl_context=private_ca.server_context()) as srv:
        srv.add_file("/a.bin", b"secret" * 100)
        assert srv.base_url.startswith("https://127.0.0.1:")
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=30)
        conn.request("GET", "/a.bin")
        assert conn.getresponse().read() == b"secret" * 100
        conn.close()
        plain = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        with pytest.raises((http.client.HTTPException, OSError)):
            plain.request("GET", "/a.bin")
            plain.getresponse()
        plain.close()
        deadline = time.monotonic() + 10
        while srv.tls_failures < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (srv.tls_handshakes, srv.tls_failures) == (2, 1)
        assert [r.path for r in srv.requests] == ["/a.bin"]
    assert srv.errors == []

