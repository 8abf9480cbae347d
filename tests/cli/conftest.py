"""The ``moorage`` command line against the session's live server, run as users run it: a
subprocess ``python -m moorage … --home <the server's data directory>``, JSON output parsed,
exit codes checked (0 ok, 1 refused by the server, 2 usage or local error)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import RawArm, fetch_token
from tests.api.registry_support import cert_dir, skopeo
from tests.images import busybox_image, write_layout
from tests.server import RunningServer


@dataclass(frozen=True)
class Cli:
    """Runs the CLI against one server."""

    server: RunningServer

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # No MOORAGE_* settings leak in: --home alone says which server to talk to.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        result = subprocess.run(
            [sys.executable, "-m", "moorage", *args, "--home", str(self.server.home)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
        if check:
            assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)

    @property
    def subscription(self) -> str:
        return f"/subscriptions/{self.server.subscription_id}"


@pytest.fixture(scope="session")
def cli(server: RunningServer) -> Cli:
    return Cli(server)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def group(cli: Cli) -> Iterator[str]:
    """A resource group of the test's own (made with the CLI), deleted afterwards."""
    name = unique("rg-cli-")
    cli.run("group", "create", "-n", name, "-l", "westus")
    yield name
    cli.run("group", "delete", "-n", name, "--yes", check=False)


@dataclass(frozen=True)
class PrivateImage:
    """A busybox image in a Premium registry with the admin user enabled."""

    group: str
    registry: str
    login_server: str
    password: str  # the admin password

    @property
    def image(self) -> str:
        return f"{self.login_server}/tests/busybox:v1"


def push_busybox(server: RunningServer, where: Path, login_server: str, creds: str) -> None:
    layout = write_layout(where / "layout", "v1", busybox_image())
    pushed = skopeo(
        "copy",
        "--dest-cert-dir",
        str(cert_dir(server.ca_path, where / "certs")),
        "--dest-creds",
        creds,
        f"oci:{layout}:v1",
        f"docker://{login_server}/tests/busybox:v1",
    )
    assert pushed.returncode == 0, pushed.stderr


@pytest.fixture(scope="module")
def private_image(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateImage]:
    """A resource group holding a registry with the busybox image, made with the CLI."""
    rg = unique("rg-cli-img-")
    cli.run("group", "create", "-n", rg, "-l", "westus")
    try:
        name = unique("cliimg")
        registry = cli.json(
            "acr", "create", "-n", name, "-g", rg, "--sku", "Premium", "--admin-enabled", "true"
        )
        login = registry["properties"]["loginServer"]
        password = cli.json("acr", "credential", "show", "-n", name)["passwords"][0]["value"]
        push_busybox(cli.server, tmp_path_factory.mktemp("cli-img"), login, f"{name}:{password}")
        yield PrivateImage(rg, name, login, password)
    finally:
        cli.run("group", "delete", "-n", rg, "--yes", check=False)


@pytest.fixture(scope="session")
def raw(server: RunningServer) -> Iterator[RawArm]:
    """Plain ARM calls as the bootstrap principal, for set-up the CLI has no verb for (identity
    role assignments on a registry, pushes of hand-built images)."""
    arm = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
    with arm.http:
        yield arm
