"""One process runs a job at a time: the app and a CLI share the history, and two writers on one ``.part``
file (or two uploaders of one session) would corrupt it. An OS file lock per job dies with its process, so
a kill -9 never leaves a job locked."""

from __future__ import annotations

import os
import sys
from pathlib import Path


class JobLocks:
    """Non-blocking exclusive locks on ``<dir>/<job id>.lock`` (flock on POSIX, msvcrt on Windows)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._held: dict[str, int] = {}

    def acquire(self, job_id: str) -> bool:
        """True if this process now holds (or already held) the job's lock; False if another process does."""
        if job_id in self._held:
            return True
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / f"{job_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            return False
        self._held[job_id] = fd
        return True

    def held(self, job_id: str) -> bool:
        return job_id in self._held

    def release(self, job_id: str, *, delete: bool = False) -> None:
        fd = self._held.pop(job_id, None)
        if fd is None:
            return
        if delete:  # only while still holding it, so nobody else is between open and lock on this file
            try:
                os.unlink(self.directory / f"{job_id}.lock")
            except OSError:
                pass
        os.close(fd)

    def release_all(self) -> None:
        for job_id in list(self._held):
            self.release(job_id)


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
