"""Build, smoke-test and measure Rusty Cat's installers: the one driver used by `make package` and by CI.

    python packaging/build.py bundle       PyInstaller one-folder bundle for this OS (packaging/rusty-cat.spec)
    python packaging/build.py selftest     run the bundle's --self-test offscreen (or --target FILE)
    python packaging/build.py appimage     Linux: Rusty_Cat-<version>-<arch>.AppImage from the bundle
    python packaging/build.py deb          Linux: rusty-cat_<version>_<arch>.deb from the bundle
    python packaging/build.py check-appimage / check-deb   self-test the built AppImage / the .deb's files
    python packaging/build.py check-secret-service   Linux: self-test under D-Bus + GNOME Keyring
    python packaging/build.py sizes        print sizes, fail above the budget (bundle_config)
    python packaging/build.py linux        all of the above, in order (what `make package` runs)
    python packaging/build.py version      print the version from pyproject.toml (CI names artifacts with it)
    python packaging/build.py requirements print the app's runtime requirements (pip -r) from pyproject.toml

Run it with the interpreter of a clean build venv that has PyInstaller and the app's runtime dependencies
(`make package` makes .venv-package): PyInstaller freezes whatever that interpreter has, so a developer venv
with test tools or a second Qt binding would leak into the bundle. Only the standard library is used here.

Why an AppImage runtime is compiled (packaging/linux/appimage-runtime.c) instead of downloaded: the build
machines reach only package registries, and no registry package ships the usual prebuilt runtime, while
Debian ships its ingredients (libsquashfuse-dev, libfuse3-dev, squashfs-tools) as ordinary packages.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def _load_bundle_config():  # type: ignore[no-untyped-def]
    """packaging/bundle_config.py by path: packaging/ is no package (and must not shadow PyPI's `packaging`)."""
    import importlib.util

    existing = sys.modules.get("bundle_config")
    if existing is not None:
        return existing
    path = Path(__file__).resolve().with_name("bundle_config.py")
    spec = importlib.util.spec_from_file_location("bundle_config", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bundle_config"] = module
    spec.loader.exec_module(module)
    return module


cfg = _load_bundle_config()

ROOT = cfg.ROOT
DIST = ROOT / "dist"
WORK = ROOT / "build" / "pyinstaller"
LINUX_BUILD = ROOT / "build" / "linux"
SPEC = ROOT / "packaging" / "rusty-cat.spec"
RUNTIME_SOURCE = ROOT / "packaging" / "linux" / "appimage-runtime.c"
APPRUN = ROOT / "packaging" / "linux" / "AppRun"
DESKTOP = ROOT / "resources" / "rusty-cat.desktop"
ICONS = ROOT / "resources" / "icons"
#: Debian packages that provide the AppImage runtime's static libraries and the image/package tools.
LINUX_BUILD_DEBS = ("gcc", "libc6-dev", "libsquashfuse-dev", "libfuse3-dev", "zlib1g-dev", "libzstd-dev",
                    "liblzma-dev", "liblz4-dev", "liblzo2-dev", "squashfs-tools", "dpkg")
RUNTIME_LIBS = ("-lsquashfuse_ll", "-lsquashfuse", "-lfuse3", "-lzstd", "-llzma", "-lz", "-llz4", "-llzo2")
SELF_TEST_TIMEOUT_S = 180
MIB = 1024 * 1024


# -------------------------------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[package] {message}", flush=True)


def run(cmd: Sequence[str | os.PathLike[str]], **kwargs: object) -> subprocess.CompletedProcess[str]:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, text=True, **kwargs)  # type: ignore[call-overload]


def machine() -> str:
    """x86_64 / aarch64 (AppImage names) for this machine."""
    arch = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def deb_arch(arch: str | None = None) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386"}.get(arch or machine(), "all")


def bundle_dir() -> Path:
    """The one-folder bundle: dist/rusty-cat (Linux, Windows) or dist/Rusty Cat.app (macOS)."""
    if sys.platform == "darwin":
        return DIST / f"{cfg.APP_NAME}.app"
    return DIST / cfg.APP_ID


def gui_executable(bundle: Path | None = None) -> Path:
    bundle = bundle or bundle_dir()
    if sys.platform == "darwin":
        return bundle / "Contents" / "MacOS" / cfg.GUI_NAME
    return bundle / (cfg.GUI_NAME + (".exe" if sys.platform == "win32" else ""))


def appimage_path(version: str | None = None) -> Path:
    return DIST / f"Rusty_Cat-{version or cfg.project_version()}-{machine()}.AppImage"


def deb_path(version: str | None = None) -> Path:
    return DIST / f"{cfg.APP_ID}_{version or cfg.project_version()}_{deb_arch()}.deb"


def tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` (symlinks counted as links, as on disk), or of one file."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def source_date_epoch() -> str:
    """File times for the AppImage and the .deb: $SOURCE_DATE_EPOCH, else the commit's time (the same for every
    build of a tag), else now."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    proc = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True)
    stamp = proc.stdout.strip()
    return stamp if proc.returncode == 0 and stamp.isdigit() else str(int(time.time()))


def self_test_env(home: Path) -> dict[str, str]:
    """A throwaway HOME/XDG for a smoke test: the bundle never reads or writes the builder's own settings."""
    env = dict(os.environ)
    env.update({
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "LC_ALL": env.get("LC_ALL") or "C.UTF-8",
    })
    # The bundle must work without the developer's Python around it.
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "QT_PLUGIN_PATH", "QT_API", "PYTHON_KEYRING_BACKEND"):
        env.pop(var, None)
    return env


def run_self_test(
    command: Sequence[str | os.PathLike[str]], label: str, extra_env: dict[str, str] | None = None
) -> None:
    """Run ``command --self-test``; fail loudly unless it exits 0 and says "self-test ok"."""
    with tempfile.TemporaryDirectory(prefix="rusty-cat-selftest-home-") as home:
        env = self_test_env(Path(home))
        env.update(extra_env or {})
        started = time.monotonic()
        cmd = [str(c) for c in command] + ["--self-test"]
        log(f"self-test ({label}): {' '.join(cmd)}")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=SELF_TEST_TIMEOUT_S)
        elapsed = time.monotonic() - started
    output = (proc.stdout + proc.stderr).strip()
    for line in output.splitlines():
        print(f"    {line}", flush=True)
    # A windowed Windows program may get no stdout at all; there the exit status is the verdict.
    silent_gui = sys.platform == "win32" and not proc.stdout.strip()
    if proc.returncode != 0 or ("self-test ok" not in proc.stdout and not silent_gui):
        raise SystemExit(f"self-test of {label} FAILED (exit {proc.returncode}, {elapsed:.1f} s)")
    log(f"self-test of {label} passed in {elapsed:.1f} s")


# --------------------------------------------------------------------------------------------------- bundle


def build_bundle() -> Path:
    """PyInstaller with the shared spec; refuses a build venv with a second Qt binding (PyInstaller would too,
    later and less clearly)."""
    import importlib.util

    others = [name for name in ("PyQt5", "PyQt6", "PySide2") if importlib.util.find_spec(name) is not None]
    if others:
        raise SystemExit(f"the build interpreter has other Qt bindings ({', '.join(others)}); use a clean venv")
    if importlib.util.find_spec("PyInstaller") is None:
        raise SystemExit(f"PyInstaller is not installed for {sys.executable}; run `make package` (it prepares one)")
    run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", DIST, "--workpath", WORK, SPEC], cwd=ROOT)
    bundle = bundle_dir()
    if not gui_executable(bundle).exists():
        raise SystemExit(f"PyInstaller did not produce {gui_executable(bundle)}")
    log(f"bundle: {bundle} ({tree_size(bundle) / MIB:.1f} MiB)")
    return bundle


# ------------------------------------------------------------------------------------------------- AppImage


def compile_runtime(out: Path) -> Path:
    """The AppImage runtime: FUSE 3 and squashfuse linked statically, glibc dynamically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    run([cc, "-O2", "-Wall", "-Wextra", "-o", out, RUNTIME_SOURCE,
         "-Wl,-Bstatic", *RUNTIME_LIBS, "-Wl,-Bdynamic", "-lpthread", "-ldl"])
    run(["strip", out])
    return out


def appdir_layout(bundle: Path, appdir: Path) -> None:
    """The AppDir: AppRun, the desktop entry and icon at the top (AppImage spec), the bundle under usr/lib, and
    the freedesktop files under usr/share for desktop-integration tools (AppImageLauncher, appimaged)."""
    if appdir.exists():
        shutil.rmtree(appdir)
    lib = appdir / "usr" / "lib" / cfg.APP_ID
    shutil.copytree(bundle, lib, symlinks=True)
    shutil.copy2(APPRUN, appdir / "AppRun")
    (appdir / "AppRun").chmod(0o755)
    shutil.copy2(DESKTOP, appdir / f"{cfg.APP_ID}.desktop")
    shutil.copy2(ICONS / "hicolor" / "256x256" / "apps" / f"{cfg.APP_ID}.png", appdir / f"{cfg.APP_ID}.png")
    (appdir / ".DirIcon").symlink_to(f"{cfg.APP_ID}.png")
    install_freedesktop_files(appdir / "usr" / "share")


def install_freedesktop_files(share: Path) -> list[Path]:
    """The desktop entry and the hicolor icons (every PNG size plus the SVG) under a ``share`` folder."""
    written = []
    applications = share / "applications"
    applications.mkdir(parents=True, exist_ok=True)
    written.append(Path(shutil.copy2(DESKTOP, applications / f"{cfg.APP_ID}.desktop")))
    for png in sorted((ICONS / "hicolor").glob(f"*/apps/{cfg.APP_ID}.png")):
        dest = share / "icons" / "hicolor" / png.parent.parent.name / "apps"
        dest.mkdir(parents=True, exist_ok=True)
        written.append(Path(shutil.copy2(png, dest / png.name)))
    scalable = share / "icons" / "hicolor" / "scalable" / "apps"
    scalable.mkdir(parents=True, exist_ok=True)
    written.append(Path(shutil.copy2(ICONS / f"{cfg.APP_ID}.svg", scalable / f"{cfg.APP_ID}.svg")))
    return written


def mark_appimage(path: Path) -> None:
    """Type-2 magic: bytes 8-10 of the ELF header are "AI\\x02" (the ELF ident padding, ignored by the kernel)."""
    with open(path, "r+b") as fh:
        fh.seek(8)
        fh.write(b"AI\x02")


def build_appimage(bundle: Path | None = None) -> Path:
    bundle = bundle or bundle_dir()
    if not bundle.is_dir():
        raise SystemExit(f"no bundle at {bundle}; run `build.py bundle` first")
    for tool in ("mksquashfs", "cc", "strip"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found; install the Debian packages: {' '.join(LINUX_BUILD_DEBS)}")
    runtime = compile_runtime(LINUX_BUILD / "appimage-runtime")
    appdir = LINUX_BUILD / "AppDir"
    appdir_layout(bundle, appdir)
    image = LINUX_BUILD / "image.squashfs"
    image.unlink(missing_ok=True)
    # zstd: what current AppImage tooling uses; fast to decompress at every start. The commit's time and root
    # ownership keep the image the same for the same input.
    epoch = source_date_epoch()
    run(["mksquashfs", appdir, image, "-root-owned", "-noappend", "-comp", "zstd", "-Xcompression-level", "15",
         "-b", "1M", "-no-progress", "-quiet", "-mkfs-time", epoch, "-all-time", epoch])
    out = appimage_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as dest:
        for part in (runtime, image):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dest, 4 * MIB)
    mark_appimage(out)
    out.chmod(0o755)
    log(f"AppImage: {out} ({out.stat().st_size / MIB:.1f} MiB)")
    return out


def fuse_usable() -> bool:
    """Whether this machine can mount the AppImage: /dev/fuse, and root or the fusermount3 helper."""
    if not os.path.exists("/dev/fuse"):
        return False
    return os.geteuid() == 0 or shutil.which("fusermount3") is not None


def check_appimage(path: Path | None = None) -> None:
    path = path or appimage_path()
    if fuse_usable():
        run_self_test([path], "AppImage, mounted with FUSE")
    else:
        log("FUSE is not usable here: testing the AppImage with APPIMAGE_EXTRACT_AND_RUN=1 only")
    run_self_test([path], "AppImage, APPIMAGE_EXTRACT_AND_RUN=1", {"APPIMAGE_EXTRACT_AND_RUN": "1"})
    proc = subprocess.run([path, "--cli", "--version"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "APPIMAGE_EXTRACT_AND_RUN": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"the AppImage's CLI failed: {proc.stdout}{proc.stderr}")
    log(f"AppImage --cli --version: {proc.stdout.strip()}")


# ------------------------------------------------------------------------------------------------------ deb


def elf_needed(path: Path) -> list[str]:
    """DT_NEEDED entries of an ELF file ([] for anything else), read with readelf from binutils."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"\x7fELF":
            return []
    proc = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", proc.stdout)


def system_libraries(bundle: Path) -> set[str]:
    """Libraries the bundle's binaries need that it does not contain: they must come from the system."""
    present = {p.name for p in bundle.rglob("*")}
    needed: set[str] = set()
    for path in bundle.rglob("*"):
        if path.is_file() and not path.is_symlink():
            needed.update(elf_needed(path))
    return {name for name in needed if name not in present}


#: Libraries that must come with the bundle, never from the system: a DT_NEEDED on one of these that the bundle
#: lacks means the prune lists dropped something a kept file still links (it would fail only when loaded).
BUNDLED_ONLY = re.compile(r"^lib(Qt6|pyside6|shiboken6|python3|icu)")


def check_bundle_links(bundle: Path | None = None) -> None:
    """Fail when a bundled binary links a Qt/Python library that pruning removed from the bundle."""
    missing = system_libraries(bundle or bundle_dir())
    broken = sorted(name for name in missing if BUNDLED_ONLY.match(name))
    if broken:
        raise SystemExit(f"the bundle links libraries it does not contain: {', '.join(broken)} "
                         "(see EXCLUDED_QT_LIBS / DROPPED_PLUGINS in packaging/bundle_config.py)")
    log(f"bundle links: complete; from the system: {', '.join(sorted(missing))}")


def debian_packages_for(libraries: set[str]) -> list[str]:
    """Debian package names providing ``libraries`` on this machine (dpkg -S), for the .deb's Depends."""
    packages: set[str] = set()
    for lib in sorted(libraries):
        proc = subprocess.run(["dpkg", "-S", f"*/{lib}"], capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            name = line.split(":", 1)[0].split(",")[0].strip()
            if name:
                packages.add(name)
                break
        else:
            log(f"warning: no Debian package found for {lib}")
    return sorted(packages)


def glibc_requirement(bundle: Path) -> str | None:
    """The newest GLIBC_x.y symbol version any bundled binary uses: the .deb's libc6 (>= x.y)."""
    newest: tuple[int, ...] = ()
    for path in bundle.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        with open(path, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                continue
        proc = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True)
        for version in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", proc.stdout):
            newest = max(newest, tuple(int(x) for x in version.split(".")))
    return ".".join(map(str, newest)) if newest else None


def deb_control(version: str, arch: str, installed_kib: int, depends: Sequence[str]) -> str:
    """The DEBIAN/control file."""
    fields = [
        ("Package", cfg.APP_ID),
        ("Version", version),
        ("Architecture", arch),
        ("Maintainer", "Rusty Cat developers <rusty-cat@users.noreply.github.com>"),
        ("Installed-Size", str(installed_kib)),
        ("Depends", ", ".join(depends)),
        # A Secret Service keeps account keys and tokens; without one Rusty Cat asks to keep them for one run only.
        ("Recommends", "gnome-keyring | kwalletmanager | keepassxc"),
        ("Section", "net"),
        ("Priority", "optional"),
        ("Homepage", "https://rusty-cat.github.io"),
        ("Description", "Resumable transfers of large files (desktop app and CLI)\n"
                        " Rusty Cat downloads and uploads large files over HTTP(S), Aliyun OSS and Azure Blob\n"
                        " Storage in resumable chunks, from a desktop window (rusty-cat) or a terminal\n"
                        " (rusty-cat-cli). It ships its own Python and Qt in /usr/lib/rusty-cat."),
    ]
    return "".join(f"{key}: {value}\n" for key, value in fields if value)


def deb_tree(bundle: Path, root: Path) -> None:
    """/usr/lib/rusty-cat (the bundle), /usr/bin links, desktop entry, icons, copyright."""
    if root.exists():
        shutil.rmtree(root)
    lib = root / "usr" / "lib" / cfg.APP_ID
    shutil.copytree(bundle, lib, symlinks=True)
    bin_dir = root / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    for name in (cfg.GUI_NAME, cfg.CLI_NAME):
        # Relative, so the tree also runs where `dpkg -x` unpacked it; the bootloader follows the link to _internal.
        (bin_dir / name).symlink_to(f"../lib/{cfg.APP_ID}/{name}")
    share = root / "usr" / "share"
    install_freedesktop_files(share)
    doc = share / "doc" / cfg.APP_ID
    doc.mkdir(parents=True)
    shutil.copy2(ROOT / "LICENSE", doc / "copyright")
    for path in root.rglob("*"):  # dpkg wants sane permissions whatever the builder's umask
        if path.is_symlink():
            continue
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)


def build_deb(bundle: Path | None = None) -> Path:
    bundle = bundle or bundle_dir()
    if not bundle.is_dir():
        raise SystemExit(f"no bundle at {bundle}; run `build.py bundle` first")
    if shutil.which("dpkg-deb") is None:
        raise SystemExit("dpkg-deb not found (Debian package: dpkg)")
    version = cfg.project_version()
    root = LINUX_BUILD / "deb-root"
    deb_tree(bundle, root)
    depends = debian_packages_for(system_libraries(bundle))
    glibc = glibc_requirement(bundle)
    depends = [d for d in depends if d != "libc6"] + ([f"libc6 (>= {glibc})"] if glibc else ["libc6"])
    installed_kib = (tree_size(root) + 1023) // 1024
    control_dir = root / "DEBIAN"
    control_dir.mkdir()
    (control_dir / "control").write_text(deb_control(version, deb_arch(), installed_kib, sorted(depends)))
    out = deb_path(version)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": source_date_epoch()}  # dpkg-deb clamps file times to it
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "-z6", f"--threads-max={os.cpu_count() or 1}",
         "--build", root, out], env=env, stdout=subprocess.DEVNULL)
    log(f"deb: {out} ({out.stat().st_size / MIB:.1f} MiB), Depends: {', '.join(sorted(depends))}")
    return out


def check_deb(path: Path | None = None) -> None:
    """Unpack the .deb as dpkg would install it (dpkg -x) and self-test /usr/bin/rusty-cat from there."""
    path = path or deb_path()
    with tempfile.TemporaryDirectory(prefix="rusty-cat-deb-") as tmp:
        run(["dpkg-deb", "-x", path, tmp])
        root = Path(tmp)
        for required in ("usr/bin/rusty-cat", "usr/bin/rusty-cat-cli", "usr/share/applications/rusty-cat.desktop",
                         "usr/share/icons/hicolor/256x256/apps/rusty-cat.png",
                         "usr/share/icons/hicolor/scalable/apps/rusty-cat.svg"):
            if not (root / required).exists():
                raise SystemExit(f"the .deb lacks /{required}")
        run_self_test([root / "usr" / "bin" / cfg.GUI_NAME], "the .deb's /usr/bin/rusty-cat")
        cli = subprocess.run([str(root / "usr" / "bin" / cfg.CLI_NAME), "--version"],
                             capture_output=True, text=True, timeout=60)
        if cli.returncode != 0:
            raise SystemExit(f"the .deb's rusty-cat-cli --version failed: {cli.stdout}{cli.stderr}")
        log(f"the .deb's rusty-cat-cli --version: {cli.stdout.strip()}")
        info = subprocess.run(["dpkg-deb", "--field", str(path)], capture_output=True, text=True, check=True)
        print(info.stdout, flush=True)


# ----------------------------------------------------------------------------------------- Secret Service


SECRET_SERVICE_SCRIPT = """#!/bin/sh
# A private D-Bus session with an unlocked GNOME Keyring, then the bundle's self-test inside it.
printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null
exec "$@" --self-test
"""


def check_secret_service(executable: Path | None = None) -> None:
    """Self-test the bundle on a private D-Bus session with GNOME Keyring: the frozen keyring must pick the
    Secret Service backend (proof that its backends and their dependencies were collected)."""
    executable = executable or gui_executable()
    if not (shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")):
        log("dbus-run-session or gnome-keyring-daemon missing: skipping the Secret Service self-test")
        return
    with tempfile.TemporaryDirectory(prefix="rusty-cat-secret-service-") as tmp:
        script = Path(tmp) / "run.sh"
        script.write_text(SECRET_SERVICE_SCRIPT)
        script.chmod(0o755)
        home = Path(tmp) / "home"
        home.mkdir()
        env = self_test_env(home)
        log(f"self-test with a Secret Service (dbus-run-session + gnome-keyring): {executable}")
        proc = subprocess.run(["dbus-run-session", "--", str(script), str(executable)], env=env,
                              capture_output=True, text=True, timeout=SELF_TEST_TIMEOUT_S)
    keyring_lines = [line for line in proc.stdout.splitlines() if " keyring: " in line]
    for line in keyring_lines:
        print(f"    {line}", flush=True)
    if proc.returncode != 0 or not any("SecretService" in line and ", usable" in line for line in keyring_lines):
        print(proc.stdout + proc.stderr, flush=True)
        raise SystemExit("the bundle did not use the Secret Service keyring (see the output above)")
    log("the bundle keeps secrets in the Secret Service when one is running")


# ---------------------------------------------------------------------------------------------------- sizes


def over_budget(sizes: dict[str, tuple[int, int]]) -> list[str]:
    """Names of the artifacts whose size (bytes) exceeds their budget (MiB): ``{name: (size, budget)}``."""
    return [name for name, (size, budget) in sizes.items() if size > budget * MIB]


def check_sizes() -> None:
    platform_key = "linux" if sys.platform.startswith("linux") else sys.platform
    sizes: dict[str, tuple[int, int]] = {}
    bundle = bundle_dir()
    if bundle.exists():
        sizes[f"bundle folder {bundle.relative_to(ROOT)}"] = (tree_size(bundle), cfg.BUNDLE_BUDGET_MIB[platform_key])
    if platform_key == "linux":
        for path, budget in ((appimage_path(), cfg.APPIMAGE_BUDGET_MIB), (deb_path(), cfg.DEB_BUDGET_MIB)):
            if path.exists():
                sizes[str(path.relative_to(ROOT))] = (path.stat().st_size, budget)
    if not sizes:
        raise SystemExit("nothing to measure: build first")
    for name, (size, budget) in sizes.items():
        print(f"    {size / MIB:8.1f} MiB  (budget {budget:4d} MiB)  {name}", flush=True)
    failed = over_budget(sizes)
    if failed:
        raise SystemExit("over the size budget: " + ", ".join(failed) + " (see packaging/bundle_config.py)")
    log("sizes within budget")


# ----------------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["bundle", "selftest", "appimage", "check-appimage", "deb", "check-deb",
                                         "sizes", "linux", "version", "requirements",
                                         "check-secret-service"])
    parser.add_argument("--target", type=Path, help="selftest: the executable to test (default: this OS's bundle)")
    args = parser.parse_args(argv)

    if args.step == "version":
        print(cfg.project_version())
        return 0
    if args.step == "requirements":
        print("\n".join(cfg.runtime_requirements()))
        return 0
    timings: list[tuple[str, float]] = []

    def timed(name: str, fn, *fn_args):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        result = fn(*fn_args)
        timings.append((name, time.monotonic() - started))
        return result

    if args.step == "bundle":
        timed("bundle", build_bundle)
    elif args.step == "selftest":
        timed("self-test", run_self_test, [args.target or gui_executable()], "bundle")
    elif args.step == "appimage":
        timed("AppImage", build_appimage)
    elif args.step == "check-appimage":
        timed("AppImage self-test", check_appimage)
    elif args.step == "deb":
        timed("deb", build_deb)
    elif args.step == "check-deb":
        timed("deb self-test", check_deb)
    elif args.step == "check-secret-service":
        timed("bundle + Secret Service", check_secret_service)
    elif args.step == "sizes":
        check_sizes()
    elif args.step == "linux":
        if not sys.platform.startswith("linux"):
            raise SystemExit("the `linux` step builds Linux packages; on this OS use `bundle` and `selftest`")
        bundle = timed("bundle (PyInstaller)", build_bundle)
        check_bundle_links(bundle)
        timed("bundle self-test", run_self_test, [gui_executable(bundle)], "bundle folder")
        timed("bundle + Secret Service", check_secret_service, gui_executable(bundle))
        timed("AppImage", build_appimage, bundle)
        timed("AppImage self-test", check_appimage)
        timed("deb", build_deb, bundle)
        timed("deb self-test", check_deb)
        check_sizes()
    for name, seconds in timings:
        print(f"    {seconds:6.1f} s  {name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
