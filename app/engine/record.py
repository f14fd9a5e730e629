"""What callers observe: statuses, progress records and scheduler snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

from app.engine.errors import MeowError
from app.engine.ids import TaskId


class Direction(Enum):
    UPLOAD = "upload"
    DOWNLOAD = "download"


class TransferStatus(IntEnum):
    """The seed's status codes (``as_i32``). A Failed record carries its error in ``FileTransferRecord.error``."""

    NONE = -1
    PENDING = 0
    TRANSMISSION = 1
    PAUSED = 2
    COMPLETE = 3
    FAILED = 4
    CANCELED = 5

    @property
    def is_terminal(self) -> bool:
        return self in (TransferStatus.COMPLETE, TransferStatus.FAILED, TransferStatus.CANCELED)

    def as_i32(self) -> int:
        return int(self)


@dataclass(frozen=True)
class FileTransferRecord:
    """One progress/status event of one task.

    ``transferred_bytes`` is the byte count known to be done (the seed only had a ratio). ``total_size`` is 0
    while unknown (a download before its probe, or a remote without a length).
    """

    task_id: TaskId
    file_sign: str
    file_name: str
    total_size: int
    transferred_bytes: int
    status: TransferStatus
    direction: Direction
    error: MeowError | None = None
    file_path: str = ""

    @property
    def progress(self) -> float:
        if self.total_size <= 0:
            return 1.0 if self.status is TransferStatus.COMPLETE else 0.0
        return min(1.0, self.transferred_bytes / self.total_size)


@dataclass(frozen=True)
class TransferSnapshot:
    """Scheduler state at one instant: queued (waiting) groups, running groups and their dedupe keys."""

    queued_groups: int = 0
    active_groups: int = 0
    active_keys: tuple[tuple[Direction, str], ...] = field(default_factory=tuple)
    paused_groups: int = 0
