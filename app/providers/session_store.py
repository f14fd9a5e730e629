"""Where provider plugins keep upload sessions across restarts (OSS upload id and part ETags, Azure block
prefix), so the same logical task, rebuilt after a crash, finds its server-side session instead of starting a
new one. One small JSON file per session, written atomically, self-hashed, never holding a secret; plugins write
them through :class:`SessionFile`, in a worker thread, because a durable write waits for the disk."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.engine.plugin_sdk import log, write_atomic

MAGIC = "rusty-cat/upload-session"
VERSION = 1


def session_key(*identity: object) -> str:
    """A stable file name from what identifies an upload (source path, size, mtime, target, part size)."""
    return hashlib.sha256("\n".join(map(str, identity)).encode()).hexdigest()[:40]


class UploadSessionStore:
    """A directory of session files; a torn, foreign or edited file reads as "no session" (start over)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.upload.json"

    def load(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            outer = json.loads(raw)
            data = outer["data"]
            body = json.dumps(data, sort_keys=True, separators=(",", ":"))
            if outer.get("magic") != MAGIC or outer.get("version") != VERSION or \
                    hashlib.sha256(body.encode()).hexdigest() != outer.get("sha256"):
                raise ValueError("magic, version or self-hash mismatch")
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return data
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            log.warn("upload_session", f"ignoring unusable upload session {path.name}: {exc}")
            return None

    def save(self, key: str, data: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        body = json.dumps(data, sort_keys=True, separators=(",", ":"))
        payload = json.dumps({"magic": MAGIC, "version": VERSION, "sha256": hashlib.sha256(body.encode()).hexdigest(),
                              "data": data}, sort_keys=True, separators=(",", ":")).encode()
        write_atomic(str(self._path(key)), payload, durable=True)

    def prune(self, max_age: float, finished: Callable[[dict[str, Any]], bool]) -> int:
        """Remove the sessions older than ``max_age`` seconds that ``finished`` says are only records of a finished
        upload (never a resumable one); returns how many. Best effort: a file that cannot be read or removed stays."""
        cutoff = time.time() - max_age
        removed = 0
        try:
            paths = list(self.directory.glob("*.upload.json"))
        except OSError:
            return 0
        for path in paths:
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
            except OSError:
                continue
            data = self.load(path.name.removesuffix(".upload.json"))
            if data is not None and finished(data):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
        return removed

    def remove(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass


class SessionFile:
    """One session file, written off the event loop. Writes are serialised and never older than the last one, and
    none lands after :meth:`remove` (a part finishing while a cancel removes the session must not resurrect it).
    A failed write or removal is logged, never raised: a lost session costs a re-upload later, never this
    transfer."""

    def __init__(self, store: UploadSessionStore, key: str) -> None:
        self.store, self.key = store, key
        self._lock = threading.Lock()
        self._dead = False
        self._version = 0
        self._written = 0

    async def save(self, data: dict[str, Any]) -> None:
        self._version += 1
        await asyncio.to_thread(self._write, self._version, data)

    async def remove(self) -> None:
        await asyncio.to_thread(self._remove)

    def _write(self, version: int, data: dict[str, Any]) -> None:
        with self._lock:
            if self._dead or version <= self._written:
                return
            try:
                self.store.save(self.key, data)
            except OSError as exc:
                log.warn("upload_session", f"cannot save upload session {self.key}: {exc.strerror or exc}")
            self._written = version

    def _remove(self) -> None:
        with self._lock:
            self._dead = True
            try:
                self.store.remove(self.key)
            except OSError as exc:
                log.warn("upload_session", f"cannot remove upload session {self.key}: {exc.strerror or exc}")
