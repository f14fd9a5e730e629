"""GUI entry point: ``python -m app`` and the ``rusty-cat`` launcher.

Kept small and Qt-free at import time, so ``--help`` works (and points at the CLI) even where PySide6 is
missing or cannot load; the window, the event loop and the manager live in :mod:`app.ui.app`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

APP_NAME = "Rusty Cat"


def build_parser() -> argparse.ArgumentParser:
    """Describe the launcher's options; kept separate so ``--help`` never needs Qt."""
    parser = argparse.ArgumentParser(
        prog="rusty-cat",
        description=(
            "Rusty Cat: a desktop transfer manager for large files. URLs are queued as downloads and "
            "files or folders as uploads; if Rusty Cat is already running, they are handed to its window. "
            "For scripts and terminals, use rusty-cat-cli."
        ),
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="create the main window offscreen on a temporary data dir, close it and exit 0 on success",
    )
    # The desktop entry launches `rusty-cat %U` (file:// URLs for files).
    parser.add_argument(
        "items", nargs="*", metavar="URL-or-FILE",
        help="URLs to download (http, https, oss://, azure://) or files and folders to upload",
    )
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
        from app.ui.app import self_test

        return self_test()

    if not has_display():
        print(
            "rusty-cat: no display found (neither DISPLAY nor WAYLAND_DISPLAY is set).\n"
            "Run it from a desktop session, set QT_QPA_PLATFORM (e.g. offscreen), "
            "or use `rusty-cat --self-test` / `rusty-cat-cli --help`.",
            file=sys.stderr,
        )
        return 1

    from app.ui.app import run_app

    return run_app(args.items)


if __name__ == "__main__":
    raise SystemExit(main())
