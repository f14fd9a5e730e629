"""Certificates, as users meet them: a server whose certificate nobody told us to trust fails once, clearly; the CA
bundle setting makes the same transfer work.

Why: retrying a certificate failure cannot help (the certificate will not change in a second), so five retries
with back-off only keep the user waiting for the same failure; and the words must say what to do (give the CA
bundle). The server counts TLS handshakes, so "not retried" is what the server saw, not what the client says.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.engine.api import InnerErrorCode, PounceTask, TransferStatus
from tests.field.transfers import completed, download_task, run_to_end, upload_task, uploaded
from tests.support.engine_helpers import MIB, meow, sha
from tests.support.http_server import TestHttpServer
from tests.support.tls import PrivateCA

pytestmark = pytest.mark.timeout(120)

DATA = os.urandom(2 * MIB + 3)
BACKOFF = 10.0  # the retry delay: a failure reported sooner than this was not retried


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "upload.bin"
    path.parent.mkdir()
    path.write_bytes(DATA)
    return path


@pytest.mark.asyncio
@pytest.mark.parametrize("direction", ["download", "upload"])
async def test_untrusted_certificate_fails_once_and_ca_bundle_fixes_it(
        direction: str, untrusted_tls_server: TestHttpServer, untrusted_ca: PrivateCA, src: Path,
        tmp_path: Path) -> None:
    """Without the CA: CERTIFICATE_UNTRUSTED after one handshake (max_chunk_retries=5 and a 10 s back-off would
    show as more handshakes and a late failure), with words that say the certificate is not trusted and name the CA
    bundle setting; nothing reached the HTTP layer. With ``ca_bundle`` naming the CA: the same transfer completes."""
    srv = untrusted_tls_server
    srv.add_file("/files/data.bin", DATA)
    dest = tmp_path / "back.bin"

    def task() -> PounceTask:  # the same transfer both times
        if direction == "download":
            return download_task(srv.url("/files/data.bin"), dest, retries=5)
        return upload_task(src, srv.url("/upload"), retries=5)

    started = time.monotonic()
    async with meow(retry_base_delay=BACKOFF, retry_max_delay=BACKOFF) as client:
        final = await run_to_end(client, task())
    elapsed = time.monotonic() - started
    assert final.status is TransferStatus.FAILED and final.error is not None, final
    assert final.error.code == InnerErrorCode.CERTIFICATE_UNTRUSTED, final.error
    assert final.error.retryable is False
    msg = final.error.msg.lower()
    assert "not trusted" in msg and "ca bundle" in msg, final.error.msg
    assert srv.tls_handshakes == 1 and srv.tls_failures == 1, (
        f"{srv.tls_handshakes} handshakes ({srv.tls_failures} refused): the failure was retried")
    assert elapsed < BACKOFF, f"failed after {elapsed:.1f} s: a back-off was waited"
    assert srv.requests == []

    async with meow(ca_bundle=str(untrusted_ca.pem)) as client:
        completed(await run_to_end(client, task()))
    if direction == "download":
        assert sha(dest.read_bytes()) == sha(DATA)
    else:
        assert sha(uploaded(srv, DATA)) == sha(DATA)
    assert srv.tls_failures == 1


@pytest.mark.asyncio
async def test_another_ca_in_the_bundle_does_not_make_a_server_trusted(
        untrusted_tls_server: TestHttpServer, ca_bundle: str, tmp_path: Path) -> None:
    """A CA bundle adds exactly the CAs in it: trusting our private CA does not make a certificate another CA
    signed acceptable (the bundle must not turn verification off)."""
    untrusted_tls_server.add_file("/files/data.bin", DATA)
    async with meow(ca_bundle=ca_bundle) as client:
        final = await run_to_end(client, download_task(untrusted_tls_server.url("/files/data.bin"),
                                                       tmp_path / "never.bin", retries=5))
    assert final.status is TransferStatus.FAILED and final.error is not None, final
    assert final.error.code == InnerErrorCode.CERTIFICATE_UNTRUSTED, final.error
    assert untrusted_tls_server.requests == []
