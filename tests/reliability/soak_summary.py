"""Figures of the reliability suites, collected for ``make soak`` and printed as one table.

Why a file of JSON lines: the figures come from several places -- tests that know what they proved (the crash soak
counts kills and verified bytes), pytest itself (how many cases of each suite ran, passed or failed) and the fault
matrix's own report -- and ``make soak`` prints them after pytest has exited. Each source appends lines to the
file named by ``RUSTY_CAT_SOAK_REPORT`` (nothing is written when it is unset, as in ``make test``); ``python -m
tests.reliability.soak_summary FILE`` merges them per suite and prints the table.

Three parts:

* :func:`record` -- a test appends its figures (cases, faults injected, kills survived, bytes verified, anything
  lost, the seed it used).
* the pytest plugin (``-p tests.reliability.soak_summary``): counts the cases every test module ran, passed and
  failed (suite = the module name without ``test_``; a suite that recorded its own ``cases`` keeps them), picks
  up seeds printed as ``seed=N`` (the control storm prints its seed that way) and hypothesis's
  ``--hypothesis-seed``, and reads the fault matrix's totals line from ``RUSTY_CAT_FAULT_MATRIX_REPORT``.
* :func:`main` -- prints the table; exit status 1 when anything was lost, a case failed or nothing was recorded.

"lost" means a file that ended wrong (checksum mismatch) or a job missing from the history: it must be 0. "time" is
pytest's duration of the suite's tests (tests do not add their own).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPORT_ENV = "RUSTY_CAT_SOAK_REPORT"
FAULT_MATRIX_ENV = "RUSTY_CAT_FAULT_MATRIX_REPORT"
_SEED_IN_OUTPUT = re.compile(r"\bseed[=:]\s*(\d+)")
_MATRIX_TOTALS = re.compile(r"cases run: (\d+).*?faults injected: (\d+); bytes verified: (\d+)")
_STORM_OPERATIONS = re.compile(r"control storm: seed=\d+ (\d+) operations")


@dataclass
class SuiteFigures:
    """One row of the table: everything recorded for one suite, summed."""

    suite: str
    cases: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    faults: int = 0
    kills: int = 0
    bytes_verified: int = 0
    lost: int = 0
    seconds: float = 0.0
    seeds: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, line: dict[str, Any]) -> None:
        for name in ("cases", "passed", "failed", "skipped", "faults", "kills", "bytes_verified", "lost"):
            setattr(self, name, getattr(self, name) + int(line.get(name) or 0))
        self.seconds += float(line.get("seconds") or 0.0)
        seed = line.get("seed")
        if seed is not None and str(seed) not in self.seeds:
            self.seeds.append(str(seed))
        note = line.get("note")
        if note and note not in self.notes:
            self.notes.append(str(note))


def record(suite: str, *, cases: int = 0, passed: int = 0, failed: int = 0, skipped: int = 0, faults: int = 0,
           kills: int = 0, bytes_verified: int = 0, lost: int = 0, seconds: float = 0.0, seed: object = None,
           note: str | None = None, path: str | os.PathLike[str] | None = None) -> None:
    """Append one line of figures for ``suite`` to the report (``path``, else $RUSTY_CAT_SOAK_REPORT; no-op when
    neither is set). One ``write`` on an O_APPEND descriptor, so lines of parallel writers never interleave."""
    target = path if path is not None else os.environ.get(REPORT_ENV, "").strip()
    if not target:
        return
    line = {"suite": suite, "cases": cases, "passed": passed, "failed": failed, "skipped": skipped,
            "faults": faults, "kills": kills, "bytes_verified": bytes_verified, "lost": lost,
            "seconds": round(seconds, 3), "seed": None if seed is None else str(seed), "note": note,
            "at": time.time()}
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The report's lines; a torn last line (a run killed while writing) is skipped, not fatal."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        raw = raw.strip()
        if not raw:
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("suite"), str):
            lines.append(obj)
    return lines


def merge(lines: Iterable[dict[str, Any]]) -> list[SuiteFigures]:
    """Lines summed per suite, in the order suites first appear."""
    rows: dict[str, SuiteFigures] = {}
    for line in lines:
        rows.setdefault(line["suite"], SuiteFigures(line["suite"])).add(line)
    return list(rows.values())


def _bytes(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def format_table(rows: Sequence[SuiteFigures]) -> str:
    """The summary: one line per suite, a total line, then the verdict (anything lost must be 0)."""
    header = ("suite", "cases", "passed", "failed", "faults injected", "kills survived", "bytes verified", "lost",
              "time", "seeds")
    total = SuiteFigures("TOTAL")
    for r in rows:
        total.add({"cases": r.cases, "passed": r.passed, "failed": r.failed, "skipped": r.skipped,
                   "faults": r.faults, "kills": r.kills, "bytes_verified": r.bytes_verified, "lost": r.lost,
                   "seconds": r.seconds})

    def cells(r: SuiteFigures) -> tuple[str, ...]:
        return (r.suite, str(r.cases), str(r.passed), str(r.failed), str(r.faults), str(r.kills),
                _bytes(r.bytes_verified), str(r.lost), f"{r.seconds:.0f}s", ",".join(r.seeds) or "-")

    body = [cells(r) for r in rows]
    foot = cells(total)
    widths = [max(len(header[i]), len(foot[i]), *(len(b[i]) for b in body)) for i in range(len(header))]

    def line(values: tuple[str, ...]) -> str:
        return " | ".join(v.ljust(widths[i]) if i in (0, 9) else v.rjust(widths[i])
                          for i, v in enumerate(values)).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    out = [line(header), rule, *(line(b) for b in body), rule, line(foot), ""]
    for r in rows:
        out += [f"  {r.suite}: {note}" for note in r.notes]
    verdict = "OK: nothing lost" if total.lost == 0 and total.failed == 0 else \
        f"NOT OK: {total.lost} lost, {total.failed} failed cases"
    out.append(verdict)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = args[0] if args else os.environ.get(REPORT_ENV, "")
    if not path or not Path(path).is_file():
        print(f"soak summary: no report at {path or '$' + REPORT_ENV}", file=sys.stderr)
        return 1
    rows = merge(read(path))
    if not rows:
        print(f"soak summary: {path} holds no figures", file=sys.stderr)
        return 1
    print(format_table(rows))
    return 0 if all(r.lost == 0 and r.failed == 0 for r in rows) else 1


# ---------------------------------------------------------------------------------------------- the pytest plugin
@dataclass
class _ModuleCount:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    seeds: list[str] = field(default_factory=list)
    operations: int = 0  # the control storm's pause/resume/cancel/enqueue/close operations


_counts: dict[str, _ModuleCount] = {}


def _suite_of(nodeid: str) -> str:
    """``tests/reliability/test_control_storm.py::test_x[a]`` -> ``control_storm``."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return module.removesuffix(".py").removeprefix("test_")


def pytest_runtest_logreport(report: Any) -> None:
    """Count each test once: its call phase, or the setup phase when that skipped or failed it."""
    if report.when != "call" and not (report.when == "setup" and (report.skipped or report.failed)) and \
            not (report.when == "teardown" and report.failed):
        return
    count = _counts.setdefault(_suite_of(report.nodeid), _ModuleCount())
    if report.when == "teardown":  # the call was already counted as passed: it is a failure after all
        count.failed += 1
        count.passed = max(0, count.passed - 1)
        return
    if report.passed:
        count.passed += 1
    elif report.failed:
        count.failed += 1
    else:
        count.skipped += 1
    count.seconds += float(getattr(report, "duration", 0.0) or 0.0)
    output = getattr(report, "capstdout", "") or ""
    for seed in _SEED_IN_OUTPUT.findall(output):
        if seed not in count.seeds:
            count.seeds.append(seed)
    count.operations += sum(int(n) for n in _STORM_OPERATIONS.findall(output))


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """One line per test module that ran, plus the fault matrix's own totals."""
    hypothesis_seed = None
    try:
        hypothesis_seed = session.config.getoption("hypothesis_seed")
    except (ValueError, AttributeError):
        pass
    matrix = _fault_matrix_totals()
    target = os.environ.get(REPORT_ENV, "").strip()
    own_cases = {line["suite"] for line in (read(target) if target and Path(target).is_file() else [])
                 if line.get("cases")}
    for suite, c in _counts.items():
        faults = bytes_verified = 0
        note = None
        if suite == "fault_matrix" and matrix is not None:
            _cases, faults, bytes_verified = matrix
            note = "faults and bytes from the fault matrix's own table"
        if c.operations:
            faults = c.operations
            note = "faults = random pause/resume/cancel/enqueue/close operations"
        seeds = list(c.seeds)
        if suite.startswith("props") and hypothesis_seed is not None:
            seeds.append(f"hypothesis:{hypothesis_seed}")
        # A suite that counted its own cases (the crash soak: transfers) keeps that count; pytest adds pass/fail.
        cases = 0 if suite in own_cases else c.passed + c.failed
        record(suite, cases=cases, passed=c.passed, failed=c.failed, skipped=c.skipped,
               faults=faults, bytes_verified=bytes_verified, seconds=c.seconds,
               seed=",".join(seeds) if seeds else None, note=note)
    _counts.clear()


def _fault_matrix_totals() -> tuple[int, int, int] | None:
    path = os.environ.get(FAULT_MATRIX_ENV, "").strip()
    if not path or not Path(path).is_file():
        return None
    match = _MATRIX_TOTALS.search(Path(path).read_text(encoding="utf-8", errors="replace"))
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


if __name__ == "__main__":
    raise SystemExit(main())
