"""New download: one or more URLs, a destination folder, connections and an optional SHA-256.

The dialog closes only after the manager has accepted every URL; when it refuses one (ManagerError), its
sentence is shown inline and the dialog stays open with the URLs that were not queued yet, so pressing OK
again never queues a URL twice.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.manager.jobs import Job, JobOptions
from app.manager.manager import ManagerError
from app.ui.dialogs.common import MessageLine, TaskOwner, add_layout_row, pick_directory, tr
from app.ui.preferences import MAX_CONNECTIONS

if TYPE_CHECKING:
    from app.manager.manager import TransferManager
    from app.ui.preferences import Preferences

__all__ = ["URL_SCHEMES", "NewDownloadDialog", "parse_urls", "validate_sha256"]

URL_SCHEMES = ("http", "https", "oss", "azure")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_CTX = "NewDownloadDialog"


def parse_urls(text: str) -> tuple[list[str], list[str]]:
    """Split the URL box into (urls, bad lines); blank lines are ignored, duplicates kept once."""
    urls: list[str] = []
    bad: list[str] = []
    for line in text.splitlines():
        url = line.strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme.lower() not in URL_SCHEMES or not parts.netloc:
            bad.append(url)
        elif url not in urls:
            urls.append(url)
    return urls, bad


def validate_sha256(text: str) -> str | None:
    """Return the checksum in lower case, None when empty; raise ValueError with a sentence otherwise."""
    value = text.strip()
    if not value:
        return None
    if not _SHA256.fullmatch(value):
        raise ValueError(tr(_CTX, "The SHA-256 checksum must be 64 hexadecimal characters (0-9, a-f)."))
    return value.lower()


def _short(url: str) -> str:
    """A URL as it may be shown: scheme, host and path, never the query (it may carry a signature)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else url.split("?", 1)[0]


class NewDownloadDialog(QDialog):
    """Queue downloads; ``jobs_added(list[Job])`` fires once the manager has accepted them."""

    jobs_added = Signal(list)

    def __init__(
        self,
        manager: TransferManager | Any,
        preferences: Preferences,
        parent: QWidget | None = None,
        url: str = "",
    ) -> None:
        super().__init__(parent)
        self._manager = manager
        self._preferences = preferences
        self._tasks = TaskOwner()
        self._picker: QWidget | None = None
        self.setWindowTitle(tr(_CTX, "New Download"))
        self.setWindowModality(Qt.WindowModality.WindowModal)

        self.urls_edit = QPlainTextEdit(self)
        self.urls_edit.setPlaceholderText(tr(_CTX, "One URL per line (http, https, oss:// or azure://)"))
        self.urls_edit.setTabChangesFocus(True)
        self.urls_edit.setPlainText(url)
        self.urls_edit.setMinimumHeight(90)

        self.folder_edit = QLineEdit(preferences.default_download_dir, self)
        self.browse_button = QPushButton(tr(_CTX, "Browse…"), self)
        self.browse_button.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.browse_button)

        self.connections_spin = QSpinBox(self)
        self.connections_spin.setRange(1, MAX_CONNECTIONS)
        self.connections_spin.setValue(preferences.connections)
        self.connections_spin.setToolTip(tr(_CTX, "Parallel connections used for each file"))

        self.sha256_edit = QLineEdit(self)
        self.sha256_edit.setPlaceholderText(tr(_CTX, "Optional: expected SHA-256 (64 hex characters)"))
        self.sha256_edit.setMaxLength(80)

        form = QFormLayout()
        form.addRow(tr(_CTX, "&URLs:"), self.urls_edit)
        add_layout_row(form, tr(_CTX, "Save &in:"), folder_row, self.folder_edit)
        form.addRow(tr(_CTX, "&Connections:"), self.connections_spin)
        form.addRow(tr(_CTX, "SHA-&256:"), self.sha256_edit)

        self.message = MessageLine(self)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(tr(_CTX, "&Download"))
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.resize(560, self.sizeHint().height())

    # -- actions -----------------------------------------------------------------------------------------

    def _browse(self) -> None:
        self._picker = pick_directory(
            self, tr(_CTX, "Choose a Destination Folder"), self.folder_edit.text(), self.folder_edit.setText
        )

    def submit(self) -> asyncio.Future[Any] | None:
        """Validate the form and queue the downloads in a task; returns the task (None when invalid)."""
        if self._tasks.busy:
            return None
        self.message.clear()
        urls, bad = parse_urls(self.urls_edit.toPlainText())
        if bad:
            self._fail(tr(_CTX, "Not a download URL: {url}. Use http://, https://, oss:// or azure://.").format(
                url=_short(bad[0])))
            return None
        if not urls:
            self._fail(tr(_CTX, "Enter at least one URL to download."))
            return None
        folder = self.folder_edit.text().strip()
        if not folder:
            self._fail(tr(_CTX, "Choose the folder to save the download in."))
            return None
        try:
            sha256 = validate_sha256(self.sha256_edit.text())
        except ValueError as exc:
            self._fail(str(exc))
            return None
        if sha256 and len(urls) > 1:
            self._fail(tr(_CTX, "A checksum belongs to one file: enter a single URL, or leave SHA-256 empty."))
            return None
        options = JobOptions(
            connections=self.connections_spin.value(),
            chunk_size=self._preferences.chunk_size,
            sha256=sha256,
        )
        self._set_busy(True)
        return self._tasks.start(self._queue(urls, os.path.expanduser(folder), options))

    async def _queue(self, urls: list[str], folder: str, options: JobOptions) -> list[Job]:
        added: list[Job] = []
        try:
            # One stat off the loop: the manager reads a missing folder as a *file* name, so insist on a folder.
            if not await asyncio.to_thread(os.path.isdir, folder):
                self._fail(tr(_CTX, "The folder {folder} does not exist.").format(folder=folder))
                return added
            remaining = list(urls)
            while remaining:
                url = remaining[0]
                try:
                    added.append(await self._manager.add_download(url, folder, options=options))
                except ManagerError as exc:
                    # Keep only what was not queued, so OK after a fix does not queue anything twice.
                    self.urls_edit.setPlainText("\n".join(remaining))
                    self._fail(str(exc))
                    return added
                remaining.pop(0)
        finally:
            if added:
                self.jobs_added.emit(added)
            self._set_busy(False)
        self.accept()
        return added

    # -- state -------------------------------------------------------------------------------------------

    def _fail(self, text: str) -> None:
        self.message.show_error(text)

    def _set_busy(self, busy: bool) -> None:
        for widget in (self.urls_edit, self.folder_edit, self.browse_button, self.connections_spin, self.sha256_edit):
            widget.setEnabled(not busy)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not busy)

    def reject(self) -> None:
        self._tasks.cancel_all()
        super().reject()
