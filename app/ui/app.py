"""The application shell: QApplication, qasync loop, single instance, manager, window, tray, quit.

``run_app`` is what ``rusty-cat`` runs. ``AppShell`` holds the wiring in one testable object: it opens the
manager, keeps the manager's concurrency and speed limit in step with the preferences, shows the window (or
only the tray), hands URLs and files from the command line or from a second launch to the window (which
queues them as it queues a drop), decides what closing the window means, and quits cleanly
(``manager.close()`` pauses every transfer so the next start resumes).

Why ``setQuitOnLastWindowClosed(False)``: the window may hide to the tray, and Qt's automatic quit would
stop the event loop behind qasync's back, before the manager has paused anything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QLibraryInfo,
    QLocale,
    QObject,
    QSettings,
    Qt,
    QTimer,
    QTranslator,
)
from PySide6.QtGui import QCloseEvent, QFileOpenEvent, QIcon
from PySide6.QtWidgets import QApplication, QCheckBox, QMessageBox, QWidget

from app.manager.manager import ManagerError
from app.ui import preferences as prefkeys
from app.ui.dialogs.common import TaskOwner
from app.ui.gui_gc import GuiThreadCollector
from app.ui.preferences import Preferences
from app.ui.single_instance import SingleInstance, instance_name, normalize_arguments, send_arguments
from app.ui.tray import TrayIcon

if TYPE_CHECKING:
    from app.manager.manager import TransferManager

__all__ = [
    "APP_NAME",
    "AppShell",
    "app_icon",
    "create_application",
    "install_translations",
    "run_app",
    "self_test",
]

log = logging.getLogger(__name__)

APP_NAME = "Rusty Cat"
ORGANIZATION_NAME = "Rusty Cat"
ORGANIZATION_DOMAIN = "rusty-cat.github.io"
DESKTOP_FILE_NAME = "rusty-cat"
# Only present in a source checkout; installed copies run without them (Qt's default icon, English).
RESOURCES = Path(__file__).resolve().parents[2] / "resources"
ICON_SVG = RESOURCES / "icons" / "rusty-cat.svg"
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)
TRANSLATIONS = RESOURCES / "translations"
_CTX = "AppShell"


def _tr(text: str) -> str:
    return QCoreApplication.translate(_CTX, text)


# -- application -----------------------------------------------------------------------------------------


def app_icon() -> QIcon:
    """The app icon: the PNG renders per size where present (crisp at small sizes), plus the SVG."""
    icon = QIcon()
    for size in ICON_SIZES:
        png = RESOURCES / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "rusty-cat.png"
        if png.is_file():
            icon.addFile(str(png))
    if ICON_SVG.is_file():
        icon.addFile(str(ICON_SVG))
    return icon


def create_application(qt_argv: list[str] | None = None) -> QApplication:
    """Return the running QApplication or create one (Qt allows one per process), named and iconed.

    Colours are left to the platform style and palette, so light and dark follow the system.
    """
    existing = QApplication.instance()
    if existing is not None and not isinstance(existing, QApplication):
        raise RuntimeError("a non-GUI QCoreApplication already exists in this process")
    app = existing if isinstance(existing, QApplication) else QApplication(qt_argv or ["rusty-cat"])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(ORGANIZATION_NAME)
    app.setOrganizationDomain(ORGANIZATION_DOMAIN)
    # Lets Wayland compositors match the window to resources/rusty-cat.desktop.
    app.setDesktopFileName(DESKTOP_FILE_NAME)
    icon = app_icon()
    if not icon.isNull():
        app.setWindowIcon(icon)
    app.setQuitOnLastWindowClosed(False)
    return app


def install_translations(
    app: QCoreApplication, locale: QLocale | None = None, directory: str | os.PathLike[str] | None = None
) -> list[QTranslator]:
    """Load Qt's own and Rusty Cat's translations for the system locale, where they exist.

    A missing .qm is normal (English is built in); the translators are returned so the caller keeps them
    alive. ``directory`` replaces resources/translations (tests, packaged builds).
    """
    locale = locale or QLocale.system()
    installed: list[QTranslator] = []
    sources = (
        ("qtbase", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)),
        ("rusty-cat", os.fspath(directory if directory is not None else TRANSLATIONS)),
    )
    for prefix, directory in sources:
        translator = QTranslator(app)
        if directory and translator.load(locale, prefix, "_", directory) and app.installTranslator(translator):
            installed.append(translator)
    return installed


# -- the shell -------------------------------------------------------------------------------------------


def _default_window_factory(manager: Any, preferences: Preferences) -> QWidget:
    from app.ui.main_window import MainWindow  # imported late: the window module is the heaviest import

    return MainWindow(manager, preferences)


class AppShell(QObject):
    """Owns the running app's pieces and the rules between them (close, quit, preferences, hand-over)."""

    def __init__(
        self,
        manager: TransferManager | Any,
        preferences: Preferences,
        *,
        window_factory: Callable[[Any, Preferences], QWidget] = _default_window_factory,
        instance: SingleInstance | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.manager = manager
        self.preferences = preferences
        self._window_factory = window_factory
        self.instance = instance
        self.window: Any = None
        self.tray: TrayIcon | None = None
        self.close_box: QMessageBox | None = None
        self.quitting = False
        self.started = False
        self._quit = asyncio.Event()
        self._early_arguments: list[str] = []
        self._tasks = TaskOwner()
        self._apply_pending: set[str] = set()
        if instance is not None:
            # Connected now, not after start(): a second launch may arrive while the manager opens.
            instance.arguments_received.connect(self.open_arguments)

    # -- start -------------------------------------------------------------------------------------------

    async def start(self, arguments: Sequence[str] = ()) -> None:
        # The network settings first: jobs restored by open() must not start on a route the user turned off.
        network_problem = await self.apply_network()
        await self.manager.open()
        partly = getattr(self.manager, "network_problem", None)
        if partly and not network_problem:
            network_problem = _tr("The network settings apply only in part: {reason}").format(reason=partly)
        await self.apply_preferences(network=False)
        self.preferences.changed.connect(self._preference_changed)

        window = self._window_factory(self.manager, self.preferences)
        self.window = window
        window.close_handler = self.handle_close
        window.quit_requested.connect(self.request_quit)

        tray = TrayIcon(self.manager, self.preferences, window, parent=self)
        tray.quit_requested.connect(self.request_quit)
        tray.toggle_window_requested.connect(self.toggle_window)
        self.tray = tray
        tray.show_if_available()

        if self.preferences.start_minimized and tray.isVisible():
            pass  # only the tray icon; the window opens from it
        elif self.preferences.start_minimized:
            window.showMinimized()
        else:
            window.show()
        self.started = True
        if network_problem:
            self.show_status(network_problem)

        pending = [*arguments, *self._early_arguments]
        self._early_arguments.clear()
        if pending:
            await self.open_arguments_async(pending, raise_window=False)

    async def run(self, arguments: Sequence[str] = ()) -> int:
        """Start, wait for a quit request (window, tray, signal), shut down; the process exit status."""
        try:
            await self.start(arguments)
            await self._quit.wait()
        finally:
            await self.shutdown()
        return 0

    # -- preferences -> manager --------------------------------------------------------------------------

    async def apply_network(self) -> str | None:
        """Push the network preferences (proxy, bypass list, CA bundle; the password is the manager's, in the
        keyring) to the manager; the sentence to show when they cannot be applied (the manager keeps the previous
        ones), else None."""
        set_network = getattr(self.manager, "set_network", None)
        if set_network is None:
            return None
        try:
            await set_network(self.preferences.network_settings)
        except ManagerError as exc:
            return _tr("The network settings were not applied: {reason}").format(reason=exc)
        return None

    async def apply_preferences(self, keys: set[str] | None = None, *, network: bool = True) -> None:
        """Push concurrency, the speed limit, job defaults and (with ``network``) the network settings to the
        manager: all, or what ``keys`` touch."""
        p = self.preferences
        if network and (keys is None or keys & set(prefkeys.NETWORK_KEYS)):
            problem = await self.apply_network()
            if problem:
                self.show_status(problem)
        # Defaults for jobs whose options leave them unset (older history rows): plain attributes of the manager.
        if (keys is None or prefkeys.CONNECTIONS in keys) and hasattr(self.manager, "default_connections"):
            self.manager.default_connections = p.connections
        if (keys is None or prefkeys.CHUNK_SIZE in keys) and hasattr(self.manager, "default_chunk_size"):
            self.manager.default_chunk_size = p.chunk_size
        try:
            if keys is None or keys & {prefkeys.MAX_DOWNLOADS, prefkeys.MAX_UPLOADS}:
                await self.manager.set_concurrency(p.max_downloads, p.max_uploads)
            if keys is None or prefkeys.SPEED_LIMIT in keys:
                await self.manager.set_rate_limit(p.speed_limit)
        except ManagerError as exc:
            self.show_status(str(exc))

    def _preference_changed(self, key: str) -> None:
        # The dialog sets several keys in a row: apply them together once the current callback is done.
        first = not self._apply_pending
        self._apply_pending.add(key)
        if first:
            self._tasks.start(self._apply_changed())

    async def _apply_changed(self) -> None:
        await asyncio.sleep(0)
        keys, self._apply_pending = self._apply_pending, set()
        await self.apply_preferences(keys)

    # -- window and tray ---------------------------------------------------------------------------------

    def toggle_window(self) -> None:
        window = self.window
        if window is None:
            return
        if window.isVisible() and not window.isMinimized():
            window.hide()
        else:
            self.raise_window()

    def raise_window(self) -> None:
        window = self.window
        if window is None:
            return
        window.setWindowState(window.windowState() & ~Qt.WindowState.WindowMinimized)
        window.show()
        window.raise_()
        window.activateWindow()

    def tray_usable(self) -> bool:
        return self.tray is not None and self.tray.isVisible()

    def handle_close(self, event: QCloseEvent) -> None:
        """The window's close_handler: hide to the tray, quit, or ask (see the module doc)."""
        if self.quitting:
            event.accept()
            return
        if not self.tray_usable():
            event.accept()
            self.request_quit()
            return
        choice = self.preferences.close_to_tray
        if choice is True:
            event.ignore()
            self.window.hide()
            return
        totals = self.manager.totals()
        busy = totals.active + totals.queued > 0
        if choice is False or not busy:
            event.accept()
            self.request_quit()
            return
        event.ignore()
        self._ask_close()

    def _ask_close(self) -> None:
        if self.close_box is not None:
            self.close_box.raise_()
            return
        box = QMessageBox(self.window)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle(_tr("Transfers Are Running"))
        box.setText(_tr("Transfers are still running. Keep them running in the tray, or quit?"))
        box.setInformativeText(_tr("Quitting pauses the transfers; they resume the next time Rusty Cat starts."))
        keep = box.addButton(_tr("Keep Running in the Tray"), QMessageBox.ButtonRole.AcceptRole)
        quit_button = box.addButton(_tr("Quit"), QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)
        remember = QCheckBox(_tr("Remember my choice"), box)
        box.setCheckBox(remember)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(lambda _result: self._close_answered(box, keep, quit_button, remember))
        self.close_box = box
        box.open()

    def _close_answered(self, box: QMessageBox, keep: Any, quit_button: Any, remember: QCheckBox) -> None:
        self.close_box = None
        clicked = box.clickedButton()
        if clicked is keep:
            if remember.isChecked():
                self.preferences.close_to_tray = True
            self.window.hide()
        elif clicked is quit_button:
            if remember.isChecked():
                self.preferences.close_to_tray = False
            self.request_quit()
        box.deleteLater()

    # -- quit --------------------------------------------------------------------------------------------

    def request_quit(self) -> None:
        """Ask the app to quit (window, tray menu, SIGINT/SIGTERM); run() then shuts down cleanly."""
        self._quit.set()

    @property
    def quit_requested(self) -> bool:
        return self._quit.is_set()

    async def shutdown(self) -> None:
        """Stop listening, hide everything and close the manager (it pauses transfers so they resume)."""
        if self.quitting:
            return
        self.quitting = True
        if self.instance is not None:
            self.instance.close()
        if self.tray is not None:
            self.tray.detach()
        self._tasks.cancel_all()
        queueing = getattr(self.window, "pending_tasks", set())
        if queueing:  # jobs being added from a drop or a hand-over: let them reach the history first
            await asyncio.wait(queueing, timeout=5)
        for widget in (self.close_box, self.window):
            if widget is not None and shiboken6.isValid(widget):  # Qt may have deleted it with its parent
                widget.close()
        try:
            await self.manager.close()
        except Exception:  # quitting must finish even if the manager has trouble; the log says what
            log.exception("closing the transfer manager failed")

    # -- arguments (command line and second launches) ----------------------------------------------------

    def open_arguments(self, arguments: list[str]) -> None:
        """Slot for SingleInstance.arguments_received: queue URLs and files, bring the window forward."""
        if not self.started:
            self._early_arguments.extend(arguments)
            return
        self._tasks.start(self.open_arguments_async(arguments))

    async def open_arguments_async(self, arguments: Sequence[str], *, raise_window: bool = True) -> None:
        """Report paths that do not exist; the window queues the rest (URLs, files, folders) as a drop would."""
        from app.ui.main_window import split_items

        if raise_window:
            self.raise_window()
        urls, paths = split_items(arguments)
        missing = await asyncio.to_thread(lambda: [p for p in paths if not os.path.exists(p)])
        if missing:
            self.window.show_error(_tr("Some items could not be queued."), "\n".join(
                _tr("{path}: no such file or folder.").format(path=path) for path in missing))
        items = [*urls, *(p for p in paths if p not in missing)]
        if items:
            self.window.queue_items(items)

    # -- messages ----------------------------------------------------------------------------------------

    def show_status(self, text: str) -> None:
        status_bar = getattr(self.window, "statusBar", None)
        if callable(status_bar):
            status_bar().showMessage(text, 10_000)
        else:
            log.warning("%s", text)


# -- process entry points --------------------------------------------------------------------------------


def install_signal_handlers(loop: asyncio.AbstractEventLoop, on_signal: Callable[[], None]) -> QTimer | None:
    """SIGINT/SIGTERM quit cleanly. Returns a wake-up timer when the loop cannot watch signals itself.

    On Unix qasync's loop is a selector loop: ``add_signal_handler`` wakes it through a self-pipe. Elsewhere
    a Python-level handler runs only when Python code runs, so a cheap timer gives it the chance.
    """
    signals = [signal.SIGINT, *([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])]
    try:
        for sig in signals:
            loop.add_signal_handler(sig, on_signal)
        return None
    except (NotImplementedError, RuntimeError, ValueError):
        for sig in signals:
            signal.signal(sig, lambda *_args: loop.call_soon_threadsafe(on_signal))
        timer = QTimer()
        timer.timeout.connect(lambda: None)
        timer.start(250)
        return timer


class FileOpenForwarder(QObject):
    """macOS hands "Open With", clicked links and Dock drops to a running app as QFileOpenEvent, not as argv:
    pass them on like a second launch's arguments."""

    def __init__(self, open_items: Callable[[list[str]], None]) -> None:
        super().__init__()
        self._open_items = open_items

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent):
            url = event.url()
            self._open_items([url.toLocalFile() if url.isLocalFile() else url.toString()])
            return True
        return False


def run_app(arguments: Sequence[str] = ()) -> int:
    """Run the desktop app; ``arguments`` are URLs and files from the command line. Returns the exit status.

    A running instance (same user, same data dir) gets the arguments instead, and this process exits 0.
    """
    import qasync

    app = create_application([sys.argv[0] if sys.argv else "rusty-cat"])
    forwarded = normalize_arguments(arguments)
    name = instance_name()
    if send_arguments(name, forwarded):
        return 0
    instance: SingleInstance | None = SingleInstance(name)
    assert instance is not None
    if not instance.listen():
        # Another instance started at the same moment and won: give it the arguments instead.
        if send_arguments(name, forwarded, timeout_ms=5000):
            return 0
        log.warning("another Rusty Cat seems to be running but does not answer; starting anyway")
        instance = None

    translators = install_translations(app)
    from app.manager.manager import TransferManager

    collector = GuiThreadCollector(app)  # before any engine thread runs: Qt objects die on the GUI thread only
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    shell = AppShell(TransferManager(), Preferences(), instance=instance)
    file_open = FileOpenForwarder(shell.open_arguments)
    app.installEventFilter(file_open)
    wakeup = install_signal_handlers(loop, shell.request_quit)
    try:
        with loop:
            code = loop.run_until_complete(shell.run(forwarded))
    except Exception as exc:  # start-up failed (database, data dir): say so instead of a silent exit
        log.exception("Rusty Cat could not start")
        print(f"rusty-cat: {exc}", file=sys.stderr)
        QMessageBox.critical(None, APP_NAME, _tr("Rusty Cat could not start:") + f"\n{exc}")
        code = 1
    finally:
        asyncio.set_event_loop(None)
        app.removeEventFilter(file_open)
        collector.stop()
        del wakeup, translators
    return code


def self_test() -> int:
    """Boot the real window offscreen on a throwaway data dir and settings, close it, exit 0 on success."""
    import qasync

    from app.selftest_checks import run_self_checks

    if not run_self_checks():  # providers, keyring, TLS, icons, versions
        return 1

    # Forced, not defaulted: the self-test must never depend on (or pop up on) a display.
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = create_application([sys.argv[0] if sys.argv else "rusty-cat"])
    with tempfile.TemporaryDirectory(prefix="rusty-cat-self-test-") as tmp:
        # Every QSettings() of this process (preferences, the window's geometry) goes to the temp dir too.
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, os.path.join(tmp, "settings"))
        preferences = Preferences()
        collector = GuiThreadCollector(app)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        try:
            with loop:
                ok = loop.run_until_complete(_self_test(preferences, os.path.join(tmp, "data")))
        except Exception as exc:
            print(f"self-test failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            asyncio.set_event_loop(None)
            collector.stop()
    if not ok:
        print("self-test failed: the main window did not come up", file=sys.stderr)
        return 1
    print("self-test ok")
    return 0


async def _self_test(preferences: Preferences, data_dir: str) -> bool:
    """The real shell (manager, preferences applied, window, tray) minus the single-instance socket."""
    from app.manager.manager import TransferManager

    os.makedirs(data_dir, exist_ok=True)
    shell = AppShell(TransferManager(data_dir), preferences)
    try:
        await shell.start()
        await asyncio.sleep(0.05)  # let Qt lay out and paint once
        ok = shell.window is not None and shell.window.isVisible()
    finally:
        await shell.shutdown()
    return bool(ok) and not shell.window.isVisible()
