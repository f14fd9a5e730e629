"""Real TLS for tests: private certificate authorities from ``trustme`` and the test HTTP server speaking HTTPS.

Why: OSS and Azure speak HTTPS, offices put private CAs in front of them, and a certificate nobody trusts must fail
at once with words that say so. Only a real handshake against a real certificate chain tests that; a private CA
made per test session keeps it offline and leaves nothing in the system's trust store.

Fixtures (import them into a conftest):

* ``private_ca`` -- a :class:`PrivateCA` (session-wide), whose PEM is the ``ca_bundle`` a client is given;
* ``ca_bundle`` -- the path (str) of that CA's certificate, PEM;
* ``tls_server`` -- a :class:`~tests.support.http_server.TestHttpServer` on ``https://127.0.0.1:PORT`` whose
  certificate ``private_ca`` signed (for ``127.0.0.1`` and ``localhost``);
* ``untrusted_ca`` -- another :class:`PrivateCA`, which no client is told about;
* ``untrusted_tls_server`` -- a TLS server whose certificate ``untrusted_ca`` signed.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.http_server import TestHttpServer

__all__ = ["PrivateCA", "ca_bundle", "private_ca", "tls_server", "tls_test_server", "untrusted_ca",
           "untrusted_tls_server"]

SERVER_NAMES = ("127.0.0.1", "localhost")


class PrivateCA:
    """A certificate authority of the test's own; :attr:`pem` is its certificate (what a client adds as a CA
    bundle)."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.ca = trustme.CA(organization_name=f"Rusty Cat tests: {name}")
        self.pem = directory / f"{name}-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.pem))

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A server-side context with a certificate this CA issued for ``names`` (default: 127.0.0.1, localhost)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*(names or SERVER_NAMES)).configure_cert(ctx)
        return ctx


def tls_test_server(ca: PrivateCA, **options: bool) -> TestHttpServer:
    """A (not yet started) HTTPS TestHttpServer with a certificate ``ca`` issued for 127.0.0.1."""
    return TestHttpServer(ssl_context=ca.server_context(), **options)


@pytest.fixture(scope="session")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return PrivateCA(tmp_path_factory.mktemp("tls"), "trusted")


@pytest.fixture(scope="session")
def untrusted_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return PrivateCA(tmp_path_factory.mktemp("tls"), "untrusted")


@pytest.fixture
def ca_bundle(private_ca: PrivateCA) -> str:
    """The PEM file to give a client (MeowConfig.ca_bundle) so it trusts ``tls_server``."""
    return str(private_ca.pem)


@pytest.fixture
def tls_server(private_ca: PrivateCA) -> Iterator[TestHttpServer]:
    """HTTPS test server, certificate from ``private_ca``; the test fails if the server logged an error."""
    with tls_test_server(private_ca) as server:
        yield server
    assert server.errors == []


@pytest.fixture
def untrusted_tls_server(untrusted_ca: PrivateCA) -> Iterator[TestHttpServer]:
    """HTTPS test server, certificate from ``untrusted_ca`` (a CA no client trusts unless told)."""
    with tls_test_server(untrusted_ca) as server:
        yield server
    assert server.errors == []
