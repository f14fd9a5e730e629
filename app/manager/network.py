"""Network settings of the application: which proxy, which hosts bypass it, which extra CA certificates.

Why a type of its own rather than MeowConfig's three strings: people describe a proxy as a choice (follow the
system, none, or this one), an address, a user name and a password, and the password is a secret. A
:class:`NetworkSettings` holds everything *but* the password, so it may be stored with the other preferences
(QSettings today, the manager's settings store later), compared, logged and shown in a repr. The password lives in
the OS keyring under :data:`PROXY_PASSWORD_KEY` (or, for one CLI run, in memory) and joins the proxy URL only in
:meth:`NetworkSettings.engine_options`, whose result goes straight into a MeowConfig (whose repr redacts it).

:class:`HttpClients` builds the httpx clients of the manager's own requests (connection tests, the file-name probe,
the presign service) through the engine's public helper, so they take the same route as the transfers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    import httpx

    from app.engine.api import MeowConfig
    from app.engine.network import Network

__all__ = [
    "PROXY_PASSWORD_KEY",
    "HttpClients",
    "NetworkSettings",
    "NetworkSettingsError",
    "ProxyMode",
    "check_ca_bundle_file",
    "scrub_password",
    "split_proxy_url",
]

#: Keyring key of the manual proxy's password (service "rusty-cat", as every secret of the app).
PROXY_PASSWORD_KEY = "network:proxy"

#: Larger than any real CA bundle (the system's is ~200 KiB); keeps a wrong pick (a video) from being read whole.
MAX_CA_BUNDLE_BYTES = 16 * 1024 * 1024
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_CONTROL = frozenset(chr(c) for c in range(0x20)) | {"\x7f"}


class NetworkSettingsError(ValueError):
    """A network setting that cannot work; the message is a sentence for a person (never with a password)."""


class ProxyMode(StrEnum):
    """How requests find their proxy."""

    SYSTEM = "system"  # the environment's http_proxy/https_proxy/all_proxy/no_proxy, as curl reads them
    NONE = "none"  # always direct
    MANUAL = "manual"  # the proxy in NetworkSettings.proxy_url


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise NetworkSettingsError(f"{what} must be text")
    return value.strip()


def split_proxy_url(url: str) -> tuple[str, str, str | None]:
    """``(address, user, password)`` of a proxy URL as curl takes it (``[scheme://][user[:password]@]host[:port]``,
    a missing scheme meaning ``http://``); the address never carries credentials. Raises NetworkSettingsError for
    text that is not a proxy address, without repeating the password."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number or out of range)
    except ValueError:
        raise NetworkSettingsError(f"not a proxy address: {_without_userinfo(url)!r}") from None
    if not parts.hostname:
        raise NetworkSettingsError(f"the proxy address names no host: {_without_userinfo(url)!r}")
    host = parts.netloc.rsplit("@", 1)[-1]
    user = unquote(parts.username) if parts.username else ""
    password = unquote(parts.password) if parts.password is not None else None
    return f"{parts.scheme.lower()}://{host}", user, password


def _without_userinfo(url: str) -> str:
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        scheme, rest = "", url.strip()
    if "@" in rest.split("/", 1)[0]:
        rest = "REDACTED@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


@dataclass(frozen=True)
class NetworkSettings:
    """Proxy and certificate settings, without the proxy password (see the module docstring).

    * ``proxy_mode``: :class:`ProxyMode`.
    * ``proxy_url``: with MANUAL, ``http://host:port``, ``socks5://host:port`` or ``socks5h://host:port`` (no
      credentials: the user name is ``proxy_user``, the password a secret of its own).
    * ``no_proxy``: hosts that bypass the proxy, in curl's syntax (``example.com, .internal, 10.0.0.0/8, *``);
      None: the environment's ``no_proxy``.
    * ``ca_bundle``: a PEM file of CA certificates trusted *in addition to* the system's; None: the system's only.
    """

    proxy_mode: ProxyMode = ProxyMode.SYSTEM
    proxy_url: str = ""
    proxy_user: str = ""
    no_proxy: str | None = None
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        try:
            mode = ProxyMode(self.proxy_mode)
        except ValueError:
            raise NetworkSettingsError(f"unknown proxy mode {self.proxy_mode!r} (system, none or manual)") from None
        object.__setattr__(self, "proxy_mode", mode)
        object.__setattr__(self, "proxy_url", _text(self.proxy_url, "the proxy address"))
        object.__setattr__(self, "proxy_user", _text(self.proxy_user, "the proxy user name"))
        if self.no_proxy is not None:
            object.__setattr__(self, "no_proxy", _text(self.no_proxy, "the bypass list"))
        if self.ca_bundle is not None:
            object.__setattr__(self, "ca_bundle", _text(self.ca_bundle, "the CA bundle") or None)

    # ------------------------------------------------------------------ reading and checking
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> NetworkSettings:
        """From stored values (``proxy_mode``, ``proxy_url``, ``proxy_user``, ``no_proxy``, ``ca_bundle``); missing
        keys take their defaults. Raises NetworkSettingsError for a value of the wrong kind."""
        known = {k: values[k] for k in ("proxy_mode", "proxy_url", "proxy_user", "no_proxy", "ca_bundle")
                 if k in values}
        return cls(**known)

    def as_mapping(self) -> dict[str, str | None]:
        """The values to store (no secret among them)."""
        return {"proxy_mode": self.proxy_mode.value, "proxy_url": self.proxy_url, "proxy_user": self.proxy_user,
                "no_proxy": self.no_proxy, "ca_bundle": self.ca_bundle}

    @property
    def uses_password(self) -> bool:
        """Whether requests need the proxy password (a manual proxy with a user name)."""
        return self.proxy_mode is ProxyMode.MANUAL and bool(self.proxy_user)

    def check(self) -> None:
        """Everything that can be checked without touching files or the network; NetworkSettingsError otherwise.
        The CA bundle's content is checked by :func:`check_ca_bundle_file` (blocking: in a worker thread)."""
        if self.proxy_mode is ProxyMode.MANUAL:
            if not self.proxy_url:
                raise NetworkSettingsError("enter the proxy's address (e.g. http://proxy.example.com:3128), or "
                                           "choose to follow the system or to use no proxy")
            if "@" in self.proxy_url.split("://", 1)[-1].split("/", 1)[0]:
                raise NetworkSettingsError("the proxy address contains a user name or password: enter them in "
                                           "their own fields, so the password is kept in the keyring")
            address, _user, _password = split_proxy_url(self.proxy_url)
            path = urlsplit(self.proxy_url if "://" in self.proxy_url else "http://" + self.proxy_url)
            if path.path not in ("", "/") or path.query or path.fragment:
                raise NetworkSettingsError(f"a proxy address is scheme://host:port, without a path: "
                                           f"{self.proxy_url!r}")
            _check_engine(proxy=address)
        if any(c in _CONTROL or c == ":" for c in self.proxy_user):
            raise NetworkSettingsError("the proxy user name cannot contain ':' or control characters")
        if self.no_proxy is not None and any(c in _CONTROL for c in self.no_proxy):
            raise NetworkSettingsError("the bypass list must be one line of comma-separated hosts")
        if self.ca_bundle is not None and any(c in _CONTROL for c in self.ca_bundle):
            raise NetworkSettingsError("the CA bundle path contains control characters")

    def engine_options(self, password: str | None = None) -> dict[str, str | None]:
        """MeowConfig's ``proxy``, ``no_proxy`` and ``ca_bundle`` for these settings and the proxy password (which
        ends up inside the ``proxy`` value: hand the result to MeowConfig only, whose repr redacts it)."""
        if self.proxy_mode is ProxyMode.NONE:
            proxy = "none"
        elif self.proxy_mode is ProxyMode.SYSTEM:
            proxy = "system"
        else:
            address, _user, _password = split_proxy_url(self.proxy_url)
            proxy = address
            if self.proxy_user:
                scheme, _, host = address.partition("://")
                auth = quote(self.proxy_user, safe="")
                if password:
                    auth += ":" + quote(password, safe="")
                proxy = f"{scheme}://{auth}@{host}"
        return {"proxy": proxy, "no_proxy": self.no_proxy, "ca_bundle": self.ca_bundle}

    def describe(self) -> str:
        """A short, secret-free description for a status line or a log."""
        if self.proxy_mode is ProxyMode.NONE:
            where = "no proxy"
        elif self.proxy_mode is ProxyMode.SYSTEM:
            where = "the system's proxy settings"
        else:
            where = f"proxy {self.proxy_url}" + (f" as {self.proxy_user}" if self.proxy_user else "")
        if self.no_proxy:
            where += f" (bypassed for {self.no_proxy})"
        if self.ca_bundle:
            where += f"; extra CA certificates from {self.ca_bundle}"
        return where


def _check_engine(**options: str | None) -> None:
    """Let the engine judge a value as MeowConfig will (one set of rules); its message is already redacted."""
    from app.engine.api import MeowConfig, MeowError

    try:
        MeowConfig(**options)  # type: ignore[arg-type]
    except MeowError as err:
        raise NetworkSettingsError(err.msg) from None


def check_ca_bundle_file(path: str) -> str:
    """The absolute path of a readable PEM file holding at least one certificate, or NetworkSettingsError saying
    what is wrong. Blocking (reads the file): call it in a worker thread from an event loop."""
    text = _text(path, "the CA bundle")
    if not text:
        raise NetworkSettingsError("choose a CA bundle file (PEM)")
    full = os.path.abspath(os.path.expanduser(text))
    if not os.path.exists(full):
        raise NetworkSettingsError(f"CA bundle not found: {full}")
    if os.path.isdir(full):
        raise NetworkSettingsError(f"{full} is a folder: choose the PEM file of the CA certificates")
    try:
        with open(full, "rb") as f:
            data = f.read(MAX_CA_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise NetworkSettingsError(f"cannot read the CA bundle {full}: {exc.strerror or exc}") from None
    if len(data) > MAX_CA_BUNDLE_BYTES:
        raise NetworkSettingsError(f"{full} is too large to be a CA bundle")
    if _PEM_CERT not in data:
        raise NetworkSettingsError(f"{full} holds no PEM certificate (a '-----BEGIN CERTIFICATE-----' block); "
                                   "convert a DER (.cer/.crt) file with: openssl x509 -inform der -in CA.cer -out "
                                   "CA.pem")
    import ssl  # only here: loading certificates is the check that matters, and few runs need it

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cadata=data.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError) as exc:
        raise NetworkSettingsError(f"{full} is not a valid PEM file of certificates "
                                   f"({getattr(exc, 'reason', None) or exc})") from None
    if ctx.cert_store_stats().get("x509", 0) < 1:
        raise NetworkSettingsError(f"{full} holds no certificate")
    return full


def scrub_password(text: str, password: str | None) -> str:
    """``text`` without ``password`` in any of the forms a URL or a header could carry it."""
    if not password:
        return text
    import base64

    for form in {password, quote(password, safe=""), quote(password)}:
        text = text.replace(form, "REDACTED")
    for user_part in ("", ":"):
        encoded = base64.b64encode(f"{user_part}{password}".encode()).decode()
        text = text.replace(encoded, "REDACTED")
    return text


class HttpClients:
    """Builds the httpx clients of the manager's own requests through the current network settings.

    One proxy resolution (the environment is read once) and one lazily built TLS context per configuration are
    shared by every client made until the settings change, so a probe of an http URL never loads certificates and
    many presign-service calls do not each load them again. Safe to call from any thread or loop: each client is
    used and closed by its caller on the caller's loop.
    """

    def __init__(self, config: MeowConfig | None = None) -> None:
        self._config = config
        self._network: Network | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: NetworkSettings, password: str | None = None) -> HttpClients:
        """Clients through ``settings`` (checked; NetworkSettingsError otherwise) without a manager, e.g. for the
        CLI's ``accounts test``; ``password`` is the proxy password, if any."""
        from app.engine.api import MeowConfig, MeowError

        settings.check()
        try:
            return cls(MeowConfig(**settings.engine_options(password)))  # type: ignore[arg-type]
        except MeowError as err:
            raise NetworkSettingsError(scrub_password(err.msg, password)) from None

    def use(self, config: MeowConfig) -> None:
        """Clients made from now on follow ``config``'s proxy and CA bundle."""
        with self._lock:
            self._config, self._network = config, None

    def __call__(self, timeout: float) -> httpx.AsyncClient:
        """A new client (the caller closes it); ``timeout`` bounds each connect/read/write."""
        from app.engine.api import MeowConfig, new_http_client

        with self._lock:
            if self._config is None:
                self._config = MeowConfig()
            if self._network is None:
                self._network = self._config.network()
            config, network = self._config, self._network
        return new_http_client(config, timeout, network=network)

    def __repr__(self) -> str:
        return f"HttpClients({self._config!r})"
