"""What the PyInstaller bundle contains and leaves out; shared by rusty-cat.spec, build.py and tests/packaging.

Why a module of its own: the spec runs inside PyInstaller, the build driver and the tests run outside it, and all
three must agree on the same lists. In particular tests/packaging checks that no Qt module the app imports is
ever excluded here (a missing Qt module only shows when the code path that imports it runs).

Nothing here imports PyInstaller or Qt.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "rusty-cat"
APP_NAME = "Rusty Cat"
#: Reverse-DNS id: macOS bundle identifier and the AppStream/desktop id stem.
BUNDLE_ID = "io.github.rusty_cat.RustyCat"
GUI_NAME = "rusty-cat"
CLI_NAME = "rusty-cat-cli"

#: PySide6 modules the app never uses. Excluded from the analysis, and their Qt libraries, plugins and QML files
#: are filtered out of the bundle (see ``drop_binary``). The Essentials wheel ships most of these; the rest are
#: here so a build venv that accidentally has the full PySide6 still produces the same bundle.
EXCLUDED_QT_MODULES: tuple[str, ...] = (
    "Qt3DAnimation", "Qt3DCore", "Qt3DExtras", "Qt3DInput", "Qt3DLogic", "Qt3DRender",
    "QtAxContainer", "QtBluetooth", "QtCanvasPainter", "QtCharts", "QtConcurrent", "QtDataVisualization",
    "QtDesigner", "QtGraphs", "QtGraphsWidgets", "QtHelp", "QtHttpServer", "QtLocation", "QtMultimedia",
    "QtMultimediaWidgets", "QtNetworkAuth", "QtNfc", "QtOpenGL", "QtOpenGLWidgets", "QtPdf", "QtPdfWidgets",
    "QtPositioning", "QtPrintSupport", "QtQml", "QtQuick", "QtQuick3D", "QtQuickControls2", "QtQuickTest",
    "QtQuickWidgets", "QtRemoteObjects", "QtScxml", "QtSensors", "QtSerialBus", "QtSerialPort",
    "QtSpatialAudio", "QtSql", "QtStateMachine", "QtSvgWidgets", "QtTest", "QtTextToSpeech", "QtUiTools",
    "QtWebChannel", "QtWebEngineCore", "QtWebEngineQuick", "QtWebEngineWidgets", "QtWebSockets", "QtWebView",
    "QtXml",
)

#: Qt libraries kept although their Python module is excluded: the Wayland EGL client plugin links libQt6OpenGL.
KEPT_QT_LIBS: tuple[str, ...] = ("OpenGL",)

#: Python packages never wanted in the bundle: other Qt bindings (PyInstaller refuses to mix them, and qasync
#: would pick PyQt first), GUI toolkits and test/dev tools that may sit in a developer's environment.
EXCLUDED_PYTHON: tuple[str, ...] = (
    "PyQt5", "PyQt6", "PySide2", "tkinter", "_tkinter", "unittest", "pydoc", "pytest", "pytestqt", "hypothesis",
    "respx", "keyrings.alt", "IPython", "numpy", "setuptools", "pip",
)

#: Qt shared-library stems (``libQt6Pdf.so.6``, ``Qt6Pdf.dll``, ``QtPdf.framework``) dropped with the modules.
_EXCLUDED_MODULE_LIBS = {m.removeprefix("Qt") for m in EXCLUDED_QT_MODULES} - set(KEPT_QT_LIBS)
EXCLUDED_QT_LIBS: tuple[str, ...] = tuple(sorted(_EXCLUDED_MODULE_LIBS | {
    "QmlModels", "QmlWorkerScript", "QmlMeta", "QuickTemplates2", "QuickControls2Impl", "QuickLayouts",
    "QuickShapes", "QuickParticles", "VirtualKeyboard", "VirtualKeyboardQml", "WlShellIntegration",
    "WaylandEglClientHwIntegration", "WaylandEglCompositorHwIntegration", "EglFSDeviceIntegration",
    "EglFsKmsSupport", "EglFsKmsGbmSupport",
}))

#: Qt plugin folders (under ``PySide6/Qt/plugins``) the app needs; every other plugin folder is dropped.
KEPT_PLUGIN_DIRS: tuple[str, ...] = (
    "platforms",             # xcb, wayland, offscreen (self-test), cocoa, windows
    "platformthemes",        # xdgdesktopportal: native file dialogs and dark mode over D-Bus (gtk3 is dropped)
    "platforminputcontexts",  # input methods (compose keys, CJK)
    "imageformats",          # svg and ico for the icons
    "iconengines",           # the SVG icon engine
    "styles",                # the Windows 11 / macOS native styles
    "wayland-decoration-client", "wayland-graphics-integration-client", "wayland-shell-integration",
    "xcbglintegrations",
    "tls",                   # QLocalSocket needs none, but QtNetwork warns without a backend; they are small
    "networkinformation",
)

#: Individual plugins dropped inside kept folders (regular expressions on the file name).
DROPPED_PLUGINS: tuple[str, ...] = (
    r"qgtk3",                # links the system's GTK 3, which PyInstaller would then copy into the bundle
    r"qeglfs", r"qlinuxfb", r"qvnc", r"qvkkhrdisplay", r"qminimalegl", r"qminimal\b",
    r"qpdf", r"qtga", r"qtiff", r"qwbmp", r"qwebp", r"qicns", r"qgif", r"qjpeg",
    r"qtvirtualkeyboard", r"qcertonlybackend",
    # Wayland: keep xdg-shell (every desktop compositor), client-side decorations and the EGL client buffer.
    r"fullscreen-shell", r"ivi-shell", r"wl-shell", r"libqt-shell", r"-server\.so$",
)

#: Files dropped anywhere under PySide6 (regular expressions on the file name): Windows' software OpenGL
#: fallback (20 MiB) only serves OpenGL/Quick windows, which the app has none of.
DROPPED_FILES: tuple[str, ...] = (r"^opengl32sw\.dll$",)

#: Qt's own translations kept (Rusty Cat uses only qtbase's: standard buttons, file dialog).
KEPT_TRANSLATION_PREFIXES: tuple[str, ...] = ("qtbase_",)

#: Size budget of the unpacked bundle folder, per OS, in MiB; build.py fails above it. Linux measures 147 MiB
#: (Debian 12, PySide6 6.11.3), so a dependency that quietly drags in a large library (GTK: +15 MiB, QML: +30 MiB)
#: trips it. macOS and Windows are not measured here: their Qt wheels differ (macOS ships universal2 binaries,
#: about twice the size), so their budgets are looser until CI has measured them.
BUNDLE_BUDGET_MIB: dict[str, int] = {"linux": 160, "darwin": 320, "win32": 200}
#: Budgets of the compressed Linux artifacts, in MiB (measured: AppImage 57, .deb 43).
APPIMAGE_BUDGET_MIB = 65
DEB_BUDGET_MIB = 50


def project_version(root: Path = ROOT) -> str:
    """The version in pyproject.toml: the one number every artifact name and metadata field uses."""
    with open(root / "pyproject.toml", "rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def runtime_requirements(root: Path = ROOT) -> list[str]:
    """The app's runtime dependencies from pyproject.toml (markers kept), to install into the build venv."""
    with open(root / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def _qt_lib_stem(name: str) -> str | None:
    """``libQt6Pdf.so.6`` / ``Qt6Pdf.dll`` / ``QtPdf`` (framework) -> ``Pdf``; None when not a Qt library."""
    match = re.match(r"^(?:lib)?Qt6?([A-Za-z0-9_]+?)(?:\.so(?:\.\d+)*|\.dll|\.dylib|\.framework)?$", name)
    return match.group(1) if match else None


def drop_binary(dest: str) -> bool:
    """True when a collected file (its destination path in the bundle) is one the app does not need.

    Works on PyInstaller's TOC destination names on all three OSes (``PySide6/Qt/lib/libQt6Pdf.so.6``,
    ``PySide6/Qt6Pdf.dll``, ``PySide6/Qt/lib/QtPdf.framework/...``, ``PySide6/Qt/plugins/imageformats/...``).
    """
    parts = dest.replace("\\", "/").split("/")
    # PyInstaller also puts a top-level symlink (libQt6Pdf.so.6 -> PySide6/Qt/lib/...) next to the real file.
    top_level_stem = _qt_lib_stem(parts[-1]) if len(parts) == 1 else None
    if top_level_stem is not None:
        return top_level_stem in EXCLUDED_QT_LIBS
    if not parts or parts[0] not in ("PySide6", "shiboken6"):
        return False
    if any(re.search(pattern, parts[-1]) for pattern in DROPPED_FILES):
        return True
    # Python extension modules of excluded Qt modules (PySide6/QtPdf.abi3.so, QtPdf.pyd).
    module = parts[-1].split(".")[0]
    if len(parts) == 2 and module in EXCLUDED_QT_MODULES:
        return True
    if "qml" in parts or ("resources" in parts and any(p.startswith("qtwebengine") for p in parts)):
        return True
    for part in parts[1:]:
        stem = _qt_lib_stem(part)
        if stem is not None and stem in EXCLUDED_QT_LIBS:
            return True
    if "plugins" in parts:
        index = parts.index("plugins")
        if len(parts) > index + 1:
            folder = parts[index + 1]
            if folder not in KEPT_PLUGIN_DIRS:
                return True
            if any(re.search(pattern, parts[-1]) for pattern in DROPPED_PLUGINS):
                return True
    if "translations" in parts and parts[-1].endswith(".qm"):
        return not parts[-1].startswith(KEPT_TRANSLATION_PREFIXES)
    return False


def orphaned_libraries(
    kept: Iterable[str], dropped: Iterable[str], imports: Callable[[str], Iterable[tuple[str, str | None]]]
) -> set[str]:
    """File names of the shared libraries needed only by ``dropped`` binaries (paths on the build machine).

    PyInstaller collects a plugin's dependencies (e.g. the gtk3 theme's libgtk-3 and its 40 friends) before the
    spec can drop the plugin; this finds what those dependencies leave behind. ``imports(path)`` returns a
    binary's (name, resolved path) pairs, PyInstaller's ``bindepend.get_imports`` in the spec. A library that
    something kept still needs is never returned, and neither is anything collected for other reasons.
    """

    def closure(roots: Iterable[str]) -> set[str]:
        seen_paths: set[str] = set()
        names: set[str] = set()
        todo = list(roots)
        while todo:
            path = todo.pop()
            if path in seen_paths:
                continue
            seen_paths.add(path)
            try:
                found = list(imports(path))
            except Exception:  # not a binary PyInstaller can read (a data file, a script): no dependencies
                continue
            for name, resolved in found:
                names.add(Path(name).name)
                if resolved:
                    names.add(Path(resolved).name)
                    todo.append(resolved)
        return names

    reachable_from_dropped = closure(dropped)
    # A kept library that is itself only a dependency of a dropped file (libgdk-3 of the gtk3 theme) is no root:
    # roots are the kept files the dropped ones do not pull in (extension modules, plugins, ctypes libraries).
    roots = [path for path in kept if Path(path).name not in reachable_from_dropped]
    return reachable_from_dropped - closure(roots)
