"""GUI entry point: ``python -m app`` and the ``rusty-cat`` launcher.

The real transfer window arrives with a later issue. Until then this module shows a
small placeholder window, so that the launcher, the desktop entry and packaging can be
wired up and tested now, and it points people at the command-line client, which
already works.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication, QMainWindow

APP_NAME = "Rusty Cat"
DESKTOP_FILE_NAME = "rusty-cat"
PLACEHOLDER_TEXT = (
    "The transfer window arrives in a later release.\n\n"
    "Until then, use the command-line client:\n"
    "rusty-cat-cli --help"
)
# Only present in a source checkout; installed copies simply run without a window icon.
ICON_PATH = Path(__file__).resolve().parent.parent / "resources" / "icons" / "rusty-cat.svg"


def build_parser() -> argparse.ArgumentParser:
    """Describe the launcher's options; kept separate so ``--help`` never needs Qt."""
    parser = argparse.ArgumentParser(
        prog="rusty-cat",
        description=(
            "Rusty Cat: a desktop transfer manager for large files. "
            "This release shows a placeholder window; use rusty-cat-cli for transfers."
        ),
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="create the main window offscreen, process events, close it and exit 0 on success",
    )
    # The desktop entry launches `rusty-cat %U`; accept the URLs now so that desktop
    # launches do not fail, even though the placeholder window cannot act on them yet.
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to open (ignored for now)")
    return parser


def print_cli_help() -> None:
    """Fall back to the CLI's help, because without Qt the CLI is what still works."""
    try:
        from app.cli import main as cli_main
    except ImportError:
        print("Rusty Cat's command-line client is not available in this installation.")
        return
    try:
        cli_main(["--help"])
    except SystemExit:
        # argparse-style CLIs exit after printing help; that is the expected outcome.
        pass


def has_display() -> bool:
    """Tell whether Qt can reach a display, because a failed platform plugin aborts the process.

    Qt reports a missing display with a fatal error (SIGABRT) that Python cannot catch,
    so check first and fail with a readable message instead.
    """
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def create_application(qt_argv: list[str]) -> QApplication:
    """Return the running QApplication or create one, since Qt allows only one per process."""
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    if existing is not None:
        raise RuntimeError("a non-GUI QCoreApplication already exists in this process")
    app = QApplication(qt_argv)
    app.setApplicationName(APP_NAME)
    # Lets Wayland compositors match the window to resources/rusty-cat.desktop.
    app.setDesktopFileName(DESKTOP_FILE_NAME)
    if ICON_PATH.is_file():
        app.setWindowIcon(QIcon(str(ICON_PATH)))
    return app


def create_main_window() -> QMainWindow:
    """Build the placeholder main window that stands in until the transfer window lands."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel, QMainWindow

    window = QMainWindow()
    window.setWindowTitle(APP_NAME)
    label = QLabel(PLACEHOLDER_TEXT)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setMargin(24)
    window.setCentralWidget(label)
    window.resize(640, 400)
    return window


def self_test() -> int:
    """Exercise Qt start-up end to end without a display, so CI can prove the GUI boots."""
    # Forced, not defaulted: the self-test must never depend on (or pop up on) a display.
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = create_application([sys.argv[0] if sys.argv else "rusty-cat"])
    window = create_main_window()
    window.show()
    app.processEvents()
    ok = window.windowTitle() == APP_NAME and window.isVisible()
    window.close()
    app.processEvents()
    if not ok:
        print("self-test failed: the main window did not come up", file=sys.stderr)
        return 1
    print("self-test ok")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Start the GUI; returns the process exit status instead of exiting, so tests can call it."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(args_list)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse has already printed
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)

    try:
        import PySide6.QtWidgets  # noqa: F401  (probe only: Qt may be absent or miss system libraries)
    except ImportError as exc:
        print(f"Rusty Cat's window needs PySide6, which could not be loaded ({exc}).", file=sys.stderr)
        print_cli_help()
        return 0

    if args.self_test:
        return self_test()

    if not has_display():
        print(
            "rusty-cat: no display found (neither DISPLAY nor WAYLAND_DISPLAY is set).\n"
            "Run it from a desktop session, set QT_QPA_PLATFORM (e.g. offscreen), "
            "or use `rusty-cat --self-test` / `rusty-cat-cli --help`.",
            file=sys.stderr,
        )
        return 1

    app = create_application([sys.argv[0] if sys.argv else "rusty-cat"])
    window = create_main_window()
    window.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
