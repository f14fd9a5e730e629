"""ProgressDelegate: the bar painted with QPainter shows the job's fraction in the palette's colours.

The delegate is rendered into a QImage with a palette of unmistakable colours, and the pixels are read back.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QStyle, QStyleOptionViewItem, QTableView

from app.manager.jobs import JobStatus
from app.ui.job_table_model import Column, JobTableModel
from app.ui.progress_delegate import MARGIN, ProgressDelegate
from tests.ui.fake_manager import FakeManager

pytestmark = pytest.mark.timeout(30)

WIDTH, HEIGHT = 200, 40
#: Row of pixels inside the track, above the text (the text is centred vertically in a 40 px bar).
ABOVE_TEXT = MARGIN + 5
UNTOUCHED = QColor("#00ff00")  # the image's background: the delegate never paints this colour
BASE, MID, HIGHLIGHT = QColor("#ffffff"), QColor("#808080"), QColor("#0000ff")
TEXT, HIGHLIGHTED_TEXT = QColor("#000000"), QColor("#ffff00")
INACTIVE_HIGHLIGHT, DISABLED_HIGHLIGHT = QColor("#ff0000"), QColor("#ff00ff")
ENABLED_ACTIVE = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Active


def palette() -> QPalette:
    result = QPalette()
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive, QPalette.ColorGroup.Disabled):
        for role, color in ((QPalette.ColorRole.Base, BASE), (QPalette.ColorRole.Mid, MID),
                            (QPalette.ColorRole.Highlight, HIGHLIGHT), (QPalette.ColorRole.Text, TEXT),
                            (QPalette.ColorRole.HighlightedText, HIGHLIGHTED_TEXT)):
            result.setColor(group, role, color)
    result.setColor(QPalette.ColorGroup.Inactive, QPalette.ColorRole.Highlight, INACTIVE_HIGHLIGHT)
    result.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Highlight, DISABLED_HIGHLIGHT)
    return result


def render(delegate: ProgressDelegate, model: JobTableModel, row: int, *,
           state: QStyle.StateFlag = ENABLED_ACTIVE, colors: QPalette | None = None,
           direction: Qt.LayoutDirection = Qt.LayoutDirection.LeftToRight, font: QFont | None = None) -> QImage:
    image = QImage(WIDTH, HEIGHT, QImage.Format.Format_ARGB32)
    image.fill(UNTOUCHED)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, WIDTH, HEIGHT)
    option.state = state
    option.palette = colors or palette()
    option.font = font or QApplication.font()
    option.direction = direction
    painter = QPainter(image)
    delegate.paint(painter, option, model.index(row, Column.PROGRESS))
    painter.end()
    return image


def pixel(image: QImage, x: int, y: int) -> QColor:
    return QColor(image.pixel(x, y))


def run_of(image: QImage, color: QColor, y: int = ABOVE_TEXT) -> list[int]:
    """The x positions on row ``y`` painted exactly ``color``."""
    return [x for x in range(WIDTH) if pixel(image, x, y) == color]


def near(a: QColor, b: QColor, tolerance: int = 40) -> bool:
    return max(abs(a.red() - b.red()), abs(a.green() - b.green()), abs(a.blue() - b.blue())) <= tolerance


def text_pixels(image: QImage, color: QColor, xs: range) -> int:
    return sum(near(pixel(image, x, y), color) for x in xs for y in range(MARGIN + 8, HEIGHT - MARGIN - 8))


TRACK = range(MARGIN, WIDTH - MARGIN)  # the track's x positions


@pytest.mark.parametrize("done", [0, 25, 50, 75, 100])
def test_the_filled_part_is_the_jobs_fraction(qtbot, model: JobTableModel, manager: FakeManager, done: int) -> None:
    manager.make_job("f", status=JobStatus.ACTIVE, total=100, done=done)
    image = render(ProgressDelegate(), model, 0)
    filled = run_of(image, HIGHLIGHT)
    expected = done / 100 * len(TRACK)
    assert abs(len(filled) - expected) <= 3, (len(filled), expected)  # the fill starts inside the outline
    if filled:  # one run from the track's left edge
        assert filled[0] <= MARGIN + 2 and filled == list(range(filled[0], filled[-1] + 1))
    assert abs(len(run_of(image, BASE)) - (len(TRACK) - expected)) <= 3  # the rest is the empty track
    assert pixel(image, 0, HEIGHT // 2) == UNTOUCHED  # the margin is left to the view's row background
    assert near(pixel(image, WIDTH // 2, MARGIN), MID)  # the track's outline


def test_the_text_is_centred_and_readable_on_both_parts(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    manager.make_job("half", status=JobStatus.ACTIVE, total=1000, done=500)
    assert model.index(0, Column.PROGRESS).data() == "50.0%"
    image = render(ProgressDelegate(), model, 0)
    middle = WIDTH // 2
    # The boundary runs through the middle of "50.0%": light text over the fill, dark text over the track.
    assert text_pixels(image, HIGHLIGHTED_TEXT, range(middle - 30, middle - 1)) > 5
    assert text_pixels(image, TEXT, range(middle + 1, middle + 30)) > 5
    assert text_pixels(image, TEXT, range(middle - 30, middle - 1)) == 0
    assert text_pixels(image, HIGHLIGHTED_TEXT, range(middle + 1, middle + 30)) == 0
    # Nothing is written near the ends of the bar.
    assert text_pixels(image, TEXT, range(WIDTH - 40, WIDTH - MARGIN - 2)) == 0


def test_a_larger_font_draws_larger_text(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    manager.make_job("empty", status=JobStatus.ACTIVE, total=100, done=0)
    delegate = ProgressDelegate()  # one delegate: its cache of shaped texts must follow the font

    def text_height(point_size: int) -> int:
        font = QFont(QApplication.font())
        font.setPointSize(point_size)
        image = render(delegate, model, 0, font=font)
        return sum(any(near(pixel(image, x, y), TEXT) for x in range(MARGIN + 2, WIDTH - MARGIN - 2))
                   for y in range(MARGIN + 2, HEIGHT - MARGIN - 2))

    small, large = text_height(7), text_height(14)
    assert 0 < small < large


def test_right_to_left_fills_from_the_right(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    manager.make_job("quarter", status=JobStatus.ACTIVE, total=100, done=25)
    filled = run_of(render(ProgressDelegate(), model, 0, direction=Qt.LayoutDirection.RightToLeft), HIGHLIGHT)
    assert abs(len(filled) - len(TRACK) / 4) <= 2
    assert filled[-1] >= WIDTH - MARGIN - 2


@pytest.mark.parametrize(("state", "fill"), [
    (ENABLED_ACTIVE, HIGHLIGHT),
    (QStyle.StateFlag.State_Enabled, INACTIVE_HIGHLIGHT),  # the window does not have focus
    (QStyle.StateFlag.State_Active, DISABLED_HIGHLIGHT),
])
def test_colour_group_follows_the_state(qtbot, model: JobTableModel, manager: FakeManager,
                                        state: QStyle.StateFlag, fill: QColor) -> None:
    manager.make_job("half", status=JobStatus.ACTIVE, total=100, done=50)
    delegate = ProgressDelegate()
    render(delegate, model, 0)  # cached bar pixmaps of another colour group must not leak into the next
    assert pixel(render(delegate, model, 0, state=state), MARGIN + 10, ABOVE_TEXT) == fill


def test_a_new_palette_repaints_in_its_colours(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    manager.make_job("half", status=JobStatus.ACTIVE, total=100, done=50)
    delegate = ProgressDelegate()
    assert pixel(render(delegate, model, 0), MARGIN + 10, ABOVE_TEXT) == HIGHLIGHT
    dark = palette()
    dark.setColor(QPalette.ColorGroup.Active, QPalette.ColorRole.Highlight, QColor("#00ffff"))
    dark.setColor(QPalette.ColorGroup.Active, QPalette.ColorRole.Base, QColor("#202020"))
    image = render(delegate, model, 0, colors=dark)
    assert pixel(image, MARGIN + 10, ABOVE_TEXT) == QColor("#00ffff")
    assert pixel(image, WIDTH - MARGIN - 10, ABOVE_TEXT) == QColor("#202020")


def test_a_selected_cell_keeps_the_selection_behind_the_bar(qtbot, model: JobTableModel,
                                                            manager: FakeManager) -> None:
    manager.make_job("half", status=JobStatus.ACTIVE, total=100, done=50)
    image = render(ProgressDelegate(), model, 0, state=ENABLED_ACTIVE | QStyle.StateFlag.State_Selected)
    assert pixel(image, 1, HEIGHT // 2) == HIGHLIGHT  # the margin around the track
    assert pixel(image, WIDTH - MARGIN - 10, ABOVE_TEXT) == BASE  # the track stays visible on it


def test_in_a_view_full_and_empty_bars_differ(qtbot, model: JobTableModel, manager: FakeManager) -> None:
    manager.make_job("empty", status=JobStatus.ACTIVE, total=100, done=0)
    manager.make_job("full", status=JobStatus.COMPLETED, total=100, done=100)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.setItemDelegateForColumn(Column.PROGRESS, ProgressDelegate(view))
    view.setColumnWidth(Column.PROGRESS, 200)
    view.resize(1200, 200)
    view.show()
    qtbot.waitExposed(view)
    image = view.viewport().grab().toImage()
    highlight = view.palette().color(QPalette.ColorGroup.Active, QPalette.ColorRole.Highlight)

    def filled(row: int) -> int:
        rect = view.visualRect(model.index(row, Column.PROGRESS))
        y = rect.top() + MARGIN + 2
        return sum(QColor(image.pixel(x, y)) == highlight for x in range(rect.left(), rect.right()))

    assert filled(0) == 0
    assert filled(1) > 150  # nearly all of the 200 px cell
