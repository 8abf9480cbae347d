"""Shared fixtures: one real server per session, SDK clients bound to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server import RunningServer


def start_server(home: Path) -> RunningServer:
    server = RunningServer(home)
    server.start()
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The session's moorage server (shared; tests use unique resource names)."""
    running = start_server(tmp_path_factory.mktemp("moorage") / "home")
    yield running
    running.stop()
    running.remove_runtime_objects()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server of the test's own, for tests that restart it or scan all of its logs."""
    running = start_server(tmp_path / "home")
    yield running
    running.stop()
    running.remove_runtime_objects()


def sdk_kwargs(server: RunningServer) -> dict[str, Any]:
    return {"base_url": server.endpoint, "connection_verify": server.ca_path}
