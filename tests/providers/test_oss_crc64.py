"""CRC-64/XZ as OSS reports it: check value, both implementations against a bit-by-bit reference and the SDK's
own CRC class, incremental == one-shot, and combine() joining part CRCs into the object CRC."""

from __future__ import annotations

import itertools
import os
import time

import pytest
from alibabacloud_oss_v2.crc import Crc64 as SdkCrc64
from hypothesis import given, settings
from hypothesis import strategies as st

from app.providers.aliyun_oss.crc64 import (
    CHECK_VALUE,
    IMPLEMENTATION,
    POLY,
    POLY_REFLECTED,
    Crc64,
    combine,
    crc64,
    crc64_python,
    format_crc64,
    parse_crc64,
)


def _bitwise(data: bytes) -> int:
    """Textbook reflected CRC-64/XZ, one bit at a time: the slow, obviously-correct reference."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xC96C5795D7870F42 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


def test_check_value_and_parameters() -> None:
    assert CHECK_VALUE == 0x995DC9BBDF1939FA
    assert crc64(b"123456789") == CHECK_VALUE
    assert crc64_python(b"123456789") == CHECK_VALUE
    assert _bitwise(b"123456789") == CHECK_VALUE
    assert crc64(b"") == 0 and crc64_python(b"") == 0
    assert int(f"{POLY:064b}"[::-1], 2) == POLY_REFLECTED


def test_fast_implementation_is_active() -> None:
    """crcmod-plus is a runtime dependency; without its C extension uploads would hash at a few MB/s."""
    assert IMPLEMENTATION == "crcmod"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_implementations_agree_with_reference_and_sdk(data: bytes) -> None:
    expected = _bitwise(data)
    assert crc64(data) == expected
    assert crc64_python(data) == expected
    sdk = SdkCrc64(0)
    sdk.update(data)
    assert sdk.sum64() == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
def test_incremental_equals_one_shot(data: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)]
    running = Crc64()
    value = 0
    py_value = 0
    for piece in pieces:
        running.update(piece)
        value = crc64(piece, value)
        py_value = crc64_python(memoryview(piece), py_value)
    assert running.value == value == py_value == crc64(data)
    assert running.length == len(data)
    assert running.copy().value == running.value


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_combine_joins_two_crcs(a: bytes, b: bytes) -> None:
    assert combine(crc64(a), crc64(b), len(b)) == crc64(a + b)
    joined = Crc64(a).combine(Crc64(b))
    assert (joined.value, joined.length) == (crc64(a + b), len(a) + len(b))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=500), min_size=1, max_size=12))
def test_part_crcs_fold_into_the_object_crc(parts: list[bytes]) -> None:
    """What a resumed upload does with ListParts' HashCrc64ecma values before comparing with Complete's header."""
    total = 0
    for part in parts:
        total = combine(total, crc64(part), len(part))
    assert total == crc64(b"".join(parts))


def test_combine_edge_cases_and_large_lengths() -> None:
    assert combine(12345, 0, 0) == 12345
    with pytest.raises(ValueError):
        combine(1, 2, -1)
    # Multi-GiB lengths, checked without hashing GiBs: combine is associative, and folding 2048 one-MiB zero runs
    # must equal combining a 2 GiB zero run in one step.
    zero_mib = crc64(bytes(1 << 20))
    folded = 0
    for _ in range(2048):
        folded = combine(folded, zero_mib, 1 << 20)
    assert folded == combine(0, folded, 0)
    doubled = combine(folded, folded, 2 << 30)
    four = combine(0, combine(folded, folded, 2 << 30), 4 << 30)
    assert combine(combine(0, folded, 2 << 30), folded, 2 << 30) == four
    assert doubled != folded
    a, b, c = crc64(b"head"), crc64(b"middle"), crc64(b"tail")
    assert combine(combine(a, b, 6 << 30), c, 5 << 30) == combine(a, combine(b, c, 5 << 30), (6 << 30) + (5 << 30))
    start = time.perf_counter()
    for n in range(1, 10001):
        combine(n, n * 7, 6 << 20)
    assert time.perf_counter() - start < 2.0  # the CRC of a 10000-part upload folds in well under a second


def test_header_value_helpers() -> None:
    assert parse_crc64(" 5981764153023615706 ") == 5981764153023615706
    assert parse_crc64(None) is None
    assert format_crc64(CHECK_VALUE) == str(CHECK_VALUE)
    assert format_crc64(-1) == str(2**64 - 1)
    for bad in ("", "-1", "0x10", "1e3", str(2**64), "١٢٣"):
        with pytest.raises(ValueError):
            parse_crc64(bad)


def test_throughput_is_usable() -> None:
    """A loose floor (about 8x below what the C extension does on the 2-core CI machine) that catches a silent fall
    back to pure Python, which would make every upload CPU-bound."""
    data = os.urandom(16 << 20)
    start = time.perf_counter()
    crc64(data)
    elapsed = time.perf_counter() - start
    assert (16 / elapsed) > 40, f"CRC-64 ran at {16 / elapsed:.1f} MiB/s"
