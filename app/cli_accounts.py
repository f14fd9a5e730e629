"""``rusty-cat-cli accounts add|list|remove|test``: storage accounts shared with the window.

Profiles live in the history database (the same one the window uses), secrets in the OS keyring only. The secret
is read from the environment variable named by ``--secret-env`` or else from standard input (one line; not echoed
on a terminal), never from the command line, where it would land in shell history and ``ps``. Unlike the window,
the CLI cannot keep a secret "for this run only": the command ends at once, so it would be lost.

``accounts test`` talks to the account's server, so it takes the network options of ``download`` and ``upload``
(``--proxy``, ``--noproxy``, ``--cacert``, defined here for all three). Only the parser's needs are imported with
this module (the account kinds); the account store, the keyring and the database when a verb runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypeVar

from app.manager.account_kinds import AUTHS, Auth, Provider

if TYPE_CHECKING:
    from app.manager.accounts import Account, AccountStore
    from app.manager.network import NetworkSettings
    from app.manager.secrets import SecretStoreUnavailable

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: Which ``add`` options fill which account field, and for which kind of authentication.
_FIELD_OPTIONS: tuple[tuple[str, str, tuple[Auth, ...]], ...] = (
    ("region", "--region", (Auth.ACCESS_KEY,)),
    ("access_key_id", "--access-key-id", (Auth.ACCESS_KEY,)),
    ("account_name", "--account-name", (Auth.SHARED_KEY,)),
    ("username", "--username", (Auth.BASIC,)),
)

_NO_SESSION_ONLY = ("The command line cannot keep a secret for this run only (it would be lost as soon as the command "
                    "ends).")


class Subcommands(Protocol):
    """What ``add_parser`` needs of ``ArgumentParser.add_subparsers()``'s result (its class is private)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class NetworkOptionError(ValueError):
    """A bad ``--proxy``, ``--noproxy`` or ``--cacert`` value (a usage error), naming the option; never with the
    proxy password."""


def add_network_options(p: argparse.ArgumentParser) -> None:
    """``--proxy``, ``--noproxy`` and ``--cacert``, as curl spells and reads them, for every command that talks to a
    server. Values are checked after parsing (:func:`network_from_options`): argparse's own messages would quote a
    bad value, password included."""
    group = p.add_argument_group("network (override the environment for this run)")
    group.add_argument("--proxy", "-x", metavar="URL",
                       help="proxy for every request: http://[USER:PASSWORD@]HOST:PORT, socks5:// or "
                            "socks5h://; '' = no proxy. Default: http_proxy/https_proxy/all_proxy from the "
                            "environment, as curl reads them. A password given here is used for this run only "
                            "and never printed")
    group.add_argument("--noproxy", metavar="LIST",
                       help="comma-separated hosts that bypass the proxy (a name also matches its subdomains; IP "
                            "addresses, CIDR ranges; '*' = no proxy at all). Default: no_proxy from the environment")
    group.add_argument("--cacert", metavar="FILE",
                       help="PEM file of CA certificates to trust in addition to the system's (a private CA, an "
                            "office proxy's)")


def network_from_options(proxy: str | None, noproxy: str | None,
                         cacert: str | None) -> tuple[NetworkSettings | None, str | None]:
    """The settings and the proxy password the three options ask for; ``(None, None)`` when none is given. Blocking
    (reads the CA bundle): call it before the event loop starts. Raises NetworkOptionError."""
    if proxy is None and noproxy is None and cacert is None:
        return None, None
    from app.manager.network import (
        NetworkSettings,
        NetworkSettingsError,
        ProxyMode,
        check_ca_bundle_file,
        split_proxy_url,
    )

    mode, address, user, password = ProxyMode.SYSTEM, "", "", None
    try:
        if proxy is not None:
            if proxy.strip():
                address, user, password = split_proxy_url(proxy)
                mode = ProxyMode.MANUAL
            else:  # curl: an empty proxy turns proxies off, whatever the environment says
                mode = ProxyMode.NONE
            NetworkSettings(mode, address, user).check()
            if password is not None and any(c in password for c in "\r\n\0"):
                raise NetworkSettingsError("the proxy password contains a line break or NUL")
    except NetworkSettingsError as exc:
        raise NetworkOptionError(f"--proxy: {_scrubbed(str(exc), password)}") from None
    try:
        if noproxy is not None:
            NetworkSettings(no_proxy=noproxy).check()
    except NetworkSettingsError as exc:
        raise NetworkOptionError(f"--noproxy: {exc}") from None
    try:
        ca_bundle = check_ca_bundle_file(cacert) if cacert is not None else None
    except NetworkSettingsError as exc:
        raise NetworkOptionError(f"--cacert: {exc}") from None
    return NetworkSettings(mode, address, user, no_proxy=noproxy, ca_bundle=ca_bundle), password


def _scrubbed(text: str, password: str | None) -> str:
    from app.manager.network import scrub_password

    return scrub_password(text, password)


def add_parser(sub: Subcommands) -> None:
    accounts = sub.add_parser("accounts", help="manage storage accounts (secrets in the OS keyring)",
                              description="Accounts name an endpoint and its credentials; use them as "
                                          "oss://ACCOUNT/bucket/key, azure://ACCOUNT/container/blob, or (HTTP "
                                          "accounts) any URL under the account's endpoint. The window shares them.")
    verbs = accounts.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser(
        "add", help="add an account",
        description="Add an account. Its secret (AccessKey secret, storage account key, container SAS token, "
                    "presign-service token, bearer token or password) is read from $VAR with --secret-env VAR, "
                    "otherwise from standard input, and stored in the OS keyring only.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--provider", required=True, choices=[p.value for p in Provider])
    add.add_argument("--auth", choices=[a.value for a in Auth],
                     help="how the secret is used (default: access-key for aliyun-oss, shared-key for azure-blob, "
                          "none for http); presign-service (OSS), sas (Azure), bearer or basic (HTTP)")
    add.add_argument("--endpoint", required=True, metavar="URL",
                     help="OSS endpoint (https://oss-cn-hangzhou.aliyuncs.com), presign service URL, Azure blob "
                          "service or container URL (https://ACCOUNT.blob.core.windows.net[/container]; Azurite: "
                          "http://127.0.0.1:PORT/devstoreaccount1), or an HTTP server URL (prefix of the URLs)")
    add.add_argument("--region", help="OSS region, e.g. cn-hangzhou")
    add.add_argument("--access-key-id", help="OSS AccessKey id")
    add.add_argument("--path-style", action="store_true", help="OSS: address buckets as ENDPOINT/bucket/key")
    add.add_argument("--account-name", help="Azure storage account name (shared-key)")
    add.add_argument("--username", help="HTTP basic authentication user name")
    add.add_argument("--secret-env", metavar="VAR", help="read the secret from this environment variable")
    verbs.add_parser("list", help="list accounts (never secrets)")
    remove = verbs.add_parser("remove", help="remove an account and its keyring entry")
    remove.add_argument("name", metavar="NAME")
    test = verbs.add_parser("test", help="make one cheap request with the account's credentials")
    test.add_argument("name", metavar="NAME")
    add_network_options(test)
    accounts.set_defaults(subparser=accounts)


def run_blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to the end from synchronous code, even when this thread already runs an event loop
    (then on a short-lived helper thread, so the caller's loop is not re-entered)."""
    import asyncio
    import concurrent.futures

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rusty-cat-sync") as pool:
        return pool.submit(asyncio.run, main()).result()


class _Usage(Exception):
    """A command-line mistake (exit 2)."""


def account_from_args(args: argparse.Namespace) -> Account:
    """The profile the ``add`` options describe (not yet validated); options that do not apply are refused."""
    from app.manager.accounts import Account

    provider = Provider(args.provider)
    auth = Auth(args.auth) if args.auth else AUTHS[provider][0]
    fields: dict[str, str] = {}
    for key, option, auths in _FIELD_OPTIONS:
        value = getattr(args, key, None)
        if value is None:
            continue
        if auth not in auths:
            raise _Usage(f"{option} does not apply to a {provider.value} account with {auth.value} authentication")
        fields[key] = value
    if args.path_style:
        if auth is not Auth.ACCESS_KEY:
            raise _Usage("--path-style applies to aliyun-oss accounts with access-key authentication only")
        fields["path_style"] = "true"
    return Account(args.name, provider, auth, args.endpoint, fields)


def _read_secret(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.secret_env:
        value = os.environ.get(args.secret_env)
        if not value:
            raise _Usage(f"environment variable {args.secret_env} is not set or empty")
        return value
    if stdin.isatty():
        import getpass

        return getpass.getpass("secret: ")
    return stdin.readline().rstrip("\r\n")


def _keyring_message(exc: SecretStoreUnavailable) -> str:
    from app.manager.secrets import SecretStoreLocked

    if isinstance(exc, SecretStoreLocked) or getattr(exc, "locked", False):
        return f"the OS keyring is locked ({exc.problem}); unlock it and try again"
    return (f"no usable OS keyring: {exc.problem}. Rusty Cat keeps secrets only in the OS keyring: start a Secret "
            "Service (GNOME Keyring, KWallet, or KeePassXC with Secret Service) or name a keyring backend with "
            f"PYTHON_KEYRING_BACKEND. {_NO_SESSION_ONLY}")


async def _run(args: argparse.Namespace, store: AccountStore, stdin: TextIO, stdout: TextIO,
               stderr: TextIO) -> int:
    from app.manager.accounts import AccountError
    from app.manager.secrets import SecretStoreUnavailable

    if args.verb == "list":
        for a in await store.list():
            print(f"{a.name}\t{a.provider.value}\t{a.auth.value}\t{a.endpoint}\t{a.describe()}".rstrip("\t"),
                  file=stdout)
        return EXIT_OK
    if args.verb == "remove":
        await store.remove(args.name)
        print(f"removed account {args.name}", file=stderr)
        return EXIT_OK
    if args.verb == "test":
        print(await store.test_connection(args.name), file=stdout)
        return EXIT_OK
    account = account_from_args(args).normalized()
    try:
        account.validate()
    except AccountError as exc:
        raise _Usage(str(exc)) from None
    secret = None
    if account.has_secret:
        if not await store.secrets.probe():  # say so before asking for a secret that could not be kept
            raise SecretStoreUnavailable(store.secrets.unavailable_reason or "", problem=store.secrets.problem)
        secret = _read_secret(args, stdin)
    await store.add(account, secret)
    where = f"; its secret is in the OS keyring ({store.secrets.backend_name})" if account.has_secret else ""
    print(f"added account {account.name} ({account.provider.value}, {account.auth.value}){where}", file=stderr)
    return EXIT_OK


def run(args: argparse.Namespace, store: AccountStore | None = None, stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """Run one ``accounts`` verb; returns the exit status (2: bad input, 1: keyring, network or server trouble)."""
    from app.manager.accounts import AccountError, AccountStore
    from app.manager.database import Database, DatabaseError
    from app.manager.network import HttpClients
    from app.manager.secrets import SecretStore, SecretStoreUnavailable

    password: str | None = None
    try:
        network, password = network_from_options(getattr(args, "proxy", None), getattr(args, "noproxy", None),
                                                 getattr(args, "cacert", None))
        clients = HttpClients.for_settings(network, password) if network is not None else None
    except (NetworkOptionError, ValueError) as exc:
        print(f"rusty-cat-cli accounts: error: {_scrubbed(str(exc), password)}", file=stderr)
        return EXIT_USAGE

    async def main() -> int:
        if store is not None:
            if clients is not None:
                store.http_clients = clients
            return await _run(args, store, stdin, stdout, stderr)
        db = await Database.open()
        try:
            return await _run(args, AccountStore(db, SecretStore(), http_clients=clients), stdin, stdout, stderr)
        finally:
            await db.close()

    try:
        return run_blocking(main)
    except SecretStoreUnavailable as exc:  # also AccountKeyringError
        print(f"rusty-cat-cli accounts: error: {_keyring_message(exc)}", file=stderr)
        return EXIT_FAILED
    except _Usage as exc:
        print(f"rusty-cat-cli accounts: error: {exc}", file=stderr)
        return EXIT_USAGE
    except AccountError as exc:
        print(f"rusty-cat-cli accounts: error: {_scrubbed(str(exc), password)}", file=stderr)
        return EXIT_USAGE if args.verb == "add" else EXIT_FAILED
    except DatabaseError as exc:
        print(f"rusty-cat-cli accounts: error: {exc}", file=stderr)
        return EXIT_FAILED
