"""Uploads on a slow uplink (issue 11): 18 MiB in 8 MiB parts over a 6 Mbit/s link, to the fake OSS, to Azurite and
with the default chunk protocol, each against ``curl -T`` of the same file over the same link.

The link is a network namespace of the bench's own whose loopback the kernel throttles (``tc tbf``, MTU 1500;
tests/support/netns.py): every server listens inside it and every client runs inside it (``ip netns exec``), so
data and ACKs pay the rate as on a real uplink. That is what the field report was about: on such a link an 8 MiB
part takes about 11 s, longer than any "whole request" timeout. Here the question is the time: a part upload
protocol should cost no more than the link does, so each row is our CLI's wall time over curl's in the same round
(target <= 1.1x). curl sends one plain PUT to the bench's upload sink, the cheapest upload HTTP has.

Needs root, iproute2 and the kernel's ``sch_tbf`` (``netns_unavailable()`` says why not); without them the rows
are skipped with the reason, never measured on an unthrottled loopback.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.bench.common import ChildRun, fmt_size, generate_file, note, run_child
from tests.bench.core import PY, ROOT, UPLOAD_CHUNK, Bench, child_env, rounds
from tests.bench.report import BY_KEY, evaluate, profile_misses, verdict

if TYPE_CHECKING:
    from tests.support.netns import ThrottledNamespace

LINK_KEYS = ("link_oss", "link_azure", "link_default")
PART = 8 << 20  # UPLOAD_CHUNK in bytes: where the Azure samples are read
SAMPLE = 64 << 10  # bytes read back per sampled offset of an Azure blob (reading it all would cost the link's time)


@dataclass
class Entry:
    """One tool of a round: ``argv(rep)`` readies its server side and returns the command (run inside the
    namespace); ``check(rep)`` verifies what arrived and lets go of it (None when all is well)."""

    tool: str
    key: str | None  # the target row, None for the baseline
    argv: Callable[[int], list[str]]
    check: Callable[[int], str | None]
    env: dict[str, str] | None


def skip(b: Bench, reason: str) -> None:
    note(f"skipping the throttled-link upload rows: {reason}")
    b.figures.setdefault("skipped", {}).update({k: reason for k in LINK_KEYS})
    b.figures["link"] = {"skipped": reason}


def link_rounds(b: Bench, tools: dict[str, str | None], size: int, rate: str) -> None:
    try:
        from tests.support.netns import ThrottledNamespace, netns_unavailable, parse_rate
    except ImportError as exc:
        skip(b, f"tests/support/netns.py cannot be imported ({exc})")
        return
    curl = tools.get("curl")
    if curl is None:
        skip(b, "curl (the baseline) is not available")
        return
    reason = netns_unavailable()
    if reason is not None:
        skip(b, reason)
        return
    from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer
    from tests.support.http_server import TestHttpServer

    folder = os.path.join(b.workdir, "link")
    shutil.rmtree(folder, ignore_errors=True)  # accounts and files of an earlier run (--work-dir)
    path = os.path.join(folder, "upload.bin")
    os.makedirs(folder, exist_ok=True)
    sha = generate_file(path, size)
    home = os.path.join(folder, "home")
    env = child_env(b, **{f"XDG_{n}_HOME": os.path.join(home, n.lower()) for n in ("CONFIG", "DATA", "STATE", "CACHE")})
    timeout = 120.0 + 3.0 * size / parse_rate(rate)
    cli = [PY, "-m", "app.cli"]
    parts = -(-size // PART)

    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(ThrottledNamespace(rate, mtu=1500))
        kind = f"network namespace {ns.name}: tc tbf {rate} on lo, MTU 1500"
        b.figures["link"] = {"kind": kind, "rate": rate, "size": size, "part": UPLOAD_CHUNK}
        note(f"throttled link: {kind}; {fmt_size(size)} in {UPLOAD_CHUNK} parts, about "
             f"{size / parse_rate(rate):.0f} s per upload")

        def inside(argv: list[str]) -> list[str]:
            return ns.exec_argv(argv)

        # ---- curl -T into the bench's sink (one plain PUT)
        from tests.bench.sink import UploadSink

        with ns.inside():
            sink = UploadSink()  # its listening socket is made here, inside the namespace
        stack.enter_context(sink)

        def curl_argv(rep: int) -> list[str]:
            sink.stats.reset()
            return [curl, "-sS", "-f", "-T", path, "-H", "Expect:", "-o", os.devnull, sink.url(f"/put/{rep}.bin")]

        def curl_check(_rep: int) -> str | None:
            got = sink.stats.put_bytes
            return None if got == size else f"the sink drained {got} bytes, expected {size}"

        entries = [Entry("curl -T", None, curl_argv, curl_check, None)]

        # ---- OSS: the fake server, an account in the CLI's store, oss://ACCOUNT/bucket/key
        oss = FakeOssServer()
        oss.start(listen_in=ns.inside)
        stack.callback(oss.stop)
        creds = oss.credentials
        added = run_child(inside([*cli, "accounts", "add", "oss", "--provider", "aliyun-oss", "--endpoint",
                                  oss.endpoint, "--region", oss.region, "--access-key-id", creds.access_key_id,
                                  "--path-style", "--secret-env", "OSS_SECRET"]),
                          timeout=60, cwd=ROOT, env={**env, "OSS_SECRET": creds.access_key_secret})
        if added.rc != 0:
            note(f"adding the OSS account failed: {(added.err or added.out).strip()[-300:]}")

        def oss_argv(rep: int) -> list[str]:
            return [*cli, "upload", path, f"oss://oss/{DEFAULT_BUCKET}/bench/{rep}.bin", "--chunk-size", UPLOAD_CHUNK]

        def oss_check(rep: int) -> str | None:
            key = f"bench/{rep}.bin"
            stored = oss.get_object(DEFAULT_BUCKET, key)
            sent = oss.count_op("UploadPart")
            # The fake keeps every object, part and call: let go of them (the bench's own memory). No request is in
            # flight between runs.
            oss.objects.pop((DEFAULT_BUCKET, key), None)
            oss.multipart_uploads.clear()
            oss.calls.clear()
            if stored is None:
                return f"the fake OSS holds no {key}"
            if hashlib.sha256(stored.data).hexdigest() != sha:
                return "the object's sha256 differs from the file's"
            return None if sent == parts else f"{sent} UploadPart requests for {parts} parts (retries)"

        entries.append(Entry("CLI OSS", "link_oss", oss_argv, oss_check, env))

        # ---- Azure: Azurite inside the namespace, an account, azure://ACCOUNT/container/blob
        azure = azurite_entry(b, stack, ns, cli, path, size, env)
        if azure is not None:
            entries.append(azure)

        # ---- the default chunk protocol: a fresh TestHttpServer per run (it remembers finished uploads by MD5)
        servers: dict[int, TestHttpServer] = {}

        def default_argv(rep: int) -> list[str]:
            srv = servers[rep] = TestHttpServer()
            srv.start(listen_in=ns.inside)
            stack.callback(srv.stop)  # stopped (again: a no-op) before the namespace goes, even on Ctrl-C
            return [*cli, "upload", path, srv.url("/upload"), "--chunk-size", UPLOAD_CHUNK]

        def default_check(rep: int) -> str | None:
            srv = servers.pop(rep)
            srv.stop()
            states = list(srv.uploads.values())
            srv.uploads.clear()  # the stack still holds the server until the end: not its 18 MiB
            if len(states) != 1 or not states[0].completed or not states[0].md5_ok:
                return f"the server holds {len(states)} uploads, completed: {[s.completed for s in states]}"
            if hashlib.sha256(states[0].data).hexdigest() != sha:
                return "the upload's sha256 differs from the file's"
            calls = srv.upload_inspector().chunk_calls
            return None if calls == parts else f"{calls} chunk requests for {parts} parts (retries)"

        entries.append(Entry("CLI default", "link_default", default_argv, default_check, env))

        for rep, order in rounds(b, entries):
            for e in order:
                argv = e.argv(rep)
                checked: list[str | None] = []

                def check(_child: ChildRun, e: Entry = e, rep: int = rep, out: list[str | None] = checked
                          ) -> str | None:
                    out.append(e.check(rep))
                    return out[-1]

                run = b.measure("link", e.tool, rep, size, inside(argv), check=check, env=e.env, timeout=timeout)
                if not checked:  # the run failed before its check: let go of its server side all the same
                    e.check(rep)
                run.extra["link"] = kind
        for e in entries:
            if e.key is not None and verdict(BY_KEY[e.key], evaluate(b, e.key).value) == "MISS":
                argv = e.argv(999)
                profile_misses(b, [e.key], argv, env, f"upload-6mbit-{e.key.removeprefix('link_')}", wrap=inside,
                               idle=True, timeout=timeout * 2)
                e.check(999)


def azurite_entry(b: Bench, stack: contextlib.ExitStack, ns: ThrottledNamespace, cli: list[str], path: str, size: int,
                  env: dict[str, str]) -> Entry | None:
    """Azurite started inside the namespace (stopped before it goes), a container and an account; None, with the
    reason in the report, where Azurite or the Azure SDK is missing."""
    try:
        from tests.support.azurite import find_azurite, start_azurite
    except ImportError as exc:
        b.figures.setdefault("skipped", {})["link_azure"] = f"the Azure test dependencies are missing ({exc})"
        return None
    executable = find_azurite()
    if executable is None:
        b.figures.setdefault("skipped", {})["link_azure"] = "Azurite is not installed (make azurite)"
        note("Azurite is not installed (make azurite): skipping the 6 Mbit/s Azure row")
        return None
    try:
        server = start_azurite(executable, wrap_argv=ns.exec_argv, reach_in=ns.inside)
    except (OSError, RuntimeError) as exc:
        b.figures.setdefault("skipped", {})["link_azure"] = f"Azurite did not start: {exc}"
        return None
    stack.callback(server.stop)
    with ns.inside():
        container = server.create_container("bench")
    added = run_child(ns.exec_argv([*cli, "accounts", "add", "az", "--provider", "azure-blob",
                                    "--endpoint", server.endpoint, "--account-name", server.account_name,
                                    "--secret-env", "AZ_KEY"]),
                      timeout=60, cwd=ROOT, env={**env, "AZ_KEY": server.account_key})
    if added.rc != 0:
        note(f"adding the Azure account failed: {(added.err or added.out).strip()[-300:]}")

    def argv(rep: int) -> list[str]:
        return [*cli, "upload", path, f"azure://az/{container}/bench/{rep}.bin", "--chunk-size", UPLOAD_CHUNK]

    def check(rep: int) -> str | None:
        """The blob's size, and 64 KiB read back at its start, end and every part boundary (reading it all back
        would cost the link's time again)."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob import BlobClient

        name = f"bench/{rep}.bin"
        with ns.inside():
            blob = BlobClient.from_blob_url(server.blob_sas(container, name, permission="rd"))
            try:
                got = blob.get_blob_properties().size
                if got != size:
                    return f"Azurite holds {got} bytes, expected {size}"
                boundaries = (max(0, k * PART - SAMPLE // 2) for k in range(1, -(-size // PART)))
                starts = {0, max(0, size - SAMPLE), *boundaries}
                with open(path, "rb") as f:
                    for at in sorted(starts):
                        n = min(SAMPLE, size - at)
                        f.seek(at)
                        if blob.download_blob(offset=at, length=n).readall() != f.read(n):
                            return f"the blob differs from the file within bytes {at}-{at + n - 1}"
                return None
            except ResourceNotFoundError:
                return f"Azurite holds no {name}"
            finally:
                with contextlib.suppress(ResourceNotFoundError):
                    blob.delete_blob()  # Azurite keeps blobs in memory

    return Entry("CLI Azure", "link_azure", argv, check, env)
