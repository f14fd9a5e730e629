"""The engine names no provider: its facade loads no provider code, and the plugins come from the providers' own
import point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_engine_facade_loads_and_names_no_provider_code() -> None:
    code = ("import sys, app.engine.api as api; assert not any(m.startswith('app.providers') for m in sys.modules), "
            "'eager'; assert not hasattr(api, 'AliOssDirectUpload'), 'named'; "
            "from app.providers.api import AliOssDirectUpload, AzureBlobSasDownload; "
            "assert AliOssDirectUpload.__module__.startswith('app.providers.aliyun_oss'); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_unknown_names_still_raise() -> None:
    import app.engine.api as api

    try:
        api.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
