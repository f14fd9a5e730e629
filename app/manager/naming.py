"""Where a download goes: the server's or the URL's file name, made safe, in the folder the user chose, and
never on top of a file that is already there or that another job is writing."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from app.filenames import DEFAULT_NAME, filename_from_content_disposition, filename_from_url, sanitize_filename

if TYPE_CHECKING:
    import httpx

NAME_PROBE_TIMEOUT = 15.0  # seconds per socket operation of the file-name probe

#: Makes the probe's client: ``clients(timeout)`` (the manager's HttpClients: the transfers' proxy and CA bundle).
ClientFactory = Callable[[float], "httpx.AsyncClient"]


def _is_dir_target(path: str) -> bool:
    return os.path.isdir(path) or path.endswith(("/", os.sep))


async def probe_filename(url: str, headers: Sequence[tuple[str, str]],
                         clients: ClientFactory | None = None) -> str | None:
    """The file name the server suggests in Content-Disposition, or None. One HEAD; a ``Range: bytes=0-0``
    GET where HEAD is refused. Any failure is ignored: the engine probes again and reports real errors.

    The request goes where the transfer's will (``clients``: the manager's proxy and CA bundle); without it, through
    the environment's proxy with the system's certificates, as the engine's defaults."""
    import httpx

    if clients is None:
        from app.manager.network import HttpClients

        clients = HttpClients()
    base = [(k, v) for k, v in headers if k.lower() not in ("range", "accept-encoding")]
    base.append(("Accept-Encoding", "identity"))
    try:
        async with clients(NAME_PROBE_TIMEOUT) as client:
            resp = await client.head(url, headers=base, follow_redirects=True)
            if resp.status_code in (403, 405, 501):
                async with client.stream("GET", url, headers=[*base, ("Range", "bytes=0-0")],
                                         follow_redirects=True) as resp:
                    pass  # headers are enough; leaving the block closes the body unread
            if not resp.is_success:
                return None
            return filename_from_content_disposition(resp.headers.get("content-disposition"))
    except (httpx.HTTPError, OSError, ValueError):
        return None


async def resolve_destination(url: str, output: str | None, headers: Sequence[tuple[str, str]],
                              known_name: str | None = None, clients: ClientFactory | None = None) -> str:
    """Where a download goes. An explicit file path is used as given; otherwise the server's or URL's name,
    sanitised to one path component, inside ``output`` (a directory) or the current directory."""
    if output is not None and not _is_dir_target(output):
        return output
    suggested = known_name or await probe_filename(url, headers, clients)
    name = sanitize_filename(suggested) if suggested else None
    if name is None or name == DEFAULT_NAME:
        name = sanitize_filename(filename_from_url(url))
    folder = output if output is not None else os.getcwd()
    return os.path.join(folder, name)


def unique_path(path: str, taken: Callable[[str], bool]) -> str:
    """``path``, or ``name (1).ext``, ``name (2).ext`` ... : the first that neither exists (nor its ``.part``) nor
    is ``taken`` by another job. Blocking (stat): call it off the event loop."""
    def free(candidate: str) -> bool:
        return not (os.path.lexists(candidate) or os.path.lexists(candidate + ".part") or taken(candidate))

    if free(path):
        return path
    folder, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    if stem.endswith(".tar"):  # keep double extensions together: archive (1).tar.gz
        stem, ext = stem[:-4], ".tar" + ext
    for n in range(1, 10_000):
        candidate = os.path.join(folder, f"{stem} ({n}){ext}")
        if free(candidate):
            return candidate
    raise FileExistsError(f"no free file name like {name!r} in {folder}")
