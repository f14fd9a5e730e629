"""Retry classification lives in one place (app/engine/failures.py): the same fault means the same thing whichever
HTTP stack met it (the data path's http.client or the httpx client of probes and control requests)."""

from __future__ import annotations

import http.client
import socket
import ssl
from pathlib import Path

import httpx
import pytest

from app.engine.api import DownloadPounceBuilder
from app.engine.errors import InnerErrorCode as E
from app.engine.failures import request_secrets, status_error, transport_error
from app.engine.network import Proxy
from app.engine.wire import ProxyRefused
from tests.support.engine_helpers import Recorder, failed_with, meow


def _cert_error() -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    err.verify_message = "unable to get local issuer certificate"
    return err


def _wrapped(inner: BaseException, outer: BaseException) -> BaseException:
    """An exception raised from another, as httpx raises ConnectError from the TLS error it met."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize("exc", [_cert_error(), _wrapped(_cert_error(), httpx.ConnectError("boom"))])
def test_an_untrusted_certificate_is_final_and_says_how_to_fix_it(exc: BaseException) -> None:
    err = transport_error(exc, "download GET")
    assert err.code == E.CERTIFICATE_UNTRUSTED and not err.retryable
    assert "not trusted" in err.msg and "unable to get local issuer certificate" in err.msg
    assert "CA bundle" in err.msg and "--cacert" in err.msg


def test_tls_to_a_plain_http_port_is_final() -> None:
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    exc.reason = "WRONG_VERSION_NUMBER"
    err = transport_error(exc, "probe")
    assert err.code == E.HTTP_ERROR and not err.retryable and "http://" in err.msg


@pytest.mark.parametrize("exc, words", [
    (TimeoutError("timed out"), "timed out"),
    (_wrapped(TimeoutError(), httpx.ReadTimeout("")), "timed out"),
    (httpx.WriteTimeout(""), "timed out"),
    (ConnectionResetError(104, "Connection reset by peer"), "reset"),
    (http.client.RemoteDisconnected("Remote end closed connection without response"), "disconnected"),
    (http.client.IncompleteRead(b"x", 10), "garbled"),
    (socket.gaierror(-2, "Name or service not known"), "resolve"),
    (ConnectionRefusedError(111, "Connection refused"), "refused"),
])
def test_network_faults_are_retryable_and_named(exc: BaseException, words: str) -> None:
    err = transport_error(exc, "what")
    assert err.code == E.HTTP_ERROR and err.retryable, err
    assert words in err.msg.lower(), err.msg


def test_a_proxy_asking_for_credentials_is_final_and_keeps_the_password_out() -> None:
    proxy = Proxy.parse("http://alice:s3cret-pass@127.0.0.1:3128")
    err = transport_error(ProxyRefused(proxy, 407, "Proxy Authentication Required"), "download GET")
    assert err.code == E.PROXY_ERROR and err.status == 407 and not err.retryable
    assert "user name and password" in err.msg and "s3cret" not in err.msg
    err = transport_error(httpx.ProxyError("503 Service Unavailable"), "probe")
    assert err.code == E.PROXY_ERROR and err.status == 503 and err.retryable


def test_an_unusable_url_is_a_parameter_error_sent_nowhere() -> None:
    err = transport_error(http.client.InvalidURL("URL can't contain control characters"), "download GET")
    assert err.code == E.PARAMETER_EMPTY and not err.retryable and "unusable URL" in err.msg


def test_status_errors_scrub_what_the_request_carried() -> None:
    url = "https://acct.blob.core.windows.net/c/b?sv=1&sig=SIGNATURE%2Babc123456&se=1"
    headers = {"Authorization": "SharedKey acct:SHAREDKEYSIGNATURE0123="}
    body = (b"<Error><AuthenticationErrorDetail>The MAC signature found in the HTTP request "
            b"'SHAREDKEYSIGNATURE0123=' is not the same. sig=SIGNATURE+abc123456</AuthenticationErrorDetail></Error>")
    err = status_error(403, httpx.Headers({"x-ms-error-code": "AuthenticationFailed"}), "Azure Put Block", body, 60,
                       request_secrets(url, headers))
    assert err.status == 403 and not err.retryable and err.remote_code == "AuthenticationFailed"
    assert "SHAREDKEYSIGNATURE" not in err.msg and "SIGNATURE+abc" not in err.msg
    err = status_error(503, httpx.Headers({"retry-after": "7"}), "GET", b"busy", 60)
    assert err.retryable and err.retry_after == 7


@pytest.mark.asyncio
async def test_a_proxy_that_cannot_be_reached_is_named(tmp_path: Path) -> None:
    """A refused connection to the proxy says it was the proxy, not the server (and stays a retryable fault)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    rec = Recorder()
    async with meow(proxy=f"http://alice:s3cret@127.0.0.1:{port}") as client:
        task = DownloadPounceBuilder("f.bin", tmp_path / "f.bin", 1024, "http://example.invalid/f.bin")
        final = await rec.wait_terminal(await client.try_enqueue(task.with_max_chunk_retries(1).build(),
                                                                 rec.progress))
    msg = failed_with(final, E.HTTP_ERROR, f"cannot reach the proxy http://REDACTED@127.0.0.1:{port}")
    assert "s3cret" not in msg
