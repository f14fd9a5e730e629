"""Part-size arithmetic for services that cap how many parts an object may have.

Why the size grows: OSS takes at most 10,000 parts and Azure at most 50,000 blocks, so a file too big for the
requested part size in that many parts needs bigger parts. Each service's official tools grow it their own way, and
we keep each way so a part grid matches what people know from those tools.
"""

from __future__ import annotations

from enum import Enum


class Growth(Enum):
    """How a part size grows until the file fits."""

    MULTIPLES = "whole multiples of the request, no more than needed (the OSS SDK)"
    DOUBLING = "doubled each step (AzCopy)"


def part_count(total: int, part_size: int) -> int:
    """Parts of ``part_size`` for ``total`` bytes (an empty file is one part)."""
    return max(1, -(-total // part_size))


def grown_part_size(total: int, requested: int, *, max_parts: int, max_size: int, growth: Growth,
                    min_size: int = 1) -> int:
    """The part size to use: at least ``min_size`` (only the last part may be smaller), grown by ``growth`` until
    ``total`` fits in ``max_parts`` parts, capped at ``max_size``. Never raises: the engine calls it outside its
    error handling, and a file too big even for ``max_size`` parts is refused by the plugin's ``prepare``."""
    size = max(int(requested), min_size)
    if growth is Growth.DOUBLING:
        while size < max_size and part_count(total, size) > max_parts:
            size *= 2
    elif total > size * max_parts:
        size *= -(-total // (size * max_parts))
    return min(size, max_size)
