"""The tray icon: tooltip from Totals, menu actions, notifications, and no crash without a system tray."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMainWindow, QSystemTrayIcon

from app.manager.jobs import Direction, Job, JobStatus
from app.manager.listener import Totals
from app.ui.preferences import Preferences
from app.ui.tray import TrayIcon, tooltip_text
from tests.ui.ui_fakes import FakeManager

pytestmark = pytest.mark.timeout(30)

MIB = 1024 * 1024


def job(status: JobStatus, direction: Direction = Direction.DOWNLOAD, error: str | None = None) -> Job:
    return Job("id1", direction, "big.iso", "/tmp/big.iso", "https://h/big.iso", status, error=error)


@pytest.fixture
def tray(qapp):
    manager = FakeManager()
    icon = TrayIcon(manager, Preferences(), QMainWindow())
    yield icon
    icon.detach()


def test_tooltip_text_summarises_totals() -> None:
    idle = tooltip_text(Totals())
    assert "No transfers running" in idle
    busy = tooltip_text(Totals(download_speed=2 * MIB, upload_speed=512 * 1024, active=2, queued=1, failed=1,
                               rate_limit=4 * MIB, done_bytes=25 * MIB, total_bytes=100 * MIB))
    assert "↓ 2.0 MiB/s" in busy and "↑ 512.0 KiB/s" in busy
    assert "25% of 100.0 MiB (3 transfers)" in busy
    assert "1 failed" in busy
    assert "Speed limit: 4.0 MiB/s" in busy


def test_registers_as_listener_and_refreshes_tooltip(qtbot, tray: TrayIcon) -> None:
    manager = tray._manager
    assert tray in manager.listeners
    assert "No transfers running" in tray.toolTip()
    manager.totals_value = Totals(download_speed=MIB, active=1, done_bytes=1, total_bytes=4)
    tray.jobs_changed([job(JobStatus.ACTIVE)])
    qtbot.waitUntil(lambda: "25% of" in tray.toolTip(), timeout=3000)
    tray.detach()
    assert tray not in manager.listeners


@pytest.mark.parametrize(
    ("finished", "title", "text"),
    [
        (job(JobStatus.COMPLETED), "Download complete", "big.iso"),
        (job(JobStatus.COMPLETED, Direction.UPLOAD), "Upload complete", "big.iso"),
        (job(JobStatus.FAILED, error="HTTP 404 (E_HTTP_STATUS)"), "Download failed",
         "big.iso\nHTTP 404 (E_HTTP_STATUS)"),
    ],
)
def test_job_finished_notifies(qtbot, tray: TrayIcon, finished: Job, title: str, text: str) -> None:
    with qtbot.waitSignal(tray.notified, timeout=1000) as blocker:
        tray.job_finished(finished)
    assert blocker.args == [title, text]


def test_no_notification_when_disabled_or_canceled(qtbot, tray: TrayIcon) -> None:
    seen: list[tuple[str, str]] = []
    tray.notified.connect(lambda t, x: seen.append((t, x)))
    tray.job_finished(job(JobStatus.CANCELED))
    tray._preferences.notifications = False
    tray.job_finished(job(JobStatus.COMPLETED))
    assert seen == []


def test_menu_actions(qtbot, aloop, tray: TrayIcon) -> None:
    manager = tray._manager
    tray.pause_all_action.trigger()
    tray.resume_all_action.trigger()
    qtbot.waitUntil(lambda: ("resume_all",) in manager.calls, timeout=3000)
    assert manager.calls == [("pause_all",), ("resume_all",)]
    with qtbot.waitSignal(tray.quit_requested, timeout=1000):
        tray.quit_action.trigger()
    with qtbot.waitSignal(tray.toggle_window_requested, timeout=1000):
        tray.toggle_action.trigger()
    with qtbot.waitSignal(tray.toggle_window_requested, timeout=1000):
        tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    assert [a.text() for a in tray.menu.actions() if not a.isSeparator()] == [
        "Show Window", "Pause All", "Resume All", "Quit"]


def test_toggle_text_follows_the_window(qtbot, tray: TrayIcon) -> None:
    window = tray._window
    qtbot.addWidget(window)
    window.show()
    tray.menu.aboutToShow.emit()
    assert tray.toggle_action.text() == "Hide Window"
    window.hide()
    tray.menu.aboutToShow.emit()
    assert tray.toggle_action.text() == "Show Window"


def test_without_a_system_tray_everything_is_a_quiet_no_op(qtbot, tray: TrayIcon) -> None:
    tray.available = False  # what offscreen and tray-less desktops report
    assert tray.show_if_available() is False
    assert not tray.isVisible()
    with qtbot.waitSignal(tray.notified, timeout=1000):
        tray.job_finished(job(JobStatus.COMPLETED))  # decided, but not shown: no crash, no warning dialog
    tray.refresh_tooltip()
