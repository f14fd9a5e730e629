"""The installer pieces that can be checked without building a bundle: the AppImage runtime (compiled and run on
a tiny image), AppRun's dispatch, the .deb and AppDir layouts, the size budget, and the macOS/Windows/CI files.
The real build with its self-tests runs in `make package`."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import stat
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"

pytestmark = pytest.mark.timeout(120)


def _fake_bundle(tmp_path: Path) -> Path:
    """A stand-in for dist/rusty-cat: two launchers and an _internal folder."""
    bundle = tmp_path / "bundle"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "_internal" / "libfake.so").write_bytes(b"not really a library")
    for name in ("rusty-cat", "rusty-cat-cli"):
        launcher = bundle / name
        launcher.write_text(f"#!/bin/sh\necho {name} \"$@\"\n")
        launcher.chmod(0o755)
    return bundle


# ------------------------------------------------------------------------------------------ AppImage runtime


def _runtime_toolchain() -> str | None:
    missing = [tool for tool in ("cc", "strip", "mksquashfs") if shutil.which(tool) is None]
    if not Path("/usr/include/squashfuse/ll.h").exists():
        missing.append("libsquashfuse-dev")
    if not Path("/usr/include/fuse3/fuse_lowlevel.h").exists():
        missing.append("libfuse3-dev")
    return ", ".join(missing) or None


@pytest.fixture(scope="module")
def tiny_appimage(tmp_path_factory: pytest.TempPathFactory, build: ModuleType) -> tuple[Path, Path]:
    """A real type-2 AppImage made with our runtime around an AppRun that reports what it was given."""
    missing = _runtime_toolchain()
    if missing:
        pytest.skip(f"AppImage toolchain missing ({missing}); `make package-deps` installs it")
    tmp = tmp_path_factory.mktemp("appimage")
    runtime = build.compile_runtime(tmp / "runtime")
    appdir = tmp / "AppDir"
    (appdir / "usr" / "bin").mkdir(parents=True)
    apprun = appdir / "AppRun"
    apprun.write_text(
        '#!/bin/sh\n'
        'echo "APPDIR=$APPDIR"; echo "APPIMAGE=$APPIMAGE"; echo "ARGV0=$ARGV0"; echo "OWD=$OWD"\n'
        'for a in "$@"; do echo "ARG=$a"; done\n'
        'cat "$APPDIR/usr/bin/data.txt"\n'
        'exit 7\n'
    )
    apprun.chmod(0o755)
    (appdir / "usr" / "bin" / "data.txt").write_text("payload\n")
    (appdir / "link").symlink_to("usr/bin/data.txt")
    image = tmp / "image.squashfs"
    subprocess.run(["mksquashfs", appdir, image, "-root-owned", "-noappend", "-comp", "zstd", "-quiet",
                    "-no-progress"], check=True, capture_output=True)
    appimage = tmp / "Tiny.AppImage"
    appimage.write_bytes(runtime.read_bytes() + image.read_bytes())
    build.mark_appimage(appimage)
    appimage.chmod(0o755)
    return appimage, runtime


def _run(cmd: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_appimage_has_the_type2_magic_and_reports_its_offset(tiny_appimage: tuple[Path, Path]) -> None:
    appimage, runtime = tiny_appimage
    header = appimage.read_bytes()[:11]
    assert header[:4] == b"\x7fELF" and header[8:11] == b"AI\x02"
    proc = _run([appimage, "--appimage-offset"], appimage.parent)
    assert proc.returncode == 0
    assert int(proc.stdout) == runtime.stat().st_size


def test_extract_and_run_passes_arguments_environment_and_exit_status(
    tiny_appimage: tuple[Path, Path], tmp_path: Path
) -> None:
    appimage, _ = tiny_appimage
    proc = _run([appimage, "one", "two words"], tmp_path, APPIMAGE_EXTRACT_AND_RUN="1", TMPDIR=str(tmp_path))
    assert proc.returncode == 7, proc.stderr
    lines = proc.stdout.splitlines()
    assert "ARG=one" in lines and "ARG=two words" in lines
    assert f"APPIMAGE={appimage}" in lines
    assert f"OWD={tmp_path}" in lines
    assert "payload" in lines
    appdir = next(line.split("=", 1)[1] for line in lines if line.startswith("APPDIR="))
    assert appdir.startswith(str(tmp_path / "appimage_extracted_"))
    assert not Path(appdir).exists(), "the extracted copy must be removed after the run"


def test_extract_writes_squashfs_root_with_modes_and_links(tiny_appimage: tuple[Path, Path], tmp_path: Path) -> None:
    appimage, _ = tiny_appimage
    proc = _run([appimage, "--appimage-extract"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "squashfs-root"
    assert os.access(root / "AppRun", os.X_OK)
    assert (root / "usr" / "bin" / "data.txt").read_text() == "payload\n"
    assert os.readlink(root / "link") == "usr/bin/data.txt"


def test_mounted_run_when_fuse_is_usable(tiny_appimage: tuple[Path, Path], tmp_path: Path, build: ModuleType) -> None:
    if not build.fuse_usable():
        pytest.skip("FUSE is not usable on this machine (no /dev/fuse, or neither root nor fusermount3)")
    appimage, _ = tiny_appimage
    proc = _run([appimage, "x"], tmp_path, TMPDIR=str(tmp_path))
    if "cannot mount" in proc.stderr:
        pytest.skip("FUSE mounts are not permitted here: " + proc.stderr.strip().splitlines()[0])
    assert proc.returncode == 7, proc.stderr
    appdir = next(line.split("=", 1)[1] for line in proc.stdout.splitlines() if line.startswith("APPDIR="))
    assert appdir.startswith(str(tmp_path / ".mount_rusty-"))
    assert "payload" in proc.stdout
    assert not Path(appdir).exists(), "the mount point must be unmounted and removed after the run"


def test_unknown_appimage_option_is_refused(tiny_appimage: tuple[Path, Path], tmp_path: Path) -> None:
    appimage, _ = tiny_appimage
    proc = _run([appimage, "--appimage-frobnicate"], tmp_path)
    assert proc.returncode == 2
    assert "--appimage-extract" in proc.stdout


# ------------------------------------------------------------------------------------------- AppRun, layouts


@pytest.mark.parametrize(("argv0", "args", "expected"), [
    ("/home/u/Rusty_Cat.AppImage", ["https://example.com/a"], "rusty-cat https://example.com/a"),
    ("/home/u/bin/rusty-cat-cli", ["--version"], "rusty-cat-cli --version"),
    ("/home/u/Rusty_Cat.AppImage", ["--cli", "download", "u"], "rusty-cat-cli download u"),
])
def test_apprun_starts_the_gui_or_the_cli(tmp_path: Path, argv0: str, args: list[str], expected: str) -> None:
    appdir = tmp_path / "AppDir"
    shutil.copytree(_fake_bundle(tmp_path), appdir / "usr" / "lib" / "rusty-cat")
    shutil.copy2(PACKAGING / "linux" / "AppRun", appdir / "AppRun")
    proc = _run([appdir / "AppRun", *args], tmp_path, ARGV0=argv0)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_appdir_layout_follows_the_appimage_spec(tmp_path: Path, build: ModuleType) -> None:
    appdir = tmp_path / "AppDir"
    build.appdir_layout(_fake_bundle(tmp_path), appdir)
    assert os.access(appdir / "AppRun", os.X_OK)
    assert (appdir / "rusty-cat.desktop").is_file()
    assert (appdir / "rusty-cat.png").is_file()
    assert os.readlink(appdir / ".DirIcon") == "rusty-cat.png"
    assert os.access(appdir / "usr" / "lib" / "rusty-cat" / "rusty-cat", os.X_OK)
    assert (appdir / "usr" / "share" / "icons" / "hicolor" / "scalable" / "apps" / "rusty-cat.svg").is_file()


def test_freedesktop_files_register_links_and_every_icon_size(tmp_path: Path, build: ModuleType) -> None:
    build.install_freedesktop_files(tmp_path)
    desktop = (tmp_path / "applications" / "rusty-cat.desktop").read_text()
    assert re.search(r"^Exec=rusty-cat %U$", desktop, re.M)
    mime = re.search(r"^MimeType=(.*)$", desktop, re.M)
    assert mime and {"x-scheme-handler/http", "x-scheme-handler/https"} <= set(mime.group(1).split(";"))
    sizes = sorted(int(p.parent.parent.name.split("x")[0])
                   for p in (tmp_path / "icons" / "hicolor").glob("*x*/apps/rusty-cat.png"))
    assert sizes == [16, 32, 48, 64, 128, 256, 512]


def test_deb_tree_installs_launchers_in_usr_bin(tmp_path: Path, build: ModuleType) -> None:
    root = tmp_path / "root"
    build.deb_tree(_fake_bundle(tmp_path), root)
    for name in ("rusty-cat", "rusty-cat-cli"):
        link = root / "usr" / "bin" / name
        assert os.readlink(link) == f"../lib/rusty-cat/{name}"
        assert link.resolve() == (root / "usr" / "lib" / "rusty-cat" / name).resolve()
        assert subprocess.run([link, "x"], capture_output=True, text=True).stdout.strip() == f"{name} x"
    assert (root / "usr" / "share" / "doc" / "rusty-cat" / "copyright").is_file()
    mode = stat.S_IMODE((root / "usr" / "lib" / "rusty-cat" / "_internal" / "libfake.so").stat().st_mode)
    assert mode == 0o644


def test_deb_control_names_package_version_and_dependencies(build: ModuleType) -> None:
    control = build.deb_control("1.2.3", "amd64", 150000, ["libc6 (>= 2.36)", "libgl1"])
    fields = dict(line.split(": ", 1) for line in control.splitlines() if line and not line.startswith(" "))
    assert fields["Package"] == "rusty-cat"
    assert fields["Version"] == "1.2.3"
    assert fields["Architecture"] == "amd64"
    assert fields["Installed-Size"] == "150000"
    assert fields["Depends"] == "libc6 (>= 2.36), libgl1"
    assert control.endswith("\n")


def test_size_budget(build: ModuleType) -> None:
    mib = 1024 * 1024
    assert build.over_budget({"a": (10 * mib, 10), "b": (10 * mib + 1, 10)}) == ["b"]


def test_artifact_names_carry_version_and_architecture(build: ModuleType) -> None:
    assert build.appimage_path("9.8.7").name == f"Rusty_Cat-9.8.7-{build.machine()}.AppImage"
    assert re.fullmatch(r"rusty-cat_9\.8\.7_\w+\.deb", build.deb_path("9.8.7").name)


# ------------------------------------------------------------------------------------ macOS, Windows, CI files


def test_macos_info_plist_declares_link_and_document_types() -> None:
    info = plistlib.loads((PACKAGING / "macos" / "Info.plist").read_bytes())
    schemes = {s for t in info["CFBundleURLTypes"] for s in t["CFBundleURLSchemes"]}
    assert {"http", "https"} <= schemes
    types = {u for t in info["CFBundleDocumentTypes"] for u in t["LSItemContentTypes"]}
    assert {"public.data", "public.folder"} <= types
    assert all(t["LSHandlerRank"] == "Alternate" for t in info["CFBundleDocumentTypes"])
    plistlib.loads((PACKAGING / "macos" / "entitlements.plist").read_bytes())


def test_windows_installer_is_per_user_with_start_menu_uninstaller_and_associations() -> None:
    iss = (PACKAGING / "windows" / "rusty-cat.iss").read_text(encoding="utf-8")
    assert re.search(r"^PrivilegesRequired=lowest$", iss, re.M)
    assert re.search(r"^OutputBaseFilename=Rusty_Cat-\{#AppVersion\}-windows-x64-setup$", iss, re.M)
    assert '{autoprograms}\\{#AppName}' in iss  # Start menu entry
    assert "UninstallDisplayIcon=" in iss
    assert 'ValueName: "http"; ValueData: "RustyCat.Url"' in iss
    assert 'ValueName: "https"; ValueData: "RustyCat.Url"' in iss
    assert 'Source: "{#Root}\\dist\\rusty-cat\\*"' in iss


def test_release_workflow_builds_every_os_from_a_tag_after_the_tests() -> None:
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")
    assert re.search(r"tags: \[\"v\*\"\]", text) and "workflow_dispatch:" in text
    assert "needs: test" in text
    for runner in ("os: ubuntu-latest", "os: macos-15", "os: macos-15-intel", "os: windows-2022"):
        assert runner in text
    assert "make package" in text  # Linux builds exactly what developers build
    assert text.count("packaging/build.py selftest") >= 3  # bundle, the app inside the .dmg, the installed app
    assert "packaging/build.py version" in text
    assert "actions/upload-artifact" in text
