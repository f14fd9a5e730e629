"""The engine's httpx client (probes and control requests): cancelled requests never use up its connection pool.

httpcore 1.0 loses a pool slot for good when a request is cancelled while its connection is set up, or cancelled
again while it cleans up (encode/httpcore#1093, #1115, open upstream); once ``max_connections`` slots are lost every
request waits forever. Pauses and cancels cancel probes and control requests all the time, so the engine's client
runs each exchange, body read and close where no cancellation reaches it (app/engine/http.py ``cancel_safe``)."""

from __future__ import annotations

import asyncio
import os
import random
import time

import httpx
import pytest

from app.engine.http import build_client
from app.engine.network import Network
from tests.support.http_server import TestHttpServer


async def _stream_until_cancelled(client: httpx.AsyncClient, url: str) -> None:
    async with client.stream("GET", url) as resp:
        async for _ in resp.aiter_raw():
            await asyncio.sleep(0)


async def cancel_many(client: httpx.AsyncClient, url: str, extra_cancels: int, count: int = 300) -> None:
    """Requests cancelled at random points (connecting, waiting for the headers, mid-body, closing), some again
    while they unwind; each must stop at once."""
    rng = random.Random(5)
    for _ in range(count):
        task = asyncio.ensure_future(_stream_until_cancelled(client, url))
        await asyncio.sleep(rng.random() * 0.01)
        task.cancel()
        for _ in range(rng.randint(0, extra_cancels)):
            await asyncio.sleep(rng.choice([0, 0, 0.0005]))
            task.cancel()
        started = time.monotonic()
        await asyncio.gather(task, return_exceptions=True)
        assert time.monotonic() - started < 1.0, "a cancelled request read on instead of stopping"
        assert task.cancelled()


@pytest.mark.asyncio
@pytest.mark.timeout(90)
@pytest.mark.parametrize("extra_cancels", [0, 3], ids=["cancelled-once", "cancelled-again-while-unwinding"])
async def test_cancelled_requests_never_use_up_the_pool(srv: TestHttpServer, extra_cancels: int) -> None:
    srv.add_file("/f.bin", os.urandom(300_000))
    srv.rate_limit = 200_000  # 1.5 s per body: every cancel lands mid-exchange
    async with build_client(Network("none"), timeout=5.0, keepalive=30.0, max_connections=4) as client:
        await cancel_many(client, srv.url("/f.bin"), extra_cancels)
        srv.rate_limit = None
        # As many requests at once as the pool has slots, twice over: a lost slot leaves some waiting forever.
        answers = await asyncio.wait_for(asyncio.gather(*(client.get(srv.url("/f.bin")) for _ in range(8))), 20)
    assert all(r.status_code == 200 and len(r.content) == 300_000 for r in answers)
