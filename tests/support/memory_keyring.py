"""An in-memory keyring backend for unit tests, so they never touch (or need) the OS keyring.

``fail_with`` makes every call raise the given exception (to play a locked or broken keyring); ``calls`` records
which operations ran, and on which thread, so tests can check that keyring work never runs on the event loop.
"""

from __future__ import annotations

import threading

import keyring.errors
from jaraco.classes import properties
from keyring.backend import KeyringBackend


class MemoryKeyring(KeyringBackend):
    @properties.classproperty
    def priority(cls) -> float:
        """Not viable for keyring's own discovery (every KeyringBackend subclass is registered there): it is only
        used when a test hands it over explicitly."""
        raise RuntimeError("MemoryKeyring is for tests that install it explicitly")

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}
        self.fail_with: BaseException | None = None
        self.calls: list[tuple[str, str, str]] = []  # (operation, username, thread name)

    def _enter(self, op: str, username: str) -> None:
        self.calls.append((op, username, threading.current_thread().name))
        if self.fail_with is not None:
            raise self.fail_with

    def get_password(self, service: str, username: str) -> str | None:
        self._enter("get", username)
        return self.values.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._enter("set", username)
        self.values[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._enter("delete", username)
        if self.values.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)
