"""Fixtures of the reliability suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.http_server import TestHttpServer

# The shared helpers hold assertions (failed_with, Recorder): report their failures as in a test module.
pytest.register_assert_rewrite("tests.support.engine_helpers")


@pytest.fixture
def srv() -> Iterator[TestHttpServer]:
    """A fresh local HTTP server; the test fails if the server logged an error while serving it."""
    with TestHttpServer() as server:
        yield server
    assert server.errors == []
