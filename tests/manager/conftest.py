"""The account-store fixtures: a real SQLite history in tmp_path and an in-memory keyring behind the AccountStore.

tests/test_accounts.py imports them too (it tests the same store from the CLI's side), so both files run the
store exactly alike. The legacy accounts.json path points at a file no test writes: a test of the one-time import
builds its own store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import keyring
import pytest
import pytest_asyncio

from app.manager.accounts import AccountStore
from app.manager.database import Database
from app.manager.secrets import SecretStore
from tests.support.http_server import TestHttpServer
from tests.support.memory_keyring import MemoryKeyring
from tests.support.tls import ca_bundle, private_ca, tls_server, untrusted_ca  # noqa: F401  (TLS fixtures)


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "history.sqlite3")
    yield database
    await database.close()


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    with TestHttpServer() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """The process's keyring replaced by an in-memory one (for a manager, which asks ``keyring`` itself)."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def ring() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def store(db: Database, ring: MemoryKeyring, tmp_path: Path) -> AccountStore:
    return AccountStore(db, SecretStore(ring), legacy_path=tmp_path / "no-legacy.json")
