"""Python's cyclic garbage collector, run on the GUI thread only.

The collector runs in whichever thread happens to allocate past its threshold. In this app that is often one of the
engine's threads (the scheduler, a data thread reading a range): a cycle that holds a Qt object -- a dialog whose slot
closes over itself, a finished model -- is then destroyed off the GUI thread, and Qt crashes (a segmentation fault in
the next event the GUI thread processes, far from the cause). So automatic collection is switched off and a timer on
the GUI thread collects, generation by generation, whenever Python's own thresholds say a collection is due: the
same amount of collecting, on the one thread where destroying a Qt object is safe. (pyqtgraph's GarbageCollector does
the same for the same reason.)
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

#: How often the counts are looked at. Garbage waits at most this long; a collection of the young generation takes
#: well under a millisecond, a full one is due rarely (Python's thresholds decide, as they would without us).
CHECK_INTERVAL_MS = 250


class GuiThreadCollector(QObject):
    """Owns the collection while it lives; :meth:`stop` gives it back to Python."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = CHECK_INTERVAL_MS) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_due)
        self._timer.start()

    def collect_due(self) -> None:
        """Collect each generation whose count passed its threshold, oldest last (as Python's own would)."""
        counts, limits = gc.get_count(), gc.get_threshold()
        if counts[0] > limits[0]:
            gc.collect(0)
            if counts[1] > limits[1]:
                gc.collect(1)
                if counts[2] > limits[2]:
                    gc.collect(2)

    def stop(self) -> None:
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
