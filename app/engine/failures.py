"""What a failure means, decided in one place: which transport errors and answers are worth another attempt.

Every request of the engine -- the bulk data path's worker threads (http.client), the httpx client's probes and
control requests, a plugin's own calls -- turns its exceptions into a MeowError here, and every non-success answer
into one through :func:`status_error`. The rules (reference §4):

* A network fault (refused, reset, closed early, stalled, name lookup failed) is retryable: on a flaky link the next
  attempt usually works, and the retry budget bounds it.
* A certificate the system does not trust, a TLS version or protocol mismatch (talking TLS to a plain-HTTP port),
  an unusable URL, a proxy that refuses us (407) are permanent: retrying cannot help, and the words say what to do.
* A garbled exchange (a broken status line, bad chunk framing, a body cut short) is a network fault, retryable like
  the others. An answer that arrived whole but says nothing we can read (unparseable JSON or XML) is final
  (RESPONSE_PARSE_ERROR, as in the seed): the server would say the same again.
* 408, 429 and 5xx answers are retryable, with the server's Retry-After honoured; other statuses are final.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import sys
from email.utils import parsedate_to_datetime
from time import time
from urllib.parse import parse_qsl, quote, urlsplit

from app.engine.errors import InnerErrorCode, MeowError
from app.engine.redact import REDACTED, SECRET_HEADERS, SECRET_PARAMS, redact_text
from app.engine.wire import InvalidTarget, ProxyRefused

#: Statuses worth another attempt; Retry-After is honoured on them.
RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))

#: OpenSSL reasons that no retry can cure: the two ends don't speak the same TLS (or one does not speak TLS).
_PERMANENT_TLS_REASONS = frozenset({
    "WRONG_VERSION_NUMBER", "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE",
    "SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV1_ALERT_UNKNOWN_CA", "CERTIFICATE_VERIFY_FAILED", "HTTP_REQUEST",
    "UNSAFE_LEGACY_RENEGOTIATION_DISABLED", "NO_SHARED_CIPHER",
})

UNTRUSTED_HINT = ("if this server uses a private certificate authority, give its certificate as a CA bundle "
                  "(rusty-cat-cli --cacert FILE, or Preferences → Network)")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (httpx wraps the OS or TLS error it met)."""
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and len(out) < 8:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _httpx_kinds() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """httpx's proxy, timeout and URL exceptions, if httpx is loaded at all (a plain download never loads it, and
    then none of its exceptions can occur)."""
    httpx = sys.modules.get("httpx")
    if httpx is None:
        return (), (), ()
    return (httpx.ProxyError,), (httpx.TimeoutException,), (httpx.InvalidURL, httpx.UnsupportedProtocol)


def transport_error(exc: BaseException, what: str) -> MeowError:
    """A failure to exchange a request at all, as a MeowError that says whether a retry may help."""
    chain = _chain(exc)
    proxy_errors, timeouts, bad_urls = _httpx_kinds()
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or cause.reason or "certificate verify failed"
            return MeowError(InnerErrorCode.CERTIFICATE_UNTRUSTED,
                             f"{what}: the server's TLS certificate is not trusted ({reason}); {UNTRUSTED_HINT}",
                             retryable=False)
        if isinstance(cause, ssl.SSLError) and (cause.reason or "") in _PERMANENT_TLS_REASONS:
            return MeowError(InnerErrorCode.HTTP_ERROR, f"{what}: TLS failed ({cause.reason}): the server does not "
                             "speak TLS the way we do (is this an http:// address?)", retryable=False)
        if isinstance(cause, (ProxyRefused, *proxy_errors)):
            return _proxy_error(cause, what)
        if isinstance(cause, socket.gaierror):
            return MeowError(InnerErrorCode.HTTP_ERROR, f"{what}: cannot resolve the host name "
                             f"({cause.strerror or cause})")
        if isinstance(cause, (TimeoutError, *timeouts)):
            why = str(cause) if isinstance(cause, TimeoutError) and str(cause) not in ("", "timed out") else \
                "nothing moved for the whole timeout"
            return MeowError(InnerErrorCode.HTTP_ERROR, f"{what}: timed out: {why}")
        if isinstance(cause, (InvalidTarget, http.client.InvalidURL, *bad_urls)):
            return unusable_url(what, str(cause))
        if isinstance(cause, http.client.RemoteDisconnected):
            return MeowError(InnerErrorCode.HTTP_ERROR, f"{what}: the server disconnected without sending a response")
        if isinstance(cause, http.client.LineTooLong | http.client.HTTPException) and "more than" in str(cause):
            return MeowError(InnerErrorCode.HTTP_ERROR, f"{what}: the answer's head is too large "
                             f"({redact_text(str(cause))}; at most 64 KiB a line and 100 header lines are read)")
    kind = type(exc).__name__
    detail = redact_text(str(exc)) or _cause_text(chain, kind)
    if isinstance(exc, http.client.HTTPException):
        detail = f"garbled answer ({kind}: {detail})" if detail != kind else f"garbled answer ({kind})"
    return MeowError(InnerErrorCode.HTTP_ERROR, f"{what}: {detail}")


def unusable_url(what: str, why: str) -> MeowError:
    """A URL nothing can be sent to (bad characters, scheme, host or port): final, and nothing was sent."""
    return MeowError(InnerErrorCode.PARAMETER_EMPTY, f"{what}: unusable URL: {redact_text(why)}", retryable=False)


def _proxy_error(cause: BaseException, what: str) -> MeowError:
    status = getattr(cause, "status", None)
    if status is None:  # httpx says "407 Proxy Authentication Required"
        head = str(cause).split(" ", 1)[0]
        status = int(head) if head.isdigit() else None
    hint = ": check the proxy's user name and password" if status == 407 else ""
    return MeowError(InnerErrorCode.PROXY_ERROR, f"{what}: the proxy refused the request "
                     f"({redact_text(str(cause))}){hint}", status=status,
                     retryable=status not in (401, 403, 407))


def _cause_text(chain: list[BaseException], kind: str) -> str:
    """httpx wraps an OS error in message-less exceptions (a reset reads "ReadError"); name the cause instead,
    e.g. "ReadError: [Errno 104] Connection reset by peer", so the error says what happened."""
    for cause in chain[1:]:
        text = redact_text(str(cause))
        if text:
            return f"{kind}: {text}"
    return kind


def parse_retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), cap)


def status_error(status: int, headers: object, what: str, preview: bytes, max_retry_after: float,
                 secrets: tuple[str, ...] = (), code: InnerErrorCode = InnerErrorCode.RESPONSE_STATUS_ERROR,
                 via: str | None = None) -> MeowError:
    """A non-success answer as a MeowError: retryable for 408/429/5xx, final otherwise. ``preview`` (a bounded part
    of an *error* body) is scrubbed of ``secrets`` (what the request carried) and of URLs' credentials.

    A 407 can only come from a proxy: PROXY_ERROR. ``via`` names the proxy an answer came through (credentials
    redacted): some proxies (tinyproxy) answer wrong credentials with a plain 401, so a 401 says it came that way."""
    get = headers.get  # type: ignore[attr-defined]
    text = scrub(redact_text(preview.decode("utf-8", errors="replace")), secrets)
    remote_code = get("x-ms-error-code") or get("x-oss-ec")
    message = f"{what} {status}: {text}" if text else f"{what} {status}"
    if status == 407:
        return MeowError(InnerErrorCode.PROXY_ERROR, f"{message} (the proxy asks for a user name and password, or "
                         "refused the ones given: check them)", status=407, retryable=False)
    if status == 401 and via:
        message += f" (through the proxy {via}: if it needs a user name and password, check them)"
    return MeowError(
        code,
        message,
        status=status,
        remote_code=remote_code,
        retryable=status in RETRYABLE_STATUSES,
        retry_after=parse_retry_after(get("retry-after"), max_retry_after),
        headers=tuple((str(k), str(v)) for k, v in headers.items()) if status in (401, 403) else (),  # type: ignore[attr-defined]
    )


def request_secrets(url: str, headers: object) -> tuple[str, ...]:
    """Every secret-bearing value one request carried (credential headers, signed query values), raw and
    percent-encoded: services echo them in error bodies (Azure's 403 quotes the Shared Key signature; OSS's
    SignatureDoesNotMatch quotes the canonical request)."""
    items = headers.items() if hasattr(headers, "items") else headers  # type: ignore[union-attr]
    found: set[str] = set()
    for name, value in items:  # type: ignore[union-attr]
        if name.lower() in SECRET_HEADERS:
            found.add(value)
            found.update(p for p in re.split(r"[\s,:]+", value) if len(p) >= 12)
            found.update(m.group(1) for m in re.finditer(r"Signature=([^,\s]+)", value))
    try:
        query = urlsplit(url).query
    except ValueError:
        query = ""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() in SECRET_PARAMS and value:
            found.update({value, quote(value, safe=""), quote(value, safe="/")})
    return tuple(s for s in sorted(found, key=len, reverse=True) if len(s) >= 8)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
