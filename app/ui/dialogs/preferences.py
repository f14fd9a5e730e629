"""Preferences: every user preference in one form; OK validates, saves and closes.

The global speed limit is entered as a number and a unit (KiB/s or MiB/s); 0 means unlimited. Saving goes
through ``Preferences`` setters, so the same validation applies here as anywhere else, and its ``changed``
signal makes the shell apply the new limits to the running manager at once.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.ui.dialogs.common import MessageLine, add_layout_row, pick_directory, tr
from app.ui.preferences import (
    MAX_CHUNK_SIZE,
    MAX_CONNECTIONS,
    MAX_TRANSFERS,
    MIN_CHUNK_SIZE,
    Preferences,
    PreferencesError,
)

__all__ = ["KIB", "MIB", "PreferencesDialog", "split_speed"]

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
    """Edit every Preferences field."""

    def __init__(self, preferences: Preferences, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._preferences = preferences
        self._picker: QWidget | None = None
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
        layout.addWidget(transfers)
        layout.addWidget(places)
        layout.addWidget(window)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.load(preferences)

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

    def apply_and_accept(self) -> bool:
        """Validate everything first, then save; on a bad value show it and keep the dialog open."""
        p = self._preferences
        self.message.clear()
        close_choice = self.close_combo.currentData()
        try:
            # Setters validate; check the free-text ones before writing anything, so a bad value saves nothing.
            folder = self.download_dir_edit.text().strip()
            if not folder:
                raise PreferencesError(tr(_CTX, "The default download folder cannot be empty."))
            remote = self.upload_remote_edit.text().strip()
            if remote and "://" not in remote:
                raise PreferencesError(
                    tr(_CTX, "The default upload destination must be a URL (http://, https://, oss:// or azure://).")
                )
            p.max_downloads = self.max_downloads_spin.value()
            p.max_uploads = self.max_uploads_spin.value()
            p.connections = self.connections_spin.value()
            p.chunk_size = self.chunk_spin.value() * MIB
            p.speed_limit = self.speed_limit()
            p.default_download_dir = folder
            p.default_upload_remote = remote
            p.start_minimized = self.start_minimized_check.isChecked()
            p.notifications = self.notifications_check.isChecked()
            p.close_to_tray = close_choice if isinstance(close_choice, bool) else None
        except PreferencesError as exc:
            self.message.show_error(str(exc))
            return False
        self.accept()
        return True
