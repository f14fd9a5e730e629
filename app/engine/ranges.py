"""Byte-range arithmetic: sets of done byte ranges, range planning, and Content-Range parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass

Span = tuple[int, int]  # half-open [start, end)


class RangeSet:
    """A set of disjoint, merged half-open byte ranges (what is done; resume works at byte precision)."""

    def __init__(self, spans: list[Span] | tuple[Span, ...] = ()) -> None:
        self._spans: list[Span] = []
        for s, e in spans:
            self.add(s, e)

    @property
    def spans(self) -> tuple[Span, ...]:
        return tuple(self._spans)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        out: list[Span] = []
        placed = False
        for s, e in self._spans:
            if e < start:
                out.append((s, e))
            elif s > end:
                if not placed:
                    out.append((start, end))
                    placed = True
                out.append((s, e))
            else:
                start, end = min(s, start), max(e, end)
        if not placed:
            out.append((start, end))
        self._spans = sorted(out)

    def total(self) -> int:
        return sum(e - s for s, e in self._spans)

    def covers(self, start: int, end: int) -> bool:
        return any(s <= start and end <= e for s, e in self._spans)

    def missing(self, size: int) -> list[Span]:
        """The gaps in [0, size)."""
        gaps: list[Span] = []
        pos = 0
        for s, e in self._spans:
            if s > pos:
                gaps.append((pos, min(s, size)))
            pos = max(pos, e)
            if pos >= size:
                break
        if pos < size:
            gaps.append((pos, size))
        return [(s, e) for s, e in gaps if e > s]

    def contiguous_prefix(self) -> int:
        return self._spans[0][1] if self._spans and self._spans[0][0] == 0 else 0

    def copy(self) -> RangeSet:
        r = RangeSet()
        r._spans = list(self._spans)
        return r

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and self._spans == other._spans

    def __repr__(self) -> str:
        return f"RangeSet({self._spans})"


def plan_segments(gaps: list[Span], chunk_size: int, workers: int) -> list[Span]:
    """Split the missing ranges into contiguous segments of whole chunks, about ``workers`` of them (a few more
    when there are several gaps: a segment never spans a gap).

    Bigger segments mean fewer requests (each request costs more CPU in httpx than thousands of bytes);
    at least one chunk per segment keeps tiny files at a single request.
    """
    remaining = sum(e - s for s, e in gaps)
    if remaining == 0:
        return []
    target = max(chunk_size, -(-remaining // workers))
    target = -(-target // chunk_size) * chunk_size
    segments: list[Span] = []
    for s, e in gaps:
        pos = s
        while pos < e:
            end = min(e, pos + target)
            if e - end < chunk_size // 2:  # don't leave a sliver as its own request
                end = e
            segments.append((pos, end))
            pos = end
    return segments


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int  # inclusive
    total: int | None  # None for "*"


class ContentRangeError(ValueError):
    pass


_CR = re.compile(r"^\s*(?P<unit>[A-Za-z]+)[ =]\s*(?P<range>\S+?)\s*/\s*(?P<total>\S+)\s*$")


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²', which int() then refuses."""
    return text.isascii() and text.isdigit()


def parse_content_range(value: str) -> ContentRange:
    """Parse ``bytes a-b/total`` (or ``bytes=a-b/total``, as some servers send) strictly."""
    m = _CR.match(value or "")
    if not m:
        raise ContentRangeError(f"invalid content-range range: {value!r}")
    if m["unit"].lower() != "bytes":
        raise ContentRangeError(f"invalid content-range unit: {value!r}")
    start_s, sep, end_s = m["range"].partition("-")
    if not sep:
        raise ContentRangeError(f"invalid content-range range: {value!r}")
    if not _digits(start_s):
        raise ContentRangeError(f"invalid content-range start: {value!r}")
    if not _digits(end_s):
        raise ContentRangeError(f"invalid content-range end: {value!r}")
    start, end = int(start_s), int(end_s)
    if end < start:
        raise ContentRangeError(f"invalid content-range order: {value!r}")
    total_s = m["total"]
    if total_s == "*":
        total = None
    elif _digits(total_s):
        total = int(total_s)
        if end >= total:
            raise ContentRangeError(f"invalid content-range total: {value!r}")
    else:
        raise ContentRangeError(f"invalid content-range total: {value!r}")
    return ContentRange(start, end, total)


def parse_unsatisfied_total(value: str | None) -> int | None:
    """The N of a 416's ``Content-Range: bytes */N``."""
    if not value:
        return None
    m = re.match(r"^\s*bytes\s+\*/(\d+)\s*$", value)
    return int(m.group(1)) if m else None
