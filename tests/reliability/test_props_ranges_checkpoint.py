"""Property tests of the range planner, the Content-Range check of a ranged GET and the checkpoint codec, at real
sizes (up to terabytes) and with the corruptions a crash or a foreign tool leaves behind.

tests/engine/test_units_ranges_checkpoint.py checks RangeSet and plan_segments against a set-of-ints model in a
64-byte universe, the Content-Range parser alone, and single-byte / truncation / zeroing corruption. Here:

* RangeSet obeys the algebra a resume relies on (order-independent, idempotent, done ∪ missing = the file with no
  overlap, double complement, monotone) on byte offsets up to 2**45, where a model of every byte is impossible;
* plan_segments keeps its chunk discipline at real sizes: segments are whole chunks from the gap start, one common
  length except each gap's last piece, never a sliver, never more requests than connections + gaps - 1;
* the whole response check of a ranged GET (``DownloadRun._check_range``: Content-Range parsed *and* compared with
  the request, Content-Length, encoding) against an independent oracle, and the planner → Range header →
  conforming Content-Range round trip;
* the checkpoint codec against multi-byte and bit flips, inserted / deleted / swapped bytes, torn writes (new
  prefix + old tail), garbage nesting deeper than the JSON parser, and a re-hashed sidecar with wrongly typed
  fields: decode raises CheckpointError or returns exactly the original, never something else.
"""

from __future__ import annotations

import hashlib
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from app.engine import checkpoint
from app.engine.checkpoint import CheckpointError, DownloadCheckpoint
from app.engine.config import MeowConfig
from app.engine.download import DownloadRun, Probe, _Restart
from app.engine.errors import InnerErrorCode, MeowError
from app.engine.protocols import DownloadRangeGetCtx
from app.engine.ranges import RangeSet, parse_content_range, plan_segments
from app.engine.record import TransferStatus
from app.engine.retry import RetryPolicy
from app.engine.run import RunContext
from app.engine.standard_download import StandardRangeDownload
from app.engine.task import DownloadPounceBuilder
from tests.reliability.scale import scaled, scaled_timeout
from tests.support.engine_helpers import Recorder, meow

pytestmark = pytest.mark.timeout(scaled_timeout(60))
PROPS = settings(max_examples=scaled(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIG = 2**45  # 32 TiB: far beyond any model of individual bytes

big_spans = st.lists(st.tuples(st.integers(0, BIG), st.integers(0, 2**40)).map(lambda p: (p[0], p[0] + p[1])),
                     max_size=16)


def clip(spans: tuple[tuple[int, int], ...], size: int) -> list[tuple[int, int]]:
    return [(s, min(e, size)) for s, e in spans if s < size]


def length(spans: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> int:
    return sum(e - s for s, e in spans)


# ------------------------------------------------------------------------------------------------------- RangeSet
@PROPS
@given(big_spans, st.randoms(use_true_random=False))
def test_rangeset_is_canonical_whatever_the_order_and_repetition(spans: list[tuple[int, int]], rng: Any) -> None:
    rs = RangeSet(spans)
    shuffled = list(spans) * 2
    rng.shuffle(shuffled)
    assert RangeSet(shuffled) == rs  # commutative, associative, idempotent
    out = rs.spans
    assert all(s < e for s, e in out)
    assert all(a[1] < b[0] for a, b in pairwise(out))  # disjoint and not touching: merged
    for s, e in spans:  # everything added is covered
        assert s == e or rs.covers(s, e)
    assert rs.total() <= length(spans)


@PROPS
@given(big_spans, st.integers(0, BIG + 2**41))
def test_rangeset_done_and_missing_partition_the_file(spans: list[tuple[int, int]], size: int) -> None:
    rs = RangeSet(spans)
    gaps = rs.missing(size)
    done = clip(rs.spans, size)
    assert length(gaps) + length(done) == size  # together they are the file...
    together = RangeSet([*gaps, *done])
    assert together.total() == size and (size == 0 or together.covers(0, size))  # ...with no overlap
    assert all(0 <= s < e <= size for s, e in gaps)
    assert RangeSet(gaps).missing(size) == done  # double complement
    for s, e in gaps:
        assert not rs.covers(s, s + 1) and not rs.covers(e - 1, e)


@PROPS
@given(big_spans, st.tuples(st.integers(0, BIG), st.integers(1, 2**40)), st.integers(1, BIG))
def test_adding_a_range_never_grows_what_is_missing(spans: list[tuple[int, int]], extra: tuple[int, int],
                                                    size: int) -> None:
    before = RangeSet(spans)
    after = before.copy()
    after.add(extra[0], extra[0] + extra[1])
    assert length(after.missing(size)) <= length(before.missing(size))
    assert after.total() >= before.total()
    assert after.contiguous_prefix() >= before.contiguous_prefix()
    # the contiguous prefix (what a non-ranged resume may keep) ends where the first gap starts
    assert before.contiguous_prefix() == before.missing(4 * BIG)[0][0]


# ------------------------------------------------------------------------------------------------- plan_segments
@PROPS
@given(big_spans, st.integers(1, BIG),
       st.one_of(st.integers(1, 2**26), st.sampled_from([1 << k for k in range(10, 27)])), st.integers(1, 64))
@example([], 10 * 2**20 + 1, 2**20, 4)
@example([(0, 5)], 5 * 2**20, 2**20, 4)
def test_plan_segments_chunk_discipline_at_real_sizes(done: list[tuple[int, int]], size: int, chunk: int,
                                                      workers: int) -> None:
    gaps = RangeSet(done).missing(size)
    segments = plan_segments(gaps, chunk, workers)
    assert length(segments) == length(gaps)
    assert all(a[1] <= b[0] for a, b in pairwise(segments))  # in order, no overlap
    lasts = set()
    for gs, ge in gaps:
        inside = [(s, e) for s, e in segments if gs <= s < ge]
        assert inside and inside[0][0] == gs and inside[-1][1] == ge  # exactly the gap, contiguous
        assert all(a[1] == b[0] for a, b in pairwise(inside))
        assert all((s - gs) % chunk == 0 for s, _ in inside)  # whole chunks from the gap start
        if len(inside) > 1:
            assert inside[-1][1] - inside[-1][0] >= chunk // 2  # no sliver as its own request
        lasts.add(inside[-1])
    lengths = {e - s for s, e in segments if (s, e) not in lasts}
    assert len(lengths) <= 1  # one common length...
    if lengths:
        (common,) = lengths
        assert common % chunk == 0 and common >= chunk  # ...of whole chunks
        assert all(e - s < common + chunk for s, e in lasts)  # a last piece is at most a common one plus a sliver
    assert len(segments) <= workers + len(gaps) - 1 if gaps else segments == []


# -------------------------------------------------------------------------------------- the ranged-GET response check
def _download_run(total_hint: int = 0) -> DownloadRun:
    task = DownloadPounceBuilder("f.bin", "/nonexistent/never-written.bin", 1 << 20, "http://127.0.0.1:9/f.bin").build()
    ctx = RunContext(task=task, http=None, config=MeowConfig(), policy=RetryPolicy(0, 0), buckets=(),  # type: ignore[arg-type]
                     pool=None, file_sign="", start_offset=0, report=lambda done, total: None,  # type: ignore[arg-type]
                     data=None, data_pool=None)  # type: ignore[arg-type]
    return DownloadRun(ctx)


class _Answer:
    """The head of an answer as the data path gives it (status and headers; the body is never read here)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = response.headers

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def check(resp: httpx.Response, probe: Probe, start: int, last: int, total: int) -> int:
    return RUN._check_range(_Answer(resp), probe, start, last, total, "http://h/f", [])  # type: ignore[arg-type]


RUN = _download_run()
_VALID_PREFIX = ["bytes ", "bytes=", "Bytes ", " bytes  ", "BYTES="]
_INVALID_PREFIX = ["bits ", "bytes", "bytes:", "byte ", "bytes -", "bytes +"]


@st.composite
def ranged_exchanges(draw: st.DrawFn) -> dict[str, Any]:
    total = draw(st.integers(1, 2**44))
    start = draw(st.integers(0, total - 1))
    last = draw(st.integers(start, total - 1))
    first = start + draw(st.sampled_from([0, 0, 0, -1, 1, 7]))
    end = draw(st.sampled_from([last, last, last, last + 1, last - 1, first - 1, first, (first + last) // 2]))
    total_r = draw(st.sampled_from([total, total, total, None, total + 1, total - 1, end, end + 1]))
    prefix = draw(st.sampled_from(_VALID_PREFIX * 3 + _INVALID_PREFIX))
    cl = draw(st.sampled_from(["ok", "ok", None, "short", "long"]))
    encoding = draw(st.sampled_from([None, None, None, "identity", "gzip"]))
    return {"total": total, "start": start, "last": last, "first": first, "end": end, "total_r": total_r,
            "prefix": prefix, "cl": cl, "encoding": encoding}


def _oracle(x: dict[str, Any]) -> str:
    """What RFC 9110 plus engine rule 5 say of the exchange: "accept", "restart" (same range, other total) or
    "reject"."""
    first, end, total_r = x["first"], x["end"], x["total_r"]
    well_formed = (x["prefix"] in _VALID_PREFIX and first >= 0 and end >= first
                   and (total_r is None or (total_r >= 0 and end < total_r)))
    if not well_formed or first != x["start"]:
        return "reject"
    if total_r is not None and total_r != x["total"]:
        return "restart"
    if end > x["last"] or x["cl"] in ("short", "long") or x["encoding"] == "gzip":
        return "reject"
    return "accept"


def _response(x: dict[str, Any]) -> httpx.Response:
    total = "*" if x["total_r"] is None else str(x["total_r"])
    headers = [("content-range", f"{x['prefix']}{x['first']}-{x['end']}/{total}")]
    size = x["end"] - x["first"] + 1
    if x["cl"] is not None:
        headers.append(("content-length", str(size + {"ok": 0, "short": -1, "long": 1}[x["cl"]])))
    if x["encoding"]:
        headers.append(("content-encoding", x["encoding"]))
    return httpx.Response(206, headers=headers)


@PROPS
@given(ranged_exchanges())
def test_ranged_get_response_check_matches_the_rules(x: dict[str, Any]) -> None:
    probe = Probe(x["total"], '"e"', None, True)
    expected = _oracle(x)
    try:
        resp_end = check(_response(x), probe, x["start"], x["last"], x["total"])
    except _Restart as restart:
        assert expected == "restart", (x, restart.error)
        return
    except MeowError as err:
        assert expected == "reject", (x, err)
        assert err.code == InnerErrorCode.INVALID_RANGE
        return
    assert expected == "accept", x
    assert x["start"] < resp_end <= x["last"] + 1 and resp_end == x["end"] + 1  # never past what was asked


@PROPS
@given(big_spans, st.integers(1, 2**44), st.integers(1, 2**24), st.integers(1, 16))
def test_planned_ranges_round_trip_through_range_and_content_range(done: list[tuple[int, int]], total: int,
                                                                   chunk: int, workers: int) -> None:
    """Each planned segment's Range header is well formed, and the answer a conforming server gives is accepted
    exactly: ours → server → ours loses and invents nothing."""
    proto = StandardRangeDownload()
    task = RUN.ctx.view(total)
    for s, e in plan_segments(RangeSet(done).missing(total), chunk, workers)[:8]:
        ctx = DownloadRangeGetCtx(task=task, url="http://h/f", range_value=f"bytes={s}-{e - 1}", start=s, end=e - 1,
                                  headers={}, validator='"e"', extra={})
        proto.merge_range_get_headers(ctx)
        unit, _, spec = ctx.headers["Range"].partition("=")
        first, _, last = spec.partition("-")
        assert unit == "bytes" and (int(first), int(last)) == (s, e - 1) and int(last) < total
        assert ctx.headers["If-Range"] == '"e"'
        cr = parse_content_range(f"bytes {first}-{last}/{total}")  # the conforming server's answer
        assert (cr.start, cr.end, cr.total) == (s, e - 1, total)
        resp = httpx.Response(206, headers={"content-range": f"bytes {first}-{last}/{total}",
                                            "content-length": str(e - s)})
        assert check(resp, Probe(total, '"e"', None, True), s, e - 1, total) == e


# ---------------------------------------------------------------------------------------------------- checkpoints
_text = st.text(max_size=20)
_pairs = st.lists(st.tuples(st.integers(0, 2**44), st.integers(0, 2**30)).map(lambda p: [p[0], p[0] + p[1]]),
                  max_size=6)
checkpoints = st.builds(
    DownloadCheckpoint, url=_text, total_size=st.none() | st.integers(0, 2**50), etag=st.none() | _text,
    last_modified=st.none() | _text, chunk_size=st.integers(1, 2**30), ranged=st.booleans(), written=_pairs,
    durable=_pairs, boot_id=st.none() | _text,
)


def original_or_error(raw: bytes, *allowed: DownloadCheckpoint) -> None:
    try:
        got = checkpoint.decode(raw)
    except CheckpointError:
        return
    assert got in allowed, "a damaged checkpoint decoded to something that was never written"


@st.composite
def damaged(draw: st.DrawFn, raw: bytes) -> bytes:
    kind = draw(st.sampled_from(["flips", "bits", "delete", "insert", "swap", "duplicate", "append"]))
    data = bytearray(raw)
    if kind == "flips":
        for _ in range(draw(st.integers(2, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    elif kind == "bits":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) * 8 - 1))
            data[i // 8] ^= 1 << (i % 8)
    elif kind == "delete":
        i = draw(st.integers(0, len(data) - 1))
        del data[i:i + draw(st.integers(1, 16))]
    elif kind == "insert":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=16))
    elif kind == "swap":
        i, j = draw(st.integers(0, len(data) - 1)), draw(st.integers(0, len(data) - 1))
        data[i], data[j] = data[j], data[i]
    elif kind == "duplicate":
        i = draw(st.integers(0, len(data) - 1))
        data[i:i] = data[i:i + draw(st.integers(1, 32))]
    else:  # a stale tail after a shorter rewrite without O_TRUNC
        data += draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


@PROPS
@given(checkpoints, st.data())
def test_damaged_checkpoint_is_detected_or_unchanged(ckpt: DownloadCheckpoint, data: st.DataObject) -> None:
    raw = checkpoint.encode(ckpt)
    broken = data.draw(damaged(raw), label="damaged")
    assume(broken != raw)
    original_or_error(broken, ckpt)


@PROPS
@given(checkpoints, checkpoints, st.data())
def test_torn_write_of_a_new_checkpoint_over_an_old_one_is_detected(old: DownloadCheckpoint, new: DownloadCheckpoint,
                                                                    data: st.DataObject) -> None:
    """A write cut short in place (no rename): the new checkpoint's prefix over the old one's tail."""
    a, b = checkpoint.encode(new), checkpoint.encode(old)
    cut = data.draw(st.integers(0, len(a)), label="cut")
    original_or_error(a[:cut] + b[cut:], new, old)


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | _text,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                     max_leaves=6)
_FIELDS = ["url", "total_size", "etag", "last_modified", "chunk_size", "ranged", "written", "durable", "boot_id"]


def _rehashed(data: object) -> bytes:
    body = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return json.dumps({"magic": checkpoint.MAGIC, "version": checkpoint.VERSION,
                       "sha256": hashlib.sha256(body.encode()).hexdigest(), "data": data}).encode()


def _well_typed(c: DownloadCheckpoint) -> bool:
    def is_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    return (isinstance(c.url, str) and all(v is None or isinstance(v, str) for v in (c.etag, c.last_modified,
                                                                                       c.boot_id))
            and (c.total_size is None or (is_int(c.total_size) and c.total_size >= 0))
            and is_int(c.chunk_size) and c.chunk_size > 0 and isinstance(c.ranged, bool)
            and all(isinstance(p, list) and len(p) == 2 and is_int(p[0]) and is_int(p[1]) and 0 <= p[0] <= p[1]
                    for p in [*c.written, *c.durable]))


@PROPS
@given(checkpoints, st.sampled_from(_FIELDS), _json)
@example(DownloadCheckpoint("u", 10, None, None, 4, written=[[0, 4]]), "chunk_size", "x")
@example(DownloadCheckpoint("u", 10, None, None, 4, written=[[0, 4]]), "ranged", "no")
@example(DownloadCheckpoint("u", 10, None, None, 4, written=[[0, 4]]), "written", [[False, True]])
@example(DownloadCheckpoint("u", 10, None, None, 4, written=[[0, 4]]), "total_size", -1)
def test_rehashed_checkpoint_with_a_foreign_field_value_is_refused_or_well_typed(ckpt: DownloadCheckpoint,
                                                                                  name: str, value: object) -> None:
    """A sidecar another program wrote (or someone edited and re-hashed): the hash is right, the content is not."""
    data = json.loads(checkpoint.encode(ckpt))["data"]
    data[name] = value
    try:
        got = checkpoint.decode(_rehashed(data))
    except CheckpointError:
        return
    assert _well_typed(got), got


@PROPS
@given(_json)
def test_rehashed_checkpoint_with_any_data_never_raises_anything_else(data: object) -> None:
    try:
        got = checkpoint.decode(_rehashed(data))
    except CheckpointError:
        return
    assert _well_typed(got)


@pytest.mark.parametrize("raw", [b"[" * 100_000, b"{" * 50_000, b'{"a":' * 40_000,
                                 _rehashed("x").replace(b'"x"', b"[" * 3000 + b"]" * 3000)],
                         ids=["brackets", "braces", "nested-objects", "deep-data"])
def test_garbage_deeper_than_the_json_parser_is_a_checkpoint_error(raw: bytes, tmp_path: Path) -> None:
    """Python's json raises RecursionError on deep nesting; it must read as a torn checkpoint (restart), not escape
    as an internal error that fails the download for good."""
    with pytest.raises(CheckpointError):
        checkpoint.decode(raw)
    path = tmp_path / "f.part.ckpt"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError):
        checkpoint.load(str(path))


@pytest.mark.asyncio
@pytest.mark.parametrize("torn", ["deep-nesting", "rehashed-wrong-types", "truncated", "zeroed"])
async def test_download_over_a_bad_checkpoint_starts_over_and_completes(torn: str, srv: Any, tmp_path: Path) -> None:
    """End to end: whatever sits in ``.part.ckpt``, the download ignores it, starts from byte 0 and completes with
    the right bytes (before the fix, deep nesting escaped decode as RecursionError and failed the task for good)."""
    data = bytes(range(256)) * 600
    srv.add_file("/f.bin", data)
    dest = tmp_path / "f.bin"
    good = checkpoint.encode(DownloadCheckpoint(srv.url("/f.bin"), len(data), None, None, 4096,
                                                written=[[0, len(data)]], durable=[[0, len(data)]]))
    raw = {"deep-nesting": b"[" * 100_000,
           "rehashed-wrong-types": _rehashed({**json.loads(good)["data"], "chunk_size": "4096", "ranged": 1}),
           "truncated": good[: len(good) // 2],
           "zeroed": b"\0" * len(good)}[torn]
    Path(checkpoint.part_path(str(dest))).write_bytes(b"\xff" * len(data))  # a .part full of wrong bytes
    Path(checkpoint.checkpoint_path(str(dest))).write_bytes(raw)
    rec = Recorder()
    async with meow() as client:
        final = await rec.wait_terminal(await client.try_enqueue(
            DownloadPounceBuilder("f.bin", dest, 4096, srv.url("/f.bin")).build(), rec.progress))
    assert final.status is TransferStatus.COMPLETE, final.error
    assert dest.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
