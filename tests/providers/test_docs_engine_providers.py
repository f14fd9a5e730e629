"""The five provider examples in docs/engine.md run as written, against Azurite and the fake OSS server."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "engine.md"
DATA = os.urandom(2 * 1024 * 1024 + 3)


def example(name: str) -> str:
    text = DOC.read_text()
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"{DOC.relative_to(ROOT)} has no example {name!r}"
    return match.group(1)


def run(tmp_path: Path, name: str, *args: str, **env: str) -> None:
    script = tmp_path / f"{name}.py"
    script.write_text(example(name))
    proc = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src.bin"
    path.write_bytes(DATA)
    return path


def same(path: Path) -> bool:
    return hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(DATA).digest()


@pytest.mark.timeout(120)
def test_azure_examples(azurite, tmp_path: Path, src: Path) -> None:  # type: ignore[no-untyped-def]
    container = azurite.create_container()
    run(tmp_path, "azure-blob-direct", str(src), azurite.blob_url(container, "direct.bin"), "direct.out",
        AZURE_ACCOUNT=azurite.account_name, AZURE_KEY=azurite.account_key)
    assert azurite.read_blob(container, "direct.bin") == DATA and same(tmp_path / "direct.out")
    run(tmp_path, "azure-blob-sas", str(src), azurite.blob_sas(container, "sas.bin", permission="racw"), "sas.out")
    assert azurite.read_blob(container, "sas.bin") == DATA and same(tmp_path / "sas.out")


@pytest.mark.timeout(120)
def test_oss_and_presigned_examples(tmp_path: Path, src: Path) -> None:
    with FakeOssServer(min_part_size=64 * 1024) as oss:
        env = {"OSS_ENDPOINT": oss.endpoint, "OSS_REGION": oss.region,
               "OSS_ACCESS_KEY_ID": oss.credentials.access_key_id,
               "OSS_ACCESS_KEY_SECRET": oss.credentials.access_key_secret}
        run(tmp_path, "aliyun-oss-direct", str(src), DEFAULT_BUCKET, "direct.bin", "direct.out", **env)
        assert same(tmp_path / "direct.out")
        run(tmp_path, "aliyun-oss-presigned", str(src), DEFAULT_BUCKET, "presigned.bin", "presigned.out", **env)
        assert same(tmp_path / "presigned.out")
        url = oss.signer().presign("GET", oss.object_url(DEFAULT_BUCKET, "direct.bin"), bucket=DEFAULT_BUCKET,
                                   key="direct.bin", expires=timedelta(minutes=5))
        run(tmp_path, "presigned", url, "neutral.out")
        assert same(tmp_path / "neutral.out")
        for key in ("direct.bin", "presigned.bin"):
            stored = oss.get_object(DEFAULT_BUCKET, key)
            assert stored is not None and hashlib.sha256(bytes(stored.data)).digest() == hashlib.sha256(DATA).digest()
