"""Seed scenarios about invalid input and the small client APIs (listeners, debug log, ids, reprs).

Ports of seed-behavior.md §9.2: public_api_invalid_input_test, meow_client_additional_api_test,
meow_client_listener_misc_test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.api import (
    DownloadPounceBuilder,
    InnerErrorCode,
    Log,
    MeowClient,
    MeowConfig,
    MeowError,
    TransferSnapshot,
    UploadPounceBuilder,
    debug_log_listener_active,
    emit,
)
from tests.support.engine_helpers import closed_client, one_one
from tests.support.http_server import TestHttpServer

UNREACHABLE = "http://127.0.0.1:9/x"


async def expect_code(coro: object, code: InnerErrorCode) -> MeowError:
    with pytest.raises(MeowError) as info:
        await coro  # type: ignore[misc]
    assert info.value.code == code, info.value
    return info.value


async def rejects_task(task: object) -> None:
    """try_enqueue raises ParameterEmpty and the client stays open and usable."""
    client = MeowClient(one_one())
    try:
        await expect_code(client.try_enqueue(task, lambda _r: None, lambda _t, _p: None),  # type: ignore[arg-type]
                          InnerErrorCode.PARAMETER_EMPTY)
        assert not client.is_closed()
        assert (await client.snapshot()).queued_groups == 0
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ public_api_invalid_input: try_enqueue


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_enqueue_download_empty_file_name_is_parameter_empty(tmp_path: Path) -> None:
    """Port of public_api_invalid_input_test::enqueue_download_empty_file_name_returns_parameter_empty."""
    await rejects_task(DownloadPounceBuilder("", tmp_path / "a.bin", 1024, UNREACHABLE).build())


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_enqueue_download_empty_url_is_parameter_empty(tmp_path: Path) -> None:
    """Port of public_api_invalid_input_test::enqueue_download_empty_url_returns_parameter_empty."""
    await rejects_task(DownloadPounceBuilder("a.bin", tmp_path / "a.bin", 1024, "").build())


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_enqueue_download_empty_local_path_is_parameter_empty() -> None:
    """Port of public_api_invalid_input_test::enqueue_download_empty_local_path_returns_parameter_empty."""
    await rejects_task(DownloadPounceBuilder("a.bin", "", 1024, UNREACHABLE).build())


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_enqueue_upload_empty_url_is_parameter_empty(tmp_path: Path) -> None:
    """Port of public_api_invalid_input_test::enqueue_upload_empty_url_returns_parameter_empty."""
    src = tmp_path / "src.bin"
    src.write_bytes(b"x")
    await rejects_task(UploadPounceBuilder("up.bin", src, 1024).with_url("").build())


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_enqueue_upload_zero_byte_file_is_parameter_empty(tmp_path: Path) -> None:
    """Port of public_api_invalid_input_test::enqueue_upload_zero_byte_file_returns_parameter_empty."""
    src = tmp_path / "zero.bin"
    src.write_bytes(b"")
    await rejects_task(UploadPounceBuilder("zero.bin", src, 1024).with_url("http://127.0.0.1:9/up").build())
    await rejects_task(UploadPounceBuilder.from_bytes("zero.bin", b"", 1024).with_url("http://127.0.0.1:9/up").build())


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_enqueue_upload_empty_file_name_is_parameter_empty(tmp_path: Path) -> None:
    """Port of public_api_invalid_input_test::enqueue_upload_empty_file_name_returns_parameter_empty."""
    src = tmp_path / "src.bin"
    src.write_bytes(b"x")
    await rejects_task(UploadPounceBuilder("", src, 1024).with_url("http://127.0.0.1:9/up").build())


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_enqueue_upload_empty_source_path_is_rejected() -> None:
    """Port of public_api_invalid_input_test::enqueue_upload_empty_source_path_returns_parameter_empty.

    Either build() refuses the empty path (FileNotFound) or try_enqueue reports ParameterEmpty.
    """
    builder = UploadPounceBuilder("up.bin", "", 1024).with_url("http://127.0.0.1:9/up")
    try:
        task = builder.build()
    except MeowError as err:
        assert err.code == InnerErrorCode.FILE_NOT_FOUND
        return
    await rejects_task(task)


@pytest.mark.timeout(10)
def test_upload_builder_build_missing_file_is_file_not_found(tmp_path: Path) -> None:
    """Port of public_api_invalid_input_test::upload_builder_build_missing_file_returns_not_found_io_error.

    New: MeowError(FILE_NOT_FOUND) instead of io::ErrorKind::NotFound.
    """
    with pytest.raises(MeowError) as info:
        UploadPounceBuilder("nope.bin", tmp_path / "missing.bin", 1024).with_url(UNREACHABLE).build()
    assert info.value.code == InnerErrorCode.FILE_NOT_FOUND


# ------------------------------------------------------------------------------ public_api_invalid_input: closed client


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_enqueue_after_close_is_client_closed(tmp_path: Path) -> None:
    """Port of public_api_invalid_input_test::enqueue_after_client_close_returns_client_closed."""
    client = MeowClient(one_one())
    await client.close()
    task = DownloadPounceBuilder("late.bin", tmp_path / "late.bin", 1024, "http://127.0.0.1:9/late").build()
    await expect_code(client.try_enqueue(task, None, None), InnerErrorCode.CLIENT_CLOSED)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_snapshot_after_close_is_client_closed() -> None:
    """Port of public_api_invalid_input_test::snapshot_after_client_close_returns_client_closed."""
    client = MeowClient(one_one())
    await client.close()
    await expect_code(client.snapshot(), InnerErrorCode.CLIENT_CLOSED)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_second_close_is_client_closed() -> None:
    """Port of public_api_invalid_input_test::second_close_returns_client_closed (with a started scheduler)."""
    client = MeowClient(one_one())
    await client.snapshot()
    await client.close()
    await expect_code(client.close(), InnerErrorCode.CLIENT_CLOSED)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_is_closed_reflects_successful_close() -> None:
    """Port of public_api_invalid_input_test::is_closed_reflects_successful_close (is_closed() is sync)."""
    client = MeowClient(one_one())
    assert client.is_closed() is False
    await client.close()
    assert client.is_closed() is True


@pytest.mark.timeout(10)
def test_clear_global_listener_on_fresh_client() -> None:
    """Port of public_api_invalid_input_test::clear_global_listener_on_fresh_client_succeeds."""
    client = MeowClient(one_one())
    client.clear_global_listener()
    client.clear_global_listener()


@pytest.mark.asyncio
@pytest.mark.timeout(15)
async def test_control_apis_after_close_are_client_closed_with_prior_id(tmp_path: Path) -> None:
    """Port of public_api_invalid_input_test::control_apis_after_close_return_client_closed_even_with_prior_task_id."""
    client = MeowClient(one_one())
    task = DownloadPounceBuilder("ctrl.bin", tmp_path / "ctrl.bin", 1024, "http://127.0.0.1:9/unused").build()
    task_id = await client.try_enqueue(task, None, None)
    await client.close()
    for op in (client.pause, client.resume, client.cancel):
        await expect_code(op(task_id), InnerErrorCode.CLIENT_CLOSED)


# ------------------------------------------------------------------------------ public_api_invalid_input: config


@pytest.mark.timeout(10)
def test_zero_command_queue_capacity_is_invalid_config() -> None:
    """Port of public_api_invalid_input_test::meow_config_zero_command_queue_capacity_panics_on_first_use.

    New: the config is validated at construction (MeowError INVALID_CONFIG) instead of a "buffer > 0" panic on
    first use.
    """
    with pytest.raises(MeowError) as info:
        MeowConfig(command_queue_capacity=0)
    assert info.value.code == InnerErrorCode.INVALID_CONFIG
    assert "command_queue_capacity" in info.value.msg
    with pytest.raises(MeowError) as info:
        MeowConfig.builder().command_queue_capacity(0).build()
    assert info.value.code == InnerErrorCode.INVALID_CONFIG


@pytest.mark.timeout(10)
def test_zero_worker_event_queue_capacity_is_invalid_config() -> None:
    """Port of public_api_invalid_input_test::meow_config_zero_worker_event_queue_capacity_panics_on_first_use.

    New: MeowError(INVALID_CONFIG) at construction instead of a panic.
    """
    with pytest.raises(MeowError) as info:
        MeowConfig(worker_event_queue_capacity=0)
    assert info.value.code == InnerErrorCode.INVALID_CONFIG
    assert "worker_event_queue_capacity" in info.value.msg


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_zero_transfer_concurrency_is_invalid_config() -> None:
    """Port of public_api_invalid_input_test::meow_config_zero_transfer_concurrency_snapshot_still_ok.

    New: concurrency 0 (which silently stalled every task in the seed) is rejected with INVALID_CONFIG; the
    smallest valid limits (1, 1) give a working client whose snapshot is empty.
    """
    for kwargs in ({"max_upload_concurrency": 0}, {"max_download_concurrency": 0}):
        with pytest.raises(MeowError) as info:
            MeowConfig(**kwargs)  # type: ignore[arg-type]
        assert info.value.code == InnerErrorCode.INVALID_CONFIG
    with pytest.raises(MeowError) as info:
        MeowConfig.new(0, 0)
    assert info.value.code == InnerErrorCode.INVALID_CONFIG
    client = MeowClient(MeowConfig.new(1, 1))
    try:
        snap = await client.snapshot()
        assert (snap.active_groups, snap.queued_groups) == (0, 0)
    finally:
        await closed_client(client)


# ------------------------------------------------------------------------------ meow_client_additional_api


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_snapshot_on_fresh_client_is_empty() -> None:
    """Port of meow_client_additional_api_test::snapshot_on_fresh_client_reports_zero_groups."""
    client = MeowClient(one_one())
    try:
        snap = await client.snapshot()
        assert snap == TransferSnapshot(queued_groups=0, active_groups=0, active_keys=())
    finally:
        await closed_client(client)


@pytest.mark.timeout(10)
def test_client_debug_log_listener_set_and_clear() -> None:
    """Port of meow_client_additional_api_test::meow_client_set_debug_log_listener_wrapper_supports_set_and_clear."""
    client = MeowClient(one_one())
    try:
        client.set_debug_log_listener(lambda _log: None)
        assert debug_log_listener_active()
        client.set_debug_log_listener(None)
        assert not debug_log_listener_active()
    finally:
        MeowClient.set_debug_log_listener(None)


@pytest.mark.timeout(10)
def test_client_debug_log_listener_replaces_previous() -> None:
    """Port of meow_client_additional_api_test::meow_client_set_debug_log_listener_replaces_previous_listener."""
    client = MeowClient(one_one())
    a: list[str] = []
    b: list[str] = []
    try:
        client.set_debug_log_listener(None)
        client.set_debug_log_listener(lambda log: a.append(log.message) if log.tag == "replace_test" else None)
        emit(Log.debug("replace_test", "first emit"))
        client.set_debug_log_listener(lambda log: b.append(log.message) if log.tag == "replace_test" else None)
        emit(Log.debug("replace_test", "second emit"))
        assert a == ["first emit"]
        assert b == ["second emit"]
    finally:
        MeowClient.set_debug_log_listener(None)


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_upload_file_deleted_after_build_is_file_not_found(tmp_path: Path) -> None:
    """Port of meow_client_additional_api_test::upload_file_deleted_after_build_hits_file_not_found_branch."""
    src = tmp_path / "gone.bin"
    src.write_bytes(b"temp-upload-content")
    task = UploadPounceBuilder("gone.bin", src, 1024).with_url("http://127.0.0.1:9/upload").build()
    src.unlink()
    client = MeowClient(one_one())
    try:
        await expect_code(client.try_enqueue(task, None, None), InnerErrorCode.FILE_NOT_FOUND)
        assert not client.is_closed()
    finally:
        await closed_client(client)


@pytest.mark.asyncio
@pytest.mark.timeout(15)
async def test_task_and_listener_ids_have_debug_text(tmp_path: Path) -> None:
    """Port of meow_client_additional_api_test::task_and_listener_id_debug_format_paths_are_observable.

    TaskId also keeps the seed's Display: the hyphenated UUID.
    """
    with TestHttpServer() as srv:
        srv.add_file("/id.bin", b"id-format-payload" * 1024)
        client = MeowClient(one_one())
        try:
            listener_id = client.register_global_progress_listener(lambda _r: None)
            assert repr(listener_id)
            task = DownloadPounceBuilder("id.bin", tmp_path / "id.bin", 2048, srv.url("/id.bin")).build()
            task_id = await client.try_enqueue(task, None, None)
            assert repr(task_id)
            text = str(task_id)
            assert len(text) == 36 and text.count("-") == 4
        finally:
            await closed_client(client)


@pytest.mark.timeout(10)
def test_client_repr_shows_config_and_hides_listeners() -> None:
    """Port of meow_client_additional_api_test::meow_client_debug_impl_exposes_config_and_hides_listener_details."""
    client = MeowClient(MeowConfig.builder().max_upload_concurrency(3).max_download_concurrency(7).build())
    client.register_global_progress_listener(lambda _r: None)
    text = repr(client)
    assert "MeowClient" in text
    assert "config" in text
    assert "max_download_concurrency=7" in text
    assert "global_progress_listener" in text
    assert '".."' in text
    assert "lambda" not in text


# ------------------------------------------------------------------------------ meow_client_listener_misc


@pytest.mark.timeout(10)
def test_unregister_same_listener_twice() -> None:
    """Port of meow_client_listener_misc_test: unregistering the same id twice → True then False."""
    client = MeowClient(one_one())
    listener_id = client.register_global_progress_listener(lambda _r: None)
    assert client.unregister_global_progress_listener(listener_id) is True
    assert client.unregister_global_progress_listener(listener_id) is False
