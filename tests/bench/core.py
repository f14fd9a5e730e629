"""The bench's state and the commands it times: one :class:`Run` per child, the :class:`Bench` that keeps them (and
pairs them round by round for the ratios), and the argv of every tool.

Shared by the phases in ``run.py``, ``candidates.py`` and ``link.py``; ``report.py`` turns the runs into rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.common import (
    ChildRun,
    GiB,
    MiB,
    median,
    note,
    own_peak_rss_mib,
    remove,
    run_child,
    settle_disk,
    sha256_file,
)

ROOT = str(Path(__file__).resolve().parents[2])
PY = sys.executable
CONNECTIONS = 4
UPLOAD_CHUNK = "8MiB"


class Stop(Exception):
    """SIGTERM/SIGHUP: unwind like Ctrl-C so nginx, the namespace and any running child are stopped."""


@dataclass
class Run:
    phase: str
    tool: str
    rep: int
    size: int
    wall: float
    cpu: float
    user: float
    sys: float
    maxrss_mib: float
    rc: int
    ok: bool
    mib_s: float
    sha256_ok: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: str
    runs: list[Run] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    checked: set[tuple[str, str]] = field(default_factory=set)
    #: target key → where its profile is (written when the target was missed; report.profile_misses)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: How our CLI is told to trust the bench's private CA: extra argv and extra environment (see cli_trust).
    cli_ca: tuple[list[str], dict[str, str]] | None = None

    # ------------------------------------------------------------------ one measured child
    def measure(self, phase: str, tool: str, rep: int, size: int, argv: list[str], *, output: str | None = None,
                expect_sha: str | None = None, env: dict[str, str] | None = None,
                check: Callable[[ChildRun], str | None] | None = None, timeout: float | None = None,
                quiet: bool = False) -> Run:
        settle_disk()
        floor = own_peak_rss_mib()
        child = run_child(argv, timeout=timeout or self.timeout(size), cwd=ROOT, env=env)
        error = None if child.rc == 0 else f"exit {child.rc}: {(child.err or child.out).strip()[-500:]}"
        if error is None and check is not None:
            error = check(child)
        if error is None and output is not None:
            got = os.path.getsize(output) if os.path.exists(output) else -1
            if size and got != size:
                error = f"output has {got} bytes, expected {size}"
            size = size or max(0, got)  # --url without Content-Length: what arrived
        sha_ok = None
        if error is None and output is not None and (phase, tool) not in self.checked:
            digest = sha256_file(output)
            self.checked.add((phase, tool))
            if expect_sha is None:
                self.figures.setdefault("sha256", {})[tool] = digest
            else:
                sha_ok = digest == expect_sha
                if not sha_ok:
                    error = f"sha256 mismatch: {digest} != {expect_sha}"
        extra: dict[str, Any] = {"rss_floor_mib": floor}
        if child.out.strip().startswith("{") or tool == "app path":  # app path, candidates: one JSON line
            try:
                extra.update(json.loads(child.out.strip().splitlines()[-1]))
            except (ValueError, IndexError):
                pass
        run = Run(phase=phase, tool=tool, rep=rep, size=size, wall=child.wall, cpu=child.cpu, user=child.user,
                  sys=child.sys, maxrss_mib=child.maxrss_mib, rc=child.rc, ok=error is None,
                  mib_s=(size / MiB / child.wall) if size and child.wall > 0 else 0.0, sha256_ok=sha_ok,
                  extra=extra, error=error)
        self.runs.append(run)
        if not quiet or not run.ok:
            state = "ok" if run.ok else f"FAILED ({error})"
            note(f"{phase:<9} {tool:<11} #{rep + 1}: {run.wall:6.2f} s  {run.mib_s:7.1f} MiB/s  cpu {run.cpu:5.2f} s"
                 f"  rss {run.maxrss_mib:6.1f} MiB  {state}")
        if output is not None:
            remove(output)
        return run

    def timeout(self, size: int) -> float:
        """--timeout, else loopback 60 s + 10 s per GiB of this transfer, --url 1800 s."""
        if self.args.timeout is not None:
            return float(self.args.timeout)
        return 1800.0 if self.args.url else 60.0 + 10.0 * size / GiB

    def good(self, phase: str, tool: str) -> list[Run]:
        return [r for r in self.runs if r.phase == phase and r.tool == tool and r.ok]

    def med(self, phase: str, tool: str, attr: str) -> float | None:
        return median([getattr(r, attr) for r in self.good(phase, tool)])

    def paired(self, phase: str, num: str, den: str, attr: str = "wall") -> list[float]:
        """``num``'s figure over ``den``'s, one ratio per round in which both ran and succeeded (side by side, so a
        machine that slows down between rounds moves both): the report gives their median."""
        a = {r.rep: getattr(r, attr) for r in self.good(phase, num)}
        b = {r.rep: getattr(r, attr) for r in self.good(phase, den)}
        return [a[k] / b[k] for k in sorted(a.keys() & b.keys()) if b[k] > 0]

    def at_floor(self, phase: str, tool: str, rss: float) -> bool:
        """Whether ``rss`` may be the bench's own peak rather than the child's (common.run_child)."""
        floors = [r.extra.get("rss_floor_mib", 0.0) for r in self.good(phase, tool)]
        return bool(floors) and rss <= max(floors) + 0.5


def rounds(b: Bench, plan: list[Any]) -> list[tuple[int, list[Any]]]:
    """``--repeat`` rounds of ``plan``, its order rotated each round so no tool always runs first after a sync."""
    out = []
    for rep in range(b.args.repeat):
        k = rep % len(plan) if plan else 0
        out.append((rep, plan[k:] + plan[:k]))
    return out


# ---------------------------------------------------------------------------------------------- commands
def curl_get(curl: str, url: str, out: str, cafile: str | None = None) -> list[str]:
    return [curl, "-sS", "-f", *(["--cacert", cafile] if cafile else []), "-o", out, url]


def aria2_get(aria2c: str, url: str, out: str, connections: int = CONNECTIONS, cafile: str | None = None) -> list[str]:
    return [aria2c, f"-x{connections}", f"-s{connections}", "-k1M", "--file-allocation=none", "-q",
            *([f"--ca-certificate={cafile}"] if cafile else []),
            "--allow-overwrite=true", "--auto-file-renaming=false", "--console-log-level=error",
            "--summary-interval=0", "-d", os.path.dirname(out), "-o", os.path.basename(out), url]


def cli_get(url: str, out: str, connections: int = CONNECTIONS, extra: list[str] | None = None) -> list[str]:
    return [PY, "-m", "app.cli", "download", url, "-o", out, "--connections", str(connections), *(extra or [])]


def app_get(url: str, out: str) -> list[str]:
    return [PY, "-m", "tests.bench.app_path", url, out, "--connections", str(CONNECTIONS)]


def child_env(b: Bench, **extra: str) -> dict[str, str]:
    """The environment of our own children (CLI, app path, candidates): their bytecode is cached in the work dir, so
    every start after the first pays what an installed app pays, even where PYTHONDONTWRITEBYTECODE is set (a start
    that compiles the app's modules again costs about 0.1 s more). Their per-user folders (settings, history,
    accounts, keyring file) are the work dir's too, so the bench neither reads nor fills the user's."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(b.workdir, "pycache")
    home = os.path.join(b.workdir, "home")
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        env[f"XDG_{name}_HOME"] = os.path.join(home, name.lower())
    env["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"  # accounts of the link rows; no D-Bus
    env.update(extra)
    return env


def app_env(b: Bench) -> dict[str, str]:
    return child_env(b, QT_QPA_PLATFORM="offscreen")


def cli_trust(b: Bench, ca_pem: str) -> tuple[list[str], dict[str, str]]:
    """How our CLI trusts the bench's private CA: ``--cacert FILE`` once ``rusty-cat-cli download --help`` offers it;
    until then ``SSL_CERT_FILE`` in its environment, which OpenSSL reads as the system store (the CLI verifies
    against the system store, so this is what a user without ``--cacert`` would do)."""
    if b.cli_ca is None:
        helped = run_child([PY, "-m", "app.cli", "download", "--help"], timeout=60, cwd=ROOT, env=child_env(b))
        if "--cacert" in helped.out:
            b.cli_ca = (["--cacert", ca_pem], {})
            b.figures["cli_ca_via"] = "--cacert"
        else:
            b.cli_ca = ([], {"SSL_CERT_FILE": ca_pem})
            b.figures["cli_ca_via"] = "SSL_CERT_FILE"
        note(f"our CLI trusts the private CA through {b.figures['cli_ca_via']}")
    return b.cli_ca
