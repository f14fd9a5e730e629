"""Storage accounts for the CLI (and later the app): profiles in a small JSON file, secrets in the OS keyring.

The profile file holds only what is not secret (endpoint, region, key id, account name); the AccessKey secret or
account key goes to ``keyring`` and nowhere else: not to the file, a log or an error message.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

import keyring
import keyring.errors
import platformdirs

from app.engine.checkpoint import write_atomic

KEYRING_SERVICE = "rusty-cat"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Provider(Enum):
    ALIYUN_OSS = "aliyun-oss"
    AZURE_BLOB = "azure-blob"


class AccountError(Exception):
    """A bad account definition or an unusable keyring, in words a user can act on."""


@dataclass(frozen=True)
class Account:
    name: str
    provider: Provider
    endpoint: str
    region: str | None = None  # OSS, e.g. cn-hangzhou
    access_key_id: str | None = None  # OSS
    path_style: bool = False  # OSS: http://endpoint/bucket/key instead of http://bucket.endpoint/key
    account_name: str | None = None  # Azure storage account

    def validate(self) -> None:
        if not _NAME.match(self.name):
            raise AccountError(f"invalid account name {self.name!r}: use letters, digits, '.', '_' or '-' "
                               "(at most 64, starting with a letter or digit)")
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AccountError(f"invalid endpoint {self.endpoint!r}: expected an http(s) URL")
        if self.provider is Provider.ALIYUN_OSS:
            if not self.region or not re.match(r"^[a-z0-9-]+$", self.region) or self.region.startswith("oss-"):
                raise AccountError(f"invalid OSS region {self.region!r}: expected e.g. cn-hangzhou (without 'oss-')")
            if not self.access_key_id:
                raise AccountError("an Aliyun OSS account needs --access-key-id")
        else:
            if not self.account_name or not re.match(r"^[a-z0-9]{3,24}$", self.account_name):
                raise AccountError(f"invalid Azure storage account name {self.account_name!r}: 3-24 lowercase "
                                   "letters and digits")

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["provider"] = self.provider.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Account:
        return cls(**{**data, "provider": Provider(data["provider"])})  # type: ignore[arg-type]


def default_path() -> Path:
    return platformdirs.user_config_path("rusty-cat") / "accounts.json"


def _keyring_user(name: str) -> str:
    return f"account:{name}"


class AccountStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def _read(self) -> dict[str, Account]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise AccountError(f"cannot read accounts file {self.path}: {exc}") from None
        try:
            return {item["name"]: Account.from_json(item) for item in raw.get("accounts", [])}
        except (KeyError, TypeError, ValueError) as exc:
            raise AccountError(f"accounts file {self.path} is damaged: {exc}") from None

    def _write(self, accounts: dict[str, Account]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": 1, "accounts": [a.to_json() for a in sorted(accounts.values(), key=lambda a: a.name)]}
        write_atomic(str(self.path), json.dumps(payload, indent=2).encode(), durable=True)

    def list(self) -> list[Account]:
        return sorted(self._read().values(), key=lambda a: a.name)

    def get(self, name: str) -> Account:
        account = self._read().get(name)
        if account is None:
            raise AccountError(f"no account named {name!r} (see: rusty-cat-cli accounts list)")
        return account

    def add(self, account: Account, secret: str) -> None:
        """Secret first (so a profile never exists without its secret), then the profile."""
        account.validate()
        if not secret:
            raise AccountError("the secret is empty")
        accounts = self._read()
        if account.name in accounts:
            raise AccountError(f"an account named {account.name!r} already exists; remove it first")
        try:
            keyring.set_password(KEYRING_SERVICE, _keyring_user(account.name), secret)
        except keyring.errors.KeyringError as exc:
            raise AccountError(_keyring_hint(exc)) from None
        accounts[account.name] = account
        self._write(accounts)

    def remove(self, name: str) -> None:
        accounts = self._read()
        if name not in accounts:
            raise AccountError(f"no account named {name!r}")
        del accounts[name]
        self._write(accounts)
        try:
            keyring.delete_password(KEYRING_SERVICE, _keyring_user(name))
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            raise AccountError(_keyring_hint(exc)) from None

    def secret(self, name: str) -> str:
        try:
            value = keyring.get_password(KEYRING_SERVICE, _keyring_user(name))
        except keyring.errors.KeyringError as exc:
            raise AccountError(_keyring_hint(exc)) from None
        if not value:
            raise AccountError(f"the secret of account {name!r} is not in the keyring; remove and add it again")
        return value


def _keyring_hint(exc: Exception) -> str:
    return (f"no usable OS keyring ({type(exc).__name__}): Rusty Cat keeps secrets only in the keyring. "
            "Start a Secret Service (e.g. gnome-keyring) or choose a backend with PYTHON_KEYRING_BACKEND.")
