"""Data path candidate: an engine-owned HTTP/1.1 reader on asyncio, with ``os.pwrite`` batches in a worker thread.

No HTTP library: an ``asyncio.BufferedProtocol`` per connection parses the response head itself and then has the
transport receive the body straight into the batch buffer (``recv_into`` for http; for https asyncio's SSL layer
decrypts into it), with no ``bytes`` object per read and no copy. A full batch goes to a worker thread while the
other fills; when both are busy the transport pauses. This is the best an asyncio design can do without threads
(and it would run on Windows' proactor loop too, which supports buffered protocols): everything but the writes,
TLS included, still runs on the one loop thread.

    python -m tests.bench.cand_asyncio URL OUTPUT [--ranges 4] [--batch 4MiB] [--cafile CA.pem]
"""

from __future__ import annotations

import asyncio
import os
import time

from tests.bench.cand_base import Job, check_range, finish, open_output, parse_args, range_header, split
from tests.bench.cand_batches import AsyncBatches

HEAD_LIMIT = 64 << 10


class Connection(asyncio.BufferedProtocol):
    """One keep-alive connection; :meth:`request` sends a request and waits for its whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._head = bytearray(HEAD_LIMIT)
        self._hlen = 0
        self._in_body = False
        self._body_left = 0
        self._method = "GET"
        self._sink: AsyncBatches | None = None
        self._expect: tuple[int, int, int] | None = None
        self._waiter: asyncio.Future[tuple[int, dict[str, str]]] | None = None
        self._answer: tuple[int, dict[str, str]] = (0, {})

    # ------------------------------------------------------------------ the protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or EOFError("the server closed the connection"))

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._in_body:
            assert self._sink is not None
            return self._sink.view()
        return memoryview(self._head)[self._hlen:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._in_body:
            self._body(nbytes)
            return
        self._hlen += nbytes
        end = self._head.find(b"\r\n\r\n", 0, self._hlen)
        if end < 0:
            if self._hlen == len(self._head):
                self._fail(ValueError("response head too large"))
            return
        lines = bytes(self._head[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        extra = bytes(self._head[end + 4:self._hlen])
        self._hlen = 0
        self._answer = (status, headers)
        if self._expect is not None:
            try:
                check_range(status, headers.get("content-range"), *self._expect)
            except RuntimeError as exc:
                self._fail(exc)
                return
        self._body_left = 0 if self._method == "HEAD" else int(headers.get("content-length", "0"))
        if not self._body_left:
            self._done()
            return
        if self._sink is None:
            self._fail(ValueError("a body nobody asked for"))
            return
        self._in_body = True
        while extra and self._in_body:  # body bytes that came with the head (less than a batch)
            view = self._sink.view()
            n = min(len(view), len(extra))
            view[:n] = extra[:n]
            extra = extra[n:]
            self._body(n)

    def _body(self, n: int) -> None:
        assert self._sink is not None and self.transport is not None
        self._body_left -= n
        busy = self._sink.commit(n)
        if not self._body_left:
            self._in_body = False
            self._done()
        elif busy is not None:  # both batch buffers are being written: stop reading until one is free
            transport = self.transport
            transport.pause_reading()
            busy.add_done_callback(lambda _f: transport.resume_reading() if not transport.is_closing() else None)

    def _done(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(self._answer)

    def _fail(self, exc: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------------ one exchange
    async def request(self, job: Job, method: str, headers: dict[str, str], sink: AsyncBatches | None = None,
                      expect: tuple[int, int, int] | None = None) -> tuple[int, dict[str, str]]:
        assert self.transport is not None
        self._method, self._sink, self._expect = method, sink, expect
        self._waiter = asyncio.get_running_loop().create_future()
        head = [f"{method} {job.target} HTTP/1.1", f"Host: {job.host}:{job.port}", "Accept-Encoding: identity",
                *(f"{k}: {v}" for k, v in headers.items())]
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        return await self._waiter


async def connect(job: Job, ctx: object) -> Connection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(Connection, job.host, job.port, ssl=ctx,  # type: ignore[arg-type]
                                           server_hostname=job.host if ctx is not None else None)
    return conn


async def fetch(job: Job, conn: Connection, fd: int, start: int, end: int, total: int) -> None:
    sink = AsyncBatches(fd, start, end, job.batch)
    await conn.request(job, "GET", {"Range": range_header(start, end)}, sink, expect=(start, end, total))
    await sink.close()
    assert conn.transport is not None
    conn.transport.close()


async def run(job: Job) -> int:
    ctx = job.ssl_context()
    first = await connect(job, ctx)
    _, headers = await first.request(job, "HEAD", {})
    total = int(headers.get("content-length", "0"))
    spans = split(total, job.ranges)
    conns = [first, *await asyncio.gather(*(connect(job, ctx) for _ in spans[1:]))]
    fd = open_output(job.output)
    try:
        await asyncio.gather(*(fetch(job, c, fd, s, e, total) for c, (s, e) in zip(conns, spans, strict=True)))
    finally:
        os.close(fd)
    return total


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    job = parse_args("python -m tests.bench.cand_asyncio", argv)
    try:
        total = asyncio.run(run(job))
    except Exception as exc:
        return finish(t0, job, 0, exc)
    return finish(t0, job, total)


if __name__ == "__main__":
    raise SystemExit(main())
