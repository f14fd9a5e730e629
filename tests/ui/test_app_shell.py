"""The application shell: start-up wiring, preferences applied live, close/quit rules, argument hand-over.

In-process tests drive AppShell on the already-running qasync loop (the ``aloop`` fixture) with a fake
manager and a minimal window that honours MainWindow's contract (``quit_requested``, ``close_handler``,
``queue_items``, ``show_error``); they never start run_forever. What the real window does with handed-over
items is tested in test_main_window.py; one test here runs the shell over the real window. One test runs the
real app in a subprocess: a URL handed over through the single-instance socket becomes a job in the real
history, and SIGTERM quits it cleanly with status 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QLocale, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox

from app.manager.listener import Totals
from app.manager.network import NetworkSettings
from app.ui.app import (
    APP_NAME,
    AppShell,
    create_application,
    install_signal_handlers,
    install_translations,
)
from app.ui.preferences import Preferences
from app.ui.single_instance import SingleInstance, instance_name, send_arguments
from tests.support.qt_loop import run_coro
from tests.ui.ui_fakes import FakeManager

pytestmark = pytest.mark.timeout(60)


class ContractWindow(QMainWindow):
    """The part of MainWindow's contract the shell relies on."""

    quit_requested = Signal()

    def __init__(self, manager: object, preferences: Preferences) -> None:
        super().__init__()
        self.manager = manager
        self.preferences = preferences
        self.close_handler: Callable[[QCloseEvent], None] | None = None
        self.queued: list[list[str]] = []
        self.errors: list[tuple[str, str]] = []

    def queue_items(self, items: list[str]) -> None:
        self.queued.append(list(items))

    def show_error(self, what: str, message: str) -> None:
        self.errors.append((what, message))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.close_handler is not None:
            self.close_handler(event)
        else:
            event.accept()


@pytest.fixture
def prefs(qapp, tmp_path: Path) -> Preferences:
    p = Preferences()
    p.default_download_dir = str(tmp_path / "Downloads")  # missing on purpose: the shell creates it
    return p


@pytest.fixture
def shell(qtbot, aloop, prefs: Preferences):
    manager = FakeManager()
    s = AppShell(manager, prefs, window_factory=ContractWindow)
    yield s
    if not s.quitting:
        run_coro(qtbot, s.shutdown())


def start(qtbot, shell: AppShell, arguments: list[str] | None = None) -> None:
    run_coro(qtbot, shell.start(arguments or []))  # the shell fixture's shutdown closes the window


def busy(shell: AppShell) -> None:
    shell.manager.totals_value = Totals(active=1, total_bytes=10, done_bytes=5)


# -- start and preferences ----------------------------------------------------------------------------------


def test_start_opens_manager_applies_preferences_and_shows_window(qtbot, shell: AppShell) -> None:
    start(qtbot, shell)
    m = shell.manager
    # The network settings before open(): restored jobs start on the route the user chose.
    assert m.calls[:4] == [("set_network", NetworkSettings()), ("open",), ("set_concurrency", 3, 2),
                           ("set_rate_limit", None)]
    assert isinstance(shell.window, ContractWindow) and shell.window.isVisible()
    assert shell.window.close_handler == shell.handle_close
    assert shell.tray in m.listeners
    assert shell.started and not shell.quit_requested


def test_start_minimized_without_tray_minimizes(qtbot, shell: AppShell, prefs: Preferences) -> None:
    prefs.start_minimized = True
    start(qtbot, shell)
    assert shell.window.isMinimized() or shell.window.windowState() & shell.window.windowState().WindowMinimized


def test_preference_changes_reach_the_manager_once(qtbot, shell: AppShell, prefs: Preferences) -> None:
    start(qtbot, shell)
    m = shell.manager
    m.calls.clear()
    prefs.max_downloads = 6
    prefs.max_uploads = 5  # same burst: one set_concurrency with both
    prefs.speed_limit = 2048
    prefs.notifications = False  # not the manager's business
    qtbot.waitUntil(lambda: ("set_rate_limit", 2048) in m.calls, timeout=3000)
    assert m.calls == [("set_concurrency", 6, 5), ("set_rate_limit", 2048)]
    prefs.speed_limit = None
    qtbot.waitUntil(lambda: ("set_rate_limit", None) in m.calls, timeout=3000)
    prefs.connections = 9
    prefs.chunk_size = 2 * 1024 * 1024
    assert (m.default_connections, m.default_chunk_size) == (4, 8 * 1024 * 1024)  # applied after the burst
    qtbot.waitUntil(lambda: (m.default_connections, m.default_chunk_size) == (9, 2 * 1024 * 1024), timeout=3000)


def test_real_main_window_under_the_shell(qtbot, aloop, prefs: Preferences) -> None:
    from app.ui.main_window import MainWindow

    manager = FakeManager()
    s = AppShell(manager, prefs)  # the default factory: the real window
    run_coro(qtbot, s.start(["https://example.com/real.iso"]))
    try:
        assert isinstance(s.window, MainWindow) and s.window.isVisible()
        assert s.window.close_handler == s.handle_close
        qtbot.waitUntil(lambda: bool(manager.downloads), timeout=3000)
        [(url, folder, options)] = manager.downloads
        assert (url, folder) == ("https://example.com/real.iso", prefs.default_download_dir)
        assert Path(folder).is_dir()  # the missing default folder was created
        assert (options.connections, options.chunk_size) == (prefs.connections, prefs.chunk_size)
        s.window.quit_requested.emit()
        assert s.quit_requested
    finally:
        run_coro(qtbot, s.shutdown())
    assert manager.closed and not s.window.isVisible()


# -- closing the window -------------------------------------------------------------------------------------


def test_close_without_tray_quits(qtbot, shell: AppShell) -> None:
    start(qtbot, shell)
    busy(shell)
    assert shell.window.close()  # accepted: no tray to keep running in, so nothing to ask
    assert shell.quit_requested
    assert shell.close_box is None


def test_close_while_idle_quits_even_with_tray(qtbot, shell: AppShell, monkeypatch) -> None:
    start(qtbot, shell)
    monkeypatch.setattr(shell, "tray_usable", lambda: True)
    assert shell.window.close()
    assert shell.quit_requested


@pytest.mark.parametrize("remember", [False, True])
def test_close_while_busy_asks_keep_running(qtbot, shell: AppShell, prefs: Preferences, monkeypatch,
                                            remember: bool) -> None:
    start(qtbot, shell)
    monkeypatch.setattr(shell, "tray_usable", lambda: True)
    busy(shell)
    assert not shell.window.close()  # ignored while asking
    box = shell.close_box
    assert box is not None and box.isVisible()
    assert "Transfers are still running" in box.text()
    labels = [b.text() for b in box.buttons()]
    assert "Keep Running in the Tray" in labels and "Quit" in labels
    box.checkBox().setChecked(remember)
    keep = next(b for b in box.buttons() if b.text() == "Keep Running in the Tray")
    keep.click()
    qtbot.waitUntil(lambda: shell.close_box is None, timeout=2000)
    assert not shell.window.isVisible()
    assert not shell.quit_requested
    assert prefs.close_to_tray is (True if remember else None)


def test_close_while_busy_quit_and_remember(qtbot, shell: AppShell, prefs: Preferences, monkeypatch) -> None:
    start(qtbot, shell)
    monkeypatch.setattr(shell, "tray_usable", lambda: True)
    busy(shell)
    shell.window.close()
    box = shell.close_box
    box.checkBox().setChecked(True)
    next(b for b in box.buttons() if b.text() == "Quit").click()
    qtbot.waitUntil(lambda: shell.quit_requested, timeout=2000)
    assert prefs.close_to_tray is False


def test_close_while_busy_cancel_keeps_everything(qtbot, shell: AppShell, prefs: Preferences, monkeypatch) -> None:
    start(qtbot, shell)
    monkeypatch.setattr(shell, "tray_usable", lambda: True)
    busy(shell)
    shell.window.close()
    shell.close_box.checkBox().setChecked(True)
    shell.close_box.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: shell.close_box is None, timeout=2000)
    assert shell.window.isVisible() and not shell.quit_requested
    assert prefs.close_to_tray is None  # Cancel remembers nothing


@pytest.mark.parametrize(("choice", "quits"), [(True, False), (False, True)])
def test_remembered_choice_is_not_asked_again(qtbot, shell: AppShell, prefs: Preferences, monkeypatch,
                                              choice: bool, quits: bool) -> None:
    start(qtbot, shell)
    monkeypatch.setattr(shell, "tray_usable", lambda: True)
    busy(shell)
    prefs.close_to_tray = choice
    shell.window.close()
    assert shell.close_box is None
    assert shell.quit_requested is quits
    assert shell.window.isVisible() is False


def test_tray_toggle_and_quit(qtbot, shell: AppShell) -> None:
    start(qtbot, shell)
    shell.tray.toggle_window_requested.emit()
    assert not shell.window.isVisible()
    shell.tray.toggle_window_requested.emit()
    assert shell.window.isVisible()
    shell.tray.quit_requested.emit()
    assert shell.quit_requested


def test_window_quit_action_and_shutdown(qtbot, shell: AppShell, tmp_path: Path) -> None:
    instance = SingleInstance(instance_name(tmp_path / "shutdown"))
    assert instance.listen()
    shell.instance = instance
    start(qtbot, shell)
    shell.window.quit_requested.emit()
    assert shell.quit_requested
    run_coro(qtbot, shell.shutdown())
    assert shell.manager.closed and shell.manager.calls[-1] == ("close",)
    assert not shell.window.isVisible()  # closed although a close handler is set: quitting accepts
    assert shell.tray not in shell.manager.listeners
    assert not instance.listening


def test_shutdown_lets_the_window_finish_adding_jobs(qtbot, shell: AppShell) -> None:
    start(qtbot, shell)

    async def adding() -> None:  # a drop or hand-over still writing its jobs to the history
        await asyncio.sleep(0.05)
        shell.manager.calls.append(("added",))

    shell.window.pending_tasks = {asyncio.ensure_future(adding())}
    run_coro(qtbot, shell.shutdown())
    assert shell.manager.calls[-2:] == [("added",), ("close",)]


def test_run_returns_0_after_a_quit_request(qtbot, aloop, prefs: Preferences) -> None:
    manager = FakeManager()
    s = AppShell(manager, prefs, window_factory=ContractWindow)
    task = asyncio.ensure_future(s.run(["https://example.com/run.iso"]))
    qtbot.waitUntil(lambda: s.started and s.window.queued == [["https://example.com/run.iso"]], timeout=5000)
    s.request_quit()
    qtbot.waitUntil(task.done, timeout=5000)
    assert task.result() == 0
    assert manager.closed


# -- arguments ----------------------------------------------------------------------------------------------


def test_command_line_arguments_reach_the_window(qtbot, shell: AppShell, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    start(qtbot, shell, ["https://example.com/a.iso", f"file://{tmp_path / 'a.txt'}"])
    assert shell.window.queued == [["https://example.com/a.iso", str(tmp_path / "a.txt")]]
    assert shell.window.errors == []


def test_a_hand_over_raises_the_window_and_reaches_it(qtbot, shell: AppShell, tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    folder.mkdir()
    start(qtbot, shell)
    shell.window.hide()
    shell.open_arguments([str(folder), "https://example.com/c.iso"])
    qtbot.waitUntil(lambda: shell.window.queued != [], timeout=3000)
    assert shell.window.queued == [["https://example.com/c.iso", str(folder)]]
    assert shell.window.isVisible()  # a hand-over brings the window forward


def test_missing_paths_are_reported_and_the_rest_is_queued(qtbot, shell: AppShell, tmp_path: Path) -> None:
    start(qtbot, shell)
    shell.open_arguments(["https://example.com/ok.iso", str(tmp_path / "missing.bin")])
    qtbot.waitUntil(lambda: shell.window.queued != [], timeout=3000)
    assert shell.window.queued == [["https://example.com/ok.iso"]]
    assert shell.window.errors == [("Some items could not be queued.",
                                    f"{tmp_path / 'missing.bin'}: no such file or folder.")]
    shell.open_arguments([str(tmp_path / "gone")])  # nothing left to queue: the window is not asked
    qtbot.waitUntil(lambda: len(shell.window.errors) == 2, timeout=3000)
    assert len(shell.window.queued) == 1


def test_arguments_before_start_are_kept(qtbot, aloop, prefs: Preferences, tmp_path: Path) -> None:
    instance = SingleInstance(instance_name(tmp_path / "early"))
    assert instance.listen()
    manager = FakeManager()
    s = AppShell(manager, prefs, window_factory=ContractWindow, instance=instance)
    try:
        assert run_coro(qtbot, asyncio.to_thread(send_arguments, instance.name, ["https://example.com/early.iso"]))
        assert manager.downloads == []
        run_coro(qtbot, s.start())
        assert s.window.queued == [["https://example.com/early.iso"]]
    finally:
        run_coro(qtbot, s.shutdown())


# -- process-level pieces -----------------------------------------------------------------------------------


def test_create_application_names_and_icon(qapp) -> None:
    app = create_application()
    assert app is QApplication.instance()
    assert app.applicationName() == APP_NAME
    assert app.desktopFileName() == "rusty-cat"
    assert not app.windowIcon().isNull()
    assert app.quitOnLastWindowClosed() is False


def test_translations_load_when_a_qm_exists(qapp, tmp_path: Path) -> None:
    lrelease = Path(sys.executable).parent / "pyside6-lrelease"
    if not lrelease.exists():
        pytest.skip("pyside6-lrelease is not installed")
    ts = tmp_path / "rusty-cat_de.ts"
    ts.write_text(
        '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE TS><TS version="2.1" language="de">'
        "<context><name>AppShell</name><message><source>Quit</source><translation>Beenden</translation>"
        "</message></context></TS>",
        encoding="utf-8",
    )
    subprocess.run([str(lrelease), str(ts), "-qm", str(tmp_path / "rusty-cat_de.qm")], check=True,
                   capture_output=True, timeout=60)
    translators = install_translations(qapp, QLocale(QLocale.Language.German), directory=tmp_path)
    try:
        assert QApplication.translate("AppShell", "Quit") == "Beenden"
    finally:
        for t in translators:
            qapp.removeTranslator(t)
    assert QApplication.translate("AppShell", "Quit") == "Quit"
    others = install_translations(qapp, QLocale(QLocale.Language.German), directory=tmp_path / "none")
    for t in others:
        qapp.removeTranslator(t)
    assert all("rusty-cat" not in Path(t.filePath()).name for t in others)  # only Qt's own, if any


def test_sigint_requests_quit(qtbot, aloop) -> None:
    hits: list[int] = []
    install_signal_handlers(aloop, lambda: hits.append(1))
    try:
        os.kill(os.getpid(), signal.SIGINT)
        qtbot.waitUntil(lambda: hits == [1], timeout=3000)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            aloop.remove_signal_handler(sig)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_real_app_takes_a_handover_and_quits_cleanly_on_sigterm(qtbot, aloop, tmp_path: Path) -> None:
    """The whole shell with the real manager and window, in its own process (run_forever is not ours to run)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    name = instance_name()  # same XDG_DATA_HOME as the child (isolated_dirs), so the same name
    url = "http://127.0.0.1:9/never-there.bin"  # port 9 (discard): refused at once, the job just fails
    try:
        deadline = time.monotonic() + 30
        handed = False
        while not handed and time.monotonic() < deadline and proc.poll() is None:
            handed = run_coro(qtbot, asyncio.to_thread(send_arguments, name, [url], 500))
            if not handed:
                qtbot.wait(100)
        assert handed, "the app never started listening"
        qtbot.wait(1000)  # let the manager queue the job
        proc.send_signal(signal.SIGTERM)
        qtbot.waitUntil(lambda: proc.poll() is not None, timeout=20_000)
    finally:
        if proc.poll() is None:
            proc.kill()
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err

    from app.manager.manager import TransferManager

    async def history() -> list[str]:
        manager = TransferManager()  # the default data dir under the same XDG_DATA_HOME
        await manager.open()
        try:
            return [job.remote for job in manager.jobs]
        finally:
            await manager.close()

    assert run_coro(qtbot, history(), timeout=20_000) == [url]
    assert not send_arguments(name, ["https://x/y"], 300)  # the socket is gone with the process


def test_macos_file_open_events_reach_the_shell(qapp) -> None:
    """Finder "Open With" and clicked links arrive as QFileOpenEvent on macOS; the forwarder turns them into
    arguments (local path for file: URLs, the URL otherwise)."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QFileOpenEvent

    from app.ui.app import FileOpenForwarder

    received: list[list[str]] = []
    forwarder = FileOpenForwarder(received.append)
    qapp.installEventFilter(forwarder)
    try:
        QApplication.sendEvent(qapp, QFileOpenEvent(QUrl.fromLocalFile("/tmp/some file.iso")))
        QApplication.sendEvent(qapp, QFileOpenEvent(QUrl("https://example.com/a.iso")))
    finally:
        qapp.removeEventFilter(forwarder)
    assert received == [["/tmp/some file.iso"], ["https://example.com/a.iso"]]
