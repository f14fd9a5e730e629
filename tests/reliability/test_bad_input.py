"""Bad input at the engine API and through ``rusty-cat-cli download``: every case ends at once with a clear error or
a safe result, and nothing is written outside the folder the caller chose.

Already covered elsewhere (not repeated here): empty names / URLs / paths and the seed's invalid-input cases
(tests/engine/test_seed_invalid_input.py), a destination that is a directory or sits under a file
(tests/engine/test_faults_download.py), a plain zero-length download (test_weakness_fixes.py w17), listed invalid
config values (w20), CLI usage errors and a few Content-Disposition names (tests/test_cli.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import checkpoint
from app.engine.api import (
    BreakpointDownloadHttpConfig,
    DownloadPounceBuilder,
    InnerErrorCode,
    MeowConfig,
    MeowConfigBuilder,
    MeowError,
    TransferStatus,
    UploadPounceBuilder,
)
from app.filenames import FS_NAME_MAX, MAX_NAME_BYTES, sanitize_filename
from tests.reliability.scale import scaled
from tests.support.engine_helpers import ROOT, Recorder, failed_with, meow
from tests.support.http_server import Fault, ScriptedServer, TestHttpServer

pytestmark = pytest.mark.timeout(30)
S = TransferStatus
E = InnerErrorCode
QUICK = 10.0  # seconds: "at once" for a case that must not retry for long, let alone hang


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def _run(task: Any, timeout: float = QUICK) -> tuple[Any, float]:
    """Enqueue ``task`` on a fresh client and wait for its terminal record; (record, seconds)."""
    rec = Recorder()
    t0 = time.monotonic()
    async with meow() as client:
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        final = await rec.wait_terminal(tid, timeout)
    return final, time.monotonic() - t0


def _download(url: str, dest: Path, retries: int = 1) -> Any:
    return DownloadPounceBuilder(dest.name, dest, 4096, url).with_max_chunk_retries(retries).build()


# ------------------------------------------------------------------------------------------------------- URLs
@pytest.mark.asyncio
@pytest.mark.parametrize(("url", "fragment"), [
    ("ftp://127.0.0.1/f.bin", "unsupported URL scheme 'ftp'"),
    ("file:///etc/passwd", "unsupported URL scheme 'file'"),
    ("javascript:alert(1)", "unsupported URL scheme 'javascript'"),
    ("data:text/plain,hello", "unsupported URL scheme 'data'"),
    ("ws://127.0.0.1/socket", "unsupported URL scheme 'ws'"),
    ("//127.0.0.1/f.bin", "unsupported URL scheme 'none'"),
    ("127.0.0.1/f.bin", "unsupported URL scheme"),
    ("http:///f.bin", "no host"),
    ("https://", "no host"),
    ("http://[::1/f.bin", "malformed URL"),
])
@pytest.mark.parametrize("direction", ["download", "upload"])
async def test_unusable_urls_are_refused_before_any_work(url: str, fragment: str, direction: str,
                                                         tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    out = tmp_path / "out"
    out.mkdir()
    task = (_download(url, out / "f.bin") if direction == "download"
            else UploadPounceBuilder("src.bin", src, 4096).with_url(url).build())
    async with meow() as client:
        with pytest.raises(MeowError) as info:
            await client.try_enqueue(task)
        assert (await client.snapshot()).queued_groups == 0
    assert info.value.code is E.PARAMETER_EMPTY and fragment in info.value.msg
    assert _files(out) == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("raw", "fragment"), [
    ("/f\x00x", "non-printable"),
    ("/f\r\nX-Evil: injected", "non-printable"),
])
async def test_control_characters_in_a_url_fail_cleanly_without_header_injection(
        raw: str, fragment: str, srv: TestHttpServer, tmp_path: Path) -> None:
    srv.add_file("/f", b"data")
    final, took = await _run(_download(srv.base_url + raw, tmp_path / "f.bin"))
    msg = failed_with(final, E.PARAMETER_EMPTY, fragment)
    assert "unusable URL" in msg and took < QUICK
    assert srv.requests == []  # nothing sent: no request smuggled a header in
    assert _files(tmp_path) == []


@pytest.mark.asyncio
async def test_an_invalid_ip_address_fails_cleanly(tmp_path: Path) -> None:
    final, _ = await _run(_download("http://256.256.256.256/f.bin", tmp_path / "f.bin"))
    failed_with(final, E.PARAMETER_EMPTY, "Invalid IPv4 address")
    assert _files(tmp_path) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("direction", ["download", "upload"])
async def test_a_port_out_of_range_is_a_clear_parameter_error(direction: str, tmp_path: Path) -> None:
    url = "http://127.0.0.1:99999/f.bin"
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    task = (_download(url, tmp_path / "f.bin") if direction == "download"
            else UploadPounceBuilder("src.bin", src, 4096).with_url(url).with_max_upload_prepare_retries(0).build())
    try:
        final, _ = await _run(task)
    except MeowError as err:  # refused at enqueue: the fix this test asks for
        assert err.code is E.PARAMETER_EMPTY and ("port" in err.msg.lower() or "malformed" in err.msg), err
        return
    failed_with(final, E.PARAMETER_EMPTY)


@pytest.mark.asyncio
@pytest.mark.parametrize("spelling", ["HTTP://127.0.0.1:{port}/dir/f.bin", "http://user:pw@127.0.0.1:{port}/dir/f.bin#frag",
                                      "http://127.0.0.1:{port}/dir/f.bin?q=%C3%A9&x=é&empty=&&"])
async def test_odd_but_valid_urls_download_correctly(spelling: str, srv: TestHttpServer, tmp_path: Path) -> None:
    data = os.urandom(40_000)
    srv.add_file("/dir/f.bin", data)
    final, _ = await _run(_download(spelling.format(port=srv.port), tmp_path / "f.bin"))
    assert final.status is S.COMPLETE, final.error
    assert (tmp_path / "f.bin").read_bytes() == data
    assert all(r.path == "/dir/f.bin" and "frag" not in r.query for r in srv.requests)  # a fragment is never sent


# --------------------------------------------------------------------------------------- directories and files
@pytest.mark.parametrize("kind", ["directory", "fifo", "/dev/zero", "/dev/null", "missing", "dangling-symlink"])
def test_upload_sources_that_are_not_regular_files_are_refused(kind: str, tmp_path: Path) -> None:
    """A FIFO would block the reader forever and /dev/zero never ends: both are refused before anything opens them."""
    path = {"directory": tmp_path, "/dev/zero": Path("/dev/zero"), "/dev/null": Path("/dev/null")}.get(
        kind, tmp_path / "src")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling-symlink":
        os.symlink(tmp_path / "nowhere", path)
    with pytest.raises(MeowError) as info:
        UploadPounceBuilder("src", path, 4096).with_url("http://127.0.0.1:9/up").build()
    expected = {"missing": (E.FILE_NOT_FOUND, "not found"), "dangling-symlink": (E.FILE_NOT_FOUND, "not found"),
                "directory": (E.IO_ERROR, "directory")}.get(kind, (E.IO_ERROR, "not a regular file"))
    assert (info.value.code, expected[1] in info.value.msg) == (expected[0], True), info.value


@pytest.mark.asyncio
async def test_upload_source_replaced_by_a_fifo_after_build_is_refused_at_enqueue(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    task = UploadPounceBuilder("src.bin", src, 4096).with_url("http://127.0.0.1:9/up").build()
    src.unlink()
    os.mkfifo(src)  # opening it for reading would block until a writer appears: it must never be opened
    async with meow() as client:
        with pytest.raises(MeowError) as info:
            await asyncio.wait_for(client.try_enqueue(task), QUICK)
    assert info.value.code is E.IO_ERROR and "not a regular file" in info.value.msg


@pytest.mark.asyncio
@pytest.mark.parametrize("which", ["part", "checkpoint"])
async def test_a_directory_where_the_partial_file_goes_is_a_clear_error(which: str, srv: TestHttpServer,
                                                                        tmp_path: Path) -> None:
    srv.add_file("/f", b"data")
    dest = tmp_path / "f.bin"
    blocker = Path(checkpoint.part_path(str(dest)) if which == "part" else checkpoint.checkpoint_path(str(dest)))
    blocker.mkdir()
    (blocker / "keep.txt").write_text("not ours")
    final, took = await _run(_download(srv.url("/f"), dest))
    msg = failed_with(final, E.IO_ERROR, "Is a directory")
    assert str(blocker) in msg and took < QUICK
    assert (blocker / "keep.txt").read_text() == "not ours"  # never deleted or replaced
    assert not dest.exists()


# ------------------------------------------------------------------------------------------------- zero bytes
@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["no-head", "chunked", "no-validators", "checksum"])
async def test_zero_byte_downloads_complete_whatever_the_server_does(server: str, srv: TestHttpServer,
                                                                     tmp_path: Path) -> None:
    """w17 covers a plain empty file; here the probe falls back to a range GET (answered 416 */0), the body is
    chunked with no length, the server gives no ETag/Last-Modified, or a SHA-256 is expected."""
    if server == "no-validators":
        srv.add_file("/empty", b"", etag=None, last_modified=None, accept_ranges=False)
    else:
        srv.add_file("/empty", b"")
    if server == "no-head":
        srv.add_fault(Fault("no_head", times=-1))
    elif server == "chunked":
        srv.add_fault(Fault("no_content_length", times=-1))
    builder = DownloadPounceBuilder("e.bin", tmp_path / "e.bin", 4096, srv.url("/empty"))
    if server == "checksum":
        builder = builder.with_expected_checksum("sha256", hashlib.sha256(b"").hexdigest())
    final, _ = await _run(builder.build())
    assert final.status is S.COMPLETE, final.error
    assert (tmp_path / "e.bin").read_bytes() == b""
    assert _files(tmp_path) == ["e.bin"]  # no .part or checkpoint left
    assert final.total_size == 0 and final.progress == 1.0


@pytest.mark.asyncio
async def test_zero_byte_upload_is_refused_clearly_before_any_request(srv: TestHttpServer, tmp_path: Path) -> None:
    """The seed's contract (ParameterEmpty for a zero-byte upload, tests/engine/test_seed_invalid_input.py), checked
    for what a user sees: an immediate error that says why, and no request."""
    src = tmp_path / "empty.bin"
    src.write_bytes(b"")
    async with meow() as client:
        for task in (UploadPounceBuilder("empty.bin", src, 4096).with_url(srv.url("/upload")).build(),
                     UploadPounceBuilder.from_bytes("empty.bin", b"", 4096).with_url(srv.url("/upload")).build()):
            with pytest.raises(MeowError) as info:
                await client.try_enqueue(task)
            assert info.value.code is E.PARAMETER_EMPTY and "0 bytes" in info.value.msg
    assert srv.requests == []


# ------------------------------------------------------------------------------------------------ huge headers
def _with_junk_header(status_line: bytes, headers: bytes, body: bytes, junk: int) -> bytes:
    return status_line + b"\r\n" + headers + b"X-Junk: " + b"a" * junk + b"\r\n\r\n" + body


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["head", "ranged-get", "upload-prepare"])
async def test_a_megabyte_of_response_headers_is_a_quick_clear_error(where: str, tmp_path: Path) -> None:
    """Control requests (httpx: the upload's prepare) stop reading a header block at 100 KiB ("Receive buffer too
    long"), the data path (http.client: probes and ranges) a header line at 64 KiB; the engine retries like any
    broken response, then fails with that reason: no hang, no huge allocation, nothing called complete."""
    huge = 1 << 20
    ok_head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nAccept-Ranges: bytes\r\nETag: \"e\"\r\n\r\n"
    if where == "head":
        responses = [_with_junk_header(b"HTTP/1.1 200 OK", b"Content-Length: 5\r\n", b"", huge)] * 6
    elif where == "ranged-get":
        bad = _with_junk_header(b"HTTP/1.1 206 Partial Content", b"Content-Range: bytes 0-4/5\r\nContent-Length: 5\r\n",
                                b"hello", huge)
        responses = [ok_head] + [bad] * 6
    else:
        responses = [_with_junk_header(b"HTTP/1.1 200 OK", b"Content-Type: application/json\r\nContent-Length: 14\r\n",
                                       b'{"nextByte":0}', huge)] * 6
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello")
    out = tmp_path / "out"
    out.mkdir()
    with ScriptedServer(responses) as server:
        if where == "upload-prepare":
            task = UploadPounceBuilder("src.bin", src, 4096).with_url(server.url("/upload")) \
                .with_max_upload_prepare_retries(1).build()
        else:
            task = _download(server.url("/f.bin"), out / "f.bin")
        final, took = await _run(task, timeout=20)
    failed_with(final, E.HTTP_ERROR, "Receive buffer too long" if where == "upload-prepare" else "head is too large")
    assert took < QUICK
    assert not (out / "f.bin").exists()


@pytest.mark.asyncio
async def test_a_60_kb_header_line_under_the_limit_is_just_read(tmp_path: Path) -> None:
    """The limits are httpx's 100 KiB header block (control requests) and http.client's 64 KiB header line (probes
    and ranges, as in requests and urllib3): a long but legal line under both is read."""
    head = _with_junk_header(b"HTTP/1.1 200 OK", b"Content-Length: 5\r\nAccept-Ranges: bytes\r\n", b"", 60_000)
    get = _with_junk_header(b"HTTP/1.1 206 Partial Content", b"Content-Range: bytes 0-4/5\r\nContent-Length: 5\r\n",
                            b"hello", 60_000)
    with ScriptedServer([head, get]) as server:
        final, _ = await _run(_download(server.url("/f.bin"), tmp_path / "f.bin"))
    assert final.status is S.COMPLETE, final.error
    assert (tmp_path / "f.bin").read_bytes() == b"hello"


# ----------------------------------------------------------------------------------------------- config values
_INT_FIELDS = {"max_upload_concurrency": (1, 1024), "max_download_concurrency": (1, 1024),
               "command_queue_capacity": (1, 1_000_000), "worker_event_queue_capacity": (1, 1_000_000),
               "max_chunk_concurrency": (1, 64), "rate_limit": (1, 1 << 50)}
_SECONDS_FIELDS = {"http_timeout": (0.001, 3600), "tcp_keepalive": (1, 7200), "progress_interval": (0, 60),
                   "retry_base_delay": (0, 60), "max_retry_after": (0, 86400)}


@st.composite
def invalid_config_values(draw: st.DrawFn) -> tuple[str, object]:
    name = draw(st.sampled_from(sorted(_INT_FIELDS) + sorted(_SECONDS_FIELDS)))
    lo, hi = _INT_FIELDS.get(name) or _SECONDS_FIELDS[name]
    wrong_type = st.one_of(st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2),
                           st.just(object()), st.floats(allow_nan=True).filter(math.isnan), st.just(math.inf))
    out_of_range = st.one_of(st.integers(max_value=math.floor(lo) - 1) if lo >= 1 else st.integers(max_value=-1),
                             st.integers(min_value=math.ceil(hi) + 1))
    if name in _SECONDS_FIELDS:
        out_of_range = st.one_of(out_of_range, st.floats(max_value=lo, exclude_max=True, allow_nan=False,
                                                         allow_infinity=False))
    else:
        wrong_type = st.one_of(wrong_type, st.floats(allow_nan=False).filter(lambda f: f != int(f) if math.isfinite(f)
                                                                             else True),
                               st.just(2.0))
    if name == "rate_limit":
        wrong_type = wrong_type.filter(lambda v: v is not None)
    return name, draw(st.one_of(wrong_type, out_of_range))


@settings(max_examples=scaled(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invalid_config_values())
def test_any_invalid_config_value_is_invalid_config_naming_the_field(case: tuple[str, object]) -> None:
    """Never a TypeError, ValueError or OverflowError from deep inside, never a config that builds anyway."""
    name, value = case
    with pytest.raises(MeowError) as info:
        MeowConfig(**{name: value})  # type: ignore[arg-type]
    assert info.value.code is E.INVALID_CONFIG and name in info.value.msg


@pytest.mark.parametrize("value", ["", "text/plain\r\nX-Evil: 1", "a\nb", "nul\0"])
def test_an_invalid_range_accept_header_is_invalid_config(value: str) -> None:
    with pytest.raises(MeowError) as info:
        MeowConfigBuilder().breakpoint_download_http(BreakpointDownloadHttpConfig(range_accept=value)).build()
    assert info.value.code is E.INVALID_CONFIG


# ----------------------------------------------------------------------------------- hostile names via the CLI
_LONG = "x" * 300 + ".bin"

#: (URL path as sent, Content-Disposition or None, the name that must be saved)
HOSTILE_NAMES = [
    ("/a/..%2F..%2Fescape.txt", None, "escape.txt"),
    ("/a/%2e%2e", None, "download"),
    ("/a/%5C..%5C..%5Cwin.txt", None, "win.txt"),
    ("/a/CON", None, "_CON"),
    ("/a/com1.tar.gz", None, "_com1.tar.gz"),
    ("/a/lpt%C2%B9.log", None, "_lpt¹.log"),
    ("/a/a%00b.txt", None, "ab.txt"),
    ("/a/%1B%5B31mred.txt", None, "[31mred.txt"),
    ("/a/%E2%80%AEgnp.exe", None, "gnp.exe"),
    ("/a/trailing.%20.%20", None, "trailing"),
    (f"/a/{_LONG}", None, "x" * (MAX_NAME_BYTES - 4) + ".bin"),
    ("/b/f.bin", "attachment; filename*=UTF-8''a%00b%07c.txt", "abc.txt"),
    ("/b/f.bin", "attachment; filename*=UTF-8''%E2%80%AEfdp.exe", "fdp.exe"),
    ("/b/f.bin", 'attachment; filename="' + "y" * 400 + '.txt"', "y" * (MAX_NAME_BYTES - 4) + ".txt"),
    ("/b/f.bin", 'attachment; filename="..\\\\..\\\\x.txt"', "x.txt"),
    ("/b/f.bin", "attachment; filename*=UTF-8''..%2F.ssh%2Fauthorized_keys", "authorized_keys"),
    ("/b/f.bin", "attachment; filename*=UTF-8''%2E%2E", "f.bin"),
    ("/b/f.bin", 'attachment; filename="LPT1"', "_LPT1"),
    ("/b/f.bin", 'attachment; filename="/etc/cron.d/evil"', "evil"),
]


def _assert_safe_name(name: str) -> None:
    assert name and name not in (".", "..") and "/" not in name and "\\" not in name
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in name), ascii(name)
    assert sanitize_filename(name) == name


@pytest.fixture
def cli_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """``parent/target``: the CLI downloads into target/; parent must end up holding nothing else."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    parent = tmp_path / "parent"
    parent.mkdir()
    return parent, parent / "target"


@pytest.mark.parametrize(("path", "disposition", "expected"), HOSTILE_NAMES,
                         ids=[f"{i}-{p[:24] if d is None else d[:40]!a}" for i, (p, d, _) in
                              enumerate(HOSTILE_NAMES)])
def test_hostile_names_from_the_network_are_saved_safely_inside_the_folder(
        path: str, disposition: str | None, expected: str, srv: TestHttpServer, cli_dirs: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    """In-process ``rusty-cat-cli download URL -o target/`` (the subprocess form is checked once below)."""
    from app.cli import main  # imported late: the CLI is being moved onto the TransferManager meanwhile

    parent, target = cli_dirs
    data = os.urandom(3000)
    srv.add_file(unquote(path), data, content_disposition=disposition)
    code = main(["download", srv.url(path), "-o", str(target) + os.sep])
    err = capsys.readouterr().err
    assert code == 0, err
    assert _files(parent) == ["target"]  # nothing beside the chosen folder
    assert _files(target) == [expected], err  # one file, no .part or checkpoint left
    _assert_safe_name(expected)
    assert (target / expected).read_bytes() == data


def test_longest_safe_name_leaves_room_for_the_engine_sidecars_and_a_unique_suffix() -> None:
    """The bug behind the overlong cases above: a name cut to 255 bytes could be saved, but not its
    ``.part.ckpt`` ("File name too long"), so such a download always failed."""
    longest = sanitize_filename("z" * 1000)
    assert len(longest.encode()) == MAX_NAME_BYTES
    worst = f"{longest} (9999){checkpoint.CHECKPOINT_SUFFIX}.tmp"
    assert len(worst.encode()) <= FS_NAME_MAX


@pytest.mark.timeout(60)
def test_hostile_names_through_the_real_cli_process(srv: TestHttpServer, cli_dirs: tuple[Path, Path]) -> None:
    """The installed entry point as a subprocess, run from inside the target (the default output is the current
    directory): a Content-Disposition that climbs out with an RTL override and a reserved name."""
    parent, target = cli_dirs
    target.mkdir()
    data = os.urandom(5000)
    srv.add_file("/x/f.bin", data,
                 content_disposition="attachment; filename*=UTF-8''" + quote("../../\u202eCON.txt", safe=""))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "app.cli", "download", srv.url("/x/f.bin")], cwd=target, env=env,
                            capture_output=True, text=True, timeout=50, check=False)
    assert result.returncode == 0, result.stderr
    assert _files(parent) == ["target"] and _files(target) == ["_CON.txt"]
    assert (target / "_CON.txt").read_bytes() == data
