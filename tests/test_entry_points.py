"""The installed launchers work: ``python -m app``, ``rusty-cat`` and ``rusty-cat-cli``.

These run in subprocesses on purpose: they check what a user gets from the editable
install (console-script wrappers, module entry point), not just importability.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN_DIR = Path(sys.executable).parent  # the venv's bin/ (Scripts\ on Windows); not resolved
TIMEOUT = 60


def script_path(name: str) -> Path:
    """Where pip put the console script ``name`` for this interpreter."""
    return BIN_DIR / (f"{name}.exe" if os.name == "nt" else name)


def offscreen_env() -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=offscreen_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def test_python_m_app_self_test(tmp_path: Path) -> None:
    # cwd outside the checkout: the package must come from the install, not from cwd.
    result = run([sys.executable, "-m", "app", "--self-test"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "self-test ok" in result.stdout


def test_python_m_app_help(tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "app", "--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--self-test" in result.stdout
    assert "URL-or-FILE" in result.stdout  # the launcher takes URLs and files (desktop entry: rusty-cat %U)


def test_gui_script_is_installed_and_self_tests(tmp_path: Path) -> None:
    script = script_path("rusty-cat")
    assert script.is_file(), f"{script} missing: is the package installed (pip install -e '.[test]')?"
    result = run([str(script), "--self-test"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "self-test ok" in result.stdout


def test_cli_script_is_installed() -> None:
    script = script_path("rusty-cat-cli")
    assert script.is_file(), f"{script} missing: is the package installed (pip install -e '.[test]')?"


def test_cli_script_help(tmp_path: Path) -> None:
    if importlib.util.find_spec("app.cli") is None:
        pytest.skip("app/cli.py does not exist yet")
    result = run([str(script_path("rusty-cat-cli")), "--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "rusty-cat-cli --help printed nothing"
