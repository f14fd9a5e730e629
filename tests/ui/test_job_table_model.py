"""JobTableModel: rows follow the manager's listener calls, cells show formatted values, sort keys stay raw,
and repaints are coalesced whatever the event rate."""

from __future__ import annotations

import math
import time

import pytest
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QApplication, QTableView

from app.manager.jobs import Direction, JobStatus
from app.ui import job_table_model as model_module
from app.ui.formatting import format_eta, format_speed, job_progress_text, status_label
from app.ui.job_filter_proxy import JobFilterProxy
from app.ui.job_table_model import Column, JobRole, JobTableModel, ProgressRole, SortRole, natural_key
from tests.ui.fake_manager import FakeManager
from tests.ui.ui_fakes import GiB, MiB, one_job_per_status

pytestmark = pytest.mark.timeout(30)


def names(model: JobTableModel) -> list[str]:
    return [model.index(row, Column.NAME).data() for row in range(model.rowCount())]


class Recorder:
    """Collects a model's change signals (arguments as plain ints)."""

    def __init__(self, model: JobTableModel) -> None:
        self.changed: list[tuple[int, int, int, int]] = []
        self.removed: list[tuple[int, int]] = []
        self.inserted: list[tuple[int, int]] = []
        self.layouts = 0
        model.dataChanged.connect(
            lambda tl, br, _roles=(): self.changed.append((tl.row(), tl.column(), br.row(), br.column())))
        model.rowsAboutToBeRemoved.connect(lambda _parent, first, last: self.removed.append((first, last)))
        model.rowsInserted.connect(lambda _parent, first, last: self.inserted.append((first, last)))
        model.layoutChanged.connect(self._layout)

    def _layout(self, *_args: object) -> None:
        self.layouts += 1


# ---- formatting -----------------------------------------------------------------------------------------------


def test_formatting_of_speeds_etas_and_labels(qapp) -> None:
    assert format_speed(12.3 * MiB) == "12.3 MiB/s"
    assert format_speed(0) == "0 B/s"
    assert format_eta(3723) == "1:02:03"
    assert format_eta(125) == "2:05"
    assert format_eta(0.2) == "0:01"  # rounded up: never "0:00" while bytes are still moving
    assert format_eta(None) == "—"
    assert format_eta(math.inf) == "∞"
    assert format_eta(400 * 24 * 3600) == "∞"
    assert status_label(JobStatus.CANCELED) == "Canceled"


def test_progress_text_never_claims_100_percent_before_completion(qapp, manager: FakeManager) -> None:
    job = manager.make_job(total=10_000, done=9_996, status=JobStatus.ACTIVE)
    assert job_progress_text(job) == "99.9%"
    manager.update(job, done_bytes=10_000, status=JobStatus.COMPLETED)
    assert job_progress_text(job) == "100.0%"
    unknown = manager.make_job(total=0, done=3 * MiB, status=JobStatus.ACTIVE)
    assert job_progress_text(unknown) == "3.0 MiB"


def test_natural_key_orders_numbers_by_value() -> None:
    assert sorted(["file10.bin", "File2.bin", "file1.bin"], key=natural_key) == ["file1.bin", "File2.bin",
                                                                                  "file10.bin"]


# ---- rows -----------------------------------------------------------------------------------------------------


def test_rows_appear_with_formatted_cells(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    rec = Recorder(model)
    job = manager.make_job("movie.mkv", status=JobStatus.ACTIVE, total=3 * GiB, done=int(1.5 * GiB),
                           speed=12.3 * MiB, eta=3723.0, remote="https://cdn.example.test/movie.mkv")
    up = manager.make_job("notes.txt", direction=Direction.UPLOAD, status=JobStatus.FAILED,
                          remote="oss://work/bucket/notes.txt", error="403 AccessDenied (E_AUTH)", account="work")
    assert model.rowCount() == 2
    assert rec.inserted == [(0, 0), (1, 1)]

    def cell(row: int, column: Column, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        return model.index(row, column).data(role)

    assert [cell(0, c) for c in Column] == ["movie.mkv", "Download", "https://cdn.example.test/movie.mkv",
                                            "3.0 GiB", "50.0%", "12.3 MiB/s", "1:02:03", "Active", ""]
    assert [cell(1, c) for c in Column] == ["notes.txt", "Upload", "oss://work/bucket/notes.txt", "—", "0.0%", "",
                                            "—", "Failed", "403 AccessDenied (E_AUTH)"]
    assert cell(0, Column.SIZE, SortRole) == 3 * GiB  # the raw int, beyond 2**31
    assert cell(0, Column.PROGRESS, ProgressRole) == pytest.approx(0.5)
    assert cell(1, Column.NAME, JobRole) is up
    assert model.job_at(0) is job and model.row_of(up.id) == 1
    assert "work" in cell(1, Column.REMOTE, Qt.ItemDataRole.ToolTipRole)
    assert model.headerData(Column.ETA, Qt.Orientation.Horizontal) == "ETA"


def test_set_jobs_resets_and_ignores_duplicates(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    jobs = [manager.make_job(f"f{i}") for i in range(3)]
    model.set_jobs(jobs)
    model.jobs_added([jobs[0]])  # already there: the manager restoring and the window opening may overlap
    assert names(model) == ["f0", "f1", "f2"]


def test_updates_reach_the_cells_after_a_flush(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    job = manager.make_job("a.bin", status=JobStatus.ACTIVE, total=1000)
    model.flush()
    rec = Recorder(model)
    manager.update(job, done_bytes=420, speed=2048.0)
    with qtbot.waitSignal(model.updated, timeout=2000):
        pass
    assert model.index(0, Column.PROGRESS).data() == "42.0%"
    assert model.index(0, Column.SPEED).data() == "2.0 KiB/s"
    assert rec.changed == [(0, 0, 0, len(Column) - 1)]


def test_a_burst_of_1000_changes_is_one_repaint(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    jobs = [manager.make_job(f"f{i}.bin", status=JobStatus.ACTIVE, total=10_000) for i in range(20)]
    model.flush()
    rec = Recorder(model)
    for i in range(1000):
        job = jobs[i % 3]  # three rows change, 1000 times
        manager.update(job, done_bytes=i)
    assert rec.changed == []  # nothing is emitted synchronously
    qtbot.wait(3 * model_module.FLUSH_INTERVAL_MS)
    assert rec.changed == [(0, 0, 2, len(Column) - 1)]  # one contiguous run, one signal
    assert model.index(0, Column.PROGRESS).data() == "9.9%"  # the last value (999 of 10,000), rounded down


def test_a_steady_stream_is_flushed_about_ten_times_a_second(qtbot, model: JobTableModel,
                                                              manager: FakeManager) -> None:
    job = manager.make_job("busy.bin", status=JobStatus.ACTIVE, total=10**9)
    model.flush()
    flushes = []
    model.updated.connect(lambda: flushes.append(time.monotonic()))
    calls = 0
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        manager.update(job, done_bytes=calls)
        calls += 1
        QApplication.processEvents()
    qtbot.wait(2 * model_module.FLUSH_INTERVAL_MS)
    assert calls > 500  # the event rate really was high
    assert 3 <= len(flushes) <= 9  # ~6 expected at 10/s over 0.6 s (+1 trailing)


def test_more_than_half_changed_is_one_whole_table_signal(qtbot, model: JobTableModel,
                                                          manager: FakeManager) -> None:
    jobs = [manager.make_job(f"f{i}") for i in range(10)]
    model.flush()
    rec = Recorder(model)
    model.jobs_changed([jobs[i] for i in (1, 2, 3, 7)])
    model.flush()
    assert rec.changed == [(1, 0, 3, 8), (7, 0, 7, 8)]  # runs when few rows changed
    rec.changed.clear()
    model.jobs_changed([jobs[i] for i in (0, 2, 4, 5, 6, 9)])
    model.flush()
    assert rec.changed == [(0, 0, 9, 8)]


def test_removal_in_descending_contiguous_runs(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    jobs = [manager.make_job(f"f{i}") for i in range(10)]
    rec = Recorder(model)
    model.jobs_removed([jobs[i].id for i in (1, 8, 2, 6, 3)] + ["unknown-id"])
    assert rec.removed == [(8, 8), (6, 6), (1, 3)]
    assert names(model) == ["f0", "f4", "f5", "f7", "f9"]
    assert [model.row_of(jobs[i].id) for i in (0, 4, 5, 7, 9)] == [0, 1, 2, 3, 4]
    assert model.row_of(jobs[1].id) is None
    # A pending change of a removed job is dropped, not flushed to a row that no longer exists.
    model.jobs_changed([jobs[9]])
    model.jobs_removed([jobs[9].id])
    rec.changed.clear()
    model.flush()
    assert rec.changed == []


def test_job_finished_counts_as_a_change(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    job = manager.make_job("done.bin", status=JobStatus.ACTIVE, total=10)
    model.flush()
    job.status, job.done_bytes = JobStatus.COMPLETED, 10
    model.job_finished(job)
    model.flush()
    assert model.index(0, Column.STATUS).data() == "Completed"


# ---- sorting --------------------------------------------------------------------------------------------------


def test_sort_by_raw_sizes_beyond_32_bits(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    manager.make_job("three", total=3 * GiB)
    manager.make_job("nine-hundred", total=900 * MiB)
    manager.make_job("five", total=5 * GiB)
    manager.make_job("tera", total=1 << 40)
    model.sort(Column.SIZE, Qt.SortOrder.AscendingOrder)
    assert names(model) == ["nine-hundred", "three", "five", "tera"]
    model.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)
    assert names(model) == ["tera", "five", "three", "nine-hundred"]
    assert [model.index(r, Column.SIZE).data(SortRole) for r in range(4)] == [1 << 40, 5 * GiB, 3 * GiB, 900 * MiB]
    model.sort(-1)
    assert names(model) == ["three", "nine-hundred", "five", "tera"]  # arrival order again


def test_sort_by_speed_eta_and_status(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    manager.make_job("slow", status=JobStatus.ACTIVE, speed=100.0, eta=600.0, total=10)
    manager.make_job("paused", status=JobStatus.PAUSED, speed=9e9, total=10)  # a stale speed does not count
    manager.make_job("fast", status=JobStatus.ACTIVE, speed=5e6, eta=20.0, total=10)
    manager.make_job("stalled", status=JobStatus.ACTIVE, speed=0.0, eta=None, total=10)
    model.sort(Column.SPEED, Qt.SortOrder.DescendingOrder)
    assert names(model)[:2] == ["fast", "slow"]
    model.sort(Column.ETA, Qt.SortOrder.AscendingOrder)
    assert names(model)[:2] == ["fast", "slow"]  # unknown ETAs last
    model.sort(Column.STATUS, Qt.SortOrder.AscendingOrder)
    assert names(model)[-1] == "paused"


def test_rows_follow_their_values_and_persistent_indexes_follow_rows(
        qtbot, model: JobTableModel, manager: FakeManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_module, "RESORT_INTERVAL_MS", 150)
    a = manager.make_job("a", status=JobStatus.ACTIVE, speed=3.0, total=10)
    b = manager.make_job("b", status=JobStatus.ACTIVE, speed=2.0, total=10)
    manager.make_job("c", status=JobStatus.ACTIVE, speed=1.0, total=10)
    model.sort(Column.SPEED, Qt.SortOrder.DescendingOrder)
    selected = QPersistentModelIndex(model.index(model.row_of(b.id), Column.STATUS))
    manager.update(b, speed=10.0)
    model.flush()  # the first change after a sort moves rows at once
    assert names(model) == ["b", "a", "c"]
    assert selected.row() == 0 and selected.column() == Column.STATUS
    manager.update(a, speed=20.0)
    model.flush()  # within RESORT_INTERVAL_MS: the cell updates, the row waits
    assert names(model) == ["b", "a", "c"]
    assert model.index(1, Column.SPEED).data() == "20 B/s"
    qtbot.waitUntil(lambda: names(model) == ["a", "b", "c"], timeout=2000)  # the resort timer moves it
    assert selected.row() == 1
    # A new row goes to its sorted place at the next flush.
    manager.make_job("d", status=JobStatus.ACTIVE, speed=15.0, total=10)
    model.flush()
    assert names(model) == ["a", "d", "b", "c"]


def test_expensive_moves_back_off(qtbot, model: JobTableModel, manager: FakeManager,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A move that costs the GUI 50 ms (a slow view) is not repeated for RESORT_COST_FACTOR times that."""
    monkeypatch.setattr(model_module, "RESORT_INTERVAL_MS", 100)
    a = manager.make_job("a", status=JobStatus.ACTIVE, speed=2.0, total=10)
    b = manager.make_job("b", status=JobStatus.ACTIVE, speed=1.0, total=10)
    model.sort(Column.SPEED, Qt.SortOrder.DescendingOrder)
    model.layoutChanged.connect(lambda *_args: time.sleep(0.05))
    manager.update(b, speed=3.0)
    model.flush()
    assert names(model) == ["b", "a"]
    started = time.monotonic()
    qtbot.wait(20)  # the cost is measured once the loop has handled the move
    manager.update(a, speed=4.0)
    qtbot.waitUntil(lambda: time.monotonic() - started > 0.3, timeout=2000)
    assert names(model) == ["b", "a"]  # 3x the plain interval later, still waiting (>= 10 x 50 ms)
    qtbot.waitUntil(lambda: names(model) == ["a", "b"], timeout=3000)
    assert time.monotonic() - started >= model_module.RESORT_COST_FACTOR * 0.05 - 0.01


def test_ties_keep_their_order(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    jobs = [manager.make_job(f"f{i}", total=100) for i in range(5)]
    model.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)
    rec = Recorder(model)
    manager.update(jobs[3], done_bytes=5)  # its size key is unchanged: no re-sort, no layout change
    model.flush()
    assert names(model) == ["f0", "f1", "f2", "f3", "f4"]
    assert rec.layouts == 0


def test_sort_by_status_groups_what_the_user_can_do(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    one_job_per_status(manager)
    model.sort(Column.STATUS, Qt.SortOrder.AscendingOrder)
    assert [model.job_at(row).status for row in range(model.rowCount())] == [
        JobStatus.ACTIVE, JobStatus.ACTIVE, JobStatus.QUEUED, JobStatus.PAUSED, JobStatus.FAILED, JobStatus.CANCELED,
        JobStatus.COMPLETED]
    assert names(model)[:2] == ["active-movie.mkv", "active-music.flac"]  # a tie keeps arrival order


def test_values_that_change_without_changing_the_order_move_nothing(
        qtbot, model: JobTableModel, manager: FakeManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_module, "RESORT_INTERVAL_MS", 50)
    jobs = [manager.make_job(name, status=JobStatus.ACTIVE, speed=speed, total=10)
            for name, speed in (("a", 3.0), ("b", 2.0), ("c", 1.0))]
    model.sort(Column.SPEED, Qt.SortOrder.DescendingOrder)
    rec = Recorder(model)
    for round_ in range(1, 4):  # every speed changes, the order does not
        for job in jobs:
            manager.update(job, speed=job.speed * 2)
        model.flush()
        qtbot.wait(80)  # longer than the re-order interval: a pending move would have happened
        assert model.index(0, Column.SPEED).data() == f"{3 * 2 ** round_} B/s"
    assert names(model) == ["a", "b", "c"]
    assert rec.layouts == 0
    assert len(rec.changed) >= 3  # the cells were repainted each time


def test_a_move_uses_the_latest_values_of_rows_that_changed_while_it_waited(
        qtbot, model: JobTableModel, manager: FakeManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_module, "RESORT_INTERVAL_MS", 300)
    a = manager.make_job("a", status=JobStatus.ACTIVE, speed=3.0, total=10)
    manager.make_job("b", status=JobStatus.ACTIVE, speed=2.0, total=10)
    c = manager.make_job("c", status=JobStatus.ACTIVE, speed=1.0, total=10)
    model.sort(Column.SPEED, Qt.SortOrder.DescendingOrder)
    manager.update(c, speed=10.0)
    model.flush()  # the first change after a sort moves rows at once
    assert names(model) == ["c", "a", "b"]
    manager.update(a, speed=0.5)  # a would go last...
    model.flush()
    manager.update(a, speed=20.0)  # ...but is first by the time the rows may move again
    model.flush()
    assert names(model) == ["c", "a", "b"]  # still waiting for the interval
    qtbot.waitUntil(lambda: names(model) == ["a", "c", "b"], timeout=2000)
    assert [model.index(row, Column.SPEED).data(SortRole) for row in range(3)] == [20.0, 10.0, 2.0]


def test_a_row_that_changes_while_its_move_is_prepared_is_placed_by_a_later_move(
        qtbot, model: JobTableModel, manager: FakeManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resort timer works out the order, the next flush applies it: a value that changes in between is
    checked again after the move, even when nothing else changes."""
    monkeypatch.setattr(model_module, "RESORT_INTERVAL_MS", 100)
    a = manager.make_job("a", status=JobStatus.ACTIVE, speed=3.0, total=10)
    b = manager.make_job("b", status=JobStatus.ACTIVE, speed=2.0, total=10)
    c = manager.make_job("c", status=JobStatus.ACTIVE, speed=1.0, total=10)
    model.sort(Column.SPEED, Qt.SortOrder.DescendingOrder)
    manager.update(c, speed=10.0)
    model.flush()  # the first change after a sort moves rows at once
    assert names(model) == ["c", "a", "b"]
    # Right after the order is prepared (connected after the model's own slot, so called after it): a speeds up.
    model._resort_timer.timeout.connect(lambda: manager.update(a, speed=20.0) if a.speed < 20 else None)
    manager.update(b, speed=5.0)
    model.flush()
    assert names(model) == ["c", "a", "b"]  # stale, waiting for the interval
    qtbot.waitUntil(lambda: names(model) == ["c", "b", "a"], timeout=2000)  # the prepared order (a at 3.0)
    qtbot.waitUntil(lambda: names(model) == ["a", "c", "b"], timeout=2000)  # a at 20.0, with no further change


@pytest.mark.parametrize("text_filter", ["", "job"])  # the proxy passing rows through, and mapping them
def test_the_selection_follows_its_jobs_when_rows_move(qtbot, model: JobTableModel, manager: FakeManager,
                                                       text_filter: str) -> None:
    jobs = [manager.make_job(f"job-{i}", status=JobStatus.ACTIVE, speed=float(10 - i), total=10) for i in range(6)]
    proxy = JobFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_text_filter(text_filter)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    view.sortByColumn(Column.SPEED, Qt.SortOrder.DescendingOrder)
    view.selectRow(1)
    view.selectionModel().select(proxy.index(3, 0), view.selectionModel().SelectionFlag.Select
                                 | view.selectionModel().SelectionFlag.Rows)

    def selected() -> set[str]:
        return {proxy.job_at(index.row()).name for index in view.selectionModel().selectedRows()}

    assert selected() == {"job-1", "job-3"}
    for i, job in enumerate(jobs):  # the order reverses: job-5 fastest
        manager.update(job, speed=float(1 + i))
    model.flush()
    assert [proxy.job_at(row).name for row in range(proxy.rowCount())] == [f"job-{i}" for i in range(5, -1, -1)]
    assert selected() == {"job-1", "job-3"}
    assert proxy.job_at(view.currentIndex().row()).name == "job-1"


def test_rows_are_found_and_removed_after_a_move(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    jobs = [manager.make_job(f"f{i}", total=(i + 1) * 10) for i in range(6)]
    model.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)
    assert [model.row_of(job.id) for job in jobs] == [5, 4, 3, 2, 1, 0]
    model.jobs_removed([jobs[4].id, jobs[1].id])
    assert names(model) == ["f5", "f3", "f2", "f0"]
    assert [model.row_of(jobs[i].id) for i in (5, 3, 2, 0)] == [0, 1, 2, 3]
    assert model.row_of(jobs[4].id) is None
    manager.make_job("f9", total=1000)
    model.flush()
    assert names(model) == ["f9", "f5", "f3", "f2", "f0"]
    assert model.row_of(jobs[0].id) == 4


def test_a_change_after_a_quiet_spell_waits_only_the_flush_delay(qtbot, model: JobTableModel,
                                                                 manager: FakeManager) -> None:
    """Half an interval after the manager's batch, not a whole one: then the flush does not land on the next
    batch. Flushes stay at least FLUSH_INTERVAL_MS apart. (Lower bounds only: a busy machine only delays.)"""
    job = manager.make_job("a.bin", status=JobStatus.ACTIVE, total=10**9)
    model.flush()
    qtbot.wait(2 * model_module.FLUSH_INTERVAL_MS)
    flushed: list[float] = []
    model.updated.connect(lambda: flushed.append(time.monotonic()))
    changed = time.monotonic()
    manager.update(job, done_bytes=1)
    qtbot.waitUntil(lambda: len(flushed) == 1, timeout=2000)
    manager.update(job, done_bytes=2)  # right after a flush: waits for the rest of the interval
    qtbot.waitUntil(lambda: len(flushed) == 2, timeout=2000)
    slack = 0.9  # Qt's coarse timers may fire up to 5% early
    assert flushed[0] - changed >= slack * model_module.FLUSH_DELAY_MS / 1000
    assert flushed[1] - flushed[0] >= slack * model_module.FLUSH_INTERVAL_MS / 1000


def test_ten_thousand_rows_all_changing_stay_cheap(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    jobs = [manager.make_job(f"file{i}.bin", status=JobStatus.ACTIVE, total=(i + 1) * GiB) for i in range(10_000)]
    model.flush()
    model.sort(Column.NAME, Qt.SortOrder.AscendingOrder)
    rec = Recorder(model)
    for job in jobs:
        job.done_bytes += MiB
        job.speed = 1e6
    start = time.perf_counter()
    for job in jobs:  # the worst case: one call per job
        model.jobs_changed([job])
    model.flush()
    elapsed = time.perf_counter() - start
    assert rec.changed == [(0, 0, 9_999, 8)]  # one signal for the whole table
    assert rec.layouts == 0  # names did not change: no re-sort
    assert elapsed < 1.0, f"flushing 10,000 changed rows took {elapsed:.3f} s"


def test_invalid_indexes_are_harmless(qtbot, model: JobTableModel) -> None:
    assert model.data(QModelIndex()) is None
    assert model.rowCount(model.index(0, 0)) == 0
    model.flush()  # nothing pending: no signal, no error
