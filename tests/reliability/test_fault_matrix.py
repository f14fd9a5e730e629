"""The fault matrix (issue 6): every fault of engine-and-protocols.md §4, for download and upload, on each provider
(plain HTTP, Aliyun OSS, Azure Blob), through the real engine (MeowClient + the provider plugins).

Each case ends in one of three ways, and the test proves which:

* ``complete``: the transfer finished and the bytes are exactly the source's (sha256 of the file, or the object
  the server committed);
* ``failed-kept``: the transfer failed with an error whose code and message name the problem, nothing corrupt is
  called complete, and the partial state (``.part`` + checkpoint, or the server's upload session) is still there;
* ``failed-then-resumed``: as failed-kept, then a second run (a new client, as after a restart) with the fault
  removed completes with the right bytes, re-sending little: a download asks again for at most one chunk of the
  bytes its checkpoint kept, an upload re-sends at most one part of what the server held.

Faults come from one fault-injecting proxy in front of every server (tests/support/fault_proxy.py), so each
misbehaviour is the same bytes for every provider; protocol faults come from the servers themselves (OSS clock
skew, a lost Complete, presigned/SAS URLs that really expired). A fault that cannot happen for a provider or a
direction is listed in :data:`NOT_APPLICABLE` with the reason, and printed with the table at the end of the session
(``pytest -s`` or the terminal summary): provider x direction x fault -> outcome.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.engine import checkpoint
from app.engine import wire as engine_wire
from app.engine.api import DownloadPounceBuilder, InnerErrorCode, RangeIgnoredPolicy, TransferStatus
from app.engine.fileio import filesystem_type
from app.engine.redact import strip_query
from tests.reliability.fault_matrix import (
    CHUNK,
    COMPLETE,
    EXPIRED_BODY,
    FAILED_KEPT,
    FAILED_RESUMED,
    PART,
    RESULTS,
    AzureHarness,
    Cell,
    Harness,
    HttpHarness,
    OssHarness,
    Run,
    format_table,
    is_body_get,
    is_probe,
    run_task,
)
from tests.support.engine_helpers import KIB, Recorder, blob, meow, sha
from tests.support.fake_oss import FakeOssServer
from tests.support.fault_proxy import FaultProxy, ProxyFault
from tests.support.http_server import TestHttpServer

E = InnerErrorCode
S = TransferStatus
SIZE = 768 * KIB  # 12 download chunks, 6 upload parts
PROGRESS = 200 * KIB  # what a first, cut-short GET delivers before a persistent fault takes over
STALL_TIMEOUT = 0.3  # http_timeout of the stall cases: a silent server is given up on quickly
PROVIDERS = ("http", "oss", "azure")

Scenario = Callable[[Harness, Cell, Path], Awaitable[str]]


# ------------------------------------------------------------------------------------------------------------------
# assertions shared by the scenarios
# ------------------------------------------------------------------------------------------------------------------
def parts_of(dest: Path) -> tuple[Path, Path]:
    return Path(checkpoint.part_path(str(dest))), Path(checkpoint.checkpoint_path(str(dest)))


def assert_downloaded(run: Run, dest: Path, data: bytes, cell: Cell) -> None:
    final = run.final
    assert final.status is S.COMPLETE, final.error
    assert sha(dest.read_bytes()) == sha(data), "a file reported complete does not hold the remote bytes"
    assert final.transferred_bytes == final.total_size == len(data)
    part, ckpt = parts_of(dest)
    assert not part.exists() and not ckpt.exists()
    cell.bytes_verified += len(data)


#: The case being run: the error of its last failed run (or a note) goes into the table's detail column.
CURRENT: list[Cell] = []


def note(text: str, *, local_fault: bool = False) -> None:
    """Describe the current case in the table (printable text only: a seed-style error quotes the body it got);
    ``local_fault`` counts a fault made outside the proxy (a full disk, a read-only folder, an edited source)."""
    if CURRENT:
        CURRENT[-1].detail = "".join(c if c.isprintable() and c != "\ufffd" else "." for c in text)
        CURRENT[-1].faults_injected += int(local_fault)


def assert_clear_error(run: Run, code: InnerErrorCode, words: tuple[str, ...], status: int | None = None) -> str:
    final = run.final
    assert final.status is S.FAILED, f"expected a failure, got {final.status.name}"
    err = final.error
    assert err is not None and err.msg
    note(f"{InnerErrorCode(err.code).name}: {err.msg}")
    assert err.code == code, err
    if status is not None:
        assert err.status == status, err
    text = err.msg.lower()
    assert any(w.lower() in text for w in words), f"the error does not name the problem ({words}): {err.msg}"
    return err.msg


def assert_download_kept(run: Run, dest: Path, data: bytes, code: InnerErrorCode, words: tuple[str, ...],
                         status: int | None = None) -> list[tuple[int, int]]:
    """Failed, clearly, with ``.part`` + checkpoint kept and every byte the checkpoint calls done correct.
    Returns the spans a resume may trust."""
    assert_clear_error(run, code, words, status)
    assert not dest.exists(), "a failed download must leave nothing at the destination"
    part, ckpt = parts_of(dest)
    assert part.exists() and ckpt.exists(), "the partial download was not kept for a later resume"
    kept = checkpoint.load(str(ckpt))
    assert kept is not None
    done = kept.done(checkpoint.boot_id())
    on_disk = part.read_bytes()
    for start, end in done.spans:
        assert on_disk[start:end] == data[start:end], f"bytes {start}-{end} are marked done but are wrong"
    return [(s, e) for s, e in done.spans]


def assert_uploaded(h: Harness, run: Run, data: bytes, cell: Cell) -> None:
    final = run.final
    assert final.status is S.COMPLETE, final.error
    assert final.transferred_bytes == final.total_size == len(data)
    stored = h.stored()
    assert stored is not None and sha(stored) == sha(data), "the committed object is not the file"
    if h.provider != "http":
        assert run.payload, "an upload reported complete without the object's ETag"
    cell.bytes_verified += len(data)


def assert_upload_kept(h: Harness, run: Run, code: InnerErrorCode, words: tuple[str, ...],
                       status: int | None = None) -> int:
    """Failed, clearly, nothing committed, and the server's upload session kept. Returns the bytes it holds."""
    assert_clear_error(run, code, words, status)
    assert h.stored() is None, "a failed upload committed an object"
    pending = h.pending_bytes()
    assert pending > 0, "the server no longer holds the uploaded parts"
    assert h.local_session_ok(), "the local record of the upload session is gone"
    return pending


def download_resent(h: Harness) -> int:
    return sum(ex.sent for ex in h.proxy.exchanges if is_body_get(ex.request))


def refetched(h: Harness, kept: list[tuple[int, int]]) -> int:
    """Bytes of the ``kept`` spans that this run's GETs asked for again. (What the server *sent* is no measure:
    when an idle connection takes over the tail of a busy one, the busy one is dropped at the hand-over point,
    but its server has already pushed a socket buffer's worth past it.)"""
    total = 0
    for ex in h.proxy.exchanges:
        if not is_body_get(ex.request) or ex.status not in (200, 206):
            continue
        spec = (ex.request.range or "").split("=", 1)[-1]
        first, _, last = spec.partition("-")
        start, end = int(first), (int(last) + 1 if last else 1 << 62)
        total += sum(max(0, min(end, e) - max(start, s)) for s, e in kept)
    return total


def upload_resent(h: Harness) -> int:
    return sum(ex.forwarded for ex in h.proxy.exchanges if h.is_part(ex.request))


async def resume_download(h: Harness, cell: Cell, dest: Path, data: bytes, kept: list[tuple[int, int]],
                          **task: Any) -> None:
    """The fault is gone; a new run finishes from the checkpoint, asking only for what was missing."""
    h.clear_faults()
    h.reset_log()
    run = await run_task(h.download_task(dest, **task))
    assert_downloaded(run, dest, data, cell)
    again = refetched(h, kept)
    assert again <= CHUNK, f"the resume asked again for {again} of the {sum(e - s for s, e in kept)} kept bytes"


async def resume_upload(h: Harness, cell: Cell, src: Path, data: bytes, pending: int, **task: Any) -> None:
    h.clear_faults()
    h.reset_log()
    run = await run_task(h.upload_task(src, **task))
    assert_uploaded(h, run, data, cell)
    resent = upload_resent(h)
    assert resent <= len(data) - pending + PART, f"the resume sent {resent} bytes; the server held {pending}"


def source_file(tmp: Path, data: bytes) -> Path:
    src = tmp / "src.bin"
    src.write_bytes(data)
    return src


# ------------------------------------------------------------------------------------------------------------------
# retryable transport faults: transient (the run completes) and persistent (fails, kept, then resumed)
# ------------------------------------------------------------------------------------------------------------------
# Each builder adds the fault on a target ("body_get" for downloads, "part" for uploads). ``persistent`` faults
# must make no progress (a cut after some bytes would move the position and reset the retry budget, so the
# download would eventually finish): they misbehave from the first byte.
FaultBuilder = Callable[[Harness, str, int, int, bool], ProxyFault]


def _reset(h: Harness, target: str, times: int, skip: int, persistent: bool) -> ProxyFault:
    if target == "part":
        return h.fault("reset_request", target, after_bytes=PART // 2, times=times, skip=skip)
    return h.fault("reset", target, after_bytes=0 if persistent else 48 * KIB, times=times, skip=skip)


def _truncate(h: Harness, target: str, times: int, skip: int, persistent: bool) -> ProxyFault:
    if target == "part":
        return h.fault("truncate_request", target, after_bytes=PART // 2, times=times, skip=skip)
    return h.fault("truncate", target, after_bytes=0 if persistent else 48 * KIB, times=times, skip=skip)


def _stall(h: Harness, target: str, times: int, skip: int, persistent: bool) -> ProxyFault:
    after = None if target == "part" else (0 if persistent else 48 * KIB)  # uploads: no answer at all
    return h.fault("stall", target, after_bytes=after, seconds=10, times=times, skip=skip)


def _status(status: int, code: str) -> FaultBuilder:
    def build(h: Harness, target: str, times: int, skip: int, persistent: bool) -> ProxyFault:
        return h.status_fault(target, status, code, "injected fault: please retry", times=times, skip=skip)
    return build


def _too_many(h: Harness, target: str, times: int, skip: int, persistent: bool) -> ProxyFault:
    return h.status_fault(target, 429, "TooManyRequests", "slow down", retry_after="0.02" if persistent else "0.3",
                          times=times, skip=skip)


# name -> (builder, code and words of the persistent failure, the failure's HTTP status, engine config)
RETRYABLE: dict[str, tuple[FaultBuilder, InnerErrorCode, tuple[str, ...], int | None, dict[str, Any]]] = {
    "reset": (_reset, E.HTTP_ERROR, ("connection reset",), None, {}),
    "status-500": (_status(500, "InternalError"), E.RESPONSE_STATUS_ERROR, ("500",), 500, {}),
    "status-502": (_status(502, "BadGateway"), E.RESPONSE_STATUS_ERROR, ("502",), 502, {}),
    "status-503": (_status(503, "ServerBusy"), E.RESPONSE_STATUS_ERROR, ("503",), 503, {}),
    "status-504": (_status(504, "GatewayTimeout"), E.RESPONSE_STATUS_ERROR, ("504",), 504, {}),
    "429-retry-after": (_too_many, E.RESPONSE_STATUS_ERROR, ("429",), 429, {}),
    "truncated-body": (_truncate, E.HTTP_ERROR, ("before the complete message body arrived",  # a short answer
                                                 "disconnected without sending a response"), None, {}),  # upload
    "read-stall": (_stall, E.HTTP_ERROR, ("timed out",), None, {"http_timeout": STALL_TIMEOUT}),
}


def retryable_download(name: str, persistent: bool) -> Scenario:
    build, code, words, status, config = RETRYABLE[name]

    async def scenario(h: Harness, cell: Cell, tmp: Path) -> str:
        data = blob(SIZE, 11)
        h.put_remote(data)
        dest = tmp / "down" / "f.bin"
        if not persistent:
            fault = build(h, "body_get", 2, 0, False)
            t0 = time.monotonic()
            run = await run_task(h.download_task(dest), **config)
            assert_downloaded(run, dest, data, cell)
            assert fault.applied >= 1
            if name == "429-retry-after":
                assert time.monotonic() - t0 >= 0.3, "Retry-After was not waited for"
            return COMPLETE
        h.fault("truncate", "body_get", after_bytes=PROGRESS, times=1)  # some progress, kept by a FIN
        build(h, "body_get", -1, 0, True)
        run = await run_task(h.download_task(dest, workers=1, retries=1), **config)
        done = assert_download_kept(run, dest, data, code, words, status)
        kept = sum(e - s for s, e in done)
        assert kept >= PROGRESS // 2, f"only {kept} bytes kept of the {PROGRESS} that arrived"
        await resume_download(h, cell, dest, data, done)
        return FAILED_RESUMED

    return scenario


def retryable_upload(name: str, persistent: bool) -> Scenario:
    build, code, words, status, config = RETRYABLE[name]

    async def scenario(h: Harness, cell: Cell, tmp: Path) -> str:
        data = blob(SIZE, 12)
        src = source_file(tmp, data)
        if not persistent:
            fault = build(h, "part", 2, 1, False)
            t0 = time.monotonic()
            with drain_floor_for(config):
                run = await run_task(h.upload_task(src), **config)
            assert_uploaded(h, run, data, cell)
            assert fault.applied >= 1
            if name == "429-retry-after":
                assert time.monotonic() - t0 >= 0.3, "Retry-After was not waited for"
            return COMPLETE
        build(h, "part", -1, 2, True)  # two parts reach the server, then every part meets the fault
        with drain_floor_for(config):
            run = await run_task(h.upload_task(src, conc=1, retries=1), **config)
        pending = assert_upload_kept(h, run, code, words, status)
        await resume_upload(h, cell, src, data, pending)
        return FAILED_RESUMED

    return scenario


@contextlib.contextmanager
def drain_floor_for(config: dict[str, Any]) -> Iterator[None]:
    """The stall cases shorten the read timeout to 0.3 s, but the engine lets an upload's answer wait an extra
    second per 32 KiB sent (a slow link drains a body from kernel buffers long after the last write); on loopback
    nothing lingers, so the allowance is made negligible here, or each stalled part would cost 4 s."""
    if "http_timeout" not in config:
        yield
        return
    saved = engine_wire.DRAIN_FLOOR
    engine_wire.DRAIN_FLOOR = 1 << 30
    try:
        yield
    finally:
        engine_wire.DRAIN_FLOOR = saved


# ------------------------------------------------------------------------------------------------------------------
# download scenarios
# ------------------------------------------------------------------------------------------------------------------
async def dl_long_body(h: Harness, cell: Cell, tmp: Path) -> str:
    """More bytes than Content-Length promised: the extra bytes are not part of the file (they only spoil that
    connection)."""
    data = blob(SIZE, 13)
    h.put_remote(data)
    fault = h.fault("long_body", "body_get", extra=5000, times=-1)
    dest = tmp / "f.bin"
    assert_downloaded(await run_task(h.download_task(dest)), dest, data, cell)
    assert fault.applied >= 1
    return COMPLETE


async def dl_no_content_length(h: Harness, cell: Cell, tmp: Path) -> str:
    """No Content-Length anywhere (chunked answers, a HEAD without the header): a range probe learns the size."""
    data = blob(SIZE, 14)
    h.put_remote(data)
    fault = h.fault("no_content_length", "any", times=-1)
    dest = tmp / "f.bin"
    assert_downloaded(await run_task(h.download_task(dest)), dest, data, cell)
    assert fault.applied >= 2
    return COMPLETE


async def dl_ignore_range(h: Harness, cell: Cell, tmp: Path) -> str:
    """Every ranged GET answered 200 with the whole body: restarted as one stream, never appended."""
    data = blob(SIZE, 15)
    h.put_remote(data)
    fault = h.fault("strip_range", "body_get", times=-1)
    dest = tmp / "f.bin"
    assert_downloaded(await run_task(h.download_task(dest, flavour="sas")), dest, data, cell)
    assert fault.applied >= 1 and any(ex.fault == "strip_range" and ex.status == 200 for ex in h.proxy.exchanges)
    return COMPLETE


async def dl_ignore_range_fail_policy(h: Harness, cell: Cell, tmp: Path) -> str:
    """With RangeIgnoredPolicy.FAIL a 200 to a ranged GET fails (InvalidRange) and keeps the partial file."""
    data = blob(SIZE, 16)
    h.put_remote(data)
    h.fault("truncate", "body_get", after_bytes=PROGRESS, times=1)
    h.fault("strip_range", "body_get", times=-1)
    dest = tmp / "f.bin"
    run = await run_task(h.download_task(dest, flavour="sas", workers=1, policy=RangeIgnoredPolicy.FAIL))
    done = assert_download_kept(run, dest, data, E.INVALID_RANGE, ("206",))
    await resume_download(h, cell, dest, data, done, flavour="sas")
    return FAILED_RESUMED


def dl_changed_between_runs(validators: str) -> Scenario:
    async def scenario(h: Harness, cell: Cell, tmp: Path) -> str:
        """A run fails part-way; the remote is replaced (same size: only the validator tells); the rerun starts
        over and ends with the new content, never a mix of both."""
        old, new = blob(SIZE, 17), blob(SIZE, 18)
        h.put_remote(old, validators=validators)
        h.fault("truncate", "body_get", after_bytes=PROGRESS, times=1)
        h.status_fault("body_get", 503, "ServerBusy", "busy", times=-1)
        dest = tmp / "f.bin"
        run = await run_task(h.download_task(dest, workers=1, retries=1))
        assert_download_kept(run, dest, old, E.RESPONSE_STATUS_ERROR, ("503",), 503)
        h.put_remote(new, validators=validators)
        h.clear_faults()
        h.reset_log()
        run = await run_task(h.download_task(dest))
        assert_downloaded(run, dest, new, cell)
        assert download_resent(h) >= len(new), "the rerun kept bytes of the old version"
        return FAILED_RESUMED

    return scenario


def dl_changed_during_run(validators: str) -> Scenario:
    async def scenario(h: Harness, cell: Cell, tmp: Path) -> str:
        """The remote is replaced right after a GET delivered part of the old version: the retry's If-Range /
        If-Match no longer holds, and the download restarts on the new version."""
        old, new = blob(SIZE, 19), blob(SIZE, 20)
        h.put_remote(old, validators=validators)
        fault = h.fault("truncate", "body_get", after_bytes=PROGRESS, times=1,
                        on_apply=lambda _: h.put_remote(new, validators=validators))
        dest = tmp / "f.bin"
        run = await run_task(h.download_task(dest, workers=1))
        assert fault.applied == 1
        assert_downloaded(run, dest, new, cell)
        assert sum(1 for ex in h.proxy.exchanges if is_probe(ex.request)) >= 2, "no fresh probe after the change"
        return COMPLETE

    return scenario


async def dl_416_at_eof(h: Harness, cell: Cell, tmp: Path) -> str:
    """Every byte is on disk (a crash hit between the last write and the rename): the run finishes without asking
    for a range at or past EOF, where the server would answer 416 (armed here for any ranged GET)."""
    data = blob(SIZE, 21)
    h.put_remote(data)
    first = tmp / "first.bin"
    assert_downloaded(await run_task(h.download_task(first)), first, data, cell)
    probe = next(ex for ex in h.proxy.exchanges if is_probe(ex.request) and 200 <= ex.status < 300)
    dest = tmp / "f.bin"
    task = h.download_task(dest)
    part, ckpt = parts_of(dest)
    first.rename(part)
    spans = [[0, len(data)]]
    checkpoint.write_atomic(str(ckpt), checkpoint.encode(checkpoint.DownloadCheckpoint(
        url=strip_query(task.url), total_size=len(data), etag=probe.response_headers.get("etag"),
        last_modified=probe.response_headers.get("last-modified"), chunk_size=CHUNK, ranged=True, written=spans,
        durable=spans, boot_id=checkpoint.boot_id())), durable=False)
    h.reset_log()
    fault = h.status_fault("body_get", 416, "InvalidRange", "The range specified is invalid", times=-1)
    fault.headers["Content-Range"] = f"bytes */{len(data)}"
    assert_downloaded(await run_task(task), dest, data, cell)
    assert fault.applied == 0 and not any(is_body_get(ex.request) for ex in h.proxy.exchanges)
    note("no range was requested at or past EOF (a 416 was armed for any)")
    return COMPLETE


async def dl_416_mid_file(h: Harness, cell: Cell, tmp: Path) -> str:
    """A 416 for a range well inside the size the probe reported: the server contradicts itself, the run fails
    (the remote "changed"), the bytes so far are kept, and a later run finishes."""
    data = blob(SIZE, 22)
    h.put_remote(data)
    h.fault("truncate", "body_get", after_bytes=PROGRESS, times=1)
    fault = h.status_fault("body_get", 416, "InvalidRange", "The range specified is invalid", times=-1)
    fault.headers["Content-Range"] = f"bytes */{len(data)}"
    dest = tmp / "f.bin"
    run = await run_task(h.download_task(dest, workers=1, retries=1))
    done = assert_download_kept(run, dest, data, E.REMOTE_CHANGED, ("416",))
    await resume_download(h, cell, dest, data, done)
    return FAILED_RESUMED


async def dl_head_refused(h: Harness, cell: Cell, tmp: Path) -> str:
    """HEAD refused (405, or 403 as on a URL presigned for GET): the probe is a one-byte ranged GET instead."""
    data = blob(SIZE, 23)
    h.put_remote(data)
    status = 405 if h.provider == "http" else 403
    fault = h.status_fault("head", status, "MethodNotAllowed" if status == 405 else "AccessDenied", "HEAD refused",
                           times=-1)
    dest = tmp / "f.bin"
    assert_downloaded(await run_task(h.download_task(dest)), dest, data, cell)
    assert fault.applied >= 1
    assert any(ex.method == "GET" and is_probe(ex.request) for ex in h.proxy.exchanges), "no range probe"
    return COMPLETE


def dl_expired(persistent: bool) -> Scenario:
    async def scenario(h: Harness, cell: Cell, tmp: Path) -> str:
        """The presigned/SAS URL expires mid-download (the proxy answers 403 as the server would at that moment).
        Transient: the source hands out a fresh URL and the run completes. Persistent: from that moment the
        source only has expired URLs, which the server itself refuses; the run fails clearly and keeps its
        bytes, and a later run with a working source finishes them."""
        data = blob(SIZE, 24)
        h.put_remote(data)
        source = h.download_source()
        dest = tmp / "f.bin"
        if not persistent:
            fault = h.status_fault("body_get", 403, "AccessDenied", EXPIRED_BODY, times=1)
            assert_downloaded(await run_task(h.download_task(dest, flavour="presigned", source=source)), dest, data,
                              cell)
            assert fault.applied == 1 and source.calls >= 2
            return COMPLETE
        h.fault("truncate", "body_get", after_bytes=PROGRESS, times=1)
        h.status_fault("body_get", 403, "AccessDenied", EXPIRED_BODY, times=1,
                       on_apply=lambda _: setattr(source, "expired", True))
        run = await run_task(h.download_task(dest, flavour="presigned", source=source, workers=1, retries=1))
        words = ("403", "authoriz") if h.provider == "azure" else ("expired",)
        done = assert_download_kept(run, dest, data, E.RESPONSE_STATUS_ERROR, words, 403)
        source.expired = False
        await resume_download(h, cell, dest, data, done, flavour="presigned", source=source)
        return FAILED_RESUMED

    return scenario


async def dl_clock_skew(h: Harness, cell: Cell, tmp: Path) -> str:
    """The service's clock is an hour ahead: RequestTimeTooSkewed, the offset is learned from its Date, and every
    request is signed afresh with it."""
    assert isinstance(h, OssHarness)
    data = blob(SIZE, 25)
    h.put_remote(data)
    h.srv.clock_offset = 3600
    dest = tmp / "f.bin"
    assert_downloaded(await run_task(h.download_task(dest)), dest, data, cell)
    assert any(c.code == "RequestTimeTooSkewed" for c in h.srv.calls), "the skew was never met"
    note("RequestTimeTooSkewed: the clock offset was learned from Date and the request re-signed")
    return COMPLETE


# -- the local disk --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A small tmpfs at ``path`` (root only); the case is skipped, with the reason, where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount permission): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def small_disk(path: Path, size_kib: int = 3072) -> Iterator[Path]:
    """A small ext4 file system (a loop-mounted image, root only) at ``path``: a disk, where reserving a file's space
    means what it means on the users' disks (on a memory file system the engine checks free space instead). The case
    is skipped, with the reason, where an image cannot be made or mounted."""
    path.mkdir(parents=True, exist_ok=True)
    image = path.with_name(path.name + ".img")
    with open(image, "wb") as f:
        f.truncate(size_kib * KIB)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-b", "1024", "-m", "0", str(image)],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make an ext4 image here (mkfs.ext4 from e2fsprogs): {made.stderr.strip()}")
    done = subprocess.run(["mount", "-o", "loop", str(image), str(path)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot loop-mount a disk image here (needs root and a loop device): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        image.unlink(missing_ok=True)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True)


def fill(directory: Path, leave: int = 0) -> Path:
    """Fill the file system of ``directory`` until ENOSPC (or until ``leave`` bytes are free); a second call tops
    the same filler up."""
    filler = directory / "filler"
    with open(filler, "ab") as f:
        while True:
            free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
            if free <= leave:
                break
            try:
                f.write(b"\0" * min(64 * KIB, free - leave))
                f.flush()
            except OSError:
                break
    return filler


class KeptFull:
    """Keeps a file system full from ``start()`` until ``stop()``. One fill is not enough while a run goes on: a
    checkpoint save in flight at the moment of filling holds the page of its temp file, and its rename then frees
    the old checkpoint's page, which the run's final save would use instead of failing."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.filler: Path | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._top_up, name="kept-full", daemon=True)

    def start(self) -> None:
        if self.filler is None:
            self.filler = fill(self.directory)
            self._thread.start()

    def _top_up(self) -> None:
        while not self._stop.wait(0.001):
            fill(self.directory)

    def stop(self) -> None:
        """Stop topping up and free the space."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.filler is not None:
            self.filler.unlink()


async def failed_first_run(h: Harness, dest: Path, data: bytes) -> list[tuple[int, int]]:
    """A run that fails after PROGRESS bytes (503 for good) and keeps them; returns the spans kept."""
    h.put_remote(data)
    h.fault("truncate", "body_get", after_bytes=PROGRESS, times=1)
    h.status_fault("body_get", 503, "ServerBusy", "busy", times=-1)
    run = await run_task(h.download_task(dest, workers=1, retries=1))
    return assert_download_kept(run, dest, data, E.RESPONSE_STATUS_ERROR, ("503",), 503)


async def dl_disk_full_preallocation(h: Harness, cell: Cell, tmp: Path) -> str:
    """Less free space than the file needs: the space is reserved up front, so the run fails at once with
    DISK_FULL (not hours in, and not with a file full of holes); with space freed, a rerun completes."""
    data = blob(SIZE, 26)
    h.put_remote(data)
    with small_disk(tmp / "small") as mnt:
        filler = fill(mnt, leave=SIZE // 2)
        note("", local_fault=True)
        dest = mnt / "f.bin"
        run = await run_task(h.download_task(dest))
        assert_clear_error(run, E.DISK_FULL, ("no space left",))
        assert not dest.exists()
        filler.unlink()
        assert_downloaded(await run_task(h.download_task(dest)), dest, data, cell)
    return FAILED_RESUMED


async def dl_disk_full_on_resume(h: Harness, cell: Cell, tmp: Path) -> str:
    """The disk fills up between a failed run and its resume: the resume fails with DISK_FULL and leaves the
    ``.part`` and its checkpoint exactly as they were; with space freed, the next run fetches only the rest."""
    data = blob(SIZE, 27)
    with small_disk(tmp / "small") as mnt:
        dest = mnt / "f.bin"
        done = await failed_first_run(h, dest, data)
        part, ckpt = parts_of(dest)
        before = (part.read_bytes(), ckpt.read_bytes())
        filler = fill(mnt)
        note("", local_fault=True)
        h.clear_faults()
        run = await run_task(h.download_task(dest))
        assert_clear_error(run, E.DISK_FULL, ("no space left",))
        assert (part.read_bytes(), ckpt.read_bytes()) == before, "the failed resume damaged the kept state"
        assert not Path(f"{ckpt}.tmp").exists(), "a half-written checkpoint temp file holds the little space left"
        assert not dest.exists()
        filler.unlink()
        await resume_download(h, cell, dest, data, done)
    return FAILED_RESUMED


def dl_disk_full_mid_run(then_fail: bool) -> Scenario:
    async def scenario(h: Harness, cell: Cell, tmp: Path) -> str:
        """The disk fills up while the download runs. The file's space was reserved up front, so its bytes still
        land; only checkpoint saves fail. Alone, that costs nothing: the run completes. If the network then fails
        for good, the run reports DISK_FULL (the checkpoint of this run's progress cannot be saved) and keeps the
        ``.part`` and the last checkpoint that could be saved; with space freed, the next run finishes."""
        data = blob(SIZE, 29)
        h.put_remote(data)
        with small_disk(tmp / "small") as mnt:
            dest = mnt / "f.bin"
            full = KeptFull(mnt)
            h.fault("truncate", "body_get", after_bytes=PROGRESS, times=1, on_apply=lambda _: full.start())
            try:
                if not then_fail:
                    assert_downloaded(await run_task(h.download_task(dest, workers=1)), dest, data, cell)
                    assert full.filler is not None, "the disk never filled up"
                    note("disk filled after the space was reserved: the bytes still landed", local_fault=True)
                    return COMPLETE
                note("", local_fault=True)
                h.status_fault("body_get", 503, "ServerBusy", "busy", times=-1)
                run = await run_task(h.download_task(dest, workers=1, retries=1))
            finally:
                full.stop()
            done = assert_download_kept(run, dest, data, E.DISK_FULL, ("no space left",))
            await resume_download(h, cell, dest, data, done)
        return FAILED_RESUMED

    return scenario


async def dl_dest_read_only(h: Harness, cell: Cell, tmp: Path) -> str:
    """The destination folder turns read-only (a remount; chmod does not stop root) between a failed run and its
    resume: a clear IO_ERROR, the kept state untouched; writable again, the next run fetches only the rest."""
    data = blob(SIZE, 28)
    with tmpfs(tmp / "ro") as mnt:
        dest = mnt / "f.bin"
        done = await failed_first_run(h, dest, data)
        part, ckpt = parts_of(dest)
        before = (part.read_bytes(), ckpt.read_bytes())
        remount(mnt, "ro")
        note("", local_fault=True)
        try:
            h.clear_faults()
            run = await run_task(h.download_task(dest))
            assert_clear_error(run, E.IO_ERROR, ("read-only",))
            assert (part.read_bytes(), ckpt.read_bytes()) == before
        finally:
            remount(mnt, "rw")
        await resume_download(h, cell, dest, data, done)
    return FAILED_RESUMED


# ------------------------------------------------------------------------------------------------------------------
# upload scenarios
# ------------------------------------------------------------------------------------------------------------------
async def up_long_body(h: Harness, cell: Cell, tmp: Path) -> str:
    data = blob(SIZE, 31)
    fault = h.fault("long_body", "part", extra=5000, times=-1)
    assert_uploaded(h, await run_task(h.upload_task(source_file(tmp, data))), data, cell)
    assert fault.applied >= 1
    return COMPLETE


async def up_no_content_length(h: Harness, cell: Cell, tmp: Path) -> str:
    data = blob(SIZE, 32)
    fault = h.fault("no_content_length", "answer", times=-1)
    assert_uploaded(h, await run_task(h.upload_task(source_file(tmp, data))), data, cell)
    assert fault.applied >= 1
    return COMPLETE


async def up_lost_commit_answer(h: Harness, cell: Cell, tmp: Path) -> str:
    """The commit (OSS Complete, Azure Put Block List, the seed's last chunk) succeeds but its answer is lost.
    The retry must not be trusted blindly: OSS answers NoSuchUpload and the object is verified (size, CRC-64) by
    HEAD; Azure and the seed's protocol are idempotent and answer again."""
    data = blob(SIZE, 33)
    fault = h.fault("lose_response", "commit", times=1)
    assert_uploaded(h, await run_task(h.upload_task(source_file(tmp, data))), data, cell)
    assert fault.applied == 1
    if isinstance(h, OssHarness):
        assert any(c.op == "CompleteMultipartUpload" and c.code == "NoSuchUpload" for c in h.srv.calls)
        assert h.srv.count_op("HeadObject") >= 1
        note("the retried Complete met NoSuchUpload; the object was verified by HEAD (size, CRC-64)")
    else:
        note("the retried commit answered again (idempotent)")
    return COMPLETE


async def up_upload_gone_at_complete(h: Harness, cell: Cell, tmp: Path) -> str:
    """NoSuchUpload at Complete and no object: the upload was aborted (or expired) elsewhere. A clear failure,
    nothing called complete; the rerun starts a new upload (the old parts are gone with the old upload)."""
    assert isinstance(h, OssHarness)
    data = blob(SIZE, 34)
    src = source_file(tmp, data)

    def abort_elsewhere(_: object) -> None:
        with h.srv._lock:
            h.srv.multipart_uploads.clear()

    h.fault("delay", "commit", seconds=0, times=1, on_apply=abort_elsewhere)
    run = await run_task(h.upload_task(src))
    assert_clear_error(run, E.RESPONSE_STATUS_ERROR, ("nosuchupload",), 404)
    assert h.stored() is None
    h.clear_faults()
    assert_uploaded(h, await run_task(h.upload_task(src)), data, cell)
    return FAILED_RESUMED


def up_expired(persistent: bool) -> Scenario:
    async def scenario(h: Harness, cell: Cell, tmp: Path) -> str:
        """A presigned/SAS upload URL expires mid-upload (see dl_expired)."""
        data = blob(SIZE, 35)
        src = source_file(tmp, data)
        source = h.upload_source()
        if not persistent:
            fault = h.status_fault("part", 403, "AccessDenied", EXPIRED_BODY, times=1, skip=1)
            assert_uploaded(h, await run_task(h.upload_task(src, flavour="presigned", source=source)), data, cell)
            assert fault.applied == 1 and source.calls >= 2
            return COMPLETE
        h.status_fault("part", 403, "AccessDenied", EXPIRED_BODY, times=1, skip=2,
                       on_apply=lambda _: setattr(source, "expired", True))
        run = await run_task(h.upload_task(src, flavour="presigned", source=source, conc=1, retries=1))
        pending = assert_upload_kept(h, run, E.RESPONSE_STATUS_ERROR, ("expired",), 403)
        source.expired = False
        await resume_upload(h, cell, src, data, pending, flavour="presigned", source=source)
        return FAILED_RESUMED

    return scenario


async def up_clock_skew(h: Harness, cell: Cell, tmp: Path) -> str:
    assert isinstance(h, OssHarness)
    data = blob(SIZE, 36)
    h.srv.clock_offset = -3600
    assert_uploaded(h, await run_task(h.upload_task(source_file(tmp, data))), data, cell)
    assert any(c.code == "RequestTimeTooSkewed" for c in h.srv.calls), "the skew was never met"
    note("RequestTimeTooSkewed: the clock offset was learned from Date and the request re-signed")
    return COMPLETE


def up_source_changed(how: str) -> Scenario:
    async def scenario(h: Harness, cell: Cell, tmp: Path) -> str:
        """The source file is rewritten (same size) or truncated while its parts travel: SOURCE_CHANGED, nothing
        committed (never an object mixing two versions), and a rerun uploads the file as it now is."""
        data = blob(SIZE, 37)
        src = source_file(tmp, data)
        h.fault("delay", "part", seconds=0.05, times=-1)  # slow parts, so the change lands mid-upload
        built_mtime = src.stat().st_mtime_ns

        async def change(rec: Any, tid: Any) -> None:
            await rec.wait_for(lambda: any(r.transferred_bytes >= PART for r in rec.of(tid)), 10)
            with open(src, "r+b") as f:
                if how == "truncated":
                    f.truncate(SIZE // 2 + 100)
                else:
                    f.seek(SIZE - 1000)
                    f.write(b"Z" * 1000)
            if src.stat().st_mtime_ns == built_mtime:  # a coarse clock: make the change visible as an editor would
                os.utime(src, ns=(built_mtime + 10**9, built_mtime + 10**9))
            note("", local_fault=True)

        run = await run_task(h.upload_task(src, conc=1), during=change)
        msg = assert_clear_error(run, E.SOURCE_CHANGED, ("changed", "shrank"))
        assert str(src) in msg
        assert h.stored() is None, "an upload whose source changed was committed"
        h.clear_faults()
        now = src.read_bytes()
        assert_uploaded(h, await run_task(h.upload_task(src)), now, cell)
        return FAILED_RESUMED

    return scenario


# ------------------------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------------------------
SCENARIOS: dict[tuple[str, str], Scenario] = {}
for _name in RETRYABLE:
    for _persistent in (False, True):
        _mode = "persistent" if _persistent else "transient"
        SCENARIOS[("download", f"{_name}/{_mode}")] = retryable_download(_name, _persistent)
        SCENARIOS[("upload", f"{_name}/{_mode}")] = retryable_upload(_name, _persistent)
SCENARIOS.update({
    ("download", "body-longer-than-promised"): dl_long_body,
    ("download", "missing-content-length"): dl_no_content_length,
    ("download", "server-ignores-range"): dl_ignore_range,
    ("download", "server-ignores-range/fail-policy"): dl_ignore_range_fail_policy,
    ("download", "etag-changed-between-runs"): dl_changed_between_runs("etag"),
    ("download", "last-modified-changed-between-runs"): dl_changed_between_runs("last-modified"),
    ("download", "etag-changed-during-run"): dl_changed_during_run("etag"),
    ("download", "last-modified-changed-during-run"): dl_changed_during_run("last-modified"),
    ("download", "416-at-eof"): dl_416_at_eof,
    ("download", "416-mid-file"): dl_416_mid_file,
    ("download", "head-refused"): dl_head_refused,
    ("download", "expired-url/transient"): dl_expired(False),
    ("download", "expired-url/persistent"): dl_expired(True),
    ("download", "request-time-too-skewed"): dl_clock_skew,
    ("download", "disk-full/preallocation"): dl_disk_full_preallocation,
    ("download", "disk-full/on-resume"): dl_disk_full_on_resume,
    ("download", "disk-full/mid-run"): dl_disk_full_mid_run(False),
    ("download", "disk-full/mid-run-then-network-fails"): dl_disk_full_mid_run(True),
    ("download", "destination-read-only"): dl_dest_read_only,
    ("upload", "body-longer-than-promised"): up_long_body,
    ("upload", "missing-content-length"): up_no_content_length,
    ("upload", "lost-commit-answer"): up_lost_commit_answer,
    ("upload", "no-such-upload-at-complete"): up_upload_gone_at_complete,
    ("upload", "expired-url/transient"): up_expired(False),
    ("upload", "expired-url/persistent"): up_expired(True),
    ("upload", "request-time-too-skewed"): up_clock_skew,
    ("upload", "source-changed"): up_source_changed("changed"),
    ("upload", "source-truncated"): up_source_changed("truncated"),
})

#: Every fault of the matrix, in table order (a fault may exist for one direction only).
FAULTS: list[str] = list(dict.fromkeys(f for _, f in SCENARIOS))
_CHANGED = "an upload overwrites the remote; the remote's validators are never consulted"
_NO_SOURCE = "a download has no local source (a changing remote is the *-changed-* faults)"
#: (provider or "*", direction, fault) -> why the case cannot happen there. Every combination of provider,
#: direction and fault is either a case or listed here (test_every_fault_of_the_issue_is_in_the_matrix).
NOT_APPLICABLE: dict[tuple[str, str, str], str] = {
    ("*", "upload", "server-ignores-range"): "uploads send no Range",
    ("*", "upload", "server-ignores-range/fail-policy"): "uploads send no Range",
    ("*", "upload", "etag-changed-between-runs"): _CHANGED,
    ("*", "upload", "last-modified-changed-between-runs"): _CHANGED,
    ("*", "upload", "etag-changed-during-run"): _CHANGED,
    ("*", "upload", "last-modified-changed-during-run"): _CHANGED,
    ("*", "upload", "416-at-eof"): "uploads request no ranges",
    ("*", "upload", "416-mid-file"): "uploads request no ranges",
    ("*", "upload", "head-refused"): "uploads send no HEAD probe (OSS HEADs only to verify a lost Complete)",
    ("*", "upload", "disk-full/preallocation"): "an upload writes nothing locally but a small session record, "
                                                "whose failed save only costs the resume",
    ("*", "upload", "disk-full/on-resume"): "an upload writes nothing locally but a small session record",
    ("*", "upload", "disk-full/mid-run"): "an upload writes nothing locally but a small session record",
    ("*", "upload", "disk-full/mid-run-then-network-fails"): "an upload writes nothing locally",
    ("*", "upload", "destination-read-only"): "an upload's destination is the remote: a refused write is a 403 "
                                              "(expired-url)",
    ("*", "download", "lost-commit-answer"): "a download commits nothing remotely",
    ("*", "download", "no-such-upload-at-complete"): "a download has no multipart session",
    ("*", "download", "source-changed"): _NO_SOURCE,
    ("*", "download", "source-truncated"): _NO_SOURCE,
    ("oss", "download", "last-modified-changed-between-runs"): "OSS always sends a strong ETag, the validator used",
    ("oss", "download", "last-modified-changed-during-run"): "OSS always sends a strong ETag, the validator used",
    ("azure", "download", "last-modified-changed-between-runs"): "Azure always sends a strong ETag",
    ("azure", "download", "last-modified-changed-during-run"): "Azure always sends a strong ETag",
    ("http", "download", "request-time-too-skewed"): "plain HTTP requests are not signed",
    ("http", "upload", "request-time-too-skewed"): "plain HTTP requests are not signed",
    ("azure", "download", "request-time-too-skewed"): "Azurite does not check x-ms-date (Azure's 15 min rule)",
    ("azure", "upload", "request-time-too-skewed"): "Azurite does not check x-ms-date (Azure's 15 min rule)",
    ("http", "upload", "expired-url/transient"): "the seed's upload protocol has no URL renewal: a 403 is final "
                                                 "(tests/engine/test_faults_upload.py)",
    ("http", "upload", "expired-url/persistent"): "the seed's upload protocol has no URL renewal",
    ("http", "upload", "no-such-upload-at-complete"): "the seed's protocol has no multipart session to lose",
    ("azure", "upload", "no-such-upload-at-complete"): "Put Block List has no upload id to lose; its lost answer "
                                                       "is lost-commit-answer",
}


def _not_applicable(provider: str, direction: str, fault: str) -> str | None:
    return NOT_APPLICABLE.get((provider, direction, fault)) or NOT_APPLICABLE.get(("*", direction, fault))


def _combinations() -> list[tuple[str, str, str]]:
    return [(p, d, f) for p in PROVIDERS for f in FAULTS for d in ("download", "upload")]


def _na_rows() -> dict[tuple[str, str, str], str]:
    return {(p, d, f): why for p, d, f in _combinations()
            if (why := _not_applicable(p, d, f)) is not None}


CASES = [pytest.param(p, d, f, id=f"{p}-{d}-{f}") for p, d, f in _combinations()
         if (d, f) in SCENARIOS and _not_applicable(p, d, f) is None]


# ------------------------------------------------------------------------------------------------------------------
# fixtures and the test
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _matrix_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print provider x direction x fault -> outcome once the matrix ran (and write it to
    $RUSTY_CAT_FAULT_MATRIX_REPORT when set, for ``make soak``)."""
    yield
    ran = [c for c in RESULTS if c.outcome != "skipped"]
    if not ran:
        return
    table = format_table(ran, _na_rows())
    report = os.environ.get("RUSTY_CAT_FAULT_MATRIX_REPORT")
    if report:
        Path(report).write_text(table + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:  # pragma: no cover - without the terminal reporter (e.g. -p no:terminal)
        print(table)
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write_line("")
        reporter.write_line("fault matrix: provider x direction x fault -> outcome")
        for line in table.splitlines():
            reporter.write_line(line)


@contextlib.asynccontextmanager
async def harness_for(provider: str, request: pytest.FixtureRequest, tmp: Path) -> AsyncIterator[Harness]:
    if provider == "azure":
        azurite = request.getfixturevalue("azurite")
        with FaultProxy(f"http://127.0.0.1:{azurite.port}") as proxy:
            yield AzureHarness(proxy, tmp, azurite)
        assert proxy.errors == []
        return
    server: TestHttpServer = TestHttpServer() if provider == "http" else FakeOssServer()
    with server, FaultProxy(server.base_url) as proxy:
        h: Harness = HttpHarness(proxy, tmp, server) if provider == "http" else \
            OssHarness(proxy, tmp, server)  # type: ignore[arg-type]
        yield h
    assert proxy.errors == [] and server.errors == []


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize(("provider", "direction", "fault"), CASES)
async def test_fault_matrix(provider: str, direction: str, fault: str, request: pytest.FixtureRequest,
                            tmp_path: Path) -> None:
    cell = Cell(provider, direction, fault)
    RESULTS.append(cell)
    CURRENT.append(cell)
    t0 = time.monotonic()
    try:
        async with harness_for(provider, request, tmp_path) as h:
            try:
                cell.outcome = await SCENARIOS[(direction, fault)](h, cell, tmp_path)
            finally:
                cell.faults_injected += h.injected()
    except pytest.skip.Exception as skip:
        cell.outcome, cell.detail = "skipped", str(skip.msg)
        raise
    finally:
        cell.seconds = time.monotonic() - t0
    assert cell.outcome in (COMPLETE, FAILED_KEPT, FAILED_RESUMED)


def test_every_fault_of_the_issue_is_in_the_matrix() -> None:
    """The table covers the issue's list, and every left-out combination says why."""
    faults = {f.split("/")[0] for _, f in SCENARIOS}
    assert {"reset", "status-500", "status-502", "status-503", "status-504", "429-retry-after", "truncated-body",
            "body-longer-than-promised", "read-stall", "server-ignores-range", "etag-changed-between-runs",
            "etag-changed-during-run", "416-at-eof", "head-refused", "missing-content-length", "expired-url",
            "request-time-too-skewed", "lost-commit-answer", "disk-full", "destination-read-only",
            "source-changed", "source-truncated"} <= faults
    cases = {tuple(p.values[:3]) for p in CASES}
    for provider, direction, fault in _combinations():
        case = (provider, direction, fault) in cases
        why = _not_applicable(provider, direction, fault)
        assert case != bool(why), f"{(provider, direction, fault)} must be a case or say why it is not"
        assert case or (direction, fault) not in SCENARIOS or NOT_APPLICABLE.get((provider, direction, fault)), \
            f"{(provider, direction, fault)} has a scenario: only a provider-specific reason may leave it out"
    cell = Cell("p", "d", "f", COMPLETE, "", 2, 10, 0.5)
    table = format_table([cell], {("p", "upload", "x"): "why"})
    assert "complete" in table and "n/a" in table and "faults injected: 2" in table and "bytes verified: 10" in table


# ------------------------------------------------------------------------------------------------------------------
# the proxy itself: each fault does on the wire what the matrix relies on
# ------------------------------------------------------------------------------------------------------------------
BODY = blob(300 * KIB, 41)


@pytest.fixture
def wire() -> Iterator[tuple[TestHttpServer, FaultProxy]]:
    with TestHttpServer() as srv, FaultProxy(srv.base_url) as proxy:
        srv.add_file("/f.bin", BODY)
        yield srv, proxy
    assert proxy.errors == [] and srv.errors == []


def raw_exchange(proxy: FaultProxy, request: bytes, timeout: float = 2.0) -> bytes:
    """Send ``request`` on a raw socket and read until the proxy closes (or ``timeout`` of silence)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout) as sock:
        sock.sendall(request)
        out = bytearray()
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while piece := sock.recv(1 << 16):
                out += piece
    return bytes(out)


@pytest.mark.timeout(20)
def test_proxy_forwards_requests_byte_for_byte(wire: tuple[TestHttpServer, FaultProxy]) -> None:
    """Signatures survive the proxy because nothing is changed: the server sees our exact headers (Host too),
    in order, and body; the client gets the server's exact answer."""
    srv, proxy = wire
    headers = [("Host", "example.invalid:1"), ("X-Signed", "a b  c"), ("Content-Length", "5"), ("x-lower", "1")]
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    answer = raw_exchange(proxy, f"POST /echo?q=1&sig=%2F HTTP/1.1\r\n{head}Connection: close\r\n\r\nhello".encode())
    assert answer.startswith(b"HTTP/1.1 404")
    (seen,) = srv.requests
    assert seen.header_pairs[:4] == headers and seen.query == "q=1&sig=%2F" and seen.body_size == 5
    with httpx.Client() as client:
        got = client.get(proxy.url("/f.bin"), headers={"Range": "bytes=10-19"})
    assert got.status_code == 206 and got.content == BODY[10:20]
    assert got.headers["content-range"] == f"bytes 10-19/{len(BODY)}" and got.headers["etag"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["status", "drop", "delay", "strip_range", "reset", "truncate", "stall",
                                  "long_body", "no_content_length", "lose_response", "reset_request",
                                  "truncate_request"])
def test_proxy_fault_kinds(wire: tuple[TestHttpServer, FaultProxy], kind: str) -> None:
    srv, proxy = wire
    params: dict[str, Any] = {"after_bytes": 1000}
    if kind == "status":
        params = {"status": 503, "headers": {"Retry-After": "7"}, "body": b"busy"}
    elif kind in ("stall", "delay"):
        params = {"after_bytes": None if kind == "stall" else 0, "seconds": 0.3 if kind == "delay" else 10}
    elif kind in ("reset_request", "truncate_request"):
        params = {"after_bytes": 100}
    fault = proxy.add_fault(ProxyFault(kind, **params))
    if kind == "long_body":  # raw bytes: an HTTP client would hide what follows the promised length
        raw = raw_exchange(proxy, b"GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n")
        assert b"Content-Length: 10\r\n" in raw and raw.endswith(BODY[:10] + b"X" * 16) and fault.applied == 1
        return
    upload = kind.endswith("_request") or kind == "lose_response"
    t0 = time.monotonic()
    with httpx.Client(timeout=0.5 if kind == "stall" else 5.0) as client:
        try:
            if upload:
                resp = client.post(proxy.url("/upload"), content=b"u" * 5000)
            else:
                resp = client.get(proxy.url("/f.bin"), headers={"Range": "bytes=0-99999"})
            error = None
        except httpx.HTTPError as exc:
            resp, error = None, exc
    elapsed = time.monotonic() - t0
    assert fault.applied == 1
    log = srv.requests
    if kind == "status":
        assert resp is not None and resp.status_code == 503 and resp.text == "busy"
        assert resp.headers["retry-after"] == "7" and log == [], "answered without reaching the server"
    elif kind == "drop":
        assert isinstance(error, httpx.RemoteProtocolError | httpx.ReadError) and log == []
    elif kind == "delay":
        assert resp is not None and resp.status_code == 206 and elapsed >= 0.3
    elif kind == "strip_range":
        assert resp is not None and resp.status_code == 200 and resp.content == BODY and log[0].range is None
    elif kind == "reset":
        assert isinstance(error, httpx.ReadError) and proxy.exchanges[0].sent == 1000
    elif kind == "truncate":
        assert isinstance(error, httpx.RemoteProtocolError) and "complete message body" in str(error)
    elif kind == "stall":
        assert isinstance(error, httpx.ReadTimeout) and proxy.exchanges[0].status == 0
    elif kind == "no_content_length":
        assert resp is not None and resp.content == BODY[:100000]
        assert "content-length" not in resp.headers and resp.headers["transfer-encoding"] == "chunked"
    elif kind == "lose_response":
        assert error is not None and len(log) == 1 and log[0].status != 0, "the server acted; no answer came"
    else:  # the server got a part of the body and never answered
        assert error is not None and log == [] and proxy.exchanges[0].forwarded == 100


@pytest.mark.asyncio
async def test_on_a_memory_file_system_a_file_too_big_fails_at_once(tmp_path: Path) -> None:
    """On tmpfs the space is not reserved (that would zero every page up front) but checked: a file bigger than the
    free memory fails before a byte is fetched, with DISK_FULL, and nothing is left at the destination."""
    with TestHttpServer() as srv, tmpfs(tmp_path / "mem", "1m") as mnt:
        assert filesystem_type(str(mnt)) == "tmpfs"
        srv.add_file("/f.bin", blob(2 << 20, 31))
        rec = Recorder()
        async with meow() as client:
            task = DownloadPounceBuilder("f.bin", mnt / "f.bin", 256 * KIB, srv.url("/f.bin")).build()
            final = await rec.wait_terminal(await client.try_enqueue(task, rec.progress))
        assert final.status is TransferStatus.FAILED and final.error is not None
        assert final.error.code == E.DISK_FULL and "no space left" in final.error.msg, final.error
        assert not any(r.method == "GET" and r.range != "bytes=0-0" for r in srv.requests), "bytes were fetched"
        assert not (mnt / "f.bin").exists()
