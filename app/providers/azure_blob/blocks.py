"""Block blob building blocks: deterministic block ids and the Block List XML.

Why deterministic ids: resume after a restart works by listing the blob's *uncommitted* blocks
and skipping those already staged, so the id of part N must be computable again from the task
alone. The SDK's random ids can't do that. All ids of one blob must have the same length
(else 400 InvalidBlobOrBlock) and be at most 64 bytes before base64.

Block id layout (ASCII, then standard base64)::

    <prefix> "-" <index, 6 decimal digits, zero-padded>

* ``prefix``: 1..57 characters from ``[A-Za-z0-9._:-]``, fixed for one upload. It must change
  whenever the part layout changes (e.g. a different part size): staging an uncommitted id
  again *replaces* its bytes, so one id must never name different bytes. ``block_prefix``
  derives one from whatever identifies the upload and its layout.
* ``index``: 0..999,999 (Azure allows 50,000 committed / 100,000 uncommitted blocks per blob).

So every id of an upload has the same raw length (``len(prefix) + 7``) and the same encoded
length, and ``parse_block_id`` recovers ``(prefix, index)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

#: Digits of the zero-padded part index in a block id.
INDEX_WIDTH = 6
MAX_BLOCK_INDEX = 10**INDEX_WIDTH - 1
#: The service's limit on a block id before base64.
MAX_BLOCK_ID_BYTES = 64
MAX_PREFIX_LEN = MAX_BLOCK_ID_BYTES - 1 - INDEX_WIDTH

_PREFIX = re.compile(r"[A-Za-z0-9._:-]+")
_INDEX = re.compile(rf"[0-9]{{{INDEX_WIDTH}}}")


def block_prefix(*components: object, length: int = 20) -> str:
    """A short, stable prefix (hex) for one upload, from what identifies it and its layout.

    Pass e.g. the blob URL without its query, the file's size and mtime and the part size:
    a change to any of them gives new ids, so stale uncommitted blocks are never reused.
    The default of 20 hex characters makes ids of 27 bytes: 36 base64 characters, no padding.
    """
    if not 1 <= length <= min(64, MAX_PREFIX_LEN):
        raise ValueError(f"prefix length must be 1..{min(64, MAX_PREFIX_LEN)}, not {length}")
    digest = hashlib.sha256("\x1f".join(str(c) for c in components).encode("utf-8")).hexdigest()
    return digest[:length]


def _check_prefix(prefix: str) -> None:
    if not prefix or len(prefix) > MAX_PREFIX_LEN or not _PREFIX.fullmatch(prefix):
        raise ValueError(f"block id prefix must be 1..{MAX_PREFIX_LEN} characters of [A-Za-z0-9._:-], got {prefix!r}")


def block_id(prefix: str, index: int) -> str:
    """The base64 block id of part ``index`` (0-based) of the upload named by ``prefix``."""
    _check_prefix(prefix)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_BLOCK_INDEX:
        raise ValueError(f"block index must be an int in 0..{MAX_BLOCK_INDEX}, got {index!r}")
    raw = f"{prefix}-{index:0{INDEX_WIDTH}d}".encode("ascii")
    return base64.b64encode(raw).decode("ascii")


def parse_block_id(value: str) -> tuple[str, int]:
    """``(prefix, index)`` of an id made by ``block_id``; ValueError for any other id.

    A resuming uploader uses this to keep only the uncommitted blocks of *its* upload.
    """
    try:
        raw = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise ValueError(f"not a block id of ours: {value!r}") from None
    prefix, index = raw[: -INDEX_WIDTH - 1], raw[-INDEX_WIDTH:]
    if raw[-INDEX_WIDTH - 1 : -INDEX_WIDTH] != "-" or not _INDEX.fullmatch(index):
        raise ValueError(f"not a block id of ours: {value!r}")
    try:
        _check_prefix(prefix)
    except ValueError:
        raise ValueError(f"not a block id of ours: {value!r}") from None
    return prefix, int(index)


def block_list_xml(ids: Iterable[str], kind: str = "Latest") -> bytes:
    """The Put Block List body committing ``ids`` in order (``Latest``: newest staged version)."""
    if kind not in ("Latest", "Committed", "Uncommitted"):
        raise ValueError(f"unknown block list element {kind!r}")
    items = "".join(f"<{kind}>{escape(i)}</{kind}>" for i in ids)
    return f'<?xml version="1.0" encoding="utf-8"?><BlockList>{items}</BlockList>'.encode()


@dataclass(frozen=True)
class BlockInfo:
    """One entry of a Get Block List answer."""

    name: str
    size: int


@dataclass(frozen=True)
class BlockList:
    """Get Block List, parsed: what is committed and what is staged but not yet committed."""

    committed: tuple[BlockInfo, ...]
    uncommitted: tuple[BlockInfo, ...]


def parse_block_list(body: bytes | str) -> BlockList:
    """Parse ``GET ?comp=blocklist`` XML; missing sections are empty, not errors."""
    root = ET.fromstring(body)
    if root.tag != "BlockList":
        raise ValueError(f"expected a BlockList document, got <{root.tag}>")

    def section(tag: str) -> tuple[BlockInfo, ...]:
        node = root.find(tag)
        if node is None:
            return ()
        return tuple(
            BlockInfo(name=(b.findtext("Name") or ""), size=int(b.findtext("Size") or 0)) for b in node.findall("Block")
        )

    return BlockList(committed=section("CommittedBlocks"), uncommitted=section("UncommittedBlocks"))
