"""Safe local file names for downloads whose name comes from the network.

A name taken from a URL or a ``Content-Disposition`` header is chosen by the remote side, so it is treated
as hostile: it must never climb out of the target folder (``../../etc/passwd``), hit a device
(``CON``, ``NUL``, ``COM1`` on Windows), hide control characters in a terminal, or exceed the 255-byte
limit of common file systems -- together with the files a download keeps beside it. :func:`sanitize_filename`
enforces all of that on every platform, so a file downloaded on Linux can still be copied to a Windows share.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, urlsplit

from app.engine.checkpoint import LONGEST_SUFFIX

DEFAULT_NAME = "download"
#: NAME_MAX of common file systems (ext4, APFS, NTFS in UTF-16 units, which UTF-8 bytes never undercount).
FS_NAME_MAX = 255
#: Room kept for what is appended to a saved name: the engine's longest sidecar (``.part.durable`` and its ``.tmp``
#: while being replaced, app.engine.checkpoint) and a `` (9999)`` that makes a name unique (app.manager.naming). A
#: name cut to a bare 255 bytes saved nothing: its ``.part.ckpt`` could not be created ("File name too long").
SUFFIX_ROOM = len(LONGEST_SUFFIX) + len(" (9999)")
MAX_NAME_BYTES = FS_NAME_MAX - SUFFIX_ROOM
#: Longest suffix (dot included) kept intact when a name is shortened; longer "extensions" are just text.
MAX_EXTENSION_CHARS = 16

# Characters Windows forbids in names; replaced everywhere so names stay portable.
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"]}
)
_EXT_VALUE = re.compile(r"^(?P<charset>[A-Za-z0-9!#$%&+\-^_`{}~]*)'(?P<lang>[^']*)'(?P<value>.*)$", re.DOTALL)


def _is_bad_char(ch: str) -> bool:
    """Control and format characters (C0, DEL, C1, bidi overrides, zero-width…), line separators, private-use and
    unassigned code points, and lone surrogates (which cannot be encoded as UTF-8)."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") and ch != "\u200d"


def sanitize_filename(name: str | None, default: str = DEFAULT_NAME) -> str:
    """A single, portable path component derived from ``name`` (``default`` when nothing usable is left).

    Only the last path segment survives (``a/b\\c`` → ``c``), as RFC 6266 §4.3 recommends; control
    characters are dropped; characters Windows forbids become ``_``; trailing dots and spaces are trimmed;
    reserved device names get a ``_`` prefix; the result is cut to MAX_NAME_BYTES of UTF-8 keeping its extension.
    The result is never empty, ``.`` or ``..``, and sanitising it again returns it unchanged.
    """
    # Drop the bad characters first, then compose: a control or format character between a letter and its combining
    # mark ("U\x1f\u0300") would otherwise block composition, and a second pass would compose what the first did not.
    text = "".join(ch for ch in (name or "") if not _is_bad_char(ch))
    text = unicodedata.normalize("NFC", text)
    segments = [s for s in re.split(r"[/\\]", text) if s.strip().strip(".")]
    text = segments[-1] if segments else ""
    text = "".join("_" if ch in _WINDOWS_FORBIDDEN else ch for ch in text)
    text = _trim(text)
    if not text:
        return default if default == DEFAULT_NAME else sanitize_filename(default)
    stem = text.split(".", 1)[0].rstrip(" ")
    if stem.upper() in _RESERVED:
        text = "_" + text
    return _fit(text)


def _trim(text: str) -> str:
    """Strip surrounding whitespace and trailing dots/spaces (Windows drops them silently, which would make
    two different names collide and ``..`` reappear)."""
    return text.strip().rstrip(". ").strip()


def _fit(text: str) -> str:
    """Cut to MAX_NAME_BYTES of UTF-8 on a character boundary, keeping a short extension intact."""
    if len(text.encode("utf-8")) <= MAX_NAME_BYTES:
        return text
    dot = text.rfind(".")
    ext = text[dot:] if dot > 0 and len(text) - dot <= MAX_EXTENSION_CHARS else ""
    stem = text[: len(text) - len(ext)] if ext else text
    budget = MAX_NAME_BYTES - len(ext.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    cut = _trim(cut)
    if not cut:  # only the extension would be left: keep the start of the name instead
        cut, ext = _trim(text.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", errors="ignore")), ""
    return (cut + ext) or DEFAULT_NAME


def filename_from_content_disposition(value: str | None) -> str | None:
    """The raw (unsanitised) file name a ``Content-Disposition`` header suggests, or None.

    ``filename*`` (RFC 5987/8187 ``charset'lang'percent-encoded``) wins over ``filename``, as RFC 6266
    requires, because the plain parameter is only a fallback for old clients.
    """
    if not value:
        return None
    params = _parse_params(value)
    extended = params.get("filename*")
    if extended is not None:
        decoded = _decode_ext_value(extended)
        if decoded:
            return decoded
    plain = params.get("filename")
    return plain or None


def _parse_params(value: str) -> dict[str, str]:
    """Parameters of a header value (``type; a=1; b="x\\"y"``), names lower-cased, quotes undone."""
    params: dict[str, str] = {}
    pattern = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
    head, sep, rest = value.partition(";")
    text = ";" + value if "=" in head else sep + rest  # tolerate a missing disposition type
    for m in pattern.finditer(text):
        key, raw = m.group(1).lower(), m.group(2).strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1] if raw.endswith('"') and len(raw) > 1 else raw[1:])
        params.setdefault(key, raw)
    return params


def _decode_ext_value(value: str) -> str | None:
    m = _EXT_VALUE.match(value.strip())
    if m is None:
        return None
    charset = m.group("charset") or "utf-8"
    try:
        return unquote(m.group("value"), encoding=charset, errors="replace")
    except LookupError:  # unknown charset: UTF-8 is what RFC 8187 requires senders to use anyway
        return unquote(m.group("value"), encoding="utf-8", errors="replace")


def filename_from_url(url: str) -> str | None:
    """The last non-empty path segment of ``url``, percent-decoded (unsanitised), or None."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    segments = [s for s in path.split("/") if s]
    if not segments:
        return None
    return unquote(segments[-1], errors="replace") or None
