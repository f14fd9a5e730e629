"""Accounts: add, edit, test and delete storage profiles; the secret goes to the AccountStore (the keyring) only.

The form follows the chosen service and authentication (an OSS AccessKey needs a key id and a region, an
Azure Shared Key an account name, …). The secret field is a password field; when editing, leaving it empty
keeps the stored secret, so the dialog never needs to read a secret back.

When no keyring is usable, AccountStore.add raises SecretStoreUnavailable. The dialog then says so in plain
words and offers one visible, explicit way on: "Keep secrets for this run only". Nothing is ever written to
a plaintext file behind the user's back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.manager.accounts import Account, AccountError, Auth, Provider
from app.manager.secrets import SecretStoreLocked, SecretStoreUnavailable
from app.ui.dialogs.common import MessageLine, TaskOwner, tr

if TYPE_CHECKING:
    from app.manager.accounts import AccountStore

__all__ = ["AUTHS_BY_PROVIDER", "AccountsDialog"]

_CTX = "AccountsDialog"
_ACCOUNT_ROLE = Qt.ItemDataRole.UserRole

AUTHS_BY_PROVIDER: dict[Provider, tuple[Auth, ...]] = {
    Provider.HTTP: (Auth.NONE, Auth.BEARER, Auth.BASIC),
    Provider.ALIYUN_OSS: (Auth.ACCESS_KEY, Auth.PRESIGN_SERVICE),
    Provider.AZURE_BLOB: (Auth.SHARED_KEY, Auth.SAS),
}

# Non-secret fields each authentication needs (keys of Account.fields).
FIELDS_BY_AUTH: dict[Auth, tuple[str, ...]] = {
    Auth.NONE: (),
    Auth.BEARER: (),
    Auth.BASIC: ("username",),
    Auth.ACCESS_KEY: ("access_key_id", "region"),
    Auth.PRESIGN_SERVICE: (),
    Auth.SHARED_KEY: ("account_name",),
    Auth.SAS: (),
}
ALL_FIELDS = ("username", "access_key_id", "region", "account_name")


def provider_label(provider: Provider) -> str:
    return {
        Provider.HTTP: tr(_CTX, "HTTP server"),
        Provider.ALIYUN_OSS: tr(_CTX, "Aliyun OSS"),
        Provider.AZURE_BLOB: tr(_CTX, "Azure Blob Storage"),
    }[provider]


def auth_label(auth: Auth) -> str:
    return {
        Auth.NONE: tr(_CTX, "No credentials"),
        Auth.BEARER: tr(_CTX, "Bearer token"),
        Auth.BASIC: tr(_CTX, "User name and password"),
        Auth.ACCESS_KEY: tr(_CTX, "AccessKey"),
        Auth.PRESIGN_SERVICE: tr(_CTX, "Presign service"),
        Auth.SHARED_KEY: tr(_CTX, "Shared Key (account key)"),
        Auth.SAS: tr(_CTX, "SAS token"),
    }[auth]


def secret_label(auth: Auth) -> str | None:
    """What the secret is called for ``auth``; None when the authentication has no secret."""
    return {
        Auth.NONE: None,
        Auth.BEARER: tr(_CTX, "Token:"),
        Auth.BASIC: tr(_CTX, "Password:"),
        Auth.ACCESS_KEY: tr(_CTX, "AccessKey secret:"),
        Auth.PRESIGN_SERVICE: tr(_CTX, "Service token:"),
        Auth.SHARED_KEY: tr(_CTX, "Account key:"),
        Auth.SAS: tr(_CTX, "SAS token:"),
    }[auth]


def endpoint_label(auth: Auth) -> str:
    if auth is Auth.PRESIGN_SERVICE:
        return tr(_CTX, "Presign service URL:")
    if auth is Auth.SAS:
        return tr(_CTX, "Account or container URL:")
    return tr(_CTX, "Endpoint:")


@dataclass
class _PendingSave:
    """A save that waits for the user's keyring decision."""

    account: Account
    secret: str | None
    editing: bool


class AccountsDialog(QDialog):
    """Manage accounts. ``accounts_changed`` fires after an add, edit or delete succeeded."""

    accounts_changed = Signal()
    accounts_loaded = Signal()

    def __init__(self, accounts: AccountStore | Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = accounts
        self._tasks = TaskOwner()
        self._editing: Account | None = None  # None while adding
        self._pending: _PendingSave | None = None
        self.confirm_box: QMessageBox | None = None
        self.setWindowTitle(tr(_CTX, "Accounts"))
        self.setWindowModality(Qt.WindowModality.WindowModal)

        # The list and its buttons
        self.account_list = QListWidget(self)
        self.account_list.currentItemChanged.connect(self._update_buttons)
        self.account_list.itemDoubleClicked.connect(lambda _item: self.edit_selected())
        self.add_button = QPushButton(tr(_CTX, "&Add…"), self)
        self.edit_button = QPushButton(tr(_CTX, "&Edit…"), self)
        self.test_button = QPushButton(tr(_CTX, "&Test Connection"), self)
        self.delete_button = QPushButton(tr(_CTX, "&Delete…"), self)
        self.add_button.clicked.connect(self.start_add)
        self.edit_button.clicked.connect(self.edit_selected)
        self.test_button.clicked.connect(self.test_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        list_buttons = QVBoxLayout()
        for button in (self.add_button, self.edit_button, self.test_button, self.delete_button):
            list_buttons.addWidget(button)
        list_buttons.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.account_list, 1)
        top.addLayout(list_buttons)

        # The editor
        self.editor = QGroupBox(self)
        self.name_edit = QLineEdit(self.editor)
        self.provider_combo = QComboBox(self.editor)
        for provider in Provider:
            self.provider_combo.addItem(provider_label(provider), provider)
        self.auth_combo = QComboBox(self.editor)
        self.endpoint_edit = QLineEdit(self.editor)
        self.endpoint_edit.setPlaceholderText("https://")
        self.field_edits: dict[str, QLineEdit] = {name: QLineEdit(self.editor) for name in ALL_FIELDS}
        self.field_edits["region"].setPlaceholderText(tr(_CTX, "e.g. cn-hangzhou"))
        self.path_style_check = QCheckBox(tr(_CTX, "Path-style addresses (endpoint/bucket/key)"), self.editor)
        self.secret_edit = QLineEdit(self.editor)
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_edit.setAttribute(Qt.WidgetAttribute.WA_InputMethodEnabled, False)
        self.save_button = QPushButton(tr(_CTX, "&Save"), self.editor)
        self.cancel_edit_button = QPushButton(tr(_CTX, "Cancel"), self.editor)
        self.save_button.clicked.connect(self.save)
        self.cancel_edit_button.clicked.connect(self._close_editor)
        self.form = QFormLayout(self.editor)
        self.form.addRow(tr(_CTX, "&Name:"), self.name_edit)
        self.form.addRow(tr(_CTX, "Ser&vice:"), self.provider_combo)
        self.form.addRow(tr(_CTX, "Au&thentication:"), self.auth_combo)
        self.form.addRow(tr(_CTX, "Endpoint:"), self.endpoint_edit)
        field_labels = {
            "username": tr(_CTX, "User name:"),
            "access_key_id": tr(_CTX, "AccessKey ID:"),
            "region": tr(_CTX, "Region:"),
            "account_name": tr(_CTX, "Storage account:"),
        }
        for name in ALL_FIELDS:
            self.form.addRow(field_labels[name], self.field_edits[name])
        self.form.addRow("", self.path_style_check)
        self.form.addRow(tr(_CTX, "Secret:"), self.secret_edit)
        editor_buttons = QHBoxLayout()
        editor_buttons.addStretch(1)
        editor_buttons.addWidget(self.cancel_edit_button)
        editor_buttons.addWidget(self.save_button)
        self.form.addRow(editor_buttons)
        self.provider_combo.currentIndexChanged.connect(self._provider_changed)
        self.auth_combo.currentIndexChanged.connect(self._auth_changed)
        self.editor.hide()

        # Keyring trouble: an explanation and an explicit choice
        self.keyring_panel = QGroupBox(tr(_CTX, "No keyring available"), self)
        self.keyring_text = QLabel(self.keyring_panel)
        self.keyring_text.setWordWrap(True)
        self.session_only_button = QPushButton(tr(_CTX, "Keep secrets for this run only"), self.keyring_panel)
        self.session_only_button.clicked.connect(self.keep_secrets_for_this_run)
        panel_layout = QVBoxLayout(self.keyring_panel)
        panel_layout.addWidget(self.keyring_text)
        panel_layout.addWidget(self.session_only_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.keyring_panel.hide()
        self.session_note = QLabel(self)
        self.session_note.setWordWrap(True)
        self.session_note.hide()

        self.message = MessageLine(self)
        close_box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close_box.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addWidget(self.editor)
        layout.addWidget(self.keyring_panel)
        layout.addWidget(self.session_note)
        layout.addWidget(self.message)
        layout.addWidget(close_box)
        self.resize(620, 520)

        self._provider_changed()
        self._update_buttons()
        self._show_session_note()
        self._tasks.start(self.refresh())

    # -- the list ----------------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Reload the list from the store (keeping the selection by name)."""
        current = self.selected_account()
        try:
            accounts = await self._store.list()
        except (AccountError, SecretStoreUnavailable) as exc:
            self.message.show_error(str(exc))
            return
        self.account_list.clear()
        for account in sorted(accounts, key=lambda a: a.name.lower()):
            item = QListWidgetItem(
                f"{account.name} — {provider_label(account.provider)}, {auth_label(account.auth)}"
            )
            item.setData(_ACCOUNT_ROLE, account)
            self.account_list.addItem(item)
            if current is not None and account.name == current.name:
                self.account_list.setCurrentItem(item)
        self._update_buttons()
        self.accounts_loaded.emit()

    def selected_account(self) -> Account | None:
        item = self.account_list.currentItem()
        return item.data(_ACCOUNT_ROLE) if item is not None else None

    def select(self, name: str) -> bool:
        for i in range(self.account_list.count()):
            item = self.account_list.item(i)
            if item.data(_ACCOUNT_ROLE).name == name:
                self.account_list.setCurrentItem(item)
                return True
        return False

    def _update_buttons(self, *_args: object) -> None:
        has = self.selected_account() is not None
        for button in (self.edit_button, self.test_button, self.delete_button):
            button.setEnabled(has)

    # -- the editor --------------------------------------------------------------------------------------

    def start_add(self) -> None:
        self._editing = None
        self.editor.setTitle(tr(_CTX, "New account"))
        self.name_edit.clear()
        self.name_edit.setReadOnly(False)
        self.provider_combo.setCurrentIndex(0)
        self.endpoint_edit.clear()
        for edit in self.field_edits.values():
            edit.clear()
        self.path_style_check.setChecked(False)
        self.secret_edit.clear()
        self.secret_edit.setPlaceholderText("")
        self._provider_changed()
        self.message.clear()
        self.editor.show()
        self.name_edit.setFocus()

    def edit_selected(self) -> None:
        account = self.selected_account()
        if account is None:
            return
        self._editing = account
        self.editor.setTitle(tr(_CTX, "Edit {name}").format(name=account.name))
        self.name_edit.setText(account.name)
        self.name_edit.setReadOnly(True)  # the name is the key of the stored secret
        self.provider_combo.setCurrentIndex(self.provider_combo.findData(account.provider))
        self._provider_changed()
        self.auth_combo.setCurrentIndex(max(0, self.auth_combo.findData(account.auth)))
        self.endpoint_edit.setText(account.endpoint)
        for name, edit in self.field_edits.items():
            edit.setText(account.fields.get(name, ""))
        self.path_style_check.setChecked(account.fields.get("path_style", "").strip().lower() in ("true", "1", "yes"))
        self.secret_edit.clear()
        self.secret_edit.setPlaceholderText(tr(_CTX, "Leave empty to keep the stored secret"))
        self._auth_changed()
        self.message.clear()
        self.editor.show()

    def _close_editor(self) -> None:
        self.secret_edit.clear()
        self.editor.hide()
        self._editing = None

    def _provider_changed(self, *_args: object) -> None:
        provider: Provider = self.provider_combo.currentData()
        previous = self.auth_combo.currentData()
        self.auth_combo.blockSignals(True)
        self.auth_combo.clear()
        for auth in AUTHS_BY_PROVIDER[provider]:
            self.auth_combo.addItem(auth_label(auth), auth)
        index = self.auth_combo.findData(previous)
        self.auth_combo.setCurrentIndex(max(0, index))
        self.auth_combo.blockSignals(False)
        self._auth_changed()

    def _auth_changed(self, *_args: object) -> None:
        auth: Auth = self.auth_combo.currentData()
        needed = FIELDS_BY_AUTH[auth]
        for name, edit in self.field_edits.items():
            self.form.setRowVisible(edit, name in needed)
        self.form.setRowVisible(self.path_style_check, auth is Auth.ACCESS_KEY)
        label = secret_label(auth)
        self.form.setRowVisible(self.secret_edit, label is not None)
        if label is not None:
            self.form.labelForField(self.secret_edit).setText(label)
        self.form.labelForField(self.endpoint_edit).setText(endpoint_label(auth))

    def visible_fields(self) -> list[str]:
        """Names of the non-secret fields the form shows now (for tests and accessibility checks)."""
        return [name for name in ALL_FIELDS if self.form.isRowVisible(self.field_edits[name])]

    def _form_account(self) -> tuple[Account, str | None]:
        """The account and secret the form describes; raises ValueError naming the first missing field."""
        name = self.name_edit.text().strip()
        if not name:
            raise ValueError(tr(_CTX, "Enter a name for the account."))
        provider: Provider = self.provider_combo.currentData()
        auth: Auth = self.auth_combo.currentData()
        endpoint = self.endpoint_edit.text().strip()
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(tr(_CTX, "The endpoint must be an http:// or https:// address."))
        if parts.query and auth is Auth.SAS:
            raise ValueError(tr(_CTX, "Enter the URL without its SAS token; put the token in the SAS token field."))
        fields: dict[str, str] = {}
        for field_name in FIELDS_BY_AUTH[auth]:
            value = self.field_edits[field_name].text().strip()
            if not value:
                label = self.form.labelForField(self.field_edits[field_name]).text().rstrip(":")
                raise ValueError(tr(_CTX, "Enter the {field}.").format(field=label))
            fields[field_name] = value
        if auth is Auth.ACCESS_KEY:
            fields["path_style"] = "true" if self.path_style_check.isChecked() else "false"
        secret: str | None = self.secret_edit.text() or None
        if secret_label(auth) is None:
            secret = None
        elif secret is None and self._editing is None:
            raise ValueError(
                tr(_CTX, "Enter the {secret}.").format(secret=secret_label(auth).rstrip(":"))  # type: ignore[union-attr]
            )
        elif secret is None and self._editing is not None and self._editing.auth is not auth:
            raise ValueError(tr(_CTX, "The authentication changed: enter the new secret."))
        return Account(name=name, provider=provider, auth=auth, endpoint=endpoint, fields=fields), secret

    def save(self) -> None:
        """Validate the form and save it through the store (in a task)."""
        if not self.save_button.isEnabled():  # a save is already in flight
            return
        self.message.clear()
        try:
            account, secret = self._form_account()
        except ValueError as exc:
            self.message.show_error(str(exc))
            return
        self._tasks.start(self._save(_PendingSave(account, secret, self._editing is not None)))

    async def _save(self, pending: _PendingSave) -> bool:
        self.save_button.setEnabled(False)
        try:
            if pending.editing:
                await self._store.update(pending.account, pending.secret)
            else:
                await self._store.add(pending.account, pending.secret)
        except SecretStoreUnavailable as exc:
            self._pending = pending
            self._show_keyring_problem(exc)
            return False
        except AccountError as exc:
            self.message.show_error(str(exc))
            return False
        finally:
            self.save_button.setEnabled(True)
        self._pending = None
        self.keyring_panel.hide()
        self._close_editor()
        self._show_session_note()
        self.message.show_info(tr(_CTX, "Saved the account {name}.").format(name=pending.account.name))
        await self.refresh()
        self.select(pending.account.name)
        self.accounts_changed.emit()
        return True

    # -- keyring -----------------------------------------------------------------------------------------

    def _show_keyring_problem(self, exc: SecretStoreUnavailable) -> None:
        problem = getattr(exc, "problem", None) or str(exc)
        if getattr(exc, "locked", False) or isinstance(exc, SecretStoreLocked):
            self.keyring_panel.setTitle(tr(_CTX, "The keyring is locked"))
            intro = tr(_CTX, "The system keyring is locked, so the secret was not saved ({problem}). "
                             "Unlock the keyring and save again, or:").format(problem=problem)
        else:
            self.keyring_panel.setTitle(tr(_CTX, "No keyring available"))
            intro = tr(_CTX, "Rusty Cat keeps secrets only in the system keyring, and no keyring is usable here "
                             "({problem}), so the secret was not saved. Start a Secret Service (GNOME Keyring, "
                             "KWallet or KeePassXC) and save again, or:").format(problem=problem)
        self.keyring_text.setText(
            intro + "\n\n"
            + tr(_CTX, "Keep the secrets in memory for this run only: transfers work until you quit, and you will "
                       "have to enter the secrets again after a restart. Nothing is written to disk.")
        )
        self.keyring_panel.show()

    def keep_secrets_for_this_run(self) -> None:
        """The user's explicit choice: run-only secrets; then finish the save that was waiting for it."""
        secrets = getattr(self._store, "secrets", None)
        if secrets is None:
            self.message.show_error(tr(_CTX, "This account store cannot keep secrets in memory."))
            return
        secrets.allow_session_only()
        self.keyring_panel.hide()
        self._show_session_note()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._tasks.start(self._save(pending))

    def _show_session_note(self) -> None:
        secrets = getattr(self._store, "secrets", None)
        if secrets is not None and getattr(secrets, "session_only", False):
            self.session_note.setText(
                tr(_CTX, "Secrets are kept in memory for this run only; they are forgotten when Rusty Cat quits.")
            )
            self.session_note.show()
        else:
            self.session_note.hide()

    # -- test and delete ---------------------------------------------------------------------------------

    def test_selected(self) -> None:
        account = self.selected_account()
        if account is None or not self.test_button.isEnabled():
            return
        self.message.show_info(tr(_CTX, "Testing {name}…").format(name=account.name))
        self._tasks.start(self._test(account.name))

    async def _test(self, name: str) -> None:
        self.test_button.setEnabled(False)
        try:
            result = await self._store.test_connection(name)
        except (AccountError, SecretStoreUnavailable) as exc:
            self.message.show_error(str(exc))
        except Exception as exc:  # never show an unknown exception's text: it might quote a request
            self.message.show_error(
                tr(_CTX, "The connection test failed unexpectedly ({kind}).").format(kind=type(exc).__name__)
            )
        else:
            self.message.show_info(result)
        finally:
            self._update_buttons()

    def delete_selected(self) -> None:
        account = self.selected_account()
        if account is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            tr(_CTX, "Delete Account"),
            tr(_CTX, "Delete the account {name} and its stored secret?").format(name=account.name),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda result: self._delete_answered(account.name, result))
        self.confirm_box = box
        box.open()

    def _delete_answered(self, name: str, result: int) -> None:
        self.confirm_box = None
        if result == QMessageBox.StandardButton.Yes.value:
            self._tasks.start(self._delete(name))

    async def _delete(self, name: str) -> None:
        try:
            await self._store.remove(name)
        except (AccountError, SecretStoreUnavailable) as exc:
            self.message.show_error(str(exc))
            return
        self.message.show_info(tr(_CTX, "Deleted the account {name}.").format(name=name))
        await self.refresh()
        self.accounts_changed.emit()

    def reject(self) -> None:
        self.secret_edit.clear()
        self._tasks.cancel_all()
        super().reject()
