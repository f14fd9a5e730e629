"""End to end: the real MainWindow over a real TransferManager, moving real bytes from the tests' HTTP server.

The unit tests of the window use a fake manager; these check that what a person does in the window (select a row
and press Pause, drop a file, quit and start again) reaches the engine and that the bytes on disk and on the
server are right. Sync tests on the ``aloop`` fixture (a running qasync loop): qtbot.waitUntil spins Qt, which
also runs the manager's asyncio work. The server's ``rate_limit`` keeps transfers slow enough to act on them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QItemSelectionModel, QMimeData, QPoint, QUrl
from PySide6.QtWidgets import QApplication

from app.manager.jobs import Direction, Job, JobStatus
from app.manager.manager import TransferManager
from app.ui.formatting import status_label
from app.ui.job_table_model import Column
from app.ui.main_window import MainWindow
from app.ui.preferences import Preferences
from tests.support.engine_helpers import KIB, MIB, blob, sha
from tests.support.http_server import TestHttpServer
from tests.support.qt_loop import run_coro
from tests.ui.conftest import drop

pytestmark = pytest.mark.timeout(30)

CHUNK = 256 * KIB  # small chunks (the smallest the preferences allow): "resumed, not restarted" is a tight bound
CONNECTIONS = 4


@pytest.fixture(autouse=True)
def _keyring(memory_keyring: object) -> object:
    """No test here may reach the OS keyring (none of these URLs carries a secret, but a regression could)."""
    return memory_keyring


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def prefs(qapp: QApplication, downloads: Path, srv: TestHttpServer) -> Preferences:
    """The real Preferences (QSettings under tmp_path, see conftest.isolated_dirs), pointed at the test server.

    The window gives every job it queues the preferred chunk size and connections."""
    preferences = Preferences()
    preferences.default_download_dir = str(downloads)
    preferences.default_upload_remote = srv.url("/upload")  # the default chunk protocol: one endpoint URL
    preferences.chunk_size = CHUNK
    preferences.connections = CONNECTIONS
    return preferences


@pytest.fixture
def open_manager(qtbot, aloop: qasync.QEventLoop, tmp_path: Path) -> Iterator[Callable[[], TransferManager]]:
    """Open a TransferManager on the qasync loop over tmp_path/data; every one still open is closed afterwards."""
    managers: list[TransferManager] = []

    def make() -> TransferManager:
        manager = TransferManager(tmp_path / "data")
        run_coro(qtbot, manager.open())
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        run_coro(qtbot, manager.close())  # a no-op for one the test closed itself


@pytest.fixture
def make_window(qtbot, prefs: Preferences) -> Callable[[TransferManager], MainWindow]:
    def make(manager: TransferManager) -> MainWindow:
        window = MainWindow(manager, prefs)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    return make


# ---- helpers ------------------------------------------------------------------------------------------------


def wait(qtbot, predicate: Callable[[], bool], timeout: int = 8000) -> None:
    qtbot.waitUntil(lambda: bool(predicate()), timeout=timeout)


def proxy_row(win: MainWindow, job: Job) -> int:
    for row in range(win.proxy.rowCount()):
        if win.proxy.job_at(row) is job:
            return row
    raise AssertionError(f"{job.name} is not in the table")


def select(win: MainWindow, job: Job) -> None:
    """Select the job's row the way a click does (the whole row, replacing the selection)."""
    index = win.proxy.index(proxy_row(win, job), 0)
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    win.view.selectionModel().setCurrentIndex(index, flags)
    assert win.selected_jobs() == [job]


def shown_status(win: MainWindow, job: Job) -> str:
    """The Status cell the view shows for the job, after the model's pending changes are published."""
    win.model.flush()
    return win.proxy.index(proxy_row(win, job), Column.STATUS).data()


def trigger(win: MainWindow, name: str) -> None:
    action = getattr(win, f"{name}_action")
    assert action.isEnabled(), f"{name} is disabled for the selection"
    action.trigger()


def only_job(manager: TransferManager) -> Job:
    assert len(manager.jobs) == 1, [j.name for j in manager.jobs]
    return manager.jobs[0]


def history_status(data_dir: Path, job_id: str) -> str:
    conn = sqlite3.connect(data_dir / "history.sqlite3")
    try:
        return conn.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone()[0]
    finally:
        conn.close()


# ---- toolbar actions ----------------------------------------------------------------------------------------


@pytest.mark.timeout(15)
def test_pause_stops_bytes_and_resume_continues_from_where_it_was(
        qtbot, open_manager, make_window, srv: TestHttpServer, downloads: Path) -> None:
    manager = open_manager()
    win = make_window(manager)
    data = blob(4 * MIB, seed=21)
    srv.add_file("/slow.bin", data)
    srv.rate_limit = 1 * MIB  # per connection: ~1 s for the whole file over 4 connections
    win.queue_downloads([srv.url("/slow.bin")])
    wait(qtbot, lambda: len(manager.jobs) == 1)
    job = only_job(manager)
    wait(qtbot, lambda: job.done_bytes > 512 * KIB)

    select(win, job)
    trigger(win, "pause")
    wait(qtbot, lambda: job.status is JobStatus.PAUSED)
    wait(qtbot, lambda: win.resume_action.isEnabled() and not win.pause_action.isEnabled())
    assert shown_status(win, job) == status_label(JobStatus.PAUSED)
    qtbot.wait(300)  # what was already in flight when the connections closed
    sent, done = srv.bytes_sent_total, job.done_bytes
    qtbot.wait(600)
    assert srv.bytes_sent_total == sent, "bytes kept moving after Pause"
    assert job.done_bytes == done and done < len(data)
    assert win.proxy.index(proxy_row(win, job), Column.SPEED).data() == ""

    srv.rate_limit = None
    trigger(win, "resume")
    wait(qtbot, lambda: job.status is JobStatus.COMPLETED)
    assert sha((downloads / "slow.bin").read_bytes()) == sha(data)
    assert srv.bytes_sent_total <= len(data) + CONNECTIONS * CHUNK, "Resume started over instead of continuing"
    assert shown_status(win, job) == status_label(JobStatus.COMPLETED)
    assert win.error_box is None


@pytest.mark.timeout(15)
def test_cancel_ends_the_job(qtbot, open_manager, make_window, srv: TestHttpServer, downloads: Path) -> None:
    manager = open_manager()
    win = make_window(manager)
    srv.add_file("/slow2.bin", blob(2 * MIB, seed=22))
    srv.rate_limit = 100 * KIB
    win.queue_downloads([srv.url("/slow2.bin")])
    wait(qtbot, lambda: len(manager.jobs) == 1)
    job = only_job(manager)
    wait(qtbot, lambda: job.status is JobStatus.ACTIVE and srv.bytes_sent_total > 0)

    select(win, job)
    trigger(win, "cancel")
    wait(qtbot, lambda: job.status is JobStatus.CANCELED)
    wait(qtbot, lambda: shown_status(win, job) == status_label(JobStatus.CANCELED))
    qtbot.wait(300)
    sent = srv.bytes_sent_total
    qtbot.wait(400)
    assert srv.bytes_sent_total == sent, "bytes kept moving after Cancel"
    assert job.status is JobStatus.CANCELED and not (downloads / "slow2.bin").exists()
    # A canceled job can only be retried or removed now.
    wait(qtbot, lambda: win.retry_action.isEnabled())
    assert not win.pause_action.isEnabled() and not win.cancel_action.isEnabled()


@pytest.mark.timeout(15)
def test_retry_restarts_a_failed_download(qtbot, open_manager, make_window, srv: TestHttpServer,
                                          downloads: Path) -> None:
    manager = open_manager()
    win = make_window(manager)
    win.queue_downloads([srv.url("/later.bin")])  # not on the server yet: 404
    wait(qtbot, lambda: len(manager.jobs) == 1)
    job = only_job(manager)
    wait(qtbot, lambda: job.status is JobStatus.FAILED)
    assert job.error and "404" in job.error
    assert shown_status(win, job) == status_label(JobStatus.FAILED)
    assert "404" in win.proxy.index(proxy_row(win, job), Column.ERROR).data()

    data = blob(700 * KIB, seed=23)
    srv.add_file("/later.bin", data)
    select(win, job)
    wait(qtbot, lambda: win.retry_action.isEnabled())
    trigger(win, "retry")
    wait(qtbot, lambda: job.status is JobStatus.COMPLETED)
    assert sha((downloads / "later.bin").read_bytes()) == sha(data)
    assert job.error is None
    win.model.flush()
    assert win.proxy.index(proxy_row(win, job), Column.ERROR).data() == ""
    assert shown_status(win, job) == status_label(JobStatus.COMPLETED)


# ---- drag and drop ------------------------------------------------------------------------------------------


@pytest.mark.timeout(15)
def test_dropping_a_file_and_a_url_queues_an_upload_and_a_download_that_complete(
        qtbot, open_manager, make_window, srv: TestHttpServer, downloads: Path, tmp_path: Path) -> None:
    manager = open_manager()
    win = make_window(manager)
    source = tmp_path / "holiday photo.jpg"
    up_data = blob(MIB + 123, seed=24)
    source.write_bytes(up_data)
    down_data = blob(900 * KIB + 7, seed=25)
    srv.add_file("/pub/manual.pdf", down_data)

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(source)), QUrl(srv.url("/pub/manual.pdf"))])
    assert drop(win, mime, QPoint(40, 120))
    wait(qtbot, lambda: win.model.rowCount() == 2)
    by_direction = {job.direction: job for job in win.model.jobs}
    upload, download = by_direction[Direction.UPLOAD], by_direction[Direction.DOWNLOAD]
    assert upload.local_path == str(source) and upload.remote == srv.url("/upload")
    assert upload.options.chunk_size == CHUNK and download.options.connections == CONNECTIONS
    assert download.name == "manual.pdf" and download.local_path == str(downloads / "manual.pdf")

    wait(qtbot, lambda: upload.status is JobStatus.COMPLETED and download.status is JobStatus.COMPLETED)
    assert sha((downloads / "manual.pdf").read_bytes()) == sha(down_data)
    assert [sha(state.data) for state in srv.uploads.values()] == [sha(up_data)]
    assert shown_status(win, upload) == shown_status(win, download) == status_label(JobStatus.COMPLETED)
    assert win.error_box is None


# ---- restart ------------------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_quit_mid_download_and_start_again_resumes_in_the_new_window(
        qtbot, open_manager, make_window, srv: TestHttpServer, downloads: Path, tmp_path: Path) -> None:
    data = blob(6 * MIB, seed=26)
    srv.add_file("/resume.bin", data)
    srv.rate_limit = 1 * MIB
    first = open_manager()
    win = make_window(first)
    win.queue_downloads([srv.url("/resume.bin")])
    wait(qtbot, lambda: len(first.jobs) == 1)
    job = only_job(first)
    wait(qtbot, lambda: job.done_bytes > MIB)

    # What Quit does (AppShell.shutdown): close the window, then close the manager, which pauses the engine
    # but keeps the job's intent ("active") in the history so the next start resumes it.
    win.close()
    run_coro(qtbot, first.close())
    assert history_status(tmp_path / "data", job.id) == "active"
    assert (downloads / "resume.bin.part").exists() and not (downloads / "resume.bin").exists()
    before = srv.bytes_sent_total

    srv.rate_limit = None
    second = open_manager()
    again = second.get(job.id)
    new_win = make_window(second)
    assert new_win.model.row_of(job.id) is not None, "the job is not in the new window"
    row_job = new_win.proxy.job_at(proxy_row(new_win, again))
    assert row_job is again and row_job.name == "resume.bin"
    wait(qtbot, lambda: again.status is JobStatus.COMPLETED)
    assert sha((downloads / "resume.bin").read_bytes()) == sha(data)
    assert srv.bytes_sent_total - before <= len(data) - MIB + CONNECTIONS * CHUNK, "the restart began again"
    assert shown_status(new_win, again) == status_label(JobStatus.COMPLETED)
