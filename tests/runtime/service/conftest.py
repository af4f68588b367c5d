"""The RTSP peer for the service tests; on CI its absence is a failure, not a skip."""

from __future__ import annotations

import os

import pytest

from tests.peers.harness import rtsp_available
from tests.runtime.service.helpers import dynamic_model


@pytest.fixture(scope="session")
def rtsp_peer() -> None:
    why = rtsp_available()
    if why is None:
        return
    message = f"GStreamer RTSP server unavailable ({why}); run scripts/install_test_peers.sh"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return dynamic_model(tmp_path_factory.mktemp("model"))
