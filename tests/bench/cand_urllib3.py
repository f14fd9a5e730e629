"""Data path candidate: urllib3 (a well-kept library on top of ``http.client``), one worker thread per range.

The same threads, buffers and writes as ``cand_httpclient``, through urllib3's public API: a connection pool, a
response read with ``readinto`` (urllib3 reads into its own ``bytes`` and copies them into ours, which is where its
extra CPU goes). If it came close to the bare stdlib, its proxy and TLS handling would be worth a dependency.

    python -m tests.bench.cand_urllib3 URL OUTPUT [--ranges 4] [--batch 4MiB] [--cafile CA.pem]
"""

from __future__ import annotations

import os
import threading
import time

import urllib3

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


def fetch(job: Job, pool: urllib3.HTTPConnectionPool, fd: int, start: int, end: int, total: int) -> None:
    """One range into the file, in ``job.batch`` writes; blocking, in its own thread."""
    resp = pool.request("GET", job.target, headers={"Range": range_header(start, end), "Accept-Encoding": "identity"},
                        preload_content=False, decode_content=False, retries=False)
    check_range(resp.status, resp.headers.get("Content-Range"), start, end, total)
    read_range_into(resp, fd, start, end, job.batch)
    resp.release_conn()


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    job = parse_args("python -m tests.bench.cand_urllib3", argv)
    total = 0
    try:
        pool: urllib3.HTTPConnectionPool
        if job.https:
            pool = urllib3.HTTPSConnectionPool(job.host, job.port, maxsize=job.ranges, ssl_context=job.ssl_context(),
                                               timeout=60)
        else:
            pool = urllib3.HTTPConnectionPool(job.host, job.port, maxsize=job.ranges, timeout=60)
        head = pool.request("HEAD", job.target, retries=False)
        total = int(head.headers.get("Content-Length") or 0)
        fd = open_output(job.output)
        errors: list[BaseException] = []

        def run(start: int, end: int) -> None:
            try:
                fetch(job, pool, fd, start, end, total)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=span) for span in split(total, job.ranges)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        os.close(fd)
        pool.close()
        if errors:
            raise errors[0]
    except Exception as exc:
        return finish(t0, job, total, exc)
    return finish(t0, job, total)


if __name__ == "__main__":
    raise SystemExit(main())
