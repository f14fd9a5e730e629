"""``rusty-cat-cli accounts add|list|remove``: storage accounts whose secret lives in the OS keyring only.

The secret is read from the environment variable named by ``--secret-env`` or else from standard input (one
line; not echoed on a terminal), never from the command line, where it would land in shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TextIO

from app.accounts import Account, AccountError, AccountStore, Provider

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    accounts = sub.add_parser("accounts", help="manage Aliyun OSS and Azure Blob accounts (secrets in the keyring)",
                              description="Accounts name an endpoint and its credentials; use them as "
                                          "oss://ACCOUNT/bucket/key or azure://ACCOUNT/container/blob.")
    verbs = accounts.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="add an account", description="Add an account. The secret (AccessKey "
                           "secret or storage account key) is read from $VAR with --secret-env VAR, otherwise "
                           "from standard input, and stored in the OS keyring only.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--provider", required=True, choices=[p.value for p in Provider])
    add.add_argument("--endpoint", required=True, metavar="URL",
                     help="OSS endpoint (https://oss-cn-hangzhou.aliyuncs.com) or Azure blob service URL "
                          "(https://ACCOUNT.blob.core.windows.net; Azurite: http://127.0.0.1:PORT/devstoreaccount1)")
    add.add_argument("--region", help="OSS region, e.g. cn-hangzhou")
    add.add_argument("--access-key-id", help="OSS AccessKey id")
    add.add_argument("--path-style", action="store_true", help="OSS: address buckets as ENDPOINT/bucket/key")
    add.add_argument("--account-name", help="Azure storage account name")
    add.add_argument("--secret-env", metavar="VAR", help="read the secret from this environment variable")
    verbs.add_parser("list", help="list accounts (never secrets)")
    remove = verbs.add_parser("remove", help="remove an account and its keyring entry")
    remove.add_argument("name", metavar="NAME")
    accounts.set_defaults(subparser=accounts)


def _read_secret(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.secret_env:
        value = os.environ.get(args.secret_env)
        if not value:
            raise AccountError(f"environment variable {args.secret_env} is not set or empty")
        return value
    if stdin.isatty():
        return getpass.getpass("secret: ")
    return stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace, store: AccountStore | None = None, stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    store = store or AccountStore()
    try:
        if args.verb == "list":
            for a in store.list():
                detail = (f"region={a.region} key-id={a.access_key_id}{' path-style' if a.path_style else ''}"
                          if a.provider is Provider.ALIYUN_OSS else f"account={a.account_name}")
                print(f"{a.name}\t{a.provider.value}\t{a.endpoint}\t{detail}", file=stdout)
            return EXIT_OK
        if args.verb == "remove":
            store.remove(args.name)
            print(f"removed account {args.name}", file=stderr)
            return EXIT_OK
        provider = Provider(args.provider)
        account = Account(
            name=args.name, provider=provider, endpoint=args.endpoint.rstrip("/"),
            region=args.region if provider is Provider.ALIYUN_OSS else None,
            access_key_id=args.access_key_id if provider is Provider.ALIYUN_OSS else None,
            path_style=bool(args.path_style) and provider is Provider.ALIYUN_OSS,
            account_name=args.account_name if provider is Provider.AZURE_BLOB else None,
        )
        account.validate()
        store.add(account, _read_secret(args, stdin))
        print(f"added account {args.name} ({provider.value}); its secret is in the OS keyring", file=stderr)
        return EXIT_OK
    except AccountError as exc:
        print(f"rusty-cat-cli accounts: error: {exc}", file=stderr)
        return EXIT_USAGE if args.verb == "add" and "keyring" not in str(exc) else EXIT_FAILED
