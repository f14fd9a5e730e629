"""rusty-cat-cli with the cloud providers, as a subprocess: accounts (secret in a file keyring), oss:// and
azure:// URLs, Azure SAS and OSS presigned URLs, against Azurite and the fake OSS server."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.engine_helpers import env_for, sha
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer

DATA = os.urandom(3 * 1024 * 1024 + 5)


def cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env_for(tmp_path, **extra), timeout=120)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "payload.bin"  # not the cwd: downloads named after the key land there
    path.parent.mkdir()
    path.write_bytes(DATA)
    return path


@pytest.mark.timeout(120)
def test_azure_account_upload_and_download(azurite, tmp_path: Path, src: Path) -> None:  # type: ignore[no-untyped-def]
    container = azurite.create_container()
    added = cli(tmp_path, "accounts", "add", "az", "--provider", "azure-blob", "--endpoint", azurite.endpoint,
                "--account-name", azurite.account_name, "--secret-env", "AZ_KEY", AZ_KEY=azurite.account_key)
    assert added.returncode == 0, added.stderr
    up = cli(tmp_path, "upload", str(src), f"azure://az/{container}/dir/payload.bin", "--chunk-size", "512k")
    assert up.returncode == 0, up.stderr
    assert azurite.read_blob(container, "dir/payload.bin") == DATA
    down = cli(tmp_path, "download", f"azure://az/{container}/dir/payload.bin", "-o", "back.bin")
    assert down.returncode == 0, down.stderr
    assert sha((tmp_path / "back.bin").read_bytes()) == sha(DATA)
    everything = up.stdout + up.stderr + down.stdout + down.stderr
    assert azurite.account_key not in everything


@pytest.mark.timeout(120)
def test_azure_sas_urls_upload_and_download(azurite, tmp_path: Path, src: Path) -> None:  # type: ignore[no-untyped-def]
    container = azurite.create_container()
    sas = azurite.blob_sas(container, "sas.bin", permission="racw")
    up = cli(tmp_path, "upload", str(src), sas, "--chunk-size", "1M")
    assert up.returncode == 0, up.stderr
    assert azurite.read_blob(container, "sas.bin") == DATA
    down = cli(tmp_path, "download", sas, "--json")
    assert down.returncode == 0, down.stderr
    assert sha((tmp_path / "sas.bin").read_bytes()) == sha(DATA)
    signature = next(p.split("=", 1)[1] for p in sas.split("?", 1)[1].split("&") if p.startswith("sig="))
    assert signature not in up.stdout + up.stderr + down.stdout + down.stderr


@pytest.mark.timeout(120)
def test_oss_account_upload_download_and_presigned_url(tmp_path: Path, src: Path) -> None:
    with FakeOssServer(min_part_size=64 * 1024) as oss:
        creds = oss.credentials
        added = cli(tmp_path, "accounts", "add", "oss", "--provider", "aliyun-oss", "--endpoint", oss.endpoint,
                    "--region", oss.region, "--access-key-id", creds.access_key_id, "--path-style",
                    "--secret-env", "OSS_SECRET", OSS_SECRET=creds.access_key_secret)
        assert added.returncode == 0, added.stderr
        up = cli(tmp_path, "upload", str(src), f"oss://oss/{DEFAULT_BUCKET}/dir/payload.bin", "--chunk-size", "256k")
        assert up.returncode == 0, up.stderr
        stored = oss.get_object(DEFAULT_BUCKET, "dir/payload.bin")
        assert stored is not None and sha(bytes(stored.data)) == sha(DATA)
        down = cli(tmp_path, "download", f"oss://oss/{DEFAULT_BUCKET}/dir/payload.bin")
        assert down.returncode == 0, down.stderr
        assert sha((tmp_path / "payload.bin").read_bytes()) == sha(DATA)  # the name comes from the key
        url = oss.signer().presign("GET", oss.object_url(DEFAULT_BUCKET, "dir/payload.bin"), bucket=DEFAULT_BUCKET,
                                   key="dir/payload.bin", expires=timedelta(minutes=5))
        pre = cli(tmp_path, "download", url, "-o", "presigned.bin")
        assert pre.returncode == 0, pre.stderr
        assert sha((tmp_path / "presigned.bin").read_bytes()) == sha(DATA)
        refused = cli(tmp_path, "upload", str(src), url)
        assert refused.returncode == 2 and "one URL per part" in refused.stderr
        everything = "".join(p.stdout + p.stderr for p in (up, down, pre, refused))
        assert creds.access_key_secret not in everything


def test_storage_url_mistakes_are_usage_errors(tmp_path: Path, src: Path) -> None:
    missing = cli(tmp_path, "download", "oss://nobody/bucket/key.bin")
    assert missing.returncode == 2 and "no account named 'nobody'" in missing.stderr
    malformed = cli(tmp_path, "upload", str(src), "azure://acct/only-container")
    assert malformed.returncode == 2 and "azure://ACCOUNT/container/blob" in malformed.stderr
