"""The fake OSS server, checked against the official ``alibabacloud_oss_v2`` client (so it accepts genuine SDK
traffic) and against our signer over httpx: auth failures, clock skew and its correction, presigned expiry, both
Range behaviours, conditionals, the multipart rules, fault knobs, and the XML helpers on its real responses."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import alibabacloud_oss_v2 as oss
import httpx
import pytest

from app.providers.aliyun_oss.crc64 import combine, crc64
from app.providers.aliyun_oss.signer import ClockOffset, OssCredentials, is_time_skewed
from app.providers.aliyun_oss.xml import (
    OssXmlError,
    build_complete_body,
    parse_complete,
    parse_error,
    parse_initiate,
    parse_list_parts,
)
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer
from tests.support.http_server import Fault

BUCKET = DEFAULT_BUCKET


@pytest.fixture
def server() -> Iterator[FakeOssServer]:
    with FakeOssServer(min_part_size=1024) as srv:
        yield srv
        assert srv.errors == []


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def sdk_client(srv: FakeOssServer, *, secret: str | None = None, attempts: int = 1) -> oss.Client:
    cfg = oss.config.load_default()
    creds = srv.credentials
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(creds.access_key_id,
                                                                        secret or creds.access_key_secret)
    cfg.region = srv.region
    cfg.endpoint = srv.endpoint
    cfg.use_path_style = True
    cfg.disable_ssl = True
    cfg.retry_max_attempts = attempts
    return oss.Client(cfg)


def call(http: httpx.Client, srv: FakeOssServer, method: str, key: str | None, *, query: dict | None = None,
         headers: dict | None = None, body: bytes = b"", clock: ClockOffset | None = None,
         credentials: OssCredentials | None = None) -> httpx.Response:
    """One request signed with OUR signer (header form), sent through httpx exactly as signed."""
    url = srv.object_url(BUCKET, key, **(query or {}))
    signed = srv.signer(credentials, clock=clock).sign_request(method, url, headers or {}, bucket=BUCKET, key=key)
    return http.request(method, signed.url, headers=signed.headers, content=body)


def error_code(resp: httpx.Response) -> str:
    return parse_error(resp.status_code, resp.content, dict(resp.headers)).code


# ------------------------------------------------------------------------------------------------------------------
# the official SDK against the fake
# ------------------------------------------------------------------------------------------------------------------
def test_sdk_put_get_head_and_ranged_get(server: FakeOssServer) -> None:
    client = sdk_client(server)
    key = "dir with space/ü+plus.bin"
    data = bytes(range(256)) * 40
    put = client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=data))  # SDK checks our CRC header
    assert put.etag == '"' + hashlib.md5(data).hexdigest().upper() + '"'
    assert int(put.hash_crc64) == crc64(data)
    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key))
    assert got.body.read() == data and int(got.hash_crc64) == crc64(data)
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key))
    assert (head.content_length, head.etag) == (len(data), put.etag)
    part = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, range_header="bytes=100-199",
                                                  range_behavior="standard"))
    assert part.body.read() == data[100:200]
    assert part.content_range == f"bytes 100-199/{len(data)}"
    assert server.get_object(BUCKET, key).data == data
    assert {c.auth for c in server.calls} == {"header"}


def test_sdk_full_multipart_upload_with_paged_list_parts(server: FakeOssServer) -> None:
    server.list_parts_page_limit = 2
    client = sdk_client(server)
    key = "multi/part object.bin"
    chunks = [bytes([n]) * 1500 for n in range(1, 5)] + [b"tail"]
    init = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key=key))
    assert init.key == key  # SDK sent encoding-type=url and decoded our url-encoded Key
    uploaded = []
    for number, chunk in enumerate(chunks, 1):
        result = client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key=key, upload_id=init.upload_id,
                                                          part_number=number, body=chunk))
        assert int(result.hash_crc64) == crc64(chunk)
        uploaded.append(oss.UploadPart(part_number=number, etag=result.etag))
    listed, marker = [], 0
    while True:  # the SDK's own paging fields, driven by our small page limit
        page = client.list_parts(oss.ListPartsRequest(bucket=BUCKET, key=key, upload_id=init.upload_id,
                                                      part_number_marker=marker))
        listed += page.parts
        if not page.is_truncated:
            break
        marker = page.next_part_number_marker
    assert [p.part_number for p in listed] == [1, 2, 3, 4, 5]
    assert server.count_op("ListParts") == 3
    folded = 0
    for p in listed:
        folded = combine(folded, int(p.hash_crc64), p.size)
    done = client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=BUCKET, key=key, upload_id=init.upload_id,
        complete_multipart_upload=oss.CompleteMultipartUpload(parts=uploaded)))
    assert int(done.hash_crc64) == folded == crc64(b"".join(chunks))
    assert done.etag.endswith('-5"') and done.key == key
    assert server.get_object(BUCKET, key).data == b"".join(chunks)
    assert server.multipart_uploads == {}


def test_sdk_downloader_uses_ranges_and_crc(server: FakeOssServer, tmp_path) -> None:
    data = bytes(range(251)) * 2000  # ~500 KB, several ranged parts with x-oss-range-behavior: standard
    server.put_object(BUCKET, "big.bin", data)
    client = sdk_client(server)
    target = tmp_path / "big.bin"
    client.downloader(part_size=100 * 1024).download_file(oss.GetObjectRequest(bucket=BUCKET, key="big.bin"),
                                                           str(target))
    assert target.read_bytes() == data
    ranged = [c for c in server.calls if c.op == "GetObject"]
    assert len(ranged) >= 5
    assert all(c.headers.get("x-oss-range-behavior") == "standard" for c in ranged)


def test_sdk_wrong_secret_is_rejected(server: FakeOssServer) -> None:
    client = sdk_client(server, secret="not-the-secret")
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="k", body=b"x"))
    err = info.value.unwrap()
    assert (err.status_code, err.code) == (403, "SignatureDoesNotMatch")
    assert server.get_object(BUCKET, "k") is None
    with pytest.raises(oss.exceptions.OperationError) as info:  # HEAD errors travel in x-oss-err
        client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="k"))
    assert info.value.unwrap().code == "SignatureDoesNotMatch"


def test_sdk_presigned_urls_work_and_expire(server: FakeOssServer, http: httpx.Client) -> None:
    server.put_object(BUCKET, "p q.txt", b"0123456789")
    client = sdk_client(server)
    get = client.presign(oss.GetObjectRequest(bucket=BUCKET, key="p q.txt"), expires=timedelta(minutes=10))
    resp = http.get(get.url, headers={"Range": "bytes=0-0"})  # the probe a presigned download uses (pitfall 7)
    assert (resp.status_code, resp.content, resp.headers["content-range"]) == (206, b"0", "bytes 0-0/10")
    head = http.head(get.url)
    assert head.status_code == 403  # the method is signed
    put = client.presign(oss.PutObjectRequest(bucket=BUCKET, key="up.txt", content_type="text/plain"),
                         expires=timedelta(minutes=10))
    assert http.put(put.url, content=b"hi", headers=put.signed_headers).status_code == 200
    assert http.put(put.url, content=b"hi").status_code == 403  # signed Content-Type missing (pitfall 18)
    assert server.get_object(BUCKET, "up.txt").content_type == "text/plain"
    server.clock_offset = 11 * 60  # the server is now past the URL's expiry
    expired = http.get(get.url)
    assert (expired.status_code, error_code(expired)) == (403, "AccessDenied")
    assert parse_error(expired.status_code, expired.content).message == "Request has expired."
    assert {c.auth for c in server.calls if c.status < 300} == {"query"}


def test_sdk_sees_no_such_upload_after_a_lost_complete_response(server: FakeOssServer) -> None:
    """Pitfall 14: the Complete went through, its answer was lost, the SDK's retry gets NoSuchUpload; a HEAD shows
    the object is there with the expected CRC."""
    client = sdk_client(server, attempts=2)
    init = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key="lost"))
    part = client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key="lost", upload_id=init.upload_id,
                                                    part_number=1, body=b"abc"))
    server.lose_response("CompleteMultipartUpload")
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
            bucket=BUCKET, key="lost", upload_id=init.upload_id,
            complete_multipart_upload=oss.CompleteMultipartUpload(
                parts=[oss.UploadPart(part_number=1, etag=part.etag)])))
    assert info.value.unwrap().code == "NoSuchUpload"
    assert server.ops()[-2:] == ["CompleteMultipartUpload", "CompleteMultipartUpload"]
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="lost"))
    assert int(head.hash_crc64) == crc64(b"abc")


# ------------------------------------------------------------------------------------------------------------------
# our signer over httpx: auth, skew, expiry
# ------------------------------------------------------------------------------------------------------------------
def test_skewed_server_clock_then_learned_offset(server: FakeOssServer, http: httpx.Client) -> None:
    server.clock_offset = 3600.0  # server is an hour ahead of us
    clock = ClockOffset()
    first = call(http, server, "PUT", "skew.txt", body=b"x", clock=clock)
    assert first.status_code == 403 and is_time_skewed(first.status_code, first.content)
    assert "<MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>" in first.text
    offset = clock.learn_from_date_header(first.headers["Date"])
    assert 3590 < offset < 3610
    second = call(http, server, "PUT", "skew.txt", body=b"x", clock=clock)  # re-signed with the learned clock
    assert second.status_code == 200
    assert [c.code for c in server.calls] == ["RequestTimeTooSkewed", None]


def test_unknown_key_wrong_secret_and_unsigned_header(server: FakeOssServer, http: httpx.Client) -> None:
    wrong = call(http, server, "PUT", "a", body=b"x", credentials=OssCredentials("nobody", "x"))
    assert (wrong.status_code, error_code(wrong)) == (403, "InvalidAccessKeyId")
    bad = call(http, server, "PUT", "a", body=b"x",
               credentials=OssCredentials(server.credentials.access_key_id, "bad"))
    assert error_code(bad) == "SignatureDoesNotMatch"
    assert bad.headers["x-oss-ec"] and bad.headers["x-oss-request-id"].startswith("FAKE")
    assert parse_error(bad.status_code, bad.content).request_id == bad.headers["x-oss-request-id"]
    url = server.object_url(BUCKET, "a")
    headers = server.signer().sign_headers("PUT", url, {}, bucket=BUCKET, key="a")
    late = http.put(url, content=b"x", headers={**headers, "x-oss-forbid-overwrite": "true"})
    assert error_code(late) == "SignatureDoesNotMatch"
    anonymous = http.get(url)
    assert (anonymous.status_code, error_code(anonymous)) == (403, "AccessDenied")


def test_our_presigned_url_and_expiry(server: FakeOssServer, http: httpx.Client) -> None:
    server.put_object(BUCKET, "obj", b"abcdef")
    signer = server.signer()
    url = signer.presign("GET", server.object_url(BUCKET, "obj"), bucket=BUCKET, key="obj",
                         expires=timedelta(seconds=30))
    assert http.get(url).content == b"abcdef"
    old = signer.presign("GET", server.object_url(BUCKET, "obj"), bucket=BUCKET, key="obj",
                         expires=timedelta(seconds=30), now=datetime.now(UTC) - timedelta(seconds=60))
    resp = http.get(old)
    assert (resp.status_code, error_code(resp)) == (403, "AccessDenied")
    assert parse_error(403, resp.content).ec == "0002-00000236"


# ------------------------------------------------------------------------------------------------------------------
# objects: Range behaviours and conditionals
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("rng", "standard", "status", "body"), [
    ("bytes=2-5", False, 206, b"2345"),
    ("bytes=2-5", True, 206, b"2345"),
    ("bytes=5-", False, 206, b"56789"),
    ("bytes=-3", False, 206, b"789"),
    ("bytes=8-20", False, 200, b"0123456789"),  # end past EOF: default ignores the range
    ("bytes=8-20", True, 206, b"89"),  # standard clamps
    ("bytes=10-20", False, 200, b"0123456789"),  # start at EOF: default ignores
    ("bytes=10-20", True, 416, None),  # standard: InvalidRange
    ("bytes=-20", True, 206, b"0123456789"),
    ("bytes=-20", False, 200, b"0123456789"),
    ("bytes=5-2", True, 200, b"0123456789"),  # malformed: ignored either way
    ("bytes=1-1,3-4", True, 206, b"1"),  # multi-range: only the first is served
    ("items=0-1", True, 200, b"0123456789"),
])
def test_range_behaviours(server: FakeOssServer, http: httpx.Client, rng: str, standard: bool, status: int,
                          body: bytes | None) -> None:
    server.put_object(BUCKET, "r", b"0123456789")
    headers = {"x-oss-range-behavior": "standard"} if standard else {}
    url = server.object_url(BUCKET, "r")
    signed = server.signer().sign_headers("GET", url, headers, bucket=BUCKET, key="r")
    resp = http.get(url, headers={**signed, "Range": rng})  # Range is not signed
    assert resp.status_code == status
    if body is not None:
        assert resp.content == body
        assert int(resp.headers["x-oss-hash-crc64ecma"]) == crc64(b"0123456789")
    else:
        assert error_code(resp) == "InvalidRange"
        assert resp.headers["content-range"] == "bytes */10"


@pytest.mark.parametrize("key", ["a/../b", "./x", "..", "a//b/", "%41", "q?x#y&z=1", "sp ace/+plus/ü/~"])
def test_awkward_keys_round_trip(server: FakeOssServer, http: httpx.Client, key: str) -> None:
    """Dot segments, empty segments, percent signs and reserved characters address exactly the key given."""
    assert call(http, server, "PUT", key, body=key.encode()).status_code == 200
    assert server.get_object(BUCKET, key).data == key.encode()
    assert call(http, server, "GET", key).content == key.encode()


def test_conditionals_and_changed_remote(server: FakeOssServer, http: httpx.Client) -> None:
    etag = server.put_object(BUCKET, "c", b"v1").etag
    assert call(http, server, "GET", "c", headers={"If-Match": etag}).content == b"v1"
    server.put_object(BUCKET, "c", b"v2")  # remote changed between parts
    stale = call(http, server, "GET", "c", headers={"If-Match": etag})
    assert (stale.status_code, error_code(stale)) == (412, "PreconditionFailed")
    assert call(http, server, "HEAD", "c", headers={"If-Match": etag}).status_code == 412
    new_etag = server.get_object(BUCKET, "c").etag
    assert call(http, server, "GET", "c", headers={"If-None-Match": new_etag}).status_code == 304
    missing = call(http, server, "HEAD", "nope")
    assert missing.status_code == 404 and error_code(missing) == "NoSuchKey"  # via x-oss-err on a HEAD
    assert call(http, server, "DELETE", "c").status_code == 204
    assert server.get_object(BUCKET, "c") is None


def test_put_content_md5_and_forbid_overwrite(server: FakeOssServer, http: httpx.Client) -> None:
    good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    ok = call(http, server, "PUT", "m", headers={"Content-MD5": good}, body=b"data")
    assert ok.status_code == 200 and ok.headers["content-md5"] == good
    bad = call(http, server, "PUT", "m", headers={"Content-MD5": good}, body=b"DATA")
    assert (bad.status_code, error_code(bad)) == (400, "InvalidDigest")
    exists = call(http, server, "PUT", "m", headers={"x-oss-forbid-overwrite": "true"}, body=b"new")
    assert (exists.status_code, error_code(exists)) == (409, "FileAlreadyExists")
    assert server.get_object(BUCKET, "m").data == b"data"
    other = call(http, server, "PUT", "m", body=b"x", headers={})
    assert other.status_code == 200
    anonymous = http.get(server.object_url("no-such-bucket", "k"))
    assert anonymous.status_code == 403  # unsigned requests are rejected before anything else
    url = server.object_url("no-such-bucket", "k")
    signed = server.signer().sign_headers("GET", url, {}, bucket="no-such-bucket", key="k")
    missing = http.get(url, headers=signed)
    assert (missing.status_code, error_code(missing)) == (404, "NoSuchBucket")


# ------------------------------------------------------------------------------------------------------------------
# multipart rules, with the XML helpers on the fake's real answers
# ------------------------------------------------------------------------------------------------------------------
def _initiate(http: httpx.Client, srv: FakeOssServer, key: str) -> str:
    resp = call(http, srv, "POST", key, query={"uploads": None, "encoding-type": "url"})
    assert resp.status_code == 200
    result = parse_initiate(resp.content)
    assert (result.bucket, result.key) == (BUCKET, key)
    return result.upload_id


def _part(http: httpx.Client, srv: FakeOssServer, key: str, upload_id: str, number: int, data: bytes) -> str:
    resp = call(http, srv, "PUT", key, query={"partNumber": number, "uploadId": upload_id}, body=data)
    assert resp.status_code == 200, resp.text
    assert int(resp.headers["x-oss-hash-crc64ecma"]) == crc64(data)
    return resp.headers["etag"]


def _complete(http: httpx.Client, srv: FakeOssServer, key: str, upload_id: str, body: bytes) -> httpx.Response:
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    return call(http, srv, "POST", key, query={"uploadId": upload_id}, body=body, headers={"Content-MD5": md5})


def test_multipart_rules(server: FakeOssServer, http: httpx.Client) -> None:
    key = "mp/a+b ü"
    upload_id = _initiate(http, server, key)
    etags = {n: _part(http, server, key, upload_id, n, bytes([n]) * (2000 if n < 4 else 10)) for n in (1, 2, 4)}
    _part(http, server, key, upload_id, 3, b"small")  # an undersized middle part
    etags[3] = server.multipart_uploads[upload_id].parts[3].etag

    order = _complete(http, server, key, upload_id,
                      b"<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>%s</ETag></Part>"
                      b"<Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>"
                      % (etags[2].encode(), etags[1].encode()))
    assert (order.status_code, error_code(order)) == (400, "InvalidPartOrder")
    assert parse_error(400, order.content).ec == "0042-00000209"
    small = _complete(http, server, key, upload_id, build_complete_body(sorted(etags.items())))
    assert (small.status_code, error_code(small), parse_error(400, small.content).ec) == \
        (400, "EntityTooSmall", "0042-00000213")
    wrong = _complete(http, server, key, upload_id, build_complete_body([(1, etags[2])]))
    assert error_code(wrong) == "InvalidPart"
    malformed = _complete(http, server, key, upload_id, b"<nope")
    assert error_code(malformed) == "MalformedXML"

    pages, marker = [], 0
    while True:
        resp = call(http, server, "GET", key, query={"uploadId": upload_id, "max-parts": 1,
                                                     "part-number-marker": marker})
        page = parse_list_parts(resp.content)
        pages.append([p.part_number for p in page.parts])
        if not page.is_truncated:
            break
        marker = page.next_part_number_marker
    assert pages == [[1], [2], [3], [4]]
    assert page.parts[0].crc64 == crc64(bytes([4]) * 10) and page.parts[0].size == 10

    # gaps are allowed: complete with 1, 2, 4 (3 left out)
    done = _complete(http, server, key, upload_id, build_complete_body([(1, etags[1]), (2, etags[2]), (4, etags[4])]))
    assert done.status_code == 200, done.text
    result = parse_complete(done.content)
    assert result.key == key and result.etag == done.headers["etag"]
    expected = bytes([1]) * 2000 + bytes([2]) * 2000 + bytes([4]) * 10
    assert int(done.headers["x-oss-hash-crc64ecma"]) == crc64(expected)
    assert server.get_object(BUCKET, key).data == expected
    again = _complete(http, server, key, upload_id, build_complete_body([(1, etags[1])]))
    assert (again.status_code, error_code(again)) == (404, "NoSuchUpload")


def test_abort_unknown_upload_and_part_number_bounds(server: FakeOssServer, http: httpx.Client) -> None:
    upload_id = _initiate(http, server, "ab")
    for bad in (0, 10001):
        resp = call(http, server, "PUT", "ab", query={"partNumber": bad, "uploadId": upload_id}, body=b"x")
        assert (resp.status_code, error_code(resp)) == (400, "InvalidArgument")
    assert call(http, server, "DELETE", "ab", query={"uploadId": upload_id}).status_code == 204
    for method, query in (("GET", {"uploadId": upload_id}), ("DELETE", {"uploadId": upload_id}),
                          ("PUT", {"partNumber": 1, "uploadId": "nope"})):
        resp = call(http, server, method, "ab", query=query, body=b"x" if method == "PUT" else b"")
        assert (resp.status_code, error_code(resp)) == (404, "NoSuchUpload")
    other_key = _initiate(http, server, "ab2")
    assert error_code(call(http, server, "GET", "ab", query={"uploadId": other_key})) == "NoSuchUpload"


def test_complete_all_and_minimum_size_default() -> None:
    with FakeOssServer() as srv, httpx.Client() as http:  # default 100 KiB minimum
        upload_id = _initiate(http, srv, "all")
        _part(http, srv, "all", upload_id, 1, b"a" * 1000)
        _part(http, srv, "all", upload_id, 2, b"b")
        too_small = _complete(http, srv, "all", upload_id, build_complete_body(
            [(n, p.etag) for n, p in sorted(srv.multipart_uploads[upload_id].parts.items())]))
        assert error_code(too_small) == "EntityTooSmall"
        _part(http, srv, "all", upload_id, 1, b"a" * (100 * 1024))  # re-uploading a number overwrites it
        resp = call(http, srv, "POST", "all", query={"uploadId": upload_id}, headers={"x-oss-complete-all": "yes"})
        assert resp.status_code == 200, resp.text
        assert srv.get_object(BUCKET, "all").data == b"a" * (100 * 1024) + b"b"


# ------------------------------------------------------------------------------------------------------------------
# fault knobs
# ------------------------------------------------------------------------------------------------------------------
def test_injected_errors_drops_and_transport_faults(server: FakeOssServer, http: httpx.Client) -> None:
    server.put_object(BUCKET, "f", b"x" * 100_000)
    upload_id = _initiate(http, server, "g")
    server.inject_error("UploadPart", 503, "ServiceUnavailable", retry_after="2", part_number=2)
    assert call(http, server, "PUT", "g", query={"partNumber": 1, "uploadId": upload_id}, body=b"1").status_code == 200
    busy = call(http, server, "PUT", "g", query={"partNumber": 2, "uploadId": upload_id}, body=b"2")
    assert (busy.status_code, busy.headers["retry-after"], error_code(busy)) == (503, "2", "ServiceUnavailable")
    assert 2 not in server.multipart_uploads[upload_id].parts  # an injected error does not perform the operation
    assert call(http, server, "PUT", "g", query={"partNumber": 2, "uploadId": upload_id}, body=b"2").status_code == 200

    server.inject_error("GetObject", 429, "TooManyRequests", retry_after="1", skip=1)
    assert call(http, server, "GET", "f").status_code == 200
    assert call(http, server, "GET", "f").status_code == 429
    server.drop_connection("HeadObject")
    with pytest.raises(httpx.TransportError):
        call(http, server, "HEAD", "f")
    server.lose_response("PutObject")
    with pytest.raises(httpx.TransportError):
        call(http, server, "PUT", "lost-put", body=b"done anyway")
    assert server.get_object(BUCKET, "lost-put").data == b"done anyway"

    server.add_fault(Fault("reset", method="GET", after_bytes=1000))  # a generic transport fault mid-body
    with pytest.raises(httpx.TransportError):
        call(http, server, "GET", "f")
    server.add_fault(Fault("status", status=500))
    failed = call(http, server, "GET", "f")
    assert (failed.status_code, error_code(failed)) == (500, "InternalError")
    server.add_fault(Fault("status", status=502, body="<html>bad gateway</html>"))
    proxy = call(http, server, "GET", "f")
    assert (proxy.status_code, proxy.text, error_code(proxy)) == (502, "<html>bad gateway</html>", "")
    server.add_fault(Fault("ignore_range"))
    signed = server.signer().sign_headers("GET", server.object_url(BUCKET, "f"), {}, bucket=BUCKET, key="f")
    whole = http.get(server.object_url(BUCKET, "f"), headers={**signed, "Range": "bytes=0-9"})
    assert (whole.status_code, len(whole.content)) == (200, 100_000)
    assert call(http, server, "GET", "f").status_code == 200  # every fault was used up
    assert [c.fault for c in server.calls if c.op == "GetObject"].count("error") == 1


def test_xml_helpers_reject_errors_and_bad_bodies() -> None:
    error_doc = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
    with pytest.raises(OssXmlError, match="InternalError"):
        parse_complete(error_doc)  # a 200 whose body is an Error is not a success (pitfall 14)
    with pytest.raises(OssXmlError):
        parse_initiate(b"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId></UploadId>"
                       b"</InitiateMultipartUploadResult>")
    with pytest.raises(OssXmlError):
        parse_list_parts(b"not xml")
    with pytest.raises(OssXmlError):
        parse_list_parts(b"<ListPartsResult><IsTruncated>true</IsTruncated></ListPartsResult>")
    head_err = base64.b64encode(error_doc).decode()
    info = parse_error(500, b"", {"x-oss-err": head_err, "x-oss-request-id": "R1", "x-oss-ec": "0000-1"})
    assert (info.code, info.request_id, info.ec) == ("InternalError", "R1", "0000-1")
    assert parse_error(502, b"<html>bad gateway</html>").code == ""
    for bad in ([(2, '"a"'), (1, '"b"')], [(1, '"a"'), (1, '"a"')], [(0, '"a"')], [(10001, '"a"')], [(1, "")], []):
        with pytest.raises(ValueError):
            build_complete_body(bad)
    body = build_complete_body([(1, '"A"'), (3, '"C"')])
    assert b"<Part><PartNumber>1</PartNumber><ETag>\"A\"</ETag></Part>" in body
