"""Helpers shared by engine and provider tests: a recorder of callbacks with awaitable waits, a fast test config
and a client that always closes, test data, and the environment for running the CLI as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.engine.api import (
    FileTransferRecord,
    InnerErrorCode,
    MeowClient,
    MeowConfig,
    TaskId,
    TransferStatus,
)

ROOT = Path(__file__).resolve().parents[2]
KIB = 1024
MIB = 1024 * KIB
HEAD_8 = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\n"


def blob(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


@contextlib.asynccontextmanager
async def meow(**overrides: object) -> AsyncIterator[MeowClient]:
    """A MeowClient with ``fast_config(**overrides)``, closed on the way out unless the test closed it."""
    client = MeowClient(fast_config(**overrides))
    try:
        yield client
    finally:
        await closed_client(client)


def one_one() -> MeowConfig:
    return MeowConfig.builder().max_upload_concurrency(1).max_download_concurrency(1).build()


def scheduler_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "rusty-cat-scheduler"}


async def close_injected(injected: httpx.AsyncClient) -> None:
    """After MeowClient.close() the caller still owns its injected client and must be able to close it."""
    try:
        await injected.aclose()
    except RuntimeError as exc:
        pytest.fail(f"the injected httpx client cannot be closed by its owner after MeowClient.close(): {exc!r}")


def failed_with(final: FileTransferRecord, code: InnerErrorCode, text: str | None = None) -> str:
    assert final.status is TransferStatus.FAILED, final
    assert final.error is not None
    assert final.error.code == code, final.error
    if text is not None:
        assert text in final.error.msg, final.error.msg
    return final.error.msg


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment for running the CLI as a subprocess, with per-user folders and keyring under ``tmp_path``."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state"),
            "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring", **extra}
