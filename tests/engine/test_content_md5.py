"""The upload identity's MD5 is hashed once per file version (app/engine/fileio.py ``content_md5``): a resumed or
repeated upload of an unchanged file takes it from the per-user cache; any change, or a file too fresh to trust
its timestamp, is hashed again."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from app.engine import fileio
from app.engine import scheduler as scheduler_module
from app.engine.api import MeowClient, TransferStatus, UploadPounceBuilder
from tests.support.engine_helpers import Recorder, closed_client, fast_config
from tests.support.http_server import TestHttpServer

HOUR_NS = 3600 * 10**9


class CountingDigest:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: str, algorithm: str, stop: list[bool] | None = None) -> str:
        self.calls += 1
        return fileio.file_digest(path, algorithm, stop)


def old_file(path: Path, data: bytes, age_ns: int = HOUR_NS) -> Path:
    path.write_bytes(data)
    stamp = time.time_ns() - age_ns
    os.utime(path, ns=(stamp, stamp))
    return path


def test_unchanged_file_is_hashed_once(tmp_path: Path) -> None:
    src = old_file(tmp_path / "a.bin", b"a" * 100_000)
    digest, cache = CountingDigest(), str(tmp_path / "cache")
    first = fileio.content_md5(str(src), cache_dir=cache, digest=digest)
    second = fileio.content_md5(str(src), cache_dir=cache, digest=digest)
    assert first == second == hashlib.md5(src.read_bytes()).hexdigest()
    assert digest.calls == 1


def test_a_changed_file_is_hashed_again(tmp_path: Path) -> None:
    src = old_file(tmp_path / "a.bin", b"a" * 1000)
    digest, cache = CountingDigest(), str(tmp_path / "cache")
    fileio.content_md5(str(src), cache_dir=cache, digest=digest)
    old_file(src, b"b" * 1000, age_ns=HOUR_NS // 2)  # same size, other content, other (still old) mtime
    assert fileio.content_md5(str(src), cache_dir=cache, digest=digest) == hashlib.md5(b"b" * 1000).hexdigest()
    assert digest.calls == 2


def test_a_fresh_file_is_never_cached(tmp_path: Path) -> None:
    """Right after a write the mtime may not change on a same-size rewrite (coarse file-system clocks)."""
    src = tmp_path / "new.bin"
    src.write_bytes(b"x" * 1000)
    digest, cache = CountingDigest(), str(tmp_path / "cache")
    fileio.content_md5(str(src), cache_dir=cache, digest=digest)
    src.write_bytes(b"y" * 1000)  # may well keep the same mtime_ns
    assert fileio.content_md5(str(src), cache_dir=cache, digest=digest) == hashlib.md5(b"y" * 1000).hexdigest()
    assert digest.calls == 2
    assert not os.path.exists(cache) or os.listdir(cache) == []


def test_a_damaged_entry_means_hashing_again(tmp_path: Path) -> None:
    src = old_file(tmp_path / "a.bin", b"a" * 1000)
    digest, cache = CountingDigest(), tmp_path / "cache"
    fileio.content_md5(str(src), cache_dir=str(cache), digest=digest)
    (entry,) = cache.iterdir()
    entry.write_text(entry.read_text().replace('"md5": "', '"md5": "0'))  # 33 characters: refused
    assert fileio.content_md5(str(src), cache_dir=str(cache), digest=digest) == hashlib.md5(b"a" * 1000).hexdigest()
    assert digest.calls == 2


def test_cache_off_and_cache_size_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = CountingDigest()
    src = old_file(tmp_path / "a.bin", b"a")
    fileio.content_md5(str(src), cache_dir="", digest=digest)
    fileio.content_md5(str(src), cache_dir="", digest=digest)
    assert digest.calls == 2
    monkeypatch.setattr(fileio, "MD5_CACHE_ENTRIES", 3)
    cache = tmp_path / "cache"
    for i in range(6):
        fileio.content_md5(str(old_file(tmp_path / f"f{i}.bin", bytes([i]))), cache_dir=str(cache))
    assert len(list(cache.iterdir())) == 3


def test_an_unwritable_cache_only_costs_a_rehash(tmp_path: Path) -> None:
    src = old_file(tmp_path / "a.bin", b"a" * 10)
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    digest = CountingDigest()
    for _ in range(2):
        assert fileio.content_md5(str(src), cache_dir=str(blocker), digest=digest) == hashlib.md5(b"a" * 10).hexdigest()
    assert digest.calls == 2


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_a_repeated_upload_does_not_hash_the_file_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the scheduler: two uploads of one unchanged file (the second as a restarted app would send it)
    hash it once; the default cache folder is the per-user cache, isolated per test by the suite's fixtures."""
    data = os.urandom(300_000)
    src = old_file(tmp_path / "up.bin", data)
    digest = CountingDigest()
    monkeypatch.setattr(scheduler_module, "file_digest", digest)
    with TestHttpServer() as srv:
        for i in range(2):
            client = MeowClient(fast_config())
            rec = Recorder()
            try:
                tid = await client.try_enqueue(UploadPounceBuilder("up.bin", src, 64 * 1024)
                                               .with_url(srv.url(f"/upload/{i}")).build(), rec.progress, rec.complete)
                final = await rec.wait_terminal(tid, timeout=20)
                assert final.status is TransferStatus.COMPLETE, final.error
                assert final.file_sign == hashlib.md5(data).hexdigest()
            finally:
                await closed_client(client)
        assert srv.uploads[hashlib.md5(data).hexdigest()].md5_ok is True
    assert digest.calls == 1
