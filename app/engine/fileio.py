"""Blocking file work, always run in worker threads (never on an event loop the UI may share)."""

from __future__ import annotations

import errno
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

from app.engine.errors import InnerErrorCode, MeowError

READ_BLOCK = 1 << 20
O_BINARY = getattr(os, "O_BINARY", 0)


def io_error(exc: OSError, what: str) -> MeowError:
    """Disk full gets its own code (the job pauses for the user); other OS errors are IoError."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return MeowError(InnerErrorCode.DISK_FULL, f"{what}: no space left on the device")
    reason = exc.strerror or str(exc)
    return MeowError(InnerErrorCode.IO_ERROR, f"{what}: {reason}")


def new_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=16, thread_name_prefix="rusty-cat-io")


def pwrite_all(fd: int, buffers: list[bytes], offset: int) -> int:
    """Write every buffer at ``offset`` (one pwritev per batch where the OS has it); returns bytes written."""
    total = sum(len(b) for b in buffers)
    done = 0
    views = [memoryview(b) for b in buffers]
    while views:
        if hasattr(os, "pwritev"):
            n = os.pwritev(fd, views, offset + done)
        else:  # Windows
            n = os.pwrite(fd, views[0], offset + done) if hasattr(os, "pwrite") else _seek_write(fd, views[0],
                                                                                                  offset + done)
        done += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]
    assert done == total
    return done


def _seek_write(fd: int, view: memoryview, offset: int) -> int:
    os.lseek(fd, offset, os.SEEK_SET)
    return os.write(fd, view)


def pread_exact(fd: int, offset: int, size: int) -> bytes:
    """Read exactly ``size`` bytes or raise (a shrunk source must never be uploaded as a short part).

    The common case is one read whose result is returned as is: no second copy of the part."""
    first = os.pread(fd, size, offset) if hasattr(os, "pread") else _seek_read(fd, offset, size)
    if len(first) == size:
        return first
    out = bytearray(first)
    while len(out) < size:
        piece = os.pread(fd, size - len(out), offset + len(out)) if hasattr(os, "pread") else _seek_read(
            fd, offset + len(out), size - len(out))
        if not piece:
            raise MeowError(InnerErrorCode.SOURCE_CHANGED,
                            f"upload source ended at byte {offset + len(out)}, expected {offset + size} bytes: "
                            "the file shrank while uploading")
        out += piece
    return bytes(out)


def _seek_read(fd: int, offset: int, size: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def file_digest(path: str, algorithm: str, stop: list[bool] | None = None) -> str:
    """Hex digest of a file, streamed in 1 MiB blocks; ``stop[0] = True`` aborts early (cancel)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            if stop and stop[0]:
                raise MeowError(InnerErrorCode.IO_ERROR, "hashing interrupted")
            h.update(block)
    return h.hexdigest()


def preallocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes so a full disk fails now, not hours in; sparse fallback where unsupported."""
    if size <= 0:
        return
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
    if os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)
