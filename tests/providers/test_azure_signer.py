"""Shared Key signer: the documented known-answer vector, edge rules, and the SDK as an oracle.

The oracle is azure-storage-blob's private ``SharedKeyCredentialPolicy`` (version pinned in the
test extra because ``_shared`` is private). Its string-to-sign is captured by replacing the
instance's ``_add_authorization_header``. Generated requests avoid the SDK's two known quirks
(reference §2.5): no standard ``Range`` header (the SDK never fills slot 12) and ``x-ms-*`` names
without extra dashes (the SDK sorts with a collation that ignores ``-``).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.providers.azure_blob import (
    EMULATOR_ACCOUNT_KEY,
    EMULATOR_ACCOUNT_NAME,
    X_MS_VERSION,
    AzureSharedKey,
    range_header,
    string_to_sign,
)
from app.providers.azure_blob.signer import canonicalized_headers, canonicalized_resource, rfc1123

KAT_URL = "http://127.0.0.1:10000/devstoreaccount1/c1/a%20b.bin?comp=block&blockid=YmxrLTAwMDAwMQ=="
KAT_NOW = datetime(2024, 1, 1, tzinfo=UTC)
KAT_AUTH = "SharedKey devstoreaccount1:4eHkDbOLEdu4nu9Z1Y/4n1LwwwC6Ff/xmGKHqaUyyGw="


@pytest.fixture
def key() -> AzureSharedKey:
    return AzureSharedKey(EMULATOR_ACCOUNT_NAME, EMULATOR_ACCOUNT_KEY)


# --- known answer and the documented layout -------------------------------------------------


def test_known_answer_vector(key: AzureSharedKey) -> None:
    headers = {"x-ms-version": "2021-08-06", "Content-Length": "5", "x-ms-client-request-id": "abc"}
    signed = key.sign("PUT", KAT_URL, headers, now=KAT_NOW)
    assert signed["Authorization"] == KAT_AUTH
    assert signed["x-ms-date"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert headers == {"x-ms-version": "2021-08-06", "Content-Length": "5", "x-ms-client-request-id": "abc"}


def test_known_answer_string_to_sign_layout(key: AzureSharedKey) -> None:
    signed = key.sign("put", KAT_URL, {"Content-Length": "5", "x-ms-client-request-id": "abc"}, now=KAT_NOW)
    text = key.string_to_sign("PUT", KAT_URL, signed)
    lines = text.split("\n")
    assert lines[0] == "PUT"
    assert lines[1:12] == ["", "", "5", "", "", "", "", "", "", "", ""]  # 11 standard slots, Length=5
    assert lines[12:15] == [
        "x-ms-client-request-id:abc",
        "x-ms-date:Mon, 01 Jan 2024 00:00:00 GMT",
        f"x-ms-version:{X_MS_VERSION}",
    ]
    # Path-style emulator URL: the account twice, path still encoded, query decoded and sorted.
    assert lines[15:] == ["/devstoreaccount1/devstoreaccount1/c1/a%20b.bin", "blockid:YmxrLTAwMDAwMQ==", "comp:block"]
    assert signed["Authorization"] == f"SharedKey devstoreaccount1:{key.signature(text)}"


def test_sign_adds_version_date_and_keeps_callers_version(key: AzureSharedKey) -> None:
    signed = key.sign("GET", "http://h/devstoreaccount1/c/b", {}, now=KAT_NOW)
    assert signed["x-ms-version"] == X_MS_VERSION == "2021-08-06"
    assert set(signed) == {"x-ms-date", "x-ms-version", "Authorization"}
    other = key.sign("GET", "http://h/devstoreaccount1/c/b", {"X-MS-Version": "2020-10-02"}, now=KAT_NOW)
    assert other["X-MS-Version"] == "2020-10-02" and "x-ms-version" not in other


def test_sign_replaces_stale_date_and_authorization(key: AzureSharedKey) -> None:
    first = key.sign("GET", "http://h/a/c/b", {}, now=KAT_NOW)
    again = key.sign("GET", "http://h/a/c/b", first, now=KAT_NOW + timedelta(seconds=1))
    assert again["x-ms-date"] == "Mon, 01 Jan 2024 00:00:01 GMT"
    assert again["Authorization"] != first["Authorization"]
    assert sum(k.lower() == "authorization" for k in again) == 1


def test_injectable_clock_and_timezones() -> None:
    ticks = iter([datetime(2024, 3, 10, 12, 0, tzinfo=timezone(timedelta(hours=8)))])
    key = AzureSharedKey(EMULATOR_ACCOUNT_NAME, EMULATOR_ACCOUNT_KEY, clock=lambda: next(ticks))
    assert key.sign("GET", "http://h/a/c/b", {})["x-ms-date"] == "Sun, 10 Mar 2024 04:00:00 GMT"
    with pytest.raises(ValueError, match="timezone-aware"):
        rfc1123(datetime(2024, 1, 1))


def test_content_length_zero_is_an_empty_slot(key: AzureSharedKey) -> None:
    url = "http://h/devstoreaccount1/c/b"
    base = {"x-ms-date": "Mon, 01 Jan 2024 00:00:00 GMT"}
    assert key.string_to_sign("PUT", url, {**base, "Content-Length": "0"}) == key.string_to_sign("PUT", url, base)
    assert key.string_to_sign("PUT", url, {**base, "Content-Length": "7"}).split("\n")[3] == "7"


def test_range_goes_to_slot_12_and_date_slot_stays_empty(key: AzureSharedKey) -> None:
    headers = {
        "x-ms-date": "Mon, 01 Jan 2024 00:00:00 GMT",
        "Range": "bytes=0-9",
        "Date": "Sun, 31 Dec 2023 00:00:00 GMT",
        "If-Match": '"0x8D"',
    }
    lines = key.string_to_sign("GET", "http://h/a/c/b", headers).split("\n")
    assert lines[11] == "bytes=0-9"  # slot 12 counting the verb
    assert lines[8] == '"0x8D"'
    assert lines[6] == ""  # x-ms-date wins over Date


def test_range_header_uses_x_ms_range() -> None:
    assert range_header(0, 9) == {"x-ms-range": "bytes=0-9"}
    assert range_header(5) == {"x-ms-range": "bytes=5-"}
    for bad in ((-1, 3), (10, 9)):
        with pytest.raises(ValueError):
            range_header(*bad)


def test_canonicalized_headers_lowercase_sorted_unfolded() -> None:
    headers = {
        "X-Ms-Meta-B": "  two   words\t here ",
        "x-ms-meta-a": 'keep "  quoted  " spaces',
        "Content-Type": "text/plain",
        "x-ms-date": "d",
    }
    assert canonicalized_headers(headers) == (
        'x-ms-date:d\nx-ms-meta-a:keep "  quoted  " spaces\nx-ms-meta-b:two words here\n'
    )
    with pytest.raises(ValueError, match="twice"):
        canonicalized_headers({"x-ms-a": "1", "X-MS-A": "2"})


def test_canonicalized_resource_query_rules() -> None:
    url = "https://acct.blob.core.windows.net/c/dir/x%2By.bin?Comp=list&include=b&include=a&prefix=a%20b%2Bc&restype="
    assert canonicalized_resource("acct", url) == (
        "/acct/c/dir/x%2By.bin\ncomp:list\ninclude:a,b\nprefix:a b+c\nrestype:"
    )
    assert canonicalized_resource("acct", "https://acct.blob.core.windows.net") == "/acct/"
    # httpx decides the wire encoding; we sign what it sends.
    assert canonicalized_resource("acct", "https://acct.blob.core.windows.net/c/a b") == "/acct/c/a%20b"


def test_module_level_string_to_sign_matches_method(key: AzureSharedKey) -> None:
    headers = {"x-ms-date": "x"}
    assert string_to_sign("GET", KAT_URL, headers, "devstoreaccount1") == key.string_to_sign("GET", KAT_URL, headers)


# --- the credential object -------------------------------------------------------------------


def test_repr_and_str_hide_the_key(key: AzureSharedKey) -> None:
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert EMULATOR_ACCOUNT_KEY not in text
        assert EMULATOR_ACCOUNT_KEY[:12] not in text
        assert "devstoreaccount1" in text


@pytest.mark.parametrize("bad", ["not base64!", "abc", "", "   ", "YWJj\x00"])
def test_invalid_key_is_a_clear_error_without_the_key(bad: str) -> None:
    with pytest.raises(ValueError, match="account key for 'acct'") as info:
        AzureSharedKey("acct", bad)
    if bad.strip():
        assert bad.strip() not in str(info.value)


@pytest.mark.parametrize("name", ["", "a/b", "a:b", "a b", "acct\n"])
def test_invalid_account_name(name: str) -> None:
    with pytest.raises(ValueError, match="account name"):
        AzureSharedKey(name, EMULATOR_ACCOUNT_KEY)


def test_frozen_and_comparable(key: AzureSharedKey) -> None:
    with pytest.raises(AttributeError):
        key.account_name = "other"  # type: ignore[misc]
    assert key == AzureSharedKey(EMULATOR_ACCOUNT_NAME, EMULATOR_ACCOUNT_KEY, clock=lambda: KAT_NOW)


# --- the SDK as an oracle ----------------------------------------------------------------------


def sdk_sign(account: str, account_key: str, method: str, url: str, headers: dict[str, str]) -> tuple[str, str]:
    """(string-to-sign, Authorization) as the official SDK computes them."""
    sdk_auth = pytest.importorskip("azure.storage.blob._shared.authentication")
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.pipeline.transport import HttpRequest

    policy = sdk_auth.SharedKeyCredentialPolicy(account, account_key)
    captured: list[str] = []
    original = policy._add_authorization_header

    def spy(request, text):
        captured.append(text)
        return original(request, text)

    policy._add_authorization_header = spy
    request = HttpRequest(method, url, headers=dict(headers))
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    return captured[0], request.headers["Authorization"]


def test_sdk_oracle_agrees_on_the_known_answer(key: AzureSharedKey) -> None:
    signed = key.sign("PUT", KAT_URL, {"Content-Length": "5", "x-ms-client-request-id": "abc"}, now=KAT_NOW)
    sdk_text, sdk_header = sdk_sign(EMULATOR_ACCOUNT_NAME, EMULATOR_ACCOUNT_KEY, "PUT", KAT_URL, signed)
    assert sdk_text == key.string_to_sign("PUT", KAT_URL, signed)
    assert sdk_header == signed["Authorization"] == KAT_AUTH


_NAME = st.from_regex(r"\A[a-z][a-z0-9]{0,10}\Z")
_HEADER_VALUE = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20).flatmap(
    lambda first: st.lists(
        st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12), max_size=3
    ).map(lambda rest: " ".join([first, *rest]))
)
_STANDARD = st.fixed_dictionaries(
    {},
    optional={
        "Content-Encoding": st.sampled_from(["gzip", "identity"]),
        "Content-Language": st.sampled_from(["en-US", "zh-CN"]),
        "Content-Length": st.integers(0, 10**12).map(str),
        "Content-MD5": st.binary(min_size=16, max_size=16).map(lambda b: base64.b64encode(b).decode()),
        "Content-Type": st.sampled_from(["application/octet-stream", "text/plain; charset=utf-8"]),
        "If-Modified-Since": st.just("Mon, 01 Jan 2024 00:00:00 GMT"),
        "If-Match": _HEADER_VALUE,
        "If-None-Match": st.just("*"),
        "If-Unmodified-Since": st.just("Tue, 02 Jan 2024 00:00:00 GMT"),
    },
)


_WHEN = st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, str, dict[str, str]]:
    account = draw(st.sampled_from(["devstoreaccount1", "myaccount"]))
    path_style = account == "devstoreaccount1"
    # "." and ".." segments are collapsed by httpx before sending, so they would name another resource
    segment = st.text(min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
    segments = draw(st.lists(segment, min_size=1, max_size=4))
    path = "/".join(quote(s, safe="") for s in segments)
    names = draw(st.lists(_NAME, max_size=5, unique=True))
    query = "&".join(f"{n}={quote(draw(st.text(max_size=12)), safe='')}" for n in names)
    host = "http://127.0.0.1:10000/devstoreaccount1" if path_style else f"https://{account}.blob.core.windows.net"
    url = f"{host}/{path}" + (f"?{query}" if query else "")
    headers = dict(draw(_STANDARD))
    for name in draw(st.lists(_NAME, max_size=5, unique=True)):
        headers[f"x-ms-{name}"] = draw(_HEADER_VALUE)
    method = draw(st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"]))
    return account, method, url, headers


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests(), key_bytes=st.binary(min_size=1, max_size=64), when=_WHEN)
def test_string_to_sign_matches_sdk(
    req: tuple[str, str, str, dict[str, str]], key_bytes: bytes, when: datetime
) -> None:
    account, method, url, headers = req
    account_key = base64.b64encode(key_bytes).decode()
    ours = AzureSharedKey(account, account_key)
    signed = ours.sign(method, url, headers, now=when)
    sdk_text, sdk_header = sdk_sign(account, account_key, method, url, signed)
    assert ours.string_to_sign(method, url, signed) == sdk_text
    assert signed["Authorization"] == sdk_header
