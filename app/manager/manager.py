"""TransferManager: the application core the window and the CLI share.

A job is the user's intent, kept in the history (SQLite); an engine task is one attempt at it in this process.
The manager turns jobs into tasks (account secrets read from the keyring at the last moment), listens to the
engine's global progress listener, keeps speed/ETA, tells its listeners what changed about ten times a second,
and writes progress to the history in batches off the loop. Closing pauses every transfer and leaves the
jobs' intent in the history, so the next ``open()`` resumes them; jobs the user paused stay paused.

Network settings (:class:`~app.manager.network.NetworkSettings`: proxy, bypass list, CA bundle; the proxy password in
the keyring) apply to every request: the engine's, and the manager's own (file-name probe, connection tests, the
presign service), whose clients :class:`~app.manager.network.HttpClients` builds through the engine. Changing them
while transfers run replaces the engine client: the running transfers pause on the old one (keeping their
checkpoints and upload sessions) and resume on the new one, so new requests take the new route at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from app.engine.api import (
    DownloadPounceBuilder,
    FileTransferRecord,
    MeowClient,
    MeowConfig,
    MeowError,
    PounceTask,
    TaskId,
    TransferStatus,
    UploadPounceBuilder,
    redact_url,
)
from app.engine.checkpoint import sidecars
from app.engine.record import Direction
from app.filenames import DEFAULT_NAME
from app.manager.accounts import AccountError, AccountStore, resolve_remote
from app.manager.database import APP_DIR_NAME, DB_FILE_NAME, Database
from app.manager.error_text import describe_error, describe_for_people
from app.manager.job_lock import JobLocks
from app.manager.jobs import Job, JobOptions, JobStatus, new_job_id
from app.manager.listener import ManagerListener, Totals
from app.manager.naming import resolve_destination, unique_path
from app.manager.network import (
    PROXY_PASSWORD_KEY,
    HttpClients,
    NetworkSettings,
    NetworkSettingsError,
    check_ca_bundle_file,
    scrub_password,
)
from app.manager.rate_meter import RateMeter
from app.manager.secrets import SecretStore, SecretStoreUnavailable

log = logging.getLogger(__name__)

DEFAULT_CONNECTIONS = 4
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
DEFAULT_RETRIES = 8
NOTIFY_INTERVAL = 0.1  # seconds between listener batches (~10 repaints a second at most)
PERSIST_INTERVAL = 1.0  # seconds between progress writes to the history
EXTERNAL_POLL_INTERVAL = 2.0  # seconds between looks for jobs other processes (the CLI) changed
STALL_AFTER = 1.0  # seconds without a record after which an active job's speed starts falling
EARLY_NOTIFY_GAP = 0.025  # a finished job is reported at once unless listeners heard from us this recently
RUNNING_ELSEWHERE = "running in another Rusty Cat process (the command line?)"

_STATUS_OF_RECORD = {
    TransferStatus.PENDING: JobStatus.QUEUED,
    TransferStatus.TRANSMISSION: JobStatus.ACTIVE,
    TransferStatus.PAUSED: JobStatus.PAUSED,
    TransferStatus.COMPLETE: JobStatus.COMPLETED,
    TransferStatus.FAILED: JobStatus.FAILED,
    TransferStatus.CANCELED: JobStatus.CANCELED,
}


class ManagerError(Exception):
    """A request the manager refuses (bad URL, missing file, unknown account ...), as a sentence for the user.

    ``usage`` is False when the request was fine but the machine is not (no usable keyring): the CLI's exit
    status tells the two apart."""

    def __init__(self, message: str, *, usage: bool = True) -> None:
        super().__init__(message)
        self.usage = usage


class _Keep:
    """The proxy password argument's "leave it as it is"."""

    def __repr__(self) -> str:
        return "KEEP"


#: ``set_network(..., password=KEEP)``: keep the stored proxy password.
KEEP = _Keep()


def default_data_dir() -> Path:
    return platformdirs.user_data_path(APP_DIR_NAME)


def check_http_url(url: str) -> None:
    """Reject URLs that can never work before any network traffic; reachability is the engine's job."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range or not a number)
    except ValueError:
        raise ManagerError(f"malformed URL: {shown}") from None
    scheme = parts.scheme.lower()
    if scheme in ("oss", "azure"):
        return  # checked when the account is looked up
    if scheme not in ("http", "https"):
        raise ManagerError(f"unsupported URL scheme {parts.scheme or 'none'!r} in {shown} "
                           "(use http://, https://, oss:// or azure://)")
    if not parts.hostname:
        raise ManagerError(f"the URL has no host: {shown}")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ManagerError(f"the URL contains whitespace or control characters: {shown!r}")


def check_upload_source(path: str) -> int:
    """The size of the file to upload, or a ManagerError that says why it cannot be (blocking: call off the loop)."""
    if not os.path.exists(path):
        raise ManagerError(f"file not found: {path}")
    if os.path.isdir(path):
        raise ManagerError(f"{path} is a folder (a directory), not a file: upload the files in it")
    if not os.path.isfile(path):
        raise ManagerError(f"{path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise ManagerError(f"{path} is not readable")
    return os.path.getsize(path)


class TransferManager:
    """Jobs, history, accounts and restore on top of one MeowClient.

    Create it, ``await open()`` on the loop that should receive callbacks (qasync's in the app), use it, then
    ``await close()``. All listener calls happen on that loop.
    """

    def __init__(self, data_dir: str | Path | None = None, *, secrets: SecretStore | None = None,
                 engine_config: MeowConfig | None = None, session_dir: str | Path | None = None,
                 network: NetworkSettings | None = None) -> None:
        """``data_dir`` holds history.sqlite3 and the job locks (default: the platform data dir). ``network``: the
        proxy and CA settings to start with (checked by ``set_network``; default: the system's proxy settings)."""
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.session_dir = str(session_dir) if session_dir is not None else str(
            (self.data_dir if data_dir is not None else platformdirs.user_state_path(APP_DIR_NAME))
            / "upload-sessions")
        self.secrets = secrets if secrets is not None else SecretStore()
        self._config = engine_config or MeowConfig(max_download_concurrency=3, max_upload_concurrency=2)
        self._network = network if network is not None else NetworkSettings()
        self._proxy_password: str | None = None
        self._password_known = False  # _proxy_password is what the keyring holds (or the run-only one)
        self._network_lock = asyncio.Lock()  # one engine client switch at a time; actions wait for it
        self._retiring: set[TaskId] = set()  # tasks of a client being replaced: their pause is not the user's
        self._http = HttpClients(self._config)
        self._last_notify = 0.0
        self._notify_pending = False
        self._network_problem: str | None = None
        self.default_connections = DEFAULT_CONNECTIONS
        self.default_chunk_size = DEFAULT_CHUNK_SIZE
        self.retries = DEFAULT_RETRIES
        self._db: Database | None = None
        self._accounts: AccountStore | None = None
        self._client: MeowClient | None = None
        self._locks = JobLocks(self.data_dir / "locks")
        self._jobs: dict[str, Job] = {}
        self._task_of: dict[str, TaskId] = {}
        self._job_of: dict[TaskId, str] = {}
        self._meters: dict[str, RateMeter] = {}
        self._with_secret: set[str] = set()  # jobs whose full remote/headers are in the keyring
        # What this process stored for a job, kept in memory for the job's own runs: a file-backed keyring written
        # by two processes at once keeps only the last writer's file, so reading our own entry back can fail.
        self._stored_secrets: dict[str, str] = {}
        self._last_record: dict[str, float] = {}
        self._changed: dict[str, None] = {}  # ordered set: jobs to report to listeners
        self._unsaved: dict[str, None] = {}  # jobs whose progress is not yet in the history
        self._finished: list[Job] = []
        self._save_soon = False
        self._listeners: list[ManagerListener] = []
        self._record_listeners: list[Callable[[Job, FileTransferRecord], None]] = []
        self._background: list[asyncio.Task[None]] = []
        self._rate_limit: int | None = None
        self._closing = False
        self._opened = False
        self._adopt = False  # run unfinished jobs of processes that died (the app, not the CLI)
        self._foreign: set[str] = set()  # jobs another process is running: their locks are checked each poll
        self._written_at: dict[str, float] = {}  # our own last write of each row, so the poll skips our writes
        self._seen_updated_at = 0.0

    # ------------------------------------------------------------------ life cycle
    @property
    def network_settings(self) -> NetworkSettings:
        """The proxy and CA settings in force (the password is not part of them)."""
        return self._network

    @property
    def network_problem(self) -> str | None:
        """Why the network settings apply only in part (the proxy password could not be read from the keyring at
        start: the proxy is used without it), for the window to show; None when they apply fully."""
        return self._network_problem

    @property
    def http_clients(self) -> HttpClients:
        """Makes httpx clients for requests beside the transfers, through the same proxy and CA bundle."""
        return self._http

    @property
    def accounts(self) -> AccountStore:
        if self._accounts is None:
            raise ManagerError("the transfer manager is not open")
        return self._accounts

    async def open(self, *, restore: bool = True) -> None:
        """Open the history and start the engine; with ``restore`` (the app) every job that was queued or active
        when the last process ended is started again. The CLI passes False: it runs only its own job."""
        if self._opened:
            raise ManagerError("the transfer manager is already open")
        config = await self._engine_config_for(self._network, tolerant=True)
        self._db = await Database.open(self.data_dir / DB_FILE_NAME)
        self._accounts = AccountStore(self._db, self.secrets, http_clients=self._http)
        self._config = config
        self._http.use(config)
        self._client = MeowClient(config)
        self._client.register_global_progress_listener(self._on_record)
        self._opened = True
        self._adopt = restore
        rows = await self._db.run(lambda c: c.execute("SELECT * FROM jobs ORDER BY created_at").fetchall())
        for row in rows:
            job = _job_from_row(row)
            self._jobs[job.id] = job
            if row["has_secret"]:
                self._with_secret.add(job.id)
            self._seen_updated_at = max(self._seen_updated_at, row["updated_at"])
        loop = asyncio.get_running_loop()
        self._background = [loop.create_task(self._notify_loop()), loop.create_task(self._persist_loop()),
                            loop.create_task(self._external_loop())]
        if restore:
            for job in list(self._jobs.values()):
                if not job.status.wants_to_run:
                    continue
                if job.direction is Direction.DOWNLOAD and await asyncio.to_thread(_download_finished, job):
                    # The process died between the engine's rename and the history write: done, not again.
                    self._set_status(job, JobStatus.COMPLETED)
                    continue
                job.status = JobStatus.QUEUED
                await self._start(job)

    async def close(self) -> None:
        """Pause every transfer (each keeps its partial state) and close the history. The jobs' intent stays
        as it was, so the next open() resumes what was running."""
        if not self._opened or self._closing:
            return
        self._closing = True
        async with self._network_lock:  # a client switch in progress ends first
            pass
        for t in self._background:
            t.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        assert self._client is not None and self._db is not None
        with contextlib.suppress(MeowError):
            await self._client.close()
        self._notify()
        await self._save()
        self._locks.release_all()
        await self._db.close()
        self._opened = False

    def add_listener(self, listener: ManagerListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ManagerListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def add_record_listener(self, callback: Callable[[Job, FileTransferRecord], None]) -> None:
        """Every engine record as it arrives, with its job (not coalesced): the CLI's --json lines."""
        self._record_listeners.append(callback)

    @property
    def jobs(self) -> Sequence[Job]:
        """Every job in the history, oldest first."""
        return list(self._jobs.values())

    def get(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise ManagerError(f"no job {job_id}") from None

    @property
    def rate_limit(self) -> int | None:
        return self._rate_limit

    def totals(self) -> Totals:
        """Counts, speeds and bytes over every job. The window asks several times a second with 10,000 jobs, so
        statuses are counted by identity in C (``list.count``) rather than by hashing each enum member: 4 ms
        instead of 16-24 ms, which showed in the UI's worst event-loop gaps."""
        jobs = list(self._jobs.values())
        statuses = [job.status for job in jobs]
        counts = {status: statuses.count(status) for status in JobStatus}
        active = [job for job in jobs if job.status is JobStatus.ACTIVE]
        down = sum([job.speed for job in active if job.direction is Direction.DOWNLOAD])
        up = sum([job.speed for job in active if job.direction is not Direction.DOWNLOAD])
        running = active + [job for job in jobs if job.status is JobStatus.QUEUED] if counts[JobStatus.QUEUED] \
            else active
        return Totals(download_speed=down, upload_speed=up, active=counts[JobStatus.ACTIVE],
                      queued=counts[JobStatus.QUEUED], paused=counts[JobStatus.PAUSED],
                      completed=counts[JobStatus.COMPLETED],
                      failed=counts[JobStatus.FAILED] + counts[JobStatus.CANCELED], rate_limit=self._rate_limit,
                      done_bytes=sum([job.done_bytes for job in running]),
                      total_bytes=sum([job.total_bytes for job in running]))

    # ------------------------------------------------------------------ adding jobs
    async def add_download(self, url: str, destination: str, *, options: JobOptions | None = None,
                           headers: Sequence[tuple[str, str]] = (), new_name: bool = True) -> Job:
        """Queue a download. ``url``: http(s) (also an Azure SAS / OSS presigned URL), or oss://ACCOUNT/bucket/key
        or azure://ACCOUNT/container/blob. ``destination``: an existing folder (the file name comes from the
        server or the URL) or a file path. With ``new_name`` a name already used by a file or another job gets
        " (1)"; without it (the CLI's explicit path) the file is replaced when the download completes.

        An unfinished job for the same URL and place is resumed instead of duplicated."""
        self._check_open()
        url = url.strip()
        check_http_url(url)
        options = options or JobOptions()
        target = await self._resolve(url, Direction.DOWNLOAD)
        shown = display_remote(url)
        into_folder = os.path.isdir(destination) or destination.endswith(("/", os.sep))
        destination = os.path.abspath(destination)
        for job in self._jobs.values():
            same_place = (os.path.dirname(job.local_path) == destination if into_folder
                          else job.local_path == destination)
            if (job.direction is Direction.DOWNLOAD and job.remote == shown and same_place
                    and job.status is not JobStatus.COMPLETED):
                await self._restart_existing(job, url, headers, options)
                return job
        all_headers = [*target.headers, *headers]
        path = await resolve_destination(target.url, destination + os.sep if into_folder else destination,
                                         all_headers, target.name, self._http)
        if new_name:
            taken = {j.local_path for j in self._jobs.values()
                     if j.direction is Direction.DOWNLOAD and not j.status.is_finished}
            path = await asyncio.to_thread(unique_path, path, taken.__contains__)
        job = Job(id=new_job_id(), direction=Direction.DOWNLOAD, name=os.path.basename(path) or DEFAULT_NAME,
                  local_path=path, remote=shown, status=JobStatus.QUEUED, account=_account_of(url),
                  options=options)
        await self._insert(job, url, headers)
        await self._start(job)
        return job

    async def add_upload(self, path: str, remote: str, *, options: JobOptions | None = None,
                         headers: Sequence[tuple[str, str]] = ()) -> Job:
        """Queue an upload of the file ``path`` to ``remote``: an http(s) endpoint of the default chunk protocol,
        an Azure blob SAS URL, oss://ACCOUNT/bucket/key or azure://ACCOUNT/container/blob.

        An unfinished job for the same file and remote is resumed instead of duplicated."""
        self._check_open()
        remote = remote.strip()
        check_http_url(remote)
        path = os.path.abspath(path)
        size = await asyncio.to_thread(check_upload_source, path)
        await self._resolve(remote, Direction.UPLOAD)  # bad account/URL: refuse now, not in the list
        shown = display_remote(remote)
        for job in self._jobs.values():
            if (job.direction is Direction.UPLOAD and job.local_path == path and job.remote == shown
                    and job.status is not JobStatus.COMPLETED):
                await self._restart_existing(job, remote, headers, options or job.options)
                return job
        job = Job(id=new_job_id(), direction=Direction.UPLOAD, name=os.path.basename(path), local_path=path,
                  remote=shown, status=JobStatus.QUEUED, account=_account_of(remote), options=options or JobOptions(),
                  total_bytes=size)
        await self._insert(job, remote, headers)
        await self._start(job)
        return job

    async def _restart_existing(self, job: Job, full_remote: str, headers: Sequence[tuple[str, str]],
                                options: JobOptions) -> None:
        """The user asked for this transfer again: continue the unfinished job, with what they gave this time
        (options, and the signed URL/headers, which may be fresh where the old ones expired)."""
        if job.id in self._task_of or self._locks.held(job.id):
            return  # already running here
        assert self._db is not None
        await self._store_secret(job, full_remote, headers)
        job.options = options
        opts = json.dumps(_options_json(options))
        await self._db.run(lambda c: c.execute("UPDATE jobs SET options=?, has_secret=? WHERE id=?",
                                               (opts, int(job.id in self._with_secret), job.id)))
        if job.status is JobStatus.PAUSED:
            await self.resume([job.id])
        elif job.status in (JobStatus.FAILED, JobStatus.CANCELED):
            await self.retry([job.id])
        else:
            await self._start(job)  # queued/active in the history but not running here (e.g. the CLI's rerun)

    async def _insert(self, job: Job, full_remote: str, headers: Sequence[tuple[str, str]]) -> None:
        """History row first, then the job is visible; the secret part (signed URL, headers) to the keyring.
        The job's lock is taken before the row exists, so another process polling the history never sees a new
        job unlocked and adopts it."""
        assert self._db is not None
        self._locks.acquire(job.id)
        try:
            await self._store_secret(job, full_remote, headers)
        except BaseException:
            self._locks.release(job.id, delete=True)
            raise
        row = _row_of(job, job.id in self._with_secret)
        self._written_at[job.id] = row["updated_at"]
        await self._db.run(lambda c: c.execute(
            f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())))
        self._jobs[job.id] = job
        self._call_listeners("jobs_added", [job])

    async def _store_secret(self, job: Job, full_remote: str, headers: Sequence[tuple[str, str]]) -> None:
        if full_remote == job.remote and not headers:
            self._with_secret.discard(job.id)
            self._stored_secrets.pop(job.id, None)
            return
        secret = json.dumps({"remote": full_remote, "headers": [list(h) for h in headers]})
        try:
            await self.secrets.set(_secret_key(job.id), secret)
        except SecretStoreUnavailable as exc:
            raise ManagerError(str(exc), usage=False) from None
        self._with_secret.add(job.id)
        self._stored_secrets[job.id] = secret

    async def _resolve(self, remote: str, direction: Direction) -> Any:
        try:
            return await resolve_remote(self.accounts, remote, direction, self.session_dir)
        except SecretStoreUnavailable as exc:
            raise ManagerError(str(exc), usage=False) from None
        except (AccountError, ValueError) as exc:
            raise ManagerError(str(exc)) from None

    # ------------------------------------------------------------------ running jobs
    async def _start(self, job: Job) -> None:
        """Give the job a fresh engine task (it resumes from its checkpoint / the remote session)."""
        if not self._locks.acquire(job.id):
            job.error = RUNNING_ELSEWHERE
            self._foreign.add(job.id)
            self._mark(job)
            return
        self._foreign.discard(job.id)
        try:
            task = await self._build_task(job)
            assert self._client is not None
            task_id = await self._client.try_enqueue(task, None, lambda _t, payload, j=job: self._on_result(j, payload))
        except (MeowError, ManagerError, AccountError, SecretStoreUnavailable, ValueError) as exc:
            self._locks.release(job.id)
            text = describe_for_people(exc) if isinstance(exc, MeowError) else str(exc)
            self._set_status(job, JobStatus.FAILED, error=self._scrub(text))
            return
        self._task_of[job.id] = task_id
        self._job_of[task_id] = job.id
        self._meters[job.id] = RateMeter()

    async def _build_task(self, job: Job) -> PounceTask:
        remote, headers = job.remote, []
        secret = None
        if job.id in self._with_secret:
            secret = self._stored_secrets.get(job.id) or await self.secrets.get(_secret_key(job.id))
            if secret is None:
                raise ManagerError("this job's signed URL is no longer in the keyring (was it kept for one run "
                                   "only?); add the transfer again")
            data = json.loads(secret)
            remote, headers = data["remote"], [tuple(h) for h in data["headers"]]
        target = await resolve_remote(self.accounts, remote, job.direction, self.session_dir)
        headers = [*target.headers, *headers]
        opts = job.options
        connections = opts.connections or self.default_connections
        chunk = opts.chunk_size or self.default_chunk_size
        if job.direction is Direction.DOWNLOAD:
            builder = (DownloadPounceBuilder(job.name, job.local_path, chunk, target.url)
                       .with_max_chunk_retries(self.retries).with_headers(headers)
                       .with_max_chunk_concurrency(connections).with_rate_limit(opts.rate_limit))
            if opts.sha256:
                builder = builder.with_expected_checksum("sha256", opts.sha256)
            if target.download is not None:
                builder = builder.with_breakpoint_download(target.download)
            return builder.build()
        up = (UploadPounceBuilder(job.name, job.local_path, chunk).with_url(target.url)
              .with_max_chunk_retries(self.retries).with_headers(headers)
              .with_max_chunk_concurrency(connections).with_rate_limit(opts.rate_limit))
        if target.upload is not None:
            up = up.with_breakpoint_upload(target.upload)
        return up.build()

    def _on_record(self, rec: FileTransferRecord) -> None:
        job_id = self._job_of.get(rec.task_id)
        job = self._jobs.get(job_id) if job_id is not None else None
        if job is None:
            return
        now = time.monotonic()
        if rec.total_size > 0:
            job.total_bytes = rec.total_size
        job.done_bytes = rec.transferred_bytes
        meter = self._meters.setdefault(job.id, RateMeter())
        meter.add(now, rec.transferred_bytes)
        self._last_record[job.id] = now
        status = _STATUS_OF_RECORD.get(rec.status)
        if status is JobStatus.PAUSED and (self._closing or rec.task_id in self._retiring):
            status = None  # closing or a client switch pauses the engine, not the user's intent
        if status is not None and status is not job.status:
            error = self._scrub(describe_for_people(rec.error)) if rec.error is not None else None
            self._set_status(job, status, error=error)
        job.speed = meter.rate() if job.status is JobStatus.ACTIVE else 0.0
        job.eta = meter.eta(job.total_bytes) if job.status is JobStatus.ACTIVE else None
        if rec.status.is_terminal:
            self._forget_task(job)
        self._mark(job)
        for callback in self._record_listeners:
            try:
                callback(job, rec)
            except Exception:
                log.exception("record listener %r failed", callback)

    def _on_result(self, job: Job, payload: str | None) -> None:
        if payload is not None:
            job.result = payload
            self._mark(job)

    def _set_status(self, job: Job, status: JobStatus, *, error: str | None = None) -> None:
        previous = job.status
        job.status = status
        job.error = error if status is JobStatus.FAILED else None
        if status.is_finished:
            job.finished_at = time.time()
            job.speed, job.eta = 0.0, None
            self._save_soon = True
            if status in (JobStatus.COMPLETED, JobStatus.FAILED) and previous is not status and not self._closing:
                self._finished.append(job)
                self._notify_early()
        else:
            job.finished_at = None
        if status is JobStatus.COMPLETED and job.total_bytes:
            job.done_bytes = job.total_bytes
        self._mark(job)

    def _forget_task(self, job: Job) -> None:
        task_id = self._task_of.pop(job.id, None)
        if task_id is not None:
            self._job_of.pop(task_id, None)
        self._meters.pop(job.id, None)
        self._last_record.pop(job.id, None)
        self._locks.release(job.id)

    def _mark(self, job: Job) -> None:
        self._changed[job.id] = None
        self._unsaved[job.id] = None

    # ------------------------------------------------------------------ user actions
    def _check_open(self) -> None:
        if not self._opened or self._closing:
            raise ManagerError("the transfer manager is not open")

    def _select(self, job_ids: Iterable[str]) -> list[Job]:
        return [self._jobs[i] for i in job_ids if i in self._jobs]

    def _refuse_foreign(self, job: Job) -> None:
        if job.id not in self._task_of and not self._locks.held(job.id) and job.status.wants_to_run \
                and job.error == RUNNING_ELSEWHERE:
            raise ManagerError(f"{job.name}: {RUNNING_ELSEWHERE}")

    async def pause(self, job_ids: Iterable[str]) -> None:
        self._check_open()
        async with self._network_lock:
            await self._pause(job_ids)

    async def _pause(self, job_ids: Iterable[str]) -> None:
        assert self._client is not None
        for job in self._select(job_ids):
            if not job.status.wants_to_run:
                continue
            self._refuse_foreign(job)
            task_id = self._task_of.get(job.id)
            if task_id is not None:
                with contextlib.suppress(MeowError):  # it may have just finished
                    await self._client.pause(task_id)
            if job.status.wants_to_run:
                self._set_status(job, JobStatus.PAUSED)
        await self._save()

    async def resume(self, job_ids: Iterable[str]) -> None:
        self._check_open()
        async with self._network_lock:
            await self._resume(job_ids)

    async def _resume(self, job_ids: Iterable[str]) -> None:
        assert self._client is not None
        for job in self._select(job_ids):
            if job.status is not JobStatus.PAUSED:
                continue
            task_id = self._task_of.get(job.id)
            self._set_status(job, JobStatus.QUEUED)
            if task_id is not None:
                try:
                    await self._client.resume(task_id)
                    continue
                except MeowError:
                    self._forget_task(job)  # the engine no longer has it: start afresh (it resumes from disk)
            await self._start(job)
        await self._save()

    async def cancel(self, job_ids: Iterable[str]) -> None:
        self._check_open()
        async with self._network_lock:
            await self._cancel(job_ids)

    async def _cancel(self, job_ids: Iterable[str]) -> None:
        for job in self._select(job_ids):
            if job.status.is_finished:
                continue
            self._refuse_foreign(job)
            await self._cancel_task(job, wait=False)
            self._set_status(job, JobStatus.CANCELED)
        await self._save()

    async def _cancel_task(self, job: Job, *, wait: bool) -> None:
        task_id = self._task_of.get(job.id)
        if task_id is not None:
            assert self._client is not None
            with contextlib.suppress(MeowError):
                await self._client.cancel(task_id, wait_released=wait)
        self._forget_task(job)

    async def retry(self, job_ids: Iterable[str]) -> None:
        """Failed or canceled jobs start again (a failed one continues from its partial state)."""
        self._check_open()
        async with self._network_lock:
            await self._retry(job_ids)

    async def _retry(self, job_ids: Iterable[str]) -> None:
        for job in self._select(job_ids):
            if job.status not in (JobStatus.FAILED, JobStatus.CANCELED):
                continue
            self._set_status(job, JobStatus.QUEUED)
            await self._start(job)
        await self._save()

    async def remove(self, job_ids: Iterable[str], *, delete_files: bool = False) -> None:
        """Forget jobs (canceling running ones); ``delete_files`` also deletes partial downloads (never a
        completed download or an upload's source)."""
        self._check_open()
        async with self._network_lock:
            await self._remove(job_ids, delete_files)

    async def _remove(self, job_ids: Iterable[str], delete_files: bool) -> None:
        assert self._db is not None
        removed: list[str] = []
        for job in self._select(job_ids):
            self._refuse_foreign(job)
            await self._cancel_task(job, wait=delete_files)
            if delete_files and job.direction is Direction.DOWNLOAD and job.status is not JobStatus.COMPLETED:
                await asyncio.to_thread(_delete_partial, job.local_path)
            await self._db.run(lambda c, i=job.id: c.execute("DELETE FROM jobs WHERE id=?", (i,)))
            with contextlib.suppress(SecretStoreUnavailable):
                await self.secrets.delete(_secret_key(job.id))
            self._locks.release(job.id, delete=True)
            del self._jobs[job.id]
            self._with_secret.discard(job.id)
            self._stored_secrets.pop(job.id, None)
            self._written_at.pop(job.id, None)
            self._changed.pop(job.id, None)
            self._unsaved.pop(job.id, None)
            removed.append(job.id)
        if removed:
            self._call_listeners("jobs_removed", removed)

    async def pause_all(self) -> None:
        await self.pause([j.id for j in self._jobs.values() if j.status.wants_to_run and j.error != RUNNING_ELSEWHERE])

    async def resume_all(self) -> None:
        await self.resume([j.id for j in self._jobs.values() if j.status is JobStatus.PAUSED])

    async def set_rate_limit(self, bytes_per_second: int | None) -> None:
        """Global bandwidth limit for all jobs together, live; None (or 0) = unlimited."""
        self._check_open()
        assert self._client is not None
        limit = bytes_per_second or None
        await self._client.set_rate_limit(limit)
        self._rate_limit = limit
        self._config = self._config.replace(rate_limit=limit)  # a replacement client starts with it

    async def set_concurrency(self, downloads: int, uploads: int) -> None:
        """How many downloads and uploads run at once, live."""
        self._check_open()
        assert self._client is not None
        try:
            await self._client.set_max_concurrency(Direction.DOWNLOAD, downloads)
            await self._client.set_max_concurrency(Direction.UPLOAD, uploads)
        except MeowError as err:
            raise ManagerError(describe_error(err)) from None
        self._config = self._config.replace(max_download_concurrency=downloads, max_upload_concurrency=uploads)

    # ------------------------------------------------------------------ network settings
    async def set_network(self, settings: NetworkSettings, *, password: str | _Keep | None = KEEP,
                          remember: bool = True) -> None:
        """Use ``settings`` (proxy, bypass list, CA bundle) for every request from now on; before ``open()`` they
        are simply the ones it starts with.

        ``password``: the manual proxy's password; KEEP (default) uses the stored one, a string replaces it, None
        forgets it. With ``remember`` it goes to (or is deleted from) the OS keyring; without, it is kept in memory
        for this run only (the CLI's ``--proxy user:password@…``). Everything is checked first (the CA bundle is
        read in a worker thread): a ManagerError says what is wrong, and then nothing changed. While transfers run,
        the engine client is replaced; they pause on the old client and resume on the new one from their
        checkpoints. Nothing happens when the effective settings are the ones in force.
        """
        try:
            settings.check()
            if settings.ca_bundle is not None:
                ca_bundle = await asyncio.to_thread(check_ca_bundle_file, settings.ca_bundle)
                settings = dataclasses.replace(settings, ca_bundle=ca_bundle)
        except NetworkSettingsError as exc:
            raise ManagerError(self._scrub(str(exc), password)) from None
        async with self._network_lock:
            if self._closing:
                raise ManagerError("the transfer manager is closing")
            if not isinstance(password, _Keep):
                if password is not None and (not isinstance(password, str) or any(c in "\r\n\0" for c in password)):
                    raise ManagerError("the proxy password cannot contain line breaks or NUL characters")
                if remember:
                    try:
                        if password:
                            await self.secrets.set(PROXY_PASSWORD_KEY, password)
                        else:
                            await self.secrets.delete(PROXY_PASSWORD_KEY)
                    except SecretStoreUnavailable as exc:
                        raise ManagerError(f"the proxy password could not be saved: {exc}", usage=False) from None
                self._proxy_password, self._password_known = password or None, True
            config = await self._engine_config_for(settings, tolerant=not self._opened)
            self._network = settings
            if not self._opened:
                self._config = config
                self._http.use(config)
                return
            if config == self._config:
                return
            log.info("network settings changed: %s", settings.describe())
            await self._switch_engine(config)

    async def _engine_config_for(self, settings: NetworkSettings, *, tolerant: bool = False) -> MeowConfig:
        """The current engine config with ``settings`` (and the proxy password, read from the keyring if needed
        and not known yet). When ``tolerant`` (before and at open) a keyring failure does not stop the start: the
        proxy is used without the password (it then answers 407, which each job reports) and
        :attr:`network_problem` says why; otherwise it is a ManagerError and nothing changes."""
        password = None
        self._network_problem = None
        if settings.uses_password:
            if not self._password_known:
                try:
                    self._proxy_password = await self.secrets.get(PROXY_PASSWORD_KEY)
                    self._password_known = True
                except SecretStoreUnavailable as exc:
                    if not tolerant:
                        raise ManagerError(f"the proxy password could not be read: {exc}", usage=False) from None
                    self._network_problem = (f"the proxy password could not be read from the keyring "
                                             f"({exc.problem}); the proxy is used without it")
                    log.warning("%s", self._network_problem)
            password = self._proxy_password
        try:
            return self._config.replace(**settings.engine_options(password))
        except (MeowError, NetworkSettingsError) as exc:
            text = exc.msg if isinstance(exc, MeowError) else str(exc)
            raise ManagerError(self._scrub(text, password)) from None

    async def _switch_engine(self, config: MeowConfig) -> None:
        """Replace the engine client (the caller holds the network lock). The new client exists before the old one
        closes, so nothing started meanwhile lands on a closing client; the old client's pauses are not taken for
        the user's, and each transfer it ran that still wants to run starts again on the new one."""
        old = self._client
        assert old is not None
        new = MeowClient(config)
        new.register_global_progress_listener(self._on_record)
        self._client, self._config = new, new.config
        self._http.use(new.config)
        running = dict(self._task_of)
        self._retiring.update(running.values())
        try:
            with contextlib.suppress(MeowError):
                await old.close()  # pauses every task (checkpoints kept) and delivers its last records
        finally:
            self._retiring.difference_update(running.values())
        for job_id, task_id in running.items():
            if self._task_of.get(job_id) != task_id:
                continue  # it finished, or was restarted, while the old client closed
            del self._task_of[job_id]
            self._job_of.pop(task_id, None)
            job = self._jobs.get(job_id)
            if job is not None and job.status.wants_to_run and not self._closing:
                await self._start(job)  # the job's lock is still ours: acquire() says so at once

    def _scrub(self, text: str, extra: object = None) -> str:
        """A message without the proxy password (known or just given)."""
        text = scrub_password(text, self._proxy_password)
        return scrub_password(text, extra) if isinstance(extra, str) else text

    # ------------------------------------------------------------------ batching
    def _call_listeners(self, method: str, arg: Any) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, method)(arg)
            except Exception:  # one broken listener must not stop the others or the manager
                log.exception("transfer manager listener %r failed in %s", listener, method)

    def _notify_early(self) -> None:
        """Report a finished job on the next loop turn instead of up to NOTIFY_INTERVAL later (the CLI exits on
        it), unless listeners were told something a moment ago: bursts of finishes still come in batches."""
        if self._notify_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._notify_pending = True
        loop.call_later(max(0.0, EARLY_NOTIFY_GAP - (time.monotonic() - self._last_notify)), self._notify)

    def _notify(self) -> None:
        self._notify_pending = False
        self._last_notify = time.monotonic()
        if self._changed:
            jobs = [self._jobs[i] for i in self._changed if i in self._jobs]
            self._changed.clear()
            if jobs:
                self._call_listeners("jobs_changed", jobs)
        finished, self._finished = self._finished, []
        for job in finished:
            self._call_listeners("job_finished", job)

    def _decay_speeds(self) -> None:
        """A stalled transfer sends no records; without this its speed would stay frozen at the last value."""
        now = time.monotonic()
        for job_id, last in self._last_record.items():
            job = self._jobs.get(job_id)
            if job is None or job.status is not JobStatus.ACTIVE or now - last < STALL_AFTER:
                continue
            meter = self._meters[job_id]
            meter.add(now, job.done_bytes)
            job.speed = meter.rate()
            job.eta = meter.eta(job.total_bytes)
            self._last_record[job_id] = now
            self._changed[job_id] = None

    async def _notify_loop(self) -> None:
        while True:
            await asyncio.sleep(NOTIFY_INTERVAL)
            self._decay_speeds()
            self._notify()
            if self._save_soon:
                await self._save()

    async def _persist_loop(self) -> None:
        while True:
            await asyncio.sleep(PERSIST_INTERVAL)
            await self._save()

    async def _save(self) -> None:
        """Write every changed job's progress in one transaction on the database thread."""
        self._save_soon = False
        if not self._unsaved or self._db is None:
            return
        now = time.time()
        rows = [(j.status.value, j.total_bytes, j.done_bytes, j.error, j.result, j.finished_at, now, j.id)
                for i in self._unsaved if (j := self._jobs.get(i)) is not None
                and not (j.error == RUNNING_ELSEWHERE and not self._locks.held(j.id))]
        self._unsaved.clear()
        for row in rows:
            self._written_at[row[-1]] = now
        if rows:
            await self._db.run(lambda c: c.executemany(
                "UPDATE jobs SET status=?, total_bytes=?, done_bytes=?, error=?, result=?, finished_at=?, "
                "updated_at=? WHERE id=?", rows))

    async def _external_loop(self) -> None:
        """Show jobs other processes (a CLI) added or changed: they share the history file."""
        assert self._db is not None
        while True:
            await asyncio.sleep(EXTERNAL_POLL_INTERVAL)
            since = self._seen_updated_at
            try:
                rows = await self._db.run(lambda c, since=since: c.execute(
                    "SELECT * FROM jobs WHERE updated_at > ? ORDER BY created_at", (since,)).fetchall())
            except sqlite3.Error as exc:
                log.warning("cannot read the history for changes by other processes: %s", exc)
                continue
            added: list[Job] = []
            for row in rows:
                self._seen_updated_at = max(self._seen_updated_at, row["updated_at"])
                job = self._jobs.get(row["id"])
                if job is not None and (row["updated_at"] <= self._written_at.get(job.id, 0.0)
                                        or job.id in self._unsaved):
                    continue  # our own write (or we know newer than the row): not news from another process
                if job is None:
                    job = _job_from_row(row)
                    self._jobs[job.id] = job
                    if row["has_secret"]:
                        self._with_secret.add(job.id)
                    added.append(job)
                elif job.id not in self._task_of and not self._locks.held(job.id):
                    fresh = _job_from_row(row)
                    for name in ("status", "total_bytes", "done_bytes", "error", "result", "finished_at"):
                        setattr(job, name, getattr(fresh, name))
                    self._changed[job.id] = None
                if job.status.wants_to_run and job.id not in self._task_of and not self._locks.held(job.id):
                    await self._adopt_or_mark(job)
            for job_id in list(self._foreign):
                job = self._jobs.get(job_id)
                if job is None or not job.status.wants_to_run:
                    self._foreign.discard(job_id)
                elif job_id not in self._task_of and not self._locks.held(job_id):
                    await self._adopt_or_mark(job)
            if added:
                self._call_listeners("jobs_added", added)

    async def _adopt_or_mark(self, job: Job) -> None:
        """A job another process wants to run: if that process is gone (its lock is free) the app takes the job
        over and resumes it; while it runs there, it is shown as running elsewhere."""
        if self._locks.acquire(job.id):
            if self._adopt and not self._closing:
                job.status, job.error = JobStatus.QUEUED, None
                await self._start(job)
                return
            self._locks.release(job.id)
        self._foreign.add(job.id)
        if job.error != RUNNING_ELSEWHERE:
            job.error = RUNNING_ELSEWHERE
            self._changed[job.id] = None


# ---------------------------------------------------------------------- helpers
def _secret_key(job_id: str) -> str:
    return f"job:{job_id}"


def display_remote(remote: str) -> str:
    """A remote as it may be shown and stored: a URL's signature/SAS/token parameters redacted."""
    return redact_url(remote) if urlsplit(remote).scheme.lower() in ("http", "https") else remote


def _account_of(remote: str) -> str | None:
    parts = urlsplit(remote)
    return parts.netloc if parts.scheme.lower() in ("oss", "azure") else None


def _download_finished(job: Job) -> bool:
    """The engine renames ``.part`` into place only once the file is complete (and verified): a destination of the
    job's size with no ``.part`` or checkpoint left, after bytes had been written, is that finished download."""
    if job.done_bytes <= 0 or job.total_bytes <= 0:
        return False
    files = sidecars(job.local_path)
    if any(os.path.lexists(p) for p in (files.part, files.checkpoint, files.durable)):
        return False
    try:
        return os.path.getsize(job.local_path) == job.total_bytes
    except OSError:
        return False


def _delete_partial(dest: str) -> None:
    for path in sidecars(dest).all:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _options_json(options: JobOptions) -> dict[str, Any]:
    return {k: v for k, v in asdict(options).items() if v is not None}


def _row_of(job: Job, has_secret: bool) -> dict[str, Any]:
    options = _options_json(job.options)
    return {"id": job.id, "direction": job.direction.value, "name": job.name, "local_path": job.local_path,
            "remote": job.remote, "account": job.account, "status": job.status.value,
            "options": json.dumps(options), "has_secret": int(has_secret), "total_bytes": job.total_bytes,
            "done_bytes": job.done_bytes, "error": job.error, "result": job.result, "created_at": job.created_at,
            "finished_at": job.finished_at, "updated_at": time.time()}


def _job_from_row(row: sqlite3.Row) -> Job:
    try:
        options = JobOptions(**json.loads(row["options"] or "{}"))
    except (TypeError, ValueError):
        options = JobOptions()  # an option this version does not know: use the defaults rather than fail
    return Job(id=row["id"], direction=Direction(row["direction"]), name=row["name"], local_path=row["local_path"],
               remote=row["remote"], status=JobStatus(row["status"]), account=row["account"], options=options,
               total_bytes=row["total_bytes"], done_bytes=row["done_bytes"], error=row["error"], result=row["result"],
               created_at=row["created_at"], finished_at=row["finished_at"])
