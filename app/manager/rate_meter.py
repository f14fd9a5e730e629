"""Speed and ETA from a sliding window, so they follow the current speed rather than the average since the
start (which a resume would inflate and a stall would hide)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class RateMeter:
    window: float = 5.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, done: int) -> None:
        if self.samples and done < self.samples[-1][1]:
            self.samples.clear()  # the transfer restarted (e.g. the remote changed): old samples mean nothing
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()

    def rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    def eta(self, total: int) -> float | None:
        """Seconds until ``total`` at the current rate; None when the size or the rate is unknown."""
        rate = self.rate()
        if total <= 0 or rate <= 0 or not self.samples:
            return None
        return max(0.0, (total - self.samples[-1][1]) / rate)

    def reset(self) -> None:
        self.samples.clear()
