"""The few OSS XML documents a resumable transfer needs: errors, Initiate/Complete results, ListParts pages, and the
CompleteMultipartUpload request body.

Why a module of its own: the provider must treat a 200 whose body is an ``<Error>`` as a failure (OSS, like S3, may
answer a long CompleteMultipartUpload with 200 at once and report its failure in the body), decode keys when
``encoding-type=url`` was requested, and refuse to build a Complete body whose parts are not strictly ascending (OSS
answers InvalidPartOrder, and a resumed upload must not discover that only at the end).
Parsing uses the stdlib ElementTree; the expat shipped with supported Pythons refuses entity-expansion bombs.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = [
    "MAX_PART_NUMBER",
    "CompleteResult",
    "InitiateResult",
    "ListPartsPage",
    "OssErrorInfo",
    "OssXmlError",
    "PartInfo",
    "build_complete_body",
    "parse_complete",
    "parse_error",
    "parse_initiate",
    "parse_list_parts",
]

MAX_PART_NUMBER = 10000


class OssXmlError(ValueError):
    """A body that is not the document we expected (malformed, wrong root, missing field)."""


@dataclass(frozen=True)
class OssErrorInfo:
    """An OSS error response: HTTP status plus the Code/Message/RequestId/EC of the ``<Error>`` document."""

    status: int
    code: str
    message: str
    request_id: str = ""
    ec: str = ""
    fields: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class InitiateResult:
    bucket: str
    key: str
    upload_id: str


@dataclass(frozen=True)
class CompleteResult:
    bucket: str
    key: str
    etag: str
    location: str


@dataclass(frozen=True)
class PartInfo:
    """One uploaded part as ListParts reports it (``crc64`` None when the service did not include it)."""

    part_number: int
    etag: str
    size: int
    crc64: int | None = None
    last_modified: str = ""


@dataclass(frozen=True)
class ListPartsPage:
    parts: list[PartInfo]
    is_truncated: bool
    next_part_number_marker: int
    upload_id: str = ""


def _root(body: bytes | str, expect: str) -> ET.Element:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise OssXmlError(f"malformed XML (expected {expect}): {exc}") from None
    if root.tag == "Error":
        info = _error_from_root(root, 200, {})
        raise OssXmlError(f"service returned an error document: {info.code}: {info.message}")
    if root.tag != expect:
        raise OssXmlError(f"expected <{expect}>, got <{root.tag}>")
    return root


def _text(elem: ET.Element, tag: str, *, required: bool = True, default: str = "") -> str:
    child = elem.find(tag)
    if child is None:
        if required:
            raise OssXmlError(f"<{elem.tag}> has no <{tag}>")
        return default
    return child.text or ""


def _int(elem: ET.Element, tag: str, *, required: bool = True, default: int = 0) -> int:
    text = _text(elem, tag, required=required, default=str(default)).strip()
    if not text.isascii() or not text.isdigit():
        raise OssXmlError(f"<{tag}> is not a non-negative integer: {text!r}")
    return int(text)


def _decoder(root: ET.Element, url_encoded: bool | None) -> bool:
    """Whether keys are URL-encoded: explicit, or announced by the response's ``<EncodingType>url``."""
    if url_encoded is not None:
        return url_encoded
    return (root.findtext("EncodingType") or "").strip().lower() == "url"


def _error_from_root(root: ET.Element, status: int, headers: Mapping[str, str]) -> OssErrorInfo:
    fields = {child.tag: (child.text or "") for child in root}
    lower = {k.lower(): v for k, v in headers.items()}
    return OssErrorInfo(status, fields.get("Code", ""), fields.get("Message", ""),
                        fields.get("RequestId") or lower.get("x-oss-request-id", ""),
                        fields.get("EC") or lower.get("x-oss-ec", ""), fields)


def parse_error(status: int, body: bytes | str | None, headers: Mapping[str, str] | None = None) -> OssErrorInfo:
    """Best-effort error from a failed response: the XML body, else the base64 ``x-oss-err`` header that OSS sends
    on bodiless (HEAD) errors, else the status alone (code "" ) with the request id / EC headers."""
    headers = headers or {}
    lower = {k.lower(): v for k, v in headers.items()}
    candidates: list[bytes | str] = [body] if body else []
    if lower.get("x-oss-err"):
        try:
            candidates.append(base64.b64decode(lower["x-oss-err"], validate=True))
        except (binascii.Error, ValueError):
            pass
    for candidate in candidates:
        try:
            root = ET.fromstring(candidate)
        except ET.ParseError:
            continue
        if root.tag == "Error":
            return _error_from_root(root, status, headers)
    return OssErrorInfo(status, "", "", lower.get("x-oss-request-id", ""), lower.get("x-oss-ec", ""))


def parse_initiate(body: bytes | str, *, url_encoded: bool | None = None) -> InitiateResult:
    root = _root(body, "InitiateMultipartUploadResult")
    dec = _decoder(root, url_encoded)
    key = _text(root, "Key")
    upload_id = _text(root, "UploadId").strip()
    if not upload_id:
        raise OssXmlError("InitiateMultipartUploadResult has an empty UploadId")
    return InitiateResult(_text(root, "Bucket"), unquote(key) if dec else key, upload_id)


def parse_complete(body: bytes | str, *, url_encoded: bool | None = None) -> CompleteResult:
    """Parse a Complete result; a 200 carrying an ``<Error>`` raises :class:`OssXmlError` (never a success)."""
    root = _root(body, "CompleteMultipartUploadResult")
    dec = _decoder(root, url_encoded)
    key = _text(root, "Key", required=False)
    return CompleteResult(_text(root, "Bucket", required=False), unquote(key) if dec else key,
                          _text(root, "ETag"), _text(root, "Location", required=False))


def parse_list_parts(body: bytes | str) -> ListPartsPage:
    """One ListParts page; page on with ``part-number-marker=next_part_number_marker`` while ``is_truncated``."""
    root = _root(body, "ListPartsResult")
    truncated = _text(root, "IsTruncated", required=False, default="false").strip().lower() == "true"
    parts = []
    for elem in root.findall("Part"):
        crc_text = (elem.findtext("HashCrc64ecma") or "").strip()
        if crc_text and not (crc_text.isascii() and crc_text.isdigit()):
            raise OssXmlError(f"<HashCrc64ecma> is not a decimal: {crc_text!r}")
        parts.append(PartInfo(_int(elem, "PartNumber"), _text(elem, "ETag"), _int(elem, "Size"),
                              int(crc_text) if crc_text else None, _text(elem, "LastModified", required=False)))
    marker = _int(root, "NextPartNumberMarker", required=False, default=0)
    if truncated and (not parts or marker < parts[-1].part_number):
        raise OssXmlError("truncated ListParts page without a usable NextPartNumberMarker")
    return ListPartsPage(parts, truncated, marker, _text(root, "UploadId", required=False))


def build_complete_body(parts: Iterable[tuple[int, str]]) -> bytes:
    """CompleteMultipartUpload XML for ``(part_number, etag)`` pairs, which must be strictly ascending in 1..10000.

    Numbers may skip (OSS allows gaps); ETags are sent as given (quoted, as UploadPart returned them).
    """
    root = ET.Element("CompleteMultipartUpload")
    last = 0
    count = 0
    for number, etag in parts:
        if not 1 <= number <= MAX_PART_NUMBER:
            raise ValueError(f"part number {number} outside 1..{MAX_PART_NUMBER}")
        if number <= last:
            raise ValueError(f"part numbers must be strictly ascending: {number} after {last}")
        if not etag:
            raise ValueError(f"part {number} has no ETag")
        last = number
        count += 1
        part = ET.SubElement(root, "Part")
        ET.SubElement(part, "PartNumber").text = str(number)
        ET.SubElement(part, "ETag").text = etag
    if not count:
        raise ValueError("a multipart upload needs at least one part")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
