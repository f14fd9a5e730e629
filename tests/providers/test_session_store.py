"""Upload session files: round trip, and anything torn or edited reads as no session."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.providers.session_store import UploadSessionStore, session_key


def test_round_trip_and_remove(tmp_path: Path) -> None:
    store = UploadSessionStore(tmp_path / "sessions")
    key = session_key("/data/a.bin", 123, 456, "https://h/b/k", 8 << 20)
    assert store.load(key) is None
    store.save(key, {"upload_id": "abc", "parts": {"1": '"etag"'}})
    assert store.load(key) == {"upload_id": "abc", "parts": {"1": '"etag"'}}
    store.remove(key)
    assert store.load(key) is None
    store.remove(key)  # idempotent


@pytest.mark.parametrize("damage", ["truncate", "zero", "garbage", "edit"])
def test_damaged_session_reads_as_none(tmp_path: Path, damage: str) -> None:
    store = UploadSessionStore(tmp_path)
    key = session_key("x")
    store.save(key, {"upload_id": "abc"})
    path = next(tmp_path.glob("*.upload.json"))
    raw = path.read_bytes()
    damaged = {"truncate": raw[: len(raw) // 2], "zero": b"\0" * len(raw), "garbage": b"\xff\xfe not json",
               "edit": raw.replace(b"abc", b"abd")}[damage]
    path.write_bytes(damaged)
    assert store.load(key) is None


def test_keys_differ_by_identity() -> None:
    assert session_key("a", 1) != session_key("a", 2)
    assert len(session_key("a")) == 40
