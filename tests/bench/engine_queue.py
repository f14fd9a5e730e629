"""In-process scheduler figures: ``try_enqueue`` of N tasks and ``snapshot()`` with N queued.

The tasks point at a loopback socket that listens but never accepts, so the one task the scheduler admits
(max_download_concurrency=1) stalls on its probe and the rest stay queued; the client is closed at the end.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import time
from typing import Any

from app.engine.api import DownloadPounceBuilder, MeowClient, MeowConfig

SNAPSHOTS = 7


async def _bench(workdir: str, n: int) -> dict[str, Any]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # never accepted: the kernel completes the handshake, the request waits forever
    port = listener.getsockname()[1]
    folder = os.path.join(workdir, "queue")
    os.makedirs(folder, exist_ok=True)
    client = MeowClient(MeowConfig(command_queue_capacity=max(20_000, 2 * n), max_download_concurrency=1,
                                   http_timeout=120.0))
    try:
        tasks = [DownloadPounceBuilder(f"f{i}.bin", os.path.join(folder, f"f{i}.bin"), 1 << 20,
                                       f"http://127.0.0.1:{port}/f{i}.bin").build() for i in range(n)]
        t0 = time.perf_counter()
        for task in tasks:
            await client.try_enqueue(task)
        enqueue_s = time.perf_counter() - t0
        # The first snapshot waits behind the N enqueue commands: that is the scheduler's intake time.
        first = await client.snapshot()
        intake_s = time.perf_counter() - t0
        times = []
        snap = first
        for _ in range(SNAPSHOTS):
            t = time.perf_counter()
            snap = await client.snapshot()
            times.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        await client.close()
        close_s = time.perf_counter() - t
    finally:
        if not client.is_closed():
            await client.close()
        listener.close()
    return {
        "tasks": n, "enqueue_s": enqueue_s, "intake_s": intake_s, "snapshot_ms": statistics.median(times),
        "snapshot_ms_all": times, "close_s": close_s, "queued_groups": snap.queued_groups,
        "active_groups": snap.active_groups,
    }


def run(workdir: str, n: int = 10_000) -> dict[str, Any]:
    return asyncio.run(_bench(workdir, n))
