"""Human byte sizes for the command line: ``parse_size("4MiB")`` and ``format_size(1572864)``.

Every unit letter is binary (1024-based), with or without ``i`` and ``B``: ``k``, ``K``, ``KB``, ``KiB`` all
mean 1024 bytes, ``m``/``MB``/``MiB`` mean 1024², and so on through ``T``, ``P`` and ``E``. Download tools
(curl, wget, aria2) read ``--limit-rate`` the same way, and sizes then line up with the 1024-based chunk
boundaries the engine works in, so one convention for all spellings avoids surprises like a "4MB" chunk
that is not a multiple of 1 MiB.
"""

from __future__ import annotations

import re
from fractions import Fraction

#: Powers of 1024 per unit letter ("" = plain bytes).
UNITS: dict[str, int] = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5, "e": 1024**6}
#: The largest size accepted, far beyond any real chunk or rate, so a typo can't overflow anything.
MAX_SIZE = 1 << 60

_SIZE = re.compile(r"(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[kmgtpe]?)(?P<i>i?)(?P<b>b?)", re.IGNORECASE | re.ASCII)
_FORMAT_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def parse_size(text: str) -> int:
    """Parse ``1048576``, ``512k``, ``512KB``, ``512KiB``, ``4MiB``, ``1.5M`` or ``100B`` into whole bytes.

    Units are 1024-based whatever the spelling (see the module docstring). A fractional result is rounded
    down to whole bytes. Raises ValueError with a message fit to show a user for zero, negative, fractional
    plain byte counts, unknown units and anything else that is not a size.
    """
    if not isinstance(text, str):
        raise ValueError(f"a size must be text like 4MiB, got {text!r}")
    raw = text.strip()
    if not raw:
        raise ValueError("a size cannot be empty (examples: 1048576, 512k, 4MiB, 1.5M)")
    if raw.startswith("-"):
        raise ValueError(f"a size must be positive, got {text!r}")
    m = _SIZE.fullmatch(raw)
    if m is None or (m.group("i") and not m.group("unit")):
        raise ValueError(f"not a size: {text!r} (examples: 1048576, 512k, 512KiB, 4MiB, 1.5M; "
                         f"units k, M, G, T, P, E are 1024-based)")
    number = Fraction(m.group("num"))
    unit = m.group("unit").lower()
    if not unit and number.denominator != 1:
        raise ValueError(f"a plain byte count must be a whole number, got {text!r}")
    value = int(number * UNITS[unit])  # Fraction keeps 1.5M exact; int() rounds down
    if value <= 0:
        raise ValueError(f"a size must be at least 1 byte, got {text!r}")
    if value > MAX_SIZE:
        raise ValueError(f"size {text!r} is too large (the limit is {format_size(MAX_SIZE)})")
    return value


def format_size(n: int | float) -> str:
    """``512 B``, ``1.5 KiB``, ``1.5 MiB``…: one decimal above bytes, so a progress line keeps its width."""
    if n < 0:
        return "-" + format_size(-n)
    if n < 1024:
        return f"{int(n)} B"
    value = float(n)
    for unit in _FORMAT_UNITS:
        value /= 1024
        if value < 1024 or unit == _FORMAT_UNITS[-1]:
            # 1023.96 KiB would print as "1024.0 KiB": move up a unit instead.
            if round(value, 1) >= 1024 and unit != _FORMAT_UNITS[-1]:
                continue
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover
