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

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

pytest_plugins = ["tests.support.azurite"]
