"""Azure Blob round trips of awkward and large sizes through the real engine against Azurite.

Each size is uploaded (Shared Key, then SAS for the small ones), read back with the official SDK as the oracle,
then downloaded by the engine and compared by SHA-256:

* 1 byte: a single, tiny block (and a one-byte range download);
* 1 MiB + 1: a full block plus a one-byte last block;
* 64 MiB in 4 MiB blocks: 16 blocks staged in parallel, a many-range download.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.engine.api import (
    DownloadPounceBuilder,
    FileTransferRecord,
    MeowClient,
    PounceTask,
    TransferStatus,
    UploadPounceBuilder,
)
from app.providers.azure_blob import (
    AzureBlobDirectDownload,
    AzureBlobDirectUpload,
    AzureBlobSasDownload,
    AzureBlobSasUpload,
)
from tests.support.azurite import AzuriteServer
from tests.support.engine_helpers import MIB, Recorder, fast_config

CHUNK = 4 * MIB


@dataclass
class Source:
    path: Path
    size: int
    sha256: str


def make_source(path: Path, size: int) -> Source:
    """A random file of ``size`` bytes, written (and hashed) in 1 MiB blocks so 64 MiB never sits in memory."""
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(MIB, left))
            f.write(block)
            digest.update(block)
            left -= len(block)
    return Source(path, size, digest.hexdigest())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


async def run(task: PounceTask, timeout: float = 30.0) -> tuple[FileTransferRecord, list[FileTransferRecord]]:
    """Run one task on a fresh client to its end; the terminal record and every record seen."""
    http = httpx.AsyncClient(timeout=30.0)
    client = MeowClient(fast_config(http_client=http, http_timeout=30.0))
    rec = Recorder()
    try:
        tid = await client.try_enqueue(task, rec.progress, rec.complete)
        final = await rec.wait_terminal(tid, timeout)
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await http.aclose()
    return final, rec.of(tid)


def upload_task(src: Source, url: str, plugin: object) -> PounceTask:
    return (UploadPounceBuilder(src.path.name, src.path, CHUNK).with_url(url).with_breakpoint_upload(plugin)
            .with_max_chunk_concurrency(4).build())


def download_task(dest: Path, url: str, plugin: object) -> PounceTask:
    return (DownloadPounceBuilder(dest.name, dest, CHUNK, url).with_breakpoint_download(plugin)
            .with_max_chunk_concurrency(4).build())


def assert_complete(final: FileTransferRecord, records: list[FileTransferRecord], size: int) -> None:
    assert final.status is TransferStatus.COMPLETE, final.error
    assert final.total_size == size and final.transferred_bytes == size
    progress = [r.transferred_bytes for r in records if r.status is TransferStatus.TRANSMISSION]
    assert progress == sorted(progress), "progress never goes backwards"
    assert all(0 <= done <= size for done in progress)


def assert_blob_is(azurite: AzuriteServer, container: str, blob: str, src: Source) -> None:
    client = azurite.service_client().get_blob_client(container, blob)
    props = client.get_blob_properties()
    assert props.size == src.size
    assert props.blob_type == "BlockBlob"
    assert hashlib.sha256(azurite.read_blob(container, blob)).hexdigest() == src.sha256
    committed, uncommitted = client.get_block_list("all")
    assert len(committed) == -(-src.size // CHUNK) and not uncommitted
    assert [b.size for b in committed] == [min(CHUNK, src.size - i * CHUNK) for i in range(len(committed))]


@pytest.fixture
def sessions(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


def assert_no_session(sessions: Path) -> None:
    assert not list(sessions.glob("*")), "a finished upload leaves no session file"


SIZES = [pytest.param(1, id="1B"), pytest.param(MIB + 1, id="1MiB+1"), pytest.param(64 * MIB, id="64MiB")]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", SIZES)
async def test_shared_key_round_trip(azurite: AzuriteServer, tmp_path: Path, sessions: Path, size: int) -> None:
    container = azurite.create_container()
    blob = f"sizes/shared-{size}.bin"
    url = azurite.blob_url(container, blob)
    src = make_source(tmp_path / "src.bin", size)

    final, records = await run(upload_task(src, url, AzureBlobDirectUpload(azurite.shared_key(),
                                                                           session_dir=sessions)))
    assert_complete(final, records, size)
    assert_blob_is(azurite, container, blob, src)
    assert_no_session(sessions)

    dest = tmp_path / "out" / "back.bin"
    final, records = await run(download_task(dest, url, AzureBlobDirectDownload(azurite.shared_key())))
    assert_complete(final, records, size)
    assert dest.stat().st_size == size
    assert file_sha256(dest) == src.sha256
    assert sorted(p.name for p in dest.parent.iterdir()) == ["back.bin"], "no .part or checkpoint left behind"


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", SIZES[:2])
async def test_sas_round_trip(azurite: AzuriteServer, tmp_path: Path, sessions: Path, size: int) -> None:
    container = azurite.create_container()
    blob = f"sizes/sas-{size}.bin"
    src = make_source(tmp_path / "src.bin", size)

    up_sas = azurite.blob_sas(container, blob, permission="racw")
    final, records = await run(upload_task(src, azurite.blob_url(container, blob),
                                           AzureBlobSasUpload(up_sas, session_dir=sessions)))
    assert_complete(final, records, size)
    assert_blob_is(azurite, container, blob, src)
    assert_no_session(sessions)

    down_sas = azurite.blob_sas(container, blob, permission="r")
    dest = tmp_path / "out" / "back.bin"
    final, records = await run(download_task(dest, azurite.blob_url(container, blob), AzureBlobSasDownload(down_sas)))
    assert_complete(final, records, size)
    assert dest.stat().st_size == size
    assert file_sha256(dest) == src.sha256
    assert sorted(p.name for p in dest.parent.iterdir()) == ["back.bin"], "no .part or checkpoint left behind"
