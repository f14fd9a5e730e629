"""Helpers shared by engine tests: a recorder of callbacks with awaitable waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.engine.api import FileTransferRecord, MeowClient, MeowConfig, TaskId, TransferStatus


@dataclass
class Recorder:
    """Collects every record and complete callback of one or more tasks (all on the client's loop)."""

    records: list[FileTransferRecord] = field(default_factory=list)
    completes: list[tuple[TaskId, str | None]] = field(default_factory=list)

    def progress(self, record: FileTransferRecord) -> None:
        self.records.append(record)

    def complete(self, task_id: TaskId, payload: str | None) -> None:
        self.completes.append((task_id, payload))

    def of(self, task_id: TaskId) -> list[FileTransferRecord]:
        return [r for r in self.records if r.task_id == task_id]

    def statuses(self, task_id: TaskId | None = None) -> list[TransferStatus]:
        return [r.status for r in (self.records if task_id is None else self.of(task_id))]

    def last(self, task_id: TaskId) -> FileTransferRecord | None:
        recs = self.of(task_id)
        return recs[-1] if recs else None

    def terminal(self, task_id: TaskId) -> FileTransferRecord | None:
        for r in self.of(task_id):
            if r.status.is_terminal:
                return r
        return None

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting; statuses so far: {[r.status.name for r in self.records]}")
            await asyncio.sleep(0.005)

    async def wait_terminal(self, task_id: TaskId, timeout: float = 20.0) -> FileTransferRecord:
        await self.wait_for(lambda: self.terminal(task_id) is not None, timeout)
        rec = self.terminal(task_id)
        assert rec is not None
        return rec

    async def wait_status(self, task_id: TaskId, status: TransferStatus, timeout: float = 20.0) -> None:
        await self.wait_for(lambda: status in self.statuses(task_id), timeout)


def fast_config(**overrides: object) -> MeowConfig:
    """Config for tests: short retry delays and every progress record delivered."""
    values: dict[str, object] = {"progress_interval": 0, "retry_base_delay": 0.01, "retry_max_delay": 0.05,
                                 "http_timeout": 5.0}
    values.update(overrides)
    return MeowConfig(**values)  # type: ignore[arg-type]


async def closed_client(client: MeowClient) -> None:
    if not client.is_closed():
        await client.close()
