"""MainWindow over a FakeManager: rows, action enablement, actions reaching the manager, drag and drop with real
QDropEvents, paste, status bar, dialogs opened lazily, close/quit signals and saved header state."""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, QMimeData, QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeySequence

from app.manager.jobs import Direction, JobOptions, JobStatus
from app.manager.manager import ManagerError
from app.ui.job_filter_proxy import StatusFilter
from app.ui.job_table_model import Column
from app.ui.main_window import MainWindow, download_urls_from_text, split_items
from tests.ui.conftest import drop
from tests.ui.fake_manager import FakeManager

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20


@dataclass
class Prefs:
    """Stand-in for app.ui.preferences.Preferences (the attributes the window uses)."""

    default_download_dir: str
    default_upload_remote: str
    connections: int = 3
    chunk_size: int = 2 * MiB


@pytest.fixture
def prefs(tmp_path: Path) -> Prefs:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    return Prefs(default_download_dir=str(downloads), default_upload_remote="oss://work/bucket/inbox")


@pytest.fixture
def window(qtbot, aloop, manager: FakeManager, prefs: Prefs) -> MainWindow:
    win = MainWindow(manager, prefs)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def shown(win: MainWindow) -> list[str]:
    return [win.proxy.index(row, Column.NAME).data() for row in range(win.proxy.rowCount())]


def select(win: MainWindow, *names: str) -> None:
    selection = win.view.selectionModel()
    selection.clearSelection()
    for row in range(win.proxy.rowCount()):
        if win.proxy.index(row, Column.NAME).data() in names:
            selection.select(win.proxy.index(row, 0),
                             QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


def enabled(win: MainWindow) -> dict[str, bool]:
    return {name: getattr(win, f"{name}_action").isEnabled()
            for name in ("pause", "resume", "cancel", "retry", "remove", "open_folder", "copy_link")}


# ---- pure helpers -----------------------------------------------------------------------------------------------


def test_urls_from_pasted_text() -> None:
    text = "https://a.test/x.bin\n\n  oss://acct/bucket/y.bin \nnot a url\nftp://old.test/z\nhttps://a.test/x.bin\n"
    assert download_urls_from_text(text) == ["https://a.test/x.bin", "oss://acct/bucket/y.bin"]


def test_split_items() -> None:
    urls, paths = split_items(["https://h/a", "oss://acct/b/k", "file:///tmp/x%20y.txt", "/tmp/z", "mailto:x@y",
                               "magnet://nope"])
    assert urls == ["https://h/a", "oss://acct/b/k"]
    # Anything that is not a download URL is taken for a path, so a typo is reported missing, not dropped.
    assert paths == ["/tmp/x y.txt", "/tmp/z", "mailto:x@y", "magnet://nope"]


# ---- the table and the selection --------------------------------------------------------------------------------


def test_window_shows_existing_and_new_jobs(qtbot, aloop, manager: FakeManager, prefs: Prefs) -> None:
    manager.make_job("old.bin", status=JobStatus.COMPLETED, total=10, done=10)
    win = MainWindow(manager, prefs)
    qtbot.addWidget(win)
    assert win.windowTitle() == "Rusty Cat"
    assert shown(win) == ["old.bin"]
    manager.make_job("new.bin", status=JobStatus.QUEUED)
    assert shown(win) == ["old.bin", "new.bin"]
    qtbot.waitUntil(lambda: win.sidebar.item_text(StatusFilter.ALL) == "All (2)", timeout=2000)


def test_actions_apply_only_to_the_selection(qtbot, window: MainWindow, manager: FakeManager) -> None:
    manager.make_job("active.bin", status=JobStatus.ACTIVE, total=100)
    manager.make_job("queued.bin", status=JobStatus.QUEUED)
    manager.make_job("paused.bin", status=JobStatus.PAUSED)
    manager.make_job("failed.bin", status=JobStatus.FAILED, error="boom")
    manager.make_job("done.bin", status=JobStatus.COMPLETED)
    manager.make_job("canceled.bin", status=JobStatus.CANCELED)
    window.model.flush()
    assert not any(enabled(window).values())
    select(window, "active.bin")
    assert enabled(window) == {"pause": True, "resume": False, "cancel": True, "retry": False, "remove": True,
                               "open_folder": True, "copy_link": True}
    select(window, "paused.bin", "done.bin")
    assert enabled(window) == {"pause": False, "resume": True, "cancel": True, "retry": False, "remove": True,
                               "open_folder": False, "copy_link": False}
    select(window, "done.bin")
    assert enabled(window) == {"pause": False, "resume": False, "cancel": False, "retry": False, "remove": True,
                               "open_folder": True, "copy_link": True}
    select(window, "failed.bin", "canceled.bin")
    assert enabled(window) == {"pause": False, "resume": False, "cancel": False, "retry": True, "remove": True,
                               "open_folder": False, "copy_link": False}
    # Enablement follows status changes of the selected job, not only selection changes.
    select(window, "queued.bin")
    assert window.pause_action.isEnabled()
    manager.update(manager.jobs[1], status=JobStatus.PAUSED)
    qtbot.waitUntil(lambda: window.resume_action.isEnabled() and not window.pause_action.isEnabled(), timeout=2000)
    qtbot.waitUntil(window.resume_all_action.isEnabled, timeout=2000)


def test_actions_follow_rows_that_leave_the_selection(qtbot, window: MainWindow, manager: FakeManager) -> None:
    a = manager.make_job("a.bin", status=JobStatus.ACTIVE)
    manager.make_job("b.bin", status=JobStatus.PAUSED)
    window.model.flush()
    select(window, "a.bin", "b.bin")
    assert window.pause_action.isEnabled() and window.resume_action.isEnabled()
    window.sidebar.set_current_filter(StatusFilter.PAUSED)  # hides a.bin, which leaves the selection
    assert [job.name for job in window.selected_jobs()] == ["b.bin"]
    assert not window.pause_action.isEnabled()
    window.sidebar.set_current_filter(StatusFilter.ALL)
    select(window, "a.bin")
    window.model.jobs_removed([a.id])  # removed by someone else (the CLI, another window)
    assert window.selected_jobs() == []
    assert not window.remove_action.isEnabled()


def test_toolbar_pause_and_resume_call_the_manager_with_the_selected_ids(qtbot, window: MainWindow,
                                                                        manager: FakeManager) -> None:
    a = manager.make_job("a.bin", status=JobStatus.ACTIVE, total=100)
    manager.make_job("b.bin", status=JobStatus.COMPLETED)
    c = manager.make_job("c.bin", status=JobStatus.QUEUED)
    window.model.flush()
    select(window, "a.bin", "b.bin", "c.bin")
    button = window.toolbar.widgetForAction(window.pause_action)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: manager.calls_to("pause") != [], timeout=2000)
    assert manager.calls_to("pause") == [(([a.id, c.id],), {})]  # the completed one is not sent
    qtbot.waitUntil(lambda: window.resume_action.isEnabled(), timeout=2000)
    assert window.model.index(0, Column.STATUS).data() == "Paused"
    qtbot.mouseClick(window.toolbar.widgetForAction(window.resume_action), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: manager.calls_to("resume") == [(([a.id, c.id],), {})], timeout=2000)


def test_cancel_retry_and_all_actions(qtbot, window: MainWindow, manager: FakeManager) -> None:
    a = manager.make_job("a.bin", status=JobStatus.ACTIVE)
    f = manager.make_job("f.bin", status=JobStatus.FAILED, error="E")
    window.model.flush()
    select(window, "a.bin", "f.bin")
    window.cancel_action.trigger()
    window.retry_action.trigger()
    qtbot.waitUntil(lambda: bool(manager.calls_to("cancel") and manager.calls_to("retry")), timeout=2000)
    assert manager.calls_to("cancel") == [(([a.id],), {})]
    assert manager.calls_to("retry") == [(([f.id],), {})]
    qtbot.waitUntil(window.pause_all_action.isEnabled, timeout=2000)  # the retried job is queued
    window.pause_all_action.trigger()
    qtbot.waitUntil(lambda: manager.calls_to("pause_all") != [], timeout=2000)
    qtbot.waitUntil(lambda: window.resume_all_action.isEnabled(), timeout=2000)
    window.resume_all_action.trigger()
    qtbot.waitUntil(lambda: manager.calls_to("resume_all") != [], timeout=2000)


def test_a_manager_error_is_shown_without_blocking(qtbot, window: MainWindow, manager: FakeManager) -> None:
    manager.make_job("a.bin", status=JobStatus.ACTIVE)
    window.model.flush()
    select(window, "a.bin")
    manager.fail["pause"] = ManagerError("The job is already finishing.")
    window.pause_action.trigger()  # returns at once; the error arrives from the task
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(), timeout=2000)
    assert window.error_box.informativeText() == "The job is already finishing."
    assert "already finishing" in window.statusBar().currentMessage()
    window.error_box.accept()


def test_remove_asks_and_can_delete_partial_files(qtbot, window: MainWindow, manager: FakeManager) -> None:
    part = manager.make_job("part.iso", status=JobStatus.PAUSED, direction=Direction.DOWNLOAD)
    manager.make_job("keep.iso", status=JobStatus.PAUSED)
    window.model.flush()
    select(window, "part.iso")
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_Delete)  # the Delete shortcut
    box = window.remove_box
    assert box is not None and box.isVisible()
    assert box.checkBox() is not None and box.checkBox().text() == "Also delete partial files"
    box.checkBox().setChecked(True)
    qtbot.mouseClick(box.button(box.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: manager.calls_to("remove") != [], timeout=2000)
    assert manager.calls_to("remove") == [(([part.id],), {"delete_files": True})]
    assert shown(window) == ["keep.iso"]


def test_remove_can_be_canceled_and_uploads_get_no_checkbox(qtbot, window: MainWindow,
                                                            manager: FakeManager) -> None:
    manager.make_job("up.txt", status=JobStatus.COMPLETED, direction=Direction.UPLOAD)
    window.model.flush()
    select(window, "up.txt")
    window.remove_action.trigger()
    box = window.remove_box
    assert box is not None and box.checkBox() is None
    qtbot.mouseClick(box.button(box.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.remove_box is None, timeout=2000)
    qtbot.wait(50)
    assert manager.calls_to("remove") == []
    assert shown(window) == ["up.txt"]


def test_delete_in_the_filter_box_edits_text_instead_of_removing(qtbot, window: MainWindow,
                                                                 manager: FakeManager) -> None:
    manager.make_job("a.bin", status=JobStatus.PAUSED)
    window.model.flush()
    select(window, "a.bin")
    window.activateWindow()
    qtbot.keySequence(window, QKeySequence(QKeySequence.StandardKey.Find))
    assert window.filter_edit.hasFocus()
    qtbot.keyClicks(window.filter_edit, "abc")
    window.filter_edit.setCursorPosition(0)
    qtbot.keyClick(window.filter_edit, Qt.Key.Key_Delete)
    assert window.filter_edit.text() == "bc"
    assert window.remove_box is None


def test_open_folder_and_copy_link(qtbot, window: MainWindow, manager: FakeManager, tmp_path: Path) -> None:
    manager.make_job("a.bin", status=JobStatus.COMPLETED, local_path=str(tmp_path / "dl" / "a.bin"),
                     remote="https://cdn.test/files/a.bin")
    window.model.flush()
    select(window, "a.bin")

    class Handler(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.urls: list[QUrl] = []

        @Slot(QUrl)
        def open(self, url: QUrl) -> None:
            self.urls.append(url)

    handler = Handler()
    QDesktopServices.setUrlHandler("file", handler, "open")
    try:
        window.open_folder_action.trigger()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [url.toLocalFile() for url in handler.urls] == [str(tmp_path / "dl")]
    window.copy_link_action.trigger()
    assert QGuiApplication.clipboard().text() == "https://cdn.test/files/a.bin"


# ---- filters and status bar ---------------------------------------------------------------------------------------


def test_filter_box_and_sidebar_filter_the_table(qtbot, window: MainWindow, manager: FakeManager) -> None:
    manager.make_job("holiday.mkv", status=JobStatus.ACTIVE)
    manager.make_job("report.pdf", status=JobStatus.PAUSED)
    manager.make_job("holiday-2.mkv", status=JobStatus.PAUSED)
    window.model.flush()
    qtbot.keyClicks(window.filter_edit, "HOLIDAY")
    assert shown(window) == ["holiday.mkv", "holiday-2.mkv"]
    window.sidebar.set_current_filter(StatusFilter.PAUSED)
    assert shown(window) == ["holiday-2.mkv"]
    window.filter_edit.clear()
    assert shown(window) == ["report.pdf", "holiday-2.mkv"]
    assert window.sidebar.item_text(StatusFilter.PAUSED) == "Paused (2)"


def test_status_bar_shows_totals_and_the_speed_limit(qtbot, window: MainWindow, manager: FakeManager) -> None:
    manager.make_job("down.bin", status=JobStatus.ACTIVE, speed=2 * MiB)
    manager.make_job("up.bin", status=JobStatus.ACTIVE, speed=512 * 1024, direction=Direction.UPLOAD)
    qtbot.waitUntil(lambda: window.active_label.text() == "Active: 2", timeout=2000)
    assert window.speed_label.text() == "↓ 2.0 MiB/s  ↑ 512.0 KiB/s"
    assert window.limit_label.text() == "No speed limit"
    manager.rate_limit = 5 * MiB  # picked up by the one-second refresh even without job changes
    qtbot.waitUntil(lambda: window.limit_label.text() == "Speed limit: 5.0 MiB/s", timeout=3000)


# ---- drag and drop, paste -----------------------------------------------------------------------------------------


def test_drop_a_file_queues_an_upload_to_the_default_remote(qtbot, window: MainWindow, manager: FakeManager,
                                                            tmp_path: Path) -> None:
    file = tmp_path / "report final.pdf"
    file.write_bytes(b"%PDF")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(file))])
    # Dropped on the table: Qt hands the drag to the nearest ancestor that accepts drops (the window).
    viewport = window.view.viewport()
    assert drop(viewport, mime, viewport.rect().center())
    qtbot.waitUntil(lambda: manager.calls_to("add_upload") != [], timeout=3000)
    assert [args for args, _ in manager.calls_to("add_upload")] == [
        (str(file), "oss://work/bucket/inbox/report final.pdf")]
    qtbot.waitUntil(lambda: shown(window) == ["report final.pdf"], timeout=2000)


def test_drop_a_folder_queues_one_upload_per_file_with_relative_paths(qtbot, window: MainWindow,
                                                                       manager: FakeManager, tmp_path: Path) -> None:
    root = tmp_path / "album"
    (root / "disc 1").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "cover.jpg").write_bytes(b"j")
    (root / "disc 1" / "01.flac").write_bytes(b"f")
    (root / "disc 1" / "02.flac").write_bytes(b"f")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(root))])
    assert drop(window, mime)
    qtbot.waitUntil(lambda: len(manager.calls_to("add_upload")) == 3, timeout=3000)
    assert sorted(args for args, _ in manager.calls_to("add_upload")) == [
        (str(root / "cover.jpg"), "oss://work/bucket/inbox/album/cover.jpg"),
        (str(root / "disc 1" / "01.flac"), "oss://work/bucket/inbox/album/disc 1/01.flac"),
        (str(root / "disc 1" / "02.flac"), "oss://work/bucket/inbox/album/disc 1/02.flac"),
    ]


def test_drop_a_url_queues_a_download(qtbot, window: MainWindow, manager: FakeManager, prefs: Prefs) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl("https://cdn.example.test/big%20file.iso?token=abc")])
    assert drop(window, mime)
    qtbot.waitUntil(lambda: manager.calls_to("add_download") != [], timeout=3000)
    assert [args for args, _ in manager.calls_to("add_download")] == [
        ("https://cdn.example.test/big%20file.iso?token=abc", prefs.default_download_dir)]


def test_dropped_text_with_links_queues_downloads(qtbot, window: MainWindow, manager: FakeManager,
                                                  prefs: Prefs) -> None:
    mime = QMimeData()
    mime.setText("azure://acct/container/a.bin\nhttps://h.test/b.bin")
    assert drop(window, mime)
    qtbot.waitUntil(lambda: len(manager.calls_to("add_download")) == 2, timeout=3000)
    assert [args[0] for args, _ in manager.calls_to("add_download")] == ["azure://acct/container/a.bin",
                                                                          "https://h.test/b.bin"]


def test_a_drag_without_files_or_links_is_refused(qtbot, window: MainWindow, manager: FakeManager) -> None:
    mime = QMimeData()
    mime.setText("just some words")
    assert not drop(window, mime)
    mime = QMimeData()
    mime.setUrls([QUrl("mailto:someone@example.test")])
    assert not drop(window, mime)
    qtbot.wait(50)
    assert manager.calls == []


def test_without_a_default_remote_the_window_asks_once(qtbot, window: MainWindow, manager: FakeManager,
                                                       prefs: Prefs, tmp_path: Path) -> None:
    prefs.default_upload_remote = ""
    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    first.write_text("1")
    second.write_text("2")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(first))])
    assert drop(window, mime)
    dialog = window.upload_remote_dialog
    assert dialog is not None and dialog.isVisible()
    mime2 = QMimeData()
    mime2.setUrls([QUrl.fromLocalFile(str(second))])
    assert drop(window, mime2)  # a second drop while asking joins the first: still one question
    assert window.upload_remote_dialog is dialog
    dialog.setTextValue(" azure://acct/container/in ")
    dialog.accept()
    qtbot.waitUntil(lambda: len(manager.calls_to("add_upload")) == 2, timeout=3000)
    assert prefs.default_upload_remote == "azure://acct/container/in"
    assert [args for args, _ in manager.calls_to("add_upload")] == [
        (str(first), "azure://acct/container/in/one.txt"), (str(second), "azure://acct/container/in/two.txt")]
    assert drop(window, mime)
    assert window.upload_remote_dialog is None  # not asked again
    qtbot.waitUntil(lambda: len(manager.calls_to("add_upload")) == 3, timeout=3000)


def test_declining_the_question_queues_nothing(qtbot, window: MainWindow, manager: FakeManager, prefs: Prefs,
                                               tmp_path: Path) -> None:
    prefs.default_upload_remote = ""
    file = tmp_path / "x.txt"
    file.write_text("x")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(file))])
    assert drop(window, mime)
    window.upload_remote_dialog.reject()
    qtbot.wait(50)
    assert manager.calls_to("add_upload") == []
    assert prefs.default_upload_remote == ""


def test_paste_urls_with_ctrl_v(qtbot, window: MainWindow, manager: FakeManager, prefs: Prefs) -> None:
    QGuiApplication.clipboard().setText("https://a.test/x.bin\n\n  oss://acct/bucket/y.bin \nnot a url\n")
    window.activateWindow()
    window.view.setFocus()
    qtbot.keySequence(window.view, QKeySequence(QKeySequence.StandardKey.Paste))
    qtbot.waitUntil(lambda: len(manager.calls_to("add_download")) == 2, timeout=3000)
    assert [args for args, _ in manager.calls_to("add_download")] == [
        ("https://a.test/x.bin", prefs.default_download_dir), ("oss://acct/bucket/y.bin", prefs.default_download_dir)]


def test_paste_without_links_says_so(qtbot, window: MainWindow, manager: FakeManager) -> None:
    QGuiApplication.clipboard().setText("hello")
    window.paste_action.trigger()
    assert "no link" in window.statusBar().currentMessage()
    qtbot.wait(50)
    assert manager.calls == []


def test_failed_adds_are_reported_once(qtbot, window: MainWindow, manager: FakeManager) -> None:
    manager.fail["add_download"] = ManagerError("Unsupported URL.")
    window.queue_items(["https://a.test/1", "https://a.test/2?sig=SECRET"])
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(), timeout=3000)
    assert window.error_box.text() == "Could not add 2 download(s)"
    assert window.error_box.informativeText() == ("https://a.test/1: Unsupported URL.\n"
                                                  "https://a.test/2?sig=REDACTED: Unsupported URL.")
    window.error_box.accept()


def test_an_empty_folder_and_a_refused_link_are_reported_in_one_box(qtbot, window: MainWindow,
                                                                     manager: FakeManager, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    manager.fail["add_download"] = ManagerError("Unsupported URL.")
    window.queue_items([str(empty), "https://a.test/1"])  # two tasks, two reports, one box
    qtbot.waitUntil(lambda: window.error_box is not None
                    and f"Nothing to upload in {empty}" in window.error_box.informativeText()
                    and "https://a.test/1: Unsupported URL." in window.error_box.informativeText(), timeout=3000)
    assert manager.calls_to("add_upload") == []
    window.error_box.accept()


def test_downloads_go_to_a_created_default_folder_with_the_preferred_options(qtbot, window: MainWindow,
                                                                              manager: FakeManager, prefs: Prefs,
                                                                              tmp_path: Path) -> None:
    prefs.default_download_dir = str(tmp_path / "not" / "yet")
    window.queue_downloads(["https://h.test/a.iso"])
    qtbot.waitUntil(lambda: manager.calls_to("add_download") != [], timeout=3000)
    [(args, kwargs)] = manager.calls_to("add_download")
    assert args == ("https://h.test/a.iso", prefs.default_download_dir)
    assert kwargs["options"] == JobOptions(connections=3, chunk_size=2 * MiB)
    assert (tmp_path / "not" / "yet").is_dir()


def test_a_download_folder_that_cannot_be_created_is_reported(qtbot, window: MainWindow, manager: FakeManager,
                                                             prefs: Prefs, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    prefs.default_download_dir = str(tmp_path / "file" / "sub")
    window.queue_downloads(["https://h.test/a.iso", "https://h.test/b.iso"])
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(), timeout=3000)
    assert window.error_box.text() == "Could not add 2 download(s)"
    assert window.error_box.informativeText().startswith(f"Cannot create the download folder {tmp_path / 'file'}")
    assert manager.calls_to("add_download") == []
    window.error_box.accept()


def test_uploads_to_a_plain_endpoint_keep_its_url(qtbot, window: MainWindow, manager: FakeManager, prefs: Prefs,
                                                  tmp_path: Path) -> None:
    """The default chunk protocol carries the file name in the request body: the endpoint URL never changes."""
    prefs.default_upload_remote = "https://up.test/api/upload"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a b.txt").write_text("a")
    (tmp_path / "c.txt").write_text("c")
    window.queue_uploads([str(tmp_path / "docs"), str(tmp_path / "c.txt")])
    qtbot.waitUntil(lambda: len(manager.calls_to("add_upload")) == 2, timeout=3000)
    assert [args for args, _ in manager.calls_to("add_upload")] == [
        (str(tmp_path / "docs" / "a b.txt"), "https://up.test/api/upload"),
        (str(tmp_path / "c.txt"), "https://up.test/api/upload")]
    assert {kwargs["options"] for _, kwargs in manager.calls_to("add_upload")} == {JobOptions(chunk_size=2 * MiB)}


def test_queue_items_from_the_command_line(qtbot, window: MainWindow, manager: FakeManager,
                                           tmp_path: Path) -> None:
    file = tmp_path / "a.txt"
    file.write_text("a")
    window.queue_items([QUrl.fromLocalFile(str(file)).toString(), "https://h.test/b.bin"])
    qtbot.waitUntil(lambda: bool(manager.calls_to("add_upload") and manager.calls_to("add_download")),
                    timeout=3000)
    assert manager.calls_to("add_upload")[0][0] == (str(file), "oss://work/bucket/inbox/a.txt")


# ---- shortcuts, dialogs, quit, close, saved state -----------------------------------------------------------------


def test_standard_shortcuts(window: MainWindow) -> None:
    std = QKeySequence.StandardKey
    assert window.remove_action.shortcut() == QKeySequence(std.Delete)
    assert window.paste_action.shortcut() == QKeySequence(std.Paste)
    assert window.add_upload_action.shortcut() == QKeySequence(std.Open)
    assert window.add_download_action.shortcut() == QKeySequence(std.New)
    assert window.find_action.shortcut() == QKeySequence(std.Find)
    assert window.quit_action.shortcut() == QKeySequence(std.Quit)


@pytest.fixture
def fake_dialogs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple, dict]]:
    """Stand-ins for app.ui.dialogs.* (built by another helper), recording how the window opens them."""
    opened: list[tuple[str, tuple, dict]] = []
    try:
        importlib.import_module("app.ui.dialogs")
    except ImportError:
        monkeypatch.setitem(sys.modules, "app.ui.dialogs", types.ModuleType("app.ui.dialogs"))
    for module, cls in (("new_download", "NewDownloadDialog"), ("new_upload", "NewUploadDialog"),
                        ("accounts", "AccountsDialog"), ("preferences", "PreferencesDialog")):
        fake = types.ModuleType(f"app.ui.dialogs.{module}")

        def make(name: str) -> type:
            class Dialog:
                def __init__(self, *args: object, **kwargs: object) -> None:
                    self.args, self.kwargs = args, kwargs

                def open(self) -> None:
                    opened.append((name, self.args, self.kwargs))

            return Dialog

        setattr(fake, cls, make(cls))
        monkeypatch.setitem(sys.modules, f"app.ui.dialogs.{module}", fake)
    return opened


def test_dialog_actions_open_the_dialogs(window: MainWindow, manager: FakeManager, prefs: Prefs,
                                         fake_dialogs: list) -> None:
    window.add_download_action.trigger()
    window.add_upload_action.trigger()
    window.accounts_action.trigger()
    window.preferences_action.trigger()
    assert fake_dialogs == [
        ("NewDownloadDialog", (manager, prefs), {"parent": window, "url": ""}),
        ("NewUploadDialog", (manager, prefs), {"parent": window, "files": []}),
        ("AccountsDialog", (manager.accounts,), {"parent": window}),
        ("PreferencesDialog", (prefs,), {"parent": window, "network": manager}),  # the manager applies the proxy
    ]


def test_quit_emits_quit_requested(qtbot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.quit_requested, timeout=1000):
        window.quit_action.trigger()


def test_close_is_accepted_unless_the_handler_ignores_it(qtbot, window: MainWindow) -> None:
    seen = []
    window.close_handler = lambda event: (seen.append(event), event.ignore())
    with qtbot.waitSignal(window.close_requested, timeout=1000):
        assert not window.close()
    assert window.isVisible() and len(seen) == 1
    window.close_handler = None
    assert window.close()
    assert not window.isVisible()


def test_header_state_is_saved_and_restored(qtbot, aloop, manager: FakeManager, prefs: Prefs) -> None:
    manager.make_job("small", total=1)
    manager.make_job("big", total=5 << 30)
    first = MainWindow(manager, prefs)
    qtbot.addWidget(first)
    first.view.sortByColumn(Column.SIZE, Qt.SortOrder.DescendingOrder)
    first.view.horizontalHeader().resizeSection(Column.REMOTE, 333)
    assert first.close()
    first.detach()
    second = MainWindow(manager, prefs)
    qtbot.addWidget(second)
    header = second.view.horizontalHeader()
    assert header.sortIndicatorSection() == Column.SIZE
    assert header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
    assert header.sectionSize(Column.REMOTE) == 333
    assert shown(second) == ["big", "small"]  # the model is sorted by the restored indicator


def test_a_destroyed_window_stops_listening(qtbot, aloop, manager: FakeManager, prefs: Prefs) -> None:
    win = MainWindow(manager, prefs)
    assert manager.listeners == [win.model]
    win.deleteLater()
    qtbot.waitUntil(lambda: manager.listeners == [], timeout=2000)
    manager.make_job("after.bin")  # would raise "C++ object already deleted" if the dead model were still called


class _NoKeyring:
    """A SecretStore without a usable keyring (what a headless Linux session has)."""

    unavailable_reason = "No usable OS keyring to keep secrets in: no keyring backend is available."

    def __init__(self) -> None:
        self.session_only = False

    async def probe(self) -> bool:
        return False

    def allow_session_only(self) -> None:
        self.session_only = True


def test_no_keyring_is_said_plainly_with_an_explicit_run_only_choice(qtbot, aloop, manager: FakeManager,
                                                                      prefs: Prefs) -> None:
    secrets = _NoKeyring()
    manager.secrets = secrets  # type: ignore[attr-defined]
    win = MainWindow(manager, prefs)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(win.keyring_button.isVisible, timeout=3000)
    assert "keyring" in win.keyring_warning.text().lower()
    assert "no keyring backend" in win.keyring_warning.toolTip()
    assert not secrets.session_only  # nothing is chosen for the user
    qtbot.mouseClick(win.keyring_button, Qt.MouseButton.LeftButton)
    assert secrets.session_only and not win.keyring_button.isVisible()


def test_a_usable_keyring_shows_no_warning(qtbot, window: MainWindow) -> None:
    qtbot.wait(50)
    assert not window.keyring_button.isVisible() and not window.keyring_warning.isVisible()
