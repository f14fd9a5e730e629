"""Account profiles: validation, non-secret fields in the history database, the secret only in the keyring, and the
one-time import of the old CLI's accounts.json."""

from __future__ import annotations

import argparse
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from app import cli_accounts
from app.manager.accounts import (
    Account,
    AccountError,
    AccountKeyringError,
    AccountStore,
    Auth,
    Provider,
    normalize_secret,
)
from app.manager.database import Database
from app.manager.secrets import SecretStore, SecretStoreUnavailable
from tests.manager import conftest as store_fixtures
from tests.support.memory_keyring import MemoryKeyring

# The account-store fixtures are tests/manager's (same store, same setup): bound here by name for pytest to find.
db, ring, store = store_fixtures.db, store_fixtures.ring, store_fixtures.store

SERVICE = "rusty-cat"
AZ_KEY = "YXp1cmUta2V5"  # base64 of "azure-key"
OSS = Account("prod-oss", Provider.ALIYUN_OSS, Auth.ACCESS_KEY, "https://oss-cn-hangzhou.aliyuncs.com",
              {"region": "cn-hangzhou", "access_key_id": "LTAIexample"})
AZ = Account("blob", Provider.AZURE_BLOB, Auth.SHARED_KEY, "http://127.0.0.1:10000/devstoreaccount1",
             {"account_name": "devstoreaccount1"})
SAS_TOKEN = "sv=2021-08-06&sr=c&sp=racwl&se=2099-01-01T00%3A00%3A00Z&sig=c2lnbmF0dXJl"


@pytest.mark.asyncio
async def test_add_list_get_secret_remove(store: AccountStore, ring: MemoryKeyring) -> None:
    await store.add(OSS, "oss-secret-value")
    await store.add(AZ, AZ_KEY)
    assert [a.name for a in await store.list()] == ["blob", "prod-oss"]
    assert await store.get("prod-oss") == OSS
    assert await store.secret("prod-oss") == "oss-secret-value"
    assert ring.values[(SERVICE, "account:blob")] == AZ_KEY
    await store.remove("prod-oss")
    assert [a.name for a in await store.list()] == ["blob"]
    assert (SERVICE, "account:prod-oss") not in ring.values
    with pytest.raises(AccountError, match="no account named 'prod-oss'"):
        await store.get("prod-oss")
    with pytest.raises(AccountError, match="no account named"):
        await store.remove("prod-oss")


@pytest.mark.asyncio
async def test_every_kind_of_account_round_trips(store: AccountStore, ring: MemoryKeyring) -> None:
    kinds = [
        (Account("web", Provider.HTTP, Auth.NONE, "https://files.example.com/"), None),
        (Account("api", Provider.HTTP, Auth.BEARER, "https://api.example.com/v1"), "tok-123"),
        (Account("dav", Provider.HTTP, Auth.BASIC, "https://dav.example.com", {"username": "ann"}), "pa ss"),
        (Account("signer", Provider.ALIYUN_OSS, Auth.PRESIGN_SERVICE, "https://sign.example.com/presign"), "tk"),
        (Account("box", Provider.AZURE_BLOB, Auth.SAS, "https://acct.blob.core.windows.net/box"), "?" + SAS_TOKEN),
        (OSS, "oss-secret"), (AZ, AZ_KEY),
    ]
    for account, secret in kinds:
        await store.add(account, secret)
    for account, secret in kinds:
        stored = await store.get(account.name)
        assert stored == account.normalized()
        expected = secret.lstrip("?") if secret else None
        assert await store.secret(account.name) == expected
    assert (await store.get("web")).endpoint == "https://files.example.com"  # trailing "/" dropped
    assert (SERVICE, "account:web") not in ring.values  # no secret, no keyring entry


@pytest.mark.parametrize("bad, secret, match", [
    (Account("bad name", Provider.AZURE_BLOB, Auth.SHARED_KEY, "http://h/a", {"account_name": "acct"}), AZ_KEY,
     "invalid account name"),
    (Account("x", Provider.AZURE_BLOB, Auth.SHARED_KEY, "ftp://h/a", {"account_name": "acct"}), AZ_KEY,
     "invalid endpoint"),
    (Account("x", Provider.AZURE_BLOB, Auth.SHARED_KEY, "https://h:99999", {"account_name": "acct"}), AZ_KEY,
     "invalid endpoint"),
    (Account("x", Provider.HTTP, Auth.BASIC, "https://user:pw@h", {"username": "u"}), "Pw-9a8b",
     "not in the URL"),
    (Account("x", Provider.AZURE_BLOB, Auth.SHARED_KEY, "http://h/a", {"account_name": "UPPER"}), AZ_KEY,
     "Azure storage account name"),
    (Account("x", Provider.ALIYUN_OSS, Auth.ACCESS_KEY, "http://h", {"region": "oss-cn-hangzhou",
                                                                     "access_key_id": "k"}), "Sk-1", "OSS region"),
    (Account("x", Provider.ALIYUN_OSS, Auth.ACCESS_KEY, "http://h", {"region": "cn-hangzhou"}), "Sk-1",
     "access-key-id"),
    (Account("x", Provider.HTTP, Auth.BASIC, "http://h"), "Pw-9a8b", "user name"),
    (Account("x", Provider.HTTP, Auth.SHARED_KEY, "http://h", {"account_name": "acct"}), AZ_KEY,
     "cannot use 'shared-key'"),
    (Account("x", Provider.AZURE_BLOB, Auth.SAS, f"https://a.blob.core.windows.net/c?{SAS_TOKEN}"), SAS_TOKEN,
     "SAS goes into the secret"),
    (Account("x", Provider.HTTP, Auth.BEARER, "https://h"), None, "secret of a bearer account is missing"),
    (Account("x", Provider.HTTP, Auth.BEARER, "https://h"), "two\nlines", "line break"),
    (Account("x", Provider.HTTP, Auth.NONE, "https://h"), "unexpected", "takes no secret"),
    (Account("x", Provider.AZURE_BLOB, Auth.SHARED_KEY, "http://h", {"account_name": "acct"}), "not base64!!",
     "not valid base64"),
])
@pytest.mark.asyncio
async def test_bad_accounts_are_refused_clearly(store: AccountStore, ring: MemoryKeyring, bad: Account,
                                                secret: str | None, match: str) -> None:
    with pytest.raises(AccountError, match=match) as err:
        await store.add(bad, secret)
    assert not secret or secret not in str(err.value)
    assert ring.values == {}
    assert await store.list() == []


@pytest.mark.parametrize("token, match", [
    ("sv=2021-08-06&sr=c&sp=r", "no sig="),
    ("sr=c&sig=abc", "no sv="),
    ("sv=2021-08-06&ss=b&srt=sco&sp=rl&sig=abc", "account SAS"),
    ("sv=2021-08-06&sr=b&sp=r&sig=abc", "blob SAS"),
    ("https://a.blob.core.windows.net/c?sv=2021-08-06&sr=c&sig=abc", "not the URL"),
])
def test_sas_secrets_must_be_container_tokens(token: str, match: str) -> None:
    account = Account("box", Provider.AZURE_BLOB, Auth.SAS, "https://a.blob.core.windows.net/c")
    with pytest.raises(AccountError, match=match) as err:
        normalize_secret(account, token)
    assert "sig=abc" not in str(err.value)
    assert normalize_secret(account, f" ?{SAS_TOKEN}\n") == SAS_TOKEN


@pytest.mark.asyncio
async def test_duplicate_name_refused_and_the_first_secret_kept(store: AccountStore) -> None:
    await store.add(AZ, AZ_KEY)
    with pytest.raises(AccountError, match="already exists"):
        await store.add(AZ, "b3RoZXIta2V5")
    assert await store.secret("blob") == AZ_KEY


@pytest.mark.asyncio
async def test_no_keyring_backend_is_said_plainly_and_nothing_is_written(db: Database, tmp_path: Path) -> None:
    store = AccountStore(db, SecretStore(fail.Keyring()), legacy_path=tmp_path / "none.json")
    with pytest.raises(AccountKeyringError, match="No usable OS keyring") as err:
        await store.add(AZ, AZ_KEY)
    assert isinstance(err.value, SecretStoreUnavailable)  # so the window can offer "keep for this run only"
    assert not err.value.locked
    assert await store.list() == []
    # An account without a secret needs no keyring at all.
    await store.add(Account("web", Provider.HTTP, Auth.NONE, "https://files.example.com"), None)
    assert [a.name for a in await store.list()] == ["web"]
    # The user's explicit choice: secrets in memory for this run.
    store.secrets.allow_session_only()
    await store.add(AZ, AZ_KEY)
    assert await store.secret("blob") == AZ_KEY
    assert store.secrets.backend_name == "memory (this run only)"


def write_legacy(path: Path, accounts: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "accounts": accounts}), encoding="utf-8")


LEGACY = [
    {"name": "old-oss", "provider": "aliyun-oss", "endpoint": "http://127.0.0.1:9/", "region": "cn-shanghai",
     "access_key_id": "LTAIold", "path_style": True, "account_name": None},
    {"name": "old-az", "provider": "azure-blob", "endpoint": "http://127.0.0.1:10000/devstoreaccount1",
     "region": None, "access_key_id": None, "path_style": False, "account_name": "devstoreaccount1"},
]


@pytest.mark.asyncio
async def test_old_cli_accounts_are_imported_once(db: Database, ring: MemoryKeyring, tmp_path: Path) -> None:
    legacy = Path(os.environ["XDG_CONFIG_HOME"]) / "rusty-cat" / "accounts.json"  # where the old CLI kept them
    write_legacy(legacy, LEGACY)
    ring.values[(SERVICE, "account:old-oss")] = "old-oss-secret"  # where the old CLI put them
    ring.values[(SERVICE, "account:old-az")] = AZ_KEY
    before = AccountStore(db, SecretStore(ring), legacy_path=tmp_path / "absent.json")
    await before.add(Account("old-az", Provider.HTTP, Auth.NONE, "https://kept.example.com"), None)
    store = AccountStore(db, SecretStore(ring))  # the default legacy path
    accounts = {a.name: a for a in await store.list()}
    assert accounts["old-oss"] == Account("old-oss", Provider.ALIYUN_OSS, Auth.ACCESS_KEY, "http://127.0.0.1:9",
                                          {"region": "cn-shanghai", "access_key_id": "LTAIold",
                                           "path_style": "true"})
    assert accounts["old-oss"].path_style
    assert accounts["old-az"].endpoint == "https://kept.example.com"  # an existing profile wins
    assert await store.secret("old-oss") == "old-oss-secret"  # same keyring key: nothing moved
    assert not legacy.exists() and legacy.with_name("accounts.json.imported").exists()
    assert not any(op == "set" for op, _, _ in ring.calls)
    # A second store (the next start) finds nothing more to import.
    again = AccountStore(db, SecretStore(ring))
    assert [a.name for a in await again.list()] == ["old-az", "old-oss"]


@pytest.mark.asyncio
async def test_a_damaged_old_accounts_file_is_left_alone(db: Database, ring: MemoryKeyring, tmp_path: Path) -> None:
    legacy = tmp_path / "accounts.json"
    legacy.write_text("{not json", encoding="utf-8")
    store = AccountStore(db, SecretStore(ring), legacy_path=legacy)
    assert await store.list() == []
    assert legacy.read_text(encoding="utf-8") == "{not json"


# ---------------------------------------------------------------------------------------------- rusty-cat-cli accounts
def cli(args: list[str], store: AccountStore | None = None, stdin: str = "") -> tuple[int, str, str, io.StringIO]:
    parser = argparse.ArgumentParser(prog="rusty-cat-cli")
    cli_accounts.add_parser(parser.add_subparsers(dest="command"))
    given = io.StringIO(stdin)
    out, err = io.StringIO(), io.StringIO()
    code = cli_accounts.run(parser.parse_args(["accounts", *args]), store, stdin=given, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue(), given


@pytest.fixture
def sync_store(tmp_path: Path, ring: MemoryKeyring) -> Iterator[AccountStore]:
    database = Database.open_sync(tmp_path / "cli.sqlite3")
    yield AccountStore(database, SecretStore(ring), legacy_path=tmp_path / "none.json")
    database.close_sync()


def test_cli_adds_every_kind_and_lists_them_without_secrets(sync_store: AccountStore, ring: MemoryKeyring,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_SAS", "?" + SAS_TOKEN)
    runs = [
        cli(["add", "api", "--provider", "http", "--auth", "bearer", "--endpoint", "https://api.example.com"],
            sync_store, stdin="bearer-tok\n"),
        cli(["add", "dav", "--provider", "http", "--auth", "basic", "--username", "ann", "--endpoint",
             "https://dav.example.com"], sync_store, stdin="basic-pw\n"),
        cli(["add", "box", "--provider", "azure-blob", "--auth", "sas", "--endpoint",
             "https://acct.blob.core.windows.net/box", "--secret-env", "RC_SAS"], sync_store),
        cli(["add", "signer", "--provider", "aliyun-oss", "--auth", "presign-service", "--endpoint",
             "https://sign.example.com/presign"], sync_store, stdin="presign-tok\n"),
        cli(["add", "web", "--provider", "http", "--endpoint", "https://files.example.com"], sync_store,
            stdin="never read\n"),
    ]
    assert [code for code, _, _, _ in runs] == [0] * 5, [e for _, _, e, _ in runs]
    assert runs[-1][3].tell() == 0  # an account without authentication asks for no secret
    code, out, err, _ = cli(["list"], sync_store)
    assert code == 0 and out.splitlines() == [
        "api\thttp\tbearer\thttps://api.example.com",
        "box\tazure-blob\tsas\thttps://acct.blob.core.windows.net/box\tcontainer=box",
        "dav\thttp\tbasic\thttps://dav.example.com\tuser=ann",
        "signer\taliyun-oss\tpresign-service\thttps://sign.example.com/presign",
        "web\thttp\tnone\thttps://files.example.com",
    ]
    everything = out + err + "".join(o + e for _, o, e, _ in runs)
    for secret in ("bearer-tok", "basic-pw", "sig=", "presign-tok"):
        assert secret not in everything
    assert ring.values[(SERVICE, "account:box")] == SAS_TOKEN
    assert cli(["remove", "box"], sync_store)[0] == 0
    assert (SERVICE, "account:box") not in ring.values


@pytest.mark.parametrize("args, message", [
    (["add", "x", "--provider", "azure-blob", "--endpoint", "http://h/a", "--region", "cn-hangzhou",
      "--account-name", "acct"], "--region does not apply to a azure-blob account with shared-key"),
    (["add", "x", "--provider", "http", "--auth", "sas", "--endpoint", "http://h"], "cannot use 'sas'"),
    (["add", "x", "--provider", "azure-blob", "--auth", "sas", "--endpoint", "http://h/c", "--path-style"],
     "--path-style applies to aliyun-oss"),
    (["add", "x", "--provider", "aliyun-oss", "--endpoint", "https://o.example.com", "--region", "oss-cn-hangzhou",
      "--access-key-id", "k"], "OSS region"),
    (["add", "x", "--provider", "http", "--auth", "bearer", "--endpoint", "http://h", "--secret-env", "RC_UNSET"],
     "RC_UNSET is not set"),
])
def test_cli_usage_mistakes_exit_2(sync_store: AccountStore, ring: MemoryKeyring, args: list[str],
                                   message: str) -> None:
    code, _, err, _ = cli(args, sync_store, stdin="some-secret\n")
    assert code == 2 and message in err, err
    assert ring.values == {}


def test_cli_without_a_keyring_says_so_before_asking_for_the_secret(tmp_path: Path) -> None:
    database = Database.open_sync(tmp_path / "cli.sqlite3")
    try:
        store = AccountStore(database, SecretStore(fail.Keyring()), legacy_path=tmp_path / "none.json")
        code, _, err, given = cli(["add", "az", "--provider", "azure-blob", "--endpoint",
                                   "http://127.0.0.1:1/devstoreaccount1", "--account-name", "devstoreaccount1"],
                                  store, stdin=AZ_KEY + "\n")
        assert code == 1 and given.tell() == 0
        assert "no usable OS keyring: no keyring backend is available" in err
        assert "cannot keep a secret for this run only" in err and "PYTHON_KEYRING_BACKEND" in err
        assert cli(["list"], store)[1] == ""
    finally:
        database.close_sync()


def test_cli_default_store_and_test_verb(ring: MemoryKeyring) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(ring)  # what SecretStore() finds, like the OS keyring
    try:
        assert cli(["add", "gone", "--provider", "http", "--auth", "bearer", "--endpoint", "http://127.0.0.1:9"],
                   stdin="tok-x\n")[0] == 0
        code, _, err, _ = cli(["test", "gone"])
        assert code == 1 and "cannot reach 127.0.0.1:9" in err and "tok-x" not in err
        assert cli(["list"])[1].startswith("gone\thttp\tbearer")
    finally:
        keyring.set_keyring(previous)
    history = Path(os.environ["XDG_DATA_HOME"]) / "rusty-cat" / "history.sqlite3"  # the window's history file
    assert history.exists() and b"tok-x" not in history.read_bytes()
