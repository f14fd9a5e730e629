"""SecretStore: which keyring backends are acceptable, plain errors without secrets, run-only memory, off-loop calls."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import keyring
import keyring.errors
import pytest
from keyring.backends import fail, null
from keyring.backends.chainer import ChainerBackend
from keyrings.alt.file import EncryptedKeyring, PlaintextKeyring

from app.manager.secrets import SESSION_ONLY_NAME, SecretStore, SecretStoreLocked, SecretStoreUnavailable
from tests.support.memory_keyring import MemoryKeyring

SECRET = "s3cr3t-V@lue-4711"


@pytest.fixture(autouse=True)
def no_explicit_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide themselves whether the user named a backend."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)


@pytest.fixture
def chain(monkeypatch: pytest.MonkeyPatch) -> Callable[..., ChainerBackend]:
    """A chainer over given members (the real one discovers this machine's backends). Not a subclass: keyring
    registers every backend subclass for its own discovery."""
    def make(*members: object) -> ChainerBackend:
        monkeypatch.setattr(ChainerBackend, "backends", list(members))
        return ChainerBackend()

    return make


@pytest.fixture
def ring() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.mark.asyncio
async def test_round_trip_runs_in_worker_threads(ring: MemoryKeyring) -> None:
    store = SecretStore(ring)
    assert await store.probe() is True
    assert store.keyring_usable and not store.session_only and store.unavailable_reason is None
    await store.set("account:a", SECRET)
    assert ring.values == {("rusty-cat", "account:a"): SECRET}
    assert await store.get("account:a") == SECRET
    assert await store.get("account:missing") is None
    await store.delete("account:a")
    await store.delete("account:a")  # deleting what is not there is fine
    assert ring.values == {}
    loop_thread = threading.current_thread().name
    assert [op for op, _, _ in ring.calls] == ["set", "get", "get", "delete", "delete"]
    assert all(thread != loop_thread for _, _, thread in ring.calls), ring.calls


def test_sync_facade_for_code_without_a_loop(ring: MemoryKeyring) -> None:
    store = SecretStore(ring)
    store.set_sync("job:1", SECRET)
    assert store.get_sync("job:1") == SECRET
    store.delete_sync("job:1")
    assert store.get_sync("job:1") is None
    with pytest.raises(ValueError, match="non-empty"):
        store.set_sync("job:1", "")


def test_default_backend_comes_from_keyring(ring: MemoryKeyring) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(ring)
    try:
        store = SecretStore()
        store.set_sync("k", SECRET)
        assert ring.values[("rusty-cat", "k")] == SECRET
        assert "MemoryKeyring" in store.backend_name
    finally:
        keyring.set_keyring(previous)


@pytest.mark.parametrize("make, why", [
    (lambda chain: fail.Keyring(), "no keyring backend is available"),
    (lambda chain: null.Keyring(), "null backend"),
    (lambda chain: PlaintextKeyring(), "file-based keyring (PlaintextKeyring"),
    (lambda chain: EncryptedKeyring(), "file-based keyring (EncryptedKeyring"),
    (lambda chain: chain(), "no keyring backend is available"),
    (lambda chain: chain(EncryptedKeyring(), PlaintextKeyring()),
     "only file-based keyrings are available (EncryptedKeyring, PlaintextKeyring)"),
])
@pytest.mark.asyncio
async def test_unusable_backends_are_refused_plainly(make: Callable[..., object], why: str,
                                                    chain: Callable[..., ChainerBackend]) -> None:
    store = SecretStore(make(chain))  # type: ignore[arg-type]
    assert await store.probe() is False
    assert store.backend_name == "none"
    assert store.problem is not None and why in store.problem
    with pytest.raises(SecretStoreUnavailable) as err:
        await store.set("account:a", SECRET)
    text = str(err.value)
    assert text == store.unavailable_reason
    assert text.startswith("No usable OS keyring") and why in text
    assert "Secret Service" in text and "for this run only" in text  # what to do
    assert SECRET not in text
    with pytest.raises(SecretStoreUnavailable):
        await store.get("account:a")
    written = list(Path(os.environ["XDG_DATA_HOME"]).rglob("*"))
    assert not [p for p in written if p.is_file()]  # nothing went to a plaintext file behind the user's back


def test_chainer_uses_its_best_acceptable_member(ring: MemoryKeyring, chain: Callable[..., ChainerBackend]) -> None:
    store = SecretStore(chain(PlaintextKeyring(), ring))
    assert store.keyring_usable
    store.set_sync("account:a", SECRET)
    assert ring.values == {("rusty-cat", "account:a"): SECRET}


def test_a_plaintext_file_is_used_only_when_named_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    backend = PlaintextKeyring()
    store = SecretStore(backend)
    assert store.keyring_usable and "PlaintextKeyring" in store.backend_name
    store.set_sync("account:a", SECRET)
    assert store.get_sync("account:a") == SECRET
    assert os.path.exists(backend.file_path)
    assert str(Path(backend.file_path)).startswith(os.environ["XDG_DATA_HOME"])  # the test's folder, not $HOME


@pytest.mark.asyncio
async def test_session_only_is_explicit_and_visible() -> None:
    store = SecretStore(fail.Keyring())
    with pytest.raises(SecretStoreUnavailable):
        await store.set("job:1", SECRET)
    store.allow_session_only()
    assert store.session_only and store.backend_name == SESSION_ONLY_NAME == "memory (this run only)"
    assert store.unavailable_reason is None and store.problem is None
    await store.set("job:1", SECRET)
    assert await store.get("job:1") == SECRET
    await store.delete("job:1")
    assert await store.get("job:1") is None
    assert SECRET not in repr(store)
    assert SecretStore(fail.Keyring()).session_only is False  # per store, never global


@pytest.mark.parametrize("error, kind, words", [
    (keyring.errors.KeyringLocked("Failed to unlock the collection!"), SecretStoreLocked, "is locked"),
    (keyring.errors.InitError("Failed to create the collection: Prompt dismissed."), SecretStoreUnavailable,
     "could not be opened"),
    (keyring.errors.PasswordSetError(f"cannot store {SECRET}"), SecretStoreUnavailable, "refused"),
    (RuntimeError(f"D-Bus went away while sending {SECRET}"), SecretStoreUnavailable, "failed"),
])
@pytest.mark.asyncio
async def test_backend_errors_become_sentences_without_the_secret(ring: MemoryKeyring, error: Exception,
                                                                  kind: type[Exception], words: str) -> None:
    store = SecretStore(ring)
    ring.fail_with = error
    with pytest.raises(kind) as err:
        await store.set("account:a", SECRET)
    text = str(err.value)
    assert words in text and "could not be saved" in text
    assert SECRET not in text and SECRET not in err.value.problem  # type: ignore[attr-defined]
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained exception carries it


def test_delete_of_a_missing_entry_is_quiet_but_other_delete_errors_are_not(ring: MemoryKeyring) -> None:
    store = SecretStore(ring)
    store.delete_sync("never-stored")
    ring.fail_with = keyring.errors.KeyringLocked("locked")
    with pytest.raises(SecretStoreLocked, match="could not be deleted"):
        store.delete_sync("never-stored")
