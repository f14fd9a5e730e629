"""Secrets sweep: with known secrets configured and used for real transfers that also fail, no secret is written
anywhere -- not in the history, a checkpoint, an upload session, a log, an error, a record, the CLI's output, the
preferences file or a crash report.

The secrets (each a distinctive value, looked for raw, percent-encoded, form-encoded and base64'd):

* an Aliyun OSS AccessKey secret (a working account) and a wrong one (an account that gets SignatureDoesNotMatch,
  whose answer echoes the string-to-sign);
* the Azure account key (Azurite's), a container SAS token (an Azure SAS account) and a blob SAS whose expiry has
  passed (403);
* an HTTP account's bearer token (Authorization: Bearer), behind 500s whose bodies echo the request headers;
* signed-URL signatures: an OSS presigned GET (``x-oss-signature``) and a plain URL with ``signature=`` and
  ``token=`` parameters, plus a custom ``Authorization`` header, against a 403 whose body echoes URL and header.

One module-scoped run does it all: first in-process through a :class:`TransferManager` (records and listener
calls written to a file as they arrive, transfers left paused mid-way so their ``.part.ckpt`` and upload session
files exist, the history copied while the manager is open), then through ``rusty-cat-cli`` subprocesses (stdout and
stderr kept), then a child that crashes with an unhandled exception carrying a failed transfer's error, a task,
a resolved target and credentials objects, while a SAS URL sits in its frame. The engine's debug log listener and
Python's logging (DEBUG, every logger) write to files throughout, in-process and in the CLI.

Positive controls prove the scan can see: the servers received every secret, and the CLI's file keyring (the
one place secrets belong; it is base64 in a plain file because the test names that backend) contains them.

httpx's own INFO log line ("HTTP Request: GET <url>") would carry a signed URL's query as is: the engine installs a
redacting filter on the httpx and httpcore loggers (app/engine/redact.py), checked here with INFO logging on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import secrets as pysecrets
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

import pytest

from app.engine.api import FileTransferRecord, Log, MeowConfig, set_debug_log_listener
from app.manager.accounts import Account, Auth, Provider
from app.manager.jobs import Job, JobOptions
from app.manager.manager import ManagerError, TransferManager
from app.manager.secrets import SecretStore
from app.providers.aliyun_oss.signer import OssCredentials
from tests.reliability import soak_summary
from tests.support.azurite import AzuriteServer
from tests.support.engine_helpers import KIB, MIB, blob, env_for
from tests.support.fake_oss import DEFAULT_BUCKET, FakeOssServer
from tests.support.http_server import Fault, TestHttpServer
from tests.support.memory_keyring import MemoryKeyring

pytestmark = pytest.mark.timeout(120)

OSS_KEY_ID = "LTAIsweepVisibleKeyId"
THIRD_PARTY_LOGGERS = ("httpx", "httpcore", "hpack", "h2", "h11")
WAIT = 20.0


# ---------------------------------------------------------------------------------------------- looking for secrets
def forms(secret: str) -> set[bytes]:
    """How a secret could end up written: as is, URL-encoded (path or query style), decoded, base64 (both
    alphabets, also of ``user:secret`` as Basic auth would)."""
    out = set()
    for base in (secret, unquote(secret)):  # Azure encodes a SAS signature's "+" and "=" but not always its "/"
        out |= {base, quote(base, safe=""), quote(base, safe="/"), quote(base, safe="/+="), quote_plus(base)}
    raw = {s.encode() for s in out}
    for s in list(raw):
        raw.add(base64.b64encode(s))
        raw.add(base64.urlsafe_b64encode(s))
        raw.add(base64.b64encode(s).rstrip(b"="))
    return {r for r in raw if len(r) >= 12}


def leaks(data: bytes, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets in ``data``, also where whitespace splits them (base64 wrapped at 76 columns)."""
    unwrapped = re.sub(rb"\s+", b"", data)
    return sorted({name for name, value in secrets.items() for form in forms(value)
                   if form in data or form in unwrapped})


def scan_files(paths: Sequence[Path], secrets: dict[str, str]) -> dict[str, list[str]]:
    """file -> names of the secrets found in it."""
    found = {}
    for path in paths:
        hits = leaks(path.read_bytes(), secrets)
        if hits:
            found[str(path)] = hits
    return found


def files_under(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------- the run's record
@dataclass
class Sweep:
    root: Path
    secrets: dict[str, str]
    keyring_file: Path  # the CLI's file keyring: the one place the secrets are meant to be
    third_party_log: Path  # httpx/httpcore records (kept apart: they are the ones that carry request URLs)
    app_log: Path  # every other Python logger
    engine_log: Path  # the engine's debug log listener
    callbacks: Path  # every record, listener call and ManagerError the in-process run saw
    db_while_open: Path  # the history files copied while the manager was open
    cli_outputs: list[Path] = field(default_factory=list)
    crash_stderr: Path | None = None
    qsettings: Path | None = None
    server_saw: dict[str, bool] = field(default_factory=dict)
    memory_keyring_values: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)  # job name -> final status, for the coverage check


class _SplitHandler(logging.Handler):
    """Python logging to two files: third-party HTTP libraries apart from everything else."""

    def __init__(self, app_log: Path, third_party_log: Path) -> None:
        super().__init__(logging.DEBUG)
        self._app = app_log.open("a", encoding="utf-8")
        self._third = third_party_log.open("a", encoding="utf-8")
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        third = record.name.split(".", 1)[0] in THIRD_PARTY_LOGGERS
        try:
            line = self.format(record)
        except Exception:  # a record whose arguments don't format is still a record to keep
            line = f"{record.name} {record.levelname} {record.msg!r} {record.args!r}"
        out = self._third if third else self._app
        out.write(line + "\n")
        out.flush()

    def close(self) -> None:
        self._app.close()
        self._third.close()
        super().close()


@contextlib.contextmanager
def captured_logs(sweep: Sweep) -> Iterator[None]:
    root = logging.getLogger()
    handler = _SplitHandler(sweep.app_log, sweep.third_party_log)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    engine_file = sweep.engine_log.open("a", encoding="utf-8")

    def on_log(entry: Log) -> None:
        engine_file.write(str(entry) + "\n")
        engine_file.flush()

    set_debug_log_listener(on_log)
    try:
        yield
    finally:
        set_debug_log_listener(None)
        engine_file.close()
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


# ---------------------------------------------------------------------------------------------- the services
@dataclass
class Services:
    http: TestHttpServer
    oss: FakeOssServer
    azurite: AzuriteServer
    container: str
    urls: dict[str, str] = field(default_factory=dict)


def _echo(text: str) -> str:
    """A body that repeats what the request carried, as some servers and proxies do in their error pages."""
    return f"<Error><Message>request refused</Message><Echo>{text}</Echo></Error>"


def _prepare(svc: Services, secrets: dict[str, str], root: Path) -> None:
    http, oss, az, container = svc.http, svc.oss, svc.azurite, svc.container
    for path, size in (("/signed.bin", 300 * KIB), ("/slow.bin", 2 * MIB), ("/private/bearer.bin", 200 * KIB),
                       ("/echo403.bin", 10 * KIB), ("/echo500.bin", 10 * KIB)):
        http.add_file(path, blob(size, seed=len(path)))
    query = f"signature={secrets['url_signature']}&token={secrets['url_token']}&x=1"
    svc.urls["signed"] = http.url("/signed.bin") + "?" + query
    svc.urls["slow"] = http.url("/slow.bin") + "?" + query
    svc.urls["echo403"] = http.url("/echo403.bin") + "?" + query
    svc.urls["echo500"] = http.url("/echo500.bin") + "?" + query
    svc.urls["bearer"] = http.url("/private/bearer.bin")
    custom = f"Custom {secrets['custom_authorization']}"
    http.add_fault(Fault("status", path_prefix="/echo403.bin", status=403, times=-1,
                         body=_echo(f"{svc.urls['echo403']} Authorization: {custom}")))
    http.add_fault(Fault("status", method="GET", path_prefix="/echo500.bin", status=500, times=-1,
                         body=_echo(f"{svc.urls['echo500']} Authorization: {custom}")))

    oss.put_object(DEFAULT_BUCKET, "sweep/down.bin", blob(300 * KIB, seed=3))
    svc.urls["oss_presigned"] = oss.signer().presign("GET", oss.object_url(DEFAULT_BUCKET, "sweep/down.bin"),
                                                     bucket=DEFAULT_BUCKET, key="sweep/down.bin",
                                                     expires=timedelta(hours=1))
    secrets["oss_presigned_signature"] = dict(parse_qsl(urlsplit(svc.urls["oss_presigned"]).query))[
        "x-oss-signature"]

    client = az.service_client()
    client.get_blob_client(container, "sweep/down.bin").upload_blob(blob(300 * KIB, seed=4), overwrite=True)
    client.get_blob_client(container, "sweep/sas.bin").upload_blob(blob(2 * MIB, seed=5), overwrite=True)
    svc.urls["blob_sas"] = az.blob_sas(container, "sweep/sas.bin", permission="r")
    svc.urls["expired_sas"] = az.blob_sas(container, "sweep/down.bin", permission="r",
                                          expiry=timedelta(hours=-1))
    secrets["blob_sas_signature"] = dict(parse_qsl(urlsplit(svc.urls["blob_sas"]).query))["sig"]
    secrets["expired_sas_signature"] = dict(parse_qsl(urlsplit(svc.urls["expired_sas"]).query))["sig"]
    container_url, token = az.container_sas(container, permission="racwl").split("?", 1)
    svc.urls["container"] = container_url
    secrets["container_sas_token_signature"] = dict(parse_qsl(token))["sig"]
    secrets["container_sas_token"] = token

    sources = root / "sources"
    sources.mkdir()
    for name, size in (("oss-up.bin", 2 * MIB), ("az-up.bin", 2 * MIB), ("az-key-up.bin", 200 * KIB),
                       ("cli-up.bin", 300 * KIB)):
        (sources / name).write_bytes(blob(size, seed=len(name)))


def _accounts(svc: Services, secrets: dict[str, str]) -> list[tuple[Account, str]]:
    oss, az = svc.oss, svc.azurite
    oss_fields = {"region": oss.region, "access_key_id": OSS_KEY_ID, "path_style": "true"}
    return [
        (Account("oss", Provider.ALIYUN_OSS, Auth.ACCESS_KEY, oss.endpoint, oss_fields), secrets["oss_secret"]),
        (Account("ossbad", Provider.ALIYUN_OSS, Auth.ACCESS_KEY, oss.endpoint, oss_fields),
         secrets["oss_wrong_secret"]),
        (Account("az", Provider.AZURE_BLOB, Auth.SHARED_KEY, az.endpoint, {"account_name": az.account_name}),
         secrets["azure_account_key"]),
        (Account("azsas", Provider.AZURE_BLOB, Auth.SAS, svc.urls["container"]), secrets["container_sas_token"]),
        (Account("web", Provider.HTTP, Auth.BEARER, svc.http.url("/private")), secrets["bearer_token"]),
    ]


# ---------------------------------------------------------------------------------------------- in-process run
class _Recorder:
    """A ManagerListener and record listener that writes everything it is told to a file, as it arrives."""

    def __init__(self, path: Path) -> None:
        self.out = path.open("a", encoding="utf-8")

    def write(self, kind: str, text: str) -> None:
        self.out.write(f"{kind}: {text}\n")
        self.out.flush()

    def record(self, job: Job, rec: FileTransferRecord) -> None:
        self.write("record", f"{rec!r} error={rec.error!s} job={job!r}")

    def jobs_added(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self.write("added", repr(job))

    def jobs_changed(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self.write("changed", f"{job.name} {job.remote} {job.status.value} {job.error} {job.result}")

    def jobs_removed(self, job_ids: Sequence[str]) -> None:
        self.write("removed", ", ".join(job_ids))

    def job_finished(self, job: Job) -> None:
        self.write("finished", repr(job))


async def _until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _manager_run(sweep: Sweep, svc: Services) -> None:
    ring = MemoryKeyring()
    data_dir = sweep.root / "manager"
    downloads = sweep.root / "manager-downloads"
    downloads.mkdir()
    sources = sweep.root / "sources"
    recorder = _Recorder(sweep.callbacks)
    manager = TransferManager(data_dir, secrets=SecretStore(ring),
                              engine_config=MeowConfig(max_download_concurrency=8, max_upload_concurrency=4,
                                                       retry_base_delay=0.01, retry_max_delay=0.05))
    manager.retries = 2
    await manager.open()
    try:
        manager.add_listener(recorder)
        manager.add_record_listener(recorder.record)
        for account, secret in _accounts(svc, sweep.secrets):
            await manager.accounts.add(account, secret)
        slow = JobOptions(rate_limit=256 * KIB, chunk_size=256 * KIB, connections=2)
        svc.http.add_fault(Fault("status", method="GET", path_prefix="/private/bearer.bin", status=500, times=2,
                                 body=_echo(f"Authorization: Bearer {sweep.secrets['bearer_token']}")))
        custom = [("Authorization", f"Custom {sweep.secrets['custom_authorization']}")]
        c = svc.container
        jobs: dict[str, Job] = {
            "signed": await manager.add_download(svc.urls["signed"], str(downloads), headers=custom),
            "bearer-500s": await manager.add_download(svc.urls["bearer"], str(downloads)),
            "echo403": await manager.add_download(svc.urls["echo403"], str(downloads), headers=custom),
            "echo500": await manager.add_download(svc.urls["echo500"], str(downloads), headers=custom),
            "oss-down": await manager.add_download(f"oss://oss/{DEFAULT_BUCKET}/sweep/down.bin", str(downloads)),
            "oss-presigned": await manager.add_download(svc.urls["oss_presigned"], str(downloads / "presigned.bin")),
            "oss-wrong-secret": await manager.add_download(f"oss://ossbad/{DEFAULT_BUCKET}/sweep/down.bin",
                                                           str(downloads / "bad.bin")),
            "az-down": await manager.add_download(f"azure://az/{c}/sweep/down.bin", str(downloads / "az.bin")),
            "az-key-up": await manager.add_upload(str(sources / "az-key-up.bin"), f"azure://az/{c}/sweep/key-up.bin"),
            "expired-sas": await manager.add_download(svc.urls["expired_sas"], str(downloads / "expired.bin")),
            # left paused mid-way, so their checkpoint and upload-session files exist when the folder is scanned
            "slow-signed": await manager.add_download(svc.urls["slow"], str(downloads), headers=custom,
                                                      options=slow),
            "sas-down": await manager.add_download(svc.urls["blob_sas"], str(downloads / "sas.bin"), options=slow),
            "oss-up": await manager.add_upload(str(sources / "oss-up.bin"), f"oss://oss/{DEFAULT_BUCKET}/sweep/up.bin",
                                               options=slow),
            "sas-account-up": await manager.add_upload(str(sources / "az-up.bin"), f"azure://azsas/{c}/sweep/up.bin",
                                                       options=slow),
        }
        paused = ("slow-signed", "sas-down", "oss-up", "sas-account-up")
        await _until(lambda: all(jobs[n].done_bytes > 0 for n in paused), "the slow transfers to start")
        await manager.pause([jobs[n].id for n in paused])
        finished = [n for n in jobs if n not in paused]
        await _until(lambda: all(jobs[n].status.is_finished for n in finished), "every other job to end")
        for name, job in jobs.items():
            sweep.outcomes[name] = job.status.value
            recorder.write("final", f"{name} {job.status.value} {job.error}")
        # Requests the manager refuses: the error text must not repeat the secret either.
        bad_requests: list[Callable[[], Any]] = [
            lambda: manager.add_download(f"http://127.0.0.1:99999/x?sig={sweep.secrets['url_signature']}",
                                         str(downloads)),
            lambda: manager.add_upload(str(sources / "cli-up.bin"), svc.urls["oss_presigned"]),
            lambda: manager.add_download(f"ftp://host/x?token={sweep.secrets['url_token']}", str(downloads)),
            lambda: manager.add_download(f"http://h st/x?signature={sweep.secrets['url_signature']}", str(downloads)),
        ]
        for make in bad_requests:
            try:
                await make()
            except ManagerError as exc:
                recorder.write("refused", str(exc))
            else:
                raise AssertionError("a bad request was accepted")
        db_copy = sweep.db_while_open
        db_copy.mkdir()
        for p in data_dir.glob("history.sqlite3*"):
            shutil.copy2(p, db_copy / p.name)
    finally:
        await manager.close()
        recorder.out.close()
    sweep.memory_keyring_values = list(ring.values.values())


# ---------------------------------------------------------------------------------------------- the CLI
CLI_WRAPPER = textwrap.dedent("""
    # rusty-cat-cli with the engine's debug log and Python logging (DEBUG, every logger) captured to files: the
    # HTTP libraries' loggers apart (argv[3]) from everything else (argv[2]).
    import logging, sys
    from app.engine.api import set_debug_log_listener
    engine = open(sys.argv[1], "a", encoding="utf-8")
    set_debug_log_listener(lambda entry: (engine.write(str(entry) + "\\n"), engine.flush()))
    THIRD = %r

    class Split(logging.Filter):
        def __init__(self, third):
            super().__init__()
            self.third = third

        def filter(self, record):
            return (record.name.split(".", 1)[0] in THIRD) == self.third

    root = logging.getLogger()
    for path, third in ((sys.argv[2], False), (sys.argv[3], True)):
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.addFilter(Split(third))
        handler.setFormatter(logging.Formatter("%%(name)s %%(levelname)s %%(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    from app.cli import main
    sys.exit(main(sys.argv[4:]))
""") % (THIRD_PARTY_LOGGERS,)


def _cli_runs(sweep: Sweep, svc: Services) -> None:
    root = sweep.root / "cli"
    out = root / "out"
    out.mkdir(parents=True)
    s = sweep.secrets
    env = env_for(root, SWEEP_OSS=s["oss_secret"], SWEEP_OSS_BAD=s["oss_wrong_secret"],
                  SWEEP_SAS=s["container_sas_token"], SWEEP_BEARER=s["bearer_token"],
                  SWEEP_AZ=s["azure_account_key"])
    logs = [str(root / "engine-debug.log"), str(root / "python-app.log"), str(root / "python-third-party.log")]
    oss = ["--provider", "aliyun-oss", "--endpoint", svc.oss.endpoint, "--region", svc.oss.region,
           "--access-key-id", OSS_KEY_ID, "--path-style"]
    adds = [
        ["accounts", "add", "oss", *oss, "--secret-env", "SWEEP_OSS"],
        ["accounts", "add", "ossbad", *oss, "--secret-env", "SWEEP_OSS_BAD"],
        ["accounts", "add", "azsas", "--provider", "azure-blob", "--auth", "sas", "--endpoint", svc.urls["container"],
         "--secret-env", "SWEEP_SAS"],
        ["accounts", "add", "web", "--provider", "http", "--auth", "bearer", "--endpoint", svc.http.url("/private"),
         "--secret-env", "SWEEP_BEARER"],
    ]
    custom = ["-H", f"Authorization: Custom {s['custom_authorization']}"]
    dl = root / "downloads"
    dl.mkdir()
    c = svc.container
    # Commands that use the accounts share their environment (and only read its keyring). Commands that store a
    # job secret (a signed URL, a header) each get their own user folders: keyrings.alt's file keyring is a
    # read-modify-write of one file, so CLIs running at once would lose each other's entries.
    with_accounts = [
        ["download", f"oss://oss/{DEFAULT_BUCKET}/sweep/down.bin", "-o", str(dl / "oss.bin"), "--json"],
        ["upload", str(sweep.root / "sources" / "cli-up.bin"), f"oss://oss/{DEFAULT_BUCKET}/sweep/cli-up.bin"],
        ["download", f"oss://ossbad/{DEFAULT_BUCKET}/sweep/down.bin", "-o", str(dl / "bad.bin")],
        ["upload", str(sweep.root / "sources" / "cli-up.bin"), f"azure://azsas/{c}/sweep/cli-up.bin", "--json"],
        ["download", svc.urls["bearer"], "-o", str(dl / "bearer.bin")],
        ["accounts", "test", "ossbad"],
        ["accounts", "list"],
    ]
    with_job_secrets = [
        ["download", svc.urls["signed"], "-o", str(dl / "signed.bin"), *custom],
        ["download", svc.urls["echo403"], "-o", str(dl / "echo403.bin"), *custom, "--json", "--retries", "1"],
        ["download", svc.urls["echo500"], "-o", str(dl / "echo500.bin"), *custom, "--retries", "1"],
        ["download", svc.urls["expired_sas"], "-o", str(dl / "expired.bin")],
        ["download", svc.urls["oss_presigned"], "-o", str(dl / "presigned.bin"), "--json"],
        ["download", f"http://127.0.0.1:99999/x?signature={s['url_signature']}", "-o", str(dl / "x.bin")],
    ]

    def start(i: int, args: list[str], run_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
        path = out / f"{i:02d}-{args[0]}-{args[1] if args[0] == 'accounts' else 'run'}.txt"
        handle = path.open("wb")
        handle.write(f"$ rusty-cat-cli {' '.join(args)}\n".encode())  # what a user would have typed
        handle.flush()
        proc = subprocess.Popen([sys.executable, "-c", CLI_WRAPPER, *logs, *args], cwd=root, env=run_env,
                                stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        handle.close()
        return proc, path

    for i, args in enumerate(adds):  # one after another: they write the keyring file
        proc, path = start(i, args, env)
        assert proc.wait(WAIT) == 0, path.read_text(errors="replace")
        sweep.cli_outputs.append(path)
    svc.http.add_fault(Fault("status", method="GET", path_prefix="/private/bearer.bin", status=500, times=2,
                             body=_echo(f"Authorization: Bearer {s['bearer_token']}")))
    n = len(adds)
    running = [start(n + i, args, env) for i, args in enumerate(with_accounts)]
    n += len(with_accounts)
    running += [start(n + i, args, env_for(root / f"user{i}")) for i, args in enumerate(with_job_secrets)]
    for proc, path in running:
        proc.wait(60)
        sweep.cli_outputs.append(path)
        # the first line is the command line we typed (with its signed URLs): only the output is the CLI's
        path.with_suffix(".output").write_bytes(path.read_bytes().split(b"\n", 1)[-1])
    codes = {p.name: proc.returncode for proc, p in running}
    expected_ok = [0, 1, 3, 4, 6, 7, 11]  # the others fail on purpose (403, 500, wrong key, expired SAS, bad port)
    assert [i for i, (_, p) in enumerate(running) if codes[p.name] == 0] == expected_ok, \
        {p.name: p.read_text(errors="replace")[-600:] for _, p in running}


# ---------------------------------------------------------------------------------------------- the crash
CRASH_CHILD = textwrap.dedent("""
    # A process that crashes: an unhandled exception, chained to a real failed transfer's error and carrying a
    # task, a resolved target and credentials objects, raised while a SAS URL sits in its frame.
    import asyncio, os, sys
    from app.engine.api import DownloadPounceBuilder
    from app.manager.accounts import resolve_remote
    from app.manager.jobs import JobStatus
    from app.manager.manager import TransferManager
    from app.providers.aliyun_oss.signer import OssCredentials

    async def main(data_dir, folder):
        sas_url = os.environ["CRASH_SAS_URL"]
        manager = TransferManager(data_dir)
        await manager.open()
        errors = []
        manager.add_record_listener(lambda job, rec: rec.error is not None and errors.append(rec.error))
        job = await manager.add_download(sas_url, folder)
        while not job.status.is_finished:
            await asyncio.sleep(0.02)
        task = DownloadPounceBuilder("crash.bin", folder + "/crash.bin", 65536, os.environ["CRASH_SIGNED_URL"]) \\
            .with_headers([("Authorization", "Bearer " + os.environ["CRASH_BEARER"])]).build()
        target = await resolve_remote(manager.accounts, os.environ["CRASH_REMOTE"], "download",
                                      manager.session_dir)
        credentials = OssCredentials("LTAIcrashKeyId", os.environ["CRASH_OSS_SECRET"])
        raise RuntimeError("simulated crash after a failed transfer", job.status, task, target,
                           credentials) from errors[-1]

    asyncio.run(main(*sys.argv[1:]))
""")


def _crash(sweep: Sweep, svc: Services) -> None:
    root = sweep.root / "crash"
    root.mkdir()
    (root / "downloads").mkdir()
    s = sweep.secrets
    env = env_for(root, CRASH_SAS_URL=svc.urls["expired_sas"], CRASH_SIGNED_URL=svc.urls["signed"],
                  CRASH_BEARER=s["bearer_token"], CRASH_OSS_SECRET=s["oss_secret"],
                  CRASH_REMOTE=f"azure://azsas/{svc.container}/sweep/down.bin", SWEEP_SAS=s["container_sas_token"])
    add = subprocess.run([sys.executable, "-m", "app.cli", "accounts", "add", "azsas", "--provider", "azure-blob",
                          "--auth", "sas", "--endpoint", svc.urls["container"], "--secret-env", "SWEEP_SAS"],
                         cwd=root, env=env, capture_output=True, timeout=WAIT)
    assert add.returncode == 0, add.stderr
    data_dir = root / "data" / "rusty-cat"  # the CLI's history (where `accounts add` put the account)
    proc = subprocess.run([sys.executable, "-c", CRASH_CHILD, str(data_dir), str(root / "downloads")],
                          cwd=root, env=env, capture_output=True, timeout=WAIT)
    sweep.crash_stderr = root / "crash.stderr"
    sweep.crash_stderr.write_bytes(proc.stdout + proc.stderr)
    assert proc.returncode == 1, proc.stderr.decode(errors="replace")
    assert b"Traceback" in proc.stderr and b"simulated crash" in proc.stderr, proc.stderr.decode(errors="replace")


# ---------------------------------------------------------------------------------------------- preferences
def _preferences(sweep: Sweep, svc: Services) -> None:
    """The window's preferences (QSettings, a plain INI file): a signed link is refused as the default upload
    destination; a plain one is stored. Then the file is scanned like everything else."""
    from PySide6.QtCore import QSettings

    from app.ui.preferences import Preferences, PreferencesError

    path = sweep.root / "config" / "Rusty Cat.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = QSettings(str(path), QSettings.Format.IniFormat)
    prefs = Preferences(settings)
    for url in (svc.urls["blob_sas"], svc.urls["signed"], svc.urls["oss_presigned"],
                f"{svc.urls['container']}?{sweep.secrets['container_sas_token']}"):
        with pytest.raises(PreferencesError):
            prefs.default_upload_remote = url
    prefs.default_upload_remote = f"azure://azsas/{svc.container}/incoming"
    prefs.sync()
    del prefs
    sweep.qsettings = path


# ---------------------------------------------------------------------------------------------- the run
@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, azurite: AzuriteServer) -> Iterator[Sweep]:
    root = tmp_path_factory.mktemp("secrets-sweep")
    token = pysecrets.token_hex(6)
    secrets = {
        "oss_secret": f"OssSweepSecret{token}Q",
        "oss_wrong_secret": f"OssWrongSecret{token}Z",
        "azure_account_key": azurite.account_key,
        "bearer_token": f"BearerSweep.{token}-tok",
        "url_signature": f"UrlSig{token}%2Bslash%2F",
        "url_token": f"UrlToken{token}",
        "custom_authorization": f"CustomAuthSecret{token}",
    }
    sweep = Sweep(root, secrets, keyring_file=root / "cli" / "data" / "python_keyring" / "keyring_pass.cfg",
                  third_party_log=root / "python-third-party.log", app_log=root / "python-app.log",
                  engine_log=root / "engine-debug.log", callbacks=root / "callbacks.txt",
                  db_while_open=root / "history-while-open")
    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            mp.setenv(var, str(root / "xdg" / var.lower()))  # nothing of this run lands in the real home
        http = stack.enter_context(TestHttpServer())
        oss = stack.enter_context(FakeOssServer(credentials=[OssCredentials(OSS_KEY_ID, secrets["oss_secret"])],
                                                min_part_size=64 * KIB))
        oss.upload_rate_limit = 512 * KIB
        svc = Services(http, oss, azurite, azurite.create_container())
        _prepare(svc, secrets, root)
        with captured_logs(sweep):
            asyncio.run(_manager_run(sweep, svc))
        oss.upload_rate_limit = None
        _cli_runs(sweep, svc)
        _crash(sweep, svc)
        _preferences(sweep, svc)
        requests = [r for r in http.requests] + [r for r in oss.requests]
        seen = b"\n".join(f"{r.path}?{r.query} {r.header_pairs}".encode() for r in requests)
        sweep.server_saw = {name: bool(leaks(seen, {name: v})) for name, v in secrets.items()}
    yield sweep
    soak_summary.record("secrets_sweep", faults=sum(1 for v in sweep.outcomes.values() if v == "failed"),
                        note=f"{len(secrets)} secrets looked for in {len(files_under(root))} files; faults = "
                             "transfers failed on purpose (403, 500, expired SAS, wrong key)")


# ---------------------------------------------------------------------------------------------- the checks
KEYRING_FILES = ("keyring_pass.cfg", "crypted_pass.cfg")  # keyrings.alt's files: where secrets belong


def _third_party_logs(sweep: Sweep) -> list[Path]:
    return [sweep.third_party_log, sweep.root / "cli" / "python-third-party.log"]


def _scannable(sweep: Sweep) -> list[Path]:
    """Everything the run wrote, except the file keyrings (where secrets belong) and the transcripts of the CLI
    command lines we typed (the user's own input; the commands' output is in the ``.output`` files beside them)."""
    out = sweep.root / "cli" / "out"
    return [p for p in files_under(sweep.root)
            if p.name not in KEYRING_FILES and not (p.parent == out and p.suffix == ".txt")]


def test_the_secrets_were_really_used_and_the_scan_can_see_them(sweep: Sweep) -> None:
    """Without this the sweep could pass by never using a secret, or by a scan that cannot find one."""
    # Sent as such to the HTTP or OSS server (the keys only sign; the SAS tokens went to Azurite).
    sent = ("bearer_token", "url_signature", "url_token", "custom_authorization", "oss_presigned_signature")
    missing = [n for n in sent if not sweep.server_saw[n]]
    assert not missing, f"the local servers never received {missing}"
    kept = sweep.keyring_file.read_bytes()
    assert set(leaks(kept, sweep.secrets)) >= {"oss_secret", "oss_wrong_secret", "bearer_token",
                                               "container_sas_token_signature"}, "the scan does not find secrets"
    assert any(sweep.secrets["url_token"] in v for v in sweep.memory_keyring_values), \
        "a signed URL of a job goes to the keyring"
    assert sweep.outcomes["echo403"] == "failed" and sweep.outcomes["expired-sas"] == "failed"
    assert sweep.outcomes["oss-wrong-secret"] == "failed" and sweep.outcomes["echo500"] == "failed"
    assert sweep.outcomes["signed"] == "completed" and sweep.outcomes["bearer-500s"] == "completed"
    assert sweep.outcomes["oss-presigned"] == "completed" and sweep.outcomes["az-key-up"] == "completed"


def test_no_secret_in_the_history_checkpoints_or_upload_sessions(sweep: Sweep) -> None:
    state = [p for p in files_under(sweep.root / "manager", sweep.root / "manager-downloads", sweep.db_while_open,
                                    sweep.root / "cli" / "data", sweep.root / "cli" / "state",
                                    sweep.root / "crash" / "data")
             if p.name not in KEYRING_FILES and not p.name.endswith(".bin")]
    names = {p.name for p in state}
    assert any(n.endswith(".part.ckpt") for n in names), names
    assert any(n.endswith(".upload.json") for n in names), names
    assert any(n.startswith("history.sqlite3") for n in names), names
    assert scan_files(state, sweep.secrets) == {}


def test_no_secret_in_the_engine_debug_log_or_app_logs(sweep: Sweep) -> None:
    logs = [sweep.engine_log, sweep.app_log, sweep.root / "cli" / "engine-debug.log",
            sweep.root / "cli" / "python-app.log"]
    assert all(p.stat().st_size > 0 for p in logs), "nothing was logged: the capture is not working"
    assert scan_files(logs, sweep.secrets) == {}


def test_no_secret_in_errors_records_or_listener_calls(sweep: Sweep) -> None:
    text = sweep.callbacks.read_bytes()
    assert b"refused:" in text and b"error=" in text and b"[RESPONSE_STATUS_ERROR" in text, text[-2000:]
    assert leaks(text, sweep.secrets) == []


def test_no_secret_in_cli_output(sweep: Sweep) -> None:
    outputs = sorted((sweep.root / "cli" / "out").glob("*.output"))
    assert len(outputs) >= 10
    joined = b"".join(p.read_bytes() for p in outputs)
    assert b"failed" in joined and b"REDACTED" in joined  # failures were reported, with the URL shown redacted
    assert scan_files(outputs, sweep.secrets) == {}


def test_no_secret_in_a_crash_report(sweep: Sweep) -> None:
    assert sweep.crash_stderr is not None
    report = sweep.crash_stderr.read_bytes()
    assert b"PounceTask" in report and b"Target(" in report and b"MeowError" in report, report.decode()[-3000:]
    assert leaks(report, sweep.secrets) == [], report.decode(errors="replace")[-3000:]


def test_no_secret_in_the_preferences_file(sweep: Sweep) -> None:
    assert sweep.qsettings is not None and sweep.qsettings.exists()
    assert b"azure://azsas/" in sweep.qsettings.read_bytes()
    assert leaks(sweep.qsettings.read_bytes(), sweep.secrets) == []


def test_no_secret_anywhere_the_run_wrote(sweep: Sweep) -> None:
    """Belt and braces: every file under the run's folder (the keyring files aside)."""
    paths = _scannable(sweep)
    assert len(paths) > 20
    assert scan_files(paths, sweep.secrets) == {}


def test_no_secret_in_the_http_librarys_own_log(sweep: Sweep) -> None:
    """httpx logs "HTTP Request: GET <full URL>" at INFO; the engine's filter must have redacted the query."""
    logs = _third_party_logs(sweep)
    assert b"HTTP Request:" in sweep.third_party_log.read_bytes() and b"REDACTED" in sweep.third_party_log.read_bytes()
    assert all(p.stat().st_size > 0 for p in logs), "httpx logged nothing: the capture is not working"
    assert scan_files(logs, sweep.secrets) == {}
