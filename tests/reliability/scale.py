"""How hard the reliability suites push: short in ``make test``, long in ``make soak``.

``RUSTY_CAT_PROPS_SCALE`` multiplies the number of hypothesis examples of the property tests (default 1, so each
test stays under ~3 s); ``RUSTY_CAT_STORM_OPS`` / ``RUSTY_CAT_STORM_SEED`` size and seed the control storm.
"""

from __future__ import annotations

import os


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


def scaled(examples: int) -> int:
    """``examples`` times RUSTY_CAT_PROPS_SCALE (at least 1)."""
    return max(1, round(examples * _float_env("RUSTY_CAT_PROPS_SCALE", 1.0)))


def scaled_timeout(seconds: float) -> float:
    """A pytest-timeout budget that grows with RUSTY_CAT_PROPS_SCALE, so a long soak run is not cut short."""
    return seconds * max(1.0, _float_env("RUSTY_CAT_PROPS_SCALE", 1.0))
