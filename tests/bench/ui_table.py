"""The window with 10,000 jobs all updating (issue 4, Performance): event-loop lag, scrolling, memory.

    python -m tests.bench.ui_table                 # 10,000 jobs, 10 s in arrival order + 10 s sorted by speed
    python -m tests.bench.ui_table --seconds 3     # quick

The real MainWindow (JobTableModel + JobFilterProxy + QTableView, sidebar, status bar) runs offscreen on a qasync
loop, as the app does. The manager is an in-memory stand-in that behaves like TransferManager towards its
listeners: every ``NOTIFY_INTERVAL`` (0.1 s) it moves every job's bytes, speed and ETA and calls ``jobs_changed``
with all 10,000 jobs in one batch, the shape of TransferManager._notify; ``totals()`` is TransferManager's own
code. No engine, no SQLite: this measures the window, not transfers. ``--rate-meters`` adds the manager's per-job
RateMeter bookkeeping (what it does per engine record) to the stand-in's update.

Measured in each phase (arrival order, then sorted by speed, fastest first):

* loop lag: gaps between ticks of a 16 ms precise QTimer (p50/p99/max), and how late an ``asyncio.sleep(0.01)``
  wakes up (p99) -- the GUI's responsiveness; also the GUI thread's CPU time within each gap (p99): on a shared
  machine the gaps stretch with other processes' load, while the work done between two ticks does not, so
  that figure compares changes run at different times;
* scrolling: every 100 ms the view scrolls one page (wrapping at the end) and repaints at once; the step's cost
  (scroll + synchronous repaint of the viewport) and whether the first visible row and its job changed;
* the model's flush (one per ~100 ms) and the stand-in manager's update, so the lag can be attributed.

Memory: peak RSS (VmHWM) of this process after the 10,000 jobs and the window exist, and at the end.

Prints a table, then one JSON line (the last line of stdout) that ``tests.bench.run`` reads.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

JOBS = 10_000
SECONDS = 10.0
TICK_MS = 16
SCROLL_MS = 100
PROBE_SLEEP = 0.01
TARGET_LAG_MS = 50.0
TARGET_RSS_MIB = 300.0
MiB = 1 << 20


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    return {"n": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
            "max": max(values) if values else None}


def rounded(value: Any) -> Any:
    """Floats to 3 decimals, recursively: the JSON line stays short (run_child keeps the last 4,000 characters)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def peak_rss_mib() -> float:
    """VmHWM (the process's peak resident set) on Linux; getrusage's ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MiB if sys.platform == "darwin" else rss / 1024


def current_rss_mib() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@dataclass
class Prefs:
    """What the window reads of the preferences (app.ui.main_window.PreferencesLike), without QSettings."""

    default_download_dir: str
    default_upload_remote: str = ""
    connections: int = 4
    chunk_size: int = 8 * MiB


def make_manager_class() -> type:
    """Built after Qt/the app are imported (main() sets the platform first)."""
    from app.manager.jobs import Direction, Job, JobStatus, new_job_id
    from app.manager.listener import ManagerListener
    from app.manager.manager import NOTIFY_INTERVAL, TransferManager
    from app.manager.rate_meter import RateMeter

    class BusyManager:
        """TransferManager's listener contract with N active jobs that all change every NOTIFY_INTERVAL."""

        totals = TransferManager.totals  # the real code: it walks every job, as the status bar makes it do
        jobs = TransferManager.jobs

        def __init__(self, n: int, *, rate_meters: bool = False, seed: int = 4) -> None:
            rnd = random.Random(seed)
            self._rate_limit: int | None = None
            self._listeners: list[ManagerListener] = []
            self._jobs: dict[str, Job] = {}
            self._meters: dict[str, RateMeter] | None = {} if rate_meters else None
            self._base: dict[str, tuple[float, int]] = {}  # job id -> (bytes/s, which speed curve)
            exts = ("iso", "tar.gz", "mp4", "zip", "bin", "pdf")
            for i in range(n):
                direction = Direction.UPLOAD if i % 5 == 0 else Direction.DOWNLOAD
                name = f"file-{i:05d}.{exts[i % len(exts)]}"
                total = rnd.randrange(1, 4096) * MiB
                job = Job(id=new_job_id(), direction=direction, name=name, local_path=f"/data/transfers/{name}",
                          remote=f"https://mirror-{i % 17}.example.test/pub/{i % 97}/{name}",
                          status=JobStatus.ACTIVE, total_bytes=total, done_bytes=rnd.randrange(0, total))
                self._jobs[job.id] = job
                if self._meters is not None:
                    self._meters[job.id] = RateMeter()
                self._base[job.id] = (rnd.uniform(50e3, 50e6), rnd.randrange(64))
            self.update_ms: list[float] = []

        @property
        def rate_limit(self) -> int | None:
            return self._rate_limit

        def add_listener(self, listener: ManagerListener) -> None:
            self._listeners.append(listener)

        def remove_listener(self, listener: ManagerListener) -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        def step(self, now: float, dt: float) -> None:
            """Every job moves (speeds wander, so a speed-sorted table keeps re-ordering), then one batch."""
            t0 = time.perf_counter()
            # 64 speed curves shifted in phase instead of a sin() per job: the stand-in's own cost stays small
            # next to the window's (it is reported separately as manager_update_ms).
            factors = [1.0 + 0.5 * math.sin(now * 0.7 + k * math.pi / 32) for k in range(64)]
            meters = self._meters
            for job in self._jobs.values():
                base, curve = self._base[job.id]
                speed = base * factors[curve]
                done = job.done_bytes + int(speed * dt)
                if done >= job.total_bytes:
                    done = 0  # start over rather than complete: every row keeps changing
                job.done_bytes = done
                if meters is not None:  # --rate-meters: the manager's per-record bookkeeping as well
                    meter = meters[job.id]
                    meter.add(now, done)
                    job.speed = meter.rate()
                    job.eta = meter.eta(job.total_bytes)
                else:
                    job.speed = speed
                    job.eta = (job.total_bytes - done) / speed
            batch = list(self._jobs.values())
            for listener in list(self._listeners):
                listener.jobs_changed(batch)
            self.update_ms.append((time.perf_counter() - t0) * 1000)

        async def run(self, stop: asyncio.Event) -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(NOTIFY_INTERVAL)
                now = time.monotonic()
                self.step(now, now - last)
                last = now

    return BusyManager


async def measure_phase(window: Any, manager: Any, seconds: float, flush_ms: list[float]) -> dict[str, Any]:
    """Run the busy manager for ``seconds`` with the lag probes and the scroller; return the phase's figures."""
    from PySide6.QtCore import Qt, QTimer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    ticks: list[tuple[float, float]] = []  # (wall clock, this thread's CPU time)
    sleep_lag: list[float] = []
    scroll_ms: list[float] = []
    moved = moved_job = steps = 0
    view = window.view
    bar = view.verticalScrollBar()
    bar.setValue(0)
    flush_ms.clear()
    manager.update_ms.clear()

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(lambda: ticks.append((time.perf_counter(), time.thread_time())))

    def top() -> tuple[int, Any]:
        row = view.rowAt(0)
        return row, (window.proxy.job_at(row).id if row >= 0 else None)

    async def probe() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(PROBE_SLEEP)
            sleep_lag.append((time.perf_counter() - t - PROBE_SLEEP) * 1000)

    async def scroller() -> None:
        nonlocal moved, moved_job, steps
        while not stop.is_set():
            await asyncio.sleep(SCROLL_MS / 1000)
            before_row, before_job = top()
            t = time.perf_counter()
            value = bar.value() + bar.pageStep()
            bar.setValue(value if value <= bar.maximum() else 0)
            view.viewport().repaint()  # paint now, so the step's cost includes drawing the new rows
            scroll_ms.append((time.perf_counter() - t) * 1000)
            after_row, after_job = top()
            steps += 1
            moved += after_row != before_row
            moved_job += after_job != before_job

    timer.start(TICK_MS)
    tasks = [loop.create_task(manager.run(stop)), loop.create_task(probe()), loop.create_task(scroller())]
    started = time.perf_counter()
    cpu_before = time.process_time()
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    timer.stop()
    cpu = time.process_time() - cpu_before
    gaps = [(b[0] - a[0]) * 1000 for a, b in itertools.pairwise(ticks)]
    gap_cpu = [(b[1] - a[1]) * 1000 for a, b in itertools.pairwise(ticks)]
    wall = time.perf_counter() - started
    return {
        "seconds": wall,
        "cpu_share": cpu / wall,  # CPU seconds per second: how busy the GUI thread is (all but a little of it)
        "tick_gap_ms": spread(gaps),
        "tick_gap_cpu_ms": spread(gap_cpu),
        "sleep_lag_ms": spread(sleep_lag),
        "scroll_step_ms": spread(scroll_ms),
        "scroll_steps": steps,
        "scroll_moved": moved,
        "scroll_moved_job": moved_job,
        "flush_ms": spread(flush_ms),
        "manager_update_ms": spread(manager.update_ms),
        "batches": len(manager.update_ms),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from app.ui.job_table_model import Column, JobTableModel
    from app.ui.main_window import MainWindow

    flush_ms: list[float] = []
    real_flush = JobTableModel.flush

    def timed_flush(self: JobTableModel) -> None:  # bench instrumentation: the flush's own cost
        t = time.perf_counter()
        real_flush(self)
        flush_ms.append((time.perf_counter() - t) * 1000)

    JobTableModel.flush = timed_flush  # type: ignore[method-assign]  (before the model connects its timer)

    result: dict[str, Any] = {"jobs": args.jobs, "rate_meters": args.rate_meters,
                              "rss_mib": {"before_jobs": peak_rss_mib()}}
    t = time.perf_counter()
    manager = make_manager_class()(args.jobs, rate_meters=args.rate_meters)
    result["create_jobs_s"] = time.perf_counter() - t
    t = time.perf_counter()
    window = MainWindow(manager, Prefs(default_download_dir=tempfile.gettempdir()))
    window.resize(1180, 640)
    window.show()
    QApplication.processEvents()
    result["create_window_s"] = time.perf_counter() - t
    assert window.model.rowCount() == args.jobs and window.proxy.rowCount() == args.jobs
    result["rss_mib"]["after_window"] = peak_rss_mib()

    phases: dict[str, Any] = {}
    phases["arrival"] = await measure_phase(window, manager, args.seconds, flush_ms)
    t = time.perf_counter()
    window.view.sortByColumn(Column.SPEED, Qt.SortOrder.DescendingOrder)  # what a click on the header does
    QApplication.processEvents()
    result["sort_by_speed_s"] = time.perf_counter() - t
    phases["speed_sorted"] = await measure_phase(window, manager, args.seconds, flush_ms)
    result["phases"] = phases
    result["rss_mib"]["peak"] = peak_rss_mib()
    result["rss_mib"]["current"] = current_rss_mib()
    window.detach()
    window.close()
    return result


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows in tests.bench.run's shape: figure, measured, value, target, result."""
    rows: list[dict[str, Any]] = []

    def row(figure: str, value: float | None, measured: str, target: str, passes: Callable[[float], bool]) -> None:
        verdict = "n/a" if value is None else ("PASS" if passes(value) else "MISS")
        rows.append({"figure": figure, "measured": measured, "value": value, "target": target, "result": verdict})

    jobs = result["jobs"]
    n = f"{jobs // 1000}k" if jobs % 1000 == 0 else f"{jobs:,}"
    for key, label in (("arrival", "arrival order"), ("speed_sorted", "sorted by speed")):
        phase = result["phases"][key]
        gap = phase["tick_gap_ms"]
        lag = phase["sleep_lag_ms"]
        row(f"UI {n} jobs: loop lag p99, {label}", gap["p99"],
            f"tick gap p99 {_f(gap['p99'], 1)} ms (max {_f(gap['max'], 1)}); sleep lag p99 {_f(lag['p99'], 1)} ms",
            f"< {TARGET_LAG_MS:.0f} ms", lambda v: v < TARGET_LAG_MS)
        step = phase["scroll_step_ms"]
        all_moved = phase["scroll_steps"] > 0 and phase["scroll_moved_job"] == phase["scroll_steps"]
        row(f"UI {n} jobs: scroll step p99, {label}", step["p99"] if all_moved else None,
            f"{_f(step['p99'], 1)} ms (max {_f(step['max'], 1)}); top row moved "
            f"{phase['scroll_moved_job']}/{phase['scroll_steps']} times", f"< {TARGET_LAG_MS:.0f} ms; rows move",
            lambda v: v < TARGET_LAG_MS)
    rss = result["rss_mib"]
    row(f"UI {n} jobs: peak RSS of the app process", rss["peak"],
        f"{_f(rss['peak'], 1)} MiB (jobs + window {_f(rss['after_window'], 1)}, none {_f(rss['before_jobs'], 1)})",
        f"< {TARGET_RSS_MIB:.0f} MiB", lambda v: v < TARGET_RSS_MIB)
    return rows


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_report(result: dict[str, Any]) -> None:
    print(f"UI table bench: {result['jobs']:,} jobs, all changing every 100 ms; the window opens in "
          f"{result['create_window_s']:.2f} s, sorting by speed takes {result['sort_by_speed_s'] * 1000:.0f} ms")
    print(f"| {'phase':<15} | {'tick gap p50/p99/max ms':>23} | {'CPU in gap p99':>14} | {'sleep lag p99':>13} | "
          f"{'scroll p50/p99 ms':>17} | {'moved':>7} | {'flush p50/p99 ms':>16} | {'manager ms p50':>14} | "
          f"{'CPU':>4} |")
    print(f"|{'-' * 17}|{'-' * 24}:|{'-' * 15}:|{'-' * 14}:|{'-' * 18}:|{'-' * 8}:|{'-' * 17}:|{'-' * 15}:|{'-' * 5}:|")
    for name, p in result["phases"].items():
        gap, lag, step, flush = p["tick_gap_ms"], p["sleep_lag_ms"], p["scroll_step_ms"], p["flush_ms"]
        print(f"| {name:<15} | {_f(gap['p50'], 1) + ' / ' + _f(gap['p99'], 1) + ' / ' + _f(gap['max'], 1):>23} | "
              f"{_f(p['tick_gap_cpu_ms']['p99'], 1):>14} | {_f(lag['p99'], 1):>13} | "
              f"{_f(step['p50'], 1) + ' / ' + _f(step['p99'], 1):>17} | "
              f"{str(p['scroll_moved_job']) + '/' + str(p['scroll_steps']):>7} | "
              f"{_f(flush['p50'], 1) + ' / ' + _f(flush['p99'], 1):>16} | "
              f"{_f(p['manager_update_ms']['p50'], 1):>14} | {p['cpu_share']:>4.0%} |")
    rss = result["rss_mib"]
    print(f"peak RSS: {_f(rss['peak'], 1)} MiB (before jobs {_f(rss['before_jobs'], 1)}, after jobs + window "
          f"{_f(rss['after_window'], 1)}, now {_f(rss['current'], 1)})")
    print()
    print(f"| {'figure':<46} | {'measured':<58} | {'target':<22} | result |")
    print(f"|{'-' * 48}|{'-' * 60}|{'-' * 24}|--------|")
    for r in result["targets"]:
        print(f"| {r['figure']:<46} | {r['measured']:<58} | {r['target']:<22} | {r['result']:<6} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.ui_table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=JOBS, help=f"jobs in the table (default {JOBS:,})")
    parser.add_argument("--seconds", type=float, default=SECONDS,
                        help=f"length of each phase (default {SECONDS:.0f} s)")
    parser.add_argument("--rate-meters", action="store_true",
                        help="also keep a RateMeter per job in the stand-in manager, as TransferManager does per "
                             "engine record (the engine never runs 10,000 transfers at once, so off by default)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import qasync
    from PySide6.QtCore import QCoreApplication, QSettings
    from PySide6.QtWidgets import QApplication

    with tempfile.TemporaryDirectory(prefix="rusty-cat-ui-bench-") as settings_dir:
        # The window saves its geometry and header on close: never into the user's real settings.
        QCoreApplication.setOrganizationName("rusty-cat-bench")
        QCoreApplication.setApplicationName("rusty-cat-bench")
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings_dir)
        app = QApplication.instance() or QApplication([sys.argv[0]])
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        try:
            with loop:
                result = loop.run_until_complete(bench(args))
        except Exception as exc:  # one JSON line either way, so the caller can report it
            print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
            raise
    result["ok"] = True
    result["targets"] = verdicts(result)
    print_report(result)
    print(json.dumps(rounded(result)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
