"""Fixtures shared by the provider tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_oss import FakeOssServer

# The shared helpers hold assertions (Recorder): report their failures as in a test module.
pytest.register_assert_rewrite("tests.support.engine_helpers")


@pytest.fixture
def srv() -> Iterator[FakeOssServer]:
    """A fresh fake OSS server with default settings; the test fails if the server logged an error."""
    with FakeOssServer() as server:
        yield server
    assert server.errors == []
