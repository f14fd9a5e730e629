"""Accounts against a real Secret Service: gnome-keyring-daemon on a private D-Bus session (dbus-run-session), with a
throwaway HOME and XDG folders, as on a Linux desktop (machine-recipes §5).

A child Python stores an account through AccountStore in one session and reads it back in a second session with
the same HOME (so the secret really went to the keyring file, not to memory); a third session whose keyring stays
locked gets the plain "locked" sentence. Neither the history database nor any file under the throwaway HOME
holds the secret in clear.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "SecretService-Token-5b9c1e"
CHILD = """
import asyncio, json, os, sys
from pathlib import Path

from app.manager.accounts import Account, AccountStore, Auth, Provider
from app.manager.database import Database
from app.manager.secrets import SecretStore

SECRET = os.environ["RC_TEST_SECRET"]  # not in this file, which is searched for the secret afterwards


async def main(mode: str, db_path: str) -> None:
    secrets = SecretStore()
    usable = await secrets.probe()
    db = await Database.open(Path(db_path))
    store = AccountStore(db, secrets)
    out = {"backend": secrets.backend_name, "usable": usable}
    try:
        if mode == "add":
            await store.add(Account("ss", Provider.HTTP, Auth.BEARER, "https://files.example.com"), SECRET)
        if mode == "remove":
            await store.remove("ss")
            out["left"] = await secrets.get("account:ss")
        else:
            out["matches"] = await store.secret("ss") == SECRET
            out["accounts"] = [a.name for a in await store.list()]
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await db.close()
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _need_tools() -> None:
    missing = [tool for tool in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(tool) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"{' and '.join(missing)} not installed and no apt-get to install them: install gnome-keyring "
                    "and dbus (dbus-run-session) to run the Secret Service test")
    pytest.fail(f"{' and '.join(missing)} not installed: run `make test`, which installs the Debian packages "
                "gnome-keyring and dbus (or apt-get install them)")


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, str]:
    """A private HOME and XDG tree, and only the environment the child needs (no session bus of our own)."""
    home = tmp_path / "home"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "RC_TEST_SECRET": SECRET}
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        folder = home / var.lower()
        folder.mkdir(parents=True)
        env[var] = str(folder)
    os.chmod(env["XDG_RUNTIME_DIR"], 0o700)
    (tmp_path / "child.py").write_text(CHILD, encoding="utf-8")
    return env


def in_session(tmp_path: Path, env: dict[str, str], mode: str, *, unlock: bool = True) -> dict[str, Any]:
    """Run the child in a fresh D-Bus session whose keyring daemon is (or is not) unlocked with the password."""
    start = ("printf %s pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null" if unlock
             else "gnome-keyring-daemon --start --components=secrets >/dev/null")
    proc = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", f'{start}; exec "$0" "$@"', sys.executable,
         str(tmp_path / "child.py"), mode, str(tmp_path / "history.sqlite3")],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert SECRET not in proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(120)
def test_account_secret_lives_in_a_real_secret_service(tmp_path: Path, sandbox: dict[str, str]) -> None:
    _need_tools()
    added = in_session(tmp_path, sandbox, "add")
    assert added == {"backend": "SecretService Keyring", "usable": True, "matches": True, "accounts": ["ss"]}

    again = in_session(tmp_path, sandbox, "read")  # a new session and daemon: only the keyring file remembers
    assert again["matches"] is True and "error" not in again

    locked = in_session(tmp_path, sandbox, "read", unlock=False)
    assert locked["usable"] is True
    assert locked["error"].startswith("AccountKeyringError: The keyring (SecretService Keyring) is locked")

    keyrings = Path(sandbox["XDG_DATA_HOME"]) / "keyrings"
    assert any(keyrings.iterdir()), "gnome-keyring kept its collection under the throwaway HOME"
    files = [p for p in [*tmp_path.rglob("*")] if p.is_file()]
    assert any(p.name.startswith("history.sqlite3") for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), f"the secret is in clear in {path}"

    removed = in_session(tmp_path, sandbox, "remove")
    assert removed.get("left") is None and "error" not in removed
