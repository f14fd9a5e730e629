"""The bundle's prune lists (packaging/bundle_config.py) against what the app really imports and loads.

A Qt module or plugin missing from the bundle only shows when the code path that needs it runs on a user's
machine, so these checks run on every test run, without building anything."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "app").rglob("*.py")) + sorted((ROOT / "packaging").glob("entry_*.py"))


@functools.cache
def _imports() -> frozenset[str]:
    """Every module name imported anywhere in app/ (absolute imports; `from X import Y` also yields X.Y)."""
    names: set[str] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(names)


def _qt_modules_used() -> set[str]:
    return {name.split(".")[1] for name in _imports() if re.match(r"^PySide6\.Qt\w+", name)}


def test_the_scan_finds_the_qt_modules_the_app_is_known_to_use() -> None:
    """Guards the scan itself: if it found nothing, the checks below would pass vacuously."""
    assert {"QtCore", "QtGui", "QtWidgets", "QtNetwork"} <= _qt_modules_used()


def test_no_qt_module_the_app_imports_is_excluded(bundle_config: ModuleType) -> None:
    excluded = set(bundle_config.EXCLUDED_QT_MODULES) & _qt_modules_used()
    assert not excluded, f"bundle_config excludes Qt modules the app imports: {sorted(excluded)}"


@pytest.mark.parametrize("layout", ["linux", "linux-link", "windows", "macos"])
def test_binaries_of_imported_qt_modules_survive_pruning(bundle_config: ModuleType, layout: str) -> None:
    # QtSvg (icons through the svg icon engine), QtDBus (tray, portal), XcbQpa/WaylandClient (platforms) and
    # OpenGL (the Wayland EGL client plugin) are loaded by Qt itself, not imported.
    stems = {m.removeprefix("Qt") for m in _qt_modules_used()} | {"Svg", "DBus", "XcbQpa", "WaylandClient", "OpenGL"}
    for stem in sorted(stems):
        dest = {
            "linux": f"PySide6/Qt/lib/libQt6{stem}.so.6",
            "linux-link": f"libQt6{stem}.so.6",
            "windows": f"PySide6/Qt6{stem}.dll",
            "macos": f"PySide6/Qt/lib/Qt{stem}.framework/Versions/A/Qt{stem}",
        }[layout]
        assert not bundle_config.drop_binary(dest), dest
    for module in _qt_modules_used():
        for ext in ("abi3.so", "pyd"):
            assert not bundle_config.drop_binary(f"PySide6/{module}.{ext}")


def test_python_packages_the_app_imports_are_not_excluded(bundle_config: ModuleType) -> None:
    imported = _imports()
    for excluded in bundle_config.EXCLUDED_PYTHON:
        clash = [name for name in imported if name == excluded or name.startswith(excluded + ".")]
        assert not clash, f"{excluded} is excluded from the bundle but the app imports {clash}"


@pytest.mark.parametrize("dest", [
    "PySide6/Qt/plugins/platforms/libqxcb.so",
    "PySide6/Qt/plugins/platforms/libqwayland.so",
    "PySide6/Qt/plugins/platforms/libqoffscreen.so",
    "PySide6/Qt/plugins/platforms/libqcocoa.dylib",
    "PySide6/plugins/platforms/qwindows.dll",
    "PySide6/plugins/platforms/qoffscreen.dll",
    "PySide6/Qt/plugins/platformthemes/libqxdgdesktopportal.so",
    "PySide6/Qt/plugins/iconengines/libqsvgicon.so",
    "PySide6/Qt/plugins/imageformats/libqsvg.so",
    "PySide6/Qt/plugins/imageformats/libqico.so",
    "PySide6/plugins/styles/qmodernwindowsstyle.dll",
    "PySide6/Qt/plugins/wayland-shell-integration/libxdg-shell.so",
    "PySide6/Qt/plugins/wayland-graphics-integration-client/libqt-plugin-wayland-egl.so",
    "PySide6/Qt/translations/qtbase_de.qm",
    "PySide6/QtCore.abi3.so",
    "shiboken6/libshiboken6.abi3.so.6.11",
    "libpython3.11.so.1.0",
    "certifi/cacert.pem",
])
def test_what_the_app_needs_is_kept(bundle_config: ModuleType, dest: str) -> None:
    assert not bundle_config.drop_binary(dest)


@pytest.mark.parametrize("dest", [
    "PySide6/Qt/plugins/platformthemes/libqgtk3.so",
    "PySide6/Qt/plugins/platforms/libqeglfs.so",
    "PySide6/Qt/plugins/platforms/libqvnc.so",
    "PySide6/Qt/plugins/qmltooling/libqmldbg_server.so",
    "PySide6/Qt/plugins/designer/libqquickwidget.so",
    "PySide6/Qt/plugins/imageformats/libqpdf.so",
    "PySide6/Qt/plugins/wayland-shell-integration/libwl-shell-plugin.so",
    "PySide6/Qt/plugins/wayland-graphics-integration-client/libdmabuf-server.so",
    "PySide6/Qt/lib/libQt6Qml.so.6",
    "PySide6/Qt/lib/libQt6Quick.so.6",
    "PySide6/Qt/lib/libQt6Pdf.so.6",
    "PySide6/Qt/lib/libQt6EglFSDeviceIntegration.so.6",
    "libQt6Pdf.so.6",
    "PySide6/Qt6Qml.dll",
    "PySide6/Qt/lib/QtQuick.framework/Versions/A/QtQuick",
    "PySide6/Qt/qml/QtQuick/Controls/qmldir",
    "PySide6/QtQml.abi3.so",
    "PySide6/QtDesigner.pyd",
    "PySide6/Qt/translations/qtdeclarative_de.qm",
    "PySide6/translations/qtwebengine_de.qm",
    "PySide6/opengl32sw.dll",
])
def test_what_the_app_never_uses_is_dropped(bundle_config: ModuleType, dest: str) -> None:
    assert bundle_config.drop_binary(dest)


def test_orphaned_libraries_are_those_only_dropped_files_need(bundle_config: ModuleType) -> None:
    graph = {
        "/qt/plugins/libqgtk3.so": [
            ("libgtk-3.so.0", "/usr/lib/libgtk-3.so.0"), ("libQt6Gui.so.6", "/qt/libQt6Gui.so.6")],
        "/usr/lib/libgtk-3.so.0": [
            ("libgdk-3.so.0", "/usr/lib/libgdk-3.so.0"), ("libX11.so.6", "/usr/lib/libX11.so.6")],
        "/usr/lib/libgdk-3.so.0": [("libcairo.so.2", "/usr/lib/libcairo.so.2")],
        "/qt/plugins/libqxcb.so": [("libX11.so.6", "/usr/lib/libX11.so.6"), ("libQt6Gui.so.6", "/qt/libQt6Gui.so.6")],
        "/qt/libQt6Gui.so.6": [],
        "/usr/lib/libX11.so.6": [],
        "/usr/lib/libcairo.so.2": [],
        "/usr/lib/libssl.so.3": [],  # collected for its own sake (ctypes, a hook): never an orphan
    }

    def imports(path: str) -> list[tuple[str, str | None]]:
        return graph[path]

    kept = ["/qt/plugins/libqxcb.so", "/qt/libQt6Gui.so.6", "/usr/lib/libX11.so.6", "/usr/lib/libgtk-3.so.0",
            "/usr/lib/libgdk-3.so.0", "/usr/lib/libcairo.so.2", "/usr/lib/libssl.so.3"]
    orphans = bundle_config.orphaned_libraries(kept, ["/qt/plugins/libqgtk3.so"], imports)
    assert orphans == {"libgtk-3.so.0", "libgdk-3.so.0", "libcairo.so.2"}


def test_version_and_requirements_come_from_pyproject(bundle_config: ModuleType) -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert bundle_config.project_version() == project["version"]
    assert bundle_config.runtime_requirements() == project["dependencies"]


def test_every_runtime_dependency_is_pinned_for_reproducible_builds(bundle_config: ModuleType) -> None:
    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    pins = {}
    for line in (ROOT / "packaging" / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt must pin exact versions: {line!r}"
            pins[norm(name)] = version
    for requirement in bundle_config.runtime_requirements():
        name = norm(re.split(r"[<>=!~;\s\[]", requirement, maxsplit=1)[0])
        assert name in pins, f"{name} is not pinned in packaging/constraints.txt"
    # PySide6 6.12.0 crashes on CPython 3.11 (pyproject.toml): the pinned build must stay below it.
    assert tuple(int(x) for x in pins["pyside6-essentials"].split(".")[:2]) < (6, 12)
    for line in (ROOT / "packaging" / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        assert not line or "==" in line, f"requirements.txt must pin exact versions: {line!r}"


def test_spec_is_valid_python_and_uses_the_shared_lists() -> None:
    source = (ROOT / "packaging" / "rusty-cat.spec").read_text(encoding="utf-8")
    compile(source, "rusty-cat.spec", "exec")
    for needle in ("cfg.EXCLUDED_QT_MODULES", "cfg.EXCLUDED_PYTHON", "cfg.drop_binary", "cfg.orphaned_libraries",
                   'collect_submodules("keyring.backends")', 'collect_submodules("app")'):
        assert needle in source
