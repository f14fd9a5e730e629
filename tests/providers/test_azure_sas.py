"""SAS URL parsing, merging and redaction, plus block ids and the Block List XML.

The properties that matter for the provider: extra parameters never disturb the signed SAS
query (byte-for-byte, also after httpx parses the URL), the ``sig`` never survives redaction,
and block ids of one upload are equal-length, valid base64 and reversible.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine.redact import REDACTED, redact_url
from app.providers.azure_blob import (
    BlockInfo,
    SasUrl,
    append_query,
    block_id,
    block_list_xml,
    block_prefix,
    is_sas_url,
    parse_block_id,
    parse_block_list,
)
from app.providers.azure_blob.blocks import MAX_BLOCK_ID_BYTES, MAX_BLOCK_INDEX, MAX_PREFIX_LEN

SIG = "k3Jx%2FabcDEF%2B0123456789ghijklmnopqrstuvwxyzAB%3D"
SIG_DECODED = "k3Jx/abcDEF+0123456789ghijklmnopqrstuvwxyzAB="
BLOB_QUERY = f"se=2024-01-01T01%3A00%3A00Z&sp=racw&sv=2026-10-06&sr=b&sig={SIG}"
BLOB_SAS = f"http://127.0.0.1:10000/devstoreaccount1/c1/dir/a%20b.bin?{BLOB_QUERY}"
CONTAINER_SAS = (
    "https://acct.blob.core.windows.net/photos?sv=2021-08-06&st=2024-01-01T00%3A00%3A00Z"
    f"&se=2024-01-02T00%3A00%3A00.0000000Z&sr=c&sp=racwl&spr=https&sig={SIG}"
)


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in (SIG, SIG_DECODED, *secrets):
        assert secret not in text


# --- parse -------------------------------------------------------------------------------------


def test_parse_blob_sas_path_style() -> None:
    sas = SasUrl.parse(BLOB_SAS)
    assert sas.resource == "b" and sas.is_blob
    assert (sas.account, sas.container, sas.blob) == ("devstoreaccount1", "c1", "dir/a b.bin")
    assert sas.version == "2026-10-06" and sas.permissions == "racw"
    assert sas.expiry == datetime(2024, 1, 1, 1, 0, tzinfo=UTC)
    assert sas.start is None
    assert sas.query == BLOB_QUERY
    assert sas.url == BLOB_SAS
    assert sas.base == "http://127.0.0.1:10000/devstoreaccount1/c1/dir/a%20b.bin"


def test_parse_container_sas_virtual_host() -> None:
    sas = SasUrl.parse(CONTAINER_SAS)
    assert sas.resource == "c" and not sas.is_blob
    assert (sas.account, sas.container, sas.blob) == ("acct", "photos", None)
    assert sas.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert sas.expiry == datetime(2024, 1, 2, tzinfo=UTC)  # 7-digit fraction accepted


@pytest.mark.parametrize(
    ("se", "expected"),
    [
        ("2024-05-06", datetime(2024, 5, 6, tzinfo=UTC)),
        ("2024-05-06T07%3A08Z", datetime(2024, 5, 6, 7, 8, tzinfo=UTC)),
        ("2024-05-06T07:08:09Z", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("2024-05-06T09%3A08%3A09%2B02%3A00", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
    ],
)
def test_expiry_formats(se: str, expected: datetime) -> None:
    assert SasUrl.parse(f"https://a.blob.core.windows.net/c/b?sv=x&sr=b&se={se}&sig=s").expiry == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"https://a.blob.core.windows.net/c/b?sv=2021-08-06&sr=b&se=2024-01-01&nosig={SIG}", "missing 'sig'"),
        (f"https://a.blob.core.windows.net/c/b?sr=b&sig={SIG}", "missing 'sv'"),
        ("https://a.blob.core.windows.net/c/b", "missing 'sv' and 'sig'"),
        (f"https://a.blob.core.windows.net/c/b?sv=x&sig={SIG}", "sr=''"),
        (f"https://a.blob.core.windows.net/?sv=x&ss=b&srt=sco&sp=r&sig={SIG}", "account SAS"),
        (f"https://a.blob.core.windows.net/c?sv=x&sr=b&sig={SIG}", "must name a blob"),
        (f"https://a.blob.core.windows.net/?sv=x&sr=c&sig={SIG}", "must name a container"),
        (f"ftp://a.blob.core.windows.net/c/b?sv=x&sr=b&sig={SIG}", "http"),
        (f"https://a.blob.core.windows.net/c/b?sv=x&sr=b&se=tomorrow&sig={SIG}", "ISO-8601"),
        (f"https://a.blob.core.windows.net/c/b?sv=x&sr=b&sig={SIG}&sig=other", "twice"),
        (f"https://a.blob.core.windows.net/c/b?sv=x&sr=b&sig={SIG}#frag", "fragment"),
    ],
)
def test_parse_errors_are_clear_and_redacted(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        SasUrl.parse(url)
    if "nosig" not in url:  # that one has no sig param: the bogus value is not a secret we know of
        assert_no_secret(str(info.value))


def test_is_sas_url() -> None:
    assert is_sas_url(BLOB_SAS) and is_sas_url(CONTAINER_SAS)
    assert not is_sas_url("https://a.blob.core.windows.net/c/b?sv=1")
    assert not is_sas_url("https://bucket.oss-cn-hangzhou.aliyuncs.com/k?x-oss-signature=abc")
    assert not is_sas_url("http://[bad")


# --- with_params / blob_url -------------------------------------------------------------------


def test_with_params_appends_after_the_verbatim_query() -> None:
    sas = SasUrl.parse(BLOB_SAS)
    bid = block_id("up1", 7)
    url = sas.with_params({"comp": "block", "blockid": bid})
    assert url == f"{BLOB_SAS}&comp=block&blockid={quote(bid, safe='')}"
    # httpx keeps it as is on the wire.
    assert httpx.URL(url).query.decode() == f"{BLOB_QUERY}&comp=block&blockid={quote(bid, safe='')}"
    with pytest.raises(ValueError, match="already in the SAS query") as info:
        sas.with_params({"SIG": "x"})
    assert_no_secret(str(info.value))


def test_container_sas_blob_url() -> None:
    sas = SasUrl.parse(CONTAINER_SAS)
    blob = sas.blob_url("2024/holiday photo #1?.jpg")
    assert blob.base == "https://acct.blob.core.windows.net/photos/2024/holiday%20photo%20%231%3F.jpg"
    assert blob.query == sas.query and blob.is_blob and blob.blob == "2024/holiday photo #1?.jpg"
    assert SasUrl.parse(blob.url) == blob  # round-trips
    with pytest.raises(ValueError, match="already names blob"):
        blob.blob_url("x")
    with pytest.raises(ValueError, match="needs a container SAS"):
        SasUrl.parse(BLOB_SAS).blob_url("x")
    with pytest.raises(ValueError, match="invalid blob name"):
        sas.blob_url("/abs")


def test_append_query() -> None:
    assert append_query("http://h/c/b", {"comp": "block"}) == "http://h/c/b?comp=block"
    assert append_query("http://h/c/b?", {"a": "1"}) == "http://h/c/b?a=1"
    assert append_query("http://h/c/b?x=1", {"b": "+/="}) == "http://h/c/b?x=1&b=%2B%2F%3D"
    assert append_query("http://h/c/b?x=1", {}) == "http://h/c/b?x=1"
    with pytest.raises(ValueError):
        append_query("http://h/c/b#f", {"a": "1"})


# A SAS query as issuers write it: percent-encoded values, fixed names, any order.
_SAFE_VALUE = st.text(max_size=24).map(lambda v: quote(v, safe=""))
_SIG_BYTES = st.binary(min_size=32, max_size=32)


@st.composite
def sas_queries(draw: st.DrawFn) -> tuple[str, str]:
    sig = base64.b64encode(draw(_SIG_BYTES)).decode()
    pairs = [
        ("sv", "2026-10-06"),
        ("sr", "b"),
        ("sp", draw(st.sampled_from(["r", "racw", "rw"]))),
        ("se", quote(draw(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1))).strftime("%Y-%m-%dT%H:%M:%SZ"))),
        ("sig", quote(sig, safe="")),
    ]
    for name in draw(st.lists(st.sampled_from(["spr", "sip", "si", "rscd", "rsct", "skoid"]), unique=True)):
        pairs.append((name, draw(_SAFE_VALUE)))
    order = draw(st.permutations(pairs))
    return "&".join(f"{k}={v}" for k, v in order), sig


_EXTRA = st.dictionaries(
    st.sampled_from(["comp", "blockid", "blocklisttype", "restype", "timeout"]), st.text(max_size=40), max_size=4
)


@settings(max_examples=200, deadline=None)
@given(q=sas_queries(), extra=_EXTRA, blob=st.text(min_size=1, max_size=20).filter(lambda s: not s.startswith("/")))
def test_merged_urls_keep_the_sas_query_verbatim(q: tuple[str, str], extra: dict[str, str], blob: str) -> None:
    query, _sig = q
    url = f"http://127.0.0.1:10000/devstoreaccount1/cont/{quote(blob, safe='/')}?{query}"
    sas = SasUrl.parse(url)
    assert sas.query == query and sas.url == url
    merged = sas.with_params(extra)
    assert merged.startswith(url)
    wire = httpx.URL(merged).query.decode()
    assert wire.startswith(query)
    # The extra parameters come back intact through the service's decoding.
    tail = wire[len(query) :].lstrip("&")
    got = dict(p.split("=", 1) for p in tail.split("&")) if tail else {}
    assert {k: unquote(v) for k, v in got.items()} == extra


@settings(max_examples=200, deadline=None)
@given(q=sas_queries(), extra=_EXTRA)
def test_sig_never_survives_redaction(q: tuple[str, str], extra: dict[str, str]) -> None:
    query, sig = q
    sas = SasUrl.parse(f"https://acct.blob.core.windows.net/c/b?{query}")
    encoded = quote(sig, safe="")
    for text in (sas.redacted(), repr(sas), str(sas), f"{sas}", redact_url(sas.with_params(extra))):
        assert sig not in text and encoded not in text
        assert f"sig={REDACTED}" in text
    assert sas.redacted() == redact_url(sas.url)  # one redaction rule for the whole app


def test_expires_within() -> None:
    sas = SasUrl.parse(BLOB_SAS)  # expires 2024-01-01T01:00Z
    now = datetime(2024, 1, 1, 0, 50, tzinfo=UTC)
    assert sas.expires_within(timedelta(minutes=10), now=now)
    assert not sas.expires_within(timedelta(minutes=9), now=now)
    assert sas.expires_within(timedelta(0), now=datetime(2024, 1, 2, tzinfo=UTC))  # already expired
    assert sas.expires_within(timedelta(days=1))  # long past by the real clock
    no_se = SasUrl.parse("https://a.blob.core.windows.net/c/b?sv=x&sr=b&si=policy&sig=s")
    assert no_se.expiry is None and not no_se.expires_within(timedelta(days=365))
    with pytest.raises(ValueError):
        sas.expires_within(timedelta(0), now=datetime(2024, 1, 1))


# --- block ids -----------------------------------------------------------------------------------

_PREFIX = st.from_regex(rf"\A[A-Za-z0-9._:-]{{1,{MAX_PREFIX_LEN}}}\Z")


@settings(max_examples=200, deadline=None)
@given(prefix=_PREFIX, indexes=st.lists(st.integers(0, MAX_BLOCK_INDEX), min_size=1, max_size=20))
def test_block_ids_are_equal_length_base64_and_round_trip(prefix: str, indexes: list[int]) -> None:
    ids = [block_id(prefix, i) for i in indexes]
    assert len({len(i) for i in ids}) == 1
    for i, bid in zip(indexes, ids, strict=True):
        raw = base64.b64decode(bid, validate=True)
        assert len(raw) <= MAX_BLOCK_ID_BYTES and len(raw) == len(prefix) + 7
        assert parse_block_id(bid) == (prefix, i)
        assert block_id(prefix, i) == bid  # deterministic
    assert len(set(ids)) == len(set(indexes))


def test_block_id_layout_is_documented() -> None:
    assert base64.b64decode(block_id("abc", 42)) == b"abc-000042"
    assert len(block_id(block_prefix("x"), 0)) == 36 and "=" not in block_id(block_prefix("x"), 0)


@pytest.mark.parametrize(
    ("prefix", "index"),
    [("", 0), ("a b", 0), ("a\n", 0), ("é", 0), ("a" * 58, 0), ("a", -1), ("a", 10**6), ("a", True)],
)
def test_block_id_rejects_bad_input(prefix: str, index: int) -> None:
    with pytest.raises(ValueError):
        block_id(prefix, index)


@pytest.mark.parametrize(
    "foreign",
    [
        "not base64!",
        base64.b64encode(b"blk-00001").decode(),  # 5 digits
        base64.b64encode(b"000000").decode(),  # no prefix
        base64.b64encode(b"a_000001").decode(),  # no dash
        base64.b64encode(b"\xff\xfe-000001").decode(),  # not ASCII
        base64.b64encode(b"a b-000001").decode(),  # bad prefix
        base64.b64encode(b"1" * 48).decode(),  # SDK-style uuid-digits id
    ],
)
def test_parse_block_id_rejects_foreign_ids(foreign: str) -> None:
    with pytest.raises(ValueError, match="not a block id of ours"):
        parse_block_id(foreign)


def test_block_prefix_is_stable_and_layout_sensitive() -> None:
    a = block_prefix("http://h/c/b", 1000, 4 * 2**20)
    assert a == block_prefix("http://h/c/b", 1000, 4 * 2**20)
    assert a != block_prefix("http://h/c/b", 1000, 8 * 2**20)
    assert len(a) == 20 and len(block_prefix("x", length=57)) == 57
    with pytest.raises(ValueError):
        block_prefix("x", length=0)


# --- block list XML --------------------------------------------------------------------------------


def test_block_list_xml() -> None:
    body = block_list_xml(["QQ==", "Qg=="])
    assert (
        body
        == b'<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>QQ==</Latest><Latest>Qg==</Latest></BlockList>'
    )
    assert b"<Uncommitted>" in block_list_xml(["QQ=="], kind="Uncommitted")
    with pytest.raises(ValueError):
        block_list_xml([], kind="Bogus")


def test_parse_block_list() -> None:
    xml = (
        b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?><BlockList><CommittedBlocks>'
        b"<Block><Name>QQ==</Name><Size>5</Size></Block></CommittedBlocks><UncommittedBlocks>"
        b"<Block><Name>Qg==</Name><Size>7</Size></Block><Block><Name>Qw==</Name><Size>0</Size></Block>"
        b"</UncommittedBlocks></BlockList>"
    )
    parsed = parse_block_list(xml)
    assert parsed.committed == (BlockInfo("QQ==", 5),)
    assert parsed.uncommitted == (BlockInfo("Qg==", 7), BlockInfo("Qw==", 0))
    empty = parse_block_list('<?xml version="1.0" encoding="utf-8"?><BlockList><CommittedBlocks /></BlockList>')
    assert empty.committed == () and empty.uncommitted == ()
    with pytest.raises(ValueError, match="BlockList"):
        parse_block_list(b"<Error/>")
