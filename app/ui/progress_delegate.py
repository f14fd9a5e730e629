"""The progress column: a bar painted with QPainter, not a widget per row and not the style's progress bar.

A QProgressBar per row would be 10,000 widgets. Painting the style's ``CE_ProgressBar`` per visible cell cost
100-180 µs a cell (Fusion's gradients and frame), a quarter of each repaint of the table, which happens ten
times a second while jobs run (tests/bench/ui_table.py). This delegate draws a rounded track, the filled part
and the centred text (0.1% steps, the text the model shows) in about a fifth of that:

- the track and the fill are antialiased rounded rectangles, rendered once per bar size and palette into two
  pixmaps; a cell blits the track and the filled part of the fill;
- the texts are shaped once (QStaticText: at most 1,001 percentages, plus "3.0 MiB" for jobs of unknown size)
  and drawn twice, clipped to the unfilled part in the Text colour and to the filled part in HighlightedText,
  so they stay readable where the fill passes under them.

Colours come from the palette (Base track, Mid outline, Highlight fill), so light and dark themes both work,
and disabled or inactive windows use their colour group as the style would.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette, QPixmap, QStaticText, QTransform
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.ui.job_table_model import ProgressRole

__all__ = ["ProgressDelegate"]

#: Space between the cell's edges and the bar's track.
MARGIN = 3
RADIUS = 3.0
#: Shaped texts kept; past this the cache starts over (only reached by many distinct "3.0 MiB"-style texts).
_TEXT_CACHE_SIZE = 2048
#: Bar pixmap pairs kept (one per column width, row height, palette and colour group in use).
_BAR_CACHE_SIZE = 32

# Plain ints and members looked up once: PySide's enums are Python enums, and attribute lookups and ``&`` on
# them cost microseconds each, which adds up over every visible cell ten times a second.
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_SELECTED = QStyle.StateFlag.State_Selected.value
_ENABLED = QStyle.StateFlag.State_Enabled.value
_ACTIVE = QStyle.StateFlag.State_Active.value
_RIGHT_TO_LEFT = Qt.LayoutDirection.RightToLeft
_PANEL = QStyle.PrimitiveElement.PE_PanelItemViewItem
_NORMAL, _INACTIVE, _DISABLED = QPalette.ColorGroup.Normal, QPalette.ColorGroup.Inactive, QPalette.ColorGroup.Disabled
_TEXT, _HIGHLIGHTED_TEXT = QPalette.ColorRole.Text, QPalette.ColorRole.HighlightedText


class ProgressDelegate(QStyledItemDelegate):
    """Paints ``ProgressRole`` (0.0 .. 1.0) as a bar with the cell's display text ("42.0%") on it."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._texts: dict[str, QStaticText] = {}
        self._font = QFont()
        self._bars: dict[tuple[int, int, int, QPalette.ColorGroup, float], tuple[QPixmap, QPixmap]] = {}

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        state: int = option.state.value  # type: ignore[attr-defined]
        if state & _SELECTED:
            # The style's selection look behind the bar (the view has already drawn the row's background).
            widget = option.widget  # type: ignore[attr-defined]
            style = widget.style() if widget is not None else QApplication.style()
            style.drawPrimitive(_PANEL, option, painter, widget)
        track: QRect = option.rect.adjusted(MARGIN, MARGIN, -MARGIN, -MARGIN)  # type: ignore[attr-defined]
        width, height = track.width(), track.height()
        if width <= 2 or height <= 2:
            return
        value = index.data(ProgressRole)
        fraction = min(1.0, max(0.0, float(value))) if value is not None else 0.0
        filled_width = round(fraction * width)
        left = track.left()
        right_to_left = option.direction == _RIGHT_TO_LEFT  # type: ignore[attr-defined]
        palette: QPalette = option.palette  # type: ignore[attr-defined]
        group = _DISABLED if not state & _ENABLED else _NORMAL if state & _ACTIVE else _INACTIVE
        ratio = painter.device().devicePixelRatioF()
        track_pixmap, fill_pixmap = self._bar_pixmaps(width, height, palette, group, ratio)

        painter.drawPixmap(track.topLeft(), track_pixmap)
        # The filled part starts at the leading edge: the left, or the right in a right-to-left layout.
        fill_x = width - filled_width if right_to_left else 0
        if filled_width > 0:
            painter.drawPixmap(QRectF(left + fill_x, track.top(), filled_width, height), fill_pixmap,
                               QRectF(fill_x * ratio, 0, filled_width * ratio, height * ratio))
        text = index.data(_DISPLAY)
        if not text:
            return
        font: QFont = option.font  # type: ignore[attr-defined]
        static = self._static_text(str(text), font)
        size = static.size()
        origin = QPointF(left + (width - size.width()) / 2, track.top() + (height - size.height()) / 2)
        unfilled_x = 0 if right_to_left else filled_width
        painter.save()
        painter.setFont(font)
        for x, part_width, role in ((unfilled_x, width - filled_width, _TEXT),
                                    (fill_x, filled_width, _HIGHLIGHTED_TEXT)):
            if part_width > 0:
                painter.setClipRect(QRect(left + x, track.top(), part_width, height))
                painter.setPen(palette.color(group, role))
                painter.drawStaticText(origin, static)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(max(hint.width(), 120), hint.height())

    def _bar_pixmaps(self, width: int, height: int, palette: QPalette, group: QPalette.ColorGroup,
                     ratio: float) -> tuple[QPixmap, QPixmap]:
        """The empty track and the full bar at this size, for this palette (cacheKey changes with the theme)."""
        key = (width, height, palette.cacheKey(), group, ratio)
        pixmaps = self._bars.get(key)
        if pixmaps is None:
            if len(self._bars) >= _BAR_CACHE_SIZE:
                self._bars.clear()
            track = _rounded(width, height, ratio, palette.color(group, QPalette.ColorRole.Mid),
                             palette.color(group, QPalette.ColorRole.Base), inset=0.5)
            # Inside the outline, so the outline stays visible around a full bar.
            fill = _rounded(width, height, ratio, None, palette.color(group, QPalette.ColorRole.Highlight), inset=1.0)
            pixmaps = self._bars[key] = (track, fill)
        return pixmaps

    def _static_text(self, text: str, font: QFont) -> QStaticText:
        if font != self._font:  # laid out for another font (the view's font changed): start over
            self._texts.clear()
            self._font = QFont(font)
        static = self._texts.get(text)
        if static is None:
            if len(self._texts) >= _TEXT_CACHE_SIZE:
                self._texts.clear()
            static = QStaticText(text)
            static.setTextFormat(Qt.TextFormat.PlainText)
            static.prepare(QTransform(), font)
            self._texts[text] = static
        return static


def _rounded(width: int, height: int, ratio: float, outline: QColor | None, fill: QColor, *,
             inset: float) -> QPixmap:
    """An antialiased rounded rectangle, ``inset`` logical pixels inside a transparent width x height pixmap."""
    pixmap = QPixmap(round(width * ratio), round(height * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    if outline is None:
        painter.setPen(Qt.PenStyle.NoPen)
    else:
        painter.setPen(outline)
    painter.setBrush(fill)
    painter.drawRoundedRect(QRectF(inset, inset, width - 2 * inset, height - 2 * inset), RADIUS - inset + 0.5,
                            RADIUS - inset + 0.5)
    painter.end()
    return pixmap
