"""Checks ``rusty-cat --self-test`` runs before it opens the window: what a frozen bundle most often gets wrong.

A PyInstaller bundle only contains what its analysis saw. The window coming up proves Qt and the UI modules are
there, but not the parts that are loaded late or found through package metadata: the provider plugins (imported
when an ``oss://`` or ``azure://`` job starts), keyring's backends (discovered through entry points, so the
dist-info must be bundled), certifi's CA file (a data file, not a module), the Qt binding qasync picks at import
time, and the icons under ``resources/``. Each check below turns one of those into a line of output and, where
the bundle is broken, a failure, so every installer build fails loudly in CI instead of on a user's machine.

Kept free of Qt at import time and of the event loop: the checks run before ``QApplication`` exists, with plain
blocking calls, which is fine because no loop is running yet.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = [
    "PROVIDER_MODULES",
    "CheckResult",
    "check_keyring",
    "check_providers",
    "check_qt_binding",
    "check_resources",
    "check_tls",
    "check_versions",
    "native_keyring_backends",
    "run_checks",
    "run_self_checks",
]

#: Every module under ``app/providers``. Listed, not discovered: in a frozen bundle a walk of the package only
#: sees what was collected, so it could never notice a missing module. tests/packaging keeps this list complete.
PROVIDER_MODULES: tuple[str, ...] = (
    "app.providers",
    "app.providers.api",
    "app.providers.base",
    "app.providers.leases",
    "app.providers.parts",
    "app.providers.presigned",
    "app.providers.session_store",
    "app.providers.aliyun_oss",
    "app.providers.aliyun_oss.crc64",
    "app.providers.aliyun_oss.plugins",
    "app.providers.aliyun_oss.signer",
    "app.providers.aliyun_oss.xml",
    "app.providers.azure_blob",
    "app.providers.azure_blob.blocks",
    "app.providers.azure_blob.plugins",
    "app.providers.azure_blob.sas",
    "app.providers.azure_blob.signer",
)

#: How long the keyring probe may take; a Secret Service that never answers on D-Bus must not hang a CI job.
KEYRING_TIMEOUT_S = 15.0

#: Where the app looks for its icons (the same place ``app/ui/app.py`` computes: next to the ``app`` package,
#: which in a PyInstaller bundle is ``sys._MEIPASS``).
RESOURCES = Path(__file__).resolve().parents[1] / "resources"


@dataclass(frozen=True)
class CheckResult:
    """One line of the self-test: ``ok`` False fails the self-test; ``detail`` is what a person needs to know."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def _frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def check_providers(modules: Sequence[str] = PROVIDER_MODULES) -> CheckResult:
    """Import every provider module: they load only when a cloud job starts, too late to find a gap."""
    failed: list[str] = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any import-time failure is a broken bundle, not only ImportError
            failed.append(f"{name} ({type(exc).__name__}: {exc})")
    if failed:
        return CheckResult("providers", False, "cannot import " + "; ".join(failed))
    return CheckResult("providers", True, f"{len(modules)} modules imported")


def native_keyring_backends(platform: str = sys.platform) -> tuple[str, ...]:
    """keyring's backend modules for the OS keyring of ``platform``: they must be in every bundle for that OS."""
    if platform == "darwin":
        return ("keyring.backends.macOS",)
    if platform == "win32":
        return ("keyring.backends.Windows",)
    # Linux and the BSDs: the freedesktop Secret Service over D-Bus (GNOME Keyring, KWallet 5.97+, KeePassXC).
    return ("keyring.backends.SecretService", "secretstorage", "jeepney")


def _probe_keyring() -> str:
    """The backend keyring picks and the app's verdict on it (blocking: D-Bus, the registry or the keychain)."""
    import keyring

    from app.manager.secrets import SecretStore

    chosen = keyring.get_keyring()
    store = SecretStore(chosen)
    chosen_name = f"{type(chosen).__module__}.{type(chosen).__qualname__}"
    if store.keyring_usable:
        return f"{chosen_name}, usable ({store.backend_name})"
    # Not a failure: a headless machine or a desktop without a Secret Service; the app offers run-only storage.
    return f"{chosen_name}, no usable keyring ({store.problem})"


def check_keyring(
    timeout: float = KEYRING_TIMEOUT_S,
    probe: Callable[[], str] = _probe_keyring,
    platform: str = sys.platform,
) -> CheckResult:
    """The keyring backend can be determined; fails only when the bundle lacks keyring's backends or metadata.

    "No usable keyring" is printed, not failed: it is the normal state of a CI runner or a bare server.
    """
    missing: list[str] = []
    for name in native_keyring_backends(platform):
        try:
            importlib.import_module(name)
        except Exception as exc:
            missing.append(f"{name} ({type(exc).__name__})")
    if missing:
        return CheckResult("keyring", False, "backend modules missing from this build: " + ", ".join(missing))
    # keyring finds its backends through entry points: without keyring's dist-info nothing but fail.Keyring loads.
    if not importlib.metadata.entry_points(group="keyring.backends"):
        return CheckResult("keyring", False, "keyring's entry points (package metadata) are missing from this build")

    outcome: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            outcome.append(probe())
        except BaseException as exc:  # reported below; the thread must not die silently
            errors.append(exc)

    thread = threading.Thread(target=worker, name="self-test-keyring", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return CheckResult("keyring", True, f"backend probe did not answer within {timeout:g} s (not a failure)")
    if errors:
        exc = errors[0]
        return CheckResult("keyring", False, f"choosing the backend raised {type(exc).__name__}: {exc}")
    return CheckResult("keyring", True, outcome[0])


def check_tls() -> CheckResult:
    """certifi's CA bundle is a data file in the bundle, and httpx builds its SSL context from it."""
    try:
        import certifi
        import httpx

        ca_file = Path(certifi.where())
        if not ca_file.is_file() or ca_file.stat().st_size == 0:
            return CheckResult("tls", False, f"certifi's CA bundle is missing: {ca_file}")
        context = httpx.create_ssl_context()
        authorities = context.cert_store_stats().get("x509_ca", 0)
    except Exception as exc:
        return CheckResult("tls", False, f"cannot build an SSL context ({type(exc).__name__}: {exc})")
    if authorities == 0:
        return CheckResult("tls", False, f"the SSL context trusts no certificate authority ({ca_file})")
    return CheckResult("tls", True, f"{authorities} CA certificates from {ca_file}")


def check_qt_binding() -> CheckResult:
    """qasync chooses its Qt binding at import time; in the bundle it must be PySide6, the only one shipped."""
    try:
        import PySide6.QtCore  # noqa: F401  (imported first so qasync follows it, as the app does)
        import qasync
    except Exception as exc:
        return CheckResult("qt-binding", False, f"cannot import PySide6/qasync ({type(exc).__name__}: {exc})")
    name = str(getattr(qasync, "QtModuleName", "?"))
    if name != "PySide6":
        return CheckResult("qt-binding", False, f"qasync uses {name}, expected PySide6")
    return CheckResult("qt-binding", True, "qasync uses PySide6")


def check_resources(resources: Path = RESOURCES, frozen: bool | None = None) -> CheckResult:
    """The icons next to the ``app`` package: a bundle must ship them; a plain pip install runs without."""
    frozen = _frozen() if frozen is None else frozen
    svg = resources / "icons" / "rusty-cat.svg"
    pngs = sorted(resources.glob("icons/hicolor/*/apps/rusty-cat.png"))
    if svg.is_file() and pngs:
        return CheckResult("resources", True, f"icon SVG and {len(pngs)} PNG sizes in {resources}")
    if frozen:
        return CheckResult("resources", False, f"the icons are missing from the bundle (looked in {resources})")
    return CheckResult("resources", True, f"no icons in {resources} (fine outside a bundle)")


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "no metadata"


def check_versions() -> CheckResult:
    """Versions of the stack, so a bug report or a CI log says exactly what a build contains."""
    try:
        import httpx
        import PySide6
        from PySide6 import QtCore

        from app import __version__
    except Exception as exc:
        return CheckResult("versions", False, f"cannot import the stack ({type(exc).__name__}: {exc})")
    parts = [
        f"rusty-cat {__version__}",
        f"Python {sys.version.split()[0]}",
        f"PySide6 {PySide6.__version__}",
        f"Qt {QtCore.qVersion()}",
        f"qasync {_dist_version('qasync')}",
        f"httpx {httpx.__version__}",
        f"httpcore {_dist_version('httpcore')}",
        f"python-socks {_dist_version('python-socks')}",
        "frozen" if _frozen() else "not frozen",
    ]
    return CheckResult("versions", True, ", ".join(parts))


def run_checks() -> list[CheckResult]:
    """Every check, in the order a reader of the log wants them (versions first)."""
    return [check_versions(), check_qt_binding(), check_providers(), check_keyring(), check_tls(), check_resources()]


_results: list[CheckResult] | None = None


def run_self_checks(out: TextIO | None = None, *, again: bool = False) -> bool:
    """Run and print every check (one line each); True when none failed. Called by ``app.ui.app.self_test``.

    Once per process unless ``again``: the frozen entry point (packaging/entry_gui.py) calls it too, and a later
    call then returns the first verdict without printing the lines twice.
    """
    global _results
    if _results is not None and not again:
        return all(result.ok for result in _results)
    out = out if out is not None else sys.stdout
    results = _results = run_checks()
    for result in results:
        print(result.line(), file=out)
    out.flush()
    return all(result.ok for result in results)


if __name__ == "__main__":  # ``python -m app.selftest_checks``: the checks alone, without Qt's window
    os.environ.setdefault("QT_API", "pyside6")
    raise SystemExit(0 if run_self_checks() else 1)
