"""Seed scenarios about the public API surface: facade, errors/statuses, logs, config, task builders.

Ports of seed-behavior.md §9.2: api_facade_surface_test, error_and_status_branch_test, log_facade_test,
log_and_record_api_test, meow_config_test, pounce_builder_api_surface_test, pounce_builder_branch_test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from app.engine import api
from app.engine.api import (
    BreakpointDownload,
    BreakpointDownloadHttpConfig,
    BreakpointUpload,
    DefaultStyleUpload,
    Direction,
    DownloadPounceBuilder,
    FileTransferRecord,
    GlobalProgressListenerId,
    InnerErrorCode,
    Log,
    LogLevel,
    MeowClient,
    MeowConfig,
    MeowError,
    RangeIgnoredPolicy,
    StandardRangeDownload,
    TaskId,
    TransferSnapshot,
    TransferStatus,
    UploadPounceBuilder,
    debug_log_listener_active,
    emit,
    emit_lazy,
    set_debug_log_listener,
    try_set_debug_log_listener,
)
from app.engine.errors import RETRYABLE_CODES
from tests.support.engine_helpers import Recorder, closed_client, fast_config
from tests.support.http_server import TestHttpServer


@pytest.fixture
def no_log_listener() -> Iterator[None]:
    """The debug-log listener is process-global: start and end every test that touches it without one."""
    set_debug_log_listener(None)
    yield
    set_debug_log_listener(None)


# ------------------------------------------------------------------------------ api_facade_surface


@pytest.mark.timeout(10)
def test_api_facade_exports_and_constructs_core_types() -> None:
    """Port of api_facade_surface_test: every core type is reachable from the facade and constructible.

    The seed's DefaultHttpTransfer backend has no public counterpart in the port (it could never be plugged into
    MeowClient, weakness #28); the default protocols stand in for it.
    """
    for name in api.__all__:
        assert hasattr(api, name), name
    client = MeowClient(MeowConfig())
    assert not client.is_closed()
    assert isinstance(StandardRangeDownload(), BreakpointDownload)
    upload = DefaultStyleUpload()
    assert isinstance(upload, BreakpointUpload)
    assert upload.category == ""
    assert BreakpointDownloadHttpConfig().range_accept == "application/octet-stream"
    assert TransferStatus.PENDING.as_i32() == 0
    assert str(LogLevel.WARN) == "WARN"
    err = MeowError(InnerErrorCode.HTTP_ERROR, "boom")
    assert (err.code, err.msg) == (InnerErrorCode.HTTP_ERROR, "boom")
    assert isinstance(err, Exception)
    assert TransferSnapshot() == TransferSnapshot(0, 0, ())
    assert Direction.UPLOAD != Direction.DOWNLOAD
    assert TaskId() != TaskId()
    assert GlobalProgressListenerId() != GlobalProgressListenerId()


# ------------------------------------------------------------------------------ error_and_status_branch


@pytest.mark.timeout(10)
def test_meow_error_constructors_display_and_source() -> None:
    """Port of error_and_status_branch_test::meow_error_constructors_display_and_source_branches.

    Python API: one MeowError(code, msg=""); the seed's ``source()`` chain is the exception's ``__cause__``.
    """
    via_new = MeowError(321, "new-path")
    assert via_new.code == 321
    assert via_new.msg == "new-path"
    assert "msg=new-path" in str(via_new)

    via_code = MeowError(InnerErrorCode.PARAMETER_EMPTY)
    assert via_code.code == InnerErrorCode.PARAMETER_EMPTY
    assert via_code.msg == ""
    assert str(via_code) == "MeowError(code=102)"
    assert "msg=" not in str(via_code)

    with_msg = MeowError(InnerErrorCode.INVALID_TASK_STATE, "invalid state branch")
    assert str(with_msg) == "MeowError(code=117, msg=invalid state branch)"

    source = OSError("io source branch")
    with pytest.raises(MeowError) as info:
        try:
            raise source
        except OSError as exc:
            raise MeowError(InnerErrorCode.IO_ERROR, "io failed") from exc
    assert info.value.code == InnerErrorCode.IO_ERROR
    assert info.value.__cause__ is source


@pytest.mark.timeout(10)
def test_meow_error_equality_is_code_and_message() -> None:
    """Port of error_and_status_branch_test::meow_error_partial_eq_and_neq_branches."""
    assert MeowError(InnerErrorCode.HTTP_ERROR, "same") == MeowError(InnerErrorCode.HTTP_ERROR, "same")
    assert hash(MeowError(InnerErrorCode.HTTP_ERROR, "same")) == hash(MeowError(InnerErrorCode.HTTP_ERROR, "same"))
    assert MeowError(InnerErrorCode.HTTP_ERROR, "same") != MeowError(InnerErrorCode.IO_ERROR, "same")
    assert MeowError(InnerErrorCode.HTTP_ERROR, "m1") != MeowError(InnerErrorCode.HTTP_ERROR, "m2")
    # Only transport errors and status errors are retryable by default (seed §6).
    assert {InnerErrorCode.HTTP_ERROR, InnerErrorCode.RESPONSE_STATUS_ERROR} == RETRYABLE_CODES


@pytest.mark.timeout(10)
def test_transfer_status_as_i32_covers_all_variants() -> None:
    """Port of error_and_status_branch_test::transfer_status_as_i32_covers_all_enum_variants.

    The port's Failed status carries its error in FileTransferRecord.error instead of inside the status.
    """
    expected = {"NONE": -1, "PENDING": 0, "TRANSMISSION": 1, "PAUSED": 2, "COMPLETE": 3, "FAILED": 4, "CANCELED": 5}
    assert {s.name: s.as_i32() for s in TransferStatus} == expected
    assert {s for s in TransferStatus if s.is_terminal} == {
        TransferStatus.COMPLETE, TransferStatus.FAILED, TransferStatus.CANCELED}


@pytest.mark.timeout(10)
def test_error_codes_keep_seed_numbers() -> None:
    """Port of error_and_status_branch_test (the code table it relies on, seed-behavior.md §2.8): the numbers
    are a public contract."""
    expected = {
        "UNKNOWN": -1, "SUCCESS": 0, "RUNTIME_CREATION_FAILED": 101, "PARAMETER_EMPTY": 102, "DUPLICATE_TASK": 103,
        "ENQUEUE_ERROR": 104, "IO_ERROR": 105, "HTTP_ERROR": 106, "CLIENT_CLOSED": 107, "TASK_NOT_FOUND": 108,
        "RESPONSE_STATUS_ERROR": 109, "MISSING_OR_INVALID_CONTENT_LENGTH": 110, "COMMAND_SEND_FAILED": 111,
        "COMMAND_RESPONSE_FAILED": 112, "RESPONSE_PARSE_ERROR": 113, "INVALID_RANGE": 114, "FILE_NOT_FOUND": 115,
        "CHECKSUM_MISMATCH": 116, "INVALID_TASK_STATE": 117, "LOCK_POISONED": 118, "HTTP_CLIENT_BUILD_FAILED": 119,
    }
    for name, code in expected.items():
        assert int(InnerErrorCode[name]) == code


# ------------------------------------------------------------------------------ log_facade


@pytest.mark.timeout(10)
def test_log_listener_register_duplicate_and_panic_suppression(no_log_listener: None) -> None:
    """Port of log_facade_test::log_listener_register_duplicate_and_panic_suppression_paths.

    A Python listener "panics" by raising; emit swallows it.
    """
    assert not debug_log_listener_active()
    lazy_calls: list[int] = []

    def make() -> Log:
        lazy_calls.append(1)
        return Log.debug("log_test", "no listener lazy path")

    emit(Log(LogLevel.INFO, "log_test", "no listener path"))
    emit_lazy(make)
    assert lazy_calls == [], "emit_lazy must not build the message without a listener"

    seen: list[Log] = []

    def listener(entry: Log) -> None:
        seen.append(entry)
        if entry.tag == "panic_tag":
            raise RuntimeError("listener panic for suppression test")

    try_set_debug_log_listener(listener)
    assert debug_log_listener_active()
    emit(Log(LogLevel.INFO, "normal_tag", "emit path"))
    emit_lazy(lambda: Log(LogLevel.WARN, "lazy_tag", "emit_lazy path"))
    emit(Log(LogLevel.DEBUG, "panic_tag", "panic suppression path"))  # must not raise
    assert [e.tag for e in seen] == ["normal_tag", "lazy_tag", "panic_tag"]

    with pytest.raises(api.DebugLogListenerError) as info:
        try_set_debug_log_listener(lambda _entry: None)
    assert str(info.value) == "debug log listener already set"
    set_debug_log_listener(None)
    assert not debug_log_listener_active()


# ------------------------------------------------------------------------------ log_and_record_api


@pytest.mark.timeout(10)
def test_log_getters_and_display() -> None:
    """Port of log_and_record_api_test (Log part): getters, Display "[ts] LEVEL [tag] message".

    The seed's ``into_message()`` is the plain ``message`` attribute in Python.
    """
    entry = Log(LogLevel.INFO, "my_tag", "hello world", timestamp_ms=1234)
    assert (entry.level, entry.tag, entry.message, entry.timestamp_ms) == (LogLevel.INFO, "my_tag", "hello world", 1234)
    assert str(entry) == "[1234] INFO [my_tag] hello world"
    dbg = Log.debug("t", "m")
    assert dbg.level is LogLevel.DEBUG
    assert dbg.timestamp_ms > 0
    assert [str(level) for level in LogLevel] == ["DEBUG", "INFO", "WARN"]


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_record_getters_from_live_download(tmp_path: Path) -> None:
    """Port of log_and_record_api_test (record part): records of a live download carry name, total, progress.

    New: records also carry ``transferred_bytes``; the HEAD total is known on every record after the probe.
    """
    data = bytes(range(256)) * 64  # 16 KiB
    with TestHttpServer() as srv:
        srv.add_file("/rec.bin", data)
        client = MeowClient(fast_config())
        try:
            rec = Recorder()
            task = DownloadPounceBuilder("rec.bin", tmp_path / "rec.bin", 1024, srv.url("/rec.bin")).build()
            tid = await client.try_enqueue(task, rec.progress, rec.complete)
            final = await rec.wait_terminal(tid)
        finally:
            await closed_client(client)
    assert final.status is TransferStatus.COMPLETE
    transmitting = [r for r in rec.of(tid) if r.status is TransferStatus.TRANSMISSION]
    assert transmitting
    for r in rec.of(tid):
        assert isinstance(r, FileTransferRecord)
        assert r.file_name == "rec.bin"
        assert r.direction is Direction.DOWNLOAD
        assert r.file_sign == ""
        assert 0.0 <= r.progress <= 1.0
        assert r.transferred_bytes >= 0
        if r.total_size:
            assert r.transferred_bytes <= r.total_size
    assert all(r.total_size == len(data) for r in transmitting)
    assert final.progress == 1.0
    assert final.transferred_bytes == final.total_size == len(data)


# ------------------------------------------------------------------------------ meow_config


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_meow_config_defaults_and_builder_round_trip() -> None:
    """Port of meow_config_test::meow_config_default_and_builder_paths_work_as_expected.

    Python API: frozen dataclass fields instead of getters, ``MeowConfig.builder()...build()`` instead of
    ``with_*``; durations are seconds (timedelta accepted).
    """
    default = MeowConfig()
    assert default == MeowConfig.new(2, 2)
    assert (default.max_upload_concurrency, default.max_download_concurrency) == (2, 2)
    assert default.http_timeout == 5.0
    assert default.tcp_keepalive == 30.0
    assert default.breakpoint_download_http.range_accept == "application/octet-stream"
    assert default.breakpoint_download_http.range_ignored is RangeIgnoredPolicy.RESTART
    assert (default.command_queue_capacity, default.worker_event_queue_capacity) == (128, 256)
    assert default.http_client is None

    custom_bp = BreakpointDownloadHttpConfig(range_accept="application/custom-binary")
    async with httpx.AsyncClient() as injected:
        cfg = (
            MeowConfig.builder()
            .max_upload_concurrency(3)
            .max_download_concurrency(4)
            .http_client(injected)
            .http_timeout(timedelta(seconds=11))
            .tcp_keepalive(17)
            .breakpoint_download_http(custom_bp)
            .command_queue_capacity(64)
            .worker_event_queue_capacity(512)
            .build()
        )
        assert (cfg.max_upload_concurrency, cfg.max_download_concurrency) == (3, 4)
        assert cfg.http_client is injected
        assert cfg.http_timeout == 11.0
        assert cfg.tcp_keepalive == 17.0
        assert cfg.breakpoint_download_http == custom_bp
        assert (cfg.command_queue_capacity, cfg.worker_event_queue_capacity) == (64, 512)
        assert "http_client=.." in repr(cfg)
        assert MeowConfig.new(3, 4).replace(http_timeout=11).http_timeout == 11.0


# ------------------------------------------------------------------------------ pounce_builder_api_surface


@pytest.mark.timeout(10)
def test_download_builder_chain_methods_show_in_task(tmp_path: Path) -> None:
    """Port of pounce_builder_api_surface_test::download_builder_all_chain_methods_take_effect_in_built_task.

    The download builder has no ``with_method`` (download is always HEAD + GET since seed commit 12ee6ef).
    """
    task = (
        DownloadPounceBuilder("origin.bin", tmp_path / "a.bin", 2048, "http://127.0.0.1/a")
        .with_url("http://127.0.0.1/b")
        .with_file_path(tmp_path / "b.bin")
        .with_headers({"x-case": "download-surface"})
        .with_client_file_sign("client-sign-123")
        .with_breakpoint_download(StandardRangeDownload())
        .with_breakpoint_download_http(BreakpointDownloadHttpConfig(range_accept="application/custom-surface"))
        .with_max_chunk_retries(7)
        .build()
    )
    text = repr(task)
    assert "file_name: 'origin.bin'" in text
    assert "url: 'http://127.0.0.1/b'" in text
    assert str(tmp_path / "b.bin") in text
    assert "method: GET" in text
    assert "client_file_sign: 'client-sign-123'" in text
    assert "range_accept='application/custom-surface'" in text
    assert "max_chunk_retries: 7" in text
    assert "breakpoint_download: Some(" in text
    assert "x-case" in text
    assert task.headers == (("x-case", "download-surface"),)


@pytest.mark.timeout(10)
def test_upload_builder_chain_methods_show_in_task(tmp_path: Path) -> None:
    """Port of pounce_builder_api_surface_test::upload_builder_all_chain_methods_take_effect_and_build_success."""
    src_a, src_b = tmp_path / "a.bin", tmp_path / "b.bin"
    src_a.write_bytes(b"upload-surface-source-a")
    src_b.write_bytes(b"upload-surface-source-b-longer")
    task = (
        UploadPounceBuilder("up.bin", src_a, 4096)
        .with_url("http://127.0.0.1/upload")
        .with_file_path(src_b)
        .with_method("PUT")
        .with_headers({"x-case": "upload-surface"})
        .with_breakpoint_upload(DefaultStyleUpload(category="surface-cat"))
        .with_max_chunk_retries(9)
        .with_max_upload_prepare_retries(11)
        .build()
    )
    text = repr(task)
    assert "file_name: 'up.bin'" in text
    assert "url: 'http://127.0.0.1/upload'" in text
    assert "method: PUT" in text
    assert "max_chunk_retries: 9" in text
    assert "max_upload_prepare_retries: 11" in text
    assert "breakpoint_upload: Some(" in text
    assert "upload_source: None" in text
    assert task.total_size == len(b"upload-surface-source-b-longer")
    assert task.file_path == str(src_b)


@pytest.mark.timeout(10)
def test_upload_builder_from_bytes_shows_in_task() -> None:
    """Port of pounce_builder_api_surface_test (from_bytes part): total and in-memory source in the task text."""
    payload = b"from-bytes-surface" * 10
    task = UploadPounceBuilder.from_bytes("mem.bin", payload, 64).with_url("http://127.0.0.1/upload").build()
    text = repr(task)
    assert "upload_source: Some(Bytes" in text
    assert f"total_size: {len(payload)}" in text
    assert task.file_path == "mem.bin"
    assert task.upload_source == payload
    switched = UploadPounceBuilder("x.bin", "", 64).with_bytes(b"abc").with_url("http://127.0.0.1/u").build()
    assert switched.total_size == 3


# ------------------------------------------------------------------------------ pounce_builder_branch


@pytest.mark.timeout(10)
def test_upload_builder_build_missing_file_is_file_not_found(tmp_path: Path) -> None:
    """Port of pounce_builder_branch_test::upload_builder_build_nonexistent_file_hits_io_error_branch.

    New: build() raises MeowError(FILE_NOT_FOUND) instead of io::ErrorKind::NotFound.
    """
    builder = UploadPounceBuilder("x.bin", tmp_path / f"missing-{uuid.uuid4().hex}", 1024)
    with pytest.raises(MeowError) as info:
        builder.with_url("http://127.0.0.1:9/upload").build()
    assert info.value.code == InnerErrorCode.FILE_NOT_FOUND


@pytest.mark.timeout(10)
def test_upload_builder_chunk_size_zero_normalised(tmp_path: Path) -> None:
    """Port of pounce_builder_branch_test::upload_builder_chunk_size_zero_is_normalized_to_default."""
    src = tmp_path / "src.bin"
    src.write_bytes(b"\x01" * 16)
    task = UploadPounceBuilder("x.bin", src, 0).with_url("http://127.0.0.1:9/upload").build()
    assert "chunk_size: 1048576" in repr(task)
    big = UploadPounceBuilder("x.bin", src, 4096).with_url("http://127.0.0.1:9/upload").build()
    assert big.chunk_size == 4096, "a chunk larger than the file is kept"


@pytest.mark.timeout(10)
def test_download_builder_chunk_zero_and_retry_zero_kept(tmp_path: Path) -> None:
    """Port of pounce_builder_branch_test::download_builder_chunk_size_zero_and_retry_zero_paths_are_kept."""
    task = DownloadPounceBuilder("d.bin", tmp_path / "d.bin", 0, "http://127.0.0.1:9/d").with_max_chunk_retries(0)
    text = repr(task.build())
    assert "chunk_size: 1048576" in text
    assert "max_chunk_retries: 0" in text
