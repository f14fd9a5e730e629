"""The bench's verdicts: every target row of issues 11, 5 and 4, its value as the median of per-round ratios
(each round runs the tools side by side), the tables ``make bench`` prints, the JSON file, and the profile taken
when a target is missed.

A ratio is never a ratio of medians: each round's pair of runs (same files, same server, same minute) gives one
ratio, and the row shows the median of those, with their spread when there are several.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.bench.common import GiB, MiB, fmt_size, median, note, remove, run_child, venv_command
from tests.bench.core import PY, ROOT, Bench


@dataclass(frozen=True)
class Target:
    key: str
    figure: str
    target: str  # as printed
    passes: Callable[[float], bool] | None  # None: a figure to report, with no target


#: Every row, in the order printed: issue 11's table first, then the rows issue 11 keeps from issue 5.
TARGETS: list[Target] = [
    Target("dl_curl", "download: CLI vs curl -o (throughput)", ">= 1.2x", lambda v: v >= 1.2),
    Target("dl_aria", "download: CLI vs aria2c -x4 -s4", ">= 1.2x", lambda v: v >= 1.2),
    Target("tls_curl", "HTTPS download (private CA): CLI vs curl", ">= 1.0x", lambda v: v >= 1.0),
    Target("tls_aria", "HTTPS download (private CA): CLI vs aria2c -x4", ">= 1.0x", lambda v: v >= 1.0),
    Target("cap4", "40 MB/s per connection: CLI vs aria2c, 4 conn.", ">= 1.0x", lambda v: v >= 1.0),
    Target("cap16", "40 MB/s per connection: CLI vs aria2c, 16 conn.", ">= 1.0x", lambda v: v >= 1.0),
    Target("link_oss", "6 Mbit/s upload, OSS: CLI time / curl -T", "<= 1.1x", lambda v: v <= 1.1),
    Target("link_azure", "6 Mbit/s upload, Azure: CLI time / curl -T", "<= 1.1x", lambda v: v <= 1.1),
    Target("link_default", "6 Mbit/s upload, default: CLI time / curl -T", "<= 1.1x", lambda v: v <= 1.1),
    Target("cpu", "CPU s per GiB downloaded: CLI vs aria2c", "<= 1.2x", lambda v: v <= 1.2),
    Target("start_version", "CLI start-up: --version", "report", None),
    Target("start_tiny", "CLI start-up: a 1,000-byte download", "< 0.2 s", lambda v: v < 0.2),
    Target("app", "download: app path (qasync) vs CLI", ">= 0.9x", lambda v: v >= 0.9),
    Target("up", "upload (chunk protocol): CLI vs curl -T", ">= 0.8x", lambda v: v >= 0.8),
    Target("up_first", "upload (chunk protocol), first: CLI vs curl -T", ">= 0.8x", lambda v: v >= 0.8),
    Target("azure", "upload (Azure blocks, Azurite): CLI vs curl -T", ">= 0.8x", lambda v: v >= 0.8),
    Target("rss_ratio", "peak RSS: huge vs small download (CLI)", "<= 1.1x", lambda v: v <= 1.1),
    Target("rss_worst", "peak RSS downloading the huge file", "< 120 MiB", lambda v: v < 120),
    Target("enqueue", "try_enqueue of 10,000 tasks", "< 2 s", lambda v: v < 2.0),
    Target("snapshot", "snapshot() with 10,000 queued", "< 20 ms", lambda v: v < 20.0),
    Target("tick", "UI: 16 ms QTimer tick gap p99 during download", "< 50 ms", lambda v: v < 50.0),
]
BY_KEY = {t.key: t for t in TARGETS}
#: The rows a --url run can measure (curl, aria2c and the CLI downloading someone else's file).
URL_MODE_KEYS = frozenset({"dl_curl", "dl_aria", "cpu", "start_version"})
#: The rows read from the CLI's peak RSS (unreadable when it is no higher than the bench's own, see run_child).
RSS_KEYS = frozenset({"rss_ratio", "rss_worst"})
#: Rows whose miss a CPU profile would not explain, and where to look instead.
NO_PROFILER = {
    "rss_ratio": "a memory figure: see the per-run peak RSS in runs[] (phases small and huge)",
    "rss_worst": "a memory figure: see the per-run peak RSS in runs[] (phase huge)",
    "enqueue": "in-process: python -m cProfile on tests/bench/engine_queue.py",
    "snapshot": "in-process: python -m cProfile on tests/bench/engine_queue.py",
}
#: The candidates' phases (candidates.py) and their tools, in the order printed.
CANDIDATE_PHASES = {"cand-http": "HTTP", "cand-tls": "HTTPS"}


@dataclass
class Value:
    value: float | None
    shown: str
    ratios: list[float] = field(default_factory=list)  # one per round, for a ratio row
    samples: list[float] = field(default_factory=list)  # the measured values, for a row that is not a ratio


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _mbs(wall: float | None, size: int) -> str:
    return f"{size / MiB / wall:.0f} MiB/s" if wall and size else "-"


def _spread(ratios: list[float]) -> str:
    return f"; {len(ratios)} rounds {min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""


def _size_of(b: Bench, phase: str) -> int:
    return next((r.size for r in b.runs if r.phase == phase and r.ok), 0)


def throughput(b: Bench, phase: str, ours: str, peer: str, note_text: str = "") -> Value:
    """``peer``'s wall time over ``ours``, per round: above 1 means ours moved the bytes faster."""
    ratios = b.paired(phase, peer, ours)
    size = _size_of(b, phase)
    shown = f"{_mbs(b.med(phase, ours, 'wall'), size)} vs {_mbs(b.med(phase, peer, 'wall'), size)}"
    return Value(median(ratios), shown + note_text + _spread(ratios), ratios)


def time_ratio(b: Bench, phase: str, ours: str, peer: str) -> Value:
    """``ours``' wall time over ``peer``'s, per round: below 1 means ours finished first."""
    ratios = b.paired(phase, ours, peer)
    shown = f"{_f(b.med(phase, ours, 'wall'), 1)} s vs {_f(b.med(phase, peer, 'wall'), 1)} s"
    size = _size_of(b, phase)
    if size:
        shown += f" ({fmt_size(size)})"
    return Value(median(ratios), shown + _spread(ratios), ratios)


def evaluate(b: Bench, key: str) -> Value:
    """The value of one target row from the runs so far (called by the phases, to profile a miss while the servers
    are still up, and by :func:`summarize`)."""
    if key == "dl_curl":
        return throughput(b, "download", "CLI", "curl")
    if key == "dl_aria":
        return throughput(b, "download", "CLI", "aria2c")
    if key == "tls_curl":
        return throughput(b, "https", "CLI", "curl")
    if key == "tls_aria":
        return throughput(b, "https", "CLI", "aria2c")
    if key in ("cap4", "cap16"):
        return throughput(b, key, "CLI", "aria2c")
    if key.startswith("link_"):
        return time_ratio(b, "link", {"link_oss": "CLI OSS", "link_azure": "CLI Azure",
                                      "link_default": "CLI default"}[key], "curl -T")
    if key == "cpu":
        ratios = b.paired("download", "CLI", "aria2c", "cpu")
        gib = (_size_of(b, "download") / GiB) or None
        per = {t: (c / gib if c is not None and gib else None) for t in ("CLI", "aria2c")
               for c in [b.med("download", t, "cpu")]}
        return Value(median(ratios), f"{_f(per['CLI'])} vs {_f(per['aria2c'])} CPU s/GiB" + _spread(ratios), ratios)
    if key in ("start_version", "start_tiny"):
        tool = "--version" if key == "start_version" else "1,000 B"
        walls = [r.wall for r in b.good("startup", tool)]
        cpu = b.med("startup", tool, "cpu")
        value = median(walls)
        return Value(value, f"{_f(value)} s wall, {_f(cpu)} s CPU (median of {len(walls)})" if walls else "-",
                     samples=walls)
    if key == "app":
        transfer = median([r.extra["transfer_s"] for r in b.good("download", "app path")
                           if isinstance(r.extra.get("transfer_s"), float)])
        size = _size_of(b, "download")
        return throughput(b, "download", "app path", "CLI", f"; transfer only {_mbs(transfer, size)}")
    if key == "up":
        return throughput(b, "upload", "CLI", "curl -T", " (MD5 cached)")
    if key == "up_first":
        return throughput(b, "upload", "CLI first", "curl -T", " (hashes first)")
    if key == "azure":
        return throughput(b, "azure", "CLI", "curl -T", f" ({fmt_size(_size_of(b, 'azure'))}, Put Blob)")
    if key == "rss_ratio":
        huge, small = b.med("huge", "CLI", "maxrss_mib"), b.med("small", "CLI", "maxrss_mib")
        value = huge / small if huge is not None and small else None
        return Value(value, f"{_f(huge, 1)} MiB ({fmt_size(_size_of(b, 'huge'))}) vs {_f(small, 1)} MiB "
                            f"({fmt_size(_size_of(b, 'small'))})")
    if key == "rss_worst":
        worst = max((r.maxrss_mib for r in b.good("huge", "CLI")), default=None)
        return Value(worst, f"{_f(worst, 1)} MiB (worst run, {fmt_size(_size_of(b, 'huge'))})")
    if key in ("enqueue", "snapshot"):
        queue = b.figures.get("queue") or {}
        if key == "enqueue":
            return Value(queue.get("enqueue_s"),
                         f"{_f(queue.get('enqueue_s'))} s (scheduler intake {_f(queue.get('intake_s'))} s)")
        return Value(queue.get("snapshot_ms"),
                     f"{_f(queue.get('snapshot_ms'), 1)} ms ({queue.get('queued_groups', '-')} queued)")
    if key == "tick":
        p99 = median([r.extra["tick_gap_ms"]["p99"] for r in b.good("download", "app path")
                      if isinstance(r.extra.get("tick_gap_ms"), dict) and r.extra["tick_gap_ms"].get("p99")])
        return Value(p99, f"{_f(p99, 1)} ms (app path runs)")
    raise KeyError(key)


def verdict(target: Target, value: float | None) -> str:
    if value is None:
        return "n/a"
    if target.passes is None:
        return "report"
    return "PASS" if target.passes(value) else "MISS"


# ---------------------------------------------------------------------------------------------- profiles
def profile_misses(b: Bench, keys: list[str], argv: list[str], env: dict[str, str] | None, name: str, *,
                   output: str | None = None, wrap: Callable[[list[str]], list[str]] | None = None,
                   idle: bool = False, timeout: float = 600.0) -> None:
    """If any of ``keys`` is missed so far, run ``argv`` (our CLI) once more under py-spy and keep the flame graph
    in the work dir's ``profiles/`` folder; the JSON's row then names it. Taken at once, while the phase's servers
    are still up; one profile serves every row of the same command. ``idle`` keeps waiting threads in the samples
    (for a run bound by a slow link rather than by CPU)."""
    missed = [k for k in keys if verdict(BY_KEY[k], evaluate(b, k).value) == "MISS"]
    if not missed or b.args.no_profile:
        return
    spy = venv_command("py-spy")
    if spy is None:
        for k in missed:
            b.profiles[k] = {"note": "py-spy is not installed (pip install py-spy): no profile"}
        return
    folder = os.path.join(b.workdir, "profiles")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.svg")
    cmd = [spy, "record", "--threads", "--rate", "250", "--format", "flamegraph", "--output", path,
           *(["--idle"] if idle else []), "--", *argv]
    note(f"profiling {name} with py-spy (missed: {', '.join(missed)})")
    child = run_child(wrap(cmd) if wrap else cmd, timeout=timeout, cwd=ROOT, env=env)
    if output is not None:
        remove(output)
    entry: dict[str, Any] = {"profile": path if os.path.exists(path) else None, "tool": "py-spy record --threads",
                             "command": argv}
    if child.rc != 0 or not os.path.exists(path):
        entry["error"] = f"exit {child.rc}: {(child.err or child.out).strip()[-300:]}"
    for k in missed:
        b.profiles[k] = entry


def importtime_profile(b: Bench, keys: list[str], argv: list[str], env: dict[str, str], output: str | None) -> None:
    """For a missed start-up target the better profile is ``python -X importtime`` (what each import costs): the
    same command once more, its import log kept in ``profiles/``."""
    missed = [k for k in keys if verdict(BY_KEY[k], evaluate(b, k).value) == "MISS"]
    if not missed or b.args.no_profile:
        return
    folder = os.path.join(b.workdir, "profiles")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "startup-importtime.txt")
    assert argv[0] == PY
    with open(path, "w") as log:
        subprocess.run([PY, "-X", "importtime", *argv[1:]], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=log, timeout=120, check=False)
    if output is not None:
        remove(output)
    for k in missed:
        b.profiles[k] = {"profile": path, "tool": "python -X importtime", "command": argv}


# ---------------------------------------------------------------------------------------------- summary
def summarize(b: Bench) -> None:
    unreadable = RSS_KEYS if any(
        v is not None and b.at_floor(phase, "CLI", v)
        for phase, v in (("huge", b.med("huge", "CLI", "maxrss_mib")), ("small", b.med("small", "CLI", "maxrss_mib")))
    ) else frozenset()
    for t in TARGETS:
        if b.args.url and t.key not in URL_MODE_KEYS:
            continue
        v = evaluate(b, t.key)
        result = verdict(t, v.value)
        shown = v.shown
        if t.key in unreadable:
            result, shown = "n/a", shown + "; at the bench's own peak RSS, not the CLI's"
        is_ratio = t.target.endswith("x")
        measured = f"{v.value:.2f}x ({shown})" if is_ratio and v.value is not None else shown
        row: dict[str, Any] = {"key": t.key, "figure": t.figure, "measured": measured, "value": v.value,
                               "target": t.target, "result": result, "ratios": v.ratios}
        if v.samples:
            row["samples"] = v.samples
        if result == "MISS":
            row["profile"] = b.profiles.get(t.key) or {
                "note": "--no-profile" if b.args.no_profile else NO_PROFILER.get(t.key, "no profile was taken")}
        elif t.key in b.profiles:
            row["profile"] = b.profiles[t.key]
        skipped = (b.figures.get("skipped") or {}).get(t.key)
        if skipped and v.value is None:
            row["measured"], row["skipped"] = f"skipped: {skipped}", skipped
        b.rows.append(row)
    if not b.args.url:
        b.rows.append({"figure": "bytes re-sent after kill -9 and resume", "measured": "not measured yet",
                       "value": None, "target": "<= 1 chunk per segment", "result": "n/a"})
        ui = b.figures.get("ui_table") or {}
        if ui.get("targets"):
            b.rows.extend(ui["targets"])
        elif "ui_table" in b.figures:
            b.rows.append({"figure": "UI 10k jobs: loop lag, scrolling, RSS", "measured": "the bench failed",
                           "value": None, "target": "< 50 ms; < 300 MiB", "result": "n/a"})
    b.figures["candidates_summary"] = candidates_summary(b)


def candidates_summary(b: Bench) -> dict[str, Any]:
    """Per candidate and protocol: the median ratio to curl (curl's wall time over the candidate's, per round),
    its spread, throughput and CPU; and the best candidate (the geometric mean of its ratios over the protocols)."""
    tools: list[str] = (b.figures.get("candidates") or {}).get("tools") or []
    out: dict[str, Any] = {"tools": {}, "best": None}
    for tool in tools:
        entry: dict[str, Any] = {}
        for phase, proto in CANDIDATE_PHASES.items():
            ratios = b.paired(phase, "curl", tool)
            if not ratios and not b.good(phase, tool):
                continue
            size = _size_of(b, phase)
            entry[proto] = {"ratio": median(ratios), "ratios": ratios, "size": size,
                            "mib_s": (size / MiB / w) if (w := b.med(phase, tool, "wall")) else None,
                            "cpu_s": b.med(phase, tool, "cpu"), "user_s": b.med(phase, tool, "user")}
        out["tools"][tool] = entry
    scored = {t: math.exp(sum(math.log(p["ratio"]) for p in e.values()) / len(e))
              for t, e in out["tools"].items() if e and all(p["ratio"] for p in e.values())}
    if scored:
        out["best"] = max(scored, key=lambda t: scored[t])
        out["scores"] = scored
    return out


def print_report(b: Bench) -> None:
    size = b.figures.get("size") or 0
    print()
    print(f"Per tool, medians of {b.args.repeat} ({fmt_size(size) if size else 'size unknown'}):")
    print(f"| {'phase':<9} | {'tool':<11} | {'wall s':>7} | {'MiB/s':>7} | {'range MiB/s':>13} | {'CPU s':>6} | "
          f"{'peak RSS MiB':>12} | {'ok':>5} |")
    print(f"|{'-' * 11}|{'-' * 13}|{'-' * 8}:|{'-' * 8}:|{'-' * 14}:|{'-' * 7}:|{'-' * 13}:|{'-' * 6}:|")
    seen: list[tuple[str, str]] = []
    for r in b.runs:
        if (r.phase, r.tool) not in seen and r.phase != "startup":
            seen.append((r.phase, r.tool))
    for phase, tool in seen:
        runs = [r for r in b.runs if r.phase == phase and r.tool == tool]
        good = [r for r in runs if r.ok]
        rates = [r.mib_s for r in good]
        span = f"{min(rates):.0f}–{max(rates):.0f}" if rates else "-"
        wall = median([r.wall for r in good])
        rate = good[0].size / MiB / wall if good and wall else None  # size / median wall
        rss = max((r.maxrss_mib for r in good), default=None)
        rss_text = _f(rss, 1) if rss is None or not b.at_floor(phase, tool, rss) else f"<={rss:.1f}"
        print(f"| {phase:<9} | {tool:<11} | {_f(wall):>7} | "
              f"{_f(rate, 0):>7} | {span:>13} | {_f(median([r.cpu for r in good])):>6} | "
              f"{rss_text:>12} | {f'{len(good)}/{len(runs)}':>5} |")
    if b.runs:
        print("(peak RSS \"<=\": no higher than the bench's own peak at that point, which Linux counts as every "
              "child's floor; the tool's own is lower)")
    if b.args.url:
        digests = b.figures.get("sha256", {})
        same = "the same bytes" if b.figures.get("sha256_agree") else "DIFFERENT bytes"
        shown = ", ".join(f"{t} {d[:16]}…" for t, d in digests.items())
        print(f"sha256 of each tool's first download: {same} ({shown})")
    print()
    print("Targets (issue 11; kept from issue 5; the UI rows: issue 4). Ratios: medians of per-round ratios, "
          "each round side by side:")
    print(f"| {'figure':<48} | {'measured':<78} | {'target':<22} | result |")
    print(f"|{'-' * 50}|{'-' * 80}|{'-' * 24}|--------|")
    for row in b.rows:
        print(f"| {row['figure']:<48} | {row['measured']:<78} | {row['target']:<22} | {row['result']:<6} |")
    print_candidates(b)
    missed = [row for row in b.rows if row.get("result") == "MISS"]
    if missed:
        print()
        print("Missed targets and their profiles (also in the JSON, under targets[].profile):")
        for row in missed:
            prof = row.get("profile") or {}
            where = prof.get("profile") or prof.get("note") or prof.get("error") or "-"
            print(f"  {row['figure']}: {where}")
    print()


def print_candidates(b: Bench) -> None:
    summary = b.figures.get("candidates_summary") or {}
    tools = summary.get("tools") or {}
    if not tools:
        return
    sizes = {proto: next((e[proto]["size"] for e in tools.values() if proto in e), 0)
             for proto in CANDIDATE_PHASES.values()}
    print()
    print("Data path candidates (issue 11): whole programs, start-up included, 4 ranges, 4 MiB pwrite batches; "
          "curl's wall time / theirs, per round, median:")
    heads = [f"{proto} {fmt_size(sizes[proto])} vs curl" for proto in CANDIDATE_PHASES.values() if sizes[proto]]
    print(f"| {'candidate':<42} | " + " | ".join(f"{h:<30}" for h in heads) + " |")
    print(f"|{'-' * 44}|" + "|".join("-" * 32 for _ in heads) + "|")
    labels = (b.figures.get("candidates") or {}).get("labels") or {}
    for tool, entry in tools.items():
        cells = []
        for proto in CANDIDATE_PHASES.values():
            if not sizes[proto]:
                continue
            p = entry.get(proto)
            if not p:
                cells.append(f"{'-':<30}")
                continue
            text = f"{_f(p['ratio'])}x ({_f(p['mib_s'], 0)} MiB/s, CPU {_f(p['cpu_s'])} s)"
            cells.append(f"{text:<30}")
        print(f"| {labels.get(tool, tool):<42} | " + " | ".join(cells) + " |")
    if summary.get("best"):
        print(f"best: {labels.get(summary['best'], summary['best'])} (the highest geometric mean of its ratios)")


def write_json(b: Bench, path: str, meta: dict[str, Any]) -> None:
    data = {"meta": meta, "figures": b.figures, "targets": b.rows, "profiles": b.profiles,
            "runs": [asdict(r) for r in b.runs]}
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
    note(f"raw figures written to {path}")
