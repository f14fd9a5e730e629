"""Load packaging/bundle_config.py and packaging/build.py by path: packaging/ is not a Python package (and must
not shadow PyPI's ``packaging``), and neither needs PyInstaller to import."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bundle_config() -> ModuleType:
    return _load("bundle_config", PACKAGING / "bundle_config.py")


@pytest.fixture(scope="session")
def build(bundle_config: ModuleType) -> ModuleType:
    return _load("rusty_cat_packaging_build", PACKAGING / "build.py")
