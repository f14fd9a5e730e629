"""Blocking file work, always run in worker threads (never on an event loop the UI may share)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from app.engine.errors import InnerErrorCode, MeowError
from app.engine.wire import Stopped

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


def file_digest(path: str, algorithm: str, stop: Callable[[], bool] | None = None) -> str:
    """Hex digest of a file, streamed in 1 MiB blocks into one reused buffer; ``stop()`` returning True aborts it
    (pause, cancel) with :class:`~app.engine.wire.Stopped`."""
    h = hashlib.new(algorithm)
    buf = bytearray(READ_BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            if stop is not None and stop():
                raise Stopped
            h.update(view[:n])
    return h.hexdigest()


#: A file whose mtime is this recent when it is hashed is not cached: file systems stamp times with a coarse clock
#: (a few ms), so a rewrite of the same size right after could keep the same mtime (git's "racy clean" problem).
MD5_CACHE_MIN_AGE_NS = 2_000_000_000
MD5_CACHE_ENTRIES = 256  # most recent entries kept


def default_md5_cache_dir() -> str:
    """The per-user cache folder: entries are shortcuts only, safe to delete at any time."""
    import platformdirs

    return str(platformdirs.user_cache_path("rusty-cat") / "content-md5")


def _md5_identity(path: str, st: os.stat_result) -> dict[str, int | str]:
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino,
            "dev": st.st_dev}


def content_md5(path: str, stop: Callable[[], bool] | None = None, cache_dir: str | None = None,
                digest: Callable[[str, str, Callable[[], bool] | None], str] | None = None) -> str:
    """The upload identity (MD5 of the content, the default protocol's ``fileMd5``), hashed once per file version.

    Hashing costs about 1.6 s per GiB here, before the first byte of an upload can go out; a resumed or repeated
    upload of an unchanged file takes the digest from a small cache instead. "Unchanged" means the same path,
    size, mtime (ns), inode and device as when it was hashed, and the file was already at least
    MD5_CACHE_MIN_AGE_NS old then. The cache is only ever a shortcut: the server still checks the MD5 of what
    it received. ``cache_dir=""`` turns it off; ``digest`` hashes on a miss (default :func:`file_digest`)."""
    before = os.stat(path)
    directory = default_md5_cache_dir() if cache_dir is None else cache_dir
    identity = _md5_identity(path, before)
    entry = os.path.join(directory, hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:40]
                         + ".json") if directory else ""
    if entry:
        cached = _read_md5_entry(entry, identity)
        if cached is not None:
            return cached
    old_enough = time.time_ns() - before.st_mtime_ns >= MD5_CACHE_MIN_AGE_NS
    md5 = (digest or file_digest)(path, "md5", stop)
    if entry and old_enough and _md5_identity(path, os.stat(path)) == identity:  # unchanged while we read it
        _write_md5_entry(directory, entry, {**identity, "md5": md5})
    return md5


def _read_md5_entry(entry: str, identity: dict[str, int | str]) -> str | None:
    try:
        with open(entry, "rb") as f:
            data = json.loads(f.read(4096))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    digest = data.pop("md5", None)
    if data != identity or not isinstance(digest, str) or len(digest) != 32 or \
            any(c not in "0123456789abcdef" for c in digest):
        return None
    return digest


def _write_md5_entry(directory: str, entry: str, data: dict[str, int | str]) -> None:
    """Best effort: a cache that cannot be written only costs a re-hash next time."""
    tmp = f"{entry}.{os.getpid()}.tmp"
    try:
        os.makedirs(directory, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, entry)
        names = [n for n in os.listdir(directory) if n.endswith(".json")]
        if len(names) > MD5_CACHE_ENTRIES:
            paths = sorted((os.path.join(directory, n) for n in names), key=_mtime_or_zero)
            for old in paths[:len(paths) - MD5_CACHE_ENTRIES]:
                with contextlib.suppress(OSError):
                    os.unlink(old)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _mtime_or_zero(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


#: File systems whose blocks are memory: reserving them zeroes every page up front (0.15 s per GiB here, a quarter of
#: a loopback download), where the download's own writes fill the pages without zeroing them first. There the free
#: space is checked instead, and nothing is reserved.
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def preallocate(fd: int, size: int, path: str) -> None:
    """Reserve ``size`` bytes on a disk so a full disk fails now, not hours in, and a disk that fills up later cannot
    stop the download (ENOSPC/EDQUOT as an OSError); on a memory file system, or where the system cannot reserve,
    check the free space and size the file sparsely."""
    if size <= 0:
        return
    if hasattr(os, "posix_fallocate") and filesystem_type(path) not in MEMORY_FILESYSTEMS:
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
    st = os.fstat(fd)
    if hasattr(os, "fstatvfs"):
        vfs = os.fstatvfs(fd)
        if size - getattr(st, "st_blocks", 0) * 512 > vfs.f_bavail * vfs.f_frsize:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if st.st_size < size:
        os.ftruncate(fd, size)


def filesystem_type(path: str) -> str | None:
    """The type of the file system holding ``path`` (Linux: the longest mount point above it in /proc/self/mounts);
    None where that cannot be known."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            mounts = [line.split()[1:3] for line in f if len(line.split()) >= 3]
    except OSError:
        return None
    real = os.path.realpath(path)
    above = [(point.replace("\\040", " "), kind) for point, kind in mounts]
    above = [(point, kind) for point, kind in above if real == point or real.startswith(point.rstrip("/") + "/")]
    return max(above, key=lambda m: len(m[0]))[1] if above else None
