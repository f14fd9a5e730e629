"""The app's path for one download: MeowClient created on a qasync QEventLoop, as the GUI does.

``python -m tests.bench.app_path URL OUTPUT [--connections N] [--chunk-size SIZE]`` downloads URL to OUTPUT
while a 16 ms QTimer ticks on the same loop (the GUI's repaint cadence), then prints one JSON line:
``{"ok": bool, "transfer_s": float, "tick_gap_ms": {...}, "records": int, "error": str | None}``.
``transfer_s`` runs from try_enqueue to the complete callback (the bench's wall time minus it is start-up:
interpreter, PySide6, QApplication).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from typing import Any

TICK_MS = 16


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.app_path")
    parser.add_argument("url")
    parser.add_argument("output")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--chunk-size", default="1MiB")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.engine.api import DownloadPounceBuilder, MeowClient, MeowConfig, TransferStatus
    from app.sizes import parse_size

    app = QApplication.instance() or QApplication([sys.argv[0]])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    result: dict[str, Any] = {"ok": False, "error": None, "records": 0}

    async def download() -> None:
        done = asyncio.Event()
        client = MeowClient(MeowConfig(max_download_concurrency=1, max_upload_concurrency=1, progress_interval=0.1))
        dest = os.path.abspath(args.output)
        task = (DownloadPounceBuilder(os.path.basename(dest), dest, parse_size(args.chunk_size), args.url)
                .with_max_chunk_concurrency(args.connections).build())

        def on_record(rec: Any) -> None:  # the GUI updates a row model here; keep it as light
            result["records"] += 1
            if rec.status in (TransferStatus.FAILED, TransferStatus.CANCELED):
                result["error"] = f"{rec.status.name}: {rec.error}"
                done.set()

        def on_complete(_task_id: Any, _payload: Any) -> None:
            result["ok"] = True
            done.set()

        t0 = time.perf_counter()
        try:
            await client.try_enqueue(task, on_record, on_complete)
            await done.wait()
            result["transfer_s"] = time.perf_counter() - t0
        finally:
            await client.close()

    timer.start(TICK_MS)
    begin = time.perf_counter()
    try:
        with loop:
            loop.run_until_complete(download())
    finally:
        timer.stop()
    end = time.perf_counter()
    window = [t for t in ticks if begin <= t <= end]
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(window)]
    result["tick_gap_ms"] = {"n": len(gaps), "p50": _percentile(gaps, 0.5), "p99": _percentile(gaps, 0.99),
                             "max": max(gaps) if gaps else None}
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
