"""Pieces every dialog shares: an inline message line, non-blocking folder/file pickers, task bookkeeping.

Why not QFileDialog.getExistingDirectory & co: those static helpers run a nested event loop, which under
qasync re-enters the asyncio loop the manager lives on. A QFileDialog instance opened with ``open()`` and a
callback does the same job without nesting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLayout, QSizePolicy, QStyle, QWidget


def tr(context: str, text: str) -> str:
    return QCoreApplication.translate(context, text)


class MessageLine(QWidget):
    """An inline message under a form: an icon and a wrapped sentence, hidden while empty.

    The text keeps the palette's colours (light/dark themes follow the system); the standard warning or
    information icon carries the meaning instead of a hard-coded red.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._icon = QLabel(self)
        self._label = QLabel(self)
        self._label.setWordWrap(True)
        self._label.setObjectName("messageText")
        self._label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._icon, 0)
        layout.addWidget(self._label, 1)
        self.kind = ""
        self.hide()

    def text(self) -> str:
        return self._label.text() if self.kind else ""

    def show_error(self, text: str) -> None:
        self._show(text, QStyle.StandardPixmap.SP_MessageBoxWarning, "error")

    def show_info(self, text: str) -> None:
        self._show(text, QStyle.StandardPixmap.SP_MessageBoxInformation, "info")

    def clear(self) -> None:
        self.kind = ""
        self._label.clear()
        self.hide()

    def _show(self, text: str, icon: QStyle.StandardPixmap, kind: str) -> None:
        self.kind = kind
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self._icon.setPixmap(self.style().standardIcon(icon).pixmap(size, size))
        self._label.setText(text)
        self.show()


def pick_directory(parent: QWidget, title: str, start: str, on_chosen: Callable[[str], None]) -> QFileDialog:
    """Open a folder picker without a nested loop; ``on_chosen(path)`` runs when the user confirms."""
    dialog = QFileDialog(parent, title, start)
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    dialog.fileSelected.connect(on_chosen)
    dialog.open()
    return dialog


def pick_files(parent: QWidget, title: str, start: str, on_chosen: Callable[[list[str]], None]) -> QFileDialog:
    """Open a multi-file picker without a nested loop; ``on_chosen(paths)`` runs when the user confirms."""
    dialog = QFileDialog(parent, title, start)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
    dialog.filesSelected.connect(on_chosen)
    dialog.open()
    return dialog


class TaskOwner:
    """Keeps strong references to a dialog's asyncio tasks (a bare ensure_future may be garbage-collected)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def start(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def busy(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def add_layout_row(form: QFormLayout, text: str, row: QLayout, buddy: QWidget) -> None:
    """A form row whose field is a layout: Qt gives such a row's label no buddy, so its "&" mnemonic would show
    as a literal ampersand and the shortcut would go nowhere."""
    label = QLabel(text, form.parentWidget())
    label.setBuddy(buddy)
    form.addRow(label, row)
