"""rusty-cat-cli: resumable downloads and chunked uploads from a terminal or a script.

The CLI is a thin front end over the TransferManager (:mod:`app.manager.manager`): it turns arguments into one
job of the shared history (so the desktop app lists it and can resume it), runs only that job and reports the
engine's records either as a progress bar (stderr, only on a terminal) or as JSON lines (stdout, for scripts).
A download keeps ``<dest>.part`` and ``<dest>.part.ckpt``, an upload asks the server where to continue; running
the same command again after Ctrl-C, SIGTERM or even kill -9 resumes the same job instead of starting over.

Exit codes: 0 done, 1 the transfer failed, 2 usage error, 130 interrupted (SIGINT/SIGTERM).

Proxies and certificates: the environment's proxy variables, as curl reads them, unless ``--proxy URL`` (or
``--proxy ''`` for none), ``--noproxy LIST`` or ``--cacert FILE`` say otherwise for this run. A password in
``--proxy`` is used for this run only (never stored) and redacted in every message.

Start-up matters (a script may run the CLI once per file), so only what the command needs is imported, when it is
needed: ``--help`` and ``--version`` load no engine, no asyncio and no HTTP library; a plain http download loads no
keyring, no provider plugin and no TLS certificates.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from app import __version__, cli_accounts

if TYPE_CHECKING:
    import asyncio

    from app.engine.api import FileTransferRecord, MeowError
    from app.manager.jobs import Job
    from app.manager.network import NetworkSettings
    from app.manager.rate_meter import RateMeter

PROG = "rusty-cat-cli"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_CHUNK = "1MiB"
DEFAULT_CHUNK_BYTES = 1 << 20  # DEFAULT_CHUNK, parsed (a test keeps the two equal)
DEFAULT_CONNECTIONS = 4
MAX_CONNECTIONS = 64
MAX_RETRIES = 1000
#: The engine's DEFAULT_MAX_CHUNK_RETRIES, written out so building the parser imports no engine (a test keeps the
#: two equal).
DEFAULT_RETRIES = 3
REDRAW_INTERVAL = 0.1  # seconds: at most ~10 progress-bar redraws per second
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")

T = TypeVar("T")


class UsageError(Exception):
    """A problem with the command line that argparse's types cannot see (missing file, bad URL…): exit 2."""


# ---------------------------------------------------------------------------------------------- arguments
def _size_arg(text: str) -> int:
    try:
        from app.sizes import parse_size

        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _header_arg(text: str) -> tuple[str, str]:
    """``'Name: value'`` → (name, value). The value is never echoed back: headers often carry tokens."""
    name, sep, value = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected 'Name: value' (the header has no ':')")
    name, value = name.strip(), value.strip()
    if not name or not _TOKEN.match(name):
        raise argparse.ArgumentTypeError(f"invalid header name {name[:64]!r} (expected 'Name: value')")
    if any(c in value for c in "\r\n\0"):
        raise argparse.ArgumentTypeError(f"the value of header {name} contains a line break or NUL")
    return name, value


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type for a whole number in lo..hi, with a message that says which rule was broken."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {n}")
        return n

    return parse


_connections_arg = _int_in(1, MAX_CONNECTIONS)
_retries_arg = _int_in(0, MAX_RETRIES)


def _sha256_arg(text: str) -> str:
    if not _SHA256.match(text.strip()):
        raise argparse.ArgumentTypeError(f"expected 64 hexadecimal digits, got {text[:80]!r}")
    return text.strip().lower()


def check_url(url: str) -> None:
    """Reject URLs that can never work (exit 2) before any network traffic; reachability is the engine's job."""
    from app.manager.manager import ManagerError, check_http_url

    try:
        check_http_url(url)
    except ManagerError as exc:
        raise UsageError(str(exc)) from None


def network_from_args(args: argparse.Namespace) -> tuple[NetworkSettings | None, str | None]:
    """The network settings ``--proxy``, ``--noproxy`` and ``--cacert`` ask for, and the proxy password given in
    ``--proxy`` (for this run only); ``(None, None)`` without any of them (the environment's proxy, the system's
    certificates). UsageError names the option and never repeats the password."""
    try:
        return cli_accounts.network_from_options(getattr(args, "proxy", None), getattr(args, "noproxy", None),
                                                 getattr(args, "cacert", None))
    except cli_accounts.NetworkOptionError as exc:
        raise UsageError(str(exc)) from None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chunk-size", type=_size_arg, default=DEFAULT_CHUNK_BYTES, metavar="SIZE",
                   help=f"bytes per chunk (default {DEFAULT_CHUNK}); a resume re-sends at most one chunk per "
                        "connection. SIZE: plain bytes or k/M/G/T, all 1024-based (512k = 512KB = 512KiB)")
    p.add_argument("--connections", type=_connections_arg, default=DEFAULT_CONNECTIONS, metavar="N",
                   help=f"parallel connections for this file, 1..{MAX_CONNECTIONS} (default {DEFAULT_CONNECTIONS}; "
                        "uploads with the default protocol send parts in order)")
    p.add_argument("--retries", type=_retries_arg, default=DEFAULT_RETRIES, metavar="N",
                   help=f"retries per chunk on network errors, timeouts, 408/429/5xx (default "
                        f"{DEFAULT_RETRIES}; 0 = fail at the first error)")
    p.add_argument("--limit-rate", type=_size_arg, default=None, metavar="SIZE",
                   help="bandwidth cap in bytes per second, e.g. 500k or 2M (default: unlimited)")
    p.add_argument("--header", "-H", type=_header_arg, action="append", default=[], metavar="'K: V'",
                   help="extra request header, repeatable (values are never printed)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per progress record on stdout, then a final "
                        '{"event": "complete", ...} line; nothing else goes to stdout')
    cli_accounts.add_network_options(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; separate from main() so help texts can be tested without running anything."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Resumable, chunked HTTP transfers. Interrupt a transfer (Ctrl-C, SIGTERM, even kill -9) "
                    "and run the same command again: it continues where it stopped.",
        epilog="Exit status: 0 done, 1 transfer failed, 2 usage error (a bad option value too, e.g. --proxy or "
               "--cacert), 130 interrupted. Sizes accept plain bytes or k/M/G/T suffixes, all 1024-based (4MiB = "
               "4M = 4MB). Proxies: http_proxy, https_proxy, all_proxy and no_proxy are read as curl reads them, "
               "unless --proxy/--noproxy say otherwise; --cacert adds a private CA to the system's.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    dl = sub.add_parser(
        "download", help="download URL to a file (resumable)",
        description="Download URL with parallel range requests into PATH. Data goes to PATH.part with a "
                    "checkpoint beside it, and PATH appears only when the download is complete (and verified, "
                    "with --sha256). Run the same command again to resume.",
    )
    dl.add_argument("url", metavar="URL", help="http(s) URL (also an Azure SAS or OSS presigned URL), or "
                                               "oss://ACCOUNT/bucket/key or azure://ACCOUNT/container/blob")
    dl.add_argument("-o", "--output", metavar="PATH",
                    help="destination file, or an existing directory (or one ending in '/') to put the file in. "
                         "Default: the name from the server's Content-Disposition or the URL, made safe, in "
                         "the current directory")
    dl.add_argument("--sha256", type=_sha256_arg, metavar="HEX",
                    help="expected SHA-256 of the whole file; a mismatch fails the download (exit 1)")
    _add_common(dl)
    dl.set_defaults(subparser=dl)

    up = sub.add_parser(
        "upload", help="upload FILE to URL with the chunk protocol (resumable)",
        description="Upload FILE to URL in chunks with Rusty Cat's default multipart protocol. The server "
                    "says where to continue, so running the same command again resumes. The server's file "
                    "id is printed on stdout at the end.",
    )
    up.add_argument("file", metavar="FILE", help="the local file to upload")
    up.add_argument("url", metavar="URL", help="http(s) upload endpoint (Rusty Cat's chunk protocol), an Azure "
                                               "blob SAS URL, or oss://ACCOUNT/bucket/key or azure://ACCOUNT/container/blob")
    _add_common(up)
    up.set_defaults(subparser=up)
    cli_accounts.add_parser(sub)
    return parser


# ---------------------------------------------------------------------------------------------- progress
def format_duration(seconds: float) -> str:
    """``0:07``, ``12:34``, ``1:02:03`` — short enough for a progress line."""
    s = max(0, int(seconds + 0.5))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_progress(done: int, total: int, rate: float, width: int = 80) -> str:
    """One progress-bar line: percentage, bar, bytes done/total, rate and ETA, fitted to ``width`` columns.

    ``total`` 0 means unknown (no percentage, bar or ETA). Pure, so the exact layout is unit-tested.
    """
    from app.sizes import format_size

    rate_text = f"{format_size(rate)}/s" if rate > 0 else "--/s"
    if total > 0:
        frac = min(1.0, max(0.0, done / total))
        eta = format_duration((total - done) / rate) if rate > 0 and done < total else ("0:00" if done >= total
                                                                                      else "--:--")
        tail = f" {format_size(done)}/{format_size(total)}  {rate_text}  ETA {eta}"
        head = f"{frac * 100:5.1f}%"
        bar_width = width - len(head) - len(tail) - 3
        if bar_width >= 5:
            filled = int(frac * bar_width)
            return f"{head} [{'#' * filled}{'.' * (bar_width - filled)}]{tail}"
        return (head + tail)[:width]
    return f"{format_size(done)}  {rate_text}"[:width]


class Reporter:
    """Turns engine records into output: JSON lines on stdout, a progress bar on a terminal's stderr,
    or nothing while running (plain stderr that is a file or a pipe stays free of bar redraws)."""

    def __init__(self, json_mode: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json_mode = json_mode
        self.stdout = stdout
        self.stderr = stderr
        self.bar = not json_mode and _isatty(stderr)
        from app.manager.rate_meter import RateMeter

        self.meter: RateMeter = RateMeter()
        self.last_draw = 0.0
        self.drawn = False
        self.last: FileTransferRecord | None = None
        self.secret: str | None = None  # the proxy password given on the command line, never printed

    def record(self, rec: FileTransferRecord) -> None:
        self.last = rec
        if self.json_mode:
            self._json(record_to_json(rec))
        elif self.bar:
            now = time.monotonic()
            self.meter.add(now, rec.transferred_bytes)
            if rec.status.is_terminal or now - self.last_draw >= REDRAW_INTERVAL:
                self.last_draw = now
                self._draw(rec)

    def _draw(self, rec: FileTransferRecord) -> None:
        width = _terminal_width(self.stderr)
        line = format_progress(rec.transferred_bytes, rec.total_size, self.meter.rate(), width - 1)
        self.stderr.write("\r" + line.ljust(width - 1))
        self.stderr.flush()
        self.drawn = True

    def end_line(self) -> None:
        """Leave the bar's line, so messages after it start on a fresh one."""
        if self.drawn:
            self.stderr.write("\n")
            self.stderr.flush()
            self.drawn = False

    def complete(self, payload: str | None, file_path: str) -> None:
        if self.json_mode:
            self._json({"event": "complete", "payload": payload, "file_path": file_path})

    def message(self, text: str) -> None:
        self.end_line()
        print(f"{PROG}: {self.scrub(text)}", file=self.stderr, flush=True)

    def scrub(self, text: str) -> str:
        """``text`` without the proxy password of this run (the engine and the manager redact it already; this is
        the last line of defence before a terminal or a log file)."""
        if self.secret:
            from app.manager.network import scrub_password

            return scrub_password(text, self.secret)
        return text

    def _json(self, obj: dict[str, Any]) -> None:
        self.stdout.write(self.scrub(json.dumps(obj, ensure_ascii=False)) + "\n")
        self.stdout.flush()


def record_to_json(rec: FileTransferRecord) -> dict[str, Any]:
    """The --json shape of one record (stable field names; the error text is redacted)."""
    error = None
    if rec.error is not None:
        error = error_to_json(rec.error)
    return {
        "task_id": str(rec.task_id), "status": rec.status.name.lower(), "direction": rec.direction.value,
        "file_name": rec.file_name, "file_path": rec.file_path, "transferred_bytes": rec.transferred_bytes,
        "total_size": rec.total_size, "progress": round(rec.progress, 6), "error": error,
    }


def error_to_json(err: MeowError) -> dict[str, Any]:
    from app.engine.redact import redact_text
    from app.manager.error_text import code_name

    return {"code": code_name(err), "value": int(err.code), "message": redact_text(err.msg),
            "http_status": err.status}


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _terminal_width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80
    return max(20, columns) if columns > 0 else 80  # 0 = the terminal did not say (e.g. a fresh pty)


# ---------------------------------------------------------------------------------------------- running
class _Interrupted(Exception):
    """SIGINT/SIGTERM arrived while the CLI was still preparing (before a task existed)."""


class _Run:
    """Shared state between the manager's callbacks (delivered on our loop) and the main coroutine."""

    def __init__(self, reporter: Reporter) -> None:
        import asyncio

        self.reporter = reporter
        self.done = asyncio.Event()
        self.stop = asyncio.Event()
        self.signals: list[int] = []
        self.final: FileTransferRecord | None = None
        self.job_id: str | None = None

    def on_record(self, job: Job, rec: FileTransferRecord) -> None:
        self.reporter.record(rec)
        if rec.status.is_terminal:
            self.final = rec

    # ManagerListener: only the end of our job matters here
    def jobs_added(self, jobs: Sequence[Job]) -> None:
        pass

    def jobs_changed(self, jobs: Sequence[Job]) -> None:
        pass

    def jobs_removed(self, job_ids: Sequence[str]) -> None:
        pass

    def job_finished(self, job: Job) -> None:
        if job.id == self.job_id:
            self.finished(job)

    def finished(self, job: Job) -> None:
        self.done.set()

    def on_signal(self, signum: int) -> None:
        if self.signals:  # a second Ctrl-C while pausing: stop now; the checkpoint still allows a resume
            self.reporter.message("interrupted again, exiting immediately")
            os._exit(EXIT_INTERRUPTED)
        self.signals.append(signum)
        self.stop.set()


async def _until_stopped(aw: Awaitable[T], stop: asyncio.Event) -> T:
    """Await ``aw`` unless a signal comes first (then cancel it and raise _Interrupted)."""
    import asyncio
    import contextlib

    job = asyncio.ensure_future(aw)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({job, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not job.done():
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
        raise _Interrupted
    return job.result()


def _install_signals(loop: asyncio.AbstractEventLoop, handler: Callable[[int], None]) -> Callable[[], None]:
    """SIGINT and SIGTERM call ``handler`` on the loop; returns the undo function. Falls back to
    signal.signal where the loop cannot (Windows)."""
    import signal

    installed: list[int] = []
    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, handler, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            previous[signum] = signal.signal(
                signum, lambda s, _f: loop.call_soon_threadsafe(handler, s))

    def undo() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)
        for signum, old in previous.items():
            signal.signal(signum, old)

    return undo


async def run_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO,
                      network: tuple[NetworkSettings | None, str | None] = (None, None)) -> int:
    """Run one download or upload to the end, a failure or a signal; returns the exit status. ``network``: the
    settings and proxy password from ``--proxy/--noproxy/--cacert`` (:func:`network_from_args`)."""
    import asyncio

    loop = asyncio.get_running_loop()
    state = _Run(Reporter(args.json, stdout, stderr))
    state.reporter.secret = network[1]
    undo = _install_signals(loop, state.on_signal)
    try:
        return await _run(args, state, *network)
    except _Interrupted:
        state.reporter.message("interrupted")
        return EXIT_INTERRUPTED
    finally:
        state.reporter.end_line()
        undo()


async def _run(args: argparse.Namespace, state: _Run, network: NetworkSettings | None = None,
               proxy_password: str | None = None) -> int:
    """Run the command as a job of the shared history (the app shows it and can resume it), on this process's
    own TransferManager, which runs only this job."""
    import asyncio
    import contextlib
    import signal

    from app.engine.redact import redact_url
    from app.manager.database import DatabaseError
    from app.manager.error_text import describe_error
    from app.manager.jobs import JobOptions, JobStatus
    from app.manager.manager import ManagerError, TransferManager

    reporter = state.reporter
    shown_url = redact_url(args.url)
    manager = TransferManager()
    if network is not None:
        try:  # before open(): the engine starts with these; the password is this run's only, never in the keyring
            await manager.set_network(network, password=proxy_password, remember=False)
        except ManagerError as exc:
            reporter.message(f"cannot start: {exc}")
            return EXIT_USAGE if exc.usage else EXIT_FAILED
    try:
        await _until_stopped(manager.open(restore=False), state.stop)
    except DatabaseError as exc:
        reporter.message(f"cannot start: {exc}")
        return EXIT_FAILED
    try:
        manager.add_record_listener(state.on_record)
        manager.add_listener(state)
        options = JobOptions(connections=args.connections, chunk_size=args.chunk_size,
                             sha256=getattr(args, "sha256", None), rate_limit=args.limit_rate)
        manager.retries = args.retries
        needs_secret = bool(args.header) or redact_url(args.url) != args.url
        if needs_secret and not await manager.secrets.probe():
            # The CLI never needs a job's signed URL or headers after it exits (a rerun passes them again), so
            # memory is fine for those; account secrets still need a keyring and fail clearly without one.
            # Plain URLs skip the probe: keyring's backend discovery costs ~0.1 s of start-up.
            manager.secrets.allow_session_only()
        try:
            if args.command == "download":
                output = args.output if args.output is not None else os.getcwd() + os.sep
                job = await _until_stopped(manager.add_download(args.url, output, options=options,
                                                                headers=args.header, new_name=False), state.stop)
            else:
                job = await _until_stopped(manager.add_upload(args.file, args.url, options=options,
                                                              headers=args.header), state.stop)
        except ManagerError as exc:
            reporter.message(f"cannot start: {exc}")
            return EXIT_USAGE if exc.usage else EXIT_FAILED
        state.job_id = job.id
        if job.status.is_finished:  # it failed at once (e.g. the engine refused the task)
            state.finished(job)
        waiter = asyncio.ensure_future(state.done.wait())
        stopper = asyncio.ensure_future(state.stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
        if not state.done.is_set():
            with contextlib.suppress(ManagerError):  # it may have finished or failed in the meantime
                await manager.pause([job.id])
            await manager.close()  # flushes the checkpoint: the next run (or the app) resumes from here
            name = signal.Signals(state.signals[0]).name if state.signals else "signal"
            reporter.message(f"interrupted ({name}); run the same command again to resume")
            return EXIT_INTERRUPTED
    finally:
        await manager.close()
    rec = state.final
    if job.status is JobStatus.COMPLETED:
        reporter.complete(job.result, job.local_path)
        reporter.end_line()
        if not args.json:
            _print_success(args, job, rec, reporter)
        return EXIT_OK
    if rec is not None and rec.error is not None:
        reporter.message(f"{args.command} of {shown_url} failed: {describe_error(rec.error)}")
    elif job.error:
        reporter.message(f"{args.command} of {shown_url} failed: {job.error}")
    else:
        reporter.message(f"{args.command} of {shown_url} ended without completing (status {job.status.value})")
    return EXIT_FAILED


def _print_success(args: argparse.Namespace, job: Job, rec: FileTransferRecord | None,
                   reporter: Reporter) -> None:
    from app.sizes import format_size

    size = format_size(rec.total_size if rec is not None else job.total_bytes)
    if args.command == "download":
        reporter.message(f"saved {size} to {job.local_path}")
        return
    if job.result is not None:
        print(job.result, file=reporter.stdout, flush=True)
        reporter.message(f"uploaded {size}; file id printed on stdout")
    else:
        reporter.message(f"uploaded {size}; the server sent no file id")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rusty-cat-cli``; returns the exit status instead of exiting, so tests can call it.

    Arguments are parsed before anything heavy is imported: ``--help``, ``--version`` and usage errors answer at
    once."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help/--version (0) or a usage error (2): argparse has printed already
        code = exc.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    sub: argparse.ArgumentParser = args.subparser
    if args.command == "accounts":
        return cli_accounts.run(args)
    try:
        check_url(args.url)
        if args.command == "download" and args.output is not None and not args.output.strip():
            raise UsageError("-o/--output needs a file or directory name")
        if args.command == "upload":
            from app.manager.manager import ManagerError, check_upload_source

            try:
                check_upload_source(args.file)
            except ManagerError as exc:
                raise UsageError(f"upload FILE: {exc}") from None
        network = network_from_args(args)
    except UsageError as exc:
        sub.print_usage(sys.stderr)
        print(f"{sub.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    import asyncio

    try:
        return asyncio.run(run_command(args, sys.stdout, sys.stderr, network))
    except KeyboardInterrupt:  # Ctrl-C before the loop's handler was installed
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def __getattr__(name: str) -> object:
    """``RateMeter`` stays importable from here (older callers and tests) without being imported at start-up."""
    if name == "RateMeter":
        from app.manager.rate_meter import RateMeter

        return RateMeter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
