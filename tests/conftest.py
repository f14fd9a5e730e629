"""Root test configuration.

Qt reads its platform plugin and binding choice from the environment when it is first
imported or when the first QApplication is created, so the defaults are set here, at
conftest import time, before any test module (or pytest-qt fixture) touches Qt. They are
defaults only: an explicit QT_QPA_PLATFORM (e.g. ``xcb`` to watch a test) still wins.

The ``app`` package is importable because ``make test`` installs it editable
(``pip install -e '.[test]'``); nothing is added to ``sys.path`` here.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

pytest_plugins = ["tests.support.azurite"]


@pytest.fixture(autouse=True)
def _user_dirs_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-user folders (history, accounts, upload sessions) under a temporary directory for every test, so no
    test -- or CLI subprocess inheriting the environment -- reads or writes the real user's files. Tests that need
    their own (env_for, tests/ui) set them again."""
    home = tmp_path_factory.mktemp("user")
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
