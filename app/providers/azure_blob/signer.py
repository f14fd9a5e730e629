"""Azure Blob Shared Key signing, written from the service's documented algorithm.

Why our own signer rather than the SDK's: the engine speaks plain httpx, signs every attempt
afresh (a retried request gets a new ``x-ms-date``), and must sign exactly the bytes httpx puts
on the wire. The SDK's policy is private API and is only used in tests as an oracle.

The string-to-sign (service versions 2015-02-21 and later) is::

    VERB \\n Content-Encoding \\n Content-Language \\n Content-Length \\n Content-MD5 \\n
    Content-Type \\n Date \\n If-Modified-Since \\n If-Match \\n If-None-Match \\n
    If-Unmodified-Since \\n Range \\n CanonicalizedHeaders CanonicalizedResource

* Content-Length is an empty line when it is 0 (or absent).
* Date is an empty line: we always send ``x-ms-date``, which wins over ``Date``.
* Range is the standard ``Range`` header. Callers should send ``x-ms-range`` instead (the official
  SDK never fills this slot, so ``x-ms-range`` is what keeps us comparable with it);
  if a caller does send ``Range`` it is signed correctly in slot 12 all the same.
* CanonicalizedHeaders: every ``x-ms-*`` header, lower-cased, sorted by name (ordinal order),
  value unfolded (runs of whitespace outside double quotes become one space) and trimmed,
  each written as ``name:value\\n``.
* CanonicalizedResource: ``/`` + account + the encoded URI path as sent, then for every query
  parameter (name lower-cased, sorted) ``\\nname:value`` with the URL-decoded values of that
  name sorted and comma-joined. On the emulator's path-style URLs
  (``http://127.0.0.1:PORT/devstoreaccount1/c/b``) the account therefore appears twice:
  ``/devstoreaccount1/devstoreaccount1/c/b``.

Query values are decoded with ``unquote`` (``+`` stays ``+``), as the SDK does; so a ``+``
meant literally (base64 block ids!) must be sent as ``%2B``, which ``sas.append_query`` and
``SasUrl.with_params`` do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import unquote

import httpx

#: The ``x-ms-version`` we send. 2021-08-06 is a GA service version that every Azure region
#: serves and that Azurite accepts even without ``--skipApiVersionCheck``; it already has what
#: the engine needs (4000 MiB blocks since 2019-12-12, ``x-ms-range``, ``x-ms-range-get-content-md5``,
#: transactional CRC-64). Newer versions buy us nothing and older Azurite builds reject them.
X_MS_VERSION = "2021-08-06"

#: The well-known Azurite / storage-emulator account (public, documented by Microsoft).
EMULATOR_ACCOUNT_NAME = "devstoreaccount1"
EMULATOR_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

#: Standard headers in string-to-sign order (slots 2..12; slot 1 is the verb).
_STANDARD_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)

_WS_OR_QUOTED = re.compile(r'"[^"]*"|[ \t\r\n]+')
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def rfc1123(when: datetime) -> str:
    """``Mon, 01 Jan 2024 00:00:00 GMT``: the only date form ``x-ms-date`` accepts."""
    if when.tzinfo is None:
        raise ValueError("x-ms-date needs a timezone-aware datetime (naive datetimes are ambiguous)")
    return format_datetime(when.astimezone(UTC), usegmt=True)


def _unfold(value: str) -> str:
    """Collapse linear whitespace outside double-quoted strings and trim, as the doc says."""
    return _WS_OR_QUOTED.sub(lambda m: m.group(0) if m.group(0).startswith('"') else " ", value).strip()


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Names lower-cased; two spellings of one header are an error rather than a silent pick."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in out:
            raise ValueError(f"header {name!r} given twice (names are case-insensitive)")
        out[key] = str(value)
    return out


def canonicalized_headers(headers: Mapping[str, str]) -> str:
    """The ``x-ms-*`` block of the string-to-sign, each line ending in ``\\n``."""
    lowered = _lower_headers(headers)
    lines = [f"{name}:{_unfold(value)}\n" for name, value in sorted(lowered.items()) if name.startswith("x-ms-")]
    return "".join(lines)


def canonicalized_resource(account_name: str, url: str | httpx.URL) -> str:
    """``/account/encoded/path`` plus ``\\nname:v1,v2`` per query parameter (decoded, sorted).

    The URL is parsed by httpx, so the path is encoded exactly as httpx will send it.
    """
    raw = httpx.URL(url).raw_path.decode("ascii")
    path, _, query = raw.partition("?")
    out = f"/{account_name}{path or '/'}"
    params: dict[str, list[str]] = {}
    for pair in query.split("&") if query else ():
        if not pair:
            continue
        name, _, value = pair.partition("=")
        params.setdefault(unquote(name).lower(), []).append(unquote(value))
    for name in sorted(params):
        out += f"\n{name}:{','.join(sorted(params[name]))}"
    return out


def string_to_sign(method: str, url: str | httpx.URL, headers: Mapping[str, str], account_name: str) -> str:
    """The exact text that gets HMAC'd; exposed so a 403 can be debugged against the server's.

    ``headers`` must be the complete set that will be sent, ``x-ms-date`` included, and with
    ``Content-Length`` when the body is not empty (httpx adds it otherwise, unsigned).
    """
    lowered = _lower_headers(headers)
    slots: list[str] = []
    for name in _STANDARD_HEADERS:
        value = lowered.get(name, "").strip()
        if name == "content-length" and value == "0":
            value = ""
        if name == "date" and "x-ms-date" in lowered:
            value = ""
        slots.append(value)
    return (
        method.upper()
        + "\n"
        + "\n".join(slots)
        + "\n"
        + canonicalized_headers(lowered)
        + canonicalized_resource(account_name, url)
    )


def range_header(start: int, end: int | None = None) -> dict[str, str]:
    """``{"x-ms-range": "bytes=start-end"}`` (inclusive end; open-ended when ``end`` is None).

    With Shared Key the engine uses ``x-ms-range``, never ``Range``, as the official SDK does. Also refuses
    ``end < start``, which Azurite would answer with a bogus ``bytes 10-9/10``.
    """
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range {start}-{end}")
    return {"x-ms-range": f"bytes={start}-{'' if end is None else end}"}


@dataclass(frozen=True)
class AzureSharedKey:
    """An account name and key that sign requests with Shared Key.

    Frozen so one credential can be shared by concurrent parts; the key is validated up front
    (a typo surfaces here, not as a 403 later) and never appears in ``repr``.
    ``clock`` is injectable for known-answer tests and for a clock offset learned from the
    server's ``Date`` (a client whose clock is off is refused).
    """

    account_name: str
    account_key: str = field(repr=False)
    clock: Callable[[], datetime] = field(default=_utcnow, repr=False, compare=False)
    _key_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.account_name or not _ACCOUNT_NAME.fullmatch(self.account_name):
            raise ValueError(f"invalid Azure storage account name {self.account_name!r}")
        try:
            key = base64.b64decode(self.account_key.strip(), validate=True)
        except (binascii.Error, ValueError, AttributeError, TypeError):
            # Never echo the key: a near-miss key is still a secret.
            raise ValueError(
                f"the account key for {self.account_name!r} is not valid base64 "
                "(copy the whole 'key1' value from the portal or the connection string's AccountKey)"
            ) from None
        if not key:
            raise ValueError(f"the account key for {self.account_name!r} is empty")
        object.__setattr__(self, "_key_bytes", key)

    def __repr__(self) -> str:
        return f"AzureSharedKey(account_name={self.account_name!r}, account_key='REDACTED')"

    __str__ = __repr__

    def string_to_sign(self, method: str, url: str | httpx.URL, headers: Mapping[str, str]) -> str:
        """The string-to-sign for a request whose headers already include ``x-ms-date``."""
        return string_to_sign(method, url, headers, self.account_name)

    def signature(self, text: str) -> str:
        """base64(HMAC-SHA256(base64decode(key), text))."""
        digest = hmac.new(self._key_bytes, text.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")

    def sign(
        self,
        method: str,
        url: str | httpx.URL,
        headers: Mapping[str, str],
        *,
        now: datetime | None = None,
    ) -> dict[str, str]:
        """A copy of ``headers`` with ``x-ms-date``, ``x-ms-version`` and ``Authorization`` added.

        Call once per attempt: the date is taken fresh (from ``now`` or ``self.clock``), so a
        retried request never reuses a stale signature. A caller-supplied ``x-ms-version`` is
        kept; a caller-supplied ``x-ms-date`` or ``Authorization`` is replaced.
        """
        out = {k: str(v) for k, v in headers.items() if k.lower() not in ("x-ms-date", "authorization")}
        out["x-ms-date"] = rfc1123(now or self.clock())
        if not any(k.lower() == "x-ms-version" for k in out):
            out["x-ms-version"] = X_MS_VERSION
        text = self.string_to_sign(method, url, out)
        out["Authorization"] = f"SharedKey {self.account_name}:{self.signature(text)}"
        return out
