"""Secrets: the OS keyring through ``keyring``, or -- only when the user explicitly chooses it because no keyring
is usable -- memory for this run.

Why it is shaped like this:

* Secrets (account keys, SAS tokens, bearer tokens, signed URLs of jobs) live in the OS keyring and nowhere else:
  never the history database, a log line, an exception message or the UI. Keys are ``"account:<name>"`` and
  ``"job:<id>"`` under the service ``"rusty-cat"``.
* ``keyring`` happily picks a backend that is no keyring at all: ``fail.Keyring`` (every call raises), ``null``
  (silently forgets), or -- when ``keyrings.alt`` is installed -- ``PlaintextKeyring`` (base64 in a file) and
  ``EncryptedKeyring`` (asks for a master password on the *terminal*, which hangs a GUI). A headless Linux box
  typically gets a chainer of exactly those. None of them is acceptable silently, so they count as "no usable
  keyring" unless the user named one explicitly (``PYTHON_KEYRING_BACKEND`` or keyring's own config file): then
  it is their informed choice. From a chainer we use its best acceptable member directly, so a write never lands
  in a plaintext file behind the user's back.
* When nothing is usable, :class:`SecretStoreUnavailable` says so in plain words and what to do; the window may
  then offer :meth:`SecretStore.allow_session_only` -- an explicit, visible choice (``backend_name`` says
  "memory (this run only)") to keep secrets in memory until the app quits.
* Keyring calls can block (D-Bus, an unlock prompt), so the async API runs every one of them in a worker thread,
  never on the event loop, which the window shares. They are serialised by a lock: some backends are not
  thread-safe. The ``*_sync`` facade is for code without an event loop (the CLI); never call it on a loop.
* ``keyring`` itself is imported on the first probe, not with this module: a CLI run without any secret (a plain
  download) never pays for it (20-30 ms of imports, plus ~0.1 s of backend discovery).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = ["SESSION_ONLY_NAME", "SecretStore", "SecretStoreLocked", "SecretStoreUnavailable"]

T = TypeVar("T")
log = logging.getLogger(__name__)

SESSION_ONLY_NAME = "memory (this run only)"

_HOW_TO_FIX = ("Start a Secret Service in your desktop session (GNOME Keyring, KWallet, or KeePassXC with its "
               "Secret Service integration), or choose to keep the secret for this run only (it is forgotten "
               "when Rusty Cat quits).")


class SecretStoreUnavailable(Exception):
    """No usable keyring and the user has not chosen run-only storage: the message says so and what to do.

    ``problem`` is the bare "what is wrong" part, for front ends that phrase the remedy themselves (the CLI cannot
    offer run-only storage).
    """

    def __init__(self, message: str, *, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem or message


class SecretStoreLocked(SecretStoreUnavailable):
    """The keyring exists but is locked and was not unlocked (the unlock prompt was dismissed or failed)."""


def _class_path(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _refusal(backend: KeyringBackend, explicit: bool) -> str | None:
    """Why ``backend`` must not hold secrets, or None when it may."""
    from keyring.backends import fail, null
    from keyring.backends.chainer import ChainerBackend

    if isinstance(backend, fail.Keyring):
        return "no keyring backend is available"
    if isinstance(backend, null.Keyring):
        return "the keyring is disabled (null backend: it forgets everything)"
    if isinstance(backend, ChainerBackend):
        return None  # judged member by member
    if _class_path(backend).startswith("keyrings.alt.") and not explicit:
        return (f"only a file-based keyring ({type(backend).__name__} from keyrings.alt) is available, which keeps "
                "secrets in a plain or terminal-password-protected file")
    return None


def _explicit_choice() -> bool:
    """Whether the user named a backend themselves (environment or keyring's config file)."""
    if os.environ.get("PYTHON_KEYRING_BACKEND", "").strip():
        return True
    import keyring.core

    try:
        return keyring.core.load_config() is not None
    except Exception:  # a broken keyringrc is not an explicit choice we can honour
        return False


def _choose(found: KeyringBackend, explicit: bool) -> tuple[KeyringBackend | None, str]:
    """The backend to use (or None) and, when None, the reason."""
    from keyring.backends.chainer import ChainerBackend

    reason = _refusal(found, explicit)
    if reason is not None:
        return None, reason
    if not isinstance(found, ChainerBackend):
        return found, ""
    members = list(getattr(found, "backends", []) or [])
    refused = []
    for member in members:  # already sorted by priority, best first
        why = _refusal(member, explicit)
        if why is None and not isinstance(member, ChainerBackend):
            return member, ""
        refused.append(type(member).__name__)
    if not refused:
        return None, "no keyring backend is available"
    return None, f"only file-based keyrings are available ({', '.join(refused)})"


def _error_text(exc: BaseException, value: str | None) -> str:
    """An exception as text without the secret (backends rarely echo it; be sure anyway)."""
    text = str(exc).strip() or type(exc).__name__
    if value:
        text = text.replace(value, "<hidden>")
    return text[:300]


class SecretStore:
    """The app's secrets: ``await get/set/delete(key)``. See the module docstring for the rules."""

    SERVICE = "rusty-cat"

    def __init__(self, backend: KeyringBackend | None = None) -> None:
        """``backend``: use this instead of ``keyring.get_keyring()`` (tests); it is judged by the same rules."""
        self._given = backend
        self._probe_lock = threading.Lock()
        self._call_lock = threading.Lock()  # one backend call at a time: not every backend is thread-safe
        self._probed = False
        self._backend: KeyringBackend | None = None
        self._reason = ""
        self._memory: dict[str, str] | None = None

    # ------------------------------------------------------------------ state
    def _probe(self) -> None:
        """Pick the backend once (blocking: keyring's first use imports and probes every backend)."""
        if self._probed:
            return
        with self._probe_lock:
            if self._probed:
                return
            try:
                if self._given is not None:
                    found = self._given
                else:
                    import keyring

                    found = keyring.get_keyring()
                self._backend, self._reason = _choose(found, _explicit_choice())
            except Exception as exc:
                self._backend, self._reason = None, f"the keyring could not be loaded ({type(exc).__name__})"
            self._probed = True
            if self._backend is not None:
                log.info("secrets are kept in the keyring backend %s", self.backend_name)
            else:
                log.info("no usable keyring: %s", self._reason)

    async def probe(self) -> bool:
        """Choose the backend off the loop; True when a keyring is usable. Call it before reading the properties
        on an event loop (they would otherwise probe synchronously, on the first use only)."""
        await asyncio.to_thread(self._probe)
        return self.keyring_usable

    @property
    def backend_name(self) -> str:
        """e.g. "SecretService Keyring", or "memory (this run only)"."""
        if self._memory is not None:
            return SESSION_ONLY_NAME
        self._probe()
        if self._backend is None:
            return "none"
        return str(getattr(self._backend, "name", type(self._backend).__name__))

    @property
    def keyring_usable(self) -> bool:
        self._probe()
        return self._backend is not None

    @property
    def session_only(self) -> bool:
        return self._memory is not None

    @property
    def unavailable_reason(self) -> str | None:
        """The full sentence :class:`SecretStoreUnavailable` would carry, or None when secrets can be kept."""
        if self._memory is not None:
            return None
        self._probe()
        return None if self._backend is not None else self._unavailable_message()

    @property
    def problem(self) -> str | None:
        """The bare "what is wrong" (e.g. "no keyring backend is available"), or None when secrets can be kept."""
        if self._memory is not None:
            return None
        self._probe()
        return None if self._backend is not None else self._reason

    def _unavailable_message(self) -> str:
        return f"No usable OS keyring to keep secrets in: {self._reason}. {_HOW_TO_FIX}"

    def allow_session_only(self) -> None:
        """The user's explicit choice: keep secrets in memory for this run (they are gone after quitting)."""
        with self._probe_lock:
            if self._memory is None:
                self._memory = {}
                log.warning("secrets are kept in memory for this run only (no usable keyring)")

    # ------------------------------------------------------------------ operations
    def _call(self, what: str, fn: Callable[[KeyringBackend], T], value: str | None = None) -> T:
        """Run one backend call with the errors turned into plain sentences (blocking; in a worker thread)."""
        import keyring.errors

        self._probe()
        with self._call_lock:
            backend = self._backend
            if backend is None:
                raise SecretStoreUnavailable(self._unavailable_message(), problem=self._reason)
            name = self.backend_name
            try:
                return fn(backend)
            except keyring.errors.KeyringLocked:
                problem = f"the keyring ({name}) is locked"
                raise SecretStoreLocked(
                    f"The keyring ({name}) is locked, so the secret could not be {what}. Unlock it (log in to your "
                    "desktop session, or open it in your keyring manager) and try again.", problem=problem) from None
            except keyring.errors.InitError as exc:
                problem = f"the keyring ({name}) could not be opened: {_error_text(exc, value)}"
                raise SecretStoreUnavailable(
                    f"The secret could not be {what}: {problem}. If you were asked to create or unlock a keyring, "
                    f"accept the prompt. {_HOW_TO_FIX}", problem=problem) from None
            except keyring.errors.KeyringError as exc:
                problem = f"the keyring ({name}) refused ({type(exc).__name__}: {_error_text(exc, value)})"
                raise SecretStoreUnavailable(f"The secret could not be {what}: {problem}. {_HOW_TO_FIX}",
                                             problem=problem) from None
            except Exception as exc:  # D-Bus and backend-library errors that keyring does not wrap
                problem = f"the keyring ({name}) failed ({type(exc).__name__}: {_error_text(exc, value)})"
                raise SecretStoreUnavailable(f"The secret could not be {what}: {problem}. {_HOW_TO_FIX}",
                                             problem=problem) from None

    def get_sync(self, key: str) -> str | None:
        """The secret stored under ``key``, or None (blocking: not on an event loop)."""
        if self._memory is not None:
            return self._memory.get(key)
        return self._call("read", lambda b: b.get_password(self.SERVICE, key))

    def set_sync(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing what was there (blocking: not on an event loop)."""
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        if self._memory is not None:
            self._memory[key] = value
            return
        self._call("saved", lambda b: b.set_password(self.SERVICE, key, value), value)

    def delete_sync(self, key: str) -> None:
        """Forget ``key``; nothing happens when it is not stored (blocking: not on an event loop)."""
        if self._memory is not None:
            self._memory.pop(key, None)
            return

        import keyring.errors

        def delete(backend: KeyringBackend) -> None:
            try:
                backend.delete_password(self.SERVICE, key)
            except keyring.errors.PasswordDeleteError:
                pass  # not there: already what we want

        self._call("deleted", delete)

    async def get(self, key: str) -> str | None:
        if self._memory is not None:
            return self._memory.get(key)
        return await asyncio.to_thread(self.get_sync, key)

    async def set(self, key: str, value: str) -> None:
        if self._memory is not None:
            self.set_sync(key, value)
            return
        await asyncio.to_thread(self.set_sync, key, value)

    async def delete(self, key: str) -> None:
        if self._memory is not None:
            self._memory.pop(key, None)
            return
        await asyncio.to_thread(self.delete_sync, key)

    def __repr__(self) -> str:
        state = SESSION_ONLY_NAME if self._memory is not None else (
            self.backend_name if self._probed else "not probed yet")
        return f"SecretStore({state})"
