"""The sidebar: All / Active / Queued / Paused / Completed / Failed, each with a live count ("Active (3)").

Counts are recomputed from the model's jobs when the model says it flushed (at most ~10 times a second),
not on every manager call: counting 10,000 jobs is about a millisecond.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QAbstractItemView, QApplication, QListWidget, QListWidgetItem, QStyle, QWidget

from app.ui.job_filter_proxy import StatusFilter, count_by_filter
from app.ui.job_table_model import JobTableModel

__all__ = ["StatusSidebar"]

_FILTER_ROLE = int(Qt.ItemDataRole.UserRole) + 1

# Theme icon name and the style's fallback for each entry (resources/ has only the app icon).
_ICONS: dict[StatusFilter, tuple[str, QStyle.StandardPixmap]] = {
    StatusFilter.ALL: ("view-list-details", QStyle.StandardPixmap.SP_FileDialogDetailedView),
    StatusFilter.ACTIVE: ("media-playback-start", QStyle.StandardPixmap.SP_MediaPlay),
    StatusFilter.QUEUED: ("view-history", QStyle.StandardPixmap.SP_BrowserReload),
    StatusFilter.PAUSED: ("media-playback-pause", QStyle.StandardPixmap.SP_MediaPause),
    StatusFilter.COMPLETED: ("emblem-default", QStyle.StandardPixmap.SP_DialogApplyButton),
    StatusFilter.FAILED: ("dialog-error", QStyle.StandardPixmap.SP_MessageBoxCritical),
}


class StatusSidebar(QListWidget):
    """Selecting an entry emits ``filter_changed(StatusFilter)``."""

    filter_changed = Signal(object)

    def __init__(self, model: JobTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = model
        self._counts: dict[StatusFilter, int] = dict.fromkeys(StatusFilter, 0)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAccessibleName(self.tr("Transfer status filter"))
        style = QApplication.style()
        for status_filter in StatusFilter:
            theme, fallback = _ICONS[status_filter]
            item = QListWidgetItem(QIcon.fromTheme(theme, style.standardIcon(fallback)), "")
            item.setData(_FILTER_ROLE, status_filter)
            self.addItem(item)
        self.setCurrentRow(0)
        self.currentItemChanged.connect(self._on_current_changed)
        model.updated.connect(self.refresh_counts)
        model.modelReset.connect(self.refresh_counts)
        self.refresh_counts()

    @property
    def counts(self) -> dict[StatusFilter, int]:
        return dict(self._counts)

    @property
    def current_filter(self) -> StatusFilter:
        item = self.currentItem()
        return item.data(_FILTER_ROLE) if item is not None else StatusFilter.ALL

    def set_current_filter(self, status_filter: StatusFilter) -> None:
        self.setCurrentRow(list(StatusFilter).index(status_filter))

    def item_text(self, status_filter: StatusFilter) -> str:
        return self.item(list(StatusFilter).index(status_filter)).text()

    def refresh_counts(self) -> None:
        counts = count_by_filter(self._model.jobs)
        if counts == self._counts and self.item(0).text():
            return
        self._counts = counts
        for row, status_filter in enumerate(StatusFilter):
            text = self.tr("{label} ({count})").format(label=status_filter.label, count=counts[status_filter])
            item = self.item(row)
            if item.text() != text:
                item.setText(text)

    def _on_current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if current is not None:
            self.filter_changed.emit(current.data(_FILTER_ROLE))
