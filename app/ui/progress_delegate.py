"""The progress column: a progress bar painted by the current style, not a widget per row.

A QProgressBar per row would be 10,000 widgets; painting ``CE_ProgressBar`` with a QStyleOptionProgressBar
costs nothing for rows that are not visible and follows the platform's look (and light/dark palette).
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionProgressBar, QStyleOptionViewItem

from app.ui.job_table_model import ProgressRole

__all__ = ["ProgressDelegate"]

#: The bar's resolution: 0.1% steps, so the painted bar agrees with the "42.0%" text.
_MAXIMUM = 1000


class ProgressDelegate(QStyledItemDelegate):
    """Paints ``ProgressRole`` (0.0 .. 1.0) as a bar with the cell's display text ("42.0%") on it."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        widget = option.widget  # type: ignore[attr-defined]
        style = widget.style() if widget is not None else QApplication.style()
        # The item background first, so a selected row stays visibly selected behind the bar.
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, widget)
        value = index.data(ProgressRole)
        fraction = min(1.0, max(0.0, float(value))) if value is not None else 0.0
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 2, -2, -2)  # type: ignore[attr-defined]
        bar.state = option.state | QStyle.StateFlag.State_Horizontal  # type: ignore[attr-defined]
        bar.palette = option.palette  # type: ignore[attr-defined]
        bar.fontMetrics = option.fontMetrics  # type: ignore[attr-defined]
        bar.direction = option.direction  # type: ignore[attr-defined]
        bar.minimum = 0
        bar.maximum = _MAXIMUM
        bar.progress = round(fraction * _MAXIMUM)
        text = index.data(Qt.ItemDataRole.DisplayRole)
        bar.text = str(text) if text is not None else ""
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, widget)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(max(hint.width(), 120), hint.height())
