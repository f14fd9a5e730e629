"""The "data path candidates" section of ``make bench`` (issue 11): the ways bulk bodies could come off the socket,
each run as a whole program side by side with curl on the same nginx, over HTTP and over HTTPS.

(a) our CLI, whose engine uses the stdlib's ``http.client`` in worker threads (``app/engine/wire.py``), and the same
    approach bare (``cand_httpclient``: what the engine costs on top of it);
(b) urllib3 in worker threads (``cand_urllib3``);
(c) aiohttp on asyncio, 1 MiB reads (``cand_aiohttp``; aiohttp is installed by the bench, never by the app);
(d) an engine-owned reader on asyncio: a buffered protocol receiving into the batch buffers (``cand_asyncio``).

Every candidate downloads with 4 ranges and 4 MiB pwrite batches, start-up included, and each round runs curl and all
of them in a rotated order; the report gives curl's wall time over each one's, per round, as a median.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from tests.bench.common import Nginx, PrivateCa, fmt_size, note, remove, run_child
from tests.bench.core import PY, ROOT, Bench, child_env, cli_get, cli_trust, curl_get, rounds

#: tool name in the runs → (script module or None for our CLI, label in the report)
CANDIDATES: dict[str, tuple[str | None, str]] = {
    "CLI": (None, "(a) our CLI (engine: http.client threads)"),
    "http.client": ("tests.bench.cand_httpclient", "(a) the same http.client threads, bare"),
    "urllib3": ("tests.bench.cand_urllib3", "(b) urllib3 threads"),
    "aiohttp": ("tests.bench.cand_aiohttp", "(c) aiohttp on asyncio, 1 MiB reads"),
    "asyncio": ("tests.bench.cand_asyncio", "(d) own reader on asyncio"),
}


def candidate_rounds(b: Bench, tools: dict[str, str | None], nginx: Nginx, ca: PrivateCa | None,
                     http_file: tuple[str, str], tls_file: tuple[str, str], *, aiohttp: bool) -> None:
    """HTTP on ``http_file`` (512 MiB at the default size), HTTPS on ``tls_file`` (256 MiB): (name, sha256) under
    nginx's root."""
    curl = tools.get("curl")
    if curl is None:
        note("curl is not available: skipping the data path candidates (their ratios are to curl)")
        return
    names = [t for t in CANDIDATES if t != "aiohttp" or aiohttp]
    if not aiohttp:
        note("aiohttp could not be installed: its candidate is skipped")
    b.figures["candidates"] = {"tools": names, "labels": {t: CANDIDATES[t][1] for t in names}}
    outdir = os.path.join(b.workdir, "out")
    os.makedirs(outdir, exist_ok=True)
    protocols: list[tuple[str, str, tuple[str, str], PrivateCa | None]] = [
        ("cand-http", nginx.base_url, http_file, None)]
    if ca is not None and nginx.https_url:
        protocols.append(("cand-tls", nginx.https_url, tls_file, ca))
    else:
        note("no private CA: the candidates run over HTTP only")
    for phase, base, (name, sha), trust in protocols:
        url = f"{base}/{name}"
        size = os.path.getsize(os.path.join(nginx.root, name))
        cafile = trust.ca_pem if trust else None
        extra, env_extra = cli_trust(b, cafile) if cafile else ([], {})
        env = child_env(b, **env_extra)
        # argv(out) is the measured command; argv(out, url) the same for another URL (the warm-up's)
        plan: list[tuple[str, Callable[..., list[str]], dict[str, str] | None]] = [
            ("curl", lambda out, url=url, cafile=cafile: curl_get(curl, url, out, cafile), None)]
        for tool in names:
            module = CANDIDATES[tool][0]
            if module is None:
                plan.append((tool, lambda out, url=url, extra=extra: cli_get(url, out, extra=extra), env))
            else:
                plan.append((tool, lambda out, url=url, module=module, cafile=cafile:
                             [PY, "-m", module, url, out, *(["--cafile", cafile] if cafile else [])], env))
        warm_up(b, plan, f"{base}/tiny.bin", outdir)
        note(f"data path candidates over {'HTTPS' if trust else 'HTTP'}, {fmt_size(size)}: "
             + ", ".join(tool for tool, _, _ in plan))
        for rep, order in rounds(b, plan):
            for tool, argv, run_env in order:
                out = os.path.join(outdir, f"{phase}-{tool}.bin")
                remove(out)
                b.measure(phase, tool, rep, size, argv(out), output=out, expect_sha=sha, env=run_env)


def warm_up(b: Bench, plan: list[tuple[str, Callable[..., list[str]], dict[str, str] | None]], tiny_url: str,
            outdir: str) -> None:
    """One unmeasured run of each candidate on the 1,000-byte file, so its bytecode is cached (aiohttp's modules
    would otherwise be compiled inside the first measured run) and its imports are in the page cache."""
    out = os.path.join(outdir, "warm.bin")
    for tool, argv, env in plan:
        remove(out)
        child = run_child(argv(out, tiny_url), timeout=120, cwd=ROOT, env=env)
        if child.rc != 0:
            note(f"warm-up of {tool} failed: {(child.err or child.out).strip()[-300:]}")
    remove(out)

