"""The self-test's bundle checks (app/selftest_checks.py): each passes on a good install and fails, naming the
gap, when the piece a frozen bundle tends to lose is missing."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import certifi
import pytest

from app import selftest_checks
from app.selftest_checks import (
    PROVIDER_MODULES,
    check_keyring,
    check_providers,
    check_qt_binding,
    check_resources,
    check_tls,
    run_self_checks,
)

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def _modules_on_disk(package_dir: Path, package: str) -> set[str]:
    found = set()
    for path in package_dir.rglob("*.py"):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.add(".".join([package, *parts]))
    return found


def test_provider_list_names_every_provider_module() -> None:
    """The list is what a frozen bundle is checked against, so it must not fall behind app/providers."""
    assert set(PROVIDER_MODULES) == _modules_on_disk(ROOT / "app" / "providers", "app.providers")


def test_all_checks_pass_and_print_one_line_each_in_the_dev_environment() -> None:
    out = io.StringIO()
    assert run_self_checks(out, again=True) is True
    lines = out.getvalue().splitlines()
    names = [line.split()[1].rstrip(":") for line in lines]
    assert names == ["versions", "qt-binding", "providers", "keyring", "tls", "resources"]
    assert all(line.startswith("ok ") for line in lines)
    versions = lines[0]
    for piece in ("PySide6 ", "Qt ", "qasync ", "httpx ", "httpcore ", "python-socks "):
        assert piece in versions


def test_second_call_returns_the_first_verdict_without_printing_again() -> None:
    run_self_checks(io.StringIO(), again=True)
    out = io.StringIO()
    assert run_self_checks(out) is True
    assert out.getvalue() == ""


def test_providers_fail_naming_the_module_that_cannot_be_imported() -> None:
    result = check_providers(("app.providers.api", "app.providers.no_such_provider"))
    assert not result.ok
    assert "app.providers.no_such_provider" in result.detail
    assert "app.providers.api " not in result.detail


def test_keyring_fails_when_a_native_backend_dependency_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jeepney", None)  # None in sys.modules makes `import jeepney` raise
    result = check_keyring(probe=lambda: "unused", platform="linux")
    assert not result.ok
    assert "jeepney" in result.detail


def test_keyring_fails_without_the_entry_point_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selftest_checks.importlib.metadata, "entry_points", lambda **_kw: [])
    result = check_keyring(probe=lambda: "unused")
    assert not result.ok
    assert "entry points" in result.detail


def test_keyring_reports_the_backend_and_an_unusable_keyring_is_not_a_failure() -> None:
    result = check_keyring()
    assert result.ok
    assert "keyring.backends" in result.detail or "keyrings.alt" in result.detail
    assert ("usable" in result.detail) or ("no usable keyring" in result.detail)


def test_keyring_probe_that_hangs_is_reported_not_waited_for() -> None:
    started = time.monotonic()
    result = check_keyring(timeout=0.2, probe=lambda: time.sleep(5) or "late")
    assert time.monotonic() - started < 3
    assert result.ok
    assert "did not answer" in result.detail


def test_keyring_probe_that_raises_fails() -> None:
    def probe() -> str:
        raise RuntimeError("D-Bus exploded")

    result = check_keyring(probe=probe)
    assert not result.ok
    assert "D-Bus exploded" in result.detail


def test_tls_trusts_certifi_authorities() -> None:
    result = check_tls()
    assert result.ok
    assert certifi.where() in result.detail


def test_tls_fails_when_the_ca_bundle_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(certifi, "where", lambda: str(tmp_path / "cacert.pem"))
    result = check_tls()
    assert not result.ok
    assert "cacert.pem" in result.detail


def test_qt_binding_is_pyside6() -> None:
    result = check_qt_binding()
    assert result.ok, result.detail


def test_resources_required_only_in_a_frozen_bundle(tmp_path: Path) -> None:
    assert check_resources(ROOT / "resources", frozen=True).ok
    missing = check_resources(tmp_path, frozen=True)
    assert not missing.ok
    assert str(tmp_path) in missing.detail
    assert check_resources(tmp_path, frozen=False).ok


def test_resources_path_matches_where_the_app_shell_looks() -> None:
    """app/ui/app.py computes Path(__file__).parents[2] / "resources"; the packaging spec relies on both agreeing."""
    assert selftest_checks.RESOURCES == ROOT / "resources"
