"""In-memory stand-ins for the manager and the account store, for dialog, tray and shell tests, and the jobs
that the table model and filter proxy tests share.

They follow the real contracts (app/manager/manager.py, accounts.py, secrets.py) closely enough to drive the
UI: they record what the UI asked for, and fail the way the real ones do (ManagerError, AccountError,
SecretStoreUnavailable) so tests can check what the user is shown. Kept in a uniquely named module, not in
conftest (machine-recipes §3: helpers imported from conftest clash between test folders).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from app.manager.accounts import Account, AccountError
from app.manager.jobs import Direction, Job, JobOptions, JobStatus, new_job_id
from app.manager.listener import Totals
from app.manager.manager import KEEP, ManagerError
from app.manager.network import NetworkSettings
from app.manager.secrets import SecretStoreUnavailable
from app.ui.job_table_model import JobTableModel

MiB = 1 << 20
GiB = 1 << 30


class JobSource(Protocol):
    """What the table tests need of tests.ui.fake_manager.FakeManager: it makes jobs and tells its listeners."""

    def add_listener(self, listener: Any) -> None: ...

    def make_job(self, name: str = ..., **fields: Any) -> Job: ...


def listening_model(manager: JobSource) -> JobTableModel:
    """A JobTableModel the manager reports to, as the window's model is."""
    model = JobTableModel()
    manager.add_listener(model)
    return model


def one_job_per_status(manager: JobSource) -> list[Job]:
    """One job in each status, plus a second active one: every sidebar entry and filter has something to show.

    Sizes and speeds differ (5 GiB, 900 MiB, 3 GiB, 10 B, 0, 0, 40 MiB; the active ones at 3 and 9 MB/s), so
    sorting by size or speed gives a known order.
    """
    return [
        manager.make_job("active-movie.mkv", status=JobStatus.ACTIVE, total=5 * GiB, speed=3e6),
        manager.make_job("queued.iso", status=JobStatus.QUEUED, total=900 * MiB),
        manager.make_job("paused.tar", status=JobStatus.PAUSED, total=3 * GiB, remote="oss://Work/Bucket/paused.tar"),
        manager.make_job("done.zip", status=JobStatus.COMPLETED, total=10),
        manager.make_job("broken.bin", status=JobStatus.FAILED, error="HTTP 403 AccessDenied (E_REMOTE)"),
        manager.make_job("canceled.bin", status=JobStatus.CANCELED),
        manager.make_job("active-music.flac", status=JobStatus.ACTIVE, total=40 * MiB, speed=9e6),
    ]


class FakeManager:
    """Records intents; URLs or paths containing ``bad`` are refused with a ManagerError."""

    def __init__(self) -> None:
        self.downloads: list[tuple[str, str, JobOptions | None]] = []
        self.uploads: list[tuple[str, str, JobOptions | None]] = []
        self.calls: list[tuple[Any, ...]] = []
        self.listeners: list[Any] = []
        self.totals_value = Totals()
        self.opened = False
        self.closed = False
        self.accounts: Any = None
        self.default_connections = 4
        self.default_chunk_size = 8 * 1024 * 1024
        self.network = NetworkSettings()
        self.network_error: ManagerError | None = None
        self.proxy_password: str | None = None

    async def open(self) -> None:
        await asyncio.sleep(0)
        self.opened = True
        self.calls.append(("open",))

    async def close(self) -> None:
        await asyncio.sleep(0)
        self.closed = True
        self.calls.append(("close",))

    def add_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Any) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    @property
    def jobs(self) -> Sequence[Job]:
        return []

    def totals(self) -> Totals:
        return self.totals_value

    async def add_download(self, url: str, destination: str, *, options: JobOptions | None = None,
                           headers: Sequence[tuple[str, str]] = ()) -> Job:
        await asyncio.sleep(0.01)
        if "bad" in url:
            raise ManagerError(f"The server answered 404 Not Found for {url.split('?')[0]}.")
        self.downloads.append((url, destination, options))
        return Job(new_job_id(), Direction.DOWNLOAD, url.rsplit("/", 1)[-1], destination, url, JobStatus.QUEUED,
                   options=options or JobOptions())

    async def add_upload(self, path: str, remote: str, *, options: JobOptions | None = None,
                         headers: Sequence[tuple[str, str]] = ()) -> Job:
        await asyncio.sleep(0.01)
        if "bad" in Path(path).name:
            raise ManagerError("The file cannot be read (permission denied).")
        self.uploads.append((path, remote, options))
        return Job(new_job_id(), Direction.UPLOAD, Path(path).name, path, remote, JobStatus.QUEUED,
                   options=options or JobOptions())

    async def pause_all(self) -> None:
        self.calls.append(("pause_all",))

    async def resume_all(self) -> None:
        self.calls.append(("resume_all",))

    async def set_rate_limit(self, bytes_per_second: int | None) -> None:
        self.calls.append(("set_rate_limit", bytes_per_second))

    async def set_concurrency(self, downloads: int, uploads: int) -> None:
        self.calls.append(("set_concurrency", downloads, uploads))

    async def set_network(self, settings: NetworkSettings, *, password: Any = KEEP, remember: bool = True) -> None:
        """As TransferManager.set_network: nothing changes when it refuses (``network_error``); the password is
        kept apart (``proxy_password``), as the real one keeps it in the keyring."""
        await asyncio.sleep(0)
        self.calls.append(("set_network", settings))
        if self.network_error is not None:
            raise self.network_error
        if password is not KEEP:
            self.proxy_password = password
        self.network = settings

    async def pause(self, job_ids: Iterable[str]) -> None:
        self.calls.append(("pause", list(job_ids)))

    async def resume(self, job_ids: Iterable[str]) -> None:
        self.calls.append(("resume", list(job_ids)))


class FakeSecretStore:
    def __init__(self, usable: bool = True) -> None:
        self.keyring_usable = usable
        self.session_only = False
        self.values: dict[str, str] = {}

    @property
    def backend_name(self) -> str:
        return "memory (this run only)" if self.session_only else "test keyring"

    def allow_session_only(self) -> None:
        self.session_only = True

    def check(self) -> None:
        if not self.keyring_usable and not self.session_only:
            raise SecretStoreUnavailable(
                "No usable keyring was found (no Secret Service on the session bus)."
            )


class FakeAccountStore:
    """Accounts in a dict, secrets in FakeSecretStore; names containing ``bad`` fail the connection test."""

    def __init__(self, accounts: Iterable[Account] = (), secrets: FakeSecretStore | None = None) -> None:
        self.secrets = secrets or FakeSecretStore()
        self.accounts: dict[str, Account] = {a.name: a for a in accounts}
        self.calls: list[tuple[Any, ...]] = []

    async def list(self) -> list[Account]:
        await asyncio.sleep(0)
        return list(self.accounts.values())

    async def get(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            raise AccountError(f"There is no account named {name}.") from None

    async def add(self, account: Account, secret: str | None) -> None:
        await asyncio.sleep(0)
        self.calls.append(("add", account.name))
        if account.name in self.accounts:
            raise AccountError(f"An account named {account.name} already exists.")
        if secret is not None:
            self.secrets.check()
            self.secrets.values[account.name] = secret
        self.accounts[account.name] = account

    async def update(self, account: Account, secret: str | None = None) -> None:
        await asyncio.sleep(0)
        self.calls.append(("update", account.name, secret is not None))
        if account.name not in self.accounts:
            raise AccountError(f"There is no account named {account.name}.")
        if secret is not None:
            self.secrets.check()
            self.secrets.values[account.name] = secret
        self.accounts[account.name] = replace(account)

    async def remove(self, name: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(("remove", name))
        self.accounts.pop(name)
        self.secrets.values.pop(name, None)

    async def secret(self, name: str) -> str | None:
        return self.secrets.values.get(name)

    async def test_connection(self, name: str) -> str:
        await asyncio.sleep(0.01)
        if "bad" in name:
            raise AccountError("The server refused the credentials (403 AuthorizationFailure).")
        return f"Connected to {self.accounts[name].endpoint}."
