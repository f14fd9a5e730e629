"""Data path candidate: aiohttp on asyncio, 1 MiB reads, ``os.pwrite`` batches in a worker thread.

The asyncio client a user would reach for. Its reads, HTTP parsing and (for https) TLS decryption all run on the
one loop thread; only the writes leave it. aiohttp is a bench-only dependency (``make bench`` installs it), never
one of the app's.

    python -m tests.bench.cand_aiohttp URL OUTPUT [--ranges 4] [--batch 4MiB] [--cafile CA.pem]
"""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp

from tests.bench.cand_base import READ, Job, check_range, finish, open_output, parse_args, range_header, split
from tests.bench.cand_batches import AsyncBatches


async def fetch(job: Job, session: aiohttp.ClientSession, fd: int, start: int, end: int, total: int) -> None:
    async with session.get(job.url, headers={"Range": range_header(start, end), "Accept-Encoding": "identity"}) as r:
        check_range(r.status, r.headers.get("Content-Range"), start, end, total)
        out = AsyncBatches(fd, start, end, job.batch)
        while out.left:
            chunk = await r.content.read(min(READ, out.left))
            if not chunk:
                raise EOFError(f"the body ended at {out.at}, expected {end}")
            got = memoryview(chunk)
            while got:  # a read may straddle two batches
                view = out.view()
                n = min(len(view), len(got))
                view[:n] = got[:n]
                got = got[n:]
                await out.advance(n)
        await out.close()


async def run(job: Job) -> int:
    connector = aiohttp.TCPConnector(limit=job.ranges, ssl=job.ssl_context() or False)
    async with aiohttp.ClientSession(connector=connector, read_bufsize=READ, auto_decompress=False) as session:
        async with session.head(job.url) as head:
            total = int(head.headers.get("Content-Length") or 0)
        fd = open_output(job.output)
        try:
            await asyncio.gather(*(fetch(job, session, fd, s, e, total) for s, e in split(total, job.ranges)))
        finally:
            os.close(fd)
    return total


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    job = parse_args("python -m tests.bench.cand_aiohttp", argv)
    try:
        total = asyncio.run(run(job))
    except Exception as exc:
        return finish(t0, job, 0, exc)
    return finish(t0, job, total)


if __name__ == "__main__":
    raise SystemExit(main())
