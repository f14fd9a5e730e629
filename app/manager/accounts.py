"""Accounts: named storage profiles, and what a remote (``oss://``, ``azure://``, a URL) means in terms of them.

Non-secret fields live in the history database (table ``accounts``); the secret (OSS AccessKey secret, Azure
account key or SAS token, presign-service token, HTTP bearer token/password) lives in the OS keyring through
:mod:`app.manager.secrets` only, under ``"account:<name>"``. A profile never exists without its secret: the
secret is stored first and the row second (except :attr:`Auth.NONE`, which has none), and removal deletes the row
first. Accounts of the older CLI (``accounts.json`` in the user config folder) are imported once, on first use;
their secrets are already in the keyring under the same key, so only the file is renamed
(``accounts.json.imported``).

Remotes (:func:`resolve_remote`) become a :class:`Target`: the URL the engine task carries (its identity and
display name; never a secret), the provider plugin, and extra request headers (an HTTP account's Authorization;
secret, so the manager keeps them out of the history).

* ``oss://ACCOUNT/bucket/key``: AccessKey accounts sign every request (V4); presign-service accounts ask the
  service for each request's URL (protocol below).
* ``azure://ACCOUNT/container/blob``: Shared Key accounts sign; SAS accounts append the stored container SAS to
  the blob URL (the task URL stays the plain blob URL).
* ``https://…?sv=…&sig=…`` (Azure SAS URL), ``https://…?x-oss-signature=…`` (OSS presigned GET, download only),
  any other http(s) URL: plain, plus ``Authorization`` when an HTTP account's endpoint covers the URL (same
  scheme, host and port, and the endpoint's path is a prefix of the URL's path; the longest prefix wins).

Presign service protocol (Auth.PRESIGN_SERVICE; the account's endpoint is the service URL, its secret a token)
----------------------------------------------------------------------------------------------------------------
The app never holds OSS credentials; a service the user runs (their backend) signs each request for it.

* ``POST {endpoint}`` with ``Authorization: Bearer <token>``, ``Content-Type: application/json`` and the body
  ``{"op": OP, "bucket": "b", "key": "k", "part_number": N or null, "upload_id": "id" or null}``, where OP is one of
  ``get`` (ranged GETs of a download; sign with ``x-oss-range-behavior: standard`` if you can), ``head``,
  ``initiate`` (POST ``?uploads``), ``upload_part`` (PUT ``?partNumber=N&uploadId=id``), ``complete`` (POST
  ``?uploadId=id``) and ``abort`` (DELETE ``?uploadId=id``).
* Answer ``200`` with ``{"url": "https://…presigned…", "headers": {"name": "value", …}, "expires_at":
  "2030-01-01T00:00:00Z"}``. ``headers`` are exactly the signed headers the request must carry (optional, default
  none); ``expires_at`` is ISO-8601 or Unix seconds (optional) and lets the client ask again shortly before it.
* Errors: 400/404/422 (bad request) and 401/403 (token refused) are final; 405/501 mean "this operation is not
  offered"; 429 and 5xx are retried. A JSON body ``{"error": "text"}`` is shown to the user (scrubbed).
* ``GET {endpoint}`` with the same Authorization header answers 2xx when the token is good ("Test connection").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import posixpath
import re
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import platformdirs

from app.engine.record import Direction
from app.engine.redact import redact_text, redact_url, strip_query
from app.manager.account_kinds import AUTHS, Auth, Provider
from app.manager.database import Database
from app.manager.network import HttpClients
from app.manager.secrets import SecretStore, SecretStoreLocked, SecretStoreUnavailable

# The provider plugins (OSS, Azure, presigned URLs) are imported where an account or a URL needs them, never here:
# a plain http(s) transfer does not load them (about 30 ms of every CLI start, docs/performance.md). Nor httpx and
# the XML parser: only connection tests and the presign service use them, and a plain download (which resolves its
# URL here) never loads httpx at all since the engine's probe goes on its own data path.
if TYPE_CHECKING:
    import httpx

__all__ = [
    "AUTHS", "Account", "AccountError", "AccountKeyringError", "AccountStore", "Auth", "PresignServiceSource",
    "Provider", "Target", "TargetError", "is_oss_presigned", "is_storage_url", "legacy_accounts_path",
    "normalize_secret", "resolve_remote", "secret_key", "split_storage_url",
]

T = TypeVar("T")
log = logging.getLogger(__name__)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REGION = re.compile(r"^[a-z0-9-]+$")
_AZURE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TRUE = ("1", "true", "yes", "on")


class AccountError(Exception):
    """A bad account definition, an unknown account or an unusable keyring, as a sentence for the user."""


class AccountKeyringError(AccountError, SecretStoreUnavailable):
    """The account's secret could not be stored or read because the keyring is unusable or locked.

    Both an :class:`AccountError` and a :class:`~app.manager.secrets.SecretStoreUnavailable`, so a caller that
    wants to offer "keep for this run only" (``store.secrets.allow_session_only()``) can tell it apart; ``locked``
    says the keyring exists but stayed locked (unlocking it is the better fix then).
    """

    def __init__(self, message: str, *, locked: bool = False, problem: str | None = None) -> None:
        super().__init__(message, problem=problem)
        self.locked = locked


class TargetError(AccountError, ValueError):
    """A remote that cannot work as written (malformed, unknown account, wrong provider): a usage error."""


def secret_key(name: str) -> str:
    """The keyring key of an account's secret."""
    return f"account:{name}"


def _azure_container_of(endpoint: str) -> str | None:
    """The container an Azure endpoint names (``…/container``), or None for the account's service URL."""
    from app.providers.azure_blob.sas import is_path_style_host

    parts = urlsplit(endpoint)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if is_path_style_host(parts.hostname or ""):
        segments = segments[1:]
    return segments[0] if segments else None


@dataclass(frozen=True)
class Account:
    name: str
    provider: Provider
    auth: Auth
    endpoint: str  # http(s) URL
    fields: dict[str, str] = field(default_factory=dict)  # other non-secret fields (see Auth)

    @property
    def path_style(self) -> bool:
        """OSS: address objects as ``endpoint/bucket/key`` (else ``bucket.endpoint/key``)."""
        return str(self.fields.get("path_style", "")).strip().lower() in _TRUE

    @property
    def has_secret(self) -> bool:
        return self.auth is not Auth.NONE

    def normalized(self) -> Account:
        """Trailing "/" of the endpoint and blanks around field values removed (what is stored)."""
        endpoint = self.endpoint.strip().rstrip("/") if isinstance(self.endpoint, str) else self.endpoint
        fields = {str(k): v.strip() if isinstance(v, str) else v for k, v in self.fields.items()}
        return replace(self, name=self.name.strip(), endpoint=endpoint, fields=fields)

    def describe(self) -> str:
        """The non-secret details, e.g. for ``accounts list``."""
        f = self.fields
        if self.auth is Auth.ACCESS_KEY:
            return (f"region={f.get('region')} key-id={f.get('access_key_id')}"
                    + (" path-style" if self.path_style else ""))
        if self.auth is Auth.SHARED_KEY:
            return f"account={f.get('account_name')}"
        if self.auth is Auth.BASIC:
            return f"user={f.get('username')}"
        if self.auth is Auth.SAS:
            container = _azure_container_of(self.endpoint)
            return f"container={container}" if container else "container from the remote"
        return ""

    def validate(self) -> None:
        """Raise AccountError naming the first bad field."""
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise AccountError(f"invalid account name {self.name!r}: use letters, digits, '.', '_' or '-' "
                               "(at most 64, starting with a letter or digit)")
        if not isinstance(self.provider, Provider) or not isinstance(self.auth, Auth):
            raise AccountError("the provider and the authentication must be chosen")
        if self.auth not in AUTHS[self.provider]:
            allowed = ", ".join(a.value for a in AUTHS[self.provider])
            raise AccountError(f"a {self.provider.value} account cannot use {self.auth.value!r} authentication "
                               f"(choose one of: {allowed})")
        for key, value in self.fields.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise AccountError(f"account field {key!r} must be text")
        self._validate_endpoint()
        f = self.fields
        if self.auth is Auth.ACCESS_KEY:
            region = f.get("region", "")
            if not region or not _REGION.match(region) or region.startswith("oss-"):
                raise AccountError(f"invalid OSS region {region or None!r}: expected e.g. cn-hangzhou "
                                   "(without 'oss-')")
            key_id = f.get("access_key_id", "")
            if not key_id or re.search(r"\s", key_id):
                raise AccountError("an Aliyun OSS account needs its AccessKey id (--access-key-id)")
        elif self.auth is Auth.SHARED_KEY:
            name = f.get("account_name", "")
            if not _AZURE_ACCOUNT.match(name):
                raise AccountError(f"invalid Azure storage account name {name or None!r}: 3-24 lowercase letters "
                                   "and digits")
        elif self.auth is Auth.BASIC:
            user = f.get("username", "")
            if not user or ":" in user or _CONTROL.search(user):
                raise AccountError("HTTP basic authentication needs a user name (without ':')")

    def _validate_endpoint(self) -> None:
        shown = redact_url(self.endpoint) if isinstance(self.endpoint, str) else repr(self.endpoint)
        try:
            parts = urlsplit(self.endpoint)
            parts.port  # noqa: B018  (raises ValueError for a bad port)
        except (ValueError, TypeError, AttributeError):
            raise AccountError(f"invalid endpoint {shown}: expected an http(s) URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AccountError(f"invalid endpoint {shown}: expected an http(s) URL")
        if "@" in parts.netloc:
            raise AccountError(f"invalid endpoint {shown}: put the user name and password in the account's "
                               "fields and secret, not in the URL")
        if parts.query or parts.fragment or self.endpoint.rstrip().endswith(("?", "#")):
            hint = (" (a SAS goes into the secret: the endpoint is the URL before '?')"
                    if self.auth is Auth.SAS else "")
            raise AccountError(f"invalid endpoint {shown}: it must not carry a query or fragment{hint}")


def normalize_secret(account: Account, secret: str | None) -> str | None:
    """Check the secret's shape for ``account`` and return what to store (None only for Auth.NONE).

    Messages never contain the secret.
    """
    if account.auth is Auth.NONE:
        if secret:
            raise AccountError("an account without authentication takes no secret")
        return None
    if not isinstance(secret, str) or not secret.strip():
        raise AccountError(f"the secret of a {account.auth.value} account is missing")
    value = secret.strip()
    if _CONTROL.search(value):
        raise AccountError("the secret contains a line break or control character")
    if account.auth in (Auth.ACCESS_KEY, Auth.BEARER, Auth.PRESIGN_SERVICE) and re.search(r"\s", value):
        raise AccountError("the secret must not contain spaces")
    if account.auth is Auth.SHARED_KEY:
        from app.providers.azure_blob import AzureSharedKey

        try:
            AzureSharedKey(account.fields.get("account_name", ""), value)
        except ValueError as exc:  # the provider's messages never echo the key
            raise AccountError(str(exc)) from None
    elif account.auth is Auth.SAS:
        value = _normalize_sas(value)
    return value


def _normalize_sas(value: str) -> str:
    if re.match(r"(?i)^https?://", value):
        raise AccountError("the SAS secret is the token after '?' in the SAS URL (sv=…&sig=…), not the URL; "
                           "the URL before '?' is the endpoint")
    token = value.lstrip("?")
    if re.search(r"\s", token):
        raise AccountError("the SAS token must not contain spaces")
    names = {k for k, _ in parse_qsl(token, keep_blank_values=True)}
    missing = [p for p in ("sv", "sig") if p not in names]
    if missing:
        raise AccountError(f"not an Azure SAS token (no {' or '.join(p + '=' for p in missing)} in it)")
    params = dict(parse_qsl(token, keep_blank_values=True))
    if "srt" in params or "ss" in params:
        raise AccountError("an account SAS (ss=/srt=) is not supported here: create a container SAS (sr=c) for "
                           "the container you use")
    if params.get("sr") == "b":
        raise AccountError("a blob SAS (sr=b) works for one blob only: use the whole SAS URL as the remote "
                           "instead of an account, or create a container SAS (sr=c)")
    if params.get("sr") != "c":
        raise AccountError("only a container SAS (sr=c) can be stored with an account")
    return token


def legacy_accounts_path() -> Path:
    """Where the CLI of Rusty Cat 0.x kept its account profiles (imported once, then renamed)."""
    return platformdirs.user_config_path("rusty-cat") / "accounts.json"


def _legacy_account(item: dict[str, Any]) -> Account:
    """One profile of the old ``accounts.json`` (``{"version": 1, "accounts": [...]}``) in the new model."""
    provider = Provider(item["provider"])
    endpoint = str(item["endpoint"])
    if provider is Provider.ALIYUN_OSS:
        fields = {"region": str(item.get("region") or ""), "access_key_id": str(item.get("access_key_id") or ""),
                  "path_style": "true" if item.get("path_style") else "false"}
        return Account(str(item["name"]), provider, Auth.ACCESS_KEY, endpoint, fields)
    if provider is Provider.AZURE_BLOB:
        return Account(str(item["name"]), provider, Auth.SHARED_KEY, endpoint,
                       {"account_name": str(item.get("account_name") or "")})
    raise ValueError(f"provider {provider.value} did not exist in the old accounts file")


def _account_from_row(row: sqlite3.Row) -> Account | None:
    try:
        fields = json.loads(row["fields"] or "{}")
        return Account(row["name"], Provider(row["provider"]), Auth(row["auth"]), row["endpoint"],
                       {str(k): str(v) for k, v in fields.items()})
    except (ValueError, TypeError, AttributeError):
        log.warning("skipping account %r: written by a newer Rusty Cat or damaged", row["name"])
        return None


def _keyring_error(exc: SecretStoreUnavailable, prefix: str = "") -> AccountKeyringError:
    return AccountKeyringError(f"{prefix}{exc}", locked=isinstance(exc, SecretStoreLocked), problem=exc.problem)


class AccountStore:
    """Async API; keyring and SQLite calls run off the event loop.

    ``secrets`` is public so the accounts dialog can offer the run-only choice when the keyring is unusable.
    Errors: :class:`AccountError` (bad input, unknown account, missing secret) and
    :class:`AccountKeyringError` (also a SecretStoreUnavailable) when the keyring cannot be used.
    """

    #: Seconds "Test connection" waits for the server.
    test_timeout = 10.0

    def __init__(self, db: Database, secrets: SecretStore, *, legacy_path: Path | None = None,
                 http_clients: Callable[[float], httpx.AsyncClient] | None = None) -> None:
        """``http_clients(timeout)`` makes the client of a connection test or a presign-service call (the manager's
        :class:`~app.manager.network.HttpClients`, so they take the transfers' proxy and CA bundle); default: the
        environment's proxy and the system's certificates."""
        self.db = db
        self.secrets = secrets
        self.http_clients: Callable[[float], httpx.AsyncClient] = (
            http_clients if http_clients is not None else HttpClients())
        self.legacy_path = legacy_path if legacy_path is not None else legacy_accounts_path()
        self._legacy_lock = threading.Lock()
        self._legacy_done = False

    # ------------------------------------------------------------------ one-time import of the old CLI's file
    def _import_legacy_sync(self, conn: sqlite3.Connection) -> int:
        """Rows for the old profiles (INSERT OR IGNORE: an existing account wins); -1 when there was nothing to
        import. Runs on the database thread."""
        with self._legacy_lock:
            if self._legacy_done:
                return -1
            self._legacy_done = True
        path = self.legacy_path
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return -1
        except (OSError, ValueError) as exc:
            log.warning("cannot import the old accounts file %s (%s); leaving it in place", path, type(exc).__name__)
            return -1
        accounts = []
        for item in raw.get("accounts", []) if isinstance(raw, dict) else []:
            try:
                account = _legacy_account(item).normalized()
                account.validate()
            except (KeyError, TypeError, ValueError, AccountError) as exc:
                log.warning("skipping an account of %s that cannot be imported: %s", path, exc)
                continue
            accounts.append(account)
        now = time.time()
        for a in accounts:
            conn.execute("INSERT OR IGNORE INTO accounts (name, provider, auth, endpoint, fields, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (a.name, a.provider.value, a.auth.value, a.endpoint, json.dumps(a.fields), now))
        return len(accounts)

    async def _ready(self) -> None:
        if self._legacy_done:
            return
        imported = await self.db.run(self._import_legacy_sync)
        if imported < 0:
            return
        target = self.legacy_path.with_name(self.legacy_path.name + ".imported")
        try:
            await asyncio.to_thread(self.legacy_path.replace, target)
        except OSError as exc:
            log.warning("imported %s but could not rename it (%s)", self.legacy_path, type(exc).__name__)
        log.info("imported %d account(s) from %s; the file is now %s", imported, self.legacy_path, target.name)

    # ------------------------------------------------------------------ queries
    async def list(self) -> list[Account]:
        await self._ready()
        rows = await self.db.run(lambda c: c.execute("SELECT * FROM accounts ORDER BY name").fetchall())
        return [a for a in (_account_from_row(r) for r in rows) if a is not None]

    async def _find(self, name: str) -> Account | None:
        await self._ready()
        row = await self.db.run(lambda c: c.execute("SELECT * FROM accounts WHERE name = ?", (name,)).fetchone())
        return None if row is None else _account_from_row(row)

    async def get(self, name: str) -> Account:
        account = await self._find(name)
        if account is None:
            raise AccountError(f"no account named {name!r}")
        return account

    async def secret(self, name: str) -> str | None:
        """The account's secret from the keyring; None for an account without authentication.

        Raises AccountError when the keyring no longer has it (e.g. it was kept for the last run only).
        """
        account = await self.get(name)
        if not account.has_secret:
            return None
        try:
            value = await self.secrets.get(secret_key(name))
        except SecretStoreUnavailable as exc:
            raise _keyring_error(exc) from None
        if not value:
            raise AccountError(f"the secret of account {name!r} is not in the keyring ({self.secrets.backend_name}); "
                               "edit the account and enter it again")
        return value

    # ------------------------------------------------------------------ changes
    async def add(self, account: Account, secret: str | None) -> None:
        """Validate, store the secret, then the profile (so a profile never exists without its secret)."""
        account = account.normalized()
        account.validate()
        value = normalize_secret(account, secret)
        if await self._find(account.name) is not None:
            raise AccountError(f"an account named {account.name!r} already exists; edit or remove it first")
        if value is not None:
            try:
                await self.secrets.set(secret_key(account.name), value)
            except SecretStoreUnavailable as exc:
                raise _keyring_error(exc) from None
        row = (account.name, account.provider.value, account.auth.value, account.endpoint, json.dumps(account.fields),
               time.time())
        try:
            await self.db.run(lambda c: c.execute(
                "INSERT INTO accounts (name, provider, auth, endpoint, fields, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                row))
        except sqlite3.IntegrityError:  # added meanwhile by another process: its secret is the one we just wrote
            raise AccountError(f"an account named {account.name!r} already exists; edit or remove it first") from None
        except BaseException:
            if value is not None:  # no row, so no orphan secret either (best effort)
                with contextlib.suppress(SecretStoreUnavailable):
                    await self.secrets.delete(secret_key(account.name))
            raise
        log.info("added account %s (%s, %s)", account.name, account.provider.value, account.auth.value)

    async def update(self, account: Account, secret: str | None = None) -> None:
        """Replace the profile; ``secret`` None keeps the stored secret."""
        account = account.normalized()
        account.validate()
        old = await self.get(account.name)
        if secret is None and account.has_secret and (old.auth is not account.auth
                                                      or old.provider is not account.provider):
            raise AccountError(f"changing account {account.name!r} to {account.auth.value} authentication needs "
                               "its new secret")
        value = normalize_secret(account, secret) if secret is not None or not account.has_secret else None
        try:
            if value is not None:
                await self.secrets.set(secret_key(account.name), value)
            elif not account.has_secret and old.has_secret:
                await self.secrets.delete(secret_key(account.name))
        except SecretStoreUnavailable as exc:
            raise _keyring_error(exc) from None
        changed = await self.db.run(lambda c: c.execute(
            "UPDATE accounts SET provider = ?, auth = ?, endpoint = ?, fields = ? WHERE name = ?",
            (account.provider.value, account.auth.value, account.endpoint, json.dumps(account.fields),
             account.name)).rowcount)
        if not changed:
            raise AccountError(f"no account named {account.name!r}")
        log.info("updated account %s", account.name)

    async def remove(self, name: str) -> None:
        """The profile first, then its secret."""
        account = await self.get(name)
        await self.db.run(lambda c: c.execute("DELETE FROM accounts WHERE name = ?", (name,)))
        log.info("removed account %s", name)
        if account.has_secret:
            try:
                await self.secrets.delete(secret_key(name))
            except SecretStoreUnavailable as exc:
                raise _keyring_error(exc, f"account {name!r} was removed, but its secret could not be deleted "
                                          "from the keyring: ") from None

    # ------------------------------------------------------------------ test connection
    async def test_connection(self, name: str) -> str:
        """Make one cheap signed request (list/HEAD) and return a short success sentence; raise AccountError
        with the server's answer otherwise."""
        account = await self.get(name)
        secret = await self.secret(name)
        host = urlsplit(account.endpoint).netloc
        probe = _PROBES[account.auth]
        import httpx

        try:
            async with self.http_clients(self.test_timeout) as client:
                client.event_hooks = {"response": [_refuse_proxy_auth]}
                return await probe(client, account, secret)
        except httpx.TimeoutException:
            raise AccountError(f"{host} did not answer within {self.test_timeout:g} s") from None
        except httpx.ProxyError as exc:
            raise AccountError(f"the proxy refused the connection to {host} ({_scrub(str(exc), secret)}): check "
                               "the proxy settings (Preferences > Network, or --proxy)") from None
        except httpx.HTTPError as exc:
            if (reason := _untrusted_certificate(exc)) is not None:
                raise AccountError(f"the certificate of {host} is not trusted ({reason}); if a private CA issued "
                                   "it, add that CA's certificate as the CA bundle (Preferences > Network, or "
                                   "--cacert)") from None
            raise AccountError(f"cannot reach {host}: {type(exc).__name__}: {_scrub(str(exc), secret)}") from None


async def _refuse_proxy_auth(response: httpx.Response) -> None:
    """An http URL through a proxy that wants other credentials answers 407 itself: say so, not "check the
    endpoint" (an https URL's CONNECT refusal arrives as httpx.ProxyError instead)."""
    if response.status_code == 407:
        import httpx

        raise httpx.ProxyError(f"{response.status_code} {response.reason_phrase}", request=response.request)


def _untrusted_certificate(exc: BaseException) -> str | None:
    """The verifier's words when ``exc`` was caused by a certificate nobody we trust vouches for, else None."""
    import ssl

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return str(cause.verify_message or cause.reason or "certificate verify failed")
        if "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return "certificate verify failed"
        cause = cause.__cause__ or cause.__context__
    return None


# ---------------------------------------------------------------------------------------------- probes
def _scrub(text: str, secret: str | None) -> str:
    """One line, URLs redacted, the secret (and its URL-encoded form) removed, bounded."""
    text = redact_text(text)
    if secret:
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, "<hidden>")
    return " ".join(text.split())[:300]


def _xml_field(content: bytes, tag: str) -> str:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return ""
    found = root.find(tag)
    return (found.text or "").strip().splitlines()[0] if found is not None and found.text else ""


def _xml_count(content: bytes, tag: str) -> int | None:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return None
    return sum(1 for _ in root.iter(tag))


_OSS_AUTH_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed", "InvalidArgument",
                             "InvalidSecurityToken", "SecurityTokenExpired", "InvalidAuthorization"})


async def _probe_oss_access_key(client: httpx.AsyncClient, account: Account, secret: str | None) -> str:
    """Signed GET of the service root (ListBuckets)."""
    from app.providers.aliyun_oss import OssCredentials, OssV4Signer, clock_for_endpoint, parse_error
    from app.providers.aliyun_oss.plugins import learn_skew

    assert secret is not None
    host = urlsplit(account.endpoint).netloc
    signer = OssV4Signer(OssCredentials(account.fields["access_key_id"], secret), account.fields["region"],
                         clock=clock_for_endpoint(account.endpoint))
    url = account.endpoint + "/"
    for attempt in range(2):
        signed = signer.sign_request("GET", url, {}, bucket=None, key=None)
        resp = await client.get(signed.url, headers=signed.headers)
        if attempt == 0 and learn_skew(resp, signer.clock):
            continue  # the local clock is off: re-sign once with the server's time
        break
    if resp.is_success:
        count = _xml_count(resp.content, "Bucket")
        seen = f" ({count} bucket{'s' if count != 1 else ''} visible)" if count is not None else ""
        return f"Connected to {host}: the AccessKey works{seen}."
    info = parse_error(resp.status_code, resp.content, resp.headers)
    detail = f"HTTP {resp.status_code} {info.code}: {_scrub(info.message, secret)}".rstrip(": ")
    if info.code == "AccessDenied":
        return (f"Connected to {host}: the AccessKey is valid, but it may not list buckets ({detail}); transfers "
                "only need access to their bucket.")
    if info.code in _OSS_AUTH_CODES or resp.status_code in (401, 403):
        raise AccountError(f"{host} refused the credentials: {detail}")
    if resp.status_code >= 500 and info.code != "NotImplemented":
        raise AccountError(f"{host} failed: {detail}")
    if info.code:  # the signature was checked before the request was judged: the credentials are good
        return f"Connected to {host}: the signature was accepted (the bucket list answered {detail})."
    raise AccountError(f"{host} answered HTTP {resp.status_code}, which is not an OSS answer: check the endpoint")


def _bearer(secret: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def _probe_presign_service(client: httpx.AsyncClient, account: Account, secret: str | None) -> str:
    host = urlsplit(account.endpoint).netloc
    resp = await client.get(account.endpoint, headers=_bearer(secret))
    if resp.is_success:
        return f"Connected to the presign service at {host}: the token was accepted."
    detail = _service_error(resp, secret)
    if resp.status_code in (401, 403):
        raise AccountError(f"the presign service at {host} refused the token: {detail}")
    raise AccountError(f"the presign service at {host} answered {detail} (it must answer GET with 2xx when the "
                       "token is good)")


def _azure_error(resp: httpx.Response, secret: str | None) -> str:
    code = resp.headers.get("x-ms-error-code") or _xml_field(resp.content, "Code")
    message = _xml_field(resp.content, "Message")
    text = f"HTTP {resp.status_code}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    return _scrub(text, secret)


async def _probe_azure_shared_key(client: httpx.AsyncClient, account: Account, secret: str | None) -> str:
    """Signed List Containers (``?comp=list&maxresults=1``)."""
    from app.providers.azure_blob import AzureSharedKey

    assert secret is not None
    host = urlsplit(account.endpoint).netloc
    credential = AzureSharedKey(account.fields["account_name"], secret)
    base = account.endpoint if urlsplit(account.endpoint).path else account.endpoint + "/"
    url = f"{base}?comp=list&maxresults=1"
    resp = await client.get(url, headers=credential.sign("GET", url, {}))
    if resp.is_success:
        return f"Connected to {host}: the account key works (containers can be listed)."
    if resp.status_code == 403 and resp.headers.get("x-ms-error-code") == "AuthorizationPermissionMismatch":
        return f"Connected to {host}: the account key is valid, but it may not list containers."
    raise AccountError(f"{host} refused the request: {_azure_error(resp, secret)}")


def _sas_expiry(token: str) -> datetime | None:
    se = dict(parse_qsl(token, keep_blank_values=True)).get("se")
    if not se:
        return None
    try:
        when = datetime.fromisoformat(se)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


async def _probe_azure_sas(client: httpx.AsyncClient, account: Account, secret: str | None) -> str:
    """List one blob of the SAS's container (``?restype=container&comp=list&maxresults=1``)."""
    from app.providers.azure_blob import X_MS_VERSION

    assert secret is not None
    host = urlsplit(account.endpoint).netloc
    expiry = _sas_expiry(secret)
    if expiry is not None and expiry <= datetime.now(UTC):
        raise AccountError(f"the SAS token expired at {expiry.isoformat()}: create a new one and edit the account")
    until = f" (valid until {expiry.isoformat()})" if expiry is not None else ""
    container = _azure_container_of(account.endpoint)
    if container is None:
        resp = await client.head(account.endpoint + "/")
        return (f"{host} is reachable (HTTP {resp.status_code}). The SAS token{until} is checked when a transfer "
                "starts, because the endpoint names no container.")
    url = f"{account.endpoint}?{secret}&restype=container&comp=list&maxresults=1"
    resp = await client.get(url, headers={"x-ms-version": X_MS_VERSION})
    if resp.is_success:
        return f"Connected to {host}: the SAS works for container {container!r}{until}."
    if resp.status_code == 403 and resp.headers.get("x-ms-error-code") == "AuthorizationPermissionMismatch":
        return (f"Connected to {host}: the SAS for container {container!r} is valid{until}, but it may not list "
                "blobs (no 'l' permission).")
    raise AccountError(f"{host} refused the SAS: {_azure_error(resp, secret)}")


async def _probe_http(client: httpx.AsyncClient, account: Account, secret: str | None) -> str:
    host = urlsplit(account.endpoint).netloc
    headers = dict(_auth_headers(account, secret))
    resp = await client.head(account.endpoint, headers=headers)
    checked = ", credentials accepted" if headers else ""
    if resp.status_code < 400:
        return f"Connected to {host}: HTTP {resp.status_code}{checked}."
    if resp.status_code in (405, 501):
        return f"Connected to {host}: it answered HTTP {resp.status_code} (HEAD is not allowed there)."
    if resp.status_code in (401, 403):
        what = "refused the credentials" if headers else "needs credentials (choose bearer or basic authentication)"
        raise AccountError(f"{host} {what}: HTTP {resp.status_code} {resp.reason_phrase}")
    raise AccountError(f"{host} answered HTTP {resp.status_code} {resp.reason_phrase}: check the endpoint")


_Probe = Callable[["httpx.AsyncClient", Account, "str | None"], Awaitable[str]]
_PROBES: dict[Auth, _Probe] = {
    Auth.NONE: _probe_http, Auth.BEARER: _probe_http, Auth.BASIC: _probe_http,
    Auth.ACCESS_KEY: _probe_oss_access_key, Auth.PRESIGN_SERVICE: _probe_presign_service,
    Auth.SHARED_KEY: _probe_azure_shared_key, Auth.SAS: _probe_azure_sas,
}


# ---------------------------------------------------------------------------------------------- remotes
@dataclass(frozen=True)
class Target:
    """What the engine needs for one remote. ``headers`` are secret (credentials): never store or show them."""

    url: str  # the http(s) URL the engine task carries (its identity and display name; no secret)
    name: str | None  # the file name the URL implies; None: ask the server (Content-Disposition) or the URL
    upload: Any = None  # a BreakpointUpload, or None for the default chunk protocol
    download: Any = None  # a BreakpointDownload, or None for plain HTTP ranges
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # e.g. an HTTP account's Authorization


def is_storage_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("oss", "azure")


def is_oss_presigned(url: str) -> bool:
    return any(k.lower() == "x-oss-signature" for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True))


def split_storage_url(url: str) -> tuple[str, str, str, str]:
    """``(scheme, account, bucket/container, key/blob)`` of ``oss://…`` / ``azure://…``; TargetError if malformed."""
    parts = urlsplit(url)
    scheme, account = parts.scheme.lower(), parts.netloc
    bucket, _, key = unquote(parts.path.lstrip("/")).partition("/")
    what = "bucket/key" if scheme == "oss" else "container/blob"
    if not account or not bucket or not key or key.endswith("/"):
        raise TargetError(f"expected {scheme}://ACCOUNT/{what}, got {url!r}")
    if parts.query or parts.fragment:
        raise TargetError(f"{scheme}:// URLs take no query or fragment: {url!r}")
    return scheme, account, bucket, key


def _auth_headers(account: Account, secret: str | None) -> tuple[tuple[str, str], ...]:
    if account.auth is Auth.BEARER and secret:
        return (("Authorization", f"Bearer {secret}"),)
    if account.auth is Auth.BASIC and secret is not None:
        pair = f"{account.fields.get('username', '')}:{secret}".encode()
        return (("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")),)
    return ()


def _origin(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port, parts.path or "/"


def _covers(endpoint: str, url: str) -> int | None:
    """How specific ``endpoint`` is for ``url`` (its path length), or None when it does not cover it."""
    e_scheme, e_host, e_port, e_path = _origin(endpoint)
    u_scheme, u_host, u_port, u_path = _origin(url)
    if (e_scheme, e_host, e_port) != (u_scheme, u_host, u_port):
        return None
    prefix = e_path.rstrip("/")
    if prefix and u_path != prefix and not u_path.startswith(prefix + "/"):
        return None
    return len(prefix)


async def _http_account_for(store: AccountStore | None, url: str, name: str | None) -> Account | None:
    if store is None:
        if name is not None:
            raise TargetError(f"no account named {name!r}")
        return None
    if name is not None:
        account = await store.get(name)
        if account.provider is not Provider.HTTP:
            raise TargetError(f"account {name!r} is {account.provider.value}: use its "
                              f"{'oss' if account.provider is Provider.ALIYUN_OSS else 'azure'}://{name}/… form")
        if _covers(account.endpoint, url) is None:
            raise TargetError(f"account {name!r} is for {account.endpoint}, which does not cover {redact_url(url)}")
        return account
    best: tuple[int, Account] | None = None
    for account in await store.list():
        if account.provider is not Provider.HTTP or not account.has_secret:
            continue
        score = _covers(account.endpoint, url)
        if score is not None and (best is None or score > best[0]):
            best = (score, account)
    return best[1] if best else None


async def resolve_remote(store: AccountStore | None, remote: str, direction: Direction | str, session_dir: str, *,
                         account: str | None = None) -> Target:
    """The engine task URL, plugin and headers for ``remote`` (see the module docstring).

    ``account`` names the HTTP account to use for a plain URL (default: the one whose endpoint covers it, if any).
    ``store`` None means "no accounts": only URLs that carry their own credentials (or none) resolve.
    Raises TargetError for a remote that cannot work as written, AccountError / AccountKeyringError when the
    account's secret cannot be had.
    """
    direction = Direction(direction) if isinstance(direction, str) else direction
    upload = direction is Direction.UPLOAD
    if is_storage_url(remote):
        scheme, name, bucket, key = split_storage_url(remote)
        acct = await store._find(name) if store is not None else None
        if acct is None:
            raise TargetError(f"no account named {name!r}")
        wanted = Provider.ALIYUN_OSS if scheme == "oss" else Provider.AZURE_BLOB
        if acct.provider is not wanted:
            raise TargetError(f"account {name!r} is {acct.provider.value}, not {wanted.value}")
        secret = await store.secret(name)
        assert secret is not None  # OSS and Azure accounts always have one
        if scheme == "oss":
            return _oss_target(acct, secret, bucket, key, upload, session_dir, store.http_clients)
        return _azure_target(acct, secret, bucket, key, upload, session_dir)
    parts = urlsplit(remote)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise TargetError(f"unsupported remote {redact_url(remote)!r}: expected http(s)://, oss:// or azure://")
    name_of_url = posixpath.basename(unquote(parts.path)) or None
    if parts.query:  # only a URL with a query can carry a SAS or an OSS signature
        target = _signed_url_target(remote, name_of_url, upload, session_dir)
        if target is not None:
            return target
    http_account = await _http_account_for(store, remote, account)
    if http_account is None or store is None:
        return Target(remote, None)
    secret = await store.secret(http_account.name)
    return Target(remote, None, headers=_auth_headers(http_account, secret))


def _signed_url_target(remote: str, name_of_url: str | None, upload: bool, session_dir: str) -> Target | None:
    """An Azure SAS URL or an OSS presigned URL carries its own credentials; None for any other URL."""
    from app.providers.azure_blob import is_sas_url

    if is_sas_url(remote):
        from app.providers.azure_blob import AzureBlobSasDownload, AzureBlobSasUpload

        if upload:
            return Target(remote, name_of_url, upload=AzureBlobSasUpload(None, session_dir=session_dir))
        return Target(remote, name_of_url, download=AzureBlobSasDownload(None))
    if is_oss_presigned(remote):
        if upload:
            raise TargetError("an OSS presigned URL signs a single request, but a resumable upload needs one URL per "
                              "part: use oss://ACCOUNT/bucket/key, or AliOssPresignedUpload with a URL source")
        from app.providers.api import AliOssPresignedDownload, PresignedRequest

        return Target(remote, name_of_url, download=AliOssPresignedDownload(lambda op, part: PresignedRequest(remote)))
    return None


def _oss_target(acct: Account, secret: str, bucket: str, key: str, upload: bool, session_dir: str,
                http_clients: Callable[[float], httpx.AsyncClient] | None = None) -> Target:
    from app.providers.api import (
        AliOssDirectDownload,
        AliOssDirectUpload,
        AliOssPresignedDownload,
        AliOssPresignedUpload,
        OssCredentials,
    )

    file_name = posixpath.basename(key)
    if acct.auth is Auth.PRESIGN_SERVICE:
        source = PresignServiceSource(acct.endpoint, secret, bucket, key, http_clients=http_clients)
        url = f"{strip_query(acct.endpoint).rstrip('/')}/{quote(bucket, safe='')}/{quote(key)}"  # identity only
        if upload:
            return Target(url, file_name, upload=AliOssPresignedUpload(source, session_dir=session_dir))
        return Target(url, file_name, download=AliOssPresignedDownload(source))
    try:
        creds = OssCredentials(acct.fields["access_key_id"], secret)
        common: dict[str, Any] = {"bucket": bucket, "key": key, "endpoint": acct.endpoint,
                                  "path_style": acct.path_style}
        region = acct.fields["region"]
        if upload:
            plugin: Any = AliOssDirectUpload(creds, region, session_dir=session_dir, **common)
            return Target(plugin.object_url, file_name, upload=plugin)
        plugin = AliOssDirectDownload(creds, region, **common)
        return Target(plugin.object_url, file_name, download=plugin)
    except (KeyError, ValueError) as exc:
        raise AccountError(f"account {acct.name!r} cannot be used: {exc}") from None


def _azure_target(acct: Account, secret: str, container: str, blob: str, upload: bool, session_dir: str) -> Target:
    from app.providers.api import (
        AzureBlobDirectDownload,
        AzureBlobDirectUpload,
        AzureBlobSasDownload,
        AzureBlobSasUpload,
        AzureSharedKey,
    )

    file_name = posixpath.basename(blob)
    if acct.auth is Auth.SAS:
        named = _azure_container_of(acct.endpoint)
        if named is None:
            blob_url = f"{acct.endpoint}/{quote(container)}/{quote(blob)}"
        elif named == container:
            blob_url = f"{acct.endpoint}/{quote(blob)}"
        else:
            raise TargetError(f"account {acct.name!r} is for container {named!r}, not {container!r}")
        sas_url = f"{blob_url}?{secret}"  # the plugin's source; the task URL stays secret-free
        try:
            if upload:
                return Target(blob_url, file_name, upload=AzureBlobSasUpload(sas_url, session_dir=session_dir))
            return Target(blob_url, file_name, download=AzureBlobSasDownload(sas_url))
        except ValueError as exc:  # SasUrl's messages are redacted
            raise AccountError(f"account {acct.name!r} cannot be used: {_scrub(str(exc), secret)}") from None
    try:
        credential = AzureSharedKey(acct.fields["account_name"], secret)
    except (KeyError, ValueError) as exc:
        raise AccountError(f"account {acct.name!r} cannot be used: {exc}") from None
    blob_url = f"{acct.endpoint}/{quote(container)}/{quote(blob)}"
    if upload:
        return Target(blob_url, file_name, upload=AzureBlobDirectUpload(credential, session_dir=session_dir))
    return Target(blob_url, file_name, download=AzureBlobDirectDownload(credential))


# ---------------------------------------------------------------------------------------------- presign service
def _service_error(resp: httpx.Response, token: str | None) -> str:
    try:
        body = resp.json()
        text = str(body.get("error", "")) if isinstance(body, dict) else ""
    except ValueError:
        text = ""
    return _scrub(f"HTTP {resp.status_code}" + (f": {text}" if text else ""), token)


def _parse_expiry(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        when = datetime.fromisoformat(value)
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when
    raise ValueError(f"expires_at must be ISO-8601 text or Unix seconds, not {type(value).__name__}")


class PresignServiceSource:
    """A :class:`~app.providers.presigned.UrlSource` that asks a presign service (protocol: module docstring).

    One instance per object. Failures are raised as the URL-source contract wants: ValueError for a final refusal,
    NotImplementedError for an operation the service does not offer, anything else (retried) for transient trouble.
    Messages never contain the token or a signed URL.
    """

    def __init__(self, endpoint: str, token: str, bucket: str, key: str, *, timeout: float = 15.0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 http_clients: Callable[[float], httpx.AsyncClient] | None = None) -> None:
        """``http_clients(timeout)`` makes the client of each call (the manager's, so the service is reached through
        the same proxy and CA bundle as the transfers; default: the environment's proxy); ``transport`` replaces
        the network entirely (tests)."""
        self.endpoint = endpoint
        self._token = token
        self.bucket, self.key = bucket, key
        self.timeout = timeout
        self._transport = transport
        self._http_clients = http_clients if http_clients is not None else HttpClients()
        self.asked = 0

    def __repr__(self) -> str:
        return f"PresignServiceSource({self.endpoint!r}, bucket={self.bucket!r}, key={self.key!r})"

    async def __call__(self, op: str, part_number: int | None, /, upload_id: str | None = None) -> Any:
        self.asked += 1
        body = {"op": op, "bucket": self.bucket, "key": self.key, "part_number": part_number, "upload_id": upload_id}
        what = f"the presign service ({urlsplit(self.endpoint).netloc}) for {op!r}"
        import httpx

        try:
            client = (httpx.AsyncClient(timeout=self.timeout, transport=self._transport) if self._transport is not None
                      else self._http_clients(self.timeout))
            async with client:
                resp = await client.post(self.endpoint, json=body, headers=_bearer(self._token))
        except httpx.HTTPError as exc:
            raise ConnectionError(f"{what}: {type(exc).__name__}") from None
        if resp.status_code in (405, 501):
            raise NotImplementedError(f"{what}: operation not offered ({_service_error(resp, self._token)})")
        if resp.status_code in (401, 403):
            raise ValueError(f"{what}: the token was refused ({_service_error(resp, self._token)})")
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RuntimeError(f"{what}: {_service_error(resp, self._token)}")
        if not resp.is_success:
            raise ValueError(f"{what}: {_service_error(resp, self._token)}")
        try:
            data = resp.json()
            url = data["url"]
            headers = data.get("headers") or {}
            expires_at = _parse_expiry(data.get("expires_at"))
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
                raise ValueError("url is not an http(s) URL")
            if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in headers.items()):
                raise ValueError("headers must be an object of text values")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{what}: the answer does not follow the protocol "
                             f"({type(exc).__name__}: {_scrub(str(exc), self._token)})") from None
        from app.providers.api import PresignedRequest

        return PresignedRequest(url, dict(headers), expires_at)

