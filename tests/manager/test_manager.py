"""TransferManager against the tests' real HTTP server and a real SQLite history in tmp_path."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

from app.manager.jobs import Direction, Job, JobOptions, JobStatus
from app.manager.manager import ManagerError, TransferManager
from tests.support.engine_helpers import KIB, MIB, blob, sha
from tests.support.http_server import TestHttpServer
from tests.support.memory_keyring import MemoryKeyring

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60),
              pytest.mark.usefixtures("memory_keyring")]  # the keyring: tests/manager/conftest.py


class Events:
    """A ManagerListener that remembers everything it was told."""

    def __init__(self) -> None:
        self.added: list[str] = []
        self.changed: list[list[str]] = []
        self.removed: list[str] = []
        self.finished: list[tuple[str, JobStatus]] = []

    def jobs_added(self, jobs: Sequence[Job]) -> None:
        self.added += [j.id for j in jobs]

    def jobs_changed(self, jobs: Sequence[Job]) -> None:
        self.changed.append([j.id for j in jobs])

    def jobs_removed(self, job_ids: Sequence[str]) -> None:
        self.removed += list(job_ids)

    def job_finished(self, job: Job) -> None:
        self.finished.append((job.id, job.status))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest_asyncio.fixture
async def manager(data_dir: Path) -> AsyncIterator[TransferManager]:
    m = TransferManager(data_dir)
    await m.open()
    yield m
    await m.close()


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def db_rows(data_dir: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(data_dir / "history.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM jobs ORDER BY created_at").fetchall()
    finally:
        conn.close()


async def test_download_completes_and_is_in_the_history(manager: TransferManager, srv: TestHttpServer,
                                                        downloads: Path, data_dir: Path) -> None:
    data = blob(3 * MIB + 17)
    srv.add_file("/files/big.bin", data)
    events = Events()
    manager.add_listener(events)
    job = await manager.add_download(srv.url("/files/big.bin"), str(downloads))
    assert job.name == "big.bin" and job.local_path == str(downloads / "big.bin")
    assert events.added == [job.id]
    await until(lambda: job.status is JobStatus.COMPLETED)
    assert sha((downloads / "big.bin").read_bytes()) == sha(data)
    assert job.done_bytes == job.total_bytes == len(data) and job.progress == 1.0
    await until(lambda: (job.id, JobStatus.COMPLETED) in events.finished)
    assert any(job.id in batch for batch in events.changed)
    await until(lambda: db_rows(data_dir)[0]["status"] == "completed")
    row = db_rows(data_dir)[0]
    assert (row["done_bytes"], row["total_bytes"], row["direction"]) == (len(data), len(data), "download")
    assert manager.totals().completed == 1


async def test_same_name_gets_a_new_file_name_and_same_url_resumes_the_unfinished_job(
        manager: TransferManager, srv: TestHttpServer, downloads: Path) -> None:
    srv.add_file("/a/report.pdf", blob(100 * KIB))
    (downloads / "report.pdf").write_bytes(b"someone else's file")
    srv.rate_limit = 200 * KIB
    first = await manager.add_download(srv.url("/a/report.pdf"), str(downloads))
    assert first.name == "report (1).pdf"
    again = await manager.add_download(srv.url("/a/report.pdf"), str(downloads))
    assert again is first and len(manager.jobs) == 1
    srv.rate_limit = None
    await until(lambda: first.status is JobStatus.COMPLETED)
    assert (downloads / "report.pdf").read_bytes() == b"someone else's file"


async def test_pause_stops_bytes_and_resume_continues(manager: TransferManager, srv: TestHttpServer,
                                                      downloads: Path) -> None:
    data = blob(4 * MIB, seed=3)
    srv.add_file("/slow.bin", data)
    srv.rate_limit = 1 * MIB  # per connection; 4 connections: about a second in all
    job = await manager.add_download(srv.url("/slow.bin"), str(downloads),
                                     options=JobOptions(chunk_size=256 * KIB))
    await until(lambda: job.done_bytes > 512 * KIB)
    await manager.pause([job.id])
    assert job.status is JobStatus.PAUSED
    await asyncio.sleep(0.3)
    sent = srv.bytes_sent_total
    done = job.done_bytes
    await asyncio.sleep(0.5)
    assert srv.bytes_sent_total == sent, "bytes kept moving after pause"
    assert job.done_bytes == done and job.speed == 0.0
    srv.rate_limit = None
    await manager.resume([job.id])
    await until(lambda: job.status is JobStatus.COMPLETED)
    assert sha((downloads / "slow.bin").read_bytes()) == sha(data)
    assert srv.bytes_sent_total <= len(data) + 4 * 256 * KIB, "resume started over instead of continuing"


async def test_cancel_ends_the_job_and_retry_restarts_a_failed_one(manager: TransferManager, srv: TestHttpServer,
                                                                    downloads: Path) -> None:
    events = Events()
    manager.add_listener(events)
    missing = await manager.add_download(srv.url("/not-yet.bin"), str(downloads / "later.bin"))
    await until(lambda: missing.status is JobStatus.FAILED)
    assert missing.error and "404" in missing.error
    await until(lambda: (missing.id, JobStatus.FAILED) in events.finished)
    data = blob(300 * KIB, seed=5)
    srv.add_file("/not-yet.bin", data)
    await manager.retry([missing.id])
    await until(lambda: missing.status is JobStatus.COMPLETED)
    assert (downloads / "later.bin").read_bytes() == data and missing.error is None

    srv.add_file("/slow2.bin", blob(2 * MIB))
    srv.rate_limit = 100 * KIB
    slow = await manager.add_download(srv.url("/slow2.bin"), str(downloads))
    await until(lambda: slow.status is JobStatus.ACTIVE)
    await manager.cancel([slow.id])
    assert slow.status is JobStatus.CANCELED
    await asyncio.sleep(0.3)
    assert slow.status is JobStatus.CANCELED and not (downloads / "slow2.bin").exists()


async def test_remove_can_delete_the_partial_file(manager: TransferManager, srv: TestHttpServer,
                                                  downloads: Path, data_dir: Path) -> None:
    srv.add_file("/part.bin", blob(2 * MIB))
    srv.rate_limit = 200 * KIB
    job = await manager.add_download(srv.url("/part.bin"), str(downloads), options=JobOptions(chunk_size=64 * KIB))
    await until(lambda: job.done_bytes > 100 * KIB)
    events = Events()
    manager.add_listener(events)
    await manager.remove([job.id], delete_files=True)
    assert events.removed == [job.id] and manager.jobs == []
    assert sorted(os.listdir(downloads)) == []
    assert db_rows(data_dir) == []


async def test_close_mid_transfer_and_open_again_resumes(srv: TestHttpServer, downloads: Path,
                                                         data_dir: Path) -> None:
    data = blob(6 * MIB, seed=7)
    srv.add_file("/resume.bin", data)
    srv.add_file("/paused.bin", blob(MIB, seed=8))
    srv.rate_limit = 1 * MIB
    first = TransferManager(data_dir)
    await first.open()
    job = await first.add_download(srv.url("/resume.bin"), str(downloads), options=JobOptions(chunk_size=256 * KIB))
    paused = await first.add_download(srv.url("/paused.bin"), str(downloads))
    await first.pause([paused.id])
    await until(lambda: job.done_bytes > MIB)
    await first.close()
    before, first_requests = srv.bytes_sent_total, len(srv.requests)
    assert {r["id"]: r["status"] for r in db_rows(data_dir)} == {job.id: "active", paused.id: "paused"}

    srv.rate_limit = None
    second = TransferManager(data_dir)
    await second.open()
    try:
        again = second.get(job.id)
        await until(lambda: again.status is JobStatus.COMPLETED)
        assert sha((downloads / "resume.bin").read_bytes()) == sha(data)
        resent = [(r.method, r.range, r.status, r.bytes_sent) for r in srv.requests[first_requests:]]
        assert srv.bytes_sent_total - before <= len(data) - MIB + 4 * 256 * KIB, resent
        assert second.get(paused.id).status is JobStatus.PAUSED
    finally:
        await second.close()


async def test_signed_url_and_headers_stay_out_of_the_history(manager: TransferManager, srv: TestHttpServer,
                                                              downloads: Path, data_dir: Path,
                                                              memory_keyring: MemoryKeyring) -> None:
    srv.add_file("/signed.bin", blob(10 * KIB))
    url = srv.url("/signed.bin") + "?token=TOPSECRETsignature&x=1"
    job = await manager.add_download(url, str(downloads), headers=[("Authorization", "Bearer hunter2-token")])
    await until(lambda: job.status is JobStatus.COMPLETED)
    assert "TOPSECRET" not in job.remote
    raw = b"".join(p.read_bytes() for p in data_dir.iterdir() if p.is_file())
    assert b"TOPSECRET" not in raw and b"hunter2" not in raw
    assert any("TOPSECRET" in v for v in memory_keyring.values.values())
    await manager.remove([job.id])
    assert not any("TOPSECRET" in v for v in memory_keyring.values.values())


async def test_a_job_keeps_its_signed_url_when_another_process_overwrites_the_keyring(
        manager: TransferManager, srv: TestHttpServer, downloads: Path, memory_keyring: MemoryKeyring,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A file keyring written by two processes at once keeps only the last writer's file: our job's entry can
    vanish right after we stored it, before the job's first run reads it back. Every run of the job in this
    process (the first, and a retry) still uses the signed URL and headers it was given."""
    data = blob(300 * KIB, seed=8)
    url = srv.url("/signed-later.bin") + "?token=TOPSECRETsignature"
    stored: list[str] = []
    monkeypatch.setattr(memory_keyring, "set_password", lambda _service, _user, value: stored.append(value))
    job = await manager.add_download(url, str(downloads), headers=[("Authorization", "Bearer hunter2-token")])
    await until(lambda: job.status is JobStatus.FAILED)  # 404: not there yet
    assert stored and memory_keyring.values == {}, "the keyring should have lost our entry"
    srv.add_file("/signed-later.bin", data)
    await manager.retry([job.id])
    await until(lambda: job.status in (JobStatus.COMPLETED, JobStatus.FAILED))
    assert job.status is JobStatus.COMPLETED, job.error
    assert sha((downloads / "signed-later.bin").read_bytes()) == sha(data)
    sent = [r for r in srv.requests if r.path == "/signed-later.bin"]
    assert len(sent) >= 2 and all("token=TOPSECRETsignature" in r.query for r in sent)
    assert all(r.headers.get("authorization") == "Bearer hunter2-token" for r in sent)


async def test_bad_input_is_refused_with_a_clear_error(manager: TransferManager, downloads: Path,
                                                       tmp_path: Path) -> None:
    for url, words in (("ftp://example.com/x", "unsupported URL scheme"), ("http://", "no host"),
                       ("http://exa mple.com/x", "whitespace"), ("http://example.com:99999/", "malformed")):
        with pytest.raises(ManagerError, match=words):
            await manager.add_download(url, str(downloads))
    with pytest.raises(ManagerError, match="not found"):
        await manager.add_upload(str(tmp_path / "missing.bin"), "http://127.0.0.1:9/upload")
    with pytest.raises(ManagerError, match="folder"):
        await manager.add_upload(str(downloads), "http://127.0.0.1:9/upload")
    assert manager.jobs == []


async def test_upload_completes_with_the_servers_answer(manager: TransferManager, srv: TestHttpServer,
                                                        tmp_path: Path) -> None:
    source = tmp_path / "up.bin"
    data = blob(3 * MIB + 5, seed=11)
    source.write_bytes(data)
    job = await manager.add_upload(str(source), srv.url("/upload"), options=JobOptions(chunk_size=MIB))
    assert job.direction is Direction.UPLOAD and job.total_bytes == len(data)
    await until(lambda: job.status is JobStatus.COMPLETED)
    assert any(state.data == data for state in srv.uploads.values())
    await until(lambda: job.result is not None)


async def test_second_process_cannot_run_the_same_job(srv: TestHttpServer, downloads: Path, data_dir: Path) -> None:
    """The app and a CLI share the history: the job lock keeps one writer per .part file, and the other
    process shows the job as running elsewhere."""
    srv.add_file("/shared.bin", blob(2 * MIB))
    srv.rate_limit = 256 * KIB
    cli = TransferManager(data_dir)
    await cli.open(restore=False)
    app = TransferManager(data_dir)
    try:
        job = await cli.add_download(srv.url("/shared.bin"), str(downloads))
        await until(lambda: job.status is JobStatus.ACTIVE)
        await app.open()  # restores every unfinished job, but this one is locked by the "CLI"
        await until(lambda: any(j.id == job.id for j in app.jobs), timeout=10)
        mirror = app.get(job.id)
        await until(lambda: mirror.error is not None and "another" in mirror.error, timeout=10)
        with pytest.raises(ManagerError, match="another"):
            await app.cancel([job.id])
        srv.rate_limit = None
        await until(lambda: job.status is JobStatus.COMPLETED)
        await until(lambda: mirror.status is JobStatus.COMPLETED, timeout=10)
    finally:
        await app.close()
        await cli.close()


async def test_damaged_history_is_moved_aside(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "history.sqlite3").write_bytes(b"this is not a database" * 100)
    m = TransferManager(data_dir)
    await m.open()
    try:
        assert m.jobs == []
    finally:
        await m.close()
    assert any(p.name.startswith("history.sqlite3.damaged-") for p in data_dir.iterdir())


async def test_set_concurrency_and_rate_limit_apply_live(manager: TransferManager, srv: TestHttpServer,
                                                         downloads: Path) -> None:
    await manager.set_concurrency(1, 1)
    for i in range(3):
        srv.add_file(f"/c{i}.bin", blob(512 * KIB, seed=i))
    srv.rate_limit = 512 * KIB
    jobs = [await manager.add_download(srv.url(f"/c{i}.bin"), str(downloads)) for i in range(3)]
    await until(lambda: jobs[0].status is JobStatus.ACTIVE)
    await asyncio.sleep(0.2)
    assert sum(j.status is JobStatus.ACTIVE for j in jobs) == 1
    assert manager.totals().active == 1 and manager.totals().queued == 2
    await manager.set_rate_limit(10 * MIB)
    assert manager.totals().rate_limit == 10 * MIB
    srv.rate_limit = None
    await manager.set_concurrency(3, 2)
    await until(lambda: all(j.status is JobStatus.COMPLETED for j in jobs))
    with pytest.raises(ManagerError):
        await manager.set_concurrency(0, 1)


async def test_the_app_takes_over_a_job_whose_process_went_away(srv: TestHttpServer, downloads: Path,
                                                                  data_dir: Path) -> None:
    """A CLI killed mid-transfer leaves its job queued/active and unlocked: the running app adopts and resumes
    it; a CLI-mode manager (restore=False) never adopts other processes' jobs."""
    data = blob(2 * MIB, seed=31)
    srv.add_file("/adopt.bin", data)
    srv.rate_limit = 256 * KIB
    app = TransferManager(data_dir)
    await app.open()
    other_cli = TransferManager(data_dir)
    await other_cli.open(restore=False)
    dying = TransferManager(data_dir)
    await dying.open(restore=False)
    try:
        job = await dying.add_download(srv.url("/adopt.bin"), str(downloads))
        await until(lambda: job.done_bytes > 0)
        await until(lambda: "another" in (app.get(job.id).error or "") if job.id in {j.id for j in app.jobs}
                    else False, timeout=10)
        await dying.close()  # like a kill: the job stays active in the history and its lock is gone
        srv.rate_limit = None
        mirror = app.get(job.id)
        await until(lambda: mirror.status is JobStatus.COMPLETED, timeout=20)
        assert sha((downloads / "adopt.bin").read_bytes()) == sha(data)
        assert other_cli.get(job.id).error is None or "another" in (other_cli.get(job.id).error or "")
        assert job.id not in other_cli._task_of
    finally:
        await other_cli.close()
        await app.close()


async def test_the_poll_for_other_processes_never_restarts_our_own_finished_job(
        srv: TestHttpServer, downloads: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own progress writes come back in the poll for other processes' changes; a row that still says
    "active" from before our completion was written must not turn the job back into a running one."""
    import app.manager.manager as manager_module

    monkeypatch.setattr(manager_module, "EXTERNAL_POLL_INTERVAL", 0.02)
    srv.add_file("/once.bin", blob(600 * KIB, seed=41))
    srv.rate_limit = 400 * KIB
    m = TransferManager(data_dir)
    await m.open()
    try:
        job = await m.add_download(srv.url("/once.bin"), str(downloads))
        await until(lambda: job.status is JobStatus.COMPLETED)
        await until(lambda: db_rows(data_dir)[0]["status"] == "completed")
        # What the poll sees when it reads one of our older writes after the job completed: the row says active
        # (same updated_at as our own write) and the poll has not read it before.
        conn = sqlite3.connect(data_dir / "history.sqlite3")
        with conn:
            conn.execute("UPDATE jobs SET status='active' WHERE id=?", (job.id,))
        conn.close()
        m._seen_updated_at = 0.0
        gets = srv.count("GET")
        await asyncio.sleep(0.6)  # many polls
        assert job.status is JobStatus.COMPLETED and job.error is None
        assert srv.count("GET") == gets, "the finished download was started again"
    finally:
        await m.close()
