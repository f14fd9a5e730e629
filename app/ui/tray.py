"""The system tray icon: overall progress in the tooltip, a small menu, and end-of-transfer notifications.

It is also a ManagerListener: ``job_finished`` turns into a desktop notification (when the user wants them),
and job changes refresh the tooltip at most twice a second. Where the desktop has no tray
(``isSystemTrayAvailable()`` is False: offscreen, some Wayland sessions) it stays hidden and does nothing
visible, but still answers the same calls, so the shell never has to special-case it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon, QWidget

from app.manager.jobs import Direction, Job, JobStatus
from app.manager.listener import Totals
from app.sizes import format_size

if TYPE_CHECKING:
    from app.manager.manager import TransferManager
    from app.ui.preferences import Preferences

__all__ = ["TrayIcon", "tooltip_text"]

_CTX = "TrayIcon"
TOOLTIP_INTERVAL_MS = 500


def _tr(text: str) -> str:
    return QCoreApplication.translate(_CTX, text)


def tooltip_text(totals: Totals) -> str:
    """One short block: speeds, overall progress of what is running, and counts."""
    lines = [_tr("Rusty Cat")]
    running = totals.active + totals.queued
    if running:
        lines.append(
            _tr("↓ {down}/s  ↑ {up}/s").format(
                down=format_size(totals.download_speed), up=format_size(totals.upload_speed)
            )
        )
        if totals.total_bytes > 0:
            percent = min(100, int(totals.done_bytes * 100 / totals.total_bytes))
            lines.append(
                _tr("{percent}% of {total} ({count} transfers)").format(
                    percent=percent, total=format_size(totals.total_bytes), count=running
                )
            )
        else:
            lines.append(_tr("{count} transfers running").format(count=running))
    else:
        lines.append(_tr("No transfers running"))
    if totals.failed:
        lines.append(_tr("{count} failed").format(count=totals.failed))
    if totals.rate_limit:
        lines.append(_tr("Speed limit: {limit}/s").format(limit=format_size(totals.rate_limit)))
    return "\n".join(lines)


class TrayIcon(QSystemTrayIcon):
    """Tray icon with Show/Hide, Pause all, Resume all and Quit.

    ``quit_requested`` and ``toggle_window_requested`` are for the shell, which owns the window and the
    quit sequence; ``notified(title, text)`` fires for every notification decided on, whether or not the
    desktop can show it (tests and a future in-window log use it).
    """

    quit_requested = Signal()
    toggle_window_requested = Signal()
    notified = Signal(str, str)

    def __init__(
        self,
        manager: TransferManager | Any,
        preferences: Preferences,
        window: QWidget | None = None,
        parent: QObject | None = None,
    ) -> None:
        icon = QApplication.windowIcon() if QApplication.instance() is not None else QIcon()
        super().__init__(icon, parent)
        self._manager = manager
        self._preferences = preferences
        self._window = window
        self._tasks: set[Any] = set()
        self.available = QSystemTrayIcon.isSystemTrayAvailable()

        self.menu = QMenu()
        self.toggle_action = QAction(_tr("Show Window"), self.menu)
        self.pause_all_action = QAction(_tr("Pause All"), self.menu)
        self.resume_all_action = QAction(_tr("Resume All"), self.menu)
        self.quit_action = QAction(_tr("Quit"), self.menu)
        self.menu.addAction(self.toggle_action)
        self.menu.addSeparator()
        self.menu.addAction(self.pause_all_action)
        self.menu.addAction(self.resume_all_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.setContextMenu(self.menu)
        self.menu.aboutToShow.connect(self._update_toggle_text)
        self.toggle_action.triggered.connect(self.toggle_window_requested)
        self.pause_all_action.triggered.connect(lambda: self._run(self._manager.pause_all()))
        self.resume_all_action.triggered.connect(lambda: self._run(self._manager.resume_all()))
        self.quit_action.triggered.connect(self.quit_requested)
        self.activated.connect(self._activated)

        self._tooltip_timer = QTimer(self)
        self._tooltip_timer.setSingleShot(True)
        self._tooltip_timer.setInterval(TOOLTIP_INTERVAL_MS)
        self._tooltip_timer.timeout.connect(self.refresh_tooltip)
        self.refresh_tooltip()
        manager.add_listener(self)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def show_if_available(self) -> bool:
        """Show the icon where the desktop has a tray; returns whether it is visible."""
        if self.available:
            self.show()
        return self.isVisible()

    def detach(self) -> None:
        """Stop listening and hide (at quit)."""
        self._tooltip_timer.stop()
        try:
            self._manager.remove_listener(self)
        except Exception:  # a closing manager may already have dropped its listeners
            pass
        self.hide()

    # -- ManagerListener ---------------------------------------------------------------------------------

    def jobs_added(self, jobs: Sequence[Job]) -> None:
        self._schedule_tooltip()

    def jobs_changed(self, jobs: Sequence[Job]) -> None:
        self._schedule_tooltip()

    def jobs_removed(self, job_ids: Sequence[str]) -> None:
        self._schedule_tooltip()

    def job_finished(self, job: Job) -> None:
        self._schedule_tooltip()
        if not self._preferences.notifications:
            return
        if job.status is JobStatus.COMPLETED:
            title = _tr("Download complete") if job.direction is Direction.DOWNLOAD else _tr("Upload complete")
            text = job.name
            icon = QSystemTrayIcon.MessageIcon.Information
        elif job.status is JobStatus.FAILED:
            title = _tr("Download failed") if job.direction is Direction.DOWNLOAD else _tr("Upload failed")
            text = f"{job.name}\n{job.error}" if job.error else job.name
            icon = QSystemTrayIcon.MessageIcon.Warning
        else:
            return
        self.notified.emit(title, text)
        if self.available and self.isVisible() and QSystemTrayIcon.supportsMessages():
            self.showMessage(title, text, icon, 8000)

    # -- internals ---------------------------------------------------------------------------------------

    def _schedule_tooltip(self) -> None:
        if not self._tooltip_timer.isActive():
            self._tooltip_timer.start()

    def refresh_tooltip(self) -> str:
        text = tooltip_text(self._manager.totals())
        self.setToolTip(text)
        return text

    def _update_toggle_text(self) -> None:
        visible = self._window is not None and self._window.isVisible() and not self._window.isMinimized()
        self.toggle_action.setText(_tr("Hide Window") if visible else _tr("Show Window"))

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.toggle_window_requested.emit()

    def _run(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
