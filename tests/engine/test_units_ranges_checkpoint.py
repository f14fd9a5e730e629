"""Property tests of the engine's pure parts: byte-range sets, segment planning, Content-Range parsing,
checkpoint encoding, URL redaction and the retry policy."""

from __future__ import annotations

import math
import time
from email.utils import formatdate
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from app.engine import checkpoint
from app.engine.checkpoint import CheckpointError, DownloadCheckpoint
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.failures import parse_retry_after
from app.engine.ranges import (
    ContentRange,
    ContentRangeError,
    RangeSet,
    parse_content_range,
    parse_unsatisfied_total,
    plan_segments,
)
from app.engine.redact import REDACTED, redact_text, redact_url, strip_query
from app.engine.retry import RetryPolicy
from app.engine.standard_download import content_length

pytestmark = pytest.mark.timeout(60)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
U = 64  # small universe for model checks

spans_st = st.lists(st.tuples(st.integers(0, U), st.integers(0, U)), max_size=12)


def model(spans: list[tuple[int, int]]) -> set[int]:
    out: set[int] = set()
    for s, e in spans:
        out.update(range(s, e))
    return out


def runs(points: set[int]) -> list[tuple[int, int]]:
    """Maximal half-open runs of consecutive ints."""
    out: list[tuple[int, int]] = []
    for p in sorted(points):
        if out and out[-1][1] == p:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out


# ---------------------------------------------------------------------------------------------- RangeSet
@FAST
@given(spans_st)
def test_rangeset_matches_a_set_of_ints(spans: list[tuple[int, int]]) -> None:
    rs = RangeSet()
    for s, e in spans:
        rs.add(s, e)
    points = model(spans)
    assert rs.spans == tuple(runs(points))  # sorted, disjoint, merged (touching spans merge too)
    assert rs.total() == len(points)
    assert RangeSet(spans) == rs
    assert rs.contiguous_prefix() == (runs(points)[0][1] if 0 in points else 0)


@FAST
@given(spans_st, st.integers(0, U + 8))
def test_rangeset_missing_is_the_complement(spans: list[tuple[int, int]], size: int) -> None:
    rs = RangeSet(spans)
    gaps = rs.missing(size)
    assert gaps == runs(set(range(size)) - model(spans))
    assert all(0 <= s < e <= size for s, e in gaps)


@FAST
@given(spans_st, st.integers(0, U), st.integers(1, U))
def test_rangeset_covers(spans: list[tuple[int, int]], start: int, length: int) -> None:
    rs = RangeSet(spans)
    end = start + length
    assert rs.covers(start, end) == set(range(start, end)).issubset(model(spans))


@FAST
@given(spans_st, st.tuples(st.integers(0, U), st.integers(0, U)))
def test_rangeset_copy_is_independent(spans: list[tuple[int, int]], extra: tuple[int, int]) -> None:
    rs = RangeSet(spans)
    before = rs.spans
    clone = rs.copy()
    clone.add(*extra)
    assert rs.spans == before
    assert clone.spans == tuple(runs(model([*spans, extra])))


# ---------------------------------------------------------------------------------------------- plan_segments
@FAST
@given(spans_st, st.integers(1, U + 8), st.integers(1, 16), st.integers(1, 8))
def test_plan_segments_cover_exactly_the_gaps(done: list[tuple[int, int]], size: int, chunk: int,
                                              workers: int) -> None:
    gaps = RangeSet(done).missing(size)
    segments = plan_segments(gaps, chunk, workers)
    # exact cover, in order, no overlap, every segment inside one gap
    flat = [p for s, e in segments for p in range(s, e)]
    assert flat == sorted(set(flat))
    assert set(flat) == model(gaps)
    assert all(s < e for s, e in segments)
    for s, e in segments:
        assert any(gs <= s and e <= ge for gs, ge in gaps)
    # at least one chunk per segment, except the last piece of a gap (which is then at least half a chunk
    # or the whole gap)
    for s, e in segments:
        gs, ge = next((gs, ge) for gs, ge in gaps if gs <= s < ge)
        if e < ge:
            assert e - s >= chunk
        else:
            assert e - s >= chunk // 2 or s == gs
    # as few requests as the workers allow: one gap → at most `workers` segments; in general each gap adds
    # at most one segment beyond that
    if len(gaps) == 1:
        assert len(segments) <= workers
    assert len(segments) <= workers + max(0, len(gaps) - 1)


def test_plan_segments_nothing_missing() -> None:
    assert plan_segments([], 1024, 4) == []


def test_plan_segments_small_file_is_one_request() -> None:
    assert plan_segments([(0, 1000)], 4096, 4) == [(0, 1000)]


# ---------------------------------------------------------------------------------------------- Content-Range
@FAST
@given(st.integers(0, 2**63), st.integers(0, 2**40), st.integers(1, 2**40), st.sampled_from(["bytes ", "bytes=",
                                                                                             "Bytes ", " bytes  "]))
def test_parse_content_range_round_trip(start: int, length: int, extra: int, prefix: str) -> None:
    end = start + length
    total = end + extra
    assert parse_content_range(f"{prefix}{start}-{end}/{total}") == ContentRange(start, end, total)
    assert parse_content_range(f"{prefix}{start}-{end}/*") == ContentRange(start, end, None)


@FAST
@given(st.integers(1, 2**40), st.integers(1, 2**40))
def test_parse_content_range_rejects_reversed_and_out_of_total(start: int, back: int) -> None:
    with pytest.raises(ContentRangeError):
        parse_content_range(f"bytes {start + back}-{start}/{start + back + 1}")
    with pytest.raises(ContentRangeError):
        parse_content_range(f"bytes 0-{start}/{start}")  # end must be < total


@pytest.mark.parametrize("value", [
    "", "bytes", "bytes 1-2", "bytes */10", "items 0-1/2", "bytes a-b/10", "bytes -1-2/10", "bytes 1--2/10",
    "bytes 0-0/0", "bytes 1-2/x", "bytes 1-2/-3", "bytes 1 - 2 / 10 junk", "bytes 0x1-0x2/10", "bytes ١-٢/10",
    "bytes ²-³/10", "bytes 1-2/³", "bytes 1.5-2/10",
])
def test_parse_content_range_rejects_garbage(value: str) -> None:
    with pytest.raises(ContentRangeError):
        parse_content_range(value)


@FAST
@given(st.text(max_size=40))
@example("bytes ²-³/5")
@example("bytes 0-1/²")
def test_parse_content_range_only_ever_raises_content_range_error(value: str) -> None:
    try:
        cr = parse_content_range(value)
    except ContentRangeError:
        return
    assert 0 <= cr.start <= cr.end and (cr.total is None or cr.end < cr.total)


@pytest.mark.parametrize("value", ["²", "1²", "¹0", "-1", "ten", "1.0", " "])
def test_content_length_rejects_non_ascii_digits_and_garbage(value: str) -> None:
    """A bad Content-Length is MISSING_OR_INVALID_CONTENT_LENGTH, never a bare ValueError."""
    with pytest.raises(MeowError) as err:
        content_length(httpx.Headers([(b"content-length", value.encode("latin-1"))]))  # as read off the wire
    assert err.value.code == InnerErrorCode.MISSING_OR_INVALID_CONTENT_LENGTH


@FAST
@given(st.integers(0, 2**50))
def test_parse_unsatisfied_total(total: int) -> None:
    assert parse_unsatisfied_total(f"bytes */{total}") == total
    assert parse_unsatisfied_total(None) is None
    assert parse_unsatisfied_total("bytes 0-1/2") is None


# ---------------------------------------------------------------------------------------------- checkpoints
text = st.text(max_size=30)
pairs = st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**20)).map(lambda p: [p[0], p[0] + p[1]]),
                 max_size=5)
checkpoints = st.builds(
    DownloadCheckpoint,
    url=text, total_size=st.none() | st.integers(0, 2**50), etag=st.none() | text,
    last_modified=st.none() | text, chunk_size=st.integers(1, 2**30), ranged=st.booleans(),
    written=pairs, durable=pairs, boot_id=st.none() | text,
)


@FAST
@given(checkpoints)
def test_checkpoint_round_trip(ckpt: DownloadCheckpoint) -> None:
    assert checkpoint.decode(checkpoint.encode(ckpt)) == ckpt


def decodes_to_original_or_raises(raw: bytes, original: DownloadCheckpoint) -> None:
    try:
        got = checkpoint.decode(raw)
    except CheckpointError:
        return
    assert got == original, "a corrupted checkpoint decoded to a different checkpoint"


@FAST
@given(checkpoints, st.data())
def test_checkpoint_single_byte_corruption_is_detected(ckpt: DownloadCheckpoint, data: st.DataObject) -> None:
    raw = checkpoint.encode(ckpt)
    i = data.draw(st.integers(0, len(raw) - 1), label="index")
    b = data.draw(st.integers(0, 255).filter(lambda v: v != raw[i]), label="byte")
    decodes_to_original_or_raises(raw[:i] + bytes([b]) + raw[i + 1:], ckpt)


@FAST
@given(checkpoints, st.data())
def test_checkpoint_truncation_and_zeroing_are_detected(ckpt: DownloadCheckpoint, data: st.DataObject) -> None:
    raw = checkpoint.encode(ckpt)
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    with pytest.raises(CheckpointError):
        checkpoint.decode(raw[:cut])
    start = data.draw(st.integers(0, len(raw) - 1), label="start")
    length = data.draw(st.integers(1, len(raw) - start), label="length")
    zeroed = raw[:start] + b"\0" * length + raw[start + length:]
    with pytest.raises(CheckpointError):
        checkpoint.decode(zeroed)


@FAST
@given(st.binary(max_size=300))
def test_checkpoint_decode_of_random_bytes_only_raises_checkpoint_error(raw: bytes) -> None:
    with pytest.raises(CheckpointError):
        checkpoint.decode(raw)


def test_checkpoint_file_round_trip_and_missing(tmp_path: object) -> None:
    path = f"{tmp_path}/x.part.ckpt"
    assert checkpoint.load(path) is None
    ckpt = DownloadCheckpoint(url="https://h/p", total_size=10, etag='"e"', last_modified=None, chunk_size=4,
                              written=[[0, 4]], durable=[[0, 4]], boot_id="b")
    checkpoint.write_atomic(path, checkpoint.encode(ckpt), durable=True)
    assert checkpoint.load(path) == ckpt
    checkpoint.remove(path)
    assert checkpoint.load(path) is None


def test_checkpoint_trusts_written_ranges_only_within_the_same_boot() -> None:
    ckpt = DownloadCheckpoint(url="u", total_size=10, etag=None, last_modified=None, chunk_size=1,
                              written=[[0, 8]], durable=[[0, 4]], boot_id="boot-a")
    assert ckpt.done("boot-a").total() == 8
    assert ckpt.done("boot-b").total() == 4
    assert ckpt.done(None).total() == 4


# ---------------------------------------------------------------------------------------------- redaction
secret_st = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_.~",
                    min_size=12, max_size=40).filter(lambda s: any(c.isdigit() for c in s))
param_st = st.sampled_from(["sig", "SIG", "Signature", "x-oss-signature", "X-OSS-Signature", "x-amz-signature",
                            "x-oss-credential", "x-oss-security-token", "token", "AccessKeyId"])
other_st = st.lists(st.tuples(st.sampled_from(["a", "sv", "se", "sp", "comp", "x-oss-expires"]),
                              st.text(alphabet="abc123", max_size=6)), max_size=4)


@FAST
@given(param_st, secret_st, other_st, st.integers(0, 4), st.booleans())
def test_redact_url_never_leaks_a_signature(param: str, secret: str, others: list[tuple[str, str]], pos: int,
                                            encode: bool) -> None:
    value = quote(secret, safe="") if encode else secret.replace("+", "%2B").replace("/", "%2F")
    query = [f"{k}={v}" for k, v in others]
    query.insert(min(pos, len(query)), f"{param}={value}")
    url = f"https://account.blob.example.net/container/some%20blob.bin?{'&'.join(query)}"
    out = redact_url(url)
    for leak in (secret, value, quote(secret, safe="")):
        assert leak not in out
    assert f"{param}={REDACTED}" in out
    assert out.startswith("https://account.blob.example.net/container/some%20blob.bin?")
    assert secret not in redact_text(f"GET {url} failed: 403 (see {url})")
    assert secret not in strip_query(url)


@FAST
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~", min_size=12,
               max_size=40).filter(lambda s: any(c.isdigit() for c in s)))
def test_redact_url_hides_userinfo(secret: str) -> None:
    out = redact_url(f"https://user:{secret}@host.example/p?x=1")
    assert secret not in out and "host.example" in out


def test_redact_url_leaves_harmless_urls_alone() -> None:
    assert redact_url("https://h/p?a=1&b=2") == "https://h/p?a=1&b=2"
    assert redact_url("http://[::1") == "<invalid url>"


# ---------------------------------------------------------------------------------------------- retry policy
@FAST
@given(st.floats(0, 60), st.floats(0, 3600), st.integers(0, 20))
def test_backoff_is_jittered_capped_exponential(base: float, maximum: float, attempt: int) -> None:
    assume(maximum >= base)
    nominal = min(base * 2**attempt, maximum)
    delay = RetryPolicy(base, maximum).backoff(attempt)
    assert 0.8 * nominal * (1 - 1e-12) <= delay <= 1.2 * nominal * (1 + 1e-12)


@FAST
@given(st.floats(0, 60), st.floats(0, 3600), st.integers(21, 10_000))
def test_backoff_exponent_is_capped_at_20_like_the_seed(base: float, maximum: float, attempt: int) -> None:
    """seed-behavior §6: the exponent stops growing at 20 (so huge attempt numbers never overflow)."""
    assume(maximum >= base)
    nominal = min(base * 2**20, maximum)
    delay = RetryPolicy(base, maximum).backoff(attempt)
    assert 0.8 * nominal * (1 - 1e-12) <= delay <= 1.2 * nominal * (1 + 1e-12)


def test_backoff_jitter_is_real() -> None:
    policy = RetryPolicy(1.0, 10.0)
    assert len({round(policy.backoff(0), 9) for _ in range(50)}) > 10


@FAST
@given(st.integers(0, 10_000), st.floats(0.1, 1000))
def test_parse_retry_after_seconds_are_capped(seconds: int, cap: float) -> None:
    assert parse_retry_after(str(seconds), cap) == min(float(seconds), cap)


@pytest.mark.parametrize(("value", "expected"), [
    ("0", 0.0), ("1.5", 1.5), ("-3", 0.0), ("  7 ", 7.0), ("", None), (None, None), ("soon", None),
    ("nan", None), ("inf", 60.0), ("1e400", 60.0), ("Wed, 32 Foo 2099 99:99:99 GMT", None),
])
def test_parse_retry_after_edge_values(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, 60.0) == expected


@pytest.mark.parametrize("ahead", [5, 30])
def test_parse_retry_after_http_date(ahead: int) -> None:
    got = parse_retry_after(formatdate(time.time() + ahead, usegmt=True), 60.0)
    assert got is not None and ahead - 2 <= got <= ahead + 1
    assert parse_retry_after(formatdate(time.time() - 100, usegmt=True), 60.0) == 0.0
    assert parse_retry_after(formatdate(time.time() + 10_000, usegmt=True), 60.0) == 60.0


@FAST
@given(st.text(max_size=40), st.floats(0, 100))
def test_parse_retry_after_never_raises(value: str, cap: float) -> None:
    got = parse_retry_after(value, cap)
    assert got is None or (0 <= got <= cap and not math.isnan(got))
