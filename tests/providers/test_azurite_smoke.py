"""Against a real blob service (Azurite): plain httpx plus our signer, SAS handling and block ids.

One scenario, three ways in (Shared Key, blob SAS, container SAS): stage three blocks with
deterministic ids, see them as uncommitted, commit them, read a range byte-exact with
``x-ms-range``, get 412 on a stale If-Match, HEAD; the SDK reads the blob back as the oracle.
Then the failure edges: a wrong key, a read-only SAS and an expired SAS all give 403.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.providers.azure_blob import (
    EMULATOR_ACCOUNT_KEY,
    X_MS_VERSION,
    AzureSharedKey,
    SasUrl,
    append_query,
    block_id,
    block_list_xml,
    block_prefix,
    parse_block_id,
    parse_block_list,
    range_header,
)
from tests.support.azurite import AzuriteServer


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client


@dataclass
class Target:
    """How to address one blob: a URL builder (params appended, never via httpx params=) and auth."""

    url: Callable[[dict[str, str]], str]
    sign: Callable[[str, str, dict[str, str]], dict[str, str]]


def shared_key_target(azurite: AzuriteServer, container: str, blob: str) -> Target:
    key = azurite.shared_key()
    base = azurite.blob_url(container, blob)
    return Target(url=lambda extra: append_query(base, extra), sign=key.sign)


def sas_target(sas: SasUrl) -> Target:
    def sign(method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "x-ms-version": X_MS_VERSION}

    return Target(url=sas.with_params, sign=sign)


def send(http: httpx.Client, target: Target, method: str, extra: dict[str, str], headers=None, body: bytes = b""):
    url = target.url(extra)
    headers = dict(headers or {})
    if body or method == "PUT":
        headers["Content-Length"] = str(len(body))
    return http.request(method, url, headers=target.sign(method, url, headers), content=body or None)


def upload_and_download(http: httpx.Client, target: Target, name: str) -> bytes:
    """The whole block blob round trip; returns the uploaded bytes."""
    parts = [os.urandom(1000), os.urandom(1000), os.urandom(17)]
    data = b"".join(parts)
    prefix = block_prefix(name, len(data), 1000)
    ids = [block_id(prefix, i) for i in range(len(parts))]

    for bid, part in zip(ids, parts, strict=True):
        md5 = base64.b64encode(hashlib.md5(part).digest()).decode()
        r = send(http, target, "PUT", {"comp": "block", "blockid": bid}, {"Content-MD5": md5}, part)
        assert r.status_code == 201, r.text

    r = send(http, target, "GET", {"comp": "blocklist", "blocklisttype": "uncommitted"})
    assert r.status_code == 200, r.text
    listed = parse_block_list(r.content)
    assert listed.committed == ()
    assert sorted((b.name, b.size) for b in listed.uncommitted) == sorted(zip(ids, map(len, parts), strict=True))
    assert sorted(parse_block_id(b.name)[1] for b in listed.uncommitted) == [0, 1, 2]  # resume can rebuild

    r = send(http, target, "PUT", {"comp": "blocklist"}, {"Content-Type": "application/xml"}, block_list_xml(ids))
    assert r.status_code == 201, r.text
    etag = r.headers["ETag"]

    r = send(http, target, "GET", {}, {**range_header(995, 1004), "If-Match": etag})
    assert r.status_code == 206, r.text
    assert r.content == data[995:1005]
    assert r.headers["Content-Range"] == f"bytes 995-1004/{len(data)}"

    r = send(http, target, "GET", {}, {**range_header(2000), "If-Match": etag})
    assert (r.status_code, r.content) == (206, data[2000:])

    r = send(http, target, "GET", {}, {**range_header(0, 9), "If-Match": '"0x8DEADBEEF"'})
    assert r.status_code == 412, r.text

    r = send(http, target, "HEAD", {})
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(data) and r.headers["ETag"] == etag
    return data


def test_shared_key_block_upload_and_ranged_download(azurite: AzuriteServer, http: httpx.Client) -> None:
    container = azurite.create_container()
    name = "dir/a b ü+#1.bin"
    data = upload_and_download(http, shared_key_target(azurite, container, name), name)
    assert azurite.read_blob(container, name) == data


def test_blob_sas_read_write(azurite: AzuriteServer, http: httpx.Client) -> None:
    container = azurite.create_container()
    name = "sas/blob one.bin"
    sas = SasUrl.parse(azurite.blob_sas(container, name, permission="racw"))
    assert sas.resource == "b" and sas.blob == name
    data = upload_and_download(http, sas_target(sas), name)
    assert azurite.read_blob(container, name) == data


def test_container_sas(azurite: AzuriteServer, http: httpx.Client) -> None:
    container = azurite.create_container()
    sas = SasUrl.parse(azurite.container_sas(container, permission="racwl"))
    assert sas.resource == "c" and sas.container == container and sas.blob is None
    name = "nested/dir/ü file.bin"
    data = upload_and_download(http, sas_target(sas.blob_url(name)), name)
    assert azurite.read_blob(container, name) == data
    r = http.get(sas.with_params({"restype": "container", "comp": "list"}))
    assert r.status_code == 200 and "<Name>nested/dir/ü file.bin</Name>" in r.text


def test_standard_range_header_signed_in_slot_12(azurite: AzuriteServer, http: httpx.Client) -> None:
    """Azurite recomputes slot 12, so a signed ``Range`` works too (x-ms-range stays the rule)."""
    container = azurite.create_container()
    azurite.service_client().get_blob_client(container, "r.bin").upload_blob(b"0123456789")
    url = azurite.blob_url(container, "r.bin")
    r = http.get(url, headers=azurite.shared_key().sign("GET", url, {"Range": "bytes=2-4"}))
    assert (r.status_code, r.content) == (206, b"234")


def test_empty_put_and_wrong_key(azurite: AzuriteServer, http: httpx.Client) -> None:
    container = azurite.create_container()
    url = azurite.blob_url(container, "empty.bin")
    headers = {"x-ms-blob-type": "BlockBlob", "Content-Length": "0"}
    r = http.put(url, headers=azurite.shared_key().sign("PUT", url, headers), content=b"")
    assert r.status_code == 201, r.text
    assert azurite.read_blob(container, "empty.bin") == b""

    wrong = AzureSharedKey(azurite.account_name, base64.b64encode(b"x" * 64).decode())
    r = http.get(url, headers=wrong.sign("GET", url, {}))
    assert r.status_code == 403
    assert EMULATOR_ACCOUNT_KEY not in r.text


def test_unequal_block_id_lengths_rejected(azurite: AzuriteServer, http: httpx.Client) -> None:
    """Why ids must have one length per blob: the service refuses a second length."""
    container = azurite.create_container()
    target = shared_key_target(azurite, container, "mixed.bin")
    r = send(http, target, "PUT", {"comp": "block", "blockid": block_id("p", 0)}, body=b"a")
    assert r.status_code == 201, r.text
    r = send(http, target, "PUT", {"comp": "block", "blockid": block_id("pp", 1)}, body=b"b")
    assert r.status_code == 400


def test_read_only_and_expired_sas_are_refused(azurite: AzuriteServer, http: httpx.Client) -> None:
    container = azurite.create_container()
    azurite.service_client().get_blob_client(container, "x.bin").upload_blob(b"hello")

    read_only = SasUrl.parse(azurite.blob_sas(container, "x.bin", permission="r"))
    assert http.get(read_only.url).content == b"hello"
    r = http.put(read_only.with_params({"comp": "block", "blockid": block_id("p", 0)}), content=b"x")
    assert r.status_code == 403

    past = datetime.now(UTC) - timedelta(hours=1)
    for url in (
        azurite.blob_sas(container, "x.bin", permission="racw", expiry=past, start=past - timedelta(hours=1)),
        SasUrl.parse(azurite.container_sas(container, permission="racwl", expiry=past, start=past - timedelta(hours=1)))
        .blob_url("x.bin")
        .url,
    ):
        expired = SasUrl.parse(url)
        assert expired.expires_within(timedelta(0))
        assert http.get(expired.url).status_code == 403
        r = http.put(expired.with_params({"comp": "block", "blockid": block_id("p", 0)}), content=b"x")
        assert r.status_code == 403
        assert "sig=REDACTED" in expired.redacted()
