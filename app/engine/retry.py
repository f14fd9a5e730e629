"""Retry policy: capped exponential back-off with real jitter, honouring a server's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass

from app.engine.errors import MeowError


@dataclass(frozen=True)
class RetryPolicy:
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (0 = first retry): min(base·2^k, max) × U[0.8, 1.2]."""
        nominal = min(self.base_delay * (2 ** min(attempt, 20)), self.max_delay)
        return nominal * random.uniform(0.8, 1.2)

    def delay_for(self, error: MeowError, attempt: int) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after) + random.uniform(0, min(1.0, self.base_delay))
        return self.backoff(attempt)
