"""The SQLite history file: one connection on one thread, a versioned schema, migrations with a backup.

Every statement runs on the database's own thread, never on an event loop (the window shares the loop with
Qt). WAL mode lets the window and a CLI process use the same file at once.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import platformdirs

T = TypeVar("T")
log = logging.getLogger(__name__)

APP_DIR_NAME = "rusty-cat"
DB_FILE_NAME = "history.sqlite3"

#: Schema migrations, in order; index i brings the file from user_version i to i + 1. Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        direction TEXT NOT NULL,          -- 'download' | 'upload'
        name TEXT NOT NULL,
        local_path TEXT NOT NULL,
        remote TEXT NOT NULL,             -- display form: secrets redacted
        account TEXT,
        status TEXT NOT NULL,
        options TEXT NOT NULL DEFAULT '{}',   -- JSON of JobOptions
        has_secret INTEGER NOT NULL DEFAULT 0, -- the full URL/headers are in the keyring under job:<id>
        total_bytes INTEGER NOT NULL DEFAULT 0,
        done_bytes INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        result TEXT,
        created_at REAL NOT NULL,
        finished_at REAL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX jobs_status ON jobs(status);
    CREATE TABLE accounts (
        name TEXT PRIMARY KEY,
        provider TEXT NOT NULL,           -- 'http' | 'aliyun-oss' | 'azure-blob'
        auth TEXT NOT NULL,               -- how the secret is used, e.g. 'access-key', 'shared-key', 'sas'
        endpoint TEXT NOT NULL,
        fields TEXT NOT NULL DEFAULT '{}',    -- JSON of the other non-secret fields (region, key id, ...)
        created_at REAL NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class DatabaseError(Exception):
    """The history file cannot be used, in words a person can act on."""


def default_path() -> Path:
    return platformdirs.user_data_path(APP_DIR_NAME) / DB_FILE_NAME


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise DatabaseError(f"{path} was written by a newer Rusty Cat (schema {version}, this one knows "
                            f"{SCHEMA_VERSION}); upgrade Rusty Cat or move the file away")
    if version == SCHEMA_VERSION:
        return
    if version > 0:  # an existing history: keep a copy in case a migration goes wrong
        backup = path.with_name(f"{path.name}.v{version}.bak")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy2(path, backup)
    for index in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        for statement in _statements(MIGRATIONS[index]):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={index + 1}")
        conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit behind our back)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _open_checked(path: Path) -> sqlite3.Connection:
    """Open and migrate; a file that is not a usable database is moved aside (never deleted) and replaced,
    because a damaged history must not stop the app from starting (Cyberduck's corrupt-queue crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = _connect(path)
        try:
            conn.execute("PRAGMA quick_check").fetchone()
            _migrate(conn, path)
        except BaseException:
            conn.close()
            raise
        return conn
    except sqlite3.DatabaseError as exc:
        aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
        log.warning("history file %s is damaged (%s); moved to %s and starting a new one", path, exc, aside)
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                src.replace(Path(str(aside) + suffix))
        conn = _connect(path)
        _migrate(conn, path)
        return conn


class Database:
    """An open history file. ``await db.run(fn)`` calls ``fn(connection)`` on the database thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self.path = path
        self._conn = conn
        self._executor = executor
        self._closed = False

    @classmethod
    async def open(cls, path: Path | None = None) -> Database:
        path = Path(path) if path is not None else default_path()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rusty-cat-db")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, _open_checked, path)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise DatabaseError(f"cannot open the history file {path}: {exc}") from None
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, conn, executor)

    @classmethod
    def open_sync(cls, path: Path | None = None) -> Database:
        """For callers without an event loop (the CLI's account commands)."""
        path = Path(path) if path is not None else default_path()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rusty-cat-db")
        try:
            conn = executor.submit(_open_checked, path).result()
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise DatabaseError(f"cannot open the history file {path}: {exc}") from None
        return cls(path, conn, executor)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one transaction on the database thread (committed if it returns)."""
        if self._closed:
            raise DatabaseError("the history file is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """The same, blocking: only for code that has no event loop (never call it on one)."""
        if self._closed:
            raise DatabaseError("the history file is closed")
        return self._executor.submit(self._call, fn).result()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    def close_sync(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.submit(self._conn.close).result()
        self._executor.shutdown(wait=True)
