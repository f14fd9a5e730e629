"""How numbers and states read in the window: sizes, speeds, ETAs and status names.

Pure functions (no widgets), so the table model, the status bar and the tray all say the same thing and the
rules are unit-testable. Labels go through ``QCoreApplication.translate`` at call time, not at import time, so a
translator installed after this module is imported still applies.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QCoreApplication

from app.manager.jobs import Direction, Job, JobStatus
from app.sizes import format_size

__all__ = [
    "NOT_APPLICABLE",
    "STALLED",
    "direction_label",
    "format_eta",
    "format_size",
    "format_speed",
    "job_eta_text",
    "job_progress_text",
    "job_size_text",
    "job_speed_text",
    "status_label",
]

#: Shown where a value does not apply (an ETA of a paused job, a size not known yet).
NOT_APPLICABLE = "—"
#: Shown as the ETA of a transfer that is running but not moving.
STALLED = "∞"
#: ETAs beyond this are shown as stalled: "1500:00:00" is noise, not information.
MAX_ETA_SECONDS = 100 * 24 * 3600


def format_speed(bytes_per_second: float) -> str:
    """``12.3 MiB/s``: the same 1024-based units as sizes, so a speed and a size can be compared at a glance."""
    return f"{format_size(max(0.0, bytes_per_second))}/s"


def format_eta(seconds: float | None) -> str:
    """``1:02:03`` (hours unbounded), ``2:03`` under an hour, ``∞`` for never, ``—`` for unknown.

    Seconds are rounded up: an ETA that says 0:00 while bytes are still moving looks like a hang.
    """
    if seconds is None or math.isnan(seconds):
        return NOT_APPLICABLE
    if math.isinf(seconds) or seconds > MAX_ETA_SECONDS:
        return STALLED
    total = max(0, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def status_label(status: JobStatus) -> str:
    """The status as a word in the user's language."""
    translate = QCoreApplication.translate
    labels = {
        JobStatus.QUEUED: translate("JobStatus", "Queued"),
        JobStatus.ACTIVE: translate("JobStatus", "Active"),
        JobStatus.PAUSED: translate("JobStatus", "Paused"),
        JobStatus.COMPLETED: translate("JobStatus", "Completed"),
        JobStatus.FAILED: translate("JobStatus", "Failed"),
        JobStatus.CANCELED: translate("JobStatus", "Canceled"),
    }
    return labels[status]


def direction_label(direction: Direction) -> str:
    translate = QCoreApplication.translate
    if direction is Direction.UPLOAD:
        return translate("Direction", "Upload")
    return translate("Direction", "Download")


def job_size_text(job: Job) -> str:
    """The total size; a finished transfer of unknown size shows what was moved, an unknown one ``—``."""
    if job.total_bytes > 0:
        return format_size(job.total_bytes)
    if job.done_bytes > 0 and job.status is JobStatus.COMPLETED:
        return format_size(job.done_bytes)
    return NOT_APPLICABLE


def job_progress_text(job: Job) -> str:
    """``42.0%``; while the total is unknown the bytes moved so far (a percentage of nothing is meaningless).

    Rounded down, so 99.96% shows as 99.9% and never as a 100.0% that is not complete.
    """
    if job.total_bytes <= 0 and job.status is not JobStatus.COMPLETED:
        return format_size(job.done_bytes) if job.done_bytes > 0 else "0.0%"
    return f"{math.floor(job.progress * 1000) / 10:.1f}%"


def job_speed_text(job: Job) -> str:
    """Only a running transfer has a speed; the last speed of a paused one would be stale."""
    if job.status is JobStatus.ACTIVE:
        return format_speed(job.speed)
    return ""


def job_eta_text(job: Job) -> str:
    """``∞`` when a running transfer does not move, ``—`` when it does not apply or is unknown."""
    if job.status is not JobStatus.ACTIVE:
        return NOT_APPLICABLE
    if job.eta is None:
        return STALLED if job.speed <= 0 else NOT_APPLICABLE
    return format_eta(job.eta)
