"""A screenshot of the real window with real transfers in every state, for a person to look at.

The window runs offscreen over a real TransferManager and the tests' HTTP server; jobs are driven into
completed, active (a slow server), paused, failed (404) and queued (one download at a time) states, plus an
upload, and the window is saved as ``tests/artifacts/main-window.png`` (git-ignored). The test checks what a
machine can: the picture exists, has the window's size, is not blank, and the model shows every status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from app.manager.jobs import Job, JobOptions, JobStatus
from app.manager.manager import TransferManager
from app.ui.formatting import status_label
from app.ui.job_table_model import Column
from app.ui.main_window import MainWindow
from app.ui.preferences import Preferences
from tests.support.engine_helpers import KIB, MIB, blob
from tests.support.http_server import TestHttpServer
from tests.support.qt_loop import run_coro

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SHOT = ARTIFACTS / "main-window.png"
SIZE = (1100, 600)


@pytest.fixture(autouse=True)
def _keyring(memory_keyring: object) -> object:
    return memory_keyring


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def manager(qtbot, aloop: qasync.QEventLoop, tmp_path: Path) -> Iterator[TransferManager]:
    m = TransferManager(tmp_path / "data")
    run_coro(qtbot, m.open())
    m.default_chunk_size = 256 * KIB
    yield m
    run_coro(qtbot, m.close())


def wait(qtbot, predicate, timeout: int = 8000) -> None:
    qtbot.waitUntil(lambda: bool(predicate()), timeout=timeout)


def add_download(qtbot, manager: TransferManager, url: str, folder: Path) -> Job:
    return run_coro(qtbot, manager.add_download(url, str(folder)))


def distinct_colors(image: QImage, step: int = 3) -> Counter[int]:
    return Counter(image.pixel(x, y) for y in range(0, image.height(), step) for x in range(0, image.width(), step))


@pytest.mark.timeout(30)
def test_main_window_screenshot_with_jobs_in_every_state(qtbot, manager: TransferManager, srv: TestHttpServer,
                                                         tmp_path: Path, qapp: QApplication) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    prefs = Preferences()
    prefs.default_download_dir = str(downloads)
    prefs.default_upload_remote = srv.url("/upload")
    win = MainWindow(manager, prefs)
    qtbot.addWidget(win)

    srv.add_file("/releases/rusty-cat-1.0.tar.gz", blob(300 * KIB, seed=31))
    done = add_download(qtbot, manager, srv.url("/releases/rusty-cat-1.0.tar.gz"), downloads)
    wait(qtbot, lambda: done.status is JobStatus.COMPLETED)

    failed = add_download(qtbot, manager, srv.url("/gone/old-backup.zip"), downloads)
    wait(qtbot, lambda: failed.status is JobStatus.FAILED)

    srv.add_file("/iso/debian-12.iso", blob(8 * MIB, seed=32))
    srv.rate_limit = 1 * MIB
    paused = add_download(qtbot, manager, srv.url("/iso/debian-12.iso"), downloads)
    wait(qtbot, lambda: paused.done_bytes >= 2 * MIB)
    run_coro(qtbot, manager.pause([paused.id]))

    # One download at a time from here: the first one runs (slowly), the second waits in the queue.
    run_coro(qtbot, manager.set_concurrency(1, 1))
    srv.rate_limit = 192 * KIB
    srv.add_file("/video/conference-talk.mp4", blob(16 * MIB, seed=33))
    srv.add_file("/video/conference-talk-2.mp4", blob(MIB, seed=34))
    active = add_download(qtbot, manager, srv.url("/video/conference-talk.mp4"), downloads)
    queued = add_download(qtbot, manager, srv.url("/video/conference-talk-2.mp4"), downloads)

    source = tmp_path / "photos 2024.tar"
    source.write_bytes(blob(16 * MIB, seed=35))
    srv.upload_rate_limit = 256 * KIB
    upload = run_coro(qtbot, manager.add_upload(str(source), srv.url("/upload"),
                                                options=JobOptions(chunk_size=512 * KIB)))

    wait(qtbot, lambda: active.status is JobStatus.ACTIVE and active.speed > 0 and active.eta is not None
         and active.done_bytes > 0)
    wait(qtbot, lambda: upload.status is JobStatus.ACTIVE and upload.speed > 0 and upload.done_bytes > 0)
    assert queued.status is JobStatus.QUEUED and paused.status is JobStatus.PAUSED

    win.resize(*SIZE)
    win.show()
    qtbot.waitExposed(win)
    win.model.flush()
    win.refresh_status()
    qtbot.wait(50)  # let the view lay out and paint what the flush announced

    statuses = {win.proxy.index(row, Column.STATUS).data() for row in range(win.proxy.rowCount())}
    wanted = {status_label(s) for s in (JobStatus.COMPLETED, JobStatus.ACTIVE, JobStatus.PAUSED,
                                        JobStatus.FAILED, JobStatus.QUEUED)}
    assert wanted <= statuses, statuses
    assert win.proxy.rowCount() == 6

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    SHOT.unlink(missing_ok=True)
    pixmap = win.grab()
    assert pixmap.save(str(SHOT), "PNG")
    image = QImage(str(SHOT))
    assert not image.isNull()
    ratio = pixmap.devicePixelRatio()
    assert (image.width(), image.height()) == (round(SIZE[0] * ratio), round(SIZE[1] * ratio))
    assert (win.width(), win.height()) == SIZE
    colors = distinct_colors(image)
    most_common = colors.most_common(1)[0][1]
    assert len(colors) >= 32, f"only {len(colors)} colours: blank window?"
    assert most_common < 0.9 * sum(colors.values()), "one colour covers 90% of the window"
