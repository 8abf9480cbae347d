"""``moorage container``: a refused create with its classified cause (no containers run), and
the lifecycle of a running group (real runc containers)."""

from __future__ import annotations

import json
import time

import httpx

from tests.api.conftest import fetch_token, trust
from tests.api.test_container_groups import runs_containers
from tests.cli.conftest import Cli, PrivateImage, unique

INACCESSIBLE = (
    "in container group '{name}' is not accessible. Please check the image and registry credential."
)
# Stops at once on SIGTERM (PID 1 ignores signals it has no handler for).
IDLE = "trap 'exit 0' TERM; echo started; sleep 3600 & wait"


def test_wrong_registry_password_prints_the_cause_and_creates_nothing(
    cli: Cli, private_image: PrivateImage
) -> None:
    name = unique("cg-wrong-")
    result = cli.run(
        "container", "create", "-g", private_image.group, "-n", name, "--image", private_image.image,
        "--registry-username", private_image.registry, "--registry-password", "not-the-password",
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert "not-the-password" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"ERROR: (InaccessibleImage) The image '{private_image.image}' " + INACCESSIBLE.format(
        name=name
    )
    assert lines[1].startswith(
        f"Cause: CredentialsRejected: Registry '{private_image.login_server}' rejected"
    )
    assert lines[2] == "Evidence:"
    assert f"  image: {json.dumps(private_image.image)}" in lines
    assert "  credentialKind: adminUser" in lines
    assert f"  username: {private_image.registry}" in lines
    assert lines[-3].startswith("Fix: Check the username and password in imageRegistryCredentials")
    assert lines[-2] == f"Command: az acr credential show -n {private_image.registry}"
    assert lines[-1].startswith("Template: Microsoft.ContainerInstance/containerGroups")
    missing = cli.run("container", "show", "-g", private_image.group, "-n", name, check=False)
    assert missing.returncode == 1


def test_usage_errors(cli: Cli, private_image: PrivateImage) -> None:
    base = (
        "container",
        "create",
        "-g",
        private_image.group,
        "-n",
        unique("cg-"),
        "--image",
        private_image.image,
    )
    for extra in (
        ("--registry-username", "u"),  # no password
        ("--ports", "http"),
        ("--environment-variables", "NOVALUE"),
        ("--restart-policy", "Sometimes"),
        ("--cpu", "lots"),
    ):
        result = cli.run(*base, *extra, check=False)
        assert result.returncode == 2, (extra, result.stderr)
    assert cli.json("container", "list", "-g", private_image.group) == []


def _wait_for_log(cli: Cli, group: str, name: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        content = cli.run("container", "logs", "-g", group, "-n", name).stdout
        if text in content or time.monotonic() > deadline:
            return content
        time.sleep(0.5)


@runs_containers
def test_create_show_logs_exec_restart_delete(cli: Cli, private_image: PrivateImage) -> None:
    name = unique("cg-cli-")
    identity = cli.json("identity", "create", "-n", unique("id-"), "-g", private_image.group)
    created = cli.run(
        "container", "create", "-g", private_image.group, "-n", name, "--image", private_image.image,
        "--registry-login-server", private_image.login_server, "--registry-username", private_image.registry,
        "--registry-password", private_image.password, "--command-line", f"sh -c \"{IDLE}\"",
        "--cpu", "0.5", "--memory", "0.5", "--ports", "8080",
        "--environment-variables", "GREETING=hello there",
        "--secure-environment-variables", "TOKEN=s3cret", "--restart-policy", "Never",
        "--assign-identity", identity["name"],
    )  # fmt: skip
    body = json.loads(created.stdout)
    props = body["properties"]
    assert props["provisioningState"] == "Succeeded"
    assert props["instanceView"]["state"] == "Running"
    assert props["osType"] == "Linux"
    assert props["restartPolicy"] == "Never"
    assert body["identity"]["type"] == "UserAssigned"
    assert list(body["identity"]["userAssignedIdentities"]) == [identity["id"]]
    container = props["containers"][0]
    assert container["name"] == name  # named after the group, as az does
    assert container["properties"]["command"] == ["sh", "-c", IDLE]
    assert container["properties"]["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert {"name": "GREETING", "value": "hello there"} in container["properties"]["environmentVariables"]
    assert "s3cret" not in created.stdout + created.stderr
    assert props["imageRegistryCredentials"] == [
        {"server": private_image.login_server, "username": private_image.registry, "password": None}
    ]
    assert f"container group {name}: Succeeded" in created.stderr
    # show: the ARM body; list as a table.
    assert cli.json("container", "show", "-g", private_image.group, "-n", name)["id"] == body["id"]
    table = cli.run("container", "list", "-g", private_image.group, "-o", "table").stdout.splitlines()
    assert table[0].split()[:3] == ["Name", "ResourceGroup", "Status"]
    # (a list carries no instance view: the status is the provisioning state)
    assert table[2].split()[:4] == [name, private_image.group, "Succeeded", private_image.image]
    # logs: the text as is; with -o json, ARM's {content}.
    assert _wait_for_log(cli, private_image.group, name, "started") == "started\n"
    assert cli.json("container", "logs", "-g", private_image.group, "-n", name, "-o", "json") == {
        "content": "started\n"
    }
    _exec(cli, private_image.group, name)
    # restart (waits until it runs again), stop, start.
    cli.run("container", "restart", "-g", private_image.group, "-n", name)
    assert _state(cli, private_image.group, name) == "Running"
    cli.run("container", "stop", "-g", private_image.group, "-n", name)
    assert _state(cli, private_image.group, name) == "Stopped"
    cli.run("container", "start", "-g", private_image.group, "-n", name)
    assert _state(cli, private_image.group, name) == "Running"
    deleted = cli.json("container", "delete", "-g", private_image.group, "-n", name, "--yes")
    assert deleted["name"] == name
    assert cli.run("container", "show", "-g", private_image.group, "-n", name, check=False).returncode == 1


def _state(cli: Cli, group: str, name: str) -> str:
    return str(cli.json("container", "show", "-g", group, "-n", name)["properties"]["instanceView"]["state"])


def _exec_supported(cli: Cli, group: str, name: str) -> bool:
    """Whether this server serves exec sessions (it answers UnsupportedOperation until it does)."""
    token = fetch_token(cli.server, cli.server.client_id, cli.server.client_secret)
    path = (
        f"{cli.subscription}/resourceGroups/{group}/providers/Microsoft.ContainerInstance/containerGroups/"
        f"{name}/containers/{name}/exec"
    )
    response = httpx.post(
        f"{cli.server.endpoint}{path}",
        params={"api-version": "2023-05-01"},
        headers={"Authorization": f"Bearer {token}"},
        json={"command": "true", "terminalSize": {"rows": 24, "cols": 80}},
        verify=trust(cli.server),
    )
    return response.status_code == 200


def _exec(cli: Cli, group: str, name: str) -> None:
    if not _exec_supported(cli, group, name):
        # Until the server serves exec, the CLI reports the refusal cleanly.
        refused = cli.run(
            "container", "exec", "-g", group, "-n", name, "--exec-command", "echo hi", check=False
        )
        assert refused.returncode == 1
        assert refused.stdout == ""
        assert refused.stderr.startswith("ERROR: (UnsupportedOperation) ")
        assert len(refused.stderr.splitlines()) == 1
        return
    # (the test image has /bin/busybox and /bin/sh only)
    ran = cli.run("container", "exec", "-g", group, "-n", name, "--exec-command", "busybox echo hello world")
    assert ran.stdout == "hello world\n"  # a terminal's \r\n as plain lines, not being a terminal
    env = cli.run("container", "exec", "-g", group, "-n", name, "--exec-command", "busybox env")
    assert "GREETING=hello there" in env.stdout.splitlines()
    failed = cli.run(
        "container", "exec", "-g", group, "-n", name, "--exec-command", "nosuchprogram", check=False
    )
    assert failed.returncode == 1
    assert "exited with code 127" in failed.stderr


@runs_containers
def test_logs_follow_prints_until_the_container_ends(cli: Cli, private_image: PrivateImage) -> None:
    name = unique("cg-follow-")
    cli.run(
        "container", "create", "-g", private_image.group, "-n", name, "--image", private_image.image,
        "--registry-username", private_image.registry, "--registry-password", private_image.password,
        "--command-line", "sh -c 'echo one; sleep 2; echo two'", "--restart-policy", "Never",
        "--cpu", "0.5", "--memory", "0.5",
    )  # fmt: skip
    followed = cli.run("container", "logs", "-g", private_image.group, "-n", name, "--follow", timeout=60)
    assert followed.stdout == "one\ntwo\n"
    assert _state(cli, private_image.group, name) == "Succeeded"
    both = cli.run(
        "container", "logs", "-g", private_image.group, "-n", name, "--follow", "-o", "json", check=False
    )
    assert both.returncode == 2
    cli.run("container", "delete", "-g", private_image.group, "-n", name, "--yes")
