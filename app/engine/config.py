"""Client configuration: immutable, validated when built, so a bad value fails at once and clearly."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from app.engine.errors import InnerErrorCode, MeowError
from app.engine.network import SYSTEM, Network, check_ca_bundle, check_proxy_setting, redact_proxy_url

if TYPE_CHECKING:
    import httpx


class RangeIgnoredPolicy(Enum):
    """What a download does when a server answers a ranged GET with 200 and the whole body."""

    RESTART = "restart"  # start again from byte 0 as one stream (truncating first): slower, never corrupt
    FAIL = "fail"  # fail with InvalidRange and keep the partial file for a later attempt


@dataclass(frozen=True)
class BreakpointDownloadHttpConfig:
    range_accept: str = "application/octet-stream"
    range_ignored: RangeIgnoredPolicy = RangeIgnoredPolicy.RESTART

    def __post_init__(self) -> None:
        if not self.range_accept or any(c in self.range_accept for c in "\r\n\0"):
            raise MeowError(InnerErrorCode.INVALID_CONFIG, f"range_accept is not a valid header value: "
                            f"{self.range_accept!r}")


def _seconds(value: float | timedelta) -> float:
    """timedelta → seconds; anything else unchanged, for _check_seconds to judge (and name the field)."""
    return value.total_seconds() if isinstance(value, timedelta) else value  # type: ignore[return-value]


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise MeowError(InnerErrorCode.INVALID_CONFIG, f"{name} must be an integer in {lo}..={hi}, got {value!r}")


def _check_seconds(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise MeowError(InnerErrorCode.INVALID_CONFIG, f"{name} must be between {lo} s and {hi} s, got {value!r}")


@dataclass(frozen=True)
class MeowConfig:
    """Every field of the seed's MeowConfig plus Rusty Cat's additions (chunk concurrency, rate limit …).

    ``http_timeout`` is a per-socket-operation (connect/read/write) timeout, never a whole-request one, so a
    large chunk on a slow link does not time out while bytes keep flowing. ``worker_event_queue_capacity`` is
    validated and kept for compatibility only: transfers run on the scheduler's own loop and report to it by
    direct calls, so there is no worker-event queue to bound (callback backlog is bounded by coalescing).
    """

    max_upload_concurrency: int = 2
    max_download_concurrency: int = 2
    breakpoint_download_http: BreakpointDownloadHttpConfig = field(default_factory=BreakpointDownloadHttpConfig)
    http_client: httpx.AsyncClient | None = None
    http_timeout: float = 5.0
    tcp_keepalive: float = 30.0
    command_queue_capacity: int = 128
    worker_event_queue_capacity: int = 256
    # Rusty Cat additions
    max_chunk_concurrency: int = 4
    rate_limit: int | None = None  # bytes/second for all tasks together; None = unlimited
    progress_interval: float = 0.1  # at most one Transmission record per task per interval (last one always)
    retry_base_delay: float = 0.2
    retry_max_delay: float = 5.0
    max_retry_after: float = 60.0
    #: "system" (the environment's proxy variables, as curl reads them), "none", or a proxy URL
    #: (``http://[user:password@]host:port``, ``socks5://``, ``socks5h://``). Ignored with an injected client.
    proxy: str = SYSTEM
    #: Hosts that bypass the proxy (curl's no_proxy syntax); None: the environment's ``no_proxy``.
    no_proxy: str | None = None
    #: A PEM file of CA certificates trusted in addition to the system's (a private CA, an office proxy's).
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "http_timeout", _seconds(self.http_timeout))
        object.__setattr__(self, "tcp_keepalive", _seconds(self.tcp_keepalive))
        _check_int("max_upload_concurrency", self.max_upload_concurrency, 1, 1024)
        _check_int("max_download_concurrency", self.max_download_concurrency, 1, 1024)
        _check_int("command_queue_capacity", self.command_queue_capacity, 1, 1_000_000)
        _check_int("worker_event_queue_capacity", self.worker_event_queue_capacity, 1, 1_000_000)
        _check_int("max_chunk_concurrency", self.max_chunk_concurrency, 1, 64)
        _check_seconds("http_timeout", self.http_timeout, 0.001, 3600)
        _check_seconds("tcp_keepalive", self.tcp_keepalive, 1, 7200)
        object.__setattr__(self, "progress_interval", _seconds(self.progress_interval))
        _check_seconds("progress_interval", self.progress_interval, 0, 60)
        _check_seconds("retry_base_delay", self.retry_base_delay, 0, 60)
        _check_seconds("retry_max_delay", self.retry_max_delay, self.retry_base_delay, 3600)
        _check_seconds("max_retry_after", self.max_retry_after, 0, 86400)
        if self.rate_limit is not None:
            _check_int("rate_limit", self.rate_limit, 1, 1 << 50)
        object.__setattr__(self, "proxy", check_proxy_setting(self.proxy))
        if self.no_proxy is not None and not isinstance(self.no_proxy, str):
            raise MeowError(InnerErrorCode.INVALID_CONFIG, "no_proxy must be a comma-separated list of hosts")
        object.__setattr__(self, "ca_bundle", check_ca_bundle(self.ca_bundle))
        if not isinstance(self.breakpoint_download_http, BreakpointDownloadHttpConfig):
            raise MeowError(InnerErrorCode.INVALID_CONFIG, "breakpoint_download_http must be a "
                            "BreakpointDownloadHttpConfig")

    @classmethod
    def new(cls, max_upload_concurrency: int, max_download_concurrency: int) -> MeowConfig:
        return cls(max_upload_concurrency=max_upload_concurrency, max_download_concurrency=max_download_concurrency)

    @classmethod
    def builder(cls) -> MeowConfigBuilder:
        return MeowConfigBuilder()

    def replace(self, **changes: Any) -> MeowConfig:
        return dataclasses.replace(self, **changes)

    def network(self, environ: Mapping[str, str] | None = None) -> Network:
        """The proxy rules (the environment read now) and the TLS setup of this configuration."""
        return Network(self.proxy, self.no_proxy, self.ca_bundle, environ)

    def __repr__(self) -> str:  # keep the injected client and a proxy's password out of reprs and logs
        shown = ", ".join(
            f"{f.name}={redact_proxy_url(self.proxy)!r}" if f.name == "proxy" else f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self) if f.name != "http_client")
        client = "None" if self.http_client is None else ".."
        return f"MeowConfig({shown}, http_client={client})"


class MeowConfigBuilder:
    """Chainable builder; ``build()`` validates every value and raises MeowError(INVALID_CONFIG) on a bad one."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def _set(self, name: str, value: Any) -> MeowConfigBuilder:
        self._values[name] = value
        return self

    def max_upload_concurrency(self, n: int) -> MeowConfigBuilder:
        return self._set("max_upload_concurrency", n)

    def max_download_concurrency(self, n: int) -> MeowConfigBuilder:
        return self._set("max_download_concurrency", n)

    def breakpoint_download_http(self, config: BreakpointDownloadHttpConfig) -> MeowConfigBuilder:
        return self._set("breakpoint_download_http", config)

    def http_client(self, client: httpx.AsyncClient) -> MeowConfigBuilder:
        return self._set("http_client", client)

    def http_timeout(self, timeout: float | timedelta) -> MeowConfigBuilder:
        return self._set("http_timeout", timeout)

    def tcp_keepalive(self, keepalive: float | timedelta) -> MeowConfigBuilder:
        return self._set("tcp_keepalive", keepalive)

    def command_queue_capacity(self, n: int) -> MeowConfigBuilder:
        return self._set("command_queue_capacity", n)

    def worker_event_queue_capacity(self, n: int) -> MeowConfigBuilder:
        return self._set("worker_event_queue_capacity", n)

    def max_chunk_concurrency(self, n: int) -> MeowConfigBuilder:
        return self._set("max_chunk_concurrency", n)

    def rate_limit(self, bytes_per_second: int | None) -> MeowConfigBuilder:
        return self._set("rate_limit", bytes_per_second)

    def progress_interval(self, seconds: float | timedelta) -> MeowConfigBuilder:
        return self._set("progress_interval", seconds)

    def retry_delays(self, base: float, maximum: float) -> MeowConfigBuilder:
        self._set("retry_base_delay", base)
        return self._set("retry_max_delay", maximum)

    def max_retry_after(self, seconds: float) -> MeowConfigBuilder:
        return self._set("max_retry_after", seconds)

    def proxy(self, setting: str, no_proxy: str | None = None) -> MeowConfigBuilder:
        """``"system"``, ``"none"`` or a proxy URL, and optionally the hosts that bypass it."""
        self._set("no_proxy", no_proxy)
        return self._set("proxy", setting)

    def ca_bundle(self, path: str | None) -> MeowConfigBuilder:
        return self._set("ca_bundle", path)

    def build(self) -> MeowConfig:
        return MeowConfig(**self._values)
