"""An Azure block upload holds the parts in flight, not the file (issue 5: memory does not grow with file size).

The bench saw the CLI's peak RSS grow with the file (190 MiB for 256 MiB, 265 MiB for 1 GiB) while each Put
Block's part waited in httpx's request cycle for the garbage collector. Measured here with tracemalloc's peak
(Python allocations on every thread); Azurite, the server, is another process.
"""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from pathlib import Path

import pytest

from app.engine.api import MeowClient, TransferStatus, UploadPounceBuilder
from app.providers.api import AzureBlobDirectUpload
from tests.support.azurite import AzuriteServer
from tests.support.engine_helpers import MIB, Recorder, fast_config

PART = 4 * MIB
IN_FLIGHT = 2


@pytest.mark.timeout(180)
def test_block_upload_memory_is_the_parts_in_flight_not_the_file(azurite: AzuriteServer, tmp_path: Path) -> None:
    container = azurite.create_container()
    src = tmp_path / "up.bin"
    with src.open("wb") as f:
        for _ in range(96):
            f.write(os.urandom(MIB))
    task = (UploadPounceBuilder("up.bin", src, PART).with_url(azurite.blob_url(container, "up.bin"))
            .with_breakpoint_upload(AzureBlobDirectUpload(azurite.shared_key()))
            .with_max_chunk_concurrency(IN_FLIGHT).build())

    async def run() -> int:
        client = MeowClient(fast_config(progress_interval=0.05))
        rec = Recorder()
        tracemalloc.start(1)
        try:
            tid = await client.try_enqueue(task, rec.progress)
            final = await rec.wait_terminal(tid, timeout=150)
            assert final.status is TransferStatus.COMPLETE, final.error
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            await client.close()

    peak = asyncio.run(run())
    props = azurite.service_client().get_blob_client(container, "up.bin").get_blob_properties()
    assert props.size == 96 * MIB
    # Each part in flight is read once and sent as is; a part's MD5 needs no copy. 24 parts went through.
    assert peak < (IN_FLIGHT + 2) * PART, f"peak {peak / MIB:.1f} MiB"
