"""What the data path candidates (``tests/bench/cand_*.py``) share: their command line, the split into ranges, the
batch writes and the one JSON line each prints.

Issue 11 asks for the bulk data path to be chosen by measurement: each candidate is a small whole program, run by
``make bench`` side by side with curl on the same nginx, so its start-up (interpreter, imports, TLS context) is part
of its time exactly as it is part of the CLI's. They all do the same work the same way -- a HEAD for the size, then
``--ranges`` (4) ranged GETs in parallel, body reads of ``READ`` (1 MiB) gathered into ``--batch`` (4 MiB) buffers
that ``os.pwrite`` puts at their offsets -- so only the way bytes come off the socket differs.

Stdlib only, and nothing imported that a candidate does not need (``ssl`` only for https URLs): these imports are
in every candidate's time.

    python -m tests.bench.cand_httpclient URL OUTPUT [--ranges 4] [--batch 4MiB] [--cafile CA.pem]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

#: Bytes asked for per body read (the asyncio candidates' read size; the threaded ones read this much per call).
READ = 1 << 20
BATCH = 4 << 20
RANGES = 4


@dataclass(frozen=True)
class Job:
    """One candidate run: where from, where to, and how."""

    url: str
    output: str
    ranges: int
    batch: int
    cafile: str | None

    @property
    def https(self) -> bool:
        return self.url.startswith("https:")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def target(self) -> str:
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The verifying context an https candidate uses (the bench's private CA), None for http."""
        if not self.https:
            return None
        import ssl

        ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    return int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)


def parse_args(prog: str, argv: list[str] | None = None) -> Job:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("output")
    p.add_argument("--ranges", type=int, default=RANGES, help="parallel ranged GETs (default 4)")
    p.add_argument("--batch", type=_size, default=BATCH, help="bytes per pwrite (default 4MiB)")
    p.add_argument("--cafile", help="PEM of the CA that signed the server's certificate (https)")
    a = p.parse_args(argv)
    return Job(a.url, a.output, max(1, a.ranges), max(READ, a.batch), a.cafile)


def split(total: int, n: int) -> list[tuple[int, int]]:
    """``n`` contiguous half-open ranges covering ``[0, total)`` (fewer for a tiny file)."""
    n = max(1, min(n, total))
    step = -(-total // n)
    return [(start, min(total, start + step)) for start in range(0, total, step)]


def range_header(start: int, end: int) -> str:
    return f"bytes={start}-{end - 1}"


def open_output(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    """``os.pwrite`` until the whole view is written (a regular file takes it in one call; be safe anyway)."""
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


class Readable(Protocol):
    def readinto(self, view: memoryview) -> int: ...


def read_range_into(resp: Readable, fd: int, start: int, end: int, batch: int) -> None:
    """A blocking body's bytes ``[start, end)`` into the file: ``READ``-sized reads gathered into one reused buffer of
    ``batch`` bytes, each full buffer written at its offset (the threaded candidates' shared loop)."""
    buf = bytearray(min(batch, end - start))
    view = memoryview(buf)
    at = start
    while at < end:
        want = min(len(buf), end - at)
        filled = 0
        while filled < want:
            n = resp.readinto(view[filled:min(filled + READ, want)])
            if not n:
                raise EOFError(f"the body ended at {at + filled}, expected {end}")
            filled += n
        pwrite_all(fd, view[:filled], at)
        at += filled


def check_range(status: int, content_range: str | None, start: int, end: int, total: int) -> None:
    expected = f"bytes {start}-{end - 1}/{total}"
    if status != 206 or content_range != expected:
        raise RuntimeError(f"range {expected}: got {status} {content_range!r}")


def finish(t0: float, job: Job, total: int, error: BaseException | None = None) -> int:
    """Print the run's one JSON line (the bench reads the last stdout line) and return the exit status."""
    result = {"ok": error is None, "bytes": total, "seconds": time.perf_counter() - t0, "ranges": job.ranges,
              "error": None if error is None else f"{type(error).__name__}: {error}"}
    print(json.dumps(result), flush=True)
    if error is not None:
        print(f"{result['error']}", file=sys.stderr)
    return 0 if error is None else 1
