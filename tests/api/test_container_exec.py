"""Container exec and attach, end to end: the official SDK (azure-mgmt-containerinstance 10.1.0)
asks for a session (``containers.execute_command`` / ``containers.attach``), and the ``websockets``
client speaks ACI's protocol to the ``webSocketUri`` it got, the way ``az container exec`` does:
the password as the first message, then the terminal's bytes both ways. The containers are real
runc containers from a busybox image pushed to a moorage registry.

The module runs its own server with a short session lifetime, so that expiry can be observed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerExecRequest,
    ContainerExecRequestTerminalSize,
    ContainerGroup,
    EnvironmentVariable,
    ImageRegistryCredential,
    ResourceRequests,
    ResourceRequirements,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from tests.api.conftest import RawArm, credential_for, fetch_token, trust
from tests.api.registry_support import admin_password, cert_dir, create_registry, skopeo, unique_name
from tests.conftest import sdk_kwargs
from tests.images import BUSYBOX, build_image, tar_layer, write_layout
from tests.runtime_support import runc_unavailable
from tests.server import RunningServer

UNAVAILABLE = runc_unavailable()
pytestmark = [pytest.mark.root, pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))]

SESSION_TTL_S = 6  # the module server's MOORAGE_EXEC_SESSION_TTL
API = "2023-05-01"
APPLETS = ("sh", "echo", "cat", "env", "ls", "touch", "sleep", "false", "stty", "ps")
TICKING = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.5; done"]
POLICY_VIOLATION = 1008


@dataclass(frozen=True)
class Setup:
    server: RunningServer
    aci: ContainerInstanceManagementClient
    raw: RawArm
    resource_group: str
    image: str
    credentials: ImageRegistryCredential
    group: str  # a running group with one container, "main"


@dataclass(frozen=True)
class Outcome:
    """What a websocket session delivered: the output (text and binary frames joined) and how
    the server closed the socket."""

    output: str
    code: int | None
    reason: str


def _image_layout(where: Path) -> Path:
    layer = tar_layer(
        {"bin/busybox": BUSYBOX.read_bytes(), "tmp/.keep": b""},
        modes={"bin/busybox": 0o755},
        symlinks={f"bin/{applet}": "busybox" for applet in APPLETS},
    )
    return write_layout(where / "tools", "v1", build_image([layer]))


def _group(setup_image: str, credentials: ImageRegistryCredential, command: Sequence[str]) -> ContainerGroup:
    return ContainerGroup(
        location="westus",
        os_type="Linux",
        restart_policy="Always",
        image_registry_credentials=[credentials],
        containers=[
            Container(
                name="main",
                image=setup_image,
                command=list(command),
                environment_variables=[
                    EnvironmentVariable(name="GREETING", value="hello from aci"),
                    EnvironmentVariable(name="SECRET_TOKEN", secure_value="s3cr3t-value"),
                ],
                resources=ResourceRequirements(requests=ResourceRequests(memory_in_gb=0.5, cpu=0.5)),
            )
        ],
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A server of the module's own; a registry with the ``tools:v1`` busybox image; a running
    group ``cg-exec`` whose container prints ``tick`` twice a second."""
    where = tmp_path_factory.mktemp("exec")
    server = RunningServer(where / "home", extra_env={"MOORAGE_EXEC_SESSION_TTL": str(SESSION_TTL_S)})
    server.start()
    try:
        credential = credential_for(server, server.client_id, server.client_secret)
        raw = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
        aci = ContainerInstanceManagementClient(credential, server.subscription_id, **sdk_kwargs(server))
        with credential, raw.http, aci:
            yield _prepare(server, aci, raw, where)
    finally:
        server.stop()
        server.remove_runtime_objects()


def _prepare(
    server: RunningServer, aci: ContainerInstanceManagementClient, raw: RawArm, where: Path
) -> Setup:
    rg = f"rg-exec-{uuid.uuid4().hex[:8]}"
    response = raw.request(
        "PUT", f"/subscriptions/{server.subscription_id}/resourcegroups/{rg}", json={"location": "westus"}
    )
    assert response.status_code in (200, 201), response.text
    registry = create_registry(raw, rg, unique_name("exec"), adminUserEnabled=True)
    password = admin_password(raw, registry)
    certs = cert_dir(server.ca_path, where / "certs")
    image = f"{registry.login_server}/tools:v1"
    pushed = skopeo(
        "copy", "--dest-cert-dir", str(certs), "--dest-creds", f"{registry.name}:{password}",
        f"oci:{_image_layout(where)}:v1", f"docker://{image}",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    credentials = ImageRegistryCredential(
        server=registry.login_server, username=registry.name, password=password
    )
    created = aci.container_groups.begin_create_or_update(
        rg, "cg-exec", _group(image, credentials, TICKING)
    ).result()
    assert created.provisioning_state == "Succeeded"
    return Setup(server, aci, raw, rg, image, credentials, "cg-exec")


def _exec(
    setup: Setup, command: str, *, rows: int = 24, cols: int = 80, group: str | None = None
) -> tuple[str, str]:
    response = setup.aci.containers.execute_command(
        setup.resource_group,
        group or setup.group,
        "main",
        ContainerExecRequest(
            command=command, terminal_size=ContainerExecRequestTerminalSize(rows=rows, cols=cols)
        ),
    )
    assert response.web_socket_uri
    assert response.password
    return response.web_socket_uri, response.password


def _attach(setup: Setup, group: str | None = None) -> tuple[str, str]:
    response = setup.aci.containers.attach(setup.resource_group, group or setup.group, "main")
    assert response.web_socket_uri
    assert response.password
    return response.web_socket_uri, response.password


def _session(
    setup: Setup,
    uri: str,
    password: str | None,
    *,
    typed: Sequence[bytes] = (),
    header: bool = False,
    until: str | None = None,
    timeout_s: float = 30.0,
) -> Outcome:
    """Connect, authenticate (first message, or the ``Authorization`` header), type ``typed``
    (binary frames, as ``az container exec`` sends keystrokes) and collect the output until the
    server closes — or, with ``until``, until that text has arrived (then the client closes)."""
    return asyncio.run(
        _converse(setup, uri, password, typed=typed, header=header, until=until, timeout_s=timeout_s)
    )


def _connect(setup: Setup, uri: str, headers: dict[str, str] | None = None) -> connect:
    # The asyncio client: websockets' threaded (sync) client races its reader thread against
    # the handshake on TLS 1.3 and now and then never sends the upgrade request (reproduced
    # against a bare uvicorn app; the asyncio client and websocket-client, az's, do not).
    return connect(uri, ssl=trust(setup.server), additional_headers=headers, open_timeout=10, close_timeout=5)


async def _converse(
    setup: Setup,
    uri: str,
    password: str | None,
    *,
    typed: Sequence[bytes] = (),
    header: bool = False,
    until: str | None = None,
    timeout_s: float = 30.0,
) -> Outcome:
    headers = {"Authorization": password} if header and password else None
    chunks: list[str] = []
    code: int | None = None
    reason = ""
    async with _connect(setup, uri, headers) as socket:
        if password is not None and not header:
            await socket.send(password)
        for data in typed:
            await socket.send(data)
        try:
            while until is None or until not in "".join(chunks):
                message = await asyncio.wait_for(socket.recv(), timeout_s)
                chunks.append(message if isinstance(message, str) else message.decode("utf-8", "replace"))
        except ConnectionClosed as closed:
            if closed.rcvd is not None:
                code, reason = closed.rcvd.code, closed.rcvd.reason
    return Outcome("".join(chunks), code, reason)


def _run(setup: Setup, command: str) -> Outcome:
    uri, password = _exec(setup, command)
    return _session(setup, uri, password)


# -- exec: non-interactive commands -------------------------------------------------------------------


def test_exec_answers_a_websocket_uri_on_the_server_and_a_password(setup: Setup) -> None:
    uri, password = _exec(setup, "echo hello")
    port = setup.server.endpoint.rsplit(":", 1)[1]
    assert uri.startswith(f"wss://127.0.0.1:{port}/moorage/containers/exec/")
    assert len(password) >= 32
    assert password not in uri


def test_echo_hello(setup: Setup) -> None:
    outcome = _run(setup, "echo hello")
    assert outcome == Outcome("hello\r\n", 1000, "exit code 0")


def test_cat_etc_hostname_shows_the_group_name(setup: Setup) -> None:
    outcome = _run(setup, "cat /etc/hostname")
    assert outcome == Outcome(f"{setup.group}\r\n", 1000, "exit code 0")


def test_a_failing_command_reports_its_error_and_exit_code(setup: Setup) -> None:
    outcome = _run(setup, "cat /no/such/file")
    assert "No such file or directory" in outcome.output
    assert (outcome.code, outcome.reason) == (1000, "exit code 1")


def test_a_missing_program_is_127(setup: Setup) -> None:
    outcome = _run(setup, "no-such-program")
    assert "no-such-program" in outcome.output
    assert (outcome.code, outcome.reason) == (1000, "exit code 127")


def test_the_container_environment_is_visible(setup: Setup) -> None:
    outcome = _run(setup, "env")
    lines = outcome.output.split("\r\n")
    assert "GREETING=hello from aci" in lines
    assert "SECRET_TOKEN=s3cr3t-value" in lines  # secure values are for the container, as in ACI
    assert "TERM=xterm" in lines
    assert outcome.reason == "exit code 0"


def test_the_terminal_has_the_requested_size(setup: Setup) -> None:
    uri, password = _exec(setup, "stty size", rows=33, cols=101)
    assert _session(setup, uri, password) == Outcome("33 101\r\n", 1000, "exit code 0")


def test_the_command_is_split_on_whitespace_without_quoting(setup: Setup) -> None:
    # ACI's reading: words split on whitespace, quotes are ordinary characters.
    outcome = _run(setup, "echo   'two   words'")
    assert outcome.output == "'two words'\r\n"


# -- exec: interactive ------------------------------------------------------------------------------


def test_an_interactive_shell_takes_typed_input(setup: Setup) -> None:
    uri, password = _exec(setup, "/bin/sh")
    outcome = _session(setup, uri, password, typed=[b"echo $((6 * 7))\r", b"exit 3\r"])
    assert "42\r\n" in outcome.output
    assert (outcome.code, outcome.reason) == (1000, "exit code 3")


def test_leaving_early_kills_the_process(setup: Setup) -> None:
    uri, password = _exec(setup, "sleep 301")

    async def leave_early() -> None:
        async with _connect(setup, uri) as socket:
            await socket.send(password)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(socket.recv(), 1)  # it runs, silently
            ps_uri, ps_password = _exec(setup, "ps")
            assert "sleep 301" in (await _converse(setup, ps_uri, ps_password)).output

    asyncio.run(leave_early())  # the client has left
    deadline = time.monotonic() + 20
    while "sleep 301" in _run(setup, "ps").output:
        assert time.monotonic() < deadline, "the exec'd process outlived its session"
        time.sleep(0.2)


# -- exec: the password and the session's life ------------------------------------------------------


def _ran(setup: Setup, marker: str) -> bool:
    return marker in _run(setup, "ls /tmp").output


def test_a_wrong_password_is_refused_and_nothing_runs(setup: Setup) -> None:
    uri, password = _exec(setup, "touch /tmp/wrong-password")
    refused = _session(setup, uri, "not-the-password")
    assert refused == Outcome("", POLICY_VIOLATION, "session refused")
    # One attempt spends the session: the right password is refused afterwards too.
    assert _session(setup, uri, password).code == POLICY_VIOLATION
    assert not _ran(setup, "wrong-password")


def test_a_session_is_used_once(setup: Setup) -> None:
    uri, password = _exec(setup, "echo once")
    assert _session(setup, uri, password).output == "once\r\n"
    assert _session(setup, uri, password) == Outcome("", POLICY_VIOLATION, "session refused")


def test_an_unused_session_expires(setup: Setup) -> None:
    uri, password = _exec(setup, "touch /tmp/expired-session")
    time.sleep(SESSION_TTL_S + 1)
    assert _session(setup, uri, password) == Outcome("", POLICY_VIOLATION, "session refused")
    assert not _ran(setup, "expired-session")


def test_an_unknown_session_is_refused(setup: Setup) -> None:
    uri, _ = _exec(setup, "echo hi")
    forged = uri.rsplit("/", 1)[0] + "/" + "A" * 24
    assert _session(setup, forged, "whatever").code == POLICY_VIOLATION


def test_the_password_is_never_logged(setup: Setup) -> None:
    uri, password = _exec(setup, "echo logged")
    assert _session(setup, uri, password).output == "logged\r\n"
    refused_uri, refused_password = _exec(setup, "echo refused")
    _session(setup, refused_uri, refused_password + "x")
    log = setup.server.log_text()
    assert "exec session issued" in log
    assert password not in log
    assert refused_password not in log


# -- attach ------------------------------------------------------------------------------------------


def test_attach_streams_the_container_output(setup: Setup) -> None:
    uri, password = _attach(setup)
    assert uri.startswith("wss://127.0.0.1:")
    assert "/moorage/containers/attach/" in uri
    # ACI documents the attach password as the handshake's Authorization header.
    outcome = _session(setup, uri, password, header=True, until="tick\ntick\n")
    assert outcome.output.startswith("tick\n")


def test_attach_also_takes_the_password_as_first_message(setup: Setup) -> None:
    uri, password = _attach(setup)
    outcome = _session(setup, uri, password, until="tick\n")
    assert "tick\n" in outcome.output


def test_attach_with_a_wrong_password_is_refused(setup: Setup) -> None:
    uri, _ = _attach(setup)
    outcome = _session(setup, uri, "wrong", header=True)
    assert outcome == Outcome("", POLICY_VIOLATION, "session refused")


def test_an_exec_password_does_not_open_an_attach_socket(setup: Setup) -> None:
    uri, password = _exec(setup, "echo hi")
    attach_uri = uri.replace("/containers/exec/", "/containers/attach/")
    assert _session(setup, attach_uri, password).code == POLICY_VIOLATION


# -- ARM errors -------------------------------------------------------------------------------------


@pytest.fixture
def stoppable(setup: Setup) -> Iterator[str]:
    """A running group of the test's own (it may stop it)."""
    name = f"cg-stop-{uuid.uuid4().hex[:6]}"
    group = _group(setup.image, setup.credentials, TICKING)
    setup.aci.container_groups.begin_create_or_update(setup.resource_group, name, group).result()
    yield name
    setup.aci.container_groups.begin_delete(setup.resource_group, name).result()


def test_attach_ends_when_the_container_stops(setup: Setup, stoppable: str) -> None:
    uri, password = _attach(setup, stoppable)

    async def watch_the_stop() -> Close | None:
        async with _connect(setup, uri) as socket:
            await socket.send(password)
            assert "tick" in str(await asyncio.wait_for(socket.recv(), 20))
            setup.aci.container_groups.stop(setup.resource_group, stoppable)
            try:
                while True:
                    await asyncio.wait_for(socket.recv(), 30)
            except ConnectionClosed as closed:
                return closed.rcvd

    closed = asyncio.run(watch_the_stop())
    assert closed is not None
    assert (closed.code, closed.reason) == (1000, "container exited")


def test_exec_in_a_stopped_group_is_a_conflict(setup: Setup, stoppable: str) -> None:
    setup.aci.container_groups.stop(setup.resource_group, stoppable)
    with pytest.raises(HttpResponseError) as info:
        _exec(setup, "echo hi", group=stoppable)
    assert info.value.status_code == 409
    assert info.value.error is not None
    assert info.value.error.code == "ContainerGroupNotRunning"
    assert stoppable in str(info.value.error.message)
    with pytest.raises(HttpResponseError) as attach_info:
        setup.aci.containers.attach(setup.resource_group, stoppable, "main")
    assert attach_info.value.status_code == 409


def _post(
    setup: Setup, container: str, action: str, body: object, group: str | None = None
) -> tuple[int, dict[str, Any]]:
    path = (
        f"/subscriptions/{setup.server.subscription_id}/resourceGroups/{setup.resource_group}/providers/"
        f"Microsoft.ContainerInstance/containerGroups/{group or setup.group}/containers/{container}/{action}"
    )
    response = setup.raw.request("POST", path, api_version=API, json=body)
    return response.status_code, response.json()


def test_exec_in_an_unknown_container_or_group_is_not_found(setup: Setup) -> None:
    status, body = _post(setup, "ghost", "exec", {"command": "echo"})
    assert status == 404
    assert body["error"]["code"] == "ContainerNotFound"
    assert (
        body["error"]["message"]
        == f"The container 'ghost' does not exist in container group '{setup.group}'."
    )
    status, body = _post(setup, "main", "exec", {"command": "echo"}, group="cg-nowhere")
    assert status == 404
    assert body["error"]["code"] == "ResourceNotFound"


@pytest.mark.parametrize(
    ("body", "code", "target"),
    [
        ({"command": "", "terminalSize": {"rows": 24, "cols": 80}}, "InvalidParameter", "command"),
        ({"command": "   "}, "InvalidParameter", "command"),
        ({}, "InvalidParameter", "command"),
        ({"command": ["echo", "hi"]}, "InvalidRequestContent", "command"),
        (
            {"command": "echo", "terminalSize": {"rows": -1, "cols": 80}},
            "InvalidParameter",
            "terminalSize.rows",
        ),
        (
            {"command": "echo", "terminalSize": {"rows": 24, "cols": 70000}},
            "InvalidParameter",
            "terminalSize.cols",
        ),
        (
            {"command": "echo", "terminalSize": {"rows": "tall", "cols": 80}},
            "InvalidRequestContent",
            "terminalSize.rows",
        ),
        ({"command": "echo", "terminalSize": [24, 80]}, "InvalidRequestContent", "terminalSize"),
        ({"command": "echo " + "x" * 9000}, "InvalidParameter", "command"),
    ],
)
def test_exec_request_is_validated(setup: Setup, body: object, code: str, target: str) -> None:
    status, answer = _post(setup, "main", "exec", body)
    assert status == 400, answer
    assert answer["error"]["code"] == code
    assert answer["error"]["target"] == target
