"""Azure SAS URLs: recognise, extend and redact them without ever disturbing the signed query, and ask a plugin's
SAS source for them.

Why this exists: a SAS URL is a bearer credential whose query (``sv``, ``sr``, ``sp``, ``se``, ``sig`` …) must
reach the service byte-for-byte. httpx's ``params=`` *replaces* a URL's query, which silently drops the SAS and
yields 403 AuthorizationFailure. So extra parameters (``comp=block&blockid=…``) are appended to the original query
text here, and the result is passed to httpx as the URL, never via ``params=``.

A SAS URL is also a secret: ``repr``/``str`` of a ``SasUrl`` are redacted, and ``redacted()`` is what goes into
logs, errors, records and checkpoints.

A SAS expires, so a plugin may be given a *source* instead of a URL: a callable asked at first use (never at
construction) and again once when the service refuses the URL (403), which is how an expired SAS shows itself.
"""

from __future__ import annotations

import dataclasses
import inspect
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote, unquote, urlsplit

from app.engine.plugin_sdk import InnerErrorCode, MeowError, redact_text, redact_url
from app.providers.leases import Leases

from .blocks import block_id, parse_block_id

if TYPE_CHECKING:
    from app.engine.plugin_sdk import TransferTask

__all__ = [
    "SasKey",
    "SasSource",
    "SasUrl",
    "SasUrlSource",
    "append_query",
    "block_id",
    "is_sas_url",
    "parse_block_id",
]

#: A SAS URL, or a function (sync or async) returning a fresh one; asked lazily and again after a 403.
SasUrlSource = str | Callable[[], str | Awaitable[str]]

#: ``sr`` values we handle: a blob SAS and a container SAS.
SAS_RESOURCES = {"b": "blob", "c": "container"}


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs. ``unquote``, not ``unquote_plus``: ``+`` is literal in Azure."""
    pairs = []
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def is_sas_url(url: str) -> bool:
    """True when the URL's query carries both ``sv=`` and ``sig=``, i.e. looks like an Azure SAS."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return False
    names = {name for name, _ in _query_pairs(query)}
    return "sv" in names and "sig" in names


def append_query(url: str, params: Mapping[str, object]) -> str:
    """``url`` with ``params`` appended after its existing query, which is kept verbatim.

    Names and values are percent-encoded with nothing left safe (so a base64 ``+``, ``/`` or
    ``=`` becomes ``%2B``, ``%2F``, ``%3D``), which is what both Shared Key canonicalisation
    and the service's decoding expect.
    """
    head, sep, _frag = url.partition("#")
    if sep:
        raise ValueError("a blob URL must not carry a #fragment")
    if not params:
        return head
    extra = "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in params.items())
    if "?" not in head:
        return f"{head}?{extra}"
    if head.endswith(("?", "&")):
        return f"{head}{extra}"
    return f"{head}&{extra}"


def _parse_time(name: str, value: str, url: str) -> datetime:
    """ISO-8601 UTC as Azure writes it (``2024-01-01T00:00:00Z``, 7-digit fractions, date only)."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"SAS parameter {name}={value!r} is not an ISO-8601 time in {redact_url(url)}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def is_path_style_host(host: str) -> bool:
    """The emulator (IP literal or localhost) puts the account in the path; Azure uses the host."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class SasUrl:
    """A parsed blob (``sr=b``) or container (``sr=c``) SAS URL.

    ``base`` is scheme://host/path without the query; ``query`` is the SAS query exactly as
    given. ``container``/``blob`` come from the path (the account is skipped on path-style
    emulator URLs); ``blob`` is None for a URL naming only a container.
    """

    base: str
    query: str
    resource: str
    version: str
    permissions: str
    start: datetime | None
    expiry: datetime | None
    account: str | None
    container: str
    blob: str | None

    @classmethod
    def parse(cls, url: str) -> SasUrl:
        """Parse and check a SAS URL; ValueError (with the URL redacted) when it isn't one."""
        shown = redact_url(url)
        try:
            parts = urlsplit(url)
        except ValueError:
            raise ValueError(f"not a URL: {shown}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a SAS URL must be http(s)://host/…: {shown}")
        if parts.fragment:
            raise ValueError(f"a SAS URL must not carry a #fragment: {shown}")
        params: dict[str, str] = {}
        for name, value in _query_pairs(parts.query):
            if name in params:
                raise ValueError(f"SAS parameter {name!r} appears twice: {shown}")
            params[name] = value
        missing = [p for p in ("sv", "sig") if not params.get(p)]
        if missing:
            raise ValueError(
                f"not an Azure SAS URL (missing {' and '.join(repr(p) for p in missing)} in the query): {shown}"
            )
        resource = params.get("sr", "")
        if resource not in SAS_RESOURCES:
            kind = "an account SAS" if "ss" in params or "srt" in params else f"sr={resource!r}"
            raise ValueError(f"only blob (sr=b) and container (sr=c) SAS URLs are supported, got {kind}: {shown}")

        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        account = None
        if is_path_style_host(parts.hostname):
            if not segments or not segments[0]:
                raise ValueError(f"an emulator SAS URL needs /account/container in its path: {shown}")
            account, segments = segments[0], segments[1:]
        else:
            account = parts.hostname.split(".", 1)[0]
        if not segments or not segments[0]:
            raise ValueError(f"a SAS URL must name a container: {shown}")
        container = segments[0]
        blob = "/".join(segments[1:]) or None
        if resource == "b" and blob is None:
            raise ValueError(f"a blob SAS (sr=b) must name a blob after the container: {shown}")

        return cls(
            base=f"{parts.scheme}://{parts.netloc}{parts.path}",
            query=parts.query,
            resource=resource,
            version=params["sv"],
            permissions=params.get("sp", ""),
            start=_parse_time("st", params["st"], url) if params.get("st") else None,
            expiry=_parse_time("se", params["se"], url) if params.get("se") else None,
            account=account,
            container=container,
            blob=blob,
        )

    @property
    def url(self) -> str:
        """The full URL, secret included: only for the request itself, never for display."""
        return f"{self.base}?{self.query}"

    @property
    def is_blob(self) -> bool:
        """Whether the URL names a blob (a blob SAS, or a container SAS already given a blob)."""
        return self.blob is not None

    def with_params(self, extra: Mapping[str, object]) -> str:
        """The request URL with ``extra`` (e.g. ``comp=block``, ``blockid``) after the SAS query.

        Refuses to override a SAS parameter: a second ``sig`` or ``sv`` would change what the
        service verifies.
        """
        taken = {name.lower() for name, _ in _query_pairs(self.query)}
        clash = sorted(str(k) for k in extra if str(k).lower() in taken)
        if clash:
            raise ValueError(f"parameters {clash} are already in the SAS query of {self.redacted()}")
        return append_query(self.url, extra)

    def blob_url(self, name: str) -> SasUrl:
        """For a container SAS: the same SAS pointed at blob ``name`` (``/`` keeps virtual dirs)."""
        if self.resource != "c":
            raise ValueError(f"blob_url needs a container SAS (sr=c); this one is sr={self.resource}")
        if self.blob is not None:
            raise ValueError(f"this container SAS already names blob {self.blob!r}")
        if not name or name.startswith("/"):
            raise ValueError(f"invalid blob name {name!r}")
        return dataclasses.replace(self, base=self.base.rstrip("/") + "/" + quote(name, safe="/~"), blob=name)

    def redacted(self) -> str:
        """The URL with ``sig`` (and any other secret parameter) replaced by REDACTED."""
        return redact_url(self.url)

    def expires_within(self, delta: timedelta, *, now: datetime | None = None) -> bool:
        """True if the SAS expires within ``delta`` from ``now`` (or already has).

        A SAS without ``se`` (expiry held by a stored access policy) is reported as not
        expiring: we can't know, and the 403 refresh path covers it.
        """
        if self.expiry is None:
            return False
        now = now or datetime.now(UTC)
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return self.expiry - now <= delta

    def refused_hint(self) -> str:
        """Why the service may have refused this SAS, in words a person can act on."""
        if self.expiry is not None and self.expiry <= datetime.now(UTC):
            return f"the SAS URL expired at {self.expiry.isoformat()}"
        return f"the SAS URL was refused: expired, wrong signature or missing permission (sp={self.permissions})"

    def __repr__(self) -> str:
        return f"SasUrl({self.redacted()!r})"

    __str__ = __repr__


class SasKey(NamedTuple):
    """Which SAS URL a request of a task needs: the task's URL (the SAS itself when a plugin has no source) and the
    task's file name (the blob a container SAS is pointed at, unless the plugin names one)."""

    task_url: str
    file_name: str

    @classmethod
    def of(cls, task: TransferTask) -> SasKey:
        return cls(task.url, task.file_name)


class SasSource:
    """Where a SAS plugin gets its URL: fixed, the task's own URL (``source=None``), or a callable's, leased (asked
    at first use, renewed once for all the requests refused with one URL)."""

    def __init__(self, source: SasUrlSource | None, blob_name: str | None) -> None:
        if isinstance(source, str):
            SasUrl.parse(source)  # fail fast on a string that is no SAS (the message is redacted)
        elif source is not None and not callable(source):
            raise TypeError("sas_url must be a SAS URL string or a callable returning one")
        if blob_name is not None and (not blob_name or blob_name.startswith("/")):
            raise ValueError(f"invalid blob name {blob_name!r}")
        self._source = source
        self._blob_name = blob_name
        self._leases = Leases(self._ask, what="SAS URL") if callable(source) else None

    def describe(self) -> str:
        if self._source is None:
            return "task URL"
        if isinstance(self._source, str):
            return redact_url(self._source)
        return "callable"

    async def current(self, key: SasKey) -> tuple[SasUrl, int | None]:
        """The URL to use now and its lease's generation (None: a fixed URL, which is never renewed)."""
        if self._leases is None:
            return self._resolve(key.task_url if self._source is None else str(self._source), key), None
        lease = await self._leases.get(key)
        return lease.value, lease.generation

    async def renew(self, key: SasKey, generation: int | None) -> bool:
        """After a refusal of the URL of ``generation``: True when a fresh one (maybe a parallel request's) is
        there to try."""
        if self._leases is None:
            return False
        await self._leases.renew(key, generation)
        return True

    async def _ask(self, key: SasKey) -> SasUrl:
        assert callable(self._source)
        try:
            value = self._source()
            if inspect.isawaitable(value):
                value = await value
        except MeowError:
            raise
        except Exception as exc:  # the caller's backend failed: worth another attempt, like a network error
            raise MeowError(InnerErrorCode.HTTP_ERROR, f"the SAS URL source failed: {type(exc).__name__}: "
                            f"{redact_text(str(exc))}") from None
        if not isinstance(value, str):
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY,
                            f"the SAS URL source returned {type(value).__name__}, not a URL string", retryable=False)
        return self._resolve(value, key)

    def _resolve(self, url: str, key: SasKey) -> SasUrl:
        """The SAS URL of the blob: a container SAS is pointed at the plugin's blob name, else the task's file."""
        try:
            sas = SasUrl.parse(url)
            return sas.blob_url(self._blob_name or key.file_name) if sas.blob is None else sas
        except ValueError as exc:  # SasUrl's messages are already redacted
            raise MeowError(InnerErrorCode.PARAMETER_EMPTY, str(exc), retryable=False) from None
