"""Where a request goes and whom it trusts: proxies (as curl reads them, or set explicitly) and TLS certificates.

One :class:`Network` per client serves both of the engine's HTTP stacks, so a proxy or a private CA applies to every
request, bodies included: the bulk data path (:mod:`app.engine.wire`) and the httpx client that carries probes and
control requests (:mod:`app.engine.http`).

Proxies from the environment follow curl (``man curl``, ENVIRONMENT):

* ``http_proxy`` for http URLs, ``https_proxy`` for https URLs, ``all_proxy`` for both when the specific one is not
  set; each also in upper case, the lower-case name winning. Upper-case ``HTTP_PROXY`` is ignored when
  ``REQUEST_METHOD`` is set: in a CGI program it can come from a request header ("httpoxy"), as Python's own
  ``urllib`` refuses it there.
* ``no_proxy`` / ``NO_PROXY``: comma-separated host names (each matching the host and its subdomains; a leading dot
  or ``*.`` is allowed), IP addresses, CIDR ranges, an optional ``:port``, or ``*`` for every host.
* A proxy URL without a scheme is ``http://``. ``socks5://`` resolves names locally, ``socks5h://`` at the proxy.
  ``user:password@`` in a proxy URL is sent as Proxy-Authorization (Basic) and is a secret: it never reaches a repr,
  a log line or an error.

An explicit setting overrides the environment: ``"none"`` (direct), or a proxy URL (with an optional bypass list;
without one, the environment's ``no_proxy`` still applies, as with ``curl --proxy``).

Certificates: the system's trust store (OpenSSL's default paths on Linux, the system store on Windows; certifi's
bundle where Python finds no system certificates at all, as in some frozen builds), plus a CA bundle the user names
(PEM) *added* to it, so a private CA works without losing the public ones.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote, urlsplit

from app.engine.errors import InnerErrorCode, MeowError

#: The explicit proxy choices besides a URL.
SYSTEM = "system"
NO_PROXY = "none"

PROXY_SCHEMES = frozenset({"http", "socks5", "socks5h"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}


class ProxyKind(Enum):
    HTTP = "http"  # absolute-form requests for http, CONNECT tunnels for https
    SOCKS5 = "socks5"  # names resolved here
    SOCKS5H = "socks5h"  # names resolved by the proxy


@dataclass(frozen=True)
class Proxy:
    """One proxy server. ``repr`` and :meth:`display` never show the password."""

    kind: ProxyKind
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """A proxy URL as curl takes it (a missing scheme means http); MeowError(INVALID_CONFIG) if unusable."""
        text = url.strip()
        if "://" not in text:
            text = "http://" + text
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise MeowError(InnerErrorCode.INVALID_CONFIG, f"invalid proxy URL {redact_proxy_url(url)!r}: "
                            f"{exc}") from None
        scheme = parts.scheme.lower()
        if scheme == "https":
            raise MeowError(InnerErrorCode.INVALID_CONFIG, "an https:// proxy (TLS to the proxy itself) is not "
                            "supported: use http://HOST:PORT (HTTPS sites still go through it encrypted, by CONNECT)")
        if scheme not in PROXY_SCHEMES:
            raise MeowError(InnerErrorCode.INVALID_CONFIG, f"unsupported proxy scheme {scheme!r} in "
                            f"{redact_proxy_url(url)!r} (use http://, socks5:// or socks5h://)")
        if not parts.hostname:
            raise MeowError(InnerErrorCode.INVALID_CONFIG, f"proxy URL {redact_proxy_url(url)!r} names no host")
        return cls(ProxyKind(scheme), parts.hostname, port or _DEFAULT_PORTS[scheme],
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password is not None else None)

    @property
    def url(self) -> str:
        """The proxy's URL with its credentials (a secret: never log it; :meth:`display` is the loggable form)."""
        auth = ""
        if self.username is not None:
            from urllib.parse import quote

            auth = quote(self.username, safe="") + (":" + quote(self.password or "", safe="")
                                                    if self.password is not None else "") + "@"
        return f"{self.kind.value}://{auth}{_host_for_url(self.host)}:{self.port}"

    def display(self) -> str:
        auth = "REDACTED@" if self.username is not None else ""
        return f"{self.kind.value}://{auth}{_host_for_url(self.host)}:{self.port}"

    def authorization(self) -> str | None:
        """The Proxy-Authorization header value (Basic), or None without credentials."""
        if self.username is None:
            return None
        token = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(token).decode("ascii")

    def __repr__(self) -> str:
        return f"Proxy({self.display()})"

    __str__ = display


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def redact_proxy_url(url: str) -> str:
    """A proxy URL fit for a message: its userinfo replaced."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    host = rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}REDACTED@{host}"


@dataclass(frozen=True)
class _Bypass:
    """One ``no_proxy`` entry."""

    host: str | None = None  # a name: matches itself and its subdomains
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(host) in self.network
            except ValueError:
                return False
        assert self.host is not None
        return host == self.host or host.endswith("." + self.host)


def parse_no_proxy(text: str) -> tuple[bool, tuple[_Bypass, ...]]:
    """``(everything, entries)`` from a no_proxy list; malformed entries are skipped, as curl does."""
    entries: list[_Bypass] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        if item == "*":
            return True, ()
        if item.startswith("*."):
            item = item[2:]
        item = item.lstrip(".")
        port: int | None = None
        host = item
        if item.startswith("["):  # [v6]:port or [v6]
            end = item.find("]")
            if end < 0:
                continue
            host, rest = item[1:end], item[end + 1:]
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif item.count(":") == 1:
            name, _, digits = item.partition(":")
            if digits.isdigit():
                host, port = name, int(digits)
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            network = None
        if network is not None:
            entries.append(_Bypass(network=network, port=port))
        elif host:
            entries.append(_Bypass(host=host.rstrip("."), port=port))
    return False, tuple(entries)


def _env(environ: Mapping[str, str], name: str) -> str | None:
    """The lower-case variable, else the upper-case one (not HTTP_PROXY in a CGI program); empty means unset."""
    value = environ.get(name)
    if not value and not (name == "http_proxy" and environ.get("REQUEST_METHOD")):
        value = environ.get(name.upper())
    return value.strip() if value and value.strip() else None


@dataclass(frozen=True)
class ProxyRules:
    """Which proxy serves which URL: resolved once from the setting and the environment."""

    http: Proxy | None = None
    https: Proxy | None = None
    bypass_all: bool = False
    bypass: tuple[_Bypass, ...] = ()

    @classmethod
    def resolve(cls, setting: str = SYSTEM, no_proxy: str | None = None,
                environ: Mapping[str, str] | None = None) -> ProxyRules:
        """The rules for a proxy setting (``"system"``, ``"none"`` or a URL) and an optional bypass list (None:
        the environment's ``no_proxy``). MeowError(INVALID_CONFIG) on a malformed URL, naming where it came from."""
        env = os.environ if environ is None else environ
        choice = (setting or SYSTEM).strip()
        if choice.lower() == NO_PROXY:
            return cls()
        if choice.lower() == SYSTEM:
            http_url = _env(env, "http_proxy") or _env(env, "all_proxy")
            https_url = _env(env, "https_proxy") or _env(env, "all_proxy")
            http = _from_env(http_url)
            https = _from_env(https_url)
        else:
            http = https = Proxy.parse(choice)
        bypass_text = no_proxy if no_proxy is not None else (_env(env, "no_proxy") or "")
        everything, entries = parse_no_proxy(bypass_text)
        return cls(http, https, everything, entries)

    def for_url(self, scheme: str, host: str, port: int | None) -> Proxy | None:
        """The proxy for one request, or None to go direct."""
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or self.bypass_all:
            return None
        name = host.lower().rstrip(".").strip("[]")
        real_port = port or _DEFAULT_PORTS.get(scheme, 80)
        if any(b.matches(name, real_port) for b in self.bypass):
            return None
        return proxy

    @property
    def any(self) -> bool:
        return (self.http is not None or self.https is not None) and not self.bypass_all

    def describe(self) -> str:
        if not self.any:
            return "direct"
        parts = []
        if self.http is not None:
            parts.append(f"http via {self.http.display()}")
        if self.https is not None:
            parts.append(f"https via {self.https.display()}")
        return ", ".join(parts)


def _from_env(url: str | None) -> Proxy | None:
    if url is None:
        return None
    try:
        return Proxy.parse(url)
    except MeowError as err:
        raise MeowError(InnerErrorCode.INVALID_CONFIG, f"proxy from the environment: {err.msg}") from None


def check_proxy_setting(setting: str) -> str:
    """Validate a proxy setting (``"system"``, ``"none"`` or a URL) and return it; MeowError(INVALID_CONFIG)."""
    if not isinstance(setting, str) or not setting.strip():
        raise MeowError(InnerErrorCode.INVALID_CONFIG, "proxy must be 'system', 'none' or a proxy URL")
    if setting.strip().lower() not in (SYSTEM, NO_PROXY):
        Proxy.parse(setting)
    return setting.strip()


def check_ca_bundle(path: str | None) -> str | None:
    """A readable PEM file of CA certificates, or None. Checked when the config is built, so a wrong path is a clear
    error at once rather than a certificate failure on the first transfer."""
    if path is None:
        return None
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise MeowError(InnerErrorCode.INVALID_CONFIG, "ca_bundle must be the path of a PEM file")
    text = os.fspath(path)
    if not os.path.isfile(text):
        raise MeowError(InnerErrorCode.INVALID_CONFIG, f"CA bundle not found: {text}")
    return text


def user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version  # ~10 ms of imports: only when a client is made

    try:
        return f"rusty-cat/{version('rusty-cat')}"
    except PackageNotFoundError:
        return "rusty-cat/dev"


class Network:
    """The proxy rules and the TLS context of one client, shared by its threads (the context is built once, lazily:
    loading the system's certificates costs 10-30 ms that a plain-http transfer need not pay)."""

    def __init__(self, proxy: str = SYSTEM, no_proxy: str | None = None, ca_bundle: str | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.rules = ProxyRules.resolve(proxy, no_proxy, environ)
        self.ca_bundle = ca_bundle
        self._ssl: ssl.SSLContext | None = None
        self._ssl_lock = threading.Lock()

    def ssl_context(self) -> ssl.SSLContext:
        with self._ssl_lock:
            if self._ssl is None:
                self._ssl = build_ssl_context(self.ca_bundle)
            return self._ssl

    def proxy_for(self, scheme: str, host: str, port: int | None) -> Proxy | None:
        return self.rules.for_url(scheme, host, port)


def build_ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """Verify against the system's store, plus ``ca_bundle`` (PEM) when given; certifi's bundle when the system store
    is empty. HTTP/1.1 only (ALPN), TLS 1.2 at least."""
    ctx = ssl.create_default_context()
    if not ctx.get_ca_certs() and not _has_default_verify_paths():
        try:
            import certifi

            ctx.load_verify_locations(cafile=certifi.where())
        except (ImportError, OSError):  # pragma: no cover - no system store and no certifi
            pass
    if ca_bundle:
        try:
            ctx.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise MeowError(InnerErrorCode.INVALID_CONFIG, f"cannot load the CA bundle {ca_bundle}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _has_default_verify_paths() -> bool:
    """Whether OpenSSL's default CA file or directory exists (the store may hold certificates that
    ``get_ca_certs`` only lists once used, for a hashed directory)."""
    paths = ssl.get_default_verify_paths()
    return bool((paths.cafile and os.path.exists(paths.cafile)) or (paths.capath and os.path.isdir(paths.capath)
                                                                     and os.listdir(paths.capath)))
