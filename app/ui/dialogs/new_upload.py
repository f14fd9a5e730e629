"""New upload: files and folders, and where they go (a web address or a stored account plus a path).

A folder becomes one job per file (app.ui.upload_targets: the same rule as drag and drop). The remote forms
are the manager's: an http(s) endpoint of the default chunk protocol, an Azure SAS URL,
``oss://ACCOUNT/bucket/key`` or ``azure://ACCOUNT/container/blob``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.manager.accounts import Account, Provider
from app.manager.jobs import Job, JobOptions
from app.manager.manager import ManagerError
from app.ui.dialogs.common import MessageLine, TaskOwner, pick_directory, pick_files, tr
from app.ui.upload_targets import UploadSource, expand_paths, join_remote, sas_resource

if TYPE_CHECKING:
    from app.manager.accounts import AccountStore
    from app.manager.manager import TransferManager
    from app.ui.preferences import Preferences

__all__ = ["ACCOUNT_SCHEMES", "NewUploadDialog"]

_CTX = "NewUploadDialog"
ACCOUNT_SCHEMES = {Provider.ALIYUN_OSS: "oss", Provider.AZURE_BLOB: "azure"}
_PATH_ROLE = Qt.ItemDataRole.UserRole


class NewUploadDialog(QDialog):
    """Queue uploads; ``jobs_added(list[Job])`` fires once the manager has accepted them."""

    jobs_added = Signal(list)
    accounts_loaded = Signal()

    MODE_URL = 0
    MODE_ACCOUNT = 1

    def __init__(
        self,
        manager: TransferManager | Any,
        preferences: Preferences,
        parent: QWidget | None = None,
        files: Sequence[str] = (),
        *,
        accounts: AccountStore | Any | None = None,
    ) -> None:
        super().__init__(parent)
        self._manager = manager
        self._preferences = preferences
        self._accounts_store = accounts if accounts is not None else getattr(manager, "accounts", None)
        self._accounts: list[Account] = []
        self._wanted_account: str | None = None  # from the default remote, selected once accounts load
        self._queued: set[tuple[str, str]] = set()  # (local path, remote) already accepted by the manager
        self._tasks = TaskOwner()
        self._submitting: asyncio.Future[Any] | None = None
        self._picker: QWidget | None = None
        self.setWindowTitle(tr(_CTX, "New Upload"))
        self.setWindowModality(Qt.WindowModality.WindowModal)

        # Files
        self.files_list = QListWidget(self)
        self.files_list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.files_list.setMinimumHeight(110)
        self.add_files_button = QPushButton(tr(_CTX, "Add &Files…"), self)
        self.add_folder_button = QPushButton(tr(_CTX, "Add F&older…"), self)
        self.remove_button = QPushButton(tr(_CTX, "&Remove"), self)
        self.add_files_button.clicked.connect(self._browse_files)
        self.add_folder_button.clicked.connect(self._browse_folder)
        self.remove_button.clicked.connect(self._remove_selected)
        file_buttons = QHBoxLayout()
        file_buttons.addWidget(self.add_files_button)
        file_buttons.addWidget(self.add_folder_button)
        file_buttons.addStretch(1)
        file_buttons.addWidget(self.remove_button)

        # Destination
        self.mode_combo = QComboBox(self)
        self.mode_combo.addItem(tr(_CTX, "Web address (HTTP endpoint or Azure SAS URL)"))
        self.mode_combo.addItem(tr(_CTX, "Stored account"))
        self.url_edit = QLineEdit(self)
        self.url_edit.setPlaceholderText(tr(_CTX, "https://… upload endpoint, or an Azure blob/container SAS URL"))
        self.account_combo = QComboBox(self)
        self.path_edit = QLineEdit(self)
        self.path_edit.setPlaceholderText(tr(_CTX, "bucket/folder/ (OSS) or container/folder/ (Azure)"))
        self.accounts_note = QLabel(self)
        self.accounts_note.setWordWrap(True)

        url_page = QWidget(self)
        url_form = QFormLayout(url_page)
        url_form.setContentsMargins(0, 0, 0, 0)
        url_form.addRow(tr(_CTX, "&Address:"), self.url_edit)
        account_page = QWidget(self)
        account_form = QFormLayout(account_page)
        account_form.setContentsMargins(0, 0, 0, 0)
        account_form.addRow(tr(_CTX, "A&ccount:"), self.account_combo)
        account_form.addRow(tr(_CTX, "Remote &path:"), self.path_edit)
        account_form.addRow(self.accounts_note)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(url_page)
        self.pages.addWidget(account_page)
        self.mode_combo.currentIndexChanged.connect(self.pages.setCurrentIndex)

        form = QFormLayout()
        form.addRow(tr(_CTX, "Upload &to:"), self.mode_combo)
        form.addRow(self.pages)

        self.message = MessageLine(self)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(tr(_CTX, "&Upload"))
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(tr(_CTX, "Files and folders:"), self))
        layout.addWidget(self.files_list, 1)
        layout.addLayout(file_buttons)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.resize(600, 440)

        self.add_paths(files)
        self._prefill_remote(preferences.default_upload_remote)
        if self._accounts_store is not None:
            self._tasks.start(self._load_accounts())
        else:
            self.accounts_note.setText(tr(_CTX, "No stored accounts are available."))

    # -- files -------------------------------------------------------------------------------------------

    def add_paths(self, paths: Iterable[str]) -> None:
        """Add files or folders to the list (no duplicates); folders are expanded when uploading."""
        present = set(self.paths())
        for raw in paths:
            path = os.path.abspath(os.path.expanduser(raw))
            if path in present:
                continue
            present.add(path)
            item = QListWidgetItem(path)
            item.setData(_PATH_ROLE, path)
            self.files_list.addItem(item)

    def paths(self) -> list[str]:
        return [self.files_list.item(i).data(_PATH_ROLE) for i in range(self.files_list.count())]

    def _browse_files(self) -> None:
        self._picker = pick_files(self, tr(_CTX, "Choose Files to Upload"), "", self.add_paths)

    def _browse_folder(self) -> None:
        self._picker = pick_directory(self, tr(_CTX, "Choose a Folder to Upload"), "", lambda p: self.add_paths([p]))

    def _remove_selected(self) -> None:
        for item in self.files_list.selectedItems():
            self.files_list.takeItem(self.files_list.row(item))

    # -- destination -------------------------------------------------------------------------------------

    def _prefill_remote(self, remote: str) -> None:
        if not remote:
            return
        parts = urlsplit(remote)
        if parts.scheme in ("oss", "azure"):
            self.mode_combo.setCurrentIndex(self.MODE_ACCOUNT)
            self._wanted_account = parts.netloc
            self.path_edit.setText(parts.path.lstrip("/"))
        else:
            self.url_edit.setText(remote)

    async def _load_accounts(self) -> None:
        try:
            accounts = await self._accounts_store.list()
        except Exception as exc:  # the store's sentence (e.g. the keyring or database is unusable)
            self.accounts_note.setText(str(exc))
            return
        self._accounts = [a for a in accounts if a.provider in ACCOUNT_SCHEMES]
        self.account_combo.clear()
        for account in self._accounts:
            kind = tr(_CTX, "Aliyun OSS") if account.provider is Provider.ALIYUN_OSS else tr(_CTX, "Azure Blob")
            self.account_combo.addItem(f"{account.name} ({kind})", account.name)
        if self._wanted_account:
            index = self.account_combo.findData(self._wanted_account)
            if index >= 0:
                self.account_combo.setCurrentIndex(index)
        if not self._accounts:
            self.accounts_note.setText(
                tr(_CTX, "No Aliyun OSS or Azure Blob accounts yet: add one under Accounts.")
            )
        self.accounts_loaded.emit()

    def _selected_account(self) -> Account | None:
        name = self.account_combo.currentData()
        return next((a for a in self._accounts if a.name == name), None)

    def _remotes(self, sources: list[UploadSource]) -> list[str]:
        """The remote for each source; raises ValueError with a sentence when the destination is unusable."""
        many = len(sources) > 1 or any("/" in s.relative for s in sources)
        if self.mode_combo.currentIndex() == self.MODE_URL:
            url = self.url_edit.text().strip()
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
                raise ValueError(tr(_CTX, "Enter the upload address: an http(s) endpoint or an Azure SAS URL."))
            sas = sas_resource(url)
            if sas == "c":
                return [join_remote(url, s.relative) for s in sources]
            if sas is not None and many:
                raise ValueError(tr(_CTX, "This SAS URL names a single blob: upload one file, or use a container "
                                          "SAS URL (sr=c) for several files or a folder."))
            return [url for _ in sources]
        account = self._selected_account()
        if account is None:
            raise ValueError(tr(_CTX, "Choose a stored account, or add one under Accounts."))
        path = self.path_edit.text().strip().lstrip("/")
        if not path:
            what = tr(_CTX, "bucket") if account.provider is Provider.ALIYUN_OSS else tr(_CTX, "container")
            raise ValueError(tr(_CTX, "Enter the remote path, starting with the {what} name.").format(what=what))
        base = f"{ACCOUNT_SCHEMES[account.provider]}://{account.name}/{path}"
        if not many and "/" in path.rstrip("/") and not path.endswith("/"):
            return [base]  # one file to an explicit key
        return [join_remote(base, s.relative) for s in sources]

    # -- submit ------------------------------------------------------------------------------------------

    def submit(self) -> asyncio.Future[Any] | None:
        """Validate and queue the uploads in a task; returns the task (None when the form is incomplete)."""
        if self._submitting is not None and not self._submitting.done():
            return None
        self.message.clear()
        paths = self.paths()
        if not paths:
            self.message.show_error(tr(_CTX, "Add at least one file or folder to upload."))
            return None
        if self.mode_combo.currentIndex() == self.MODE_URL and not self.url_edit.text().strip():
            self.message.show_error(tr(_CTX, "Enter the upload address: an http(s) endpoint or an Azure SAS URL."))
            return None
        self._set_busy(True)
        self._submitting = self._tasks.start(self._queue(paths))
        return self._submitting

    async def _queue(self, paths: list[str]) -> list[Job]:
        added: list[Job] = []
        try:
            sources, _empty = await asyncio.to_thread(expand_paths, paths)
            if not sources:
                self.message.show_error(tr(_CTX, "There are no files to upload in the chosen folders."))
                return added
            try:
                remotes = self._remotes(sources)
            except ValueError as exc:
                self.message.show_error(str(exc))
                return added
            options = JobOptions(chunk_size=self._preferences.chunk_size)
            for source, remote in zip(sources, remotes, strict=True):
                if (source.path, remote) in self._queued:
                    continue  # accepted on an earlier OK that then failed on a later file
                try:
                    added.append(await self._manager.add_upload(source.path, remote, options=options))
                except ManagerError as exc:
                    self.message.show_error(
                        tr(_CTX, "{file}: {reason}").format(file=source.relative, reason=str(exc))
                    )
                    return added
                self._queued.add((source.path, remote))
        finally:
            if added:
                self.jobs_added.emit(added)
            self._set_busy(False)
        self.accept()
        return added

    def _set_busy(self, busy: bool) -> None:
        for widget in (self.files_list, self.add_files_button, self.add_folder_button, self.remove_button,
                       self.mode_combo, self.pages):
            widget.setEnabled(not busy)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not busy)

    def reject(self) -> None:
        self._tasks.cancel_all()
        super().reject()
