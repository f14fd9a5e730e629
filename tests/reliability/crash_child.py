"""The process the crash-and-resume soak kills: the app's TransferManager running a fixed set of jobs.

``python -m tests.reliability.crash_child SPEC.json`` opens the manager on the spec's data folder with
``restore=True`` (as the app does), so every run after a SIGKILL resumes whatever the history says is unfinished.
It adds the spec's accounts and jobs that the history does not hold yet (the first run; or a run killed while
adding), then reports on stdout, one JSON object a line:

* ``{"event": "open"}`` once the manager is open and the jobs are queued;
* ``{"event": "progress", "jobs": {name: [status, done_bytes, total_bytes, job_id]}}`` every 50 ms;
* ``{"event": "done"}`` when every job is completed; the manager is then closed and the process exits 0;
* ``{"event": "failed", "name": ..., "error": ...}`` when a job failed (exit 3): the soak treats it as a defect;
* ``{"event": "reopened", "name": ...}`` when the engine reports a job running again after it completed in this
  run (the manager started a finished job anew: the soak counts it and allows that transfer's bytes once more).

The spec (written by the test): ``data_dir``, ``concurrency``, ``accounts`` (name, provider, auth, endpoint,
fields, ``secret_env``: the environment variable holding the secret, so no secret is on a command line) and
``jobs`` (name, direction, remote, local, connections, chunk_size). Secrets go to the keyring the environment
names (the test sets ``PYTHON_KEYRING_BACKEND`` to a file keyring under its tmp folder).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from app.engine.api import FileTransferRecord, MeowConfig, TransferStatus
from app.manager.accounts import Account, Auth, Provider
from app.manager.jobs import Direction, Job, JobOptions, JobStatus
from app.manager.manager import TransferManager

TICK = 0.05  # seconds between progress lines
EXIT_FAILED = 3


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _matches(job: Job, spec: dict[str, Any]) -> bool:
    return job.direction.value == spec["direction"] and job.local_path == os.path.abspath(spec["local"])


async def _ensure_accounts(manager: TransferManager, accounts: list[dict[str, Any]]) -> None:
    have = {a.name for a in await manager.accounts.list()}
    for a in accounts:
        if a["name"] in have:
            continue
        account = Account(a["name"], Provider(a["provider"]), Auth(a["auth"]), a["endpoint"], dict(a["fields"]))
        await manager.accounts.add(account, os.environ[a["secret_env"]])


async def _ensure_jobs(manager: TransferManager, specs: list[dict[str, Any]]) -> dict[str, Job]:
    """Each spec's job: the one in the history (restored and running), or a new one."""
    jobs: dict[str, Job] = {}
    for spec in specs:
        job = next((j for j in manager.jobs if _matches(j, spec)), None)
        if job is None:
            options = JobOptions(connections=spec["connections"], chunk_size=spec["chunk_size"])
            if spec["direction"] == Direction.DOWNLOAD.value:
                job = await manager.add_download(spec["remote"], spec["local"], options=options, new_name=False)
            else:
                job = await manager.add_upload(spec["local"], spec["remote"], options=options)
        jobs[spec["name"]] = job
    return jobs


class _Reopened:
    """A record listener noticing a job that completes and then runs again in the same process."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # job id -> spec name
        self.completed: set[str] = set()

    def __call__(self, job: Job, rec: FileTransferRecord) -> None:
        if rec.status is TransferStatus.COMPLETE:
            self.completed.add(job.id)
        elif rec.status.is_terminal:
            self.completed.discard(job.id)
        elif job.id in self.completed:
            self.completed.discard(job.id)
            say({"event": "reopened", "name": self.names.get(job.id, job.id)})


async def run(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    concurrency = int(spec.get("concurrency", 6))
    manager = TransferManager(spec["data_dir"], engine_config=MeowConfig(
        max_download_concurrency=concurrency, max_upload_concurrency=concurrency))
    reopened = _Reopened()
    manager.add_record_listener(reopened)
    await manager.open(restore=True)
    try:
        await _ensure_accounts(manager, spec["accounts"])
        jobs = await _ensure_jobs(manager, spec["jobs"])
        reopened.names.update({j.id: name for name, j in jobs.items()})
        say({"event": "open"})
        while True:
            say({"event": "progress", "jobs": {name: [j.status.value, j.done_bytes, j.total_bytes, j.id]
                                               for name, j in jobs.items()}})
            failed = next(((n, j) for n, j in jobs.items() if j.status in (JobStatus.FAILED, JobStatus.CANCELED)),
                          None)
            if failed is not None:
                say({"event": "failed", "name": failed[0], "error": failed[1].error})
                return EXIT_FAILED
            if all(j.status is JobStatus.COMPLETED for j in jobs.values()):
                break
            await asyncio.sleep(TICK)
    finally:
        await manager.close()
    say({"event": "done"})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tests.reliability.crash_child SPEC.json", file=sys.stderr)
        return 2
    return asyncio.run(run(args[0]))


if __name__ == "__main__":
    raise SystemExit(main())
