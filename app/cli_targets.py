"""What a CLI URL means, for the current ``rusty-cat-cli``: a synchronous wrapper over
:func:`app.manager.accounts.resolve_remote`, which does the work (plain HTTP, an Azure SAS URL, an OSS presigned URL,
``oss://ACCOUNT/bucket/key`` / ``azure://ACCOUNT/container/blob`` through a stored account, HTTP accounts' headers).

Kept while the CLI moves onto the TransferManager; new code should call ``resolve_remote`` directly.
"""

from __future__ import annotations

import platformdirs

from app.cli_accounts import run_blocking
from app.manager.accounts import (
    AccountStore,
    Target,
    TargetError,
    is_oss_presigned,
    is_storage_url,
    resolve_remote,
    split_storage_url,
)
from app.manager.database import Database
from app.manager.secrets import SecretStore

__all__ = ["Target", "TargetError", "is_oss_presigned", "is_storage_url", "resolve", "run_blocking", "session_dir"]

_split_storage_url = split_storage_url  # the name app/cli.py uses


def session_dir() -> str:
    """Provider upload sessions (upload ids, part ETags; never secrets) live in the per-user state folder."""
    return str(platformdirs.user_state_path("rusty-cat") / "upload-sessions")


def _needs_accounts(url: str) -> bool:
    from app.providers.azure_blob import is_sas_url

    return is_storage_url(url) or not (is_sas_url(url) or is_oss_presigned(url))


def resolve(url: str, direction: str, store: AccountStore | None = None) -> Target:
    """The engine task URL, plugin and headers for ``url``; ``direction`` is "upload" or "download".

    Without ``store`` the default history file and keyring are used (opened only when the URL may involve an
    account). Raises TargetError for a usage mistake, AccountError when an account's secret cannot be had.
    """
    if store is not None:
        return run_blocking(lambda: resolve_remote(store, url, direction, session_dir()))
    if not _needs_accounts(url):
        return run_blocking(lambda: resolve_remote(None, url, direction, session_dir()))

    async def with_default_store() -> Target:
        db = await Database.open()
        try:
            return await resolve_remote(AccountStore(db, SecretStore()), url, direction, session_dir())
        finally:
            await db.close()

    return run_blocking(with_default_store)
