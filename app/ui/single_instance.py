"""One running window per user and data directory: a second launch hands its URLs and files to the first.

The first process listens on a QLocalServer whose name is derived from the user name and the data
directory (so tests, and a portable copy with its own data dir, get their own instance). A second
``rusty-cat URL-or-FILE …`` connects, sends its arguments as one JSON line, waits for ``ok`` and exits 0;
the first emits ``arguments_received(list)`` and queues them.

Relative file names are made absolute by the *sender*, because the running instance has another working
directory. A socket file left behind by a crashed instance is detected (nobody answers a connect) and
removed before listening.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence

import platformdirs
from PySide6.QtCore import QByteArray, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

__all__ = ["MAX_MESSAGE", "SingleInstance", "exchange", "instance_name", "normalize_arguments", "send_arguments"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 1024 * 1024  # far more than any command line; a bigger message is not from us
PROTOCOL_VERSION = 1
_SLICE_MS = 20
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def _user() -> str:
    try:
        name = getpass.getuser()
    except Exception:  # no user database entry (containers): the uid still separates users
        name = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:32] or "user"


def _default_data_dir() -> str:
    """The manager's default data dir: one running app per history database."""
    try:
        from app.manager.manager import default_data_dir
    except ImportError:  # an older manager without the helper: the same platformdirs rule
        return platformdirs.user_data_dir("rusty-cat", False)
    return os.fspath(default_data_dir())


def instance_name(data_dir: str | os.PathLike[str] | None = None) -> str:
    """The per-user, per-data-dir server name (short enough for a Unix socket path)."""
    directory = os.fspath(data_dir) if data_dir is not None else _default_data_dir()
    user = _user()
    digest = hashlib.sha256(f"{user}\0{os.path.abspath(directory)}".encode()).hexdigest()[:16]
    return f"rusty-cat-{user}-{digest}"


def normalize_arguments(arguments: Sequence[str], cwd: str | None = None) -> list[str]:
    """URLs unchanged; anything else is a path, made absolute against the sender's working directory."""
    base = cwd or os.getcwd()
    out: list[str] = []
    for arg in arguments:
        if not arg:
            continue
        out.append(arg if _URL.match(arg) else os.path.abspath(os.path.join(base, os.path.expanduser(arg))))
    return out


def _wait(step: Callable[[int], bool], socket: QLocalSocket, timeout_ms: int) -> bool:
    """Call a QLocalSocket ``waitFor…`` in short slices until it succeeds, the socket closes, or time is up.

    Why slices: PySide6 keeps the GIL during a ``waitFor…`` call, so one long wait would freeze every other
    Python thread of this process for its whole duration (in tests, the listening side runs in the same
    process). Short slices let other threads run between them.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        if step(_SLICE_MS):
            return True
        if socket.state() == QLocalSocket.LocalSocketState.UnconnectedState or time.monotonic() >= deadline:
            return False


def exchange(name: str, payload: bytes, timeout_ms: int = 3000) -> bytes | None:
    """Send ``payload`` to the server ``name`` and return its one-line reply; None when nobody listens.

    Blocking: it runs in the second process before any event loop exists.
    """
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not _wait(socket.waitForConnected, socket, timeout_ms):
        socket.abort()
        return None
    socket.write(QByteArray(payload))
    if socket.bytesToWrite() and not _wait(socket.waitForBytesWritten, socket, timeout_ms):
        socket.abort()
        return b""
    reply = b""
    deadline = time.monotonic() + timeout_ms / 1000
    while b"\n" not in reply and time.monotonic() < deadline:
        left = max(1, int((deadline - time.monotonic()) * 1000))
        if socket.bytesAvailable() or _wait(socket.waitForReadyRead, socket, left):
            reply += bytes(socket.readAll().data())
        elif socket.state() == QLocalSocket.LocalSocketState.UnconnectedState:
            break
    socket.abort()
    return reply


def send_arguments(name: str, arguments: Sequence[str], timeout_ms: int = 3000) -> bool:
    """Hand ``arguments`` to the instance listening on ``name``; True once it has acknowledged them.

    False when nobody listens or the running instance did not answer in time.
    """
    payload = json.dumps({"version": PROTOCOL_VERSION, "args": list(arguments)}).encode() + b"\n"
    reply = exchange(name, payload, timeout_ms)
    return reply is not None and reply.startswith(b"ok")


class SingleInstance(QObject):
    """The listening side. ``listen()`` makes this process the primary one, or returns False."""

    arguments_received = Signal(list)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytearray] = {}

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.isListening()

    def listen(self) -> bool:
        """Listen on ``name``; False when another live instance already does (then send it the arguments)."""
        # Probe first: with UserAccessOption, Qt binds in a private directory and renames the socket into
        # place, which would silently replace a live instance's socket instead of failing.
        if self._someone_listens():
            return False
        server = QLocalServer(self)
        # Only this user may connect (the socket file gets mode 0700 semantics on Unix).
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            # A crashed instance left its socket file behind (nobody answered the probe): remove it, retry.
            QLocalServer.removeServer(self.name)
            if not server.listen(self.name):
                log.warning("single instance: cannot listen on %s: %s", self.name, server.errorString())
                return False
        server.newConnection.connect(self._accept)
        self._server = server
        return True

    def _someone_listens(self) -> bool:
        probe = QLocalSocket()
        probe.connectToServer(self.name)
        alive = probe.waitForConnected(1000)
        if alive:
            probe.abort()
        return alive

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for socket in list(self._buffers):
            socket.abort()
        self._buffers.clear()

    # -- connections -------------------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._server is not None
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            self._buffers[socket] = bytearray()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(lambda s=socket: self._drop(s))
            if socket.bytesAvailable():
                self._read(socket)

    def _drop(self, socket: QLocalSocket) -> None:
        self._buffers.pop(socket, None)
        socket.deleteLater()

    def _read(self, socket: QLocalSocket) -> None:
        buffer = self._buffers.get(socket)
        if buffer is None:
            return
        buffer += bytes(socket.readAll().data())
        if len(buffer) > MAX_MESSAGE:
            log.warning("single instance: dropped an oversized message")
            self._buffers.pop(socket, None)
            socket.abort()
            return
        if b"\n" not in buffer:
            return
        line = bytes(buffer.split(b"\n", 1)[0])
        self._buffers.pop(socket, None)
        arguments = self._parse(line)
        if arguments is None:
            socket.write(QByteArray(b"error\n"))
            socket.disconnectFromServer()
            return
        socket.write(QByteArray(b"ok\n"))
        socket.flush()
        socket.disconnectFromServer()
        self.arguments_received.emit(arguments)

    @staticmethod
    def _parse(line: bytes) -> list[str] | None:
        try:
            message = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(message, dict):
            return None
        args = message.get("args")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            return None
        return list(args)
