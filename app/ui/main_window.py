"""The main window: the transfer table with its status sidebar, toolbar, menus, status bar and drop target.

The window only sends intents to the manager (its public contract: ``jobs``, ``get``, ``totals()``,
``add_listener`` and the async methods) and shows what the manager reports through the table model; it never
touches the engine. Manager calls are coroutines scheduled on the running (qasync) loop by
``run_manager_call``: a slot returns at once, the UI never blocks on a transfer, and a ManagerError becomes a
message box shown with ``open()`` (window-modal but not a nested event loop, which would break qasync tasks).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlsplit

from PySide6.QtCore import QByteArray, QMimeData, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStyle,
    QTableView,
    QToolBar,
    QWidget,
)

import app
from app.manager.jobs import Direction, Job, JobOptions, JobStatus
from app.manager.listener import Totals
from app.manager.manager import ManagerError, display_remote
from app.ui.formatting import format_speed
from app.ui.job_filter_proxy import JobFilterProxy
from app.ui.job_table_model import Column, JobTableModel
from app.ui.preferences import PreferencesError
from app.ui.progress_delegate import ProgressDelegate
from app.ui.status_sidebar import StatusSidebar
from app.ui.upload_targets import expand_paths, join_remote

__all__ = [
    "DOWNLOAD_SCHEMES",
    "MainWindow",
    "PreferencesLike",
    "download_urls_from_text",
    "split_items",
]

logger = logging.getLogger(__name__)

#: URL schemes the manager downloads from (and that a drop or a paste queues as downloads).
DOWNLOAD_SCHEMES = frozenset(("http", "https", "oss", "azure"))
#: How often the status bar re-reads the manager's totals when nothing else refreshes it.
TOTALS_INTERVAL_MS = 1000
#: After jobs change, the status bar follows within this delay (at most four refreshes a second).
STATUS_DELAY_MS = 250
_SETTINGS_GROUP = "MainWindow"


class PreferencesLike(Protocol):
    """What the window reads and writes of app.ui.preferences.Preferences."""

    default_download_dir: str
    default_upload_remote: str
    connections: int
    chunk_size: int


# ---- pure helpers (no Qt state; unit-testable) ---------------------------------------------------------------


def download_urls_from_text(text: str) -> list[str]:
    """The downloadable URLs in pasted text, one per line (blank lines and anything else ignored)."""
    urls: list[str] = []
    for line in text.splitlines():
        candidate = line.strip()
        if is_download_url(candidate) and candidate not in urls:
            urls.append(candidate)
    return urls


def is_download_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme.lower() in DOWNLOAD_SCHEMES and bool(parts.netloc) and " " not in text


def split_items(items: Iterable[str]) -> tuple[list[str], list[str]]:
    """(download URLs, local paths) among command-line or handed-over items; ``file://`` URLs become paths.

    Anything else is taken for a path (``rusty-cat report.pdf``), so a typo is reported as a missing file
    rather than dropped in silence. Paths are not checked here (that is a stat, for a worker thread).
    """
    urls: list[str] = []
    paths: list[str] = []
    for item in items:
        qurl = QUrl(item)
        if qurl.isLocalFile():
            paths.append(qurl.toLocalFile())
        elif is_download_url(item):
            urls.append(item)
        else:
            paths.append(item)
    return urls, paths


def _mime_items(mime: QMimeData) -> tuple[list[str], list[str]]:
    """(download URLs, local paths) carried by dropped or pasted data."""
    files: list[str] = []
    urls: list[str] = []
    if mime.hasUrls():
        for url in mime.urls():
            if url.isLocalFile():
                files.append(url.toLocalFile())
            else:
                text = url.toString(QUrl.ComponentFormattingOption.FullyEncoded)
                if is_download_url(text):
                    urls.append(text)
    if not files and not urls and mime.hasText():
        urls = download_urls_from_text(mime.text())
    return urls, files


# ---- the window ---------------------------------------------------------------------------------------------


class MainWindow(QMainWindow):
    """Rusty Cat's window over a TransferManager.

    ``quit_requested`` is emitted by File > Quit (the app shell pauses and exits); ``close_requested`` by
    closing the window. The shell may set ``close_handler`` to decide what closing means (hide to the tray,
    ask, quit): it receives the QCloseEvent and calls ``ignore()`` on it to keep the window; without a
    handler the close is accepted.
    """

    quit_requested = Signal()
    close_requested = Signal()

    def __init__(self, manager: Any, preferences: PreferencesLike, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._manager = manager
        self._preferences = preferences
        self.close_handler: Callable[[QCloseEvent], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending_uploads: list[str] = []  # dropped while asking for the default upload remote
        self._remote_dialog: QInputDialog | None = None
        self._remove_box: QMessageBox | None = None
        self._error_box: QMessageBox | None = None
        self._selected: list[Job] | None = None  # selected_jobs() cache

        self.setWindowTitle(self.tr("Rusty Cat"))
        self.setAcceptDrops(True)

        self.model = JobTableModel(self)
        self.proxy = JobFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.sidebar = StatusSidebar(self.model)
        self.view = self._create_view()
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(self.view)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([180, 820])
        self.setCentralWidget(self.splitter)

        self._create_actions()
        self.filter_edit = QLineEdit(self)
        self._create_toolbar()
        self._create_menus()
        self._create_status_bar()
        self._restore_settings()
        self._status_timer = QTimer(self)
        self._status_timer.setSingleShot(True)
        self._status_timer.setInterval(STATUS_DELAY_MS)
        self._status_timer.timeout.connect(self.refresh_status)
        self._totals_timer = QTimer(self)
        self._totals_timer.setInterval(TOTALS_INTERVAL_MS)
        self._totals_timer.timeout.connect(self.refresh_status)
        self._totals_timer.start()

        self.sidebar.filter_changed.connect(self.proxy.set_status_filter)
        self.filter_edit.textChanged.connect(self.proxy.set_text_filter)
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        for signal in (self.proxy.rowsRemoved, self.proxy.rowsInserted, self.proxy.layoutChanged,
                       self.proxy.modelReset):
            signal.connect(self._forget_selection)
        self.model.updated.connect(self._on_model_updated)
        self.model.modelReset.connect(self.update_actions)

        self.model.set_jobs(manager.jobs)
        manager.add_listener(self.model)
        # If the window is destroyed while the manager lives on, the manager must stop calling its dead model.
        model = self.model
        self.destroyed.connect(lambda *_args: manager.remove_listener(model))

        self.update_actions()
        self.refresh_status()
        if getattr(manager, "secrets", None) is not None:
            self.run_manager_call(self.check_keyring(), self.tr("Keyring"))
        if not self._restored_geometry:
            self.resize(1180, 640)

    # ---- building -------------------------------------------------------------------------------------------

    def _create_view(self) -> QTableView:
        view = QTableView(self)
        view.setObjectName("transfers")
        view.setModel(self.proxy)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        view.setItemDelegateForColumn(Column.PROGRESS, ProgressDelegate(view))
        view.setAlternatingRowColors(True)
        view.setShowGrid(False)
        view.setWordWrap(False)
        view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._show_context_menu)
        vertical = view.verticalHeader()
        vertical.hide()
        # Fixed row heights: with 10,000 rows the view never measures rows it does not show.
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(view.fontMetrics().height() + 10)
        header = view.horizontalHeader()
        header.setSectionsMovable(True)
        header.setStretchLastSection(True)
        header.setSortIndicatorClearable(True)  # a third click goes back to arrival order
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        for column, width in ((Column.NAME, 240), (Column.DIRECTION, 90), (Column.REMOTE, 180), (Column.SIZE, 90),
                              (Column.PROGRESS, 140), (Column.SPEED, 100), (Column.ETA, 80), (Column.STATUS, 90)):
            header.resizeSection(column, width)
        # Status next to the progress bar: at the default window width it must be visible without scrolling.
        # A layout the user saved (restored later) still wins.
        header.moveSection(header.visualIndex(Column.STATUS), header.visualIndex(Column.PROGRESS) + 1)
        return view

    def _action(self, text: str, theme: str, fallback: QStyle.StandardPixmap | None,
                slot: Callable[[], Any], shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
                tip: str = "") -> QAction:
        style = QApplication.style()
        icon = QIcon.fromTheme(theme, style.standardIcon(fallback)) if fallback is not None else QIcon.fromTheme(theme)
        action = QAction(icon, text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip if action.shortcut().isEmpty() else
                              f"{tip} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})")
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)  # shortcuts work wherever the focus is in the window
        return action

    def _create_actions(self) -> None:
        sp = QStyle.StandardPixmap
        std = QKeySequence.StandardKey
        self.add_upload_action = self._action(self.tr("Add &upload…"), "document-send", sp.SP_ArrowUp,
                                              self.add_upload, std.Open, self.tr("Upload files to a remote"))
        self.add_download_action = self._action(self.tr("Add &download…"), "document-save", sp.SP_ArrowDown,
                                                self.add_download, std.New, self.tr("Download a URL"))
        self.paste_action = self._action(self.tr("&Paste links"), "edit-paste", None, self.paste, std.Paste,
                                         self.tr("Download the links (or upload the files) in the clipboard"))
        self.pause_action = self._action(self.tr("&Pause"), "media-playback-pause", sp.SP_MediaPause,
                                         self.pause_selected, self.tr("Ctrl+P"),
                                         self.tr("Pause the selected transfers"))
        self.resume_action = self._action(self.tr("&Resume"), "media-playback-start", sp.SP_MediaPlay,
                                          self.resume_selected, self.tr("Ctrl+S"),
                                          self.tr("Resume the selected transfers"))
        self.cancel_action = self._action(self.tr("&Cancel"), "process-stop", sp.SP_BrowserStop,
                                          self.cancel_selected, None, self.tr("Cancel the selected transfers"))
        self.retry_action = self._action(self.tr("Re&try"), "view-refresh", sp.SP_BrowserReload,
                                         self.retry_selected, self.tr("Ctrl+R"),
                                         self.tr("Retry the selected failed or canceled transfers"))
        self.remove_action = self._action(self.tr("Re&move…"), "edit-delete", sp.SP_TrashIcon,
                                          self.remove_selected, std.Delete,
                                          self.tr("Remove the selected transfers from the list"))
        self.open_folder_action = self._action(self.tr("Open &folder"), "folder-open", sp.SP_DirOpenIcon,
                                               self.open_folder, None, self.tr("Open the folder of the file"))
        self.copy_link_action = self._action(self.tr("Copy &link"), "edit-copy", sp.SP_FileLinkIcon,
                                             self.copy_link, self.tr("Ctrl+Shift+C"),
                                             self.tr("Copy the remote address to the clipboard"))
        self.pause_all_action = self._action(self.tr("Pa&use all"), "media-playback-pause", sp.SP_MediaPause,
                                             self.pause_all, self.tr("Ctrl+Shift+P"), self.tr("Pause every transfer"))
        self.resume_all_action = self._action(self.tr("Resume a&ll"), "media-playback-start", sp.SP_MediaPlay,
                                              self.resume_all, self.tr("Ctrl+Shift+S"),
                                              self.tr("Resume every paused transfer"))
        self.find_action = self._action(self.tr("&Filter"), "edit-find", None, self.focus_filter, std.Find,
                                        self.tr("Filter the list"))
        self.accounts_action = self._action(self.tr("&Accounts…"), "system-users", None, self.show_accounts)
        self.preferences_action = self._action(self.tr("&Preferences…"), "preferences-system", None,
                                               self.show_preferences, std.Preferences)
        self.quit_action = self._action(self.tr("&Quit"), "application-exit", sp.SP_DialogCloseButton,
                                        self.quit_requested.emit, std.Quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.preferences_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.about_action = self._action(self.tr("&About Rusty Cat"), "help-about", None, self.show_about)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.selection_actions = (self.pause_action, self.resume_action, self.cancel_action, self.retry_action,
                                  self.remove_action, self.open_folder_action, self.copy_link_action)

    def _create_toolbar(self) -> None:
        toolbar = QToolBar(self.tr("Main toolbar"), self)
        toolbar.setObjectName("main_toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.add_upload_action, self.add_download_action, None, self.pause_action,
                       self.resume_action, self.cancel_action, self.retry_action, self.remove_action, None,
                       self.pause_all_action, self.resume_all_action):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        spacer = QWidget(toolbar)
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        self.filter_edit.setPlaceholderText(self.tr("Filter by name, remote or error"))
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMinimumWidth(180)
        self.filter_edit.setMaximumWidth(280)
        self.filter_edit.setAccessibleName(self.tr("Filter"))
        toolbar.addWidget(self.filter_edit)
        self.toolbar = toolbar
        self.addToolBar(toolbar)

    def _create_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu(self.tr("&File"))
        file_menu.addActions([self.add_download_action, self.add_upload_action, self.paste_action])
        file_menu.addSeparator()
        file_menu.addActions([self.accounts_action, self.preferences_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        transfers = bar.addMenu(self.tr("&Transfers"))
        transfers.addActions([self.pause_action, self.resume_action, self.cancel_action, self.retry_action,
                              self.remove_action])
        transfers.addSeparator()
        transfers.addActions([self.open_folder_action, self.copy_link_action])
        transfers.addSeparator()
        transfers.addActions([self.pause_all_action, self.resume_all_action])
        transfers.addSeparator()
        transfers.addAction(self.find_action)
        help_menu = bar.addMenu(self.tr("&Help"))
        help_menu.addAction(self.about_action)
        self.context_menu = QMenu(self)
        self.context_menu.addActions([self.pause_action, self.resume_action, self.cancel_action,
                                      self.retry_action, self.remove_action])
        self.context_menu.addSeparator()
        self.context_menu.addActions([self.open_folder_action, self.copy_link_action])

    def _create_status_bar(self) -> None:
        bar = self.statusBar()
        self.speed_label = QLabel(self)
        self.active_label = QLabel(self)
        self.limit_label = QLabel(self)
        for label in (self.speed_label, self.active_label, self.limit_label):
            bar.addPermanentWidget(label)
        # Shown only when no OS keyring is usable: the plain explanation and the explicit run-only choice.
        self.keyring_warning = QLabel(self)
        self.keyring_warning.setWordWrap(False)
        self.keyring_button = QPushButton(self.tr("Keep secrets for this run only"), self)
        self.keyring_button.clicked.connect(self.keep_secrets_for_this_run)
        for widget in (self.keyring_warning, self.keyring_button):
            widget.hide()
            bar.insertPermanentWidget(0, widget)

    async def check_keyring(self) -> None:
        """Say plainly when secrets (account keys, signed links) cannot be kept, and offer the visible choice
        of keeping them in memory until quit; never a silent plain-text file."""
        secrets = getattr(self._manager, "secrets", None)
        if secrets is None or await secrets.probe() or secrets.session_only:
            return
        self.keyring_warning.setText(self.tr("No OS keyring: secrets cannot be saved"))
        self.keyring_warning.setToolTip(secrets.unavailable_reason or "")
        self.keyring_warning.show()
        self.keyring_button.show()

    def keep_secrets_for_this_run(self) -> None:
        secrets = getattr(self._manager, "secrets", None)
        if secrets is not None:
            secrets.allow_session_only()
        self.keyring_warning.hide()
        self.keyring_button.hide()
        self.statusBar().showMessage(
            self.tr("Secrets are kept in memory until Rusty Cat quits; signed links added now will need to be "
                    "added again after a restart."), 10_000)

    # ---- settings -------------------------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        settings = QSettings()
        settings.beginGroup(_SETTINGS_GROUP)
        geometry = settings.value("geometry")
        self._restored_geometry = isinstance(geometry, QByteArray) and self.restoreGeometry(geometry)
        header = settings.value("header")
        if isinstance(header, QByteArray):
            self.view.horizontalHeader().restoreState(header)
        splitter = settings.value("splitter")
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)
        settings.endGroup()
        # Sorts the model by the restored indicator (or keeps arrival order when there is none).
        self.view.setSortingEnabled(True)

    def save_settings(self) -> None:
        """Window geometry, column order/widths/sort and the splitter, for the next start."""
        settings = QSettings()
        settings.beginGroup(_SETTINGS_GROUP)
        settings.setValue("geometry", self.saveGeometry())
        settings.setValue("header", self.view.horizontalHeader().saveState())
        settings.setValue("splitter", self.splitter.saveState())
        settings.endGroup()

    # ---- selection and enablement ---------------------------------------------------------------------------

    def selected_jobs(self) -> list[Job]:
        """The jobs of the selected rows, in view order.

        Cached until the selection or the rows change: enablement is re-checked on every model flush (ten
        times a second), and ``selectedRows()`` takes ~0.5 s with 10,000 rows selected, where reading the
        selection's ranges and mapping each row once takes ~10 ms.
        """
        if self._selected is None:
            rows: set[int] = set()
            for selected in self.view.selectionModel().selection():
                rows.update(range(selected.top(), selected.bottom() + 1))
            proxy, model = self.proxy, self.model
            self._selected = [model.job_at(proxy.mapToSource(proxy.index(row, 0)).row()) for row in sorted(rows)]
        return list(self._selected)

    def _selection_changed(self) -> None:
        self._selected = None
        self.update_actions()

    def _forget_selection(self, *_args: object) -> None:
        self._selected = None

    def update_actions(self) -> None:
        """Enable each job action only when it applies to at least one selected job."""
        jobs = self.selected_jobs()
        # `in` on a list compares by identity in C; a set would hash each Enum member in Python (10,000 rows
        # selected: ~1 ms instead of ~9 ms, ten times a second).
        all_statuses = [job.status for job in jobs]
        statuses = {status for status in JobStatus if status in all_statuses}
        count = len(jobs)
        self.pause_action.setEnabled(bool(statuses & {JobStatus.QUEUED, JobStatus.ACTIVE}))
        self.resume_action.setEnabled(JobStatus.PAUSED in statuses)
        self.retry_action.setEnabled(bool(statuses & {JobStatus.FAILED, JobStatus.CANCELED}))
        self.cancel_action.setEnabled(any(not status.is_finished for status in statuses))
        self.remove_action.setEnabled(bool(statuses))
        self.open_folder_action.setEnabled(count == 1)
        self.copy_link_action.setEnabled(count == 1)

    def _on_model_updated(self) -> None:
        self.update_actions()
        if not self._status_timer.isActive():  # totals() walks every job: a few times a second is plenty
            self._status_timer.start()

    # ---- status bar -----------------------------------------------------------------------------------------

    def refresh_status(self) -> None:
        totals: Totals = self._manager.totals()
        self.speed_label.setText(self.tr("↓ {down}  ↑ {up}").format(
            down=format_speed(totals.download_speed), up=format_speed(totals.upload_speed)))
        self.active_label.setText(self.tr("Active: {count}").format(count=totals.active))
        if totals.rate_limit:
            self.limit_label.setText(self.tr("Speed limit: {limit}").format(limit=format_speed(totals.rate_limit)))
        else:
            self.limit_label.setText(self.tr("No speed limit"))
        self.pause_all_action.setEnabled(totals.active + totals.queued > 0)
        self.resume_all_action.setEnabled(totals.paused > 0)
        self._totals_timer.start()  # the once-a-second refresh only when nothing refreshed for a second

    # ---- running manager calls ------------------------------------------------------------------------------

    def run_manager_call(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Schedule ``coro`` on the running loop; a ManagerError is shown to the user, never raised."""
        task = asyncio.ensure_future(self._guarded(coro, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guarded(self, coro: Coroutine[Any, Any, Any], what: str) -> Any:
        try:
            return await coro
        except ManagerError as exc:
            self.show_error(what, str(exc))
        except Exception as exc:  # a bug: tell the user something went wrong, without the message
            # Only the type is logged: an unexpected exception's message may quote a signed URL.
            logger.error("%s failed with %s", what, type(exc).__name__)
            self.show_error(what, self.tr("Unexpected error ({kind}).").format(kind=type(exc).__name__))
        return None

    @property
    def pending_tasks(self) -> set[asyncio.Task[Any]]:
        """Manager calls still running (the shell may wait for them before closing the manager)."""
        return set(self._tasks)

    def show_error(self, what: str, message: str) -> None:
        """A non-blocking message box (and the status bar); errors arriving while it is open are added to it."""
        self.statusBar().showMessage(f"{what}: {message}", 10_000)
        box = self._error_box
        if box is not None and box.isVisible():  # one box for a burst (a drop of files and links, a hand-over)
            box.setInformativeText(f"{box.informativeText()}\n\n{what}\n{message}")
            return
        box = QMessageBox(QMessageBox.Icon.Warning, self.tr("Rusty Cat"), what, QMessageBox.StandardButton.Ok, self)
        box.setInformativeText(message)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.destroyed.connect(lambda *_args, closed=box: self._forget_error_box(closed))
        self._error_box = box
        box.open()

    def _forget_error_box(self, box: QMessageBox) -> None:
        if self._error_box is box:  # a newer box may already have replaced the closed one
            self._error_box = None

    @property
    def error_box(self) -> QMessageBox | None:
        return self._error_box

    # ---- job actions ----------------------------------------------------------------------------------------

    def _selected_ids(self, applies: Callable[[Job], bool]) -> list[str]:
        return [job.id for job in self.selected_jobs() if applies(job)]

    def pause_selected(self) -> None:
        ids = self._selected_ids(lambda job: job.status.wants_to_run)
        if ids:
            self.run_manager_call(self._manager.pause(ids), self.tr("Pause"))

    def resume_selected(self) -> None:
        ids = self._selected_ids(lambda job: job.status is JobStatus.PAUSED)
        if ids:
            self.run_manager_call(self._manager.resume(ids), self.tr("Resume"))

    def cancel_selected(self) -> None:
        ids = self._selected_ids(lambda job: not job.status.is_finished)
        if ids:
            self.run_manager_call(self._manager.cancel(ids), self.tr("Cancel"))

    def retry_selected(self) -> None:
        ids = self._selected_ids(lambda job: job.status in (JobStatus.FAILED, JobStatus.CANCELED))
        if ids:
            self.run_manager_call(self._manager.retry(ids), self.tr("Retry"))

    def pause_all(self) -> None:
        self.run_manager_call(self._manager.pause_all(), self.tr("Pause all"))

    def resume_all(self) -> None:
        self.run_manager_call(self._manager.resume_all(), self.tr("Resume all"))

    def remove_selected(self) -> None:
        """Ask first (non-blocking); the box offers to delete partial downloads when there are any."""
        jobs = self.selected_jobs()
        if not jobs or self._remove_box is not None:
            return
        ids = [job.id for job in jobs]
        box = QMessageBox(QMessageBox.Icon.Question, self.tr("Remove transfers"),
                          self.tr("Remove %n transfer(s) from the list?", "", len(ids)),
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setInformativeText(self.tr("Running transfers are canceled. Uploaded and completed files are kept."))
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        partial = any(job.direction is Direction.DOWNLOAD and job.status is not JobStatus.COMPLETED for job in jobs)
        if partial:
            box.setCheckBox(QCheckBox(self.tr("Also delete partial files"), box))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(_result: int) -> None:
            self._remove_box = None
            if box.clickedButton() is not box.button(QMessageBox.StandardButton.Yes):
                return
            checkbox = box.checkBox()
            delete_files = checkbox is not None and checkbox.isChecked()
            self.run_manager_call(self._manager.remove(ids, delete_files=delete_files), self.tr("Remove"))

        box.finished.connect(finished)
        self._remove_box = box
        box.open()

    @property
    def remove_box(self) -> QMessageBox | None:
        """The open "Remove transfers" confirmation, if any."""
        return self._remove_box

    def _single_selected(self) -> Job | None:
        jobs = self.selected_jobs()
        return jobs[0] if len(jobs) == 1 else None

    def open_folder(self) -> None:
        job = self._single_selected()
        if job is None:
            return
        # local_path is a file for both directions (the destination or the source): open its folder.
        folder = os.path.dirname(job.local_path) or job.local_path
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(folder)):
            self.statusBar().showMessage(self.tr("Could not open {folder}").format(folder=folder), 10_000)

    def copy_link(self) -> None:
        job = self._single_selected()
        if job is None:
            return
        QGuiApplication.clipboard().setText(job.remote)
        self.statusBar().showMessage(self.tr("Copied {link}").format(link=job.remote), 5_000)

    def focus_filter(self) -> None:
        self.filter_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_edit.selectAll()

    def _show_context_menu(self, pos: Any) -> None:
        if self.view.indexAt(pos).isValid():
            self.context_menu.popup(self.view.viewport().mapToGlobal(pos))

    # ---- dialogs (built elsewhere; imported when first used) ------------------------------------------------

    def _open_dialog(self, factory: Callable[[], Any]) -> None:
        try:
            dialog = factory()
        except ImportError as exc:  # a broken install: say so instead of failing silently in a slot
            logger.error("dialog unavailable: %s", exc)
            self.show_error(self.tr("This dialog is not available"), str(exc))
            return
        dialog.open()

    def add_download(self, url: str = "") -> None:
        def factory() -> Any:
            from app.ui.dialogs.new_download import NewDownloadDialog

            return NewDownloadDialog(self._manager, self._preferences, parent=self, url=url)

        self._open_dialog(factory)

    def add_upload(self, files: Sequence[str] = ()) -> None:
        def factory() -> Any:
            from app.ui.dialogs.new_upload import NewUploadDialog

            return NewUploadDialog(self._manager, self._preferences, parent=self, files=list(files))

        self._open_dialog(factory)

    def show_accounts(self) -> None:
        def factory() -> Any:
            from app.ui.dialogs.accounts import AccountsDialog

            return AccountsDialog(self._manager.accounts, parent=self)

        self._open_dialog(factory)

    def show_preferences(self) -> None:
        def factory() -> Any:
            from app.ui.dialogs.preferences import PreferencesDialog

            network = self._manager if hasattr(self._manager, "set_network") else None
            return PreferencesDialog(self._preferences, parent=self, network=network)

        self._open_dialog(factory)

    def show_about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, self.tr("About Rusty Cat"),
                          self.tr("Rusty Cat {version}").format(version=app.__version__),
                          QMessageBox.StandardButton.Ok, self)
        box.setInformativeText(self.tr("Resumable transfers of large files over HTTP, Aliyun OSS and Azure Blob "
                                       "Storage."))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # ---- queueing from drops, pastes and the command line ---------------------------------------------------

    def paste(self) -> None:
        """Ctrl+V: links in the clipboard become downloads (copied files become uploads)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None or not self.queue_mime(mime):
            self.statusBar().showMessage(self.tr("The clipboard has no link to download"), 5_000)

    def queue_items(self, items: Iterable[str]) -> None:
        """URLs become downloads, files and folders uploads (``rusty-cat URL-or-FILE``, a second instance)."""
        self._queue(*split_items(items))

    def queue_mime(self, mime: QMimeData) -> bool:
        return self._queue(*_mime_items(mime))

    def _queue(self, urls: list[str], paths: list[str]) -> bool:
        if paths:
            self.queue_uploads(paths)
        if urls:
            self.queue_downloads(urls)
        return bool(urls or paths)

    def queue_downloads(self, urls: Sequence[str]) -> None:
        """Download to the default folder with the preferred connections and chunk size (kept by each job)."""
        prefs = self._preferences
        options = JobOptions(connections=prefs.connections, chunk_size=prefs.chunk_size)
        self.run_manager_call(self._add_downloads(list(urls), prefs.default_download_dir, options),
                              self.tr("Add download"))

    async def _add_downloads(self, urls: list[str], folder: str, options: JobOptions) -> None:
        title = self.tr("Could not add %n download(s)", "", len(urls))
        try:
            # The manager reads a missing folder as a file name, and the default Downloads may not exist yet.
            await asyncio.to_thread(os.makedirs, folder, exist_ok=True)
        except OSError as exc:
            self.show_error(title, self.tr("Cannot create the download folder {folder}: {reason}").format(
                folder=folder, reason=exc.strerror or str(exc)))
            return
        errors = await self._add_each((display_remote(url), partial(self._manager.add_download, url, folder,
                                                                    options=options)) for url in urls)
        self._report(errors, self.tr("Could not add %n download(s)", "", len(errors)))

    def queue_uploads(self, paths: Sequence[str]) -> None:
        """Upload files and folders to the default upload remote, asking for it once when there is none."""
        remote = (self._preferences.default_upload_remote or "").strip()
        if not remote:
            self._pending_uploads.extend(paths)
            if self._remote_dialog is None:
                self._ask_upload_remote()
            return
        self.run_manager_call(self._add_uploads(list(paths), remote), self.tr("Add upload"))

    def _ask_upload_remote(self) -> None:
        dialog = QInputDialog(self)
        dialog.setWindowTitle(self.tr("Upload destination"))
        dialog.setLabelText(self.tr("Where should added files go?\nFor example oss://account/bucket/folder, "
                                    "azure://account/container/folder or an https:// upload endpoint. It is saved "
                                    "as the default upload destination."))
        dialog.setInputMode(QInputDialog.InputMode.TextInput)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(result: int) -> None:
            self._remote_dialog = None
            paths, self._pending_uploads = self._pending_uploads, []
            remote = dialog.textValue().strip()
            if result != int(QInputDialog.DialogCode.Accepted) or not remote:
                self.statusBar().showMessage(self.tr("Upload canceled: no destination"), 5_000)
                return
            try:
                self._preferences.default_upload_remote = remote
            except PreferencesError as exc:  # not a URL, or a signed link that must not be saved in settings
                self._report([str(exc)], self.tr("Upload canceled"))
                return
            self.queue_uploads(paths)

        dialog.finished.connect(finished)
        self._remote_dialog = dialog
        dialog.open()

    @property
    def upload_remote_dialog(self) -> QInputDialog | None:
        """The open "Upload destination" question, if any."""
        return self._remote_dialog

    async def _add_uploads(self, paths: list[str], remote: str) -> None:
        sources, empty = await asyncio.to_thread(expand_paths, paths)
        options = JobOptions(chunk_size=self._preferences.chunk_size)
        errors = [self.tr("Nothing to upload in {path}").format(path=path) for path in empty]
        errors += await self._add_each((source.relative, partial(
            self._manager.add_upload, source.path, join_remote(remote, source.relative), options=options))
            for source in sources)
        self._report(errors, self.tr("Could not add %n upload(s)", "", len(errors)))

    async def _add_each(self, adds: Iterable[tuple[str, Callable[[], Awaitable[object]]]]) -> list[str]:
        """Run each add in turn; the refusals, as "what: why" lines."""
        errors: list[str] = []
        for what, add in adds:
            try:
                await add()
            except ManagerError as exc:
                errors.append(f"{what}: {exc}")
        return errors

    def _report(self, errors: list[str], title: str) -> None:
        """One message for a whole drop, listing the first few failures."""
        if not errors:
            return
        lines = errors[:5]
        if len(errors) > 5:
            lines.append(self.tr("…and {count} more").format(count=len(errors) - 5))
        self.show_error(title, "\n".join(lines))

    # ---- Qt events ------------------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._can_queue(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._can_queue(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        if self.queue_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    @staticmethod
    def _can_queue(mime: QMimeData | None) -> bool:
        if mime is None:
            return False
        return any(_mime_items(mime))

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        self.close_requested.emit()
        if self.close_handler is not None:
            self.close_handler(event)
        else:
            event.accept()

    def detach(self) -> None:
        """Stop listening to the manager (before the window is destroyed while the manager lives on)."""
        self._totals_timer.stop()
        self._manager.remove_listener(self.model)
