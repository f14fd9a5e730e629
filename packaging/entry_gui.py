"""PyInstaller entry point of the desktop app (``rusty-cat``): the same ``main`` as ``python -m app``."""

from __future__ import annotations

import multiprocessing
import os
import sys

# qasync picks its Qt binding at import time and prefers PyQt; the bundle ships only PySide6, but say so anyway.
os.environ.setdefault("QT_API", "pyside6")

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a no-op unless a frozen Windows child process is being started
    if "--self-test" in sys.argv[1:]:
        # The bundle checks (providers, keyring, TLS, icons) before the window test; app.ui.app.self_test may call
        # them too, and then they run once (run_self_checks remembers its verdict).
        from app.selftest_checks import run_self_checks

        if not run_self_checks():
            print("self-test failed: the bundle checks above did not pass", file=sys.stderr)
            raise SystemExit(1)
    from app.__main__ import main

    raise SystemExit(main())
