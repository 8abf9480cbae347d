"""End to end: ``az container exec`` (the real Azure CLI) against moorage's exec sessions.

The CLI asks for a session with the SDK, opens the ``webSocketUri`` with websocket-client, sends
the password, puts its own terminal in raw mode and relays keystrokes as binary frames. It needs a
terminal on stdin, so it runs on a pseudo-terminal here; websocket-client trusts our CA through
``WEBSOCKET_CLIENT_CA_BUNDLE`` (it does not read ``REQUESTS_CA_BUNDLE``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    ImageRegistryCredential,
    ResourceRequests,
    ResourceRequirements,
)

from tests.api.conftest import RawArm, credential_for, fetch_token
from tests.api.registry_support import admin_password, cert_dir, create_registry, skopeo, unique_name
from tests.conftest import sdk_kwargs
from tests.e2e.test_azcli import AZ, AzCli, require_az
from tests.images import BUSYBOX, build_image, tar_layer, write_layout
from tests.runtime_support import runc_unavailable
from tests.server import RunningServer

UNAVAILABLE = runc_unavailable()
pytestmark = [
    pytest.mark.azcli,
    pytest.mark.root,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE)),
]
SESSION_TIMEOUT_S = 120


@dataclass(frozen=True)
class Target:
    cli: AzCli
    resource_group: str
    group: str


@pytest.fixture(scope="module")
def target(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A logged-in CLI profile and a running group ``cg-azexec`` (busybox, one container)."""
    require_az()
    where = tmp_path_factory.mktemp("azexec")
    cli = AzCli(server, where / "azure-config")
    cli.register_cloud()
    cli.json(*cli.login_args(server.client_secret))
    raw = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
    credential = credential_for(server, server.client_id, server.client_secret)
    aci = ContainerInstanceManagementClient(credential, server.subscription_id, **sdk_kwargs(server))
    rg = f"rg-azexec-{uuid.uuid4().hex[:8]}"
    with raw.http, credential, aci:
        rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{rg}"
        assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code in (200, 201)
        registry = create_registry(raw, rg, unique_name("azexec"), adminUserEnabled=True)
        password = admin_password(raw, registry)
        layer = tar_layer(
            {"bin/busybox": BUSYBOX.read_bytes()},
            modes={"bin/busybox": 0o755},
            symlinks={f"bin/{a}": "busybox" for a in ("sh", "cat", "echo", "sleep", "stty")},
        )
        layout = write_layout(where / "tools", "v1", build_image([layer]))
        image = f"{registry.login_server}/tools:v1"
        pushed = skopeo(
            "copy", "--dest-cert-dir", str(cert_dir(server.ca_path, where / "certs")),
            "--dest-creds", f"{registry.name}:{password}", f"oci:{layout}:v1", f"docker://{image}",
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        group = ContainerGroup(
            location="westus",
            os_type="Linux",
            image_registry_credentials=[
                ImageRegistryCredential(
                    server=registry.login_server, username=registry.name, password=password
                )
            ],
            containers=[
                Container(
                    name="main",
                    image=image,
                    command=["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                    resources=ResourceRequirements(requests=ResourceRequests(memory_in_gb=0.5, cpu=0.5)),
                )
            ],
        )
        aci.container_groups.begin_create_or_update(rg, "cg-azexec", group).result()
        yield Target(cli, rg, "cg-azexec")
        raw.request("DELETE", rg_path)


def _az_on_a_terminal(
    target: Target, args: Sequence[str], typed: Sequence[bytes] = (), size: tuple[int, int] | None = None
) -> tuple[int, str]:
    """Run ``az *args`` with a pseudo-terminal (of ``size`` rows and columns, else unsized) as
    stdin/stdout/stderr, type ``typed`` once it has printed something, and return its exit code
    and everything it wrote."""
    env = dict(target.cli.env, WEBSOCKET_CLIENT_CA_BUNDLE=target.cli.server.ca_path)
    master, slave = pty.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    process = subprocess.Popen(
        [str(AZ), *args], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + SESSION_TIMEOUT_S
    pending = list(typed)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError as exc:
                    if exc.errno == errno.EIO:  # az exited and its terminal closed
                        break
                    raise
                if not chunk:
                    break
                output += chunk
            if pending and output:
                time.sleep(0.3)
                os.write(master, pending.pop(0))
            if process.poll() is not None and not ready:
                break
        else:
            process.kill()
            pytest.fail(f"az did not finish in {SESSION_TIMEOUT_S}s; output so far: {output!r}")
        return process.wait(timeout=30), output.decode(errors="replace")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_az_container_exec_runs_a_command(target: Target) -> None:
    code, output = _az_on_a_terminal(
        target,
        [
            "container",
            "exec",
            "-g",
            target.resource_group,
            "-n",
            target.group,
            "--exec-command",
            "cat /etc/hostname",
        ],
    )
    assert code == 0, output
    assert target.group in output


def test_az_container_exec_runs_an_interactive_shell_of_its_terminal_size(target: Target) -> None:
    code, output = _az_on_a_terminal(
        target,
        ["container", "exec", "-g", target.resource_group, "-n", target.group, "--exec-command", "/bin/sh"],
        typed=[b"echo $((6 * 7)); stty size\r", b"exit\r"],
        size=(41, 123),
    )
    assert code == 0, output
    assert "42" in output
    assert "41 123" in output
