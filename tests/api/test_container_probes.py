"""Liveness and readiness probes of container groups, through the official SDK against real runc
containers: exec probes run in the container, httpGet probes reach busybox httpd at the group's
address from the host. Failed attempts are aggregated ``Unhealthy`` events worded like kubelet's;
a liveness failure is ``Killing`` and a restart by the policy; readiness only reports.

Probes run every second (``periodSeconds`` 1) so that each test takes seconds.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.identity import ClientSecretCredential
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    ContainerExec,
    ContainerGroup,
    ContainerHttpGet,
    ContainerProbe,
    ContainerPropertiesInstanceView,
    Event,
    ImageRegistryCredential,
)

from tests.api.conftest import RawArm, credential_for, fetch_token
from tests.api.registry_support import admin_password, create_registry, unique_name
from tests.api.test_container_groups import IDLE, _push, container, eventually, group_of, runs_containers
from tests.conftest import sdk_kwargs
from tests.server import RunningServer

HTTPD = "httpd -f -vv -p 8080 -h /www"  # -vv: each request and its status in the container's log
# PID 1 ignores SIGTERM without a handler: trap it, so that a kill does not wait the grace period.
HTTPD_TERM = f"trap 'exit 143' TERM; {HTTPD} & wait"
SICK_TERM = "trap 'exit 143' TERM; sleep 3600 & wait"
# Healthy for two seconds, then /state/healthy is gone.
TURNS_SICK = f"touch /state/healthy; sleep 2; rm /state/healthy; {IDLE}"


@dataclass(frozen=True)
class Images:
    group: str  # the resource group
    image: str  # busybox with /www/healthz and an empty /state
    credentials: list[ImageRegistryCredential]


def _setup(server: RunningServer, raw: RawArm, where: Path) -> Images:
    name = f"rg-probes-{uuid.uuid4().hex[:8]}"
    rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{name}"
    assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code in (200, 201)
    registry = create_registry(raw, name, unique_name("probes"), adminUserEnabled=True)
    password = admin_password(raw, registry)
    files = {"www/healthz": b"ok\n", "state/.keep": b""}
    _push(server, where, f"{registry.name}:{password}", "probe", login=registry.login_server, files=files)
    login = registry.login_server
    return Images(
        name,
        f"{login}/probe:v1",
        [ImageRegistryCredential(server=login, username=registry.name, password=password)],
    )


@pytest.fixture(scope="module")
def images(server: RunningServer, raw: RawArm, tmp_path_factory: pytest.TempPathFactory) -> Images:
    return _setup(server, raw, tmp_path_factory.mktemp("probes"))


@pytest.fixture(scope="module")
def aci(
    server: RunningServer, credential: ClientSecretCredential
) -> Iterator[ContainerInstanceManagementClient]:
    with ContainerInstanceManagementClient(
        credential, server.subscription_id, **sdk_kwargs(server)
    ) as client:
        yield client


def exec_probe(script: str, **kw: int) -> ContainerProbe:
    return ContainerProbe(
        exec_property=ContainerExec(command=["/bin/sh", "-c", script]), period_seconds=1, **kw
    )


def http_probe(path: str, **kw: int) -> ContainerProbe:
    # httpd needs a moment to listen: the first attempt waits a second.
    return ContainerProbe(
        http_get=ContainerHttpGet(port=8080, path=path, scheme="http"),
        period_seconds=1,
        initial_delay_seconds=1,
        **kw,
    )


def probed_group(
    images: Images,
    script: str,
    *,
    liveness: ContainerProbe | None = None,
    readiness: ContainerProbe | None = None,
    restart: str = "Always",
) -> ContainerGroup:
    main = container(images.image, command=["/bin/sh", "-c", script])
    main.liveness_probe = liveness
    main.readiness_probe = readiness
    return group_of(main, credentials=images.credentials, restart=restart)


@contextlib.contextmanager
def running(
    aci: ContainerInstanceManagementClient, images: Images, name: str, group: ContainerGroup
) -> Iterator[str]:
    result = aci.container_groups.begin_create_or_update(images.group, name, group).result()
    assert result.provisioning_state == "Succeeded"
    try:
        yield name
    finally:
        aci.container_groups.begin_delete(images.group, name).result()


def view_of(
    aci: ContainerInstanceManagementClient, images: Images, name: str
) -> ContainerPropertiesInstanceView:
    view = aci.container_groups.get(images.group, name).containers[0].instance_view
    assert view is not None
    return view


def events(view: ContainerPropertiesInstanceView, name: str) -> list[Event]:
    return [e for e in view.events or [] if e.name == name]


def unhealthy_count(view: ContainerPropertiesInstanceView) -> int:
    return sum(e.count or 0 for e in events(view, "Unhealthy"))


def container_id(view: ContainerPropertiesInstanceView) -> str:
    started = events(view, "Started")
    return str(started[-1].message).rsplit(" ", 1)[1]


@runs_containers
def test_failing_exec_liveness_probe_restarts_the_container(
    aci: ContainerInstanceManagementClient, images: Images
) -> None:
    probe = exec_probe("cat /state/healthy", failure_threshold=2)
    with running(aci, images, "cg-live-exec", probed_group(images, TURNS_SICK, liveness=probe)) as name:
        view = eventually(
            lambda: v if (v := view_of(aci, images, name)).restart_count >= 1 else None,
            timeout=40,
            what="a restart by the liveness probe",
        )
        [unhealthy] = events(view, "Unhealthy")
        assert unhealthy.type == "Warning"
        assert unhealthy.message == (
            "Liveness probe failed: cat: can't open '/state/healthy': No such file or directory"
        )
        assert unhealthy.count >= 2  # failureThreshold attempts, aggregated
        [killing] = events(view, "Killing")
        assert killing.type == "Normal"
        assert killing.message == "Container main failed liveness probe, will be restarted"
        assert unhealthy.first_timestamp <= killing.first_timestamp
        assert view.previous_state.state == "Terminated"
        assert aci.container_groups.get(images.group, name).instance_view.state == "Running"


@runs_containers
def test_passing_http_liveness_probe_keeps_the_container(
    aci: ContainerInstanceManagementClient, images: Images
) -> None:
    probe = http_probe("/healthz", failure_threshold=1)
    with running(
        aci, images, "cg-live-http-ok", probed_group(images, f"exec {HTTPD}", liveness=probe)
    ) as name:
        logs = eventually(
            lambda: (
                text
                if (text := aci.containers.list_logs(images.group, name, "main").content or "").count(
                    "url:/healthz"
                )
                >= 3
                else None
            ),
            what="three probe requests in httpd's log",
        )
        assert "response:200" in logs
        view = view_of(aci, images, name)
        assert view.restart_count == 0
        assert view.current_state.state == "Running"
        assert events(view, "Unhealthy") == []
        assert events(view, "Killing") == []


@runs_containers
def test_http_liveness_probe_on_a_wrong_path_restarts_the_container(
    aci: ContainerInstanceManagementClient, images: Images
) -> None:
    probe = http_probe("/missing", failure_threshold=2)
    with running(aci, images, "cg-live-http-404", probed_group(images, HTTPD_TERM, liveness=probe)) as name:
        view = eventually(
            lambda: v if (v := view_of(aci, images, name)).restart_count >= 1 else None,
            timeout=40,
            what="a restart by the liveness probe",
        )
        [unhealthy] = events(view, "Unhealthy")
        assert unhealthy.message == "Liveness probe failed: HTTP probe failed with statuscode: 404"
        assert unhealthy.type == "Warning"
        assert [e.message for e in events(view, "Killing")] == [
            "Container main failed liveness probe, will be restarted"
        ]
        assert (view.previous_state.state, view.previous_state.exit_code) == ("Terminated", 143)


@runs_containers
def test_failing_readiness_probe_only_reports(aci: ContainerInstanceManagementClient, images: Images) -> None:
    probe = exec_probe("cat /state/ready", failure_threshold=1)
    with running(aci, images, "cg-ready", probed_group(images, IDLE, readiness=probe)) as name:
        view = eventually(
            lambda: v if unhealthy_count(v := view_of(aci, images, name)) >= 3 else None,
            what="three failed readiness attempts",
        )
        [unhealthy] = events(view, "Unhealthy")
        assert unhealthy.type == "Warning"
        assert unhealthy.message == (
            "Readiness probe failed: cat: can't open '/state/ready': No such file or directory"
        )
        assert unhealthy.last_timestamp > unhealthy.first_timestamp
        assert view.restart_count == 0
        assert view.current_state.state == "Running"
        assert events(view, "Killing") == []
        assert aci.container_groups.get(images.group, name).instance_view.state == "Running"


@runs_containers
def test_never_policy_leaves_an_unhealthy_container_terminated(
    aci: ContainerInstanceManagementClient, images: Images
) -> None:
    probe = exec_probe("echo sick; exit 1", failure_threshold=2)
    group = probed_group(images, SICK_TERM, liveness=probe, restart="Never")
    with running(aci, images, "cg-live-never", group) as name:
        final = eventually(
            lambda: (
                g
                if (g := aci.container_groups.get(images.group, name)).instance_view.state != "Running"
                else None
            ),
            timeout=30,
            what="the group to end",
        )
        assert final.instance_view.state == "Failed"
        view = final.containers[0].instance_view
        current = view.current_state
        assert (current.state, current.exit_code, current.detail_status) == ("Terminated", 143, "Error")
        assert [e.message for e in events(view, "Killing")] == ["Container main failed liveness probe"]
        assert [e.message for e in events(view, "Unhealthy")] == ["Liveness probe failed: sick"]
        assert events(view, "BackOff") == []
        time.sleep(2.5)  # two more periods: nothing probes or restarts a terminated container
        later = view_of(aci, images, name)
        assert later.restart_count == 0
        assert later.current_state.state == "Terminated"
        assert unhealthy_count(later) == unhealthy_count(view)


@runs_containers
def test_on_failure_policy_restarts_a_container_liveness_killed_even_with_exit_code_0(
    aci: ContainerInstanceManagementClient, images: Images
) -> None:
    """kubelet restarts what liveness killed unless the policy is Never, whatever the exit code."""
    probe = exec_probe("echo sick; exit 1", failure_threshold=1)
    group = probed_group(images, IDLE, liveness=probe, restart="OnFailure")  # SIGTERM: exit 0
    with running(aci, images, "cg-live-onfailure", group) as name:
        view = eventually(
            lambda: v if (v := view_of(aci, images, name)).restart_count >= 1 else None,
            timeout=30,
            what="a restart by the liveness probe",
        )
        assert (view.previous_state.state, view.previous_state.exit_code) == ("Terminated", 0)
        assert "Container main failed liveness probe, will be restarted" in [
            e.message for e in events(view, "Killing")
        ]


def _processes_naming(text: str) -> list[str]:
    """Command lines of the host's processes that mention ``text`` (e.g. ``runc exec <id>``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if text in argv and entry.name != str(os.getpid()):
                found.append(argv)
    return found


def _probe_log_lines(server: RunningServer, container: str) -> int:
    return sum(1 for line in server.log_text().splitlines() if "probe failed" in line and container in line)


@runs_containers
def test_probes_stop_when_the_group_is_deleted(
    aci: ContainerInstanceManagementClient, images: Images, server: RunningServer
) -> None:
    group = probed_group(
        images,
        f"exec {HTTPD}",
        liveness=http_probe("/healthz"),
        readiness=exec_probe("cat /state/ready", failure_threshold=1),
    )
    name = "cg-probe-delete"
    aci.container_groups.begin_create_or_update(images.group, name, group).result()
    view = eventually(
        lambda: v if unhealthy_count(v := view_of(aci, images, name)) >= 2 else None,
        what="probes at work",
    )
    instance = container_id(view)
    assert _probe_log_lines(server, instance) >= 2

    started = time.monotonic()
    aci.container_groups.begin_delete(images.group, name).result()
    assert time.monotonic() - started < 15  # no probe holds the delete up
    after_delete = _probe_log_lines(server, instance)
    runc = subprocess.run(
        ["/usr/sbin/runc", "--root", "/run/moorage/runc", "list", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert instance not in runc.stdout
    deadline = time.monotonic() + 2.5  # more than two periods
    while time.monotonic() < deadline:
        assert _processes_naming(instance) == []
        time.sleep(0.1)
    assert _probe_log_lines(server, instance) == after_delete


@runs_containers
def test_probes_stop_on_shutdown_and_resume_after_a_restart(
    fresh_server: RunningServer, tmp_path: Path
) -> None:
    server = fresh_server
    raw = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
    with raw.http:
        images = _setup(server, raw, tmp_path)
    group = probed_group(
        images,
        f"exec {HTTPD}",
        liveness=http_probe("/healthz"),
        readiness=exec_probe("cat /state/ready", failure_threshold=1),
    )

    @contextlib.contextmanager
    def client() -> Iterator[ContainerInstanceManagementClient]:
        with (
            credential_for(server, server.client_id, server.client_secret) as credential,
            ContainerInstanceManagementClient(
                credential, server.subscription_id, **sdk_kwargs(server)
            ) as sdk,
        ):
            yield sdk

    with client() as sdk:
        sdk.container_groups.begin_create_or_update(images.group, "cg-probe-restart", group).result()
        before = eventually(
            lambda: v if unhealthy_count(v := view_of(sdk, images, "cg-probe-restart")) >= 2 else None,
            what="probes at work",
        )

    server.stop()
    assert server.process is not None
    # A clean shutdown: SIGTERM stops serving and the server closes (watchers, probes, store).
    assert server.process.returncode == 0
    output = server.output()
    for trouble in ("Traceback", "Task was destroyed", "was never awaited", "probe stopped"):
        assert trouble not in output

    server.start()
    with client() as sdk:
        after = eventually(
            lambda: (
                v
                if unhealthy_count(v := view_of(sdk, images, "cg-probe-restart"))
                > unhealthy_count(before) + 1
                else None
            ),
            what="probes to resume",
        )
        assert after.restart_count == 0  # the passing liveness probe resumed too, and passes
        assert container_id(after) == container_id(before)
        sdk.container_groups.begin_delete(images.group, "cg-probe-restart").result()
