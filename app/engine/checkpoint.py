"""Download checkpoints: small JSON sidecars beside ``<dest>.part``, written atomically, holding no secrets.

They record which byte ranges of the .part file are done and the remote's identity (size, ETag, Last-Modified), so
a resume never trusts the file size and never appends to a changed remote.

Two done-sets are kept. ``durable`` ranges were fdatasync'ed before the record naming them was fsync'ed: they
survive a power cut. ``written`` ranges reached the kernel (pwrite returned) but may not be on disk yet: they
survive a killed process, not a reboot. The kernel's boot id tells which case a resume is in.

And two files keep them (:class:`Sidecars`): ``<dest>.part.ckpt``, replaced after every batch without an fsync, and
``<dest>.part.durable``, replaced only with fsyncs. A power cut can tear the first (its rename may reach the disk
before its data); it cannot tear the second, so the ranges that were durable are never lost with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from app.engine.ranges import RangeSet

MAGIC = "rusty-cat/download-checkpoint"
VERSION = 1
PART_SUFFIX = ".part"
CHECKPOINT_SUFFIX = ".part.ckpt"
DURABLE_SUFFIX = ".part.durable"
TMP_SUFFIX = ".tmp"
#: The longest name the engine appends to a destination (for file-name length budgets).
LONGEST_SUFFIX = max(CHECKPOINT_SUFFIX, DURABLE_SUFFIX, key=len) + TMP_SUFFIX


def part_path(dest: str) -> str:
    return dest + PART_SUFFIX


def checkpoint_path(dest: str) -> str:
    return dest + CHECKPOINT_SUFFIX


@dataclass(frozen=True)
class Sidecars:
    """The files a download keeps beside its destination while it is unfinished."""

    part: str
    checkpoint: str
    durable: str

    @property
    def all(self) -> tuple[str, ...]:
        """Every file, temporary ones included (to delete a cancelled download's traces)."""
        return (self.part, self.checkpoint, self.durable, self.checkpoint + TMP_SUFFIX, self.durable + TMP_SUFFIX)


def sidecars(dest: str) -> Sidecars:
    return Sidecars(dest + PART_SUFFIX, dest + CHECKPOINT_SUFFIX, dest + DURABLE_SUFFIX)


def remove_records(paths: Sidecars) -> None:
    """Drop both records (the .part stays)."""
    remove(paths.checkpoint)
    remove(paths.durable)


def same_identity(a: DownloadCheckpoint, b: DownloadCheckpoint) -> bool:
    """Whether two records describe the same remote version and layout."""
    return (a.url, a.total_size, a.etag, a.last_modified, a.chunk_size, a.ranged) == \
        (b.url, b.total_size, b.etag, b.last_modified, b.chunk_size, b.ranged)


def boot_id() -> str | None:
    """An id that changes on every boot (Linux); None elsewhere, where only durable ranges are trusted."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


@dataclass
class DownloadCheckpoint:
    url: str  # scheme://host/path only: never the query, which may carry a signature
    total_size: int | None
    etag: str | None
    last_modified: str | None
    chunk_size: int
    ranged: bool = True  # False when the server can't do ranges: only a contiguous prefix is meaningful
    written: list[list[int]] = field(default_factory=list)
    durable: list[list[int]] = field(default_factory=list)
    boot_id: str | None = None

    def done(self, current_boot_id: str | None) -> RangeSet:
        """The ranges a resume may trust now."""
        trusted = self.written if (self.boot_id and self.boot_id == current_boot_id) else self.durable
        return RangeSet([(s, e) for s, e in trusted])


_FIELDS = fields(DownloadCheckpoint)


class CheckpointError(ValueError):
    """The sidecar is torn, foreign or from another version; the caller restarts cleanly."""


def encode(ckpt: DownloadCheckpoint) -> bytes:
    """The record as bytes (written after every batch: a plain dict, not ``asdict``'s deep copy)."""
    data = {f.name: getattr(ckpt, f.name) for f in _FIELDS}
    body = json.dumps(data, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(body.encode()).hexdigest()
    return json.dumps({"magic": MAGIC, "version": VERSION, "sha256": digest, "data": data},
                      sort_keys=True, separators=(",", ":")).encode()


def decode(raw: bytes) -> DownloadCheckpoint:
    try:
        outer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        # RecursionError: garbage such as a file full of "[" nests deeper than the parser goes. It must read as
        # torn (start over), not escape as an internal error that fails the download for good.
        raise CheckpointError(f"checkpoint is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(outer, dict) or outer.get("magic") != MAGIC:
        raise CheckpointError("not a rusty-cat download checkpoint")
    if outer.get("version") != VERSION:
        raise CheckpointError(f"unsupported checkpoint version {outer.get('version')!r}")
    data = outer.get("data")
    try:
        body = json.dumps(data, sort_keys=True, separators=(",", ":"))
    except (RecursionError, ValueError) as exc:
        raise CheckpointError(f"checkpoint data cannot be hashed ({exc.__class__.__name__})") from None
    if hashlib.sha256(body.encode()).hexdigest() != outer.get("sha256"):
        raise CheckpointError("checkpoint self-hash mismatch (torn or edited file)")
    try:
        ckpt = DownloadCheckpoint(**data)
        _check_fields(ckpt)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint fields are invalid: {exc}") from None
    return ckpt


def _is_int(value: object) -> bool:
    """An int that is not a bool (JSON ``true`` decodes to True, which isinstance(..., int) accepts)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(ckpt: DownloadCheckpoint) -> None:
    """Types and bounds of every field. The self-hash only proves the file is whole; a sidecar written by another
    program (or edited and re-hashed) must still never hand the resume a string size or a ``true`` offset.
    (Ranges past ``total_size`` are legal: a stream the server encoded despite identity can outgrow it.)"""
    if not isinstance(ckpt.url, str):
        raise CheckpointError("checkpoint url is not text")
    for name in ("etag", "last_modified", "boot_id"):
        if getattr(ckpt, name) is not None and not isinstance(getattr(ckpt, name), str):
            raise CheckpointError(f"checkpoint {name} is not text")
    if ckpt.total_size is not None and not (_is_int(ckpt.total_size) and ckpt.total_size >= 0):
        raise CheckpointError("checkpoint total_size is not a byte count")
    if not (_is_int(ckpt.chunk_size) and ckpt.chunk_size > 0):
        raise CheckpointError("checkpoint chunk_size is not a positive byte count")
    if not isinstance(ckpt.ranged, bool):
        raise CheckpointError("checkpoint ranged is not a boolean")
    for spans in (ckpt.written, ckpt.durable):
        if not isinstance(spans, list):
            raise CheckpointError("checkpoint ranges are not a list")
        for span in spans:
            if not (isinstance(span, list) and len(span) == 2 and _is_int(span[0]) and _is_int(span[1])
                    and 0 <= span[0] <= span[1]):
                raise CheckpointError("checkpoint holds an invalid range")


def load(path: str) -> DownloadCheckpoint | None:
    """The checkpoint at ``path``; None if there is none; CheckpointError if it can't be trusted."""
    try:
        with open(path, "rb") as f:
            raw = f.read(16 << 20)
    except FileNotFoundError:
        return None
    return decode(raw)


def write_atomic(path: str, payload: bytes, *, durable: bool) -> None:
    """Temp file → (fsync) → rename → (fsync dir): a crash leaves the old or the new file, never half (without
    ``durable``, a power cut may: the rename can reach the disk before the data)."""
    tmp = f"{path}{TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # a full disk: don't leave a half-written temp file holding space
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(os.path.dirname(os.path.abspath(path)))


class FastRecord:
    """The per-batch record (``.part.ckpt``), overwritten in place in a file kept open: one positioned write per save,
    where a temp file and a rename per batch cost more than the batch's own write. A shorter record is padded with
    spaces over a longer one (JSON ignores them), so the file never needs truncating. A killed process leaves a
    whole write or none (the kernel finishes a write it took); a power cut may tear it, which is what the durable
    record (replaced atomically, with fsyncs) is for."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._size = 0

    def save(self, payload: bytes) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
            self._size = os.fstat(self._fd).st_size
        data = payload.ljust(self._size)
        done = 0
        while done < len(data):
            if hasattr(os, "pwrite"):
                done += os.pwrite(self._fd, data[done:], done)
            else:  # pragma: no cover - Windows
                os.lseek(self._fd, done, os.SEEK_SET)
                done += os.write(self._fd, data[done:])
        self._size = max(self._size, len(payload))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def fsync_dir(directory: str) -> None:
    if os.name != "posix":
        return
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def remove(path: str) -> None:
    for p in (path, f"{path}{TMP_SUFFIX}"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
