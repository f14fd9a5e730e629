"""What a job is: a user's intent (this file to that place) with an id that survives restarts.

A job outlives engine tasks: the engine forgets a task when the process ends, the job is in the history and
gets a fresh task when it is resumed. Jobs are plain mutable objects owned by the TransferManager; the
window reads them (never writes) and is told which ones changed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import Enum

from app.engine.record import Direction

__all__ = ["Direction", "Job", "JobOptions", "JobStatus", "new_job_id"]


class JobStatus(Enum):
    """Statuses as the user sees them (the sidebar's groups, plus Canceled)."""

    QUEUED = "queued"  # wants to run, waiting for a free slot (or for the engine's first record)
    ACTIVE = "active"  # bytes are moving (or the transfer is probing/preparing)
    PAUSED = "paused"  # stopped by the user; stays paused across restarts
    COMPLETED = "completed"
    FAILED = "failed"  # stopped by an error; the partial state is kept, Retry continues from it
    CANCELED = "canceled"  # stopped by the user for good; partial state discarded by the engine

    @property
    def is_finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)

    @property
    def wants_to_run(self) -> bool:
        """Queued or active: a restart re-enqueues these."""
        return self in (JobStatus.QUEUED, JobStatus.ACTIVE)


@dataclass(frozen=True)
class JobOptions:
    """Per-job transfer settings; None means "the manager's default"."""

    connections: int | None = None
    chunk_size: int | None = None
    sha256: str | None = None  # downloads: expected SHA-256 (hex) of the whole file
    rate_limit: int | None = None  # bytes/s for this job alone


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True, eq=False)
class Job:
    """One row of the transfer list.

    ``remote`` is what the user may see of the other side: a URL with its signature/SAS redacted, or
    ``oss://ACCOUNT/bucket/key`` / ``azure://ACCOUNT/container/blob``. The secret parts (signed query, extra
    headers) are in the keyring, never here. ``speed`` and ``eta`` are transient (not in the history).
    """

    id: str
    direction: Direction
    name: str
    local_path: str  # download: the destination file; upload: the source file
    remote: str
    status: JobStatus
    account: str | None = None
    options: JobOptions = field(default_factory=JobOptions)
    total_bytes: int = 0  # 0 while unknown
    done_bytes: int = 0
    error: str | None = None  # a sentence a person can act on, with its code; never a secret
    result: str | None = None  # uploads: what the server returned on completion (file id), if anything
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    speed: float = 0.0  # bytes/s over a sliding window
    eta: float | None = None  # seconds left at the current speed; None while unknown

    @property
    def progress(self) -> float:
        """0.0 .. 1.0; a completed job is 1.0 even when its size was never known."""
        if self.status is JobStatus.COMPLETED:
            return 1.0
        if self.total_bytes <= 0:
            return 0.0
        return min(1.0, self.done_bytes / self.total_bytes)
