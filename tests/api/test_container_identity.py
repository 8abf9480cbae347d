"""The managed-identity endpoint inside container groups: ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``
in every container of a group with an identity, answered in the App Service protocol.

Real runc containers (busybox from a moorage registry) created through the official SDK; tokens
fetched from inside them with busybox ``wget --header`` (read back through the logs API) and with
the real ``azure-identity`` ``ManagedIdentityCredential`` run in the container's network namespace
(``nsenter --net``) with the container's own identity variables; every token is verified against
the published JWKS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    ContainerGroup,
    ContainerGroupIdentity,
    ImageRegistryCredential,
    InitContainerDefinition,
    UserAssignedIdentities,
)

from moorage.listeners import bind_socket
from tests.api.conftest import RawArm, credential_for, fetch_token, trust
from tests.api.registry_support import admin_password, create_registry, unique_name
from tests.api.test_container_groups import (
    IDLE,
    MI_API,
    _push,
    container,
    eventually,
    runs_containers,
)
from tests.conftest import sdk_kwargs
from tests.server import RunningServer

ACI_API = "2023-05-01"
VAULT = "https://vault.azure.net"
STORAGE = "https://storage.azure.com"
IDENTITY_VARS = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET")
RUNC_ROOT = "/run/moorage/runc"
# Prints the endpoint's answer (busybox wget supports --header), then idles.
FETCH = (
    'wget -q -O - --header "X-IDENTITY-HEADER: $IDENTITY_HEADER" '
    f'"$IDENTITY_ENDPOINT?api-version=2019-08-01&resource={VAULT}"; echo; {IDLE}'
)
# Run with the venv's Python in a container's network namespace: azure-identity's credential.
CREDENTIAL_SCRIPT = """
import json, sys
from azure.identity import ManagedIdentityCredential
with ManagedIdentityCredential(**json.loads(sys.argv[1])) as credential:
    token = credential.get_token(sys.argv[2])
print(json.dumps({"token": token.token, "expires_on": token.expires_on}))
"""
# Run the same way: raw requests, [{"status", "body"}] for each (headers, query) in argv[1].
REQUEST_SCRIPT = """
import json, os, sys, urllib.error, urllib.parse, urllib.request
out = []
for headers, query in json.loads(sys.argv[1]):
    url = os.environ["IDENTITY_ENDPOINT"] + "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            out.append({"status": response.status, "body": json.loads(response.read())})
    except urllib.error.HTTPError as error:
        out.append({"status": error.code, "body": json.loads(error.read())})
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Identity:
    id: str
    principal_id: str
    client_id: str


@dataclass(frozen=True)
class Env:
    rg: str
    image: str
    credentials: list[ImageRegistryCredential]
    a: Identity
    b: Identity


def _user_identity(raw: RawArm, rg: str, name: str) -> Identity:
    path = (
        f"/subscriptions/{raw.server.subscription_id}/resourceGroups/{rg}/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
    response = raw.request("PUT", path, api_version=MI_API, json={"location": "westus"})
    assert response.status_code in (200, 201), response.text
    body = response.json()
    return Identity(body["id"], body["properties"]["principalId"], body["properties"]["clientId"])


def _registry_with_image(server: RunningServer, raw: RawArm, rg: str, where: Path) -> tuple[str, str, str]:
    """A registry (admin enabled) holding ``mi:v1``; returns (login server, admin user, password)."""
    registry = create_registry(raw, rg, unique_name("mi"), adminUserEnabled=True)
    password = admin_password(raw, registry)
    login = registry.login_server
    _push(server, where, f"{registry.name}:{password}", "mi", login=login, files={})
    return login, registry.name, password


@pytest.fixture(scope="module")
def aci(server: RunningServer) -> Iterator[ContainerInstanceManagementClient]:
    with (
        credential_for(server, server.client_id, server.client_secret) as credential,
        ContainerInstanceManagementClient(credential, server.subscription_id, **sdk_kwargs(server)) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def env(server: RunningServer, raw: RawArm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A resource group with a registry holding ``mi:v1`` and two user-assigned identities."""
    rg = f"rg-mi-{uuid.uuid4().hex[:8]}"
    rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{rg}"
    assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code in (200, 201)
    login, user, password = _registry_with_image(server, raw, rg, tmp_path_factory.mktemp("mi"))
    yield Env(
        rg,
        f"{login}/mi:v1",
        [ImageRegistryCredential(server=login, username=user, password=password)],
        _user_identity(raw, rg, "mi-a"),
        _user_identity(raw, rg, "mi-b"),
    )
    raw.request("DELETE", rg_path)


def _group(
    env: Env,
    command: str,
    *,
    identity: ContainerGroupIdentity | None,
    init_command: str | None = None,
) -> ContainerGroup:
    return ContainerGroup(
        location="westus",
        containers=[container(env.image, command=["/bin/sh", "-c", command])],
        init_containers=[
            InitContainerDefinition(name="init", image=env.image, command=["/bin/sh", "-c", init_command])
        ]
        if init_command
        else None,
        os_type="Linux",
        restart_policy="Never",
        identity=identity,
        image_registry_credentials=env.credentials,
    )


def _users(*identities: Identity, system: bool = False) -> ContainerGroupIdentity:
    return ContainerGroupIdentity(
        type="SystemAssigned, UserAssigned" if system else "UserAssigned",
        user_assigned_identities={i.id: UserAssignedIdentities() for i in identities},
    )


@contextlib.contextmanager
def _running(
    aci: ContainerInstanceManagementClient, env: Env, name: str, group: ContainerGroup
) -> Iterator[ContainerGroup]:
    try:
        created = aci.container_groups.begin_create_or_update(env.rg, name, group).result()
        assert created.provisioning_state == "Succeeded"
        yield created
    finally:
        aci.container_groups.begin_delete(env.rg, name).result()


def _logs(
    aci: ContainerInstanceManagementClient, env: Env, group: str, marker: str, name: str = "main"
) -> str:
    return eventually(
        lambda: t if marker in (t := aci.containers.list_logs(env.rg, group, name).content or "") else None,
        what=f"{marker!r} in the logs of {group}/{name}",
    )


def _pid(server: RunningServer, aci: ContainerInstanceManagementClient, env: Env, group: str) -> int:
    """The host pid of the group's main container (its id is in the Started event)."""
    view = aci.container_groups.get(env.rg, group).containers[0].instance_view
    container_id = next(e.message for e in view.events if e.name == "Started").rsplit(" ", 1)[1]
    state = subprocess.run(
        ["/usr/sbin/runc", "--root", RUNC_ROOT, "state", f"{server.runtime_prefix}-{container_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(state.stdout)["pid"])


def _container_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def _in_netns(pid: int, script: str, *args: str, identity_env: dict[str, str]) -> Any:
    """Run ``script`` with this venv's Python inside the network namespace of process ``pid``,
    with only ``identity_env`` (the container's identity variables) and a PATH as environment."""
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **identity_env}
    result = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _identity_env(pid: int) -> dict[str, str]:
    found = _container_env(pid)
    return {k: found[k] for k in IDENTITY_VARS}


def _verified(server: RunningServer, token: str, audience: str) -> dict[str, Any]:
    """The claims of ``token`` verified against the published JWKS (signature, issuer, audience)."""
    with httpx.Client(base_url=server.endpoint, verify=trust(server)) as http:
        config = http.get(f"/{server.tenant_id}/v2.0/.well-known/openid-configuration").json()
        jwks = http.get(config["jwks_uri"]).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience, issuer=config["issuer"]
    )
    return claims


def _credential_token(pid: int, identity_env: dict[str, str], scope: str, **kwargs: Any) -> str:
    answer = _in_netns(pid, CREDENTIAL_SCRIPT, json.dumps(kwargs), scope, identity_env=identity_env)
    return str(answer["token"])


# -- a group with one user-assigned identity --------------------------------------------------------


@pytest.fixture(scope="module")
def user_group(aci: ContainerInstanceManagementClient, env: Env) -> Iterator[str]:
    """Identity ``mi-a``; the init container reports its variables, the main one fetches a token
    with busybox wget and idles."""
    name = "cg-mi-user"
    init = 'echo "init endpoint=$IDENTITY_ENDPOINT"; [ ${#IDENTITY_HEADER} -ge 32 ] && echo init-header-set'
    group = _group(env, FETCH, identity=_users(env.a), init_command=init)
    with _running(aci, env, name, group):
        yield name


@runs_containers
def test_wget_in_a_container_gets_a_token_for_its_identity(
    aci: ContainerInstanceManagementClient, server: RunningServer, env: Env, user_group: str
) -> None:
    logs = _logs(aci, env, user_group, "access_token")
    answer = json.loads(next(line for line in logs.splitlines() if line.startswith("{")))
    assert answer["token_type"] == "Bearer"
    assert answer["resource"] == VAULT
    assert answer["client_id"] == env.a.client_id
    claims = _verified(server, answer["access_token"], VAULT)
    assert claims["aud"] == VAULT
    assert claims["oid"] == env.a.principal_id
    assert claims["appid"] == env.a.client_id
    assert claims["tid"] == server.tenant_id
    assert claims["xms_mirid"].lower() == env.a.id.lower()
    assert answer["expires_on"] == str(claims["exp"])  # epoch seconds, as a string (App Service)


@runs_containers
def test_init_containers_get_the_identity_variables(
    aci: ContainerInstanceManagementClient, env: Env, user_group: str
) -> None:
    logs = _logs(aci, env, user_group, "init-header-set", name="init")
    endpoint = logs.splitlines()[0].removeprefix("init endpoint=")
    assert endpoint.startswith("http://")
    assert endpoint.endswith("/msi/token")


@runs_containers
def test_azure_identity_credential_in_the_container_gets_a_token(
    aci: ContainerInstanceManagementClient, server: RunningServer, env: Env, user_group: str
) -> None:
    pid = _pid(server, aci, env, user_group)
    identity_env = _identity_env(pid)
    assert identity_env["MSI_ENDPOINT"] == identity_env["IDENTITY_ENDPOINT"]
    assert identity_env["MSI_SECRET"] == identity_env["IDENTITY_HEADER"]
    # No selector: the group's only (user-assigned) identity; then by client id.
    for kwargs in ({}, {"client_id": env.a.client_id}):
        token = _credential_token(pid, identity_env, f"{STORAGE}/.default", **kwargs)
        claims = _verified(server, token, STORAGE)
        assert (claims["oid"], claims["appid"]) == (env.a.principal_id, env.a.client_id)


@runs_containers
def test_identity_secrets_stay_out_of_the_arm_body_and_the_logs(
    aci: ContainerInstanceManagementClient, server: RunningServer, raw: RawArm, env: Env, user_group: str
) -> None:
    secret = _identity_env(_pid(server, aci, env, user_group))["IDENTITY_HEADER"]
    path = (
        f"/subscriptions/{server.subscription_id}/resourceGroups/{env.rg}/providers/"
        f"Microsoft.ContainerInstance/containerGroups/{user_group}"
    )
    body = raw.request("GET", path, api_version=ACI_API)
    assert body.status_code == 200
    assert secret not in body.text
    props = body.json()["properties"]
    for member in props["containers"] + props["initContainers"]:
        names = {e["name"] for e in member["properties"].get("environmentVariables") or []}
        assert not names & set(IDENTITY_VARS)
    _logs(aci, env, user_group, "access_token")  # a token was issued (and logged as such)
    logged = server.log_text()
    assert "identity token issued" in logged
    assert secret not in logged


@runs_containers
def test_wrong_or_missing_header_and_bad_requests_are_refused(
    aci: ContainerInstanceManagementClient, server: RunningServer, env: Env, user_group: str
) -> None:
    pid = _pid(server, aci, env, user_group)
    identity_env = _identity_env(pid)
    good = {"X-IDENTITY-HEADER": identity_env["IDENTITY_HEADER"]}
    query = {"api-version": "2019-08-01", "resource": VAULT}
    cases: list[tuple[dict[str, str], dict[str, str], int]] = [
        ({"X-IDENTITY-HEADER": "0" * 64}, query, 403),
        ({"X-IDENTITY-HEADER": identity_env["IDENTITY_HEADER"][:-1]}, query, 403),
        ({}, query, 401),
        (good, {"resource": VAULT}, 400),  # no api-version
        (good, {"api-version": "2018-02-01", "resource": VAULT}, 400),
        (good, {"api-version": "2019-08-01"}, 400),  # no resource
        (good, {**query, "client_id": str(uuid.uuid4())}, 400),  # not this group's
        (good, {**query, "mi_res_id": env.b.id}, 400),  # not this group's
        (good, {**query, "client_id": env.a.client_id, "object_id": env.a.principal_id}, 400),
        # The older MSI_ENDPOINT/MSI_SECRET dialect.
        ({"secret": identity_env["MSI_SECRET"]}, {"api-version": "2017-09-01", "resource": VAULT}, 200),
        (good, {**query, "mi_res_id": env.a.id.upper()}, 200),
    ]
    answers = _in_netns(
        pid, REQUEST_SCRIPT, json.dumps([[h, q] for h, q, _ in cases]), identity_env=identity_env
    )
    for (_, q, status), answer in zip(cases, answers, strict=True):
        assert answer["status"] == status, (q, answer)
        if status != 200:
            assert answer["body"]["statusCode"] == status
            assert answer["body"]["message"]
            assert "access_token" not in answer["body"]
    assert _verified(server, answers[-1]["body"]["access_token"], VAULT)["oid"] == env.a.principal_id


@runs_containers
def test_the_host_is_not_a_container(
    aci: ContainerInstanceManagementClient, server: RunningServer, env: Env, user_group: str
) -> None:
    identity_env = _identity_env(_pid(server, aci, env, user_group))
    response = httpx.get(
        identity_env["IDENTITY_ENDPOINT"],
        params={"api-version": "2019-08-01", "resource": VAULT},
        headers={"X-IDENTITY-HEADER": identity_env["IDENTITY_HEADER"]},
        timeout=10,
        trust_env=False,
    )
    assert response.status_code == 403
    assert response.json()["statusCode"] == 403


# -- groups without an identity, with several ---------------------------------------------------------


@runs_containers
def test_a_group_without_identity_has_no_identity_variables(
    aci: ContainerInstanceManagementClient, server: RunningServer, env: Env
) -> None:
    name = "cg-mi-none"
    with _running(aci, env, name, _group(env, f"env; echo env-done; {IDLE}", identity=None)):
        logs = _logs(aci, env, name, "env-done")
        assert "PATH=" in logs
        for variable in IDENTITY_VARS:
            assert f"{variable}=" not in logs
        assert not set(IDENTITY_VARS) & set(_container_env(_pid(server, aci, env, name)))


@runs_containers
def test_system_and_user_assigned_identities_are_selected_by_the_caller(
    aci: ContainerInstanceManagementClient, server: RunningServer, env: Env, user_group: str
) -> None:
    name = "cg-mi-both"
    group = _group(env, IDLE, identity=_users(env.a, env.b, system=True))
    with _running(aci, env, name, group) as created:
        system = created.identity.principal_id
        pid = _pid(server, aci, env, name)
        identity_env = _identity_env(pid)
        selections: list[tuple[dict[str, Any], str]] = [
            ({}, system),  # no selector: the system-assigned identity
            ({"client_id": env.b.client_id}, env.b.principal_id),
            ({"client_id": env.a.client_id}, env.a.principal_id),
            ({"identity_config": {"object_id": env.b.principal_id}}, env.b.principal_id),
            ({"identity_config": {"resource_id": env.a.id}}, env.a.principal_id),
        ]
        for kwargs, principal in selections:
            token = _credential_token(pid, identity_env, f"{VAULT}/.default", **kwargs)
            assert _verified(server, token, VAULT)["oid"] == principal, kwargs

        # Another group's valid header from this group's address is refused, and vice versa.
        user_pid = _pid(server, aci, env, user_group)
        user_env = _identity_env(user_pid)
        assert user_env["IDENTITY_HEADER"] != identity_env["IDENTITY_HEADER"]
        request = [
            [
                {"X-IDENTITY-HEADER": user_env["IDENTITY_HEADER"]},
                {"api-version": "2019-08-01", "resource": VAULT},
            ]
        ]
        assert (
            _in_netns(pid, REQUEST_SCRIPT, json.dumps(request), identity_env=identity_env)[0]["status"] == 403
        )
        request[0][0]["X-IDENTITY-HEADER"] = identity_env["IDENTITY_HEADER"]
        assert (
            _in_netns(user_pid, REQUEST_SCRIPT, json.dumps(request), identity_env=user_env)[0]["status"]
            == 403
        )


@runs_containers
def test_several_user_assigned_identities_need_a_selector(
    aci: ContainerInstanceManagementClient, server: RunningServer, env: Env
) -> None:
    name = "cg-mi-two"
    with _running(aci, env, name, _group(env, IDLE, identity=_users(env.a, env.b))):
        pid = _pid(server, aci, env, name)
        identity_env = _identity_env(pid)
        header = {"X-IDENTITY-HEADER": identity_env["IDENTITY_HEADER"]}
        query = {"api-version": "2019-08-01", "resource": VAULT}
        ambiguous, chosen = _in_netns(
            pid,
            REQUEST_SCRIPT,
            json.dumps([[header, query], [header, {**query, "object_id": env.b.principal_id}]]),
            identity_env=identity_env,
        )
        assert ambiguous["status"] == 400
        assert "select one" in ambiguous["body"]["message"]
        assert chosen["status"] == 200
        assert chosen["body"]["client_id"] == env.b.client_id


# -- across a restart of the control plane ------------------------------------------------------------


@runs_containers
def test_the_endpoint_answers_running_containers_after_a_restart(
    fresh_server: RunningServer, tmp_path: Path
) -> None:
    server = fresh_server
    rg = "rg-mi-restart"
    raw = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
    with raw.http:
        assert (
            raw.request(
                "PUT",
                f"/subscriptions/{server.subscription_id}/resourcegroups/{rg}",
                json={"location": "westus"},
            ).status_code
            == 201
        )
        login, user, password = _registry_with_image(server, raw, rg, tmp_path)
        identity = _user_identity(raw, rg, "mi-restart")
    env = Env(
        rg,
        f"{login}/mi:v1",
        [ImageRegistryCredential(server=login, username=user, password=password)],
        identity,
        identity,
    )

    @contextlib.contextmanager
    def client() -> Iterator[ContainerInstanceManagementClient]:
        with (
            credential_for(server, server.client_id, server.client_secret) as credential,
            ContainerInstanceManagementClient(
                credential, server.subscription_id, **sdk_kwargs(server)
            ) as aci,
        ):
            yield aci

    with client() as aci:
        aci.container_groups.begin_create_or_update(
            rg, "cg-mi-restart", _group(env, IDLE, identity=_users(identity))
        ).result()
        pid = _pid(server, aci, env, "cg-mi-restart")
    identity_env = _identity_env(pid)

    server.restart()

    token = _credential_token(pid, identity_env, f"{VAULT}/.default")
    assert _verified(server, token, VAULT)["oid"] == identity.principal_id
    with client() as aci:
        aci.container_groups.begin_delete(rg, "cg-mi-restart").result()


@runs_containers
def test_a_taken_endpoint_port_fails_only_groups_with_an_identity(tmp_path: Path) -> None:
    """The server starts; a group with an identity fails to provision with the reason, one
    without runs."""
    server = RunningServer(tmp_path / "home")
    gateway = str(ipaddress.ip_network(server.runtime_subnet)[1])
    blocker = bind_socket(gateway, 0, freebind=True)
    server.extra_env["MOORAGE_IDENTITY_ENDPOINT_PORT"] = str(blocker.getsockname()[1])
    try:
        server.start()
        rg = "rg-mi-taken"
        raw = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
        with raw.http:
            rg_path = f"/subscriptions/{server.subscription_id}/resourcegroups/{rg}"
            assert raw.request("PUT", rg_path, json={"location": "westus"}).status_code == 201
            login, user, password = _registry_with_image(server, raw, rg, tmp_path)
            identity = _user_identity(raw, rg, "mi-taken")
        credentials = [ImageRegistryCredential(server=login, username=user, password=password)]
        env = Env(rg, f"{login}/mi:v1", credentials, identity, identity)
        with (
            credential_for(server, server.client_id, server.client_secret) as credential,
            ContainerInstanceManagementClient(
                credential, server.subscription_id, **sdk_kwargs(server)
            ) as aci,
        ):
            with pytest.raises(HttpResponseError) as info:
                aci.container_groups.begin_create_or_update(
                    rg, "cg-with", _group(env, IDLE, identity=_users(identity))
                ).result()
            assert info.value.error is not None
            assert info.value.error.code == "ManagedIdentityEndpointUnavailable"
            assert "MOORAGE_IDENTITY_ENDPOINT_PORT" in info.value.error.message
            assert aci.container_groups.get(rg, "cg-with").provisioning_state == "Failed"
            with _running(aci, env, "cg-without", _group(env, IDLE, identity=None)) as created:
                assert created.provisioning_state == "Succeeded"
            aci.container_groups.begin_delete(rg, "cg-with").result()
        assert "container identity endpoint unavailable" in server.log_text()
    finally:
        blocker.close()
        server.stop()
        server.remove_runtime_objects()
