"""Fixtures for window tests: a qasync loop shared with Qt, and per-test isolated settings, data and keyring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
import qasync
from keyring.backend import KeyringBackend
from PySide6.QtCore import QCoreApplication, QMimeData, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from app.ui.gui_gc import GuiThreadCollector
from app.ui.job_table_model import JobTableModel
from tests.support.qt_loop import make_loop
from tests.ui.fake_manager import FakeManager
from tests.ui.ui_fakes import listening_model


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring so unit tests never touch (or need) the OS keyring."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.values.pop((service, username), None)


@pytest.fixture(scope="session", autouse=True)
def gui_thread_collector(qapp: QApplication) -> Iterator[GuiThreadCollector]:
    """As in the app: garbage (old windows, dialogs, models of earlier tests) is collected on the GUI thread only,
    never by an engine thread of a later test that happens to allocate (which crashed Qt now and then)."""
    collector = GuiThreadCollector(qapp)
    yield collector
    collector.stop()


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG dirs and QSettings under tmp_path, so no test reads or writes the real user's files."""
    home = tmp_path / "home"
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state"),
                     ("XDG_CACHE_HOME", "cache")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(home / sub))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home / "config"))
    QCoreApplication.setOrganizationName("rusty-cat-tests")
    QCoreApplication.setApplicationName("rusty-cat-tests")
    return home


@pytest.fixture
def aloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    """A running qasync loop for sync tests; drive it with qtbot.waitUntil / tests.support.qt_loop.run_coro."""
    yield from make_loop(qapp)


def drop(target: QWidget, mime: QMimeData, pos: QPoint | None = None) -> bool:
    """A real drag enter (it must be accepted) then a drop, delivered as Qt delivers them to a widget; True when
    the drop was accepted."""
    pos = pos or QPoint(20, 20)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, event)
    return event.isAccepted()


@pytest.fixture
def manager() -> FakeManager:
    return FakeManager()


@pytest.fixture
def model(qtbot, manager: FakeManager) -> JobTableModel:
    return listening_model(manager)
