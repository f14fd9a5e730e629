"""Where dropped, handed-over or chosen files go: the files inside folders, and the remote for each file.

One place for the rule every way of adding uploads follows (the New Upload dialog, drag and drop, the
command line and a second launch): a folder becomes one upload per file, named by its path relative to the
folder's parent, so ``photos/2024/a.jpg`` lands under ``…/photos/2024/a.jpg``; and that name is added to the
remote only where the protocol carries it in the URL. Qt-free, so it is tested without widgets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

__all__ = ["UploadSource", "expand_paths", "join_remote", "sas_resource"]


@dataclass(frozen=True)
class UploadSource:
    """One file to upload and the name it gets under the remote prefix ("/"-separated)."""

    path: str
    relative: str


def expand_paths(paths: Iterable[str]) -> tuple[list[UploadSource], list[str]]:
    """(the files to upload, each once; the given paths that hold none: empty folders, vanished files).

    Files stay themselves; folders become every file inside them. Symlinked folders inside are not followed
    (a link loop would never end); hidden files are kept, since the user chose the folder and may want all
    of it. Blocking (walks the disk): call it in a worker thread.
    """
    out: list[UploadSource] = []
    empty: list[str] = []
    seen: set[str] = set()
    for raw in paths:
        path = os.path.abspath(os.path.expanduser(raw))
        if os.path.isdir(path):
            found = _files_in(path)
        else:
            found = [UploadSource(path, os.path.basename(path))] if os.path.isfile(path) else []
        if not found:
            empty.append(raw)
        for source in found:
            if source.path not in seen:
                seen.add(source.path)
                out.append(source)
    return out, empty


def _files_in(folder: str) -> list[UploadSource]:
    base = os.path.dirname(folder.rstrip(os.sep)) or folder
    found: list[UploadSource] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            if os.path.isfile(full):  # not a broken link, a socket or a fifo
                found.append(UploadSource(full, os.path.relpath(full, base).replace(os.sep, "/")))
    return found


def sas_resource(url: str) -> str | None:
    """"c" for a container SAS URL, "b" for a blob SAS URL, None when the URL carries no SAS signature."""
    query = parse_qs(urlsplit(url).query)
    if "sig" not in query:
        return None
    return (query.get("sr") or ["b"])[0]


def join_remote(base: str, relative: str) -> str:
    """The remote for one file under ``base`` (a prefix, a container SAS URL or an upload endpoint).

    oss:// and azure:// prefixes get ``relative`` appended as a path (object names, not percent-encoded); a
    container SAS URL gets it inserted, percent-encoded, into its path before the query; a plain http(s)
    endpoint is returned unchanged, because Rusty Cat's default chunk protocol sends the file name in the
    request body, not in the URL.
    """
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    if scheme in ("oss", "azure"):
        return base.rstrip("/") + "/" + relative.lstrip("/")
    if scheme in ("http", "https") and sas_resource(base) == "c":
        path = parts.path.rstrip("/") + "/" + quote(relative.lstrip("/"), safe="/")
        return urlunsplit(parts._replace(path=path))
    return base
