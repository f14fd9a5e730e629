"""Aliyun OSS Signature V4 (``OSS4-HMAC-SHA256``), header form and presigned (query) form.

Written from the service's documented algorithm and pinned by the official SDK's known-answer vectors and a
per-request cross-check against ``alibabacloud_oss_v2.signer.v4.SignerV4`` in the tests (whose fake OSS server
verifies every signature with the same canonical pieces).

Why the details look the way they do:

* The canonical URI is always path-style ``/bucket/key`` (percent-encoded, "/" kept), even when the request goes
  to a virtual-hosted URL, so callers pass ``bucket`` and ``key`` explicitly instead of letting us guess from the
  URL.
* Query pairs are canonicalised as *decoded-then-re-encoded* (RFC 3986 unreserved kept). For every URL built with
  :func:`encode_query` (or by the SDK) that is the identity; for a hand-written URL it makes the signature
  independent of how httpx or a proxy re-escapes the query. :attr:`SigningResult.url` carries the query in
  canonical encoding, so sending that URL satisfies a server that signs the raw bytes too.
* Header values are stripped of surrounding blanks before signing, because HTTP parsers drop them on the wire and
  the server can only sign what it received.
* Time comes from a :class:`ClockOffset` so a client whose clock is off can learn the server's time from a
  ``Date`` header after a 403 ``RequestTimeTooSkewed`` and re-sign. Each attempt must be signed
  afresh; never resend a signed request after a delay.
* Nothing in this module logs. :class:`OssCredentials` hides the secret and token in ``repr``;
  :meth:`SigningResult.debug_text`, :func:`redact_url` and :func:`redact_headers` are the safe ways to print.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import quote, quote_from_bytes, unquote, unquote_to_bytes, urlsplit, urlunsplit

__all__ = [
    "ALGORITHM",
    "MAX_PRESIGN_EXPIRES",
    "UNSIGNED_PAYLOAD",
    "ClockOffset",
    "OssCredentials",
    "OssV4Signer",
    "SigningResult",
    "build_object_url",
    "canonical_query_string",
    "canonical_uri",
    "encode_query",
    "is_time_skewed",
    "redact_headers",
    "redact_url",
    "signing_key",
]

ALGORITHM = "OSS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
TERMINATOR = "aliyun_v4_request"
MAX_PRESIGN_EXPIRES = 604800  # 7 days, the service maximum for x-oss-expires
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_UNRESERVED = "-_.~"  # with ASCII letters and digits: what Python's quote() never escapes
_HIDDEN = "<hidden>"
# Query parameters that are credentials (or bearer-like) and must never be printed.
_SECRET_QUERY_KEYS = frozenset({"x-oss-signature", "x-oss-security-token", "signature", "security-token"})


# --------------------------------------------------------------------------------------------------------------
# credentials and clock
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OssCredentials:
    """An AccessKey pair (plus an STS token for temporary credentials).

    ``repr`` hides the secret and the token so that a credentials object caught in a traceback, a log line or a
    test failure message never leaks them; ``access_key_id`` is not a secret and stays visible for debugging.
    """

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def __post_init__(self) -> None:
        if not self.access_key_id or not self.access_key_secret:
            raise ValueError("OssCredentials need a non-empty access_key_id and access_key_secret")

    def __repr__(self) -> str:
        token = None if self.security_token is None else _HIDDEN
        return (f"OssCredentials(access_key_id={self.access_key_id!r}, access_key_secret={_HIDDEN!r}, "
                f"security_token={token!r})")

    __str__ = __repr__


class ClockOffset:
    """Seconds to add to the local UTC clock to get the server's clock; thread-safe.

    One instance is meant to be shared per endpoint by every signer that talks to it, so that once a request
    learned the server's time (from a ``Date`` header after ``RequestTimeTooSkewed``) all later signatures use it.
    """

    def __init__(self, seconds: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._seconds = float(seconds)

    def __repr__(self) -> str:
        return f"ClockOffset({self.seconds:+.3f}s)"

    @property
    def seconds(self) -> float:
        with self._lock:
            return self._seconds

    def set(self, seconds: float) -> None:
        with self._lock:
            self._seconds = float(seconds)

    def now(self) -> datetime:
        """The server's idea of "now" (aware UTC)."""
        return datetime.now(UTC) + timedelta(seconds=self.seconds)

    def learn_from_server_time(self, server_time: datetime, *, local_now: datetime | None = None) -> float:
        """Set the offset so that :meth:`now` matches ``server_time`` at ``local_now``; returns the new offset."""
        if server_time.tzinfo is None:
            raise ValueError("server_time must be timezone-aware")
        local = local_now if local_now is not None else datetime.now(UTC)
        offset = (server_time - local).total_seconds()
        self.set(offset)
        return offset

    def learn_from_date_header(self, date_value: str, *, local_now: datetime | None = None) -> float:
        """Learn the offset from an HTTP ``Date`` header (RFC 1123); raises ValueError if it can't be parsed.

        The header has one-second resolution, which is far inside the 15-minute window that matters.
        """
        try:
            server_time = parsedate_to_datetime(date_value.strip())
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"unparseable Date header: {date_value!r}") from exc
        if server_time.tzinfo is None:  # "-0000" zone: RFC 5322 says UTC
            server_time = server_time.replace(tzinfo=UTC)
        return self.learn_from_server_time(server_time, local_now=local_now)


def is_time_skewed(status: int, body_or_error_code: bytes | str | None) -> bool:
    """True for OSS's 403 ``RequestTimeTooSkewed``: the one 403 that a re-sign (with a learned clock) can fix.

    Accepts the bare error code or the raw XML error body (bytes or text).
    """
    if status != 403 or not body_or_error_code:
        return False
    text = body_or_error_code.decode("utf-8", "replace") if isinstance(body_or_error_code, bytes) \
        else body_or_error_code
    text = text.strip()
    if text == "RequestTimeTooSkewed":
        return True
    return re.search(r"<Code>\s*RequestTimeTooSkewed\s*</Code>", text) is not None


# --------------------------------------------------------------------------------------------------------------
# canonical pieces
# --------------------------------------------------------------------------------------------------------------
def _quote(text: str, safe: str = "") -> str:
    return quote(text, safe=_UNRESERVED + safe)


def canonical_uri(bucket: str | None, key: str | None) -> str:
    """``/bucket/key`` percent-encoded with "/" kept; ``/bucket/`` without a key, ``/`` for service calls."""
    uri = "/"
    if bucket is not None:
        uri += bucket + "/"
    if key is not None:
        uri += key
    return _quote(uri, "/")


def _normalize_component(text: str) -> str:
    """Decode then re-encode a query key or value; the identity on canonically encoded input."""
    return quote_from_bytes(unquote_to_bytes(text), safe=_UNRESERVED)


def _split_query(query: str) -> list[tuple[str, str]]:
    """Raw ``k=v`` pairs in wire order (still encoded); empty pieces from ``&&`` are dropped."""
    pairs = []
    for piece in query.split("&"):
        if piece:
            k, _, v = piece.partition("=")
            pairs.append((k, v))
    return pairs


def canonical_query_string(query: str, *, exclude: Iterable[str] = ()) -> str:
    """Canonical query: pairs normalised, sorted by encoded key (then value), bare key when the value is empty."""
    skip = set(exclude)
    pairs = sorted((_normalize_component(k), _normalize_component(v)) for k, v in _split_query(query))
    return "&".join(f"{k}={v}" if v else k for k, v in pairs if unquote(k) not in skip)


def encode_query(params: Mapping[str, str | int | None] | Iterable[tuple[str, str | int | None]]) -> str:
    """Encode query parameters the way OSS signs them (RFC 3986 unreserved kept; a None or "" value → bare key)."""
    items = params.items() if isinstance(params, Mapping) else params
    out = []
    for k, v in items:
        value = "" if v is None else str(v)
        out.append(_quote(k) + ("=" + _quote(value) if value else ""))
    return "&".join(out)


def build_object_url(endpoint: str, bucket: str | None, key: str | None = None, *, path_style: bool = True,
                     query: Mapping[str, str | int | None] | Iterable[tuple[str, str | int | None]] = ()) -> str:
    """URL of a bucket or object: path-style ``{endpoint}/bucket/key`` or virtual-hosted ``bucket.host/key``.

    The key is encoded like the canonical URI ("/" kept), so the path on the wire and the signed path agree; "."
    and ".." segments are sent as ``%2E`` / ``%2E%2E`` because httpx (like browsers) would otherwise collapse them
    and address a different key.
    """
    parts = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
    netloc, path = parts.netloc, "/"
    if bucket is not None:
        if path_style:
            path += _quote(bucket) + "/"
        else:
            netloc = f"{bucket}.{netloc}"
    if key is not None:
        path += "/".join({".": "%2E", "..": "%2E%2E"}.get(seg, _quote(seg)) for seg in key.split("/"))
    return urlunsplit((parts.scheme, netloc, path, encode_query(query), ""))


def _clean_headers(headers: Mapping[str, str] | None) -> dict[str, tuple[str, str]]:
    """lower-name -> (original name, stripped value); a name given twice (in any case) is an error."""
    out: dict[str, tuple[str, str]] = {}
    for name, value in (headers or {}).items():
        lower = name.strip().lower()
        if lower in out:
            raise ValueError(f"header {name!r} given twice")
        out[lower] = (name.strip(), str(value).strip(" \t"))
    return out


def _is_default_signed(lower: str) -> bool:
    return lower.startswith("x-oss-") or lower in ("content-type", "content-md5")


def _additional(names: Iterable[str], present: Mapping[str, str]) -> list[str]:
    """Additional signed headers: lower-cased, minus the always-signed ones and the absent/empty ones, sorted."""
    return sorted({n.strip().lower() for n in names
                   if not _is_default_signed(n.strip().lower()) and present.get(n.strip().lower())})


def _canonical_headers(present: Mapping[str, str], additional: Iterable[str]) -> list[tuple[str, str]]:
    extra = set(additional)
    return sorted((k, v) for k, v in present.items() if _is_default_signed(k) or k in extra)


def signing_key(secret: str, date: str, region: str, product: str = "oss") -> bytes:
    """kSigning = HMAC chain over "aliyun_v4"+secret, yyyymmdd, region, product, "aliyun_v4_request"."""
    key = ("aliyun_v4" + secret).encode("utf-8")
    for part in (date, region, product, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SigningResult:
    """Everything one signature was computed from, for debugging and for sending.

    ``headers`` are the headers to send: for the header form the caller's headers plus x-oss-date,
    x-oss-content-sha256, the token and Authorization; for the query form exactly the signed headers the request
    must carry (no more, no less among the signed kinds, or the signature breaks). ``url`` is the URL to send (query in
    canonical encoding; for the query form it carries the signature). ``repr`` shows no signature, token or
    canonical text; :meth:`debug_text` prints the canonical request with the token redacted.
    """

    form: Literal["header", "query"]
    method: str
    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    canonical_request: str = field(repr=False)
    string_to_sign: str = field(repr=False)
    signature: str = field(repr=False)
    timestamp: str
    scope: str
    signed_headers: tuple[str, ...]
    additional_headers: tuple[str, ...]
    expires: int | None = None
    security_token: str | None = field(default=None, repr=False, compare=False)

    def debug_text(self) -> str:
        """Canonical request and string to sign, safe to log (the STS token is replaced by ``<hidden>``)."""
        text = f"CanonicalRequest:\n{self.canonical_request}\n\nStringToSign:\n{self.string_to_sign}"
        if self.security_token:
            for form in {self.security_token, _quote(self.security_token)}:
                text = text.replace(form, _HIDDEN)
        return text


def _string_to_sign(timestamp: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def _canonical_request(method: str, uri: str, query: str, canon_headers: list[tuple[str, str]],
                       additional: list[str], payload: str) -> str:
    header_block = "".join(f"{k}:{v}\n" for k, v in canon_headers)
    return f"{method}\n{uri}\n{query}\n{header_block}\n{';'.join(additional)}\n{payload}"


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("signing time must be timezone-aware (use datetime.now(UTC))")
    return now.astimezone(UTC)


# --------------------------------------------------------------------------------------------------------------
# signer
# --------------------------------------------------------------------------------------------------------------
class OssV4Signer:
    """Signs OSS requests with V4; one instance per (credentials, region), safe to share between tasks.

    ``credentials`` may be a callable returning fresh :class:`OssCredentials` (STS refresh); it is asked once per
    signature. ``clock`` is shared with whoever learns the server time; ``now=`` overrides it per call (tests).
    """

    def __init__(self, credentials: OssCredentials | Callable[[], OssCredentials], region: str, *,
                 product: str = "oss", clock: ClockOffset | None = None) -> None:
        if not region or region.startswith("oss-"):
            raise ValueError(f"region must be like 'cn-hangzhou' (no 'oss-' prefix), got {region!r}")
        self._credentials = credentials
        self.region = region
        self.product = product
        self.clock = clock if clock is not None else ClockOffset()

    def __repr__(self) -> str:
        return f"OssV4Signer(region={self.region!r}, product={self.product!r}, clock={self.clock!r})"

    def credentials(self) -> OssCredentials:
        creds = self._credentials() if callable(self._credentials) else self._credentials
        if not isinstance(creds, OssCredentials):
            raise TypeError("credentials provider must return OssCredentials")
        return creds

    def _timestamp_and_scope(self, now: datetime | None) -> tuple[str, str]:
        """``x-oss-date`` for ``now`` (or the clock-corrected present) and the credential scope of its day."""
        when = _utc(now) if now is not None else self.clock.now()
        timestamp = when.strftime(_DATE_FORMAT)
        return timestamp, f"{timestamp[:8]}/{self.region}/{self.product}/{TERMINATOR}"

    # -- header form --------------------------------------------------------------------------------------------
    def sign_request(self, method: str, url: str, headers: Mapping[str, str] | None = None, *,
                     bucket: str | None, key: str | None, now: datetime | None = None,
                     additional_headers: Iterable[str] = ()) -> SigningResult:
        """Header-form signature; see :meth:`sign_headers`. Returns the full :class:`SigningResult`."""
        creds = self.credentials()
        timestamp, scope = self._timestamp_and_scope(now)
        method = method.upper()

        cleaned = _clean_headers(headers)
        for name in ("authorization", "x-oss-date", "x-oss-content-sha256", "x-oss-security-token"):
            cleaned.pop(name, None)
        cleaned["x-oss-date"] = ("x-oss-date", timestamp)
        cleaned["x-oss-content-sha256"] = ("x-oss-content-sha256", UNSIGNED_PAYLOAD)
        if creds.security_token:
            cleaned["x-oss-security-token"] = ("x-oss-security-token", creds.security_token)
        present = {k: v for k, (_, v) in cleaned.items()}

        parts = urlsplit(url)
        query = canonical_query_string(parts.query)
        additional = _additional(additional_headers, present)
        canon_headers = _canonical_headers(present, additional)
        creq = _canonical_request(method, canonical_uri(bucket, key), query, canon_headers, additional,
                                  UNSIGNED_PAYLOAD)
        sts = _string_to_sign(timestamp, scope, creq)
        signature = _hmac_hex(signing_key(creds.access_key_secret, timestamp[:8], self.region, self.product), sts)

        auth = f"{ALGORITHM} Credential={creds.access_key_id}/{scope}"
        if additional:
            auth += f",AdditionalHeaders={';'.join(additional)}"
        auth += f",Signature={signature}"
        out = {name: value for name, value in cleaned.values()}
        out["Authorization"] = auth
        send_url = urlunsplit((parts.scheme, parts.netloc, parts.path, _normalized_query(parts.query), ""))
        return SigningResult("header", method, send_url, out, creq, sts, signature, timestamp, scope,
                             tuple(k for k, _ in canon_headers), tuple(additional),
                             security_token=creds.security_token)

    def sign_headers(self, method: str, url: str, headers: Mapping[str, str] | None = None, *,
                     bucket: str | None, key: str | None, now: datetime | None = None,
                     additional_headers: Iterable[str] = ()) -> dict[str, str]:
        """Headers to send for a header-form (``Authorization``) signed request.

        ``headers`` should already hold every x-oss-* header, Content-Type and Content-MD5 the request will carry
        (anything of those kinds added later breaks the signature). The result adds ``x-oss-date``,
        ``x-oss-content-sha256: UNSIGNED-PAYLOAD``, ``x-oss-security-token`` (STS) and ``Authorization``.
        """
        return self.sign_request(method, url, headers, bucket=bucket, key=key, now=now,
                                 additional_headers=additional_headers).headers

    # -- query form ---------------------------------------------------------------------------------------------
    def presign_request(self, method: str, url: str, *, bucket: str | None, key: str | None, expires: timedelta,
                        now: datetime | None = None, additional_headers: Iterable[str] = (),
                        headers: Mapping[str, str] | None = None) -> SigningResult:
        """Query-form signature; see :meth:`presign`. ``result.headers`` are the headers the request must send."""
        seconds = expires.total_seconds()
        if seconds != int(seconds) or not 1 <= seconds <= MAX_PRESIGN_EXPIRES:
            raise ValueError(f"presigned URL expiry must be a whole number of seconds in 1..{MAX_PRESIGN_EXPIRES} "
                             f"(7 days), got {seconds!r}")
        creds = self.credentials()
        timestamp, scope = self._timestamp_and_scope(now)
        method = method.upper()

        cleaned = _clean_headers(headers)
        cleaned.pop("authorization", None)
        present = {k: v for k, (_, v) in cleaned.items()}
        additional = _additional(additional_headers, present)
        canon_headers = _canonical_headers(present, additional)

        parts = urlsplit(url)
        ours = {"x-oss-signature-version", "x-oss-date", "x-oss-expires", "x-oss-credential",
                "x-oss-security-token", "x-oss-additional-headers", "x-oss-signature"}
        pairs = [(_normalize_component(k), _normalize_component(v)) for k, v in _split_query(parts.query)
                 if unquote(k) not in ours]
        pairs += [("x-oss-signature-version", ALGORITHM), ("x-oss-date", timestamp),
                  ("x-oss-expires", str(int(seconds))),
                  ("x-oss-credential", _quote(f"{creds.access_key_id}/{scope}"))]
        if creds.security_token:
            pairs.append(("x-oss-security-token", _quote(creds.security_token)))
        if additional:
            pairs.append(("x-oss-additional-headers", _quote(";".join(additional))))
        query = "&".join(f"{k}={v}" if v else k for k, v in pairs)

        creq = _canonical_request(method, canonical_uri(bucket, key), canonical_query_string(query), canon_headers,
                                  additional, present.get("x-oss-content-sha256", UNSIGNED_PAYLOAD))
        sts = _string_to_sign(timestamp, scope, creq)
        signature = _hmac_hex(signing_key(creds.access_key_secret, timestamp[:8], self.region, self.product), sts)
        signed_url = urlunsplit((parts.scheme, parts.netloc, parts.path, f"{query}&x-oss-signature={signature}", ""))
        send_headers = {cleaned[k][0]: v for k, v in canon_headers}
        return SigningResult("query", method, signed_url, send_headers, creq, sts, signature, timestamp, scope,
                             tuple(k for k, _ in canon_headers), tuple(additional), int(seconds),
                             security_token=creds.security_token)

    def presign(self, method: str, url: str, *, bucket: str | None, key: str | None, expires: timedelta,
                now: datetime | None = None, additional_headers: Iterable[str] = (),
                headers: Mapping[str, str] | None = None) -> str:
        """A presigned URL valid for ``expires`` (1 s .. 7 days, else ValueError) from the (clock-corrected) now.

        ``headers`` are headers the eventual request will send that get signed (x-oss-*, Content-Type,
        Content-MD5 and the ``additional_headers``): the request must then send exactly those values. Range is not
        signed, so ranged GETs work on a presigned GET URL. The method is signed: a GET URL can't be used for HEAD.
        """
        return self.presign_request(method, url, bucket=bucket, key=key, expires=expires, now=now,
                                    additional_headers=additional_headers, headers=headers).url


def _normalized_query(query: str) -> str:
    return "&".join(_normalize_component(k) + (("=" + _normalize_component(v)) if v else "")
                    for k, v in _split_query(query))


# --------------------------------------------------------------------------------------------------------------
# redaction
# --------------------------------------------------------------------------------------------------------------
def redact_url(url: str) -> str:
    """The URL with presigned signatures and STS tokens replaced by ``<hidden>`` (safe for logs and errors)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    out = []
    for k, v in _split_query(parts.query):
        if unquote(k).lower() in _SECRET_QUERY_KEYS and v:
            out.append(f"{k}={_HIDDEN}")
        else:
            out.append(f"{k}={v}" if v or "=" in k else k)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(out), parts.fragment))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy with the Authorization signature and the STS token hidden (safe for logs and errors)."""
    out = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower == "authorization":
            value = re.sub(r"Signature=[^,\s]*", f"Signature={_HIDDEN}", value)
        elif lower == "x-oss-security-token":
            value = _HIDDEN
        out[name] = value
    return out
