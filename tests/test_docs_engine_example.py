"""The end-to-end engine example in docs/engine.md must run as written."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.http_server import TestHttpServer

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "engine.md"


def _example_source() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- example: end-to-end -->\n```python\n(.*?)```", text, re.S)
    assert match, f"{DOC.relative_to(ROOT)} has no end-to-end example"
    return match.group(1)


@pytest.mark.timeout(60)
def test_engine_doc_example_downloads_a_file(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    script = tmp_path / "example.py"
    script.write_text(_example_source())
    dest = tmp_path / "out" / "example.bin"
    with TestHttpServer() as srv:
        srv.add_file("/example.bin", data)
        proc = subprocess.run([sys.executable, str(script), srv.url("/example.bin"), str(dest)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "COMPLETE" in proc.stdout and "complete" in proc.stdout
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(data).digest()
