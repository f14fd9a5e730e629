"""Account profiles: non-secret fields in a file, the secret only in the keyring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from app.accounts import KEYRING_SERVICE, Account, AccountError, AccountStore, Provider


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)


@pytest.fixture
def ring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


OSS = Account("prod-oss", Provider.ALIYUN_OSS, "https://oss-cn-hangzhou.aliyuncs.com", region="cn-hangzhou",
              access_key_id="LTAIexample")
AZ = Account("blob", Provider.AZURE_BLOB, "http://127.0.0.1:10000/devstoreaccount1", account_name="devstoreaccount1")


def test_add_list_get_secret_remove(tmp_path: Path, ring: MemoryKeyring) -> None:
    store = AccountStore(tmp_path / "accounts.json")
    store.add(OSS, "oss-secret-value")
    store.add(AZ, "YXp1cmUta2V5")
    assert [a.name for a in store.list()] == ["blob", "prod-oss"]
    assert store.get("prod-oss") == OSS
    assert store.secret("prod-oss") == "oss-secret-value"
    text = (tmp_path / "accounts.json").read_text()
    assert "oss-secret-value" not in text and "YXp1cmUta2V5" not in text
    assert ring.items[(KEYRING_SERVICE, "account:blob")] == "YXp1cmUta2V5"
    store.remove("prod-oss")
    assert [a.name for a in store.list()] == ["blob"]
    assert (KEYRING_SERVICE, "account:prod-oss") not in ring.items
    with pytest.raises(AccountError, match="no account named"):
        store.get("prod-oss")


@pytest.mark.parametrize("bad, match", [
    (Account("bad name", Provider.AZURE_BLOB, "http://h/a", account_name="acct"), "invalid account name"),
    (Account("x", Provider.AZURE_BLOB, "ftp://h/a", account_name="acct"), "invalid endpoint"),
    (Account("x", Provider.AZURE_BLOB, "http://h/a", account_name="UPPER"), "Azure storage account name"),
    (Account("x", Provider.ALIYUN_OSS, "http://h", region="oss-cn-hangzhou", access_key_id="k"), "OSS region"),
    (Account("x", Provider.ALIYUN_OSS, "http://h", region="cn-hangzhou"), "access-key-id"),
])
def test_bad_accounts_are_refused_clearly(tmp_path: Path, ring: MemoryKeyring, bad: Account, match: str) -> None:
    with pytest.raises(AccountError, match=match):
        AccountStore(tmp_path / "a.json").add(bad, "s")
    assert ring.items == {}


def test_duplicate_name_refused(tmp_path: Path, ring: MemoryKeyring) -> None:
    store = AccountStore(tmp_path / "a.json")
    store.add(AZ, "k")
    with pytest.raises(AccountError, match="already exists"):
        store.add(AZ, "k2")
    assert store.secret("blob") == "k"


def test_no_keyring_backend_is_said_plainly_and_nothing_is_written(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(AccountError, match="no usable OS keyring"):
            AccountStore(tmp_path / "a.json").add(AZ, "secret")
    finally:
        keyring.set_keyring(previous)
    assert not (tmp_path / "a.json").exists()
