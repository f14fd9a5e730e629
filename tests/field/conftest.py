"""Fixtures of the field tests: TLS servers from a private CA, and an environment with no proxy in it.

The proxy variables are cleared for every test here (the scheduler reads ``os.environ`` when its thread starts, and
a CLI subprocess inherits it): a CI machine's own ``no_proxy=127.0.0.1`` would otherwise send the tests' requests
around the proxy they mean to go through, and its ``http_proxy`` would send the others through a proxy they never
started. Tests that want proxy variables set their own.
"""

from __future__ import annotations

import pytest

from tests.support.tls import (  # noqa: F401 -- fixtures
    ca_bundle,
    private_ca,
    tls_server,
    untrusted_ca,
    untrusted_tls_server,
)

pytest.register_assert_rewrite("tests.support.engine_helpers")

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
