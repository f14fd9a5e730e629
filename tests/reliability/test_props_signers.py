"""Canonicalisation laws of the OSS V4 and Azure Shared Key signers, checked on generated requests.

tests/providers already pins both signers to known answers and to the official SDKs on generated requests. This
module adds the laws a canonical form must obey, which a cross-check on one spelling of each request cannot see:

* how a request is *spelled* never matters: header order, header-name case, query-pair order, the percent-encoding
  of unreserved characters (the signature is the same, and the SDK still agrees on the reshuffled request);
* what is *signed* always matters: changing the method, bucket/key or path, a query name or value, a signed header,
  the time, the region or the secret changes the signature (and the OSS verifier then rejects the old one), while
  an unsigned header leaves it alone;
* OSS query encoding round-trips (encode → split → decode gives the parameters back) and canonicalising is
  idempotent.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.providers.aliyun_oss.signer import (
    OssCredentials,
    OssV4Signer,
    canonical_query_string,
    encode_query,
)
from app.providers.azure_blob import AzureSharedKey
from app.providers.azure_blob.signer import canonicalized_resource
from tests.providers.test_azure_signer import requests as _azure_requests
from tests.providers.test_azure_signer import sdk_sign
from tests.providers.test_oss_signer import AK, SK, _requests, _sdk_context
from tests.reliability.scale import scaled, scaled_timeout
from tests.support.fake_oss import OssAuthError, verify_request

pytestmark = pytest.mark.timeout(scaled_timeout(60))
PROPS = settings(max_examples=scaled(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
ORACLE = settings(max_examples=scaled(50), deadline=None, suppress_health_check=[HealthCheck.too_slow])  # slow SDKs


def _respell(headers: dict[str, str], rng: random.Random) -> dict[str, str]:
    """The same headers in another order with randomly cased names."""
    items = list(headers.items())
    rng.shuffle(items)
    return {"".join(c.upper() if rng.random() < 0.5 else c.lower() for c in k): v for k, v in items}


def _shuffle_query(url: str, rng: random.Random) -> str:
    parts = urlsplit(url)
    pairs = [p for p in parts.query.split("&") if p]
    rng.shuffle(pairs)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(pairs), ""))


# ---------------------------------------------------------------------------------------------------------- OSS
def _oss_sign(req: dict, **over: object) -> str:
    r = {**req, **over}
    signer = OssV4Signer(OssCredentials(AK, str(r.get("secret", SK)), r["token"]), r["region"])
    return signer.sign_request(r["method"], r["url"], r["headers"], bucket=r["bucket"], key=r["key"], now=r["now"],
                               additional_headers=r["additional"]).signature


def _oss_presign(req: dict) -> str:
    signer = OssV4Signer(OssCredentials(AK, SK, req["token"]), req["region"])
    return signer.presign_request(req["method"], req["url"], bucket=req["bucket"], key=req["key"], now=req["now"],
                                  expires=timedelta(seconds=900), headers=req["headers"],
                                  additional_headers=req["additional"]).signature


@ORACLE
@given(_requests(), st.randoms(use_true_random=False))
def test_oss_spelling_of_headers_and_query_does_not_change_the_signature(req: dict, rng: random.Random) -> None:
    respelled = {**req, "headers": _respell(req["headers"], rng), "url": _shuffle_query(req["url"], rng),
                 "additional": [a.upper() if rng.random() < 0.5 else a for a in req["additional"]]}
    assert _oss_sign(respelled) == _oss_sign(req)
    assert _oss_presign(respelled) == _oss_presign(req)
    # ...and the official signer agrees on the respelled request (header form)
    sdk = _sdk_context(respelled, query_form=False)
    assert sdk.request.headers["Authorization"].endswith("Signature=" + _oss_sign(req))


_OSS_MUTATIONS = ["method", "bucket", "key", "query_value", "query_new", "signed_header", "drop_signed_header",
                  "additional_header", "region", "secret", "time", "token"]


def _oss_mutate(req: dict, kind: str, rng: random.Random) -> dict | None:
    """A copy of ``req`` with one signed element changed, or None when ``req`` has no such element."""
    out = {**req, "headers": dict(req["headers"])}
    signed = [k for k in req["headers"] if k.lower().startswith("x-oss-") or k.lower() in ("content-type",
                                                                                            "content-md5")]
    if kind == "method":
        out["method"] = rng.choice([m for m in ("GET", "PUT", "POST", "DELETE", "HEAD") if m != req["method"]])
    elif kind == "bucket":
        out["bucket"] = req["bucket"] + "x"
    elif kind == "key":
        out["key"] = (req["key"] or "") + "k"
    elif kind == "query_value":
        parts = urlsplit(req["url"])
        pairs = [p for p in parts.query.split("&") if p]
        if not pairs:
            return None
        i = rng.randrange(len(pairs))
        pairs[i] = pairs[i] + ("x" if "=" in pairs[i] else "=x")
        out["url"] = urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(pairs), ""))
    elif kind == "query_new":
        out["url"] = req["url"] + ("&" if urlsplit(req["url"]).query else "?") + "zz-added=1"
    elif kind == "signed_header":
        if not signed:
            return None
        name = rng.choice(signed)
        out["headers"][name] = req["headers"][name] + "x"
    elif kind == "drop_signed_header":
        candidates = [k for k in signed if req["headers"][k]]  # an empty signed header is signed as absent
        if not candidates:
            return None
        del out["headers"][rng.choice(candidates)]
    elif kind == "additional_header":
        present = {k.lower(): k for k, v in req["headers"].items() if v}
        extra = [present[a.lower()] for a in req["additional"] if a.lower() in present]
        if not extra:
            return None
        name = rng.choice(extra)
        out["headers"][name] = req["headers"][name] + "x"
    elif kind == "region":
        out["region"] = "eu-west-1" if req["region"] != "eu-west-1" else "cn-shanghai"
    elif kind == "secret":
        out["secret"] = SK + "x"
    elif kind == "time":
        out["now"] = req["now"] + timedelta(seconds=1)
    elif kind == "token":
        out["token"] = (req["token"] or "") + "t"
    return out


@PROPS
@given(_requests(), st.sampled_from(_OSS_MUTATIONS), st.randoms(use_true_random=False))
def test_oss_any_change_to_a_signed_element_changes_the_signature(req: dict, kind: str, rng: random.Random) -> None:
    mutated = _oss_mutate(req, kind, rng)
    if mutated is None:
        return
    assert _oss_sign(mutated) != _oss_sign(req), kind


@PROPS
@given(_requests(), st.sampled_from(["query_value", "query_new", "signed_header", "method", "key"]),
       st.randoms(use_true_random=False))
def test_oss_verifier_rejects_a_request_changed_after_signing(req: dict, kind: str, rng: random.Random) -> None:
    """What the fake server does with a request altered in flight: the original signature no longer verifies."""
    path_url = f"http://127.0.0.1:1/{req['bucket']}/" + quote(req["key"] or "", safe="/") + (
        "?" + urlsplit(req["url"]).query if urlsplit(req["url"]).query else "")
    req = {**req, "url": path_url}
    mutated = _oss_mutate(req, kind, rng)
    if mutated is None:
        return
    signed = OssV4Signer(OssCredentials(AK, SK, req["token"]), req["region"]).sign_request(
        req["method"], req["url"], req["headers"], bucket=req["bucket"], key=req["key"], now=req["now"],
        additional_headers=req["additional"])
    creds = OssCredentials(AK, SK, req["token"])
    verify_request(req["method"], signed.url, signed.headers, {AK: creds}.get, req["now"], region=req["region"])
    # the mutated request carries the original signature headers
    headers = {**signed.headers}
    for name in req["headers"]:
        headers.pop(name, None)
    headers.update(mutated["headers"])
    key_url = f"http://127.0.0.1:1/{mutated['bucket']}/" + quote(mutated["key"] or "", safe="/") + (
        "?" + urlsplit(mutated["url"]).query if urlsplit(mutated["url"]).query else "")
    with pytest.raises(OssAuthError) as info:
        verify_request(mutated["method"], key_url, headers, {AK: creds}.get, req["now"], region=req["region"])
    assert info.value.code == "SignatureDoesNotMatch"


@PROPS
@given(_requests(), st.sampled_from(["x-unsigned-thing", "User-Agent", "Accept", "Range"]),
       st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12))
def test_oss_unsigned_headers_do_not_change_the_signature(req: dict, name: str, value: str) -> None:
    if any(k.lower() == name.lower() for k in req["headers"]) or any(a.lower() == name.lower()
                                                                      for a in req["additional"]):
        return
    assert _oss_sign({**req, "headers": {**req["headers"], name: value}}) == _oss_sign(req)


_QUERY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=scaled(300), deadline=None)
@given(st.dictionaries(_QUERY_TEXT.filter(bool), _QUERY_TEXT, max_size=6), st.randoms(use_true_random=False))
def test_oss_query_encoding_round_trips_and_canonicalising_is_idempotent(params: dict[str, str],
                                                                         rng: random.Random) -> None:
    query = encode_query(params)
    decoded = {}
    for piece in query.split("&") if query else []:
        k, _, v = piece.partition("=")
        decoded[unquote(k)] = unquote(v)
    assert decoded == params
    canonical = canonical_query_string(query)
    assert canonical_query_string(canonical) == canonical
    pieces = query.split("&") if query else []
    rng.shuffle(pieces)
    assert canonical_query_string("&".join(pieces)) == canonical
    # spelling an unreserved character as %XX (or a reserved one in lower-case hex) does not change the canonical
    respelled = "&".join(p.replace("a", "%61").replace("%2F", "%2f") for p in pieces)
    assert canonical_query_string(respelled) == canonical


# -------------------------------------------------------------------------------------------------------- Azure
_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_OTHER_KEY = "AAAAvdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_WHEN = st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))


def _no_dot_segments(req: tuple) -> bool:
    """httpx collapses "." and ".." path segments before sending (and we sign what it sends); the SDK signs them
    as written. Such names address another blob anyway, so the comparison leaves them out."""
    return not any(seg in (".", "..") for seg in urlsplit(req[2]).path.split("/"))


def azure_requests() -> st.SearchStrategy[tuple]:
    return _azure_requests().filter(_no_dot_segments)


def _az(account: str, method: str, url: str, headers: dict[str, str], now: object, key: str = _KEY) -> str:
    return AzureSharedKey(account, key).sign(method, url, headers, now=now)["Authorization"]  # type: ignore[arg-type]


@ORACLE
@given(azure_requests(), _WHEN, st.randoms(use_true_random=False))
def test_azure_spelling_of_headers_and_query_does_not_change_the_signature(req: tuple, when: object,
                                                                           rng: random.Random) -> None:
    account, method, url, headers = req
    base = _az(account, method, url, headers, when)
    respelled_headers = _respell(headers, rng)
    respelled_url = _shuffle_query(url, rng)
    assert _az(account, method.lower(), respelled_url, respelled_headers, when) == base
    # The SDK agrees on the reordered request. (Order only: the SDK's policy matches "x-ms-" case-sensitively, so
    # it would drop an "X-MS-Meta" header that the service, which lower-cases names, signs; we lower-case like the
    # service, and test_string_to_sign_matches_sdk keeps to lower-case names for the same reason.)
    items = list(headers.items())
    rng.shuffle(items)
    signed = AzureSharedKey(account, _KEY).sign(method, respelled_url, dict(items), now=when)  # type: ignore[arg-type]
    _, sdk_header = sdk_sign(account, _KEY, method, respelled_url, signed)
    assert sdk_header == base


@PROPS
@given(azure_requests())
def test_azure_query_values_are_signed_decoded(req: tuple) -> None:
    """A server decodes the query before canonicalising, so %-spelling an unreserved character is the same request;
    '+' is a literal plus (never a space), so '%2B' and '+' sign alike and differ from '%20'."""
    account, _, url, _ = req
    parts = urlsplit(url)
    respelled = "&".join(p.replace("a", "%61") for p in parts.query.split("&")) if parts.query else ""
    assert canonicalized_resource(account, urlunsplit((*parts[:3], respelled, ""))) == \
        canonicalized_resource(account, url)
    base = url + ("&" if parts.query else "?") + "zq="
    assert canonicalized_resource(account, base + "a%2Bb") == canonicalized_resource(account, base + "a+b")
    assert canonicalized_resource(account, base + "a%20b") != canonicalized_resource(account, base + "a+b")


_AZ_MUTATIONS = ["method", "path", "query_value", "query_name", "x_ms_value", "standard", "range", "key", "time"]


@PROPS
@given(azure_requests(), _WHEN, st.sampled_from(_AZ_MUTATIONS), st.randoms(use_true_random=False))
def test_azure_any_change_to_a_signed_element_changes_the_signature(req: tuple, when: object, kind: str,
                                                                    rng: random.Random) -> None:
    account, method, url, headers = req
    base = _az(account, method, url, headers, when)
    headers = dict(headers)
    key = _KEY
    parts = urlsplit(url)
    if kind == "method":
        method = rng.choice([m for m in ("GET", "PUT", "HEAD", "DELETE", "POST") if m != method])
    elif kind == "path":
        url = urlunsplit((parts.scheme, parts.netloc, parts.path + "x", parts.query, ""))
    elif kind in ("query_value", "query_name"):
        pairs = [p for p in parts.query.split("&") if p]
        if not pairs:
            return
        i = rng.randrange(len(pairs))
        name, _, value = pairs[i].partition("=")
        pairs[i] = f"{name}={value}x" if kind == "query_value" else f"{name}q={value}"
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(pairs), ""))
    elif kind == "x_ms_value":
        names = [k for k in headers if k.startswith("x-ms-")]
        if not names:
            return
        name = rng.choice(names)
        headers[name] += "x"
    elif kind == "standard":
        headers["Content-Type"] = headers.get("Content-Type", "") + "x"
    elif kind == "range":
        headers["Range"] = "bytes=0-9"
    elif kind == "key":
        key = _OTHER_KEY
    elif kind == "time":
        when = when + timedelta(seconds=1)  # type: ignore[operator]
    assert _az(account, method, url, headers, when, key) != base, kind


@PROPS
@given(azure_requests(), _WHEN, st.sampled_from(["X-Custom-Thing", "User-Agent", "Accept", "x-msnot-signed"]),
       st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12))
def test_azure_unsigned_headers_and_folded_whitespace_do_not_change_the_signature(req: tuple, when: object,
                                                                                  name: str, value: str) -> None:
    account, method, url, headers = req
    base = _az(account, method, url, headers, when)
    assert _az(account, method, url, {**headers, name: value}, when) == base
    # runs of blanks outside quotes unfold to one space, and surrounding blanks are trimmed
    unfolded = {k: (" " + v.replace(" ", " \t ") + "  ") if k.startswith("x-ms-") and '"' not in v else v
                for k, v in headers.items()}
    assert _az(account, method, url, unfolded, when) == base
