"""Preferences: typed values over QSettings, defaults, validation and the changed signal."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QStandardPaths

from app.ui import preferences as keys
from app.ui.preferences import Preferences, PreferencesError

MIB = 1024 * 1024


def test_defaults(qapp, isolated_dirs: Path) -> None:
    p = Preferences()
    assert p.max_downloads == 3
    assert p.max_uploads == 2
    assert p.connections == 4 == p.connections_per_download
    assert p.chunk_size == 8 * MIB
    assert p.speed_limit is None
    assert p.default_download_dir == QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DownloadLocation)
    assert p.default_upload_remote == ""
    assert p.start_minimized is False
    assert p.notifications is True
    assert p.close_to_tray is None


def test_values_persist_across_instances_and_signal_once(qapp, qtbot) -> None:
    p = Preferences()
    seen: list[str] = []
    p.changed.connect(seen.append)
    p.max_downloads = 5
    p.max_uploads = 1
    p.connections = 16
    p.chunk_size = 32 * MIB
    p.speed_limit = 512 * 1024
    p.default_download_dir = "/tmp/somewhere"
    p.default_upload_remote = "oss://work/bucket/in/"
    p.start_minimized = True
    p.notifications = False
    p.close_to_tray = False
    p.max_downloads = 5  # unchanged: no signal
    assert seen == [keys.MAX_DOWNLOADS, keys.MAX_UPLOADS, keys.CONNECTIONS, keys.CHUNK_SIZE, keys.SPEED_LIMIT,
                    keys.DOWNLOAD_DIR, keys.UPLOAD_REMOTE, keys.START_MINIMIZED, keys.NOTIFICATIONS,
                    keys.CLOSE_TO_TRAY]

    again = Preferences()  # a fresh QSettings reads the INI file back: types must survive the round trip
    assert again.max_downloads == 5 and isinstance(again.max_downloads, int)
    assert again.max_uploads == 1
    assert again.connections == 16
    assert again.chunk_size == 32 * MIB
    assert again.speed_limit == 512 * 1024
    assert again.default_download_dir == "/tmp/somewhere"
    assert again.default_upload_remote == "oss://work/bucket/in/"
    assert again.start_minimized is True
    assert again.notifications is False
    assert again.close_to_tray is False


def test_speed_limit_zero_or_none_means_unlimited(qapp) -> None:
    p = Preferences()
    p.speed_limit = 1000
    p.speed_limit = 0
    assert p.speed_limit is None
    p.speed_limit = 2000
    p.speed_limit = None
    assert Preferences().speed_limit is None


def test_close_to_tray_three_states(qapp) -> None:
    p = Preferences()
    p.close_to_tray = True
    assert Preferences().close_to_tray is True
    p.close_to_tray = None
    assert Preferences().close_to_tray is None


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("max_downloads", 0, "between 1 and 64"),
        ("max_uploads", 65, "between 1 and 64"),
        ("connections", 17, "between 1 and 16"),
        ("connections", 2.5, "whole number"),
        ("max_downloads", True, "whole number"),
        ("chunk_size", 1024, "Chunk size"),
        ("speed_limit", -5, "Speed limit"),
        ("default_download_dir", "  ", "cannot be empty"),
        ("default_upload_remote", "just-a-name", "must be a URL"),
        ("default_upload_remote", "https://acct.blob.core.windows.net/c/dir?sv=2025-11-05&sig=abc%3D", "signed link"),
        ("close_to_tray", "yes", "yes, no or ask"),
    ],
)
def test_validation_rejects_with_a_sentence_and_keeps_the_old_value(qapp, name, value, fragment) -> None:
    p = Preferences()
    before = getattr(p, name)
    with pytest.raises(PreferencesError, match=fragment):
        setattr(p, name, value)
    assert getattr(Preferences(), name) == before


def test_damaged_settings_fall_back_to_defaults(qapp) -> None:
    s = QSettings()
    s.setValue(keys.MAX_DOWNLOADS, "lots")
    s.setValue(keys.CONNECTIONS, "999")
    s.setValue(keys.NOTIFICATIONS, "maybe")
    s.setValue(keys.CLOSE_TO_TRAY, "perhaps")
    s.sync()
    p = Preferences()
    assert p.max_downloads == 3
    assert p.connections == 4
    assert p.notifications is True
    assert p.close_to_tray is None


def test_reset_restores_the_default_and_signals(qapp) -> None:
    p = Preferences()
    p.max_uploads = 7
    seen: list[str] = []
    p.changed.connect(seen.append)
    p.reset(keys.MAX_UPLOADS)
    assert p.max_uploads == 2
    assert seen == [keys.MAX_UPLOADS]
    with pytest.raises(PreferencesError):
        p.reset("nope")


def test_defaults_view_ignores_stored_values(qapp) -> None:
    p = Preferences()
    p.max_downloads = 9
    assert Preferences.defaults().max_downloads == 3
