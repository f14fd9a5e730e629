"""Data path candidate: the stdlib's ``http.client`` on blocking sockets, one worker thread per range, ``readinto`` a
reused buffer and ``os.pwrite`` in the same thread.

The approach the engine's ``app/engine/wire.py`` is built on, without the engine around it (scheduler, checkpoints,
progress, retries): the gap between this and the CLI in the bench's "data path candidates" table is what the engine
costs on top of the approach. Threads pay off because ``recv_into``, OpenSSL's decryption and ``pwrite`` release
the GIL, so both cores work.

    python -m tests.bench.cand_httpclient URL OUTPUT [--ranges 4] [--batch 4MiB] [--cafile CA.pem]
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from typing import TYPE_CHECKING

from tests.bench.cand_base import (
    Job,
    check_range,
    finish,
    open_output,
    parse_args,
    range_header,
    read_range_into,
    split,
)

if TYPE_CHECKING:
    import ssl


def connect(job: Job, ctx: ssl.SSLContext | None) -> http.client.HTTPConnection:
    if ctx is not None:
        return http.client.HTTPSConnection(job.host, job.port, context=ctx, timeout=60)
    return http.client.HTTPConnection(job.host, job.port, timeout=60)


def fetch(job: Job, conn: http.client.HTTPConnection, fd: int, start: int, end: int, total: int) -> None:
    """One range into the file, in ``job.batch`` writes; blocking, in its own thread."""
    conn.request("GET", job.target, headers={"Range": range_header(start, end), "Accept-Encoding": "identity"})
    resp = conn.getresponse()
    check_range(resp.status, resp.getheader("Content-Range"), start, end, total)
    read_range_into(resp, fd, start, end, job.batch)
    conn.close()


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    job = parse_args("python -m tests.bench.cand_httpclient", argv)
    total = 0
    try:
        ctx = job.ssl_context()
        first = connect(job, ctx)
        first.request("HEAD", job.target)
        head = first.getresponse()
        head.read()
        total = int(head.getheader("Content-Length") or 0)
        fd = open_output(job.output)
        errors: list[BaseException] = []

        def run(conn: http.client.HTTPConnection, start: int, end: int) -> None:
            try:
                fetch(job, conn, fd, start, end, total)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(first if i == 0 else connect(job, ctx), s, e))
                   for i, (s, e) in enumerate(split(total, job.ranges))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        os.close(fd)
        if errors:
            raise errors[0]
    except Exception as exc:
        return finish(t0, job, total, exc)
    return finish(t0, job, total)


if __name__ == "__main__":
    raise SystemExit(main())
