"""Where provider plugins keep upload sessions across restarts (OSS upload id and part ETags, Azure block
prefix), so the same logical task, rebuilt after a crash, finds its server-side session instead of starting a
new one. One small JSON file per session, written atomically, self-hashed, never holding a secret."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from app.engine import log
from app.engine.checkpoint import write_atomic

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

    def remove(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
