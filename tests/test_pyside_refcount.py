"""Regression guard for PySide6 6.12.0 on CPython 3.11 (the ``none_dealloc`` abort).

PySide6 6.12.0 drops one reference to ``None`` on every call of a Qt method that returns
``void``. On CPython 3.11 ``None`` is an ordinary refcounted object, so a long-running GUI
eventually drives its refcount to zero and the interpreter aborts with
``Fatal Python error: none_dealloc``. pyproject.toml therefore pins
``PySide6-Essentials<6.12`` on Python < 3.12. From 3.12 on ``None`` is immortal (PEP 683)
and the leak is harmless, which is why these tests only run on 3.11.
"""

from __future__ import annotations

import sys
from importlib.metadata import version

import pytest

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="None is immortal on CPython >= 3.12 (PEP 683): its refcount cannot drop, so the "
    "PySide6 6.12.0 none_dealloc bug cannot trigger",
)

CALLS = 10_000
TOLERANCE = 100


def test_void_qt_calls_do_not_leak_references_to_none(qapp: object) -> None:
    # `qapp` (pytest-qt) reuses the process's QApplication or creates one. A bare
    # QCoreApplication is deliberately avoided: once it exists, no QApplication can be
    # created, which would break every widget test that runs after this one.
    from PySide6.QtCore import QCoreApplication, QObject

    assert QCoreApplication.instance() is not None
    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        obj.setObjectName("x")  # returns void: the affected code path
    after = sys.getrefcount(None)
    assert obj.objectName() == "x"
    assert after >= before - TOLERANCE, (
        f"refcount of None fell from {before} to {after} over {CALLS} void Qt calls; "
        "this PySide6 build has the none_dealloc bug (see pyproject.toml)"
    )


def test_installed_pyside6_is_not_the_broken_release() -> None:
    import PySide6

    installed = version("PySide6-Essentials")
    assert installed != "6.12.0", "PySide6-Essentials 6.12.0 aborts CPython 3.11 (none_dealloc)"
    # The module actually imported could come from another distribution (e.g. full PySide6).
    assert PySide6.__version__ != "6.12.0", "the imported PySide6 is 6.12.0 (none_dealloc on 3.11)"
