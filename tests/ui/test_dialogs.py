"""The dialogs, driven like a user would (typing, clicking OK) against a recording fake manager/account store."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QMessageBox

from app.manager.accounts import Account, Auth, Provider
from app.manager.network import NetworkSettings, ProxyMode
from app.ui.dialogs import AccountsDialog, NewDownloadDialog, NewUploadDialog, PreferencesDialog
from app.ui.dialogs.new_download import parse_urls, validate_sha256
from app.ui.dialogs.preferences import KIB, MIB, split_speed
from app.ui.preferences import KEYS, Preferences
from app.ui.upload_targets import expand_paths, join_remote
from tests.support.qt_loop import run_coro
from tests.ui.ui_fakes import FakeAccountStore, FakeManager, FakeSecretStore

pytestmark = pytest.mark.timeout(30)

SHA = "ABCDEF0123456789" * 4
OSS = Account("work", Provider.ALIYUN_OSS, Auth.ACCESS_KEY, "https://oss-cn-hangzhou.aliyuncs.com",
              {"access_key_id": "LTAIexample", "region": "cn-hangzhou"})
AZ = Account("media", Provider.AZURE_BLOB, Auth.SHARED_KEY, "https://media.blob.core.windows.net",
             {"account_name": "media"})
WEB = Account("site", Provider.HTTP, Auth.BEARER, "https://files.example.com", {})


def click_ok(qtbot, dialog) -> None:
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)


def all_text(widget) -> str:
    return "\n".join(label.text() for label in widget.findChildren(QLabel))


@pytest.fixture
def prefs(qapp, tmp_path: Path) -> Preferences:
    p = Preferences()
    p.default_download_dir = str(tmp_path)
    return p


# -- pure helpers --------------------------------------------------------------------------------------------


def test_parse_urls_and_checksum() -> None:
    urls, bad = parse_urls(" https://a/x \n\nhttps://a/x\noss://acct/b/k\nftp://nope/\nnot a url\n")
    assert urls == ["https://a/x", "oss://acct/b/k"]
    assert bad == ["ftp://nope/", "not a url"]
    assert validate_sha256("") is None
    assert validate_sha256(f"  {SHA} ") == SHA.lower()
    with pytest.raises(ValueError, match="64 hexadecimal"):
        validate_sha256("abc")


def test_join_remote_forms() -> None:
    assert join_remote("oss://work/bucket/in/", "d/a.txt") == "oss://work/bucket/in/d/a.txt"
    assert join_remote("azure://media/c", "a b.txt") == "azure://media/c/a b.txt"
    sas = "https://acc.blob.core.windows.net/cont?sv=2024&sr=c&sig=abc%2B"
    assert join_remote(sas, "d/a b.txt") == "https://acc.blob.core.windows.net/cont/d/a%20b.txt?sv=2024&sr=c&sig=abc%2B"
    # The default chunk protocol sends the file name in the request body: the endpoint stays as it is.
    assert join_remote("https://up.example.com/api/upload", "d/a.txt") == "https://up.example.com/api/upload"
    blob_sas = "https://acc.blob.core.windows.net/cont/one.bin?sv=2024&sig=abc"  # sr absent: a blob SAS
    assert join_remote(blob_sas, "d/a.txt") == blob_sas


def test_expand_paths_keeps_the_folder_name_and_names_what_holds_nothing(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "2024").mkdir(parents=True)
    (root / "2024" / "b.jpg").write_bytes(b"b")
    (root / "a.jpg").write_bytes(b"a")
    (root / "empty").mkdir()  # inside a folder with files: nothing to say
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "nothing" / "deeper").mkdir(parents=True)
    single = tmp_path / "notes.txt"
    single.write_text("n")
    given = [str(root), str(single), str(single), str(root / "2024"), str(tmp_path / "nothing"),
             str(tmp_path / "missing")]
    sources, empty = expand_paths(given)
    assert [(s.path, s.relative) for s in sources] == [
        (str(root / "a.jpg"), "photos/a.jpg"), (str(root / "2024" / "b.jpg"), "photos/2024/b.jpg"),
        (str(single), "notes.txt")]  # each file once, though named again directly or through its folder
    assert empty == [str(tmp_path / "nothing"), str(tmp_path / "missing")]


def test_split_speed_picks_a_readable_unit() -> None:
    assert split_speed(None) == (0, MIB)
    assert split_speed(3 * MIB) == (3, MIB)
    assert split_speed(512 * KIB) == (512, KIB)


# -- new download ---------------------------------------------------------------------------------------------


def test_download_queues_each_url_with_options_and_closes(qtbot, aloop, prefs, tmp_path: Path) -> None:
    manager = FakeManager()
    dialog = NewDownloadDialog(manager, prefs, url="https://example.com/a.iso")
    qtbot.addWidget(dialog)
    dialog.open()
    assert dialog.folder_edit.text() == str(tmp_path)
    assert dialog.connections_spin.value() == prefs.connections
    dialog.connections_spin.setValue(8)
    dialog.sha256_edit.setText(SHA)
    with qtbot.waitSignal(dialog.jobs_added, timeout=3000) as added, qtbot.waitSignal(dialog.accepted, timeout=3000):
        click_ok(qtbot, dialog)
    assert len(added.args[0]) == 1
    (url, folder, options), = manager.downloads
    assert (url, folder) == ("https://example.com/a.iso", str(tmp_path))
    assert options.connections == 8
    assert options.sha256 == SHA.lower()
    assert options.chunk_size == prefs.chunk_size
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_download_several_urls_in_order(qtbot, aloop, prefs) -> None:
    manager = FakeManager()
    dialog = NewDownloadDialog(manager, prefs)
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.keyClicks(dialog.urls_edit, "https://h/1.bin")
    dialog.urls_edit.appendPlainText("\nhttps://h/2.bin\n")
    with qtbot.waitSignal(dialog.accepted, timeout=3000):
        click_ok(qtbot, dialog)
    assert [d[0] for d in manager.downloads] == ["https://h/1.bin", "https://h/2.bin"]


@pytest.mark.parametrize(
    ("urls", "sha", "folder", "expected"),
    [
        ("", "", None, "at least one URL"),
        ("ftp://example.com/x", "", None, "Not a download URL: ftp://example.com/x"),
        ("https://h/x", "xyz", None, "64 hexadecimal"),
        ("https://h/x\nhttps://h/y", SHA, None, "belongs to one file"),
        ("https://h/x", "", "", "Choose the folder"),
    ],
)
def test_download_validation_shows_inline_errors(qtbot, aloop, prefs, urls, sha, folder, expected) -> None:
    manager = FakeManager()
    dialog = NewDownloadDialog(manager, prefs, url=urls)
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.sha256_edit.setText(sha)
    if folder is not None:
        dialog.folder_edit.setText(folder)
    assert dialog.submit() is None
    assert expected in dialog.message.text()
    assert dialog.message.isVisible() and dialog.isVisible()
    assert manager.downloads == []


def test_download_missing_folder_is_an_error(qtbot, aloop, prefs, tmp_path: Path) -> None:
    manager = FakeManager()
    dialog = NewDownloadDialog(manager, prefs, url="https://h/x")
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.folder_edit.setText(str(tmp_path / "missing"))
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: "does not exist" in dialog.message.text(), timeout=3000)
    assert dialog.isVisible() and manager.downloads == []


def test_download_manager_error_keeps_dialog_open_without_requeueing(qtbot, aloop, prefs) -> None:
    manager = FakeManager()
    dialog = NewDownloadDialog(manager, prefs, url="https://h/good1\nhttps://h/bad?sig=SECRET\nhttps://h/good2")
    qtbot.addWidget(dialog)
    dialog.open()
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: "404 Not Found" in dialog.message.text(), timeout=3000)
    assert dialog.isVisible()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
    assert [d[0] for d in manager.downloads] == ["https://h/good1"]
    # Only what was not queued stays in the box; fixing it and pressing OK queues the rest once.
    assert dialog.urls_edit.toPlainText() == "https://h/bad?sig=SECRET\nhttps://h/good2"
    assert "SECRET" not in dialog.message.text()
    dialog.urls_edit.setPlainText("https://h/fixed\nhttps://h/good2")
    with qtbot.waitSignal(dialog.accepted, timeout=3000):
        click_ok(qtbot, dialog)
    assert [d[0] for d in manager.downloads] == ["https://h/good1", "https://h/fixed", "https://h/good2"]


# -- new upload -----------------------------------------------------------------------------------------------


def make_tree(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "src" / "album"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.jpg").write_bytes(b"1")
    (folder / "sub" / "two.jpg").write_bytes(b"2")
    single = tmp_path / "src" / "report.pdf"
    single.write_bytes(b"pdf")
    return folder, single


def test_upload_single_file_to_an_endpoint(qtbot, aloop, prefs, tmp_path: Path) -> None:
    _, single = make_tree(tmp_path)
    manager = FakeManager()
    dialog = NewUploadDialog(manager, prefs, files=[str(single)])
    qtbot.addWidget(dialog)
    dialog.open()
    assert dialog.paths() == [str(single)]
    dialog.url_edit.setText("https://up.example.com/api/upload")
    with qtbot.waitSignal(dialog.accepted, timeout=3000):
        click_ok(qtbot, dialog)
    assert [(p, r) for p, r, _ in manager.uploads] == [(str(single), "https://up.example.com/api/upload")]
    assert manager.uploads[0][2].chunk_size == prefs.chunk_size


def test_upload_folder_to_an_account_prefix_one_job_per_file(qtbot, aloop, prefs, tmp_path: Path) -> None:
    folder, single = make_tree(tmp_path)
    manager = FakeManager()
    store = FakeAccountStore([OSS, AZ, WEB])
    dialog = NewUploadDialog(manager, prefs, files=[str(folder), str(single)], accounts=store)
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.waitUntil(lambda: dialog.account_combo.count() == 2, timeout=3000)  # HTTP accounts are not listed
    dialog.mode_combo.setCurrentIndex(NewUploadDialog.MODE_ACCOUNT)
    dialog.account_combo.setCurrentIndex(dialog.account_combo.findData("work"))
    dialog.path_edit.setText("bucket/backup")
    with qtbot.waitSignal(dialog.accepted, timeout=3000):
        click_ok(qtbot, dialog)
    assert sorted((Path(p).name, r) for p, r, _ in manager.uploads) == [
        ("one.jpg", "oss://work/bucket/backup/album/one.jpg"),
        ("report.pdf", "oss://work/bucket/backup/report.pdf"),
        ("two.jpg", "oss://work/bucket/backup/album/sub/two.jpg"),
    ]


def test_upload_single_file_to_an_explicit_azure_blob(qtbot, aloop, prefs, tmp_path: Path) -> None:
    _, single = make_tree(tmp_path)
    manager = FakeManager()
    dialog = NewUploadDialog(manager, prefs, files=[str(single)], accounts=FakeAccountStore([OSS, AZ]))
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.waitUntil(lambda: dialog.account_combo.count() == 2, timeout=3000)
    dialog.mode_combo.setCurrentIndex(NewUploadDialog.MODE_ACCOUNT)
    dialog.account_combo.setCurrentIndex(dialog.account_combo.findData("media"))
    dialog.path_edit.setText("/videos/2024/final.pdf")
    with qtbot.waitSignal(dialog.accepted, timeout=3000):
        click_ok(qtbot, dialog)
    assert [r for _, r, _ in manager.uploads] == ["azure://media/videos/2024/final.pdf"]


def test_upload_default_remote_preselects_the_account(qtbot, aloop, prefs, tmp_path: Path) -> None:
    _, single = make_tree(tmp_path)
    prefs.default_upload_remote = "azure://media/inbox/"
    dialog = NewUploadDialog(FakeManager(), prefs, files=[str(single)], accounts=FakeAccountStore([OSS, AZ]))
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.accounts_loaded, timeout=3000):
        dialog.open()
    assert dialog.mode_combo.currentIndex() == NewUploadDialog.MODE_ACCOUNT
    assert dialog.account_combo.currentData() == "media"
    assert dialog.path_edit.text() == "inbox/"


def test_upload_folder_to_a_container_sas(qtbot, aloop, prefs, tmp_path: Path) -> None:
    folder, _ = make_tree(tmp_path)
    manager = FakeManager()
    dialog = NewUploadDialog(manager, prefs, files=[str(folder)])
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.url_edit.setText("https://acc.blob.core.windows.net/cont?sv=1&sr=c&sig=s")
    with qtbot.waitSignal(dialog.accepted, timeout=3000):
        click_ok(qtbot, dialog)
    assert sorted(r for _, r, _ in manager.uploads) == [
        "https://acc.blob.core.windows.net/cont/album/one.jpg?sv=1&sr=c&sig=s",
        "https://acc.blob.core.windows.net/cont/album/sub/two.jpg?sv=1&sr=c&sig=s",
    ]


@pytest.mark.parametrize(
    ("files", "url", "expected"),
    [
        ([], "https://up/x", "Add at least one file"),
        (["folder"], "https://acc.blob.core.windows.net/c/b?sr=b&sig=s", "names a single blob"),
        (["single"], "", "Enter the upload address"),
        (["single"], "oss://work/b/k", "Enter the upload address"),
    ],
)
def test_upload_validation(qtbot, aloop, prefs, tmp_path: Path, files, url, expected) -> None:
    folder, single = make_tree(tmp_path)
    chosen = [str(folder if f == "folder" else single) for f in files]
    manager = FakeManager()
    dialog = NewUploadDialog(manager, prefs, files=chosen)
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.url_edit.setText(url)
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: expected in dialog.message.text(), timeout=3000)
    assert dialog.isVisible() and manager.uploads == []


def test_upload_manager_error_stays_open_and_retry_skips_queued(qtbot, aloop, prefs, tmp_path: Path) -> None:
    good = tmp_path / "a.txt"
    bad = tmp_path / "bad.txt"
    good.write_text("a")
    bad.write_text("b")
    manager = FakeManager()
    dialog = NewUploadDialog(manager, prefs, files=[str(good), str(bad)])
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.url_edit.setText("https://up.example.com/upload")
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: "permission denied" in dialog.message.text(), timeout=3000)
    assert "bad.txt" in dialog.message.text()
    assert dialog.isVisible()
    assert [Path(p).name for p, _, _ in manager.uploads] == ["a.txt"]
    dialog.files_list.item(1).setSelected(True)
    dialog.remove_button.click()
    with qtbot.waitSignal(dialog.accepted, timeout=3000):
        click_ok(qtbot, dialog)
    assert [Path(p).name for p, _, _ in manager.uploads] == ["a.txt"]  # not queued twice


# -- accounts -------------------------------------------------------------------------------------------------


def open_accounts(qtbot, store: FakeAccountStore) -> AccountsDialog:
    dialog = AccountsDialog(store)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.accounts_loaded, timeout=3000):
        dialog.open()
    return dialog


def test_accounts_list_and_form_follow_provider_and_auth(qtbot, aloop) -> None:
    dialog = open_accounts(qtbot, FakeAccountStore([OSS, AZ]))
    assert dialog.account_list.count() == 2
    assert not dialog.edit_button.isEnabled()
    dialog.start_add()
    assert dialog.editor.isVisible()
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(Provider.ALIYUN_OSS))
    assert dialog.auth_combo.currentData() is Auth.ACCESS_KEY
    assert dialog.visible_fields() == ["access_key_id", "region"]
    assert dialog.form.labelForField(dialog.secret_edit).text() == "AccessKey secret:"
    dialog.auth_combo.setCurrentIndex(dialog.auth_combo.findData(Auth.PRESIGN_SERVICE))
    assert dialog.visible_fields() == []
    assert dialog.form.labelForField(dialog.endpoint_edit).text() == "Presign service URL:"
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(Provider.AZURE_BLOB))
    assert dialog.visible_fields() == ["account_name"]
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(Provider.HTTP))
    dialog.auth_combo.setCurrentIndex(dialog.auth_combo.findData(Auth.NONE))
    assert not dialog.form.isRowVisible(dialog.secret_edit)
    dialog.auth_combo.setCurrentIndex(dialog.auth_combo.findData(Auth.BASIC))
    assert dialog.visible_fields() == ["username"]
    assert dialog.secret_edit.echoMode() == dialog.secret_edit.EchoMode.Password


def test_accounts_add_saves_secret_only_in_the_store(qtbot, aloop) -> None:
    store = FakeAccountStore()
    dialog = open_accounts(qtbot, store)
    dialog.start_add()
    dialog.name_edit.setText("hz")
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(Provider.ALIYUN_OSS))
    dialog.endpoint_edit.setText("https://oss-cn-hangzhou.aliyuncs.com")
    dialog.field_edits["access_key_id"].setText("LTAI5tKEYID")
    dialog.field_edits["region"].setText("cn-hangzhou")
    qtbot.keyClicks(dialog.secret_edit, "TOPSECRETvalue")
    with qtbot.waitSignal(dialog.accounts_changed, timeout=3000):
        dialog.save_button.click()
    saved = store.accounts["hz"]
    assert (saved.provider, saved.auth) == (Provider.ALIYUN_OSS, Auth.ACCESS_KEY)
    assert saved.fields == {"access_key_id": "LTAI5tKEYID", "region": "cn-hangzhou", "path_style": "false"}
    assert store.secrets.values["hz"] == "TOPSECRETvalue"
    assert "TOPSECRETvalue" not in repr(saved)
    assert dialog.secret_edit.text() == ""  # not kept in the widget after saving
    assert "TOPSECRETvalue" not in all_text(dialog)
    assert not dialog.editor.isVisible()
    assert dialog.account_list.count() == 1 and dialog.selected_account().name == "hz"


@pytest.mark.parametrize(
    ("name", "endpoint", "secret", "expected"),
    [
        ("", "https://x", "s", "Enter a name"),
        ("n", "ftp://x", "s", "http:// or https://"),
        ("n", "https://x", "", "Enter the AccessKey secret"),
    ],
)
def test_accounts_form_validation(qtbot, aloop, name, endpoint, secret, expected) -> None:
    store = FakeAccountStore()
    dialog = open_accounts(qtbot, store)
    dialog.start_add()
    dialog.name_edit.setText(name)
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(Provider.ALIYUN_OSS))
    dialog.endpoint_edit.setText(endpoint)
    dialog.field_edits["access_key_id"].setText("id")
    dialog.field_edits["region"].setText("cn-hangzhou")
    dialog.secret_edit.setText(secret)
    dialog.save()
    assert expected in dialog.message.text()
    assert store.calls == []


def test_accounts_missing_required_field(qtbot, aloop) -> None:
    dialog = open_accounts(qtbot, FakeAccountStore())
    dialog.start_add()
    dialog.name_edit.setText("az")
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(Provider.AZURE_BLOB))
    dialog.endpoint_edit.setText("https://az.blob.core.windows.net")
    dialog.secret_edit.setText("key")
    dialog.save()
    assert "Enter the Storage account" in dialog.message.text()


def test_accounts_edit_with_empty_secret_keeps_the_stored_one(qtbot, aloop) -> None:
    store = FakeAccountStore([OSS])
    store.secrets.values["work"] = "old-secret"
    dialog = open_accounts(qtbot, store)
    assert dialog.select("work")
    dialog.edit_button.click()
    assert dialog.name_edit.isReadOnly()
    assert dialog.field_edits["region"].text() == "cn-hangzhou"
    assert dialog.secret_edit.text() == ""
    assert "keep the stored secret" in dialog.secret_edit.placeholderText()
    dialog.field_edits["region"].setText("cn-shanghai")
    with qtbot.waitSignal(dialog.accounts_changed, timeout=3000):
        dialog.save_button.click()
    assert store.calls[-1] == ("update", "work", False)
    assert store.accounts["work"].fields["region"] == "cn-shanghai"
    assert store.secrets.values["work"] == "old-secret"


def test_accounts_no_keyring_offers_an_explicit_run_only_choice(qtbot, aloop) -> None:
    store = FakeAccountStore(secrets=FakeSecretStore(usable=False))
    dialog = open_accounts(qtbot, store)
    dialog.start_add()
    dialog.name_edit.setText("web")
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(Provider.HTTP))
    dialog.auth_combo.setCurrentIndex(dialog.auth_combo.findData(Auth.BEARER))
    dialog.endpoint_edit.setText("https://files.example.com")
    dialog.secret_edit.setText("tok")
    dialog.save_button.click()
    qtbot.waitUntil(dialog.keyring_panel.isVisible, timeout=3000)
    assert "no keyring is usable here" in dialog.keyring_text.text()
    assert "Secret Service" in dialog.keyring_text.text()  # the store's own reason is shown too
    assert dialog.session_only_button.isVisible()
    assert dialog.session_only_button.text() == "Keep secrets for this run only"
    assert "web" not in store.accounts and not store.secrets.session_only  # nothing chosen silently
    with qtbot.waitSignal(dialog.accounts_changed, timeout=3000):
        dialog.session_only_button.click()
    assert store.secrets.session_only
    assert store.secrets.values["web"] == "tok"
    assert not dialog.keyring_panel.isVisible()
    assert dialog.session_note.isVisible() and "this run only" in dialog.session_note.text()


def test_accounts_test_connection_shows_the_result(qtbot, aloop) -> None:
    bad = Account("bad-one", Provider.HTTP, Auth.NONE, "https://nope.example.com", {})
    dialog = open_accounts(qtbot, FakeAccountStore([OSS, bad]))
    dialog.select("work")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "Connected to https://oss-cn-hangzhou" in dialog.message.text(), timeout=3000)
    assert dialog.message.kind == "info"
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=3000)
    dialog.select("bad-one")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "403 AuthorizationFailure" in dialog.message.text(), timeout=3000)
    assert dialog.message.kind == "error"


def test_accounts_delete_asks_first(qtbot, aloop) -> None:
    store = FakeAccountStore([OSS, AZ])
    dialog = open_accounts(qtbot, store)
    dialog.select("media")
    dialog.delete_button.click()
    assert dialog.confirm_box is not None and dialog.confirm_box.isVisible()
    dialog.confirm_box.button(QMessageBox.StandardButton.Cancel).click()
    assert "media" in store.accounts
    dialog.delete_button.click()
    with qtbot.waitSignal(dialog.accounts_changed, timeout=3000):
        dialog.confirm_box.button(QMessageBox.StandardButton.Yes).click()
    assert list(store.accounts) == ["work"]
    assert dialog.account_list.count() == 1


# -- preferences ----------------------------------------------------------------------------------------------


def test_preferences_dialog_shows_and_saves_every_field(qtbot, aloop, prefs, tmp_path: Path) -> None:
    prefs.speed_limit = 2 * MIB
    manager = FakeManager()
    ca = tmp_path / "office-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    dialog = PreferencesDialog(prefs, network=manager)
    qtbot.addWidget(dialog)
    dialog.open()
    assert dialog.max_downloads_spin.value() == 3
    assert dialog.chunk_spin.value() == 8
    assert (dialog.speed_spin.value(), dialog.speed_unit.currentData()) == (2, MIB)
    assert dialog.download_dir_edit.text() == str(tmp_path)
    assert dialog.notifications_check.isChecked() and not dialog.start_minimized_check.isChecked()
    assert dialog.close_combo.currentData() is None

    seen: list[str] = []
    prefs.changed.connect(seen.append)
    dialog.max_downloads_spin.setValue(6)
    dialog.max_uploads_spin.setValue(4)
    dialog.connections_spin.setValue(12)
    dialog.chunk_spin.setValue(16)
    dialog.speed_spin.setValue(300)
    dialog.speed_unit.setCurrentIndex(dialog.speed_unit.findData(KIB))
    dialog.download_dir_edit.setText(str(tmp_path / "dl"))
    dialog.upload_remote_edit.setText("oss://work/bucket/in/")
    dialog.start_minimized_check.setChecked(True)
    dialog.notifications_check.setChecked(False)
    dialog.close_combo.setCurrentIndex(dialog.close_combo.findData(True))
    assert dialog.proxy_system_radio.isChecked() and not dialog.proxy_url_edit.isEnabled()
    dialog.proxy_manual_radio.setChecked(True)
    dialog.proxy_url_edit.setText("http://proxy.example.com:3128")
    dialog.proxy_user_edit.setText("alice")
    dialog.proxy_password_edit.setText("pw-in-the-keyring")
    dialog.no_proxy_edit.setText("localhost, .corp.example")
    dialog.ca_bundle_edit.setText(str(ca))
    with qtbot.waitSignal(dialog.accepted, timeout=3000):
        click_ok(qtbot, dialog)
    fresh = Preferences()
    expected = NetworkSettings(ProxyMode.MANUAL, "http://proxy.example.com:3128", "alice", "localhost, .corp.example",
                               str(ca))
    assert fresh.network_settings == expected
    assert manager.calls == [("set_network", expected)] and manager.proxy_password == "pw-in-the-keyring"
    assert (fresh.max_downloads, fresh.max_uploads, fresh.connections) == (6, 4, 12)
    assert fresh.chunk_size == 16 * MIB
    assert fresh.speed_limit == 300 * KIB
    assert fresh.default_download_dir == str(tmp_path / "dl")
    assert fresh.default_upload_remote == "oss://work/bucket/in/"
    assert fresh.start_minimized is True and fresh.notifications is False and fresh.close_to_tray is True
    assert sorted(set(seen)) == sorted(KEYS) and len(seen) == len(KEYS)  # each changed key signalled once


def test_preferences_dialog_zero_means_unlimited(qtbot, prefs) -> None:
    prefs.speed_limit = 5 * MIB
    dialog = PreferencesDialog(prefs)
    qtbot.addWidget(dialog)
    dialog.open()
    assert dialog.speed_spin.specialValueText() == "Unlimited"
    dialog.speed_spin.setValue(0)
    assert dialog.apply_and_accept()
    assert Preferences().speed_limit is None


def test_preferences_dialog_bad_value_stays_open_and_saves_nothing(qtbot, prefs) -> None:
    dialog = PreferencesDialog(prefs)
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.max_downloads_spin.setValue(9)
    dialog.upload_remote_edit.setText("no-scheme")
    click_ok(qtbot, dialog)
    assert dialog.isVisible()
    assert "must be a URL" in dialog.message.text()
    assert Preferences().max_downloads == 3


def test_preferences_dialog_restore_defaults(qtbot, prefs) -> None:
    prefs.max_uploads = 9
    prefs.notifications = False
    dialog = PreferencesDialog(prefs)
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).click()
    assert dialog.max_uploads_spin.value() == 2
    assert dialog.notifications_check.isChecked()
    assert prefs.max_uploads == 9  # nothing saved before OK


# -- accounts against the real store (SQLite + SecretStore) ------------------------------------------------------


@pytest.fixture
def real_manager(qtbot, aloop, tmp_path: Path):
    from app.manager.manager import TransferManager

    def make(secrets=None):
        manager = TransferManager(tmp_path / "data", secrets=secrets)
        run_coro(qtbot, manager.open())
        managers.append(manager)
        return manager

    managers: list = []
    yield make
    for manager in managers:
        run_coro(qtbot, manager.close())


def fill_oss(dialog: AccountsDialog, name: str, secret: str) -> None:
    dialog.start_add()
    dialog.name_edit.setText(name)
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(Provider.ALIYUN_OSS))
    dialog.endpoint_edit.setText("https://oss-cn-hangzhou.aliyuncs.com")
    dialog.field_edits["access_key_id"].setText("LTAI5tKEYID")
    dialog.field_edits["region"].setText("cn-hangzhou")
    dialog.path_style_check.setChecked(True)
    dialog.secret_edit.setText(secret)


def test_accounts_dialog_with_the_real_store_and_keyring(qtbot, memory_keyring, real_manager, tmp_path) -> None:
    manager = real_manager()
    dialog = open_accounts(qtbot, manager.accounts)
    fill_oss(dialog, "hz", "REAL-SECRET-1")
    with qtbot.waitSignal(dialog.accounts_changed, timeout=5000):
        dialog.save_button.click()
    assert memory_keyring.values[("rusty-cat", "account:hz")] == "REAL-SECRET-1"
    stored = run_coro(qtbot, manager.accounts.get("hz"))
    assert stored.path_style and stored.fields["region"] == "cn-hangzhou"
    # Edit without a secret keeps it; with one replaces it.
    dialog.select("hz")
    dialog.edit_selected()
    assert dialog.path_style_check.isChecked()
    dialog.field_edits["region"].setText("cn-shanghai")
    with qtbot.waitSignal(dialog.accounts_changed, timeout=5000):
        dialog.save_button.click()
    assert memory_keyring.values[("rusty-cat", "account:hz")] == "REAL-SECRET-1"
    assert run_coro(qtbot, manager.accounts.get("hz")).fields["region"] == "cn-shanghai"
    # A bad value is refused by the store's own validation, shown inline.
    fill_oss(dialog, "sh", "x")
    dialog.field_edits["region"].setText("oss-cn-shanghai")
    dialog.save_button.click()
    qtbot.waitUntil(lambda: "invalid OSS region" in dialog.message.text(), timeout=5000)
    # Secrets never reach the database file.
    db_bytes = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("history.sqlite3*"))
    assert b"REAL-SECRET-1" not in db_bytes
    # Delete removes the profile and its secret.
    dialog.select("hz")
    dialog.delete_selected()
    with qtbot.waitSignal(dialog.accounts_changed, timeout=5000):
        dialog.confirm_box.button(QMessageBox.StandardButton.Yes).click()
    assert ("rusty-cat", "account:hz") not in memory_keyring.values
    assert run_coro(qtbot, manager.accounts.list()) == []


def test_accounts_dialog_real_store_without_keyring(qtbot, real_manager) -> None:
    from keyring.backends import fail

    from app.manager.secrets import SecretStore

    manager = real_manager(SecretStore(backend=fail.Keyring()))
    dialog = open_accounts(qtbot, manager.accounts)
    fill_oss(dialog, "hz", "RUN-ONLY-SECRET")
    dialog.save_button.click()
    qtbot.waitUntil(dialog.keyring_panel.isVisible, timeout=5000)
    assert run_coro(qtbot, manager.accounts.list()) == []  # nothing saved before the user chose
    assert not manager.secrets.session_only
    assert "RUN-ONLY-SECRET" not in all_text(dialog)
    with qtbot.waitSignal(dialog.accounts_changed, timeout=5000):
        dialog.session_only_button.click()
    assert manager.secrets.session_only
    assert run_coro(qtbot, manager.accounts.secret("hz")) == "RUN-ONLY-SECRET"
    assert dialog.session_note.isVisible()
