"""The layering rules hold: import-linter's contracts in pyproject.toml ([tool.importlinter]) are kept.

They say what docs/engine.md ("Layers") says: the window and the CLI sit above the manager, above the providers,
above the engine; the window and the CLI reach the engine only through the manager; providers use the engine only
through app.engine.plugin_sdk. A broken contract fails here with lint-imports' own report of the offending import chain.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "lint-imports is missing: install the test extra (pip install -e '.[test]')"
    out = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
