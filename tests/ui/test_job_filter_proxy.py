"""JobFilterProxy and the status sidebar: status and text filters, sorting through the proxy, live counts."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSortFilterProxyModel, Qt

from app.manager.jobs import JobStatus
from app.ui.job_filter_proxy import JobFilterProxy, StatusFilter, count_by_filter
from app.ui.job_table_model import Column, JobRole, JobTableModel, SortRole
from app.ui.status_sidebar import StatusSidebar
from tests.ui.fake_manager import FakeManager
from tests.ui.ui_fakes import GiB, one_job_per_status

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def proxy(model: JobTableModel) -> JobFilterProxy:
    proxy = JobFilterProxy()
    proxy.setSourceModel(model)
    return proxy


def shown(proxy: JobFilterProxy) -> list[str]:
    return [proxy.index(row, Column.NAME).data() for row in range(proxy.rowCount())]


@pytest.fixture
def mixed(manager: FakeManager) -> FakeManager:
    """One job per status, plus a second active one."""
    one_job_per_status(manager)
    return manager


@pytest.mark.parametrize(("status_filter", "expected"), [
    (StatusFilter.ALL, ["active-movie.mkv", "queued.iso", "paused.tar", "done.zip", "broken.bin", "canceled.bin",
                        "active-music.flac"]),
    (StatusFilter.ACTIVE, ["active-movie.mkv", "active-music.flac"]),
    (StatusFilter.QUEUED, ["queued.iso"]),
    (StatusFilter.PAUSED, ["paused.tar"]),
    (StatusFilter.COMPLETED, ["done.zip"]),
    (StatusFilter.FAILED, ["broken.bin", "canceled.bin"]),  # Failed includes Canceled
])
def test_status_filter(proxy: JobFilterProxy, mixed: FakeManager, status_filter: StatusFilter,
                       expected: list[str]) -> None:
    proxy.set_status_filter(status_filter)
    assert shown(proxy) == expected


def test_text_filter_over_name_remote_and_error_case_insensitive(proxy: JobFilterProxy, mixed: FakeManager) -> None:
    proxy.set_text_filter("ACTIVE-")
    assert shown(proxy) == ["active-movie.mkv", "active-music.flac"]
    proxy.set_text_filter("work/bucket")  # the remote
    assert shown(proxy) == ["paused.tar"]
    proxy.set_text_filter("  accessdenied ")  # the error; surrounding blanks ignored
    assert shown(proxy) == ["broken.bin"]
    proxy.set_text_filter("music")
    proxy.set_status_filter(StatusFilter.PAUSED)  # both filters apply
    assert shown(proxy) == []
    proxy.set_status_filter(StatusFilter.ACTIVE)
    assert shown(proxy) == ["active-music.flac"]
    proxy.set_text_filter("")
    assert len(shown(proxy)) == 2


def test_rows_move_between_filters_when_their_status_changes(qtbot, proxy: JobFilterProxy, model: JobTableModel,
                                                              mixed: FakeManager) -> None:
    proxy.set_status_filter(StatusFilter.ACTIVE)
    movie = mixed.jobs[0]
    mixed.update(movie, status=JobStatus.PAUSED)
    model.flush()
    assert shown(proxy) == ["active-music.flac"]
    proxy.set_status_filter(StatusFilter.PAUSED)
    assert shown(proxy) == ["active-movie.mkv", "paused.tar"]
    queued = mixed.jobs[1]
    mixed.update(queued, status=JobStatus.PAUSED)
    model.flush()
    assert shown(proxy) == ["active-movie.mkv", "queued.iso", "paused.tar"]


def test_new_and_removed_jobs_respect_the_filter(qtbot, proxy: JobFilterProxy, model: JobTableModel,
                                                 mixed: FakeManager) -> None:
    proxy.set_status_filter(StatusFilter.QUEUED)
    mixed.make_job("new.bin", status=JobStatus.QUEUED)
    mixed.make_job("new-done.bin", status=JobStatus.COMPLETED)
    assert shown(proxy) == ["queued.iso", "new.bin"]
    model.jobs_removed([mixed.jobs[1].id])
    assert shown(proxy) == ["new.bin"]


def test_sorting_through_the_proxy_uses_raw_values(qtbot, proxy: JobFilterProxy, model: JobTableModel,
                                                   mixed: FakeManager) -> None:
    proxy.set_status_filter(StatusFilter.ALL)
    proxy.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)
    assert shown(proxy)[:4] == ["active-movie.mkv", "paused.tar", "queued.iso", "active-music.flac"]
    assert proxy.index(0, Column.SIZE).data(SortRole) == 5 * GiB  # not truncated to 32 bits on the way
    proxy.set_status_filter(StatusFilter.ACTIVE)
    proxy.sort(Column.SPEED, Qt.SortOrder.DescendingOrder)
    assert shown(proxy) == ["active-music.flac", "active-movie.mkv"]
    assert proxy.job_at(0).name == "active-music.flac"
    proxy.sort(Column.NAME, Qt.SortOrder.AscendingOrder)
    assert shown(proxy) == ["active-movie.mkv", "active-music.flac"]
    assert proxy.index(0, Column.NAME).data(SortRole) == ("active-movie.mkv",)


def test_filtering_costs_nothing_per_change_without_a_filter(qtbot, proxy: JobFilterProxy,
                                                             mixed: FakeManager) -> None:
    # With "All" and no text every row passes: changed rows are not re-filtered one Python call each.
    assert not proxy.dynamicSortFilter()
    proxy.set_text_filter("x")
    assert proxy.dynamicSortFilter()
    proxy.set_text_filter("")
    assert not proxy.dynamicSortFilter()


def mapped_cells(proxy: JobFilterProxy) -> list[tuple[object, ...]]:
    """Every cell through Qt's own row mapping (QSortFilterProxyModel's C++ data/flags), as a reference."""
    return [(QSortFilterProxyModel.data(proxy, proxy.index(row, column), role),
             QSortFilterProxyModel.flags(proxy, proxy.index(row, column)))
            for row in range(proxy.rowCount()) for column in Column for role in CELL_ROLES]


def read_cells(proxy: JobFilterProxy) -> list[tuple[object, ...]]:
    return [(proxy.index(row, column).data(role), proxy.flags(proxy.index(row, column)))
            for row in range(proxy.rowCount()) for column in Column for role in CELL_ROLES]


CELL_ROLES = (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.TextAlignmentRole, Qt.ItemDataRole.ToolTipRole,
              Qt.ItemDataRole.ForegroundRole, SortRole, JobRole)


def test_reading_cells_directly_matches_qts_mapping(qtbot, proxy: JobFilterProxy, model: JobTableModel,
                                                    mixed: FakeManager) -> None:
    """Without a filter the proxy reads the model's rows directly; through sorting, filtering, new and removed
    rows, it shows exactly what Qt's mapping shows."""
    steps = [
        lambda: None,
        lambda: proxy.sort(Column.SIZE, Qt.SortOrder.DescendingOrder),
        lambda: mixed.make_job("new.iso", status=JobStatus.ACTIVE, total=7 * GiB, speed=1e6),
        lambda: model.flush(),  # the new row moves to its sorted place
        lambda: proxy.set_status_filter(StatusFilter.ACTIVE),
        lambda: mixed.update(mixed.jobs[0], speed=5e7),
        lambda: model.flush(),
        lambda: proxy.set_status_filter(StatusFilter.ALL),
        lambda: model.jobs_removed([mixed.jobs[2].id, mixed.jobs[5].id]),
        lambda: proxy.set_text_filter("bin"),
        lambda: proxy.set_text_filter(""),
        lambda: proxy.sort(-1),
    ]
    for step in steps:
        step()
        cells = read_cells(proxy)
        assert cells == mapped_cells(proxy)
        assert [proxy.job_at(row) for row in range(proxy.rowCount())] == [
            proxy.index(row, 0).data(JobRole) for row in range(proxy.rowCount())]
    assert not proxy.index(-1, 0).isValid() and proxy.flags(proxy.index(-1, 0)) == Qt.ItemFlag.NoItemFlags
    assert proxy.index(0, 0).data() == "active-movie.mkv"  # arrival order again, nothing filtered


def test_count_by_filter(mixed: FakeManager) -> None:
    assert count_by_filter(mixed.jobs) == {
        StatusFilter.ALL: 7, StatusFilter.ACTIVE: 2, StatusFilter.QUEUED: 1, StatusFilter.PAUSED: 1,
        StatusFilter.COMPLETED: 1, StatusFilter.FAILED: 2}


def test_sidebar_shows_live_counts_and_selects_filters(qtbot, model: JobTableModel, mixed: FakeManager) -> None:
    sidebar = StatusSidebar(model)
    qtbot.addWidget(sidebar)
    model.flush()
    assert sidebar.item_text(StatusFilter.ACTIVE) == "Active (2)"
    assert sidebar.item_text(StatusFilter.ALL) == "All (7)"
    assert sidebar.item_text(StatusFilter.FAILED) == "Failed (2)"
    mixed.update(mixed.jobs[0], status=JobStatus.COMPLETED)
    with qtbot.waitSignal(model.updated, timeout=2000):
        pass
    assert sidebar.item_text(StatusFilter.ACTIVE) == "Active (1)"
    assert sidebar.item_text(StatusFilter.COMPLETED) == "Completed (2)"
    with qtbot.waitSignal(sidebar.filter_changed, timeout=1000) as blocker:
        sidebar.setCurrentRow(list(StatusFilter).index(StatusFilter.PAUSED))
    assert blocker.args == [StatusFilter.PAUSED]
    assert sidebar.current_filter is StatusFilter.PAUSED
