"""An in-memory stand-in for TransferManager's public contract, for model and window unit tests.

It keeps jobs in a list, notifies listeners the way the real manager does (jobs_added / jobs_changed /
jobs_removed / job_finished, on the calling loop), changes statuses for pause/resume/cancel/retry/remove,
and records every call so a test can assert what the window asked for. Nothing moves bytes: tests that need
real transfers use the real manager.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.manager.accounts import Account, AccountError
from app.manager.jobs import Direction, Job, JobOptions, JobStatus, new_job_id
from app.manager.listener import ManagerListener, Totals
from app.manager.manager import KEEP, ManagerError
from app.manager.network import NetworkSettings


@dataclass
class FakeAccounts:
    """An in-memory ``manager.accounts`` (AccountStore's async API), enough for the dialogs the window opens."""

    accounts: dict[str, Account] = field(default_factory=dict)
    secrets: dict[str, str | None] = field(default_factory=dict)

    async def list(self) -> list[Account]:
        return list(self.accounts.values())

    async def get(self, name: str) -> Account:
        if name not in self.accounts:
            raise AccountError(f"There is no account named {name!r}.")
        return self.accounts[name]

    async def add(self, account: Account, secret: str | None) -> None:
        if account.name in self.accounts:
            raise AccountError(f"An account named {account.name!r} already exists.")
        self.accounts[account.name] = account
        self.secrets[account.name] = secret

    async def update(self, account: Account, secret: str | None = None) -> None:
        await self.get(account.name)
        self.accounts[account.name] = account
        if secret is not None:
            self.secrets[account.name] = secret

    async def remove(self, name: str) -> None:
        await self.get(name)
        del self.accounts[name]
        self.secrets.pop(name, None)

    async def secret(self, name: str) -> str | None:
        await self.get(name)
        return self.secrets.get(name)

    async def test_connection(self, name: str) -> str:
        await self.get(name)
        return "Connected (fake)."


class FakeManager:
    def __init__(self) -> None:
        self._jobs: list[Job] = []
        self.listeners: list[ManagerListener] = []
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fail: dict[str, ManagerError] = {}  # method name -> error to raise (e.g. {"pause": ManagerError(..)})
        self.rate_limit: int | None = None
        self.accounts = FakeAccounts()

    # ---- test helpers ---------------------------------------------------------------------------------------

    def make_job(self, name: str = "file.bin", *, direction: Direction = Direction.DOWNLOAD,
                 status: JobStatus = JobStatus.QUEUED, total: int = 0, done: int = 0, speed: float = 0.0,
                 eta: float | None = None, remote: str | None = None, error: str | None = None,
                 local_path: str | None = None, account: str | None = None) -> Job:
        """A job added to the list (listeners are told)."""
        job = Job(id=new_job_id(), direction=direction, name=name,
                  local_path=local_path or os.path.join("/tmp", "rusty-cat-tests", name),
                  remote=remote or f"https://example.test/files/{name}", status=status, account=account,
                  total_bytes=total, done_bytes=done, speed=speed, eta=eta, error=error)
        self._jobs.append(job)
        for listener in self.listeners:
            listener.jobs_added([job])
        return job

    def update(self, job: Job, **fields: Any) -> None:
        """Change a job's fields and tell listeners (what a progress record does)."""
        before = job.status
        for name, value in fields.items():
            setattr(job, name, value)
        self._notify_changed([job], finished=job.status is not before)

    def calls_to(self, method: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for name, args, kwargs in self.calls if name == method]

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((method, args, kwargs))
        if method in self.fail:
            raise self.fail[method]

    def _notify_changed(self, jobs: Sequence[Job], *, finished: bool = False) -> None:
        """jobs_changed, then job_finished for jobs that have just completed or failed (as the manager does)."""
        for listener in self.listeners:
            listener.jobs_changed(list(jobs))
        if not finished:
            return
        for job in jobs:
            if job.status in (JobStatus.COMPLETED, JobStatus.FAILED):
                for listener in self.listeners:
                    listener.job_finished(job)

    def _set_status(self, job_ids: Iterable[str], status: JobStatus, applies: Any) -> None:
        changed = []
        for job_id in job_ids:
            job = self.get(job_id)
            if applies(job):
                job.status = status
                job.speed = 0.0
                job.eta = None
                changed.append(job)
        if changed:
            self._notify_changed(changed)

    # ---- the contract ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        self._record("open")

    async def close(self) -> None:
        self._record("close")

    def add_listener(self, listener: ManagerListener) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: ManagerListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    @property
    def jobs(self) -> Sequence[Job]:
        return list(self._jobs)

    def get(self, job_id: str) -> Job:
        for job in self._jobs:
            if job.id == job_id:
                return job
        raise ManagerError(f"no such job: {job_id}")

    def totals(self) -> Totals:
        counts = dict.fromkeys(JobStatus, 0)
        down = up = 0.0
        for job in self._jobs:
            counts[job.status] += 1
            if job.status is JobStatus.ACTIVE:
                if job.direction is Direction.DOWNLOAD:
                    down += job.speed
                else:
                    up += job.speed
        running = [job for job in self._jobs if job.status.wants_to_run]
        return Totals(download_speed=down, upload_speed=up, active=counts[JobStatus.ACTIVE],
                      queued=counts[JobStatus.QUEUED], paused=counts[JobStatus.PAUSED],
                      completed=counts[JobStatus.COMPLETED],
                      failed=counts[JobStatus.FAILED] + counts[JobStatus.CANCELED], rate_limit=self.rate_limit,
                      done_bytes=sum(job.done_bytes for job in running),
                      total_bytes=sum(job.total_bytes for job in running))

    async def add_download(self, url: str, destination: str, *, options: JobOptions | None = None,
                           headers: Sequence[tuple[str, str]] = ()) -> Job:
        self._record("add_download", url, destination, options=options, headers=headers)
        name = url.rstrip("/").rsplit("/", 1)[-1] or "download"
        return self.make_job(name, direction=Direction.DOWNLOAD, remote=url,
                             local_path=os.path.join(destination, name))

    async def add_upload(self, path: str, remote: str, *, options: JobOptions | None = None,
                         headers: Sequence[tuple[str, str]] = ()) -> Job:
        self._record("add_upload", path, remote, options=options, headers=headers)
        return self.make_job(os.path.basename(path), direction=Direction.UPLOAD, remote=remote, local_path=path)

    async def pause(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        self._record("pause", ids)
        self._set_status(ids, JobStatus.PAUSED, lambda job: job.status.wants_to_run)

    async def resume(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        self._record("resume", ids)
        self._set_status(ids, JobStatus.QUEUED, lambda job: job.status is JobStatus.PAUSED)

    async def cancel(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        self._record("cancel", ids)
        self._set_status(ids, JobStatus.CANCELED, lambda job: not job.status.is_finished)

    async def retry(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        self._record("retry", ids)
        self._set_status(ids, JobStatus.QUEUED,
                         lambda job: job.status in (JobStatus.FAILED, JobStatus.CANCELED))

    async def remove(self, job_ids: Iterable[str], *, delete_files: bool = False) -> None:
        ids = list(job_ids)
        self._record("remove", ids, delete_files=delete_files)
        removed = {job.id for job in self._jobs if job.id in ids}
        self._jobs = [job for job in self._jobs if job.id not in removed]
        if removed:
            for listener in self.listeners:
                listener.jobs_removed([job_id for job_id in ids if job_id in removed])

    async def pause_all(self) -> None:
        self._record("pause_all")
        self._set_status([job.id for job in self._jobs], JobStatus.PAUSED, lambda job: job.status.wants_to_run)

    async def resume_all(self) -> None:
        self._record("resume_all")
        self._set_status([job.id for job in self._jobs], JobStatus.QUEUED,
                         lambda job: job.status is JobStatus.PAUSED)

    async def set_rate_limit(self, bytes_per_second: int | None) -> None:
        self._record("set_rate_limit", bytes_per_second)
        self.rate_limit = bytes_per_second

    async def set_concurrency(self, downloads: int, uploads: int) -> None:
        self._record("set_concurrency", downloads, uploads)

    async def set_network(self, settings: NetworkSettings, *, password: Any = KEEP, remember: bool = True) -> None:
        self._record("set_network", settings, password=password, remember=remember)
        self.network = settings
