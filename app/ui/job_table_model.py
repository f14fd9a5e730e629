"""The transfer table's model: one row per job, fed by the manager as a ManagerListener.

Built for 10,000 rows that all change ten times a second (qBittorrent's transfer list is the pattern;
tests/bench/ui_table.py measures it):

- ``jobs_changed`` only records job ids; a single-shot QTimer flushes them at most every
  ``FLUSH_INTERVAL_MS``, however often the manager calls, so repaints stay at about 10 per second. The
  first change after a quiet spell waits ``FLUSH_DELAY_MS``: the manager reports in batches every 100 ms,
  and a flush timed 100 ms after a batch landed just as the next batch was handled, so the batch, the flush
  and the repaint it causes blocked the event loop in one stretch. Half a period after the batch they are
  two shorter stretches.
- A flush emits one ``dataChanged`` per contiguous run of changed rows, or a single whole-table
  ``dataChanged`` when more than half the rows changed (one signal instead of thousands). When every row
  changed it needs no row numbers at all.
- Sorting happens here, with Python's ``sorted()`` over cached raw keys (ints beyond 2**31, floats,
  natural-order names), not in ``QSortFilterProxyModel.lessThan``: a Python ``lessThan`` is called from C++
  about 130,000 times to sort 10,000 rows and measured 1.2 s per sort here (the C++ default calling a
  Python ``data()`` measured 2.1 s), against a few milliseconds for ``sorted()``. The proxy forwards
  ``sort()`` to this model (see job_filter_proxy). Ties keep their current order, so equal rows never
  jump around.
- When values change under a sorted column (speed, progress), rows move at most once every
  ``RESORT_INTERVAL_MS``: a row that jumps ten times a second cannot be read or clicked. Each move is a
  layout change whose cost is mostly Qt's (the views repaint and re-map their selection: measured ~0.4 s
  for 10,000 rows all selected, ~15 ms with none), so the interval also grows to ``RESORT_COST_FACTOR``
  times what the last move cost, repaint included; moving rows then never takes more than about a tenth
  of the GUI thread. A header click or new rows sort at once.
- A sorted table's flushes stay cheap (10,000 rows sorted by speed, all changing: ~2 ms a flush, where
  re-checking every key in a Python loop took ~20 ms): changed keys mark the order stale only when they
  leave it (one pass in C), flushes skip the keys while the order is already stale (they are recomputed for
  the move), and the job id -> row index is rebuilt only when something asks for a row. A move is split in
  two: when it falls due, the resort timer works out the new order in an event-loop turn of its own, and
  the next flush only applies it, so the flush and the repaint after it are not made longer by the sort.
"""
from __future__ import annotations

import functools
import math
import operator
import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QCoreApplication,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle

from app.manager.jobs import Direction, Job, JobStatus
from app.ui import formatting

__all__ = [
    "FLUSH_DELAY_MS",
    "FLUSH_INTERVAL_MS",
    "RESORT_COST_FACTOR",
    "RESORT_INTERVAL_MS",
    "Column",
    "FilterKeyRole",
    "JobRole",
    "JobTableModel",
    "ProgressRole",
    "SortRole",
    "natural_key",
]

#: Raw, comparable Python value of a cell (int byte counts, float speeds, natural-order name keys).
SortRole = int(Qt.ItemDataRole.UserRole) + 1
#: The Job object of the row (read it, never modify it: the manager owns it).
JobRole = int(Qt.ItemDataRole.UserRole) + 2
#: Progress as a float 0.0 .. 1.0, for the progress bar delegate.
ProgressRole = int(Qt.ItemDataRole.UserRole) + 3
#: "status\x1fname\x1fremote\x1ferror", casefolded: what the filter proxy's regular expression matches.
FilterKeyRole = int(Qt.ItemDataRole.UserRole) + 4

#: Pending changes are flushed at most this often (about ten repaints a second).
FLUSH_INTERVAL_MS = 100
#: ... and never sooner than this after the first change since the last flush (see the module docstring).
FLUSH_DELAY_MS = 50
#: Rows re-order for changed values at most this often (see the module docstring).
RESORT_INTERVAL_MS = 1000
#: ... or this many times the last move's measured cost, whichever is longer.
RESORT_COST_FACTOR = 10

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


class Column(IntEnum):
    NAME = 0
    DIRECTION = 1
    REMOTE = 2
    SIZE = 3
    PROGRESS = 4
    SPEED = 5
    ETA = 6
    STATUS = 7
    ERROR = 8


# Sorting by status groups jobs by what the user can do with them: running first, finished last.
_STATUS_ORDER = {status: i for i, status in enumerate((
    JobStatus.ACTIVE, JobStatus.QUEUED, JobStatus.PAUSED, JobStatus.FAILED, JobStatus.CANCELED,
    JobStatus.COMPLETED))}

_DIGITS = re.compile(r"(\d+)")


@functools.lru_cache(maxsize=65536)  # names rarely change, and a flush asks for every changed row's key
def natural_key(text: str) -> tuple[str | int, ...]:
    """``file2`` before ``file10``, case-insensitive (as file managers and qBittorrent sort names).

    ``re.split`` with a capturing group alternates text and digits, starting with text, so two keys always
    compare str with str and int with int at the same position.
    """
    parts: list[str | int] = _DIGITS.split(text.casefold())
    for i in range(1, len(parts), 2):
        parts[i] = int(parts[i])  # type: ignore[arg-type]
    return tuple(parts)


# Looking up an Enum member on its class costs about 0.2 µs in Python 3.11; a sort key runs for every row.
_ACTIVE = JobStatus.ACTIVE


def _speed(job: Job) -> float:
    return job.speed if job.status is _ACTIVE else 0.0


def _eta(job: Job) -> float:
    if job.status is not _ACTIVE or job.eta is None:
        return math.inf
    return job.eta


# Raw sort value per column; they match what the cells show (no speed or ETA for a job that is not running).
_SORT_KEYS: dict[Column, Callable[[Job], Any]] = {
    Column.NAME: lambda job: natural_key(job.name),
    Column.DIRECTION: lambda job: job.direction.value,
    Column.REMOTE: lambda job: job.remote.casefold(),
    Column.SIZE: lambda job: job.total_bytes,
    Column.PROGRESS: lambda job: job.progress,
    Column.SPEED: _speed,
    Column.ETA: _eta,
    Column.STATUS: lambda job: _STATUS_ORDER[job.status],
    Column.ERROR: lambda job: (job.error or "").casefold(),
}

_DISPLAY_TEXT: dict[Column, Callable[[Job], str]] = {
    Column.NAME: lambda job: job.name,
    Column.DIRECTION: lambda job: formatting.direction_label(job.direction),
    Column.REMOTE: lambda job: job.remote,
    Column.SIZE: formatting.job_size_text,
    Column.PROGRESS: formatting.job_progress_text,
    Column.SPEED: formatting.job_speed_text,
    Column.ETA: formatting.job_eta_text,
    Column.STATUS: lambda job: formatting.status_label(job.status),
    Column.ERROR: lambda job: job.error or "",
}

_RIGHT_ALIGNED = frozenset((Column.SIZE, Column.SPEED, Column.ETA))
_COLUMNS = tuple(Column)
_ROLES = frozenset((_DISPLAY, SortRole, JobRole, ProgressRole, FilterKeyRole, _ALIGNMENT, _TOOLTIP, _DECORATION))
_ID = operator.attrgetter("id")


def _in_order(keys: list[Any], descending: bool) -> bool:
    """Whether a stable sort would leave ``keys`` as they are; one pass in C that stops at the first pair out
    of order."""
    return all(map(operator.ge if descending else operator.le, keys, keys[1:]))


def _runs(rows: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted rows as (first, last) runs of consecutive numbers: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][1] == row - 1:
            runs[-1] = (runs[-1][0], row)
        else:
            runs.append((row, row))
    return runs


class JobTableModel(QAbstractTableModel):
    """Jobs as rows; the manager's ManagerListener (jobs_added/jobs_changed/jobs_removed/job_finished).

    All calls come on the GUI thread (the manager runs on qasync's loop), so there are no locks.
    """

    #: Emitted after a flush that added, removed or changed rows (at most ~10 times a second): sidebar
    #: counts, action enablement and the status bar refresh on it instead of on every manager call.
    updated = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._rows: dict[str, int] | None = {}  # job id -> row; None after a move, rebuilt when asked for
        self._seq: dict[str, int] = {}  # arrival order: the "unsorted" order, oldest first as the manager lists
        self._next_seq = 0
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._key: Callable[[Job], Any] = self._arrival_key
        self._keys: list[Any] = []  # the sort key of each row, parallel to _jobs
        self._keys_current = True  # False: rows changed while the order was stale; recompute before use
        self._prepared: list[int] | None = None  # the next move's order, worked out when it fell due
        self._pending: set[str] = set()
        self._needs_sort = False  # rows were added (or reset) while sorted: sort at the next flush
        self._stale_order = False  # keys changed but the rows wait for _resort_due to move
        self._resort_due = 0.0  # time.monotonic() before which value changes do not move rows
        self._structure_changed = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)
        self._last_flush = 0.0  # time.monotonic() of the last flush
        self._resort_timer = QTimer(self)  # fires when stale rows may move: works out their order
        self._resort_timer.setSingleShot(True)
        self._resort_timer.timeout.connect(self._prepare_move)
        # A zero timer fires once the event loop has processed what the move posted (repaints included).
        self._cost_timer = QTimer(self)
        self._cost_timer.setSingleShot(True)
        self._cost_timer.setInterval(0)
        self._cost_timer.timeout.connect(self._measure_resort)
        self._resort_started = 0.0
        self._direction_icons: dict[Direction, QIcon] = {}

    # ---- reading ----------------------------------------------------------------------------------------

    @property
    def jobs(self) -> Sequence[Job]:
        """The rows' jobs in row order (a live view: do not keep it across calls)."""
        return self._jobs

    def job_at(self, row: int) -> Job:
        return self._jobs[row]

    def row_of(self, job_id: str) -> int | None:
        return self._row_index().get(job_id)

    @property
    def sort_column(self) -> int:
        return self._sort_column

    @property
    def sort_order(self) -> Qt.SortOrder:
        return self._sort_order

    # ---- ManagerListener --------------------------------------------------------------------------------

    def set_jobs(self, jobs: Iterable[Job]) -> None:
        """Replace every row (the manager's jobs when the window opens)."""
        self.beginResetModel()
        self._jobs = []
        self._rows = {}
        self._seq = {}
        self._keys = []
        self._keys_current = True
        self._prepared = None
        self._pending.clear()
        self._append(jobs)
        if self._sort_column >= 0:  # inside the reset: no layout change to announce
            order = sorted(range(len(self._keys)), key=self._keys.__getitem__,
                           reverse=self._sort_order == Qt.SortOrder.DescendingOrder)
            self._jobs = list(map(self._jobs.__getitem__, order))
            self._keys = list(map(self._keys.__getitem__, order))
            self._reindex(0)
        self.endResetModel()
        self._structure_changed = True
        self._schedule()

    def jobs_added(self, jobs: Sequence[Job]) -> None:
        new: list[Job] = []
        seen: set[str] = set()
        for job in jobs:
            if job.id not in self._seq and job.id not in seen:
                seen.add(job.id)
                new.append(job)
        if not new:
            return
        first = len(self._jobs)
        self._prepared = None
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        self._append(new)
        self.endInsertRows()
        # New rows arrive at the end; if the table is sorted, the next flush moves them into place.
        self._needs_sort = self._needs_sort or self._sort_column >= 0
        self._structure_changed = True
        self._schedule()

    def jobs_changed(self, jobs: Sequence[Job]) -> None:
        self._pending.update(map(_ID, jobs))
        self._schedule()

    def jobs_removed(self, job_ids: Sequence[str]) -> None:
        index = self._row_index()
        rows = sorted({index[i] for i in job_ids if i in index}, reverse=True)
        if not rows:
            return
        # Descending runs: removing a higher run never shifts the rows of a lower one, so the precomputed
        # row numbers stay valid, and views get one signal per run instead of one per row.
        runs: list[tuple[int, int]] = []
        for row in rows:
            if runs and runs[-1][0] == row + 1:
                runs[-1] = (row, runs[-1][1])
            else:
                runs.append((row, row))
        self._prepared = None
        for first, last in runs:
            self.beginRemoveRows(QModelIndex(), first, last)
            for job in self._jobs[first:last + 1]:
                del index[job.id]
                self._seq.pop(job.id, None)
                self._pending.discard(job.id)
            del self._jobs[first:last + 1]
            del self._keys[first:last + 1]
            self.endRemoveRows()
        self._reindex(runs[-1][0])
        self._structure_changed = True
        self._schedule()

    def job_finished(self, job: Job) -> None:
        self.jobs_changed((job,))

    # ---- Qt model ---------------------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._jobs)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(_COLUMNS)

    # No flags() override: QAbstractTableModel's C++ default (enabled, selectable, never has children) is what
    # the table needs, and the selection model asks for flags once per selected cell (90,000 Python calls for
    # 10,000 selected rows when the order changes).

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY) -> Any:
        return self.cell(index.row(), index.column(), role)  # an invalid index has row -1

    def cell(self, row: int, column_number: int, role: int = _DISPLAY) -> Any:
        """``data()`` by row and column numbers: what the filter proxy reads when its rows are these rows."""
        # Painting a cell asks for seven roles; font, colours and check state (none of ours) return here.
        if role not in _ROLES or not 0 <= row < len(self._jobs):
            return None
        job = self._jobs[row]
        column = _COLUMNS[column_number]
        if role == _DISPLAY:
            return _DISPLAY_TEXT[column](job)
        if role == SortRole:
            return _SORT_KEYS[column](job)
        if role == JobRole:
            return job
        if role == ProgressRole:
            return job.progress
        if role == FilterKeyRole:
            return "\x1f".join((job.status.value, job.name, job.remote, job.error or "")).casefold()
        if role == _ALIGNMENT:
            return _RIGHT if column in _RIGHT_ALIGNED else None
        if role == _TOOLTIP:
            return self._tooltip(job, column)
        if role == _DECORATION and column is Column.DIRECTION:
            return self._direction_icon(job.direction)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation != Qt.Orientation.Horizontal or role != _DISPLAY or not 0 <= section < len(_COLUMNS):
            return None
        return column_title(_COLUMNS[section])

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the rows by ``column``'s raw value; -1 restores arrival order (oldest first)."""
        column = column if 0 <= column < len(_COLUMNS) else -1
        self._sort_column = column
        self._sort_order = order
        self._key = _SORT_KEYS[_COLUMNS[column]] if column >= 0 else self._arrival_key
        self._keys = list(map(self._key, self._jobs))
        self._keys_current = True
        self._prepared = None
        self._apply_sort()

    # ---- flushing ---------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Publish pending changes now (the timer calls this; tests and shutdown may too)."""
        self._timer.stop()
        now = self._last_flush = time.monotonic()
        resort_now = self._stale_order and now >= self._resort_due
        # Rows changed between a move's preparation and the move: their keys are checked once more.
        recheck = self._sort_column >= 0 and not self._keys_current and not self._stale_order
        if not (self._pending or self._needs_sort or self._structure_changed or resort_now or recheck):
            if self._stale_order:  # a coarse timer may fire a little early
                self._start_resort_timer(now)
            return
        pending, self._pending = self._pending, set()
        # None: every row changed (the usual flush while many jobs run), which needs no row numbers at all.
        changed = None if self._seq.keys() <= pending else self._rows_of(pending)
        if self._sort_column >= 0 and (changed != [] or recheck):
            if self._stale_order:  # the keys are recomputed when the rows move; nothing to learn before
                self._keys_current = False
            else:
                self._update_keys(changed)
        if self._needs_sort or (self._stale_order and now >= self._resort_due):
            if self._apply_sort():
                self._resort_started = now
                self._resort_due = now + RESORT_INTERVAL_MS / 1000
                self._cost_timer.start()
                if changed is not None:  # they moved
                    changed = self._rows_of(pending)
            if not self._keys_current:  # moved in a prepared order while rows changed: check them next
                self._schedule()
        elif self._stale_order and not self._resort_timer.isActive():
            self._start_resort_timer(now)
        self._emit_changed(changed)
        self._structure_changed = False
        self.updated.emit()

    def _update_keys(self, changed: list[int] | None) -> None:
        """Bring the changed rows' sort keys up to date (None: all rows), and mark the order stale only if
        they left it.

        Once the order is stale, flushes skip this (the keys are recomputed for the move, and after it when rows
        changed meanwhile), so a column whose values keep changing costs two passes over the rows per move, not
        one per flush. When most rows changed, one ``map`` over all rows and a list comparison, both in C,
        replace a Python loop. Whether the order still holds costs one pass that stops at the first pair out of
        order: values that change without changing the order (sizes while bytes move, names) never re-order
        anything.
        """
        key, keys, jobs = self._key, self._keys, self._jobs
        if changed is None or 2 * len(changed) > len(jobs) or not self._keys_current:
            new_keys = list(map(key, jobs))
            self._keys_current = True
            if new_keys == keys:
                return
            self._keys = keys = new_keys
        else:
            moved = False
            for row in changed:
                new_key = key(jobs[row])
                if new_key != keys[row]:
                    keys[row] = new_key
                    moved = True
            if not moved:
                return
        if not self._stale_order and not _in_order(keys, self._sort_order == Qt.SortOrder.DescendingOrder):
            self._stale_order = True

    def _measure_resort(self) -> None:
        cost = time.monotonic() - self._resort_started
        self._resort_due = max(self._resort_due, self._resort_started + RESORT_COST_FACTOR * cost)
        if self._resort_timer.isActive():
            self._start_resort_timer(time.monotonic())

    def _start_resort_timer(self, now: float) -> None:
        self._resort_timer.start(max(1, math.ceil((self._resort_due - now) * 1000)))

    def _schedule(self) -> None:
        if not self._timer.isActive():
            since_flush_ms = (time.monotonic() - self._last_flush) * 1000
            self._timer.start(max(FLUSH_DELAY_MS, math.ceil(FLUSH_INTERVAL_MS - since_flush_ms)))

    def _rows_of(self, job_ids: Collection[str]) -> list[int]:
        if not job_ids:  # a flush for added rows or a re-check: no need to rebuild the row index
            return []
        return [row for row in map(self._row_index().get, job_ids) if row is not None]

    def _row_index(self) -> dict[str, int]:
        """Job id -> row. A move only drops it: the flushes of a table whose rows all change never need it, and
        rebuilding it took as long as the move itself (~5 ms for 10,000 rows)."""
        rows = self._rows
        if rows is None:
            jobs = self._jobs
            rows = self._rows = dict(zip(map(_ID, jobs), range(len(jobs)), strict=True))
        return rows

    def _emit_changed(self, rows: list[int] | None) -> None:
        """One dataChanged per run of changed rows, or one for the whole table (``rows`` None, or most rows)."""
        count = len(self._jobs)
        if rows == [] or count == 0:
            return
        last_column = len(_COLUMNS) - 1
        if rows is None or 2 * len(rows) > count:
            self.dataChanged.emit(self.index(0, 0), self.index(count - 1, last_column), [])
            return
        for first, last in _runs(sorted(rows)):
            self.dataChanged.emit(self.index(first, 0), self.index(last, last_column), [])

    def _prepare_move(self) -> None:
        """The resort timer: stale rows may move now. Work out their order here, in an event-loop turn of its
        own, and let the next flush move them: the keys and the sort (half of a move's cost) then do not add to
        the flush and the repaint that follows it. The order follows the values of this moment; rows that change
        before the flush are checked again by a flush after the move."""
        if not self._stale_order:
            return
        now = time.monotonic()
        if now < self._resort_due:  # a coarse timer may fire a little early, or the last move cost more
            self._start_resort_timer(now)
            return
        self._prepared = self._sorted_order()
        self._schedule()

    def _sorted_order(self) -> list[int]:
        """Row numbers in the order the keys sort them (recomputed first if rows changed while stale)."""
        if not self._keys_current:
            self._keys = list(map(self._key, self._jobs))
            self._keys_current = True
        keys = self._keys
        return sorted(range(len(keys)), key=keys.__getitem__,
                      reverse=self._sort_order == Qt.SortOrder.DescendingOrder)

    def _apply_sort(self) -> bool:
        """Reorder rows by the cached keys (or the order prepared for them); return whether anything moved."""
        self._needs_sort = False
        self._stale_order = False
        self._resort_timer.stop()
        jobs, keys = self._jobs, self._keys
        order, self._prepared = self._prepared, None
        if order is None:
            order = self._sorted_order()
            keys = self._keys
        if order == list(range(len(order))):
            return False
        self.layoutAboutToBeChanged.emit()
        self._jobs = list(map(jobs.__getitem__, order))
        self._keys = list(map(keys.__getitem__, order))
        self._rows = None
        persistent = self.persistentIndexList()
        if persistent:  # the selection and current row (through the proxy): each follows its job
            new_row = [0] * len(order)
            for new, old in enumerate(order):
                new_row[old] = new
            self.changePersistentIndexList(
                persistent, [self.createIndex(new_row[index.row()], index.column()) for index in persistent])
        self.layoutChanged.emit()
        return True

    # ---- helpers ----------------------------------------------------------------------------------------

    def _append(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            if job.id in self._seq:
                continue
            if self._rows is not None:
                self._rows[job.id] = len(self._jobs)
            self._seq[job.id] = self._next_seq
            self._next_seq += 1
            self._jobs.append(job)
            self._keys.append(self._key(job))

    def _reindex(self, start: int) -> None:
        jobs, rows = self._jobs, self._rows
        if rows is not None:
            rows.update(zip(map(_ID, jobs[start:]), range(start, len(jobs)), strict=True))

    def _arrival_key(self, job: Job) -> int:
        return self._seq[job.id]

    def _tooltip(self, job: Job, column: Column) -> str | None:
        if column is Column.NAME:
            return job.local_path
        if column is Column.REMOTE:
            if job.account:
                return QCoreApplication.translate("JobTableModel", "{remote}\nAccount: {account}").format(
                    remote=job.remote, account=job.account)
            return job.remote
        if column in (Column.ERROR, Column.STATUS) and job.error:
            return job.error
        return None

    def _direction_icon(self, direction: Direction) -> QIcon:
        icon = self._direction_icons.get(direction)
        if icon is None:
            style = QApplication.style()
            if direction is Direction.UPLOAD:
                icon = QIcon.fromTheme("go-up", style.standardIcon(QStyle.StandardPixmap.SP_ArrowUp))
            else:
                icon = QIcon.fromTheme("go-down", style.standardIcon(QStyle.StandardPixmap.SP_ArrowDown))
            self._direction_icons[direction] = icon
        return icon


def column_title(column: Column) -> str:
    translate = QCoreApplication.translate
    titles = {
        Column.NAME: translate("JobTableModel", "Name"),
        Column.DIRECTION: translate("JobTableModel", "Direction"),
        Column.REMOTE: translate("JobTableModel", "Remote"),
        Column.SIZE: translate("JobTableModel", "Size"),
        Column.PROGRESS: translate("JobTableModel", "Progress"),
        Column.SPEED: translate("JobTableModel", "Speed"),
        Column.ETA: translate("JobTableModel", "ETA"),
        Column.STATUS: translate("JobTableModel", "Status"),
        Column.ERROR: translate("JobTableModel", "Error"),
    }
    return titles[column]
