"""Single instance: a second launch hands its arguments to the first, in-process and from a real subprocess."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QDir

from app.ui.single_instance import SingleInstance, exchange, instance_name, normalize_arguments, send_arguments
from tests.support.qt_loop import run_coro

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def primary(qapp, tmp_path: Path):
    instance = SingleInstance(instance_name(tmp_path / "data"))
    assert instance.listen()
    yield instance
    instance.close()


def test_name_is_per_user_and_per_data_dir(tmp_path: Path) -> None:
    a = instance_name(tmp_path / "a")
    assert a == instance_name(tmp_path / "a")
    assert a != instance_name(tmp_path / "b")
    assert a.startswith("rusty-cat-")
    assert len(os.path.join(QDir.tempPath(), a)) < 100  # fits a Unix socket path
    assert instance_name() == instance_name(None)


def test_normalize_arguments_makes_paths_absolute(tmp_path: Path) -> None:
    got = normalize_arguments(["https://h/x?sig=1", "file:///tmp/a b", "rel/f.txt", "", "/abs/g"], str(tmp_path))
    assert got == ["https://h/x?sig=1", "file:///tmp/a b", str(tmp_path / "rel" / "f.txt"), "/abs/g"]


def test_second_instance_hands_over_to_the_first(qtbot, aloop, primary: SingleInstance) -> None:
    second = SingleInstance(primary.name)
    assert not second.listen()  # the first one is alive: the second must not take over
    assert primary.listening
    args = ["https://example.com/a.iso", "/home/u/ünïcode file.txt"]
    with qtbot.waitSignal(primary.arguments_received, timeout=5000) as received:
        # The client blocks (it runs before any loop in a real second process): run it in a thread.
        acknowledged = run_coro(qtbot, asyncio.to_thread(send_arguments, primary.name, args))
    assert acknowledged is True
    assert received.args == [args]


def test_several_launches_in_a_row(qtbot, aloop, primary: SingleInstance) -> None:
    got: list[list[str]] = []
    primary.arguments_received.connect(got.append)
    for i in range(3):
        assert run_coro(qtbot, asyncio.to_thread(send_arguments, primary.name, [f"https://h/{i}"]))
    qtbot.waitUntil(lambda: len(got) == 3, timeout=3000)
    assert got == [["https://h/0"], ["https://h/1"], ["https://h/2"]]


def test_garbage_is_refused_without_a_signal(qtbot, aloop, primary: SingleInstance) -> None:
    got: list[list[str]] = []
    primary.arguments_received.connect(got.append)

    def raw(payload: bytes) -> bytes | None:
        return exchange(primary.name, payload, 2000)

    assert run_coro(qtbot, asyncio.to_thread(raw, b"not json\n")) == b"error\n"
    assert run_coro(qtbot, asyncio.to_thread(raw, b'{"args": [1, 2]}\n')) == b"error\n"
    assert run_coro(qtbot, asyncio.to_thread(raw, b'{"args": ["ok"]}\n')) == b"ok\n"
    qtbot.waitUntil(lambda: got == [["ok"]], timeout=3000)


def test_nobody_listening(qapp, tmp_path: Path) -> None:
    assert send_arguments(instance_name(tmp_path / "nobody"), ["https://h/x"], timeout_ms=500) is False


def test_stale_socket_file_is_replaced(qtbot, aloop, tmp_path: Path) -> None:
    name = instance_name(tmp_path / "stale")
    path = os.path.join(QDir.tempPath(), name)
    # What a crashed instance leaves behind: a socket file nobody accepts on.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()
    assert os.path.exists(path)
    instance = SingleInstance(name)
    try:
        assert instance.listen()
        with qtbot.waitSignal(instance.arguments_received, timeout=5000) as received:
            assert run_coro(qtbot, asyncio.to_thread(send_arguments, name, ["https://h/after-crash"]))
        assert received.args == [["https://h/after-crash"]]
    finally:
        instance.close()


def test_real_second_process_hands_over_and_exits_0(qtbot, aloop, tmp_path: Path) -> None:
    # Same environment (XDG_DATA_HOME from isolated_dirs) => the child computes the same instance name.
    primary = SingleInstance(instance_name())
    assert primary.listen()
    (tmp_path / "notes.txt").write_text("hello")
    got: list[list[str]] = []
    primary.arguments_received.connect(got.append)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "https://example.com/big.iso", "notes.txt"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        qtbot.waitUntil(lambda: proc.poll() is not None, timeout=30_000)
    finally:
        if proc.poll() is None:
            proc.kill()
        _out, err = proc.communicate(timeout=10)
        primary.close()
    assert proc.returncode == 0, err
    qtbot.waitUntil(lambda: bool(got), timeout=3000)
    assert got == [["https://example.com/big.iso", str(tmp_path / "notes.txt")]]
