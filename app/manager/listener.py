"""How the window (or the CLI) hears about jobs: a listener the manager calls on its own event loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.manager.jobs import Job


class ManagerListener(Protocol):
    """Called on the loop the manager was opened on, in order, one call at a time.

    ``jobs_changed`` is batched: the manager coalesces engine records and calls it at most about ten times a
    second with every job whose fields changed since the last call (status, bytes, speed, ETA, error).
    Implementations must be quick (no I/O); they read the Job objects, never modify them.
    """

    def jobs_added(self, jobs: Sequence[Job]) -> None: ...

    def jobs_changed(self, jobs: Sequence[Job]) -> None: ...

    def jobs_removed(self, job_ids: Sequence[str]) -> None: ...

    def job_finished(self, job: Job) -> None:
        """A job has just completed or failed (not on restore): notifications, tray."""


@dataclass(frozen=True)
class Totals:
    """Sums over all jobs for the status bar and the tray."""

    download_speed: float = 0.0  # bytes/s
    upload_speed: float = 0.0
    active: int = 0
    queued: int = 0
    paused: int = 0
    completed: int = 0
    failed: int = 0
    rate_limit: int | None = None  # the global limit in bytes/s, None = unlimited
    done_bytes: int = 0  # of the jobs that want to run (queued/active), for the tray's overall progress
    total_bytes: int = 0
