"""The registry driven by real clients: skopeo, oras-py, azure-containerregistry (and docker when a
daemon runs). Every client talks HTTPS to the registry's own login server ``127.0.0.1:<port>`` and
trusts the server's CA the way its users would configure it (docs: clients.md section 6)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import oras.oci
import oras.provider
import pytest
from azure.containerregistry import ContainerRegistryClient
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.resource.resources import ResourceManagementClient

from tests.api.conftest import RawArm, credential_for, fetch_token, trust
from tests.api.registry_support import (
    TestRegistry as Registry,
)
from tests.api.registry_support import (
    admin_password,
    cert_dir,
    create_registry,
    skopeo,
    unique_name,
)
from tests.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    busybox_image,
    index_of,
    sha256,
    tar_layer,
    write_layout,
)
from tests.server import RunningServer

ACR_PUSH = "8311e382-0749-4cb8-b61a-304f252e45ec"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
ARTIFACT_TYPE = "application/vnd.moorage.test.sbom.v1+json"
ARTIFACT_LAYER = "application/vnd.moorage.test.sbom.layer.v1+json"


# -- shared set-up (module scoped: one group, two registries, three service principals) ---------


@dataclass(frozen=True)
class Principal:
    app_id: str
    object_id: str
    secret: str

    @property
    def creds(self) -> str:
        return f"{self.app_id}:{self.secret}"


@dataclass(frozen=True)
class Admin:
    registry: Registry
    password: str

    @property
    def login(self) -> str:
        return self.registry.login_server

    @property
    def creds(self) -> str:
        return f"{self.registry.name}:{self.password}"

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(self.creds.encode()).decode()


@pytest.fixture(scope="module")
def group_name(resources: ResourceManagementClient) -> Iterator[str]:
    name = f"rg-clients-{uuid.uuid4().hex[:8]}"
    resources.resource_groups.create_or_update(name, {"location": "westus"})
    yield name
    resources.resource_groups.begin_delete(name)


@pytest.fixture(scope="module")
def admin(raw: RawArm, group_name: str) -> Admin:
    """A Premium registry with the admin user enabled."""
    registry = create_registry(raw, group_name, unique_name("clients"), adminUserEnabled=True)
    return Admin(registry, admin_password(raw, registry))


@pytest.fixture(scope="module")
def certs(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(cert_dir(server.ca_path, tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """OCI layouts: ``single`` (busybox amd64) and ``multi`` (index of amd64 + arm64/v8)."""
    where = tmp_path_factory.mktemp("layouts")
    amd64 = busybox_image(architecture="amd64")
    arm64 = busybox_image(architecture="arm64")
    index = index_of({"amd64": amd64, "arm64/v8": arm64})
    return {
        "image": amd64,
        "single": write_layout(where / "single", "v1", amd64),
        "arm64": arm64,
        "index": index,
        "multi": write_layout(where / "multi", "v1", index=index, images=[amd64, arm64]),
    }


def _directory(server: RunningServer) -> httpx.Client:
    token = fetch_token(server, server.client_id, server.client_secret)
    return httpx.Client(
        base_url=f"{server.endpoint}/moorage/directory/{server.tenant_id}",
        verify=trust(server),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def assign_role(raw: RawArm, scope: str, role_guid: str, principal: Principal) -> None:
    sub = raw.server.subscription_id
    response = raw.request(
        "PUT",
        f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
        api_version="2022-04-01",
        json={
            "properties": {
                "roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
                f"{role_guid}",
                "principalId": principal.object_id,
                "principalType": "ServicePrincipal",
            }
        },
    )
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def principals(server: RunningServer, raw: RawArm, admin: Admin) -> Iterator[dict[str, Principal]]:
    """Service principals ``push`` (AcrPush on the registry), ``pull`` (AcrPull) and ``none``."""
    made: dict[str, Principal] = {}
    with _directory(server) as http:
        for role in ("push", "pull", "none"):
            response = http.post("/servicePrincipals", json={"displayName": f"acr-{role}"})
            assert response.status_code == 201, response.text
            body = response.json()
            made[role] = Principal(body["appId"], body["id"], body["password"])
        assign_role(raw, admin.registry.id, ACR_PUSH, made["push"])
        assign_role(raw, admin.registry.id, ACR_PULL, made["pull"])
        yield made
        for principal in made.values():
            http.delete(f"/servicePrincipals/{principal.app_id}")


# -- helpers --------------------------------------------------------------------------------------


def run_skopeo(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = skopeo(*args)
    if ok:
        assert result.returncode == 0, f"skopeo {' '.join(args)}\n{result.stderr}"
    return result


def push(certs: str, source: str, dest: str, creds: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return skopeo("copy", "--dest-cert-dir", certs, "--dest-creds", creds, *extra, source, dest)


def pull(certs: str, source: str, dest: str, creds: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return skopeo("copy", "--src-cert-dir", certs, "--src-creds", creds, *extra, source, dest)


def layout_top(layout: Path) -> dict[str, Any]:
    """The descriptor ``index.json`` of an OCI layout names (the only one: skopeo writes one)."""
    entries = json.loads((layout / "index.json").read_text())["manifests"]
    assert len(entries) == 1, entries
    return dict(entries[0])


def layout_blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


def push_admin_image(admin: Admin, certs: str, layout: Path, repo: str, tag: str = "v1") -> None:
    result = push(certs, f"oci:{layout}:v1", f"docker://{admin.login}/{repo}:{tag}", admin.creds)
    assert result.returncode == 0, result.stderr


def assert_round_trip(
    certs: str, admin: Admin, image: Image, layout: Path, *, tmp_path: Path, creds: str, repo: str
) -> None:
    """Push ``layout`` with ``creds``, pull it back into another layout: same manifest, same blobs."""
    digest_file = tmp_path / "pushed.digest"
    ref = f"docker://{admin.login}/{repo}:v1"
    result = push(certs, f"oci:{layout}:v1", ref, creds, "--digestfile", str(digest_file))
    assert result.returncode == 0, result.stderr
    assert digest_file.read_text().strip() == image.manifest.digest

    back = tmp_path / "back"
    result = pull(certs, ref, f"oci:{back}:v1", creds)
    assert result.returncode == 0, result.stderr
    top = layout_top(back)
    assert top["digest"] == image.manifest.digest
    assert top["mediaType"] == OCI_MANIFEST
    for blob in image.blobs:
        assert layout_blob(back, blob.digest) == blob.data


# -- skopeo ---------------------------------------------------------------------------------------


def test_skopeo_push_and_pull_as_admin(
    admin: Admin, certs: str, images: dict[str, Any], tmp_path: Path
) -> None:
    assert_round_trip(
        certs,
        admin,
        images["image"],
        images["single"],
        tmp_path=tmp_path,
        creds=admin.creds,
        repo="skopeo/admin",
    )
    tags = run_skopeo(
        "list-tags", "--cert-dir", certs, "--creds", admin.creds, f"docker://{admin.login}/skopeo/admin"
    )
    assert json.loads(tags.stdout)["Tags"] == ["v1"]


def test_skopeo_push_and_pull_as_service_principal_with_acr_push(
    admin: Admin, certs: str, images: dict[str, Any], principals: dict[str, Principal], tmp_path: Path
) -> None:
    creds = principals["push"].creds
    assert_round_trip(
        certs, admin, images["image"], images["single"], tmp_path=tmp_path, creds=creds, repo="skopeo/sp"
    )


def test_acr_pull_can_pull_but_not_push(
    admin: Admin, certs: str, images: dict[str, Any], principals: dict[str, Principal], tmp_path: Path
) -> None:
    push_admin_image(admin, certs, images["single"], "skopeo/pullonly")
    puller = principals["pull"].creds

    result = pull(certs, f"docker://{admin.login}/skopeo/pullonly:v1", f"oci:{tmp_path / 'back'}:v1", puller)
    assert result.returncode == 0, result.stderr
    assert layout_top(tmp_path / "back")["digest"] == images["image"].manifest.digest

    # A new repository: the blob uploads are refused (skopeo shortens DENIED's message to "denied").
    refused = push(certs, f"oci:{images['single']}:v1", f"docker://{admin.login}/skopeo/nopush:v1", puller)
    assert refused.returncode != 0
    assert "denied" in refused.stderr, refused.stderr
    # An existing repository whose blobs are all there: the manifest upload is refused.
    refused = push(certs, f"oci:{images['single']}:v1", f"docker://{admin.login}/skopeo/pullonly:v2", puller)
    assert refused.returncode != 0
    assert "denied" in refused.stderr, refused.stderr


def test_service_principal_without_role_cannot_pull(
    admin: Admin, certs: str, images: dict[str, Any], principals: dict[str, Principal], tmp_path: Path
) -> None:
    push_admin_image(admin, certs, images["single"], "skopeo/private")
    result = pull(
        certs,
        f"docker://{admin.login}/skopeo/private:v1",
        f"oci:{tmp_path / 'back'}:v1",
        principals["none"].creds,
    )
    assert result.returncode != 0
    assert "denied" in result.stderr.lower() or "unauthorized" in result.stderr.lower(), result.stderr
    assert not (tmp_path / "back" / "index.json").exists()


def test_wrong_admin_password_is_unauthorized(admin: Admin, certs: str, images: dict[str, Any]) -> None:
    result = push(
        certs,
        f"oci:{images['single']}:v1",
        f"docker://{admin.login}/skopeo/x:v1",
        f"{admin.registry.name}:nope",
    )
    assert result.returncode != 0
    assert "unauthorized" in result.stderr.lower(), result.stderr


def test_skopeo_multi_arch_index(admin: Admin, certs: str, images: dict[str, Any], tmp_path: Path) -> None:
    index = images["index"]
    ref = f"docker://{admin.login}/skopeo/multi:v1"
    result = push(certs, f"oci:{images['multi']}:v1", ref, admin.creds, "--all")
    assert result.returncode == 0, result.stderr

    raw = run_skopeo("inspect", "--raw", "--cert-dir", certs, "--creds", admin.creds, ref)
    assert sha256(raw.stdout.encode()) == index.digest
    document = json.loads(raw.stdout)
    assert document["mediaType"] == OCI_INDEX
    platforms = {(m["platform"]["architecture"], m["platform"].get("variant")) for m in document["manifests"]}
    assert platforms == {("amd64", None), ("arm64", "v8")}

    # Each platform resolves through the index.
    arm = run_skopeo(
        "inspect",
        "--override-arch",
        "arm64",
        "--override-variant",
        "v8",
        "--cert-dir",
        certs,
        "--creds",
        admin.creds,
        ref,
    )
    assert json.loads(arm.stdout)["Architecture"] == "arm64"

    back = tmp_path / "back"
    result = pull(certs, ref, f"oci:{back}:v1", admin.creds, "--all")
    assert result.returncode == 0, result.stderr
    top = layout_top(back)
    assert (top["digest"], top["mediaType"]) == (index.digest, OCI_INDEX)
    for image in (images["image"], images["arm64"]):
        assert layout_blob(back, image.manifest.digest) == image.manifest.data
        for blob in image.blobs:
            assert layout_blob(back, blob.digest) == blob.data


def test_skopeo_docker_schema2(admin: Admin, certs: str, images: dict[str, Any], tmp_path: Path) -> None:
    ref = f"docker://{admin.login}/skopeo/v2s2:v1"
    digest_file = tmp_path / "pushed.digest"
    result = push(
        certs,
        f"oci:{images['single']}:v1",
        ref,
        admin.creds,
        "--format",
        "v2s2",
        "--digestfile",
        str(digest_file),
    )
    assert result.returncode == 0, result.stderr
    pushed = digest_file.read_text().strip()

    raw = run_skopeo("inspect", "--raw", "--cert-dir", certs, "--creds", admin.creds, ref)
    manifest = json.loads(raw.stdout)
    assert sha256(raw.stdout.encode()) == pushed
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG
    # Layers are the same bytes; only their media type changed.
    assert [layer["digest"] for layer in manifest["layers"]] == [b.digest for b in images["image"].layers]

    back = tmp_path / "dir"
    result = pull(certs, ref, f"dir:{back}", admin.creds)
    assert result.returncode == 0, result.stderr
    assert "sha256:" + hashlib.sha256((back / "manifest.json").read_bytes()).hexdigest() == pushed
    inspected = run_skopeo("inspect", "--cert-dir", certs, "--creds", admin.creds, ref)
    assert json.loads(inspected.stdout)["Digest"] == pushed


# -- oras-py --------------------------------------------------------------------------------------


def oras_client(server: RunningServer, admin: Admin, tmp_path: Path) -> oras.provider.Registry:
    client = oras.provider.Registry(hostname=admin.login, tls_verify=server.ca_path)
    client.login(
        username=admin.registry.name,
        password=admin.password,
        hostname=admin.login,
        config_path=str(tmp_path / "docker-config.json"),
    )
    return client


def test_oras_push_and_pull(
    server: RunningServer, admin: Admin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("hello.txt").write_text("hello from oras\n")
    client = oras_client(server, admin, tmp_path)
    target = f"{admin.login}/oras/plain:v1"
    response = client.push(target, files=["hello.txt"], quiet=True)
    assert response.status_code == 201, response.text

    files = client.pull(target, outdir=str(tmp_path / "out"))
    assert [Path(f).name for f in files] == ["hello.txt"]
    assert Path(files[0]).read_text() == "hello from oras\n"
    assert client.get_tags(f"{admin.login}/oras/plain") == ["v1"]


def test_oras_artifact_with_subject_and_referrers(
    *,
    server: RunningServer,
    admin: Admin,
    certs: str,
    images: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = images["image"]
    push_admin_image(admin, certs, images["single"], "oras/app")

    monkeypatch.chdir(tmp_path)
    Path("sbom.json").write_text('{"packages": ["busybox"]}')
    Path("config.json").write_text("{}")
    client = oras_client(server, admin, tmp_path)
    response = client.push(
        f"{admin.login}/oras/app:sbom",
        files=[f"sbom.json:{ARTIFACT_LAYER}"],
        manifest_config=f"config.json:{ARTIFACT_TYPE}",
        subject=oras.oci.Subject(OCI_MANIFEST, image.manifest.digest, len(image.manifest.data)),
        quiet=True,
    )
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == image.manifest.digest
    artifact = response.headers["Docker-Content-Digest"]

    manifest = client.get_manifest(f"{admin.login}/oras/app@{artifact}")
    assert manifest["subject"]["digest"] == image.manifest.digest
    files = client.pull(f"{admin.login}/oras/app@{artifact}", outdir=str(tmp_path / "out"))
    assert Path(files[0]).read_text() == '{"packages": ["busybox"]}'

    with httpx.Client(
        base_url=f"https://{admin.login}", verify=trust(server), headers={"Authorization": admin.basic}
    ) as http:
        url = f"/v2/oras/app/referrers/{image.manifest.digest}"
        listed = http.get(url)
        assert listed.status_code == 200, listed.text
        assert listed.headers["content-type"].startswith(OCI_INDEX)
        assert "OCI-Filters-Applied" not in listed.headers
        entries = listed.json()["manifests"]
        assert [(e["digest"], e["artifactType"]) for e in entries] == [(artifact, ARTIFACT_TYPE)]
        assert entries[0]["mediaType"] == OCI_MANIFEST

        # The same through a bearer token from /oauth2/token (admin Basic → access token).
        token = http.get(
            "/oauth2/token", params={"service": admin.login, "scope": "repository:oras/app:pull"}
        ).json()["access_token"]
        kept = http.get(
            url, params={"artifactType": ARTIFACT_TYPE}, headers={"Authorization": f"Bearer {token}"}
        )
        assert kept.status_code == 200, kept.text
        assert kept.headers["OCI-Filters-Applied"] == "artifactType"
        assert [e["digest"] for e in kept.json()["manifests"]] == [artifact]

        dropped = http.get(url, params={"artifactType": "application/vnd.example.other"})
        assert dropped.status_code == 200, dropped.text
        assert dropped.headers["OCI-Filters-Applied"] == "artifactType"
        assert dropped.json()["manifests"] == []


def test_token_without_push_gets_403_with_a_challenge_for_the_wider_scope(
    server: RunningServer, admin: Admin
) -> None:
    """What oras-py relies on: a token that lacks an action is answered 403 with a Bearer challenge
    (RFC 6750 section 3.1, ``error="insufficient_scope"``), so it fetches a wider token and retries."""
    with httpx.Client(base_url=f"https://{admin.login}", verify=trust(server)) as http:
        token = http.get(
            "/oauth2/token",
            params={"service": admin.login, "scope": "repository:oras/scoped:pull"},
            headers={"Authorization": admin.basic},
        ).json()["access_token"]
        response = http.post("/v2/oras/scoped/blobs/uploads/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403, response.text
    assert response.json()["errors"][0]["code"] == "DENIED"
    challenge = response.headers["WWW-Authenticate"]
    assert f'realm="https://{admin.login}/oauth2/token"' in challenge
    assert 'scope="repository:oras/scoped:pull,push"' in challenge
    assert 'error="insufficient_scope"' in challenge


# -- azure-containerregistry ------------------------------------------------------------------------


def registry_client(server: RunningServer, login: str, *, anonymous: bool = False) -> ContainerRegistryClient:
    credential = None if anonymous else credential_for(server, server.client_id, server.client_secret)
    return ContainerRegistryClient(
        endpoint=f"https://{login}",
        credential=credential,
        audience="https://management.azure.com",
        connection_verify=server.ca_path,
    )


def test_sdk_reads_and_deletes(
    server: RunningServer, admin: Admin, certs: str, images: dict[str, Any]
) -> None:
    image = images["image"]
    push_admin_image(admin, certs, images["single"], "sdk/app", "v1")
    push_admin_image(admin, certs, images["single"], "sdk/app", "v2")
    push_admin_image(admin, certs, images["single"], "sdk/doomed", "v1")
    multi = push(
        certs, f"oci:{images['multi']}:v1", f"docker://{admin.login}/sdk/multi:v1", admin.creds, "--all"
    )
    assert multi.returncode == 0, multi.stderr

    with registry_client(server, admin.login) as client:
        names = list(client.list_repository_names())
        assert {"sdk/app", "sdk/doomed", "sdk/multi"} <= set(names)

        repo = client.get_repository_properties("sdk/app")
        assert repo.name == "sdk/app"
        assert (repo.manifest_count, repo.tag_count) == (1, 2)

        tags = {t.name: t for t in client.list_tag_properties("sdk/app")}
        assert set(tags) == {"v1", "v2"}
        assert {t.digest for t in tags.values()} == {image.manifest.digest}

        props = client.get_manifest_properties("sdk/app", "v1")
        assert props.digest == image.manifest.digest
        assert (props.architecture, props.operating_system) == ("amd64", "linux")
        assert set(props.tags) == {"v1", "v2"}

        arm = client.get_manifest_properties("sdk/multi", images["arm64"].manifest.digest)
        assert (arm.architecture, arm.operating_system) == ("arm64", "linux")

        client.delete_tag("sdk/app", "v2")
        assert [t.name for t in client.list_tag_properties("sdk/app")] == ["v1"]

        client.delete_manifest("sdk/app", image.manifest.digest)
        with pytest.raises(ResourceNotFoundError):
            client.get_manifest_properties("sdk/app", image.manifest.digest)

        client.delete_repository("sdk/doomed")
        assert "sdk/doomed" not in set(client.list_repository_names())
        with pytest.raises(ResourceNotFoundError):
            client.get_repository_properties("sdk/doomed")


def test_sdk_anonymous_pull_lists_tags(
    server: RunningServer, raw: RawArm, group_name: str, certs: str, images: dict[str, Any]
) -> None:
    registry = create_registry(
        raw, group_name, unique_name("anon"), sku="Standard", adminUserEnabled=True, anonymousPullEnabled=True
    )
    public = Admin(registry, admin_password(raw, registry))
    push_admin_image(public, certs, images["single"], "public/app", "latest")

    with registry_client(server, public.login, anonymous=True) as client:
        assert [t.name for t in client.list_tag_properties("public/app")] == ["latest"]
        assert (
            client.get_manifest_properties("public/app", "latest").digest == images["image"].manifest.digest
        )


# -- docker CLI (only with a running daemon) ------------------------------------------------------


def _docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_docker_cli_push_and_pull(admin: Admin, server: RunningServer, tmp_path: Path) -> None:
    if not _docker_daemon():
        pytest.skip("no Docker daemon: `docker info` fails on this machine")
    certs_d = Path("/etc/docker/certs.d") / admin.login
    try:
        cert_dir(server.ca_path, certs_d)
    except OSError as exc:
        pytest.skip(f"cannot make the daemon trust our CA ({certs_d}: {exc})")
    env = {"DOCKER_CONFIG": str(tmp_path / "docker")}

    def docker(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            ["docker", *args],
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
            env={**os.environ, **env},
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done

    ref = f"{admin.login}/docker/app:v1"
    try:
        docker(
            "login",
            admin.login,
            "--username",
            admin.registry.name,
            "--password-stdin",
            stdin=admin.password.encode(),
        )
        docker("import", "-", ref, stdin=tar_layer({"hello.txt": b"hi\n"}))
        docker("push", ref)
        docker("rmi", ref)
        docker("pull", ref)
        docker("rmi", ref)
    finally:
        shutil.rmtree(certs_d, ignore_errors=True)
