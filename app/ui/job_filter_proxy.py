"""What the table shows: the sidebar's status filter and the toolbar's text filter over the job model.

Sorting is forwarded to JobTableModel.sort (Python ``sorted()`` on raw values, see job_table_model for the
measurements); this proxy only filters and keeps the model's order. It filters with Qt's own regular-expression
filter over the model's FilterKeyRole instead of a Python ``filterAcceptsRow``: with no filter set Qt accepts a
row without calling into Python at all, and a Python override cost ~19 ms per re-order of 10,000 rows
(tests/bench/ui_table.py) even when it accepted everything.

While nothing is filtered, the proxy's row n is the model's row n (its own sort is off), and ``data()`` and
``flags()`` read the model directly. Through Qt's mapping every role of every painted cell cost three calls from
C++ into Python (the model's ``rowCount`` and ``columnCount`` to check the index, then ``data``), and a cell is
asked for seven roles: with 200 visible cells repainted ten times a second, that mapping was a quarter of each
repaint (about 4 ms of 15).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any

from PySide6.QtCore import (
    QCoreApplication,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRegularExpression,
    QSortFilterProxyModel,
    Qt,
)

from app.manager.jobs import Job, JobStatus
from app.ui.job_table_model import FilterKeyRole, JobTableModel

__all__ = ["JobFilterProxy", "StatusFilter", "count_by_filter"]

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
#: What QAbstractTableModel gives every cell (the proxy passes it on).
_CELL_FLAGS = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemNeverHasChildren


class StatusFilter(Enum):
    """The sidebar's groups.

    FAILED covers both FAILED and CANCELED: both are transfers that stopped without completing and are
    handled the same way (Retry or Remove), and a separate "Canceled" group would mostly sit empty.
    """

    ALL = "all"
    ACTIVE = "active"
    QUEUED = "queued"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"

    def matches(self, status: JobStatus) -> bool:
        return status in _STATUSES[self]

    @property
    def label(self) -> str:
        translate = QCoreApplication.translate
        labels = {
            StatusFilter.ALL: translate("StatusFilter", "All"),
            StatusFilter.ACTIVE: translate("StatusFilter", "Active"),
            StatusFilter.QUEUED: translate("StatusFilter", "Queued"),
            StatusFilter.PAUSED: translate("StatusFilter", "Paused"),
            StatusFilter.COMPLETED: translate("StatusFilter", "Completed"),
            StatusFilter.FAILED: translate("StatusFilter", "Failed"),
        }
        return labels[self]


_STATUSES: dict[StatusFilter, frozenset[JobStatus]] = {
    StatusFilter.ALL: frozenset(JobStatus),
    StatusFilter.ACTIVE: frozenset((JobStatus.ACTIVE,)),
    StatusFilter.QUEUED: frozenset((JobStatus.QUEUED,)),
    StatusFilter.PAUSED: frozenset((JobStatus.PAUSED,)),
    StatusFilter.COMPLETED: frozenset((JobStatus.COMPLETED,)),
    StatusFilter.FAILED: frozenset((JobStatus.FAILED, JobStatus.CANCELED)),
}


def _filter_pattern(status_filter: StatusFilter, needle: str) -> QRegularExpression:
    """The expression over FilterKeyRole ("status\x1fname\x1fremote\x1ferror"); empty when nothing is filtered,
    so Qt accepts every row without asking the model."""
    if status_filter is StatusFilter.ALL and not needle:
        return QRegularExpression()
    statuses = "|".join(sorted(s.value for s in _STATUSES[status_filter]))
    text = QRegularExpression.escape(needle) if needle else ""
    dot_all = QRegularExpression.PatternOption.DotMatchesEverythingOption
    return QRegularExpression(f"^(?:{statuses})\x1f.*{text}", dot_all)


def count_by_filter(jobs: Iterable[Job]) -> dict[StatusFilter, int]:
    """How many jobs each sidebar entry would show."""
    # list.count compares by identity in C; hashing Enum members runs Enum.__hash__ in Python (3x slower).
    statuses = [job.status for job in jobs]
    by_status = {status: statuses.count(status) for status in JobStatus}
    total = len(statuses)
    counts = {f: sum(by_status[s] for s in _STATUSES[f]) for f in StatusFilter if f is not StatusFilter.ALL}
    counts[StatusFilter.ALL] = total
    return counts


class JobFilterProxy(QSortFilterProxyModel):
    """Status + case-insensitive text filter (name, remote, error) over a JobTableModel."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._status_filter = StatusFilter.ALL
        self._needle = ""
        self._model: JobTableModel | None = None
        # True while nothing is filtered: the proxy's own sort is off too, so its row n is the model's row n.
        self._passthrough = False
        self.setFilterRole(FilterKeyRole)
        self.setFilterKeyColumn(0)
        # Changed rows are re-filtered (a Python call each) only while a filter is set: with "All" and no text
        # every row passes anyway, and 10,000 rows changing ten times a second would cost ~20 ms a flush.
        self.setDynamicSortFilter(False)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY) -> Any:
        if self._passthrough:
            return self._model.cell(index.row(), index.column(), role)  # type: ignore[union-attr]
        return super().data(index, role)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if self._passthrough and index.isValid():
            return _CELL_FLAGS
        return super().flags(index)

    def setSourceModel(self, model: JobTableModel) -> None:  # type: ignore[override]
        if not isinstance(model, JobTableModel):
            raise TypeError("JobFilterProxy works on a JobTableModel")
        self._model = model
        super().setSourceModel(model)
        self._passthrough = not self._filtering

    @property
    def _filtering(self) -> bool:
        return self._status_filter is not StatusFilter.ALL or bool(self._needle)

    @property
    def status_filter(self) -> StatusFilter:
        return self._status_filter

    @property
    def text_filter(self) -> str:
        return self._needle

    def set_status_filter(self, status_filter: StatusFilter) -> None:
        if status_filter is not self._status_filter:
            self._change_filter(status_filter, self._needle)

    def set_text_filter(self, text: str) -> None:
        needle = text.strip().casefold()
        if needle != self._needle:
            self._change_filter(self._status_filter, needle)

    def _change_filter(self, status_filter: StatusFilter, needle: str) -> None:
        self._passthrough = False  # the rows are re-mapped (and views told) inside the next call
        self._status_filter, self._needle = status_filter, needle
        self.setFilterRegularExpression(_filter_pattern(status_filter, needle))
        filtering = self._filtering
        if filtering != self.dynamicSortFilter():
            self.setDynamicSortFilter(filtering)
        self._passthrough = self._model is not None and not filtering

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Forwarded to the model, which sorts with Python's ``sorted()`` on raw values (ints > 2**31 included).

        The proxy's own sort stays off (column -1), so it keeps the model's order and never calls a Python
        ``lessThan`` thousands of times.
        """
        if self._model is not None:
            self._model.sort(column, order)

    def job_at(self, proxy_row: int) -> Job:
        """The job shown in ``proxy_row``."""
        assert self._model is not None
        if self._passthrough:
            return self._model.job_at(proxy_row)
        return self._model.job_at(self.mapToSource(self.index(proxy_row, 0)).row())
