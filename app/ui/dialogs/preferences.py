"""Preferences: every user preference in one dialog of two pages (General, Network); OK validates, saves, closes.

The global speed limit is entered as a number and a unit (KiB/s or MiB/s); 0 means unlimited. Saving goes
through ``Preferences`` setters, so the same validation applies here as anywhere else, and its ``changed``
signal makes the shell apply the new limits to the running manager at once.

The Network page edits the proxy (follow the system, none, or manual: address, user, password), the hosts that
bypass it and a CA bundle. The password never reaches QSettings: when the network settings change, OK hands them
and a newly typed password to the manager (``set_network``: the password goes to the OS keyring, the CA bundle is
read and checked in a worker thread, and new requests take the new route at once), and only then saves the
preferences and closes. An empty password field keeps the stored password; clearing the user name forgets it.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.manager.manager import KEEP, ManagerError
from app.manager.network import NetworkSettings, NetworkSettingsError, ProxyMode, check_ca_bundle_file
from app.ui.dialogs.common import MessageLine, TaskOwner, add_layout_row, pick_directory, tr
from app.ui.preferences import (
    MAX_CHUNK_SIZE,
    MAX_CONNECTIONS,
    MAX_TRANSFERS,
    MIN_CHUNK_SIZE,
    Preferences,
    PreferencesError,
)

__all__ = ["KIB", "MIB", "NetworkTarget", "PreferencesDialog", "split_speed"]


class NetworkTarget(Protocol):
    """What the dialog needs of the manager to apply network settings (TransferManager.set_network)."""

    async def set_network(self, settings: NetworkSettings, *, password: Any = ..., remember: bool = True) -> None: ...

_CTX = "PreferencesDialog"
KIB = 1024
MIB = 1024 * 1024
_SPEED_MAX = 10_000_000  # in the chosen unit: far above any real link


def split_speed(limit: int | None) -> tuple[int, int]:
    """(number, unit in bytes) for showing ``limit``: MiB/s when it is a whole number of MiB, else KiB/s."""
    if not limit:
        return 0, MIB
    if limit % MIB == 0:
        return limit // MIB, MIB
    return max(1, round(limit / KIB)), KIB


class PreferencesDialog(QDialog):
    """Edit every Preferences field. ``network`` (the manager) applies network settings and keeps the proxy
    password in the keyring; without it the password field is disabled and network settings are only saved."""

    def __init__(self, preferences: Preferences, parent: QWidget | None = None, *,
                 network: NetworkTarget | None = None) -> None:
        super().__init__(parent)
        self._preferences = preferences
        self._network_target = network
        self._picker: QWidget | None = None
        self._tasks = TaskOwner()
        self.setWindowTitle(tr(_CTX, "Preferences"))
        self.setWindowModality(Qt.WindowModality.WindowModal)

        # Transfers
        self.max_downloads_spin = QSpinBox(self)
        self.max_downloads_spin.setRange(1, MAX_TRANSFERS)
        self.max_uploads_spin = QSpinBox(self)
        self.max_uploads_spin.setRange(1, MAX_TRANSFERS)
        self.connections_spin = QSpinBox(self)
        self.connections_spin.setRange(1, MAX_CONNECTIONS)
        self.chunk_spin = QSpinBox(self)
        self.chunk_spin.setRange(max(1, MIN_CHUNK_SIZE // MIB), MAX_CHUNK_SIZE // MIB)
        self.chunk_spin.setSuffix(tr(_CTX, " MiB"))
        self.speed_spin = QSpinBox(self)
        self.speed_spin.setRange(0, _SPEED_MAX)
        self.speed_spin.setSpecialValueText(tr(_CTX, "Unlimited"))
        self.speed_unit = QComboBox(self)
        self.speed_unit.addItem(tr(_CTX, "KiB/s"), KIB)
        self.speed_unit.addItem(tr(_CTX, "MiB/s"), MIB)
        speed_row = QHBoxLayout()
        speed_row.addWidget(self.speed_spin, 1)
        speed_row.addWidget(self.speed_unit)
        transfers = QGroupBox(tr(_CTX, "Transfers"), self)
        transfers_form = QFormLayout(transfers)
        transfers_form.addRow(tr(_CTX, "Simultaneous &downloads:"), self.max_downloads_spin)
        transfers_form.addRow(tr(_CTX, "Simultaneous &uploads:"), self.max_uploads_spin)
        transfers_form.addRow(tr(_CTX, "&Connections per download:"), self.connections_spin)
        transfers_form.addRow(tr(_CTX, "C&hunk size:"), self.chunk_spin)
        add_layout_row(transfers_form, tr(_CTX, "Global &speed limit (0 = unlimited):"), speed_row, self.speed_spin)

        # Places
        self.download_dir_edit = QLineEdit(self)
        self.browse_button = QPushButton(tr(_CTX, "Browse…"), self)
        self.browse_button.clicked.connect(self._browse)
        dir_row = QHBoxLayout()
        dir_row.addWidget(self.download_dir_edit, 1)
        dir_row.addWidget(self.browse_button)
        self.upload_remote_edit = QLineEdit(self)
        self.upload_remote_edit.setPlaceholderText(tr(_CTX, "Ask every time (or oss://, azure://, https://…)"))
        places = QGroupBox(tr(_CTX, "Default destinations"), self)
        places_form = QFormLayout(places)
        add_layout_row(places_form, tr(_CTX, "Download &folder:"), dir_row, self.download_dir_edit)
        places_form.addRow(tr(_CTX, "Upload &destination:"), self.upload_remote_edit)

        # Window
        self.start_minimized_check = QCheckBox(tr(_CTX, "Start &minimized to the tray"), self)
        self.notifications_check = QCheckBox(tr(_CTX, "Show a &notification when a transfer ends"), self)
        self.close_combo = QComboBox(self)
        self.close_combo.addItem(tr(_CTX, "Ask"), None)
        self.close_combo.addItem(tr(_CTX, "Keep running in the tray"), True)
        self.close_combo.addItem(tr(_CTX, "Quit"), False)
        window = QGroupBox(tr(_CTX, "Window"), self)
        window_form = QFormLayout(window)
        window_form.addRow(self.start_minimized_check)
        window_form.addRow(self.notifications_check)
        window_form.addRow(tr(_CTX, "Closing the window while transfers run:"), self.close_combo)

        general = QWidget(self)
        general_layout = QVBoxLayout(general)
        general_layout.addWidget(transfers)
        general_layout.addWidget(places)
        general_layout.addWidget(window)
        general_layout.addStretch(1)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(general, tr(_CTX, "&General"))
        self.network_page = self._build_network_page()
        self.tabs.addTab(self.network_page, tr(_CTX, "Net&work"))

        self.message = MessageLine(self)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults,
            self,
        )
        self.buttons.accepted.connect(self.apply_and_accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self.restore_defaults)

        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self._set_tab_order()
        self.load(preferences)

    def _build_network_page(self) -> QWidget:
        page = QWidget(self)
        # Proxy
        self.proxy_system_radio = QRadioButton(tr(_CTX, "Follow the &system's proxy settings"), page)
        self.proxy_system_radio.setToolTip(tr(
            _CTX, "The http_proxy, https_proxy, all_proxy and no_proxy environment variables, read as curl reads "
                  "them."))
        self.proxy_none_radio = QRadioButton(tr(_CTX, "N&o proxy: always connect directly"), page)
        self.proxy_manual_radio = QRadioButton(tr(_CTX, "&Manual proxy:"), page)
        self.proxy_mode_group = QButtonGroup(page)
        for radio, mode in ((self.proxy_system_radio, ProxyMode.SYSTEM), (self.proxy_none_radio, ProxyMode.NONE),
                            (self.proxy_manual_radio, ProxyMode.MANUAL)):
            self.proxy_mode_group.addButton(radio)
            radio.setProperty("proxyMode", mode.value)
            radio.setAccessibleName(radio.text().replace("&", ""))
        # Bound methods, not lambdas: Qt disconnects them when the dialog goes, so a signal sent while its widgets
        # are being destroyed never reaches a half-deleted dialog.
        self.proxy_mode_group.buttonToggled.connect(self._mode_toggled)
        self.proxy_url_edit = QLineEdit(page)
        self.proxy_url_edit.setPlaceholderText(tr(_CTX, "http://proxy.example.com:3128"))
        self.proxy_url_edit.setAccessibleName(tr(_CTX, "Proxy address"))
        self.proxy_url_edit.setToolTip(tr(
            _CTX, "http://HOST:PORT (HTTPS sites go through it encrypted), socks5://HOST:PORT or "
                  "socks5h://HOST:PORT. The user name and password have their own fields."))
        self.proxy_user_edit = QLineEdit(page)
        self.proxy_user_edit.setPlaceholderText(tr(_CTX, "Only if the proxy asks for one"))
        self.proxy_user_edit.setAccessibleName(tr(_CTX, "Proxy user name"))
        self.proxy_user_edit.textChanged.connect(self._user_changed)
        self.proxy_password_edit = QLineEdit(page)
        self.proxy_password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.proxy_password_edit.setAttribute(Qt.WidgetAttribute.WA_InputMethodEnabled, False)
        self.proxy_password_edit.setAccessibleName(tr(_CTX, "Proxy password"))
        self.proxy_password_edit.setToolTip(tr(_CTX, "Kept in the system keyring, never in the settings file."))
        manual = QWidget(page)
        self.manual_form = QFormLayout(manual)
        self.manual_form.setContentsMargins(24, 0, 0, 0)
        self.manual_form.addRow(tr(_CTX, "&Address:"), self.proxy_url_edit)
        self.manual_form.addRow(tr(_CTX, "&User name:"), self.proxy_user_edit)
        self.manual_form.addRow(tr(_CTX, "&Password:"), self.proxy_password_edit)
        self.no_proxy_edit = QLineEdit(page)
        self.no_proxy_edit.setPlaceholderText(tr(_CTX, "localhost, 127.0.0.1, .intranet.example.com"))
        self.no_proxy_edit.setAccessibleName(tr(_CTX, "Hosts that bypass the proxy"))
        self.no_proxy_edit.setToolTip(tr(
            _CTX, "Comma-separated host names (each also matches its subdomains), IP addresses or ranges "
                  "(10.0.0.0/8), or * for all. Empty: the no_proxy environment variable."))
        bypass = QFormLayout()
        bypass.addRow(tr(_CTX, "&Bypass the proxy for:"), self.no_proxy_edit)
        proxy = QGroupBox(tr(_CTX, "Proxy"), page)
        proxy_layout = QVBoxLayout(proxy)
        proxy_layout.addWidget(self.proxy_system_radio)
        proxy_layout.addWidget(self.proxy_none_radio)
        proxy_layout.addWidget(self.proxy_manual_radio)
        proxy_layout.addWidget(manual)
        proxy_layout.addLayout(bypass)

        # Certificates
        self.ca_bundle_edit = QLineEdit(page)
        self.ca_bundle_edit.setPlaceholderText(tr(_CTX, "None: only the system's certificates"))
        self.ca_bundle_edit.setAccessibleName(tr(_CTX, "CA bundle file"))
        self.ca_bundle_edit.setToolTip(tr(
            _CTX, "A PEM file of CA certificates to trust in addition to the system's, e.g. your company's or "
                  "your proxy's CA."))
        self.ca_browse_button = QPushButton(tr(_CTX, "B&rowse…"), page)
        self.ca_browse_button.setAccessibleName(tr(_CTX, "Choose the CA bundle file"))
        self.ca_browse_button.clicked.connect(self._browse_ca_bundle)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_bundle_edit, 1)
        ca_row.addWidget(self.ca_browse_button)
        certificates = QGroupBox(tr(_CTX, "Certificates"), page)
        certificates_form = QFormLayout(certificates)
        add_layout_row(certificates_form, tr(_CTX, "Extra &CA bundle:"), ca_row, self.ca_bundle_edit)

        note = QLabel(tr(_CTX, "Changes apply to new requests at once: running transfers pause for a moment and "
                               "continue through the new route."), page)
        note.setWordWrap(True)
        layout = QVBoxLayout(page)
        layout.addWidget(proxy)
        layout.addWidget(certificates)
        layout.addWidget(note)
        layout.addStretch(1)
        return page

    def _set_tab_order(self) -> None:
        """Top to bottom on each page, then the buttons (Qt's default follows creation order across pages)."""
        chain = [self.max_downloads_spin, self.max_uploads_spin, self.connections_spin, self.chunk_spin,
                 self.speed_spin, self.speed_unit, self.download_dir_edit, self.browse_button,
                 self.upload_remote_edit, self.start_minimized_check, self.notifications_check, self.close_combo]
        network = [self.proxy_system_radio, self.proxy_none_radio, self.proxy_manual_radio, self.proxy_url_edit,
                   self.proxy_user_edit, self.proxy_password_edit, self.no_proxy_edit, self.ca_bundle_edit,
                   self.ca_browse_button]
        for order in (chain, network):
            for first, second in itertools.pairwise(order):
                QWidget.setTabOrder(first, second)

    def _mode_toggled(self, _button: object, _checked: bool) -> None:
        self._update_network_fields()

    def _user_changed(self, _text: str) -> None:
        self._update_network_fields()

    def _update_network_fields(self) -> None:
        manual = self.proxy_manual_radio.isChecked()
        for widget in (self.proxy_url_edit, self.proxy_user_edit):
            widget.setEnabled(manual)
        has_user = bool(self.proxy_user_edit.text().strip())
        self.proxy_password_edit.setEnabled(manual and has_user and self._network_target is not None)
        if not has_user:
            self.proxy_password_edit.clear()
        self.no_proxy_edit.setEnabled(not self.proxy_none_radio.isChecked())

    def load(self, p: Preferences) -> None:
        """Show the values of ``p`` (or of a defaults-only Preferences for Restore Defaults)."""
        self.max_downloads_spin.setValue(p.max_downloads)
        self.max_uploads_spin.setValue(p.max_uploads)
        self.connections_spin.setValue(p.connections)
        self.chunk_spin.setValue(max(self.chunk_spin.minimum(), p.chunk_size // MIB))
        number, unit = split_speed(p.speed_limit)
        self.speed_unit.setCurrentIndex(self.speed_unit.findData(unit))
        self.speed_spin.setValue(number)
        self.download_dir_edit.setText(p.default_download_dir)
        self.upload_remote_edit.setText(p.default_upload_remote)
        self.start_minimized_check.setChecked(p.start_minimized)
        self.notifications_check.setChecked(p.notifications)
        self.close_combo.setCurrentIndex(max(0, self.close_combo.findData(p.close_to_tray)))
        net = p.network_settings
        {ProxyMode.SYSTEM: self.proxy_system_radio, ProxyMode.NONE: self.proxy_none_radio,
         ProxyMode.MANUAL: self.proxy_manual_radio}[net.proxy_mode].setChecked(True)
        self.proxy_url_edit.setText(net.proxy_url)
        self.proxy_user_edit.setText(net.proxy_user)
        self.proxy_password_edit.clear()
        stored_user = self._preferences.network_settings.proxy_user
        self.proxy_password_edit.setPlaceholderText(
            tr(_CTX, "Leave empty to keep the saved password") if stored_user else "")
        self.no_proxy_edit.setText(net.no_proxy or "")
        self.ca_bundle_edit.setText(net.ca_bundle or "")
        self._update_network_fields()

    def restore_defaults(self) -> None:
        """Fill the form with the defaults; nothing is saved until OK."""
        self.load(Preferences.defaults())

    def speed_limit(self) -> int | None:
        value = self.speed_spin.value()
        return value * int(self.speed_unit.currentData()) if value else None

    def _browse(self) -> None:
        self._picker = pick_directory(
            self, tr(_CTX, "Choose the Default Download Folder"), self.download_dir_edit.text(),
            self.download_dir_edit.setText,
        )

    def _browse_ca_bundle(self) -> None:
        """A file picker without a nested event loop; the chosen file is checked (off the loop) at once."""
        dialog = QFileDialog(self, tr(_CTX, "Choose the CA Bundle"), self.ca_bundle_edit.text())
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters([tr(_CTX, "PEM certificates (*.pem *.crt *.cer)"), tr(_CTX, "All files (*)")])
        dialog.fileSelected.connect(self._ca_bundle_chosen)
        dialog.open()
        self._picker = dialog

    def _ca_bundle_chosen(self, path: str) -> None:
        self.ca_bundle_edit.setText(path)
        self._tasks.start(self.check_ca_bundle())

    async def check_ca_bundle(self) -> bool:
        """Check the CA bundle field now (a readable PEM file with a certificate) and say what is wrong inline."""
        path = self.ca_bundle_edit.text().strip()
        if not path:
            return True
        try:
            await asyncio.to_thread(check_ca_bundle_file, path)
        except NetworkSettingsError as exc:
            self.tabs.setCurrentWidget(self.network_page)
            self.message.show_error(tr(_CTX, "The CA bundle cannot be used: {reason}").format(reason=exc))
            return False
        self.message.clear()
        return True

    def network_settings(self) -> NetworkSettings:
        """The network settings in the form, checked (PreferencesError with a sentence otherwise)."""
        checked = self.proxy_mode_group.checkedButton()
        mode = ProxyMode(checked.property("proxyMode")) if checked is not None else ProxyMode.SYSTEM
        url = self.proxy_url_edit.text().strip()
        user = self.proxy_user_edit.text().strip()
        if mode is ProxyMode.MANUAL and not url:
            raise PreferencesError(tr(_CTX, "Enter the proxy's address, for example http://proxy.example.com:3128."))
        if mode is ProxyMode.MANUAL and "@" in url.split("://", 1)[-1]:
            raise PreferencesError(tr(_CTX, "Enter the proxy's user name and password in their own fields, not in "
                                            "the address: the password is kept in the system keyring."))
        if ":" in user:
            raise PreferencesError(tr(_CTX, "The proxy user name cannot contain a colon (:)."))
        settings = NetworkSettings(mode, url if mode is ProxyMode.MANUAL else self._kept_url(url),
                                   user if mode is ProxyMode.MANUAL else self._kept_user(user),
                                   no_proxy=self.no_proxy_edit.text().strip() or None,
                                   ca_bundle=self.ca_bundle_edit.text().strip() or None)
        try:
            settings.check()
        except NetworkSettingsError as exc:
            raise PreferencesError(tr(_CTX, "The proxy settings cannot be used: {reason}").format(reason=exc)) \
                from None
        return settings

    def _kept_url(self, url: str) -> str:
        """Another mode keeps the manual address for later, if it is one that could be saved."""
        return url if url and "@" not in url.split("://", 1)[-1] else ""

    @staticmethod
    def _kept_user(user: str) -> str:
        return user if ":" not in user else ""

    def _password_change(self, settings: NetworkSettings) -> object:
        """What OK does with the proxy password: a typed one replaces it, a cleared user name forgets it, else it
        stays (KEEP)."""
        typed = self.proxy_password_edit.text()
        if typed and settings.uses_password:
            return typed
        if not settings.proxy_user and self._preferences.network_settings.proxy_user:
            return None
        return KEEP

    def apply_and_accept(self) -> bool:
        """Validate everything first, then save; on a bad value show it and keep the dialog open.

        Returns True when saved and closed now. When the network settings changed, they are applied first (the CA
        bundle read, the password stored in the keyring, off the event loop) and False is returned: the dialog
        saves and closes (``accepted``) once that succeeded, or shows why not and stays open, having saved
        nothing."""
        if self._tasks.busy:
            return False
        self.message.clear()
        try:
            values = self._general_values()
            network = self.network_settings()
        except PreferencesError as exc:
            self.message.show_error(str(exc))
            return False
        password = self._password_change(network)
        if network == self._preferences.network_settings and password is KEEP:
            return self._save(values, network)
        self._set_busy(True)
        self.message.show_info(tr(_CTX, "Checking the network settings…"))
        self._tasks.start(self._apply_network_then_save(values, network, password))
        return False

    async def _apply_network_then_save(self, values: dict[str, Any], network: NetworkSettings,
                                       password: object) -> None:
        try:
            if network.ca_bundle is not None and not await self.check_ca_bundle():
                return
            if self._network_target is not None:
                await self._network_target.set_network(network, password=password)
            elif password is not KEEP:
                raise ManagerError(tr(_CTX, "The proxy password cannot be saved here."))
        except ManagerError as exc:
            self.tabs.setCurrentWidget(self.network_page)
            self.message.show_error(tr(_CTX, "The network settings were not applied: {reason}").format(reason=exc))
            return
        finally:
            self._set_busy(False)
        self.proxy_password_edit.clear()
        self.message.clear()
        self._save(values, network)

    def _set_busy(self, busy: bool) -> None:
        self.buttons.setEnabled(not busy)
        self.tabs.setEnabled(not busy)

    def _general_values(self) -> dict[str, Any]:
        """The General page's values, the free-text ones checked (PreferencesError), nothing written yet."""
        close_choice = self.close_combo.currentData()
        folder = self.download_dir_edit.text().strip()
        if not folder:
            raise PreferencesError(tr(_CTX, "The default download folder cannot be empty."))
        remote = self.upload_remote_edit.text().strip()
        if remote and "://" not in remote:
            raise PreferencesError(
                tr(_CTX, "The default upload destination must be a URL (http://, https://, oss:// or azure://).")
            )
        return {"max_downloads": self.max_downloads_spin.value(), "max_uploads": self.max_uploads_spin.value(),
                "connections": self.connections_spin.value(), "chunk_size": self.chunk_spin.value() * MIB,
                "speed_limit": self.speed_limit(), "default_download_dir": folder, "default_upload_remote": remote,
                "start_minimized": self.start_minimized_check.isChecked(),
                "notifications": self.notifications_check.isChecked(),
                "close_to_tray": close_choice if isinstance(close_choice, bool) else None}

    def _save(self, values: dict[str, Any], network: NetworkSettings) -> bool:
        p = self._preferences
        try:
            for name, value in values.items():
                setattr(p, name, value)
            p.network_settings = network
        except PreferencesError as exc:
            self.message.show_error(str(exc))
            return False
        self.accept()
        return True

    def reject(self) -> None:
        """Escape while the network settings are being applied waits: cancelling half-way could leave the manager
        on the new settings and the preferences on the old ones."""
        if self._tasks.busy:
            return
        super().reject()

    def done(self, result: int) -> None:
        """Closing (OK, Cancel, Escape) forgets a typed password and stops pending checks."""
        self.proxy_password_edit.clear()
        self._tasks.cancel_all()
        super().done(result)
