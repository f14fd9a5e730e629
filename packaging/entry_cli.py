"""PyInstaller entry point of the command-line client (``rusty-cat-cli``): the same ``main`` as the pip script."""

from __future__ import annotations

import multiprocessing
import os

os.environ.setdefault("QT_API", "pyside6")

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.cli import main

    raise SystemExit(main())
