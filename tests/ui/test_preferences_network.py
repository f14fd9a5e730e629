"""The Network page of Preferences, driven as a user would, offscreen: proxy mode, address, user, password, bypass
list and CA bundle; what is saved where (QSettings: everything but the password; the keyring: the password, through
the manager); what the shell pushes to the manager; keyboard use (mnemonics, Tab order), accessible names and
translatable strings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
import trustme
from PySide6.QtCore import QCoreApplication, QSettings, Qt, QTranslator
from PySide6.QtWidgets import QDialogButtonBox, QLabel, QWidget

from app.manager.manager import KEEP, ManagerError
from app.manager.network import PROXY_PASSWORD_KEY, NetworkSettings, ProxyMode
from app.ui import preferences as keys
from app.ui.app import AppShell
from app.ui.dialogs.preferences import PreferencesDialog
from app.ui.preferences import Preferences
from tests.support.memory_keyring import MemoryKeyring
from tests.support.qt_loop import run_coro
from tests.ui.ui_fakes import FakeManager

pytestmark = pytest.mark.timeout(60)
PASSWORD = "Ui-pr0xy-S3cret"


@pytest.fixture
def prefs(qapp, tmp_path: Path) -> Preferences:
    p = Preferences()
    p.default_download_dir = str(tmp_path)
    return p


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "office-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def open_dialog(qtbot, prefs: Preferences, network=None) -> PreferencesDialog:
    dialog = PreferencesDialog(prefs, network=network)
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.tabs.setCurrentWidget(dialog.network_page)
    return dialog


def click_ok(qtbot, dialog: PreferencesDialog) -> None:
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)


def fill_manual(dialog: PreferencesDialog, *, user: str = "alice", password: str = PASSWORD) -> None:
    dialog.proxy_manual_radio.setChecked(True)
    dialog.proxy_url_edit.setText("http://proxy.corp.example:3128")
    dialog.proxy_user_edit.setText(user)
    dialog.proxy_password_edit.setText(password)
    dialog.no_proxy_edit.setText("localhost, .corp.example")


def settings_file_bytes(prefs: Preferences) -> bytes:
    prefs.sync()
    return Path(prefs.settings.fileName()).read_bytes()


# ---------------------------------------------------------------------------------------------- Preferences
def test_network_settings_round_trip_without_a_password(qapp, prefs: Preferences, ca_file: Path) -> None:
    assert prefs.network_settings == NetworkSettings()
    seen: list[str] = []
    prefs.changed.connect(seen.append)
    value = NetworkSettings(ProxyMode.MANUAL, "http://proxy:3128", "alice", "localhost", str(ca_file))
    prefs.network_settings = value
    prefs.network_settings = value  # unchanged: no signal
    assert sorted(seen) == sorted(keys.NETWORK_KEYS)
    assert Preferences().network_settings == value  # read back from the file
    prefs.network_settings = NetworkSettings()
    assert Preferences().network_settings == NetworkSettings()


def test_a_damaged_or_hand_edited_file_falls_back_to_following_the_system(qapp) -> None:
    s = QSettings()
    s.setValue(keys.PROXY_MODE, "manual")
    s.setValue(keys.PROXY_URL, "http://bob:secret@proxy:3128")  # credentials never belong here
    s.sync()
    assert Preferences().network_settings == NetworkSettings()
    s.setValue(keys.PROXY_MODE, "sometimes")
    s.sync()
    assert Preferences().network_settings == NetworkSettings()


def test_the_setter_refuses_what_the_manager_would(qapp, prefs: Preferences) -> None:
    with pytest.raises(keys.PreferencesError, match="own fields"):
        prefs.network_settings = NetworkSettings(ProxyMode.MANUAL, "http://bob:pw@proxy:3128")
    assert prefs.network_settings == NetworkSettings()


# ---------------------------------------------------------------------------------------------- the page
def test_the_page_enables_what_the_mode_needs(qtbot, aloop, prefs: Preferences) -> None:
    dialog = open_dialog(qtbot, prefs, FakeManager())
    assert dialog.proxy_system_radio.isChecked()
    assert not dialog.proxy_url_edit.isEnabled() and not dialog.proxy_password_edit.isEnabled()
    dialog.proxy_manual_radio.setChecked(True)
    assert dialog.proxy_url_edit.isEnabled() and dialog.proxy_user_edit.isEnabled()
    assert not dialog.proxy_password_edit.isEnabled()  # no user, no password
    dialog.proxy_user_edit.setText("alice")
    assert dialog.proxy_password_edit.isEnabled()
    assert dialog.proxy_password_edit.echoMode() == dialog.proxy_password_edit.EchoMode.Password
    dialog.proxy_none_radio.setChecked(True)
    assert not dialog.no_proxy_edit.isEnabled() and not dialog.proxy_url_edit.isEnabled()


def test_without_the_manager_the_password_cannot_be_typed(qtbot, prefs: Preferences) -> None:
    dialog = open_dialog(qtbot, prefs)
    fill_manual(dialog, password="")
    assert not dialog.proxy_password_edit.isEnabled()


def test_keyboard_mnemonics_tab_order_and_accessible_names(qtbot, aloop, prefs: Preferences) -> None:
    dialog = open_dialog(qtbot, prefs, FakeManager())
    page = dialog.network_page
    fields = [dialog.proxy_system_radio, dialog.proxy_none_radio, dialog.proxy_manual_radio, dialog.proxy_url_edit,
              dialog.proxy_user_edit, dialog.proxy_password_edit, dialog.no_proxy_edit, dialog.ca_bundle_edit,
              dialog.ca_browse_button]
    for field in fields:
        assert field.accessibleName(), f"{field} has no accessible name"
    # Every text field has a label whose mnemonic leads to it, and no two mnemonics on the page (tabs included)
    # share a letter.
    buddies = {label.buddy(): label.text() for label in page.findChildren(QLabel) if label.buddy() is not None}
    for field in (dialog.proxy_url_edit, dialog.proxy_user_edit, dialog.proxy_password_edit, dialog.no_proxy_edit,
                  dialog.ca_bundle_edit):
        assert "&" in buddies.get(field, ""), f"no mnemonic label for {field.accessibleName()}"
    texts = [*buddies.values(), *(w.text() for w in (dialog.proxy_system_radio, dialog.proxy_none_radio,
                                                     dialog.proxy_manual_radio, dialog.ca_browse_button)),
             *(dialog.tabs.tabText(i) for i in range(dialog.tabs.count()))]
    letters = [t[t.index("&") + 1].lower() for t in texts if "&" in t]
    assert len(letters) == len(set(letters)), texts
    # Tab walks the page top to bottom (radio buttons of one group are one stop: Qt moves within it by arrows).
    dialog.proxy_manual_radio.setChecked(True)
    dialog.proxy_user_edit.setText("alice")
    order = []
    widget: QWidget = dialog.proxy_url_edit
    for _ in range(5):
        order.append(widget)
        widget = widget.nextInFocusChain()
        while not (widget.focusPolicy() & Qt.FocusPolicy.TabFocus) or not widget.isEnabled():
            widget = widget.nextInFocusChain()
    assert order == [dialog.proxy_url_edit, dialog.proxy_user_edit, dialog.proxy_password_edit,
                     dialog.no_proxy_edit, dialog.ca_bundle_edit]


def test_the_page_is_translatable(qtbot, aloop, prefs: Preferences) -> None:
    class Translator(QTranslator):
        def translate(self, context, source, disambiguation=None, n=-1):
            if context == "PreferencesDialog" and source in ("Net&work", "&Manual proxy:"):
                return "[fr] " + source
            return None

    translator = Translator()
    QCoreApplication.installTranslator(translator)
    try:
        dialog = open_dialog(qtbot, prefs, FakeManager())
        assert dialog.tabs.tabText(1) == "[fr] Net&work"
        assert dialog.proxy_manual_radio.text() == "[fr] &Manual proxy:"
    finally:
        QCoreApplication.removeTranslator(translator)


# ---------------------------------------------------------------------------------------------- saving
def test_ok_applies_through_the_manager_and_saves_no_password(qtbot, aloop, prefs: Preferences,
                                                             ca_file: Path) -> None:
    manager = FakeManager()
    dialog = open_dialog(qtbot, prefs, manager)
    fill_manual(dialog)
    dialog.ca_bundle_edit.setText(str(ca_file))
    with qtbot.waitSignal(dialog.accepted, timeout=5000):
        click_ok(qtbot, dialog)
    expected = NetworkSettings(ProxyMode.MANUAL, "http://proxy.corp.example:3128", "alice",
                               "localhost, .corp.example", str(ca_file))
    assert manager.calls == [("set_network", expected)] and manager.proxy_password == PASSWORD
    assert Preferences().network_settings == expected
    assert PASSWORD.encode() not in settings_file_bytes(prefs)
    assert dialog.proxy_password_edit.text() == ""  # not kept in the widget either

    # Opened again: the password is not shown, an empty field keeps it, a cleared user name forgets it.
    again = open_dialog(qtbot, prefs, manager)
    assert again.proxy_password_edit.text() == "" and "keep" in again.proxy_password_edit.placeholderText()
    again.no_proxy_edit.setText("localhost")
    with qtbot.waitSignal(again.accepted, timeout=5000):
        click_ok(qtbot, again)
    assert manager.proxy_password == PASSWORD  # KEEP
    third = open_dialog(qtbot, prefs, manager)
    third.proxy_user_edit.setText("")
    with qtbot.waitSignal(third.accepted, timeout=5000):
        click_ok(qtbot, third)
    assert manager.proxy_password is None


def test_unchanged_network_settings_do_not_bother_the_manager(qtbot, aloop, prefs: Preferences) -> None:
    manager = FakeManager()
    dialog = open_dialog(qtbot, prefs, manager)
    dialog.max_downloads_spin.setValue(7)
    assert dialog.apply_and_accept() is True  # saved and closed at once, no keyring or file work
    assert manager.calls == [] and Preferences().max_downloads == 7


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda d: d.proxy_url_edit.setText(""), "Enter the proxy's address"),
    (lambda d: d.proxy_url_edit.setText("http://bob:pw@proxy:3128"), "in their own fields"),
    (lambda d: d.proxy_user_edit.setText("bob:pw"), "cannot contain a colon"),
    (lambda d: d.proxy_url_edit.setText("gopher://proxy:70"), "unsupported proxy scheme"),
])
def test_a_bad_proxy_value_keeps_the_dialog_open_and_saves_nothing(qtbot, aloop, prefs: Preferences, edit,
                                                                  fragment: str) -> None:
    manager = FakeManager()
    dialog = open_dialog(qtbot, prefs, manager)
    fill_manual(dialog)
    dialog.max_downloads_spin.setValue(9)
    edit(dialog)
    assert dialog.apply_and_accept() is False
    assert fragment in dialog.message.text() and dialog.isVisible()
    assert manager.calls == [] and Preferences().max_downloads == 3
    assert Preferences().network_settings == NetworkSettings()


def test_the_ca_bundle_is_checked_when_chosen_and_at_ok(qtbot, aloop, prefs: Preferences, tmp_path: Path,
                                                        ca_file: Path) -> None:
    not_pem = tmp_path / "readme.txt"
    not_pem.write_text("hello")
    manager = FakeManager()
    dialog = open_dialog(qtbot, prefs, manager)
    dialog.ca_browse_button.click()
    picker = dialog._picker
    assert picker is not None and picker.isVisible()
    picker.fileSelected.emit(str(not_pem))  # what choosing a file in the picker does
    picker.close()
    qtbot.waitUntil(lambda: "CA bundle cannot be used" in dialog.message.text(), timeout=5000)
    assert "holds no PEM certificate" in dialog.message.text()
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: dialog.buttons.isEnabled() and "CA bundle" in dialog.message.text(), timeout=5000)
    assert dialog.isVisible() and manager.calls == [] and Preferences().network_settings.ca_bundle is None
    dialog.ca_bundle_edit.setText(str(ca_file))
    with qtbot.waitSignal(dialog.accepted, timeout=5000):
        click_ok(qtbot, dialog)
    assert Preferences().network_settings.ca_bundle == str(ca_file)


def test_a_refusal_from_the_manager_is_shown_and_nothing_is_saved(qtbot, aloop, prefs: Preferences) -> None:
    manager = FakeManager()
    manager.network_error = ManagerError("the proxy password could not be saved: the keyring is locked",
                                         usage=False)
    dialog = open_dialog(qtbot, prefs, manager)
    fill_manual(dialog)
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: "keyring is locked" in dialog.message.text(), timeout=5000)
    assert dialog.isVisible() and dialog.buttons.isEnabled()
    assert Preferences().network_settings == NetworkSettings()
    assert dialog.proxy_password_edit.text() == PASSWORD  # still there to try again


# ---------------------------------------------------------------------------------------------- real manager
@pytest.fixture
def ring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_with_the_real_manager_the_password_goes_to_the_keyring_only(qtbot, aloop, ring: MemoryKeyring,
                                                                     prefs: Preferences, tmp_path: Path) -> None:
    from app.manager.manager import TransferManager

    manager = TransferManager(tmp_path / "data")
    run_coro(qtbot, manager.open())
    try:
        dialog = open_dialog(qtbot, prefs, manager)
        fill_manual(dialog)
        with qtbot.waitSignal(dialog.accepted, timeout=5000):
            click_ok(qtbot, dialog)
        assert ring.values[("rusty-cat", PROXY_PASSWORD_KEY)] == PASSWORD
        assert manager.network_settings == Preferences().network_settings
        assert all(thread != "MainThread" for _op, _key, thread in ring.calls)  # keyring work off the GUI loop
        assert PASSWORD not in repr(manager) + repr(manager.http_clients) + repr(dialog)
    finally:
        run_coro(qtbot, manager.close())
    history = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("history.sqlite3*"))
    assert PASSWORD.encode() not in history and PASSWORD.encode() not in settings_file_bytes(prefs)


# ---------------------------------------------------------------------------------------------- the shell
def test_the_shell_applies_network_preferences_before_open_and_when_they_change(qtbot, aloop,
                                                                                prefs: Preferences) -> None:
    saved = NetworkSettings(ProxyMode.NONE)
    prefs.network_settings = saved
    manager = FakeManager()
    shell = AppShell(manager, prefs, window_factory=lambda m, p: _Window())
    try:
        run_coro(qtbot, shell.start([]))
        assert manager.calls[:2] == [("set_network", saved), ("open",)]
        manager.calls.clear()
        changed = NetworkSettings(ProxyMode.MANUAL, "http://proxy:3128", "alice")
        prefs.network_settings = changed  # three keys change in one burst: one push
        qtbot.waitUntil(lambda: ("set_network", changed) in manager.calls, timeout=3000)
        assert manager.calls == [("set_network", changed)] and manager.proxy_password is None
        assert manager.network == changed
        manager.network_error = ManagerError("CA bundle not found: /gone.pem")
        prefs.network_settings = NetworkSettings(ca_bundle="/gone.pem")
        qtbot.waitUntil(lambda: any("CA bundle not found" in m for m in shell.window.messages), timeout=3000)
    finally:
        run_coro(qtbot, shell.shutdown())


def test_a_start_with_unusable_network_settings_still_opens_and_says_why(qtbot, aloop, prefs: Preferences) -> None:
    manager = FakeManager()
    manager.network_error = ManagerError("CA bundle not found: /gone.pem")
    shell = AppShell(manager, prefs, window_factory=lambda m, p: _Window())
    try:
        run_coro(qtbot, shell.start([]))
        assert manager.opened and any("CA bundle not found" in m for m in shell.window.messages)
    finally:
        run_coro(qtbot, shell.shutdown())


def test_a_password_the_keyring_would_not_give_at_start_is_reported(qtbot, aloop, prefs: Preferences) -> None:
    manager = FakeManager()
    manager.network_problem = "the proxy password could not be read from the keyring (locked)"
    shell = AppShell(manager, prefs, window_factory=lambda m, p: _Window())
    try:
        run_coro(qtbot, shell.start([]))
        assert any("apply only in part" in m and "locked" in m for m in shell.window.messages)
    finally:
        run_coro(qtbot, shell.shutdown())


def test_keep_passed_by_default(qtbot, aloop, prefs: Preferences) -> None:
    """The shell never passes a password: QSettings has none to give."""
    manager = FakeManager()
    manager.proxy_password = "from-the-keyring"
    run_coro(qtbot, AppShell(manager, prefs).apply_network())
    assert manager.proxy_password == "from-the-keyring" and KEEP is not None


class _Window(QWidget):
    """The part of MainWindow's contract the shell uses, with a status bar that remembers its messages."""

    from PySide6.QtCore import Signal

    quit_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.close_handler = None
        self.messages: list[str] = []
        window = self

        class _Bar:
            def showMessage(self, text: str, _timeout: int = 0) -> None:
                window.messages.append(text)

        self._bar = _Bar()

    def statusBar(self) -> object:
        return self._bar

    def queue_items(self, items: list[str]) -> None:
        pass

    def show_error(self, what: str, message: str) -> None:
        self.messages.append(f"{what} {message}")
