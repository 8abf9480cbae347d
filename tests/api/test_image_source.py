"""The image source (the puller) against the session's real moorage registry, pushed to with
skopeo, plus a tiny in-test fake registry for conditions a correct registry never produces
(digest mismatches, rate limiting, transient 503s)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import zstandard
from azure.mgmt.resource.resources import ResourceManagementClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from moorage.instances.content import Leases
from moorage.instances.images import (
    ANONYMOUS,
    BasicCredential,
    EntraExchange,
    ImageSource,
    Platform,
    ProgressState,
    PullCause,
    PullFailure,
    PullProgress,
    PullStep,
    open_layer,
)
from moorage.store.blobs import BlobStore, open_blob_store
from tests.api.conftest import RawArm, fetch_token, trust
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
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Blob,
    Image,
    build_image,
    busybox_image,
    index_of,
    sha256,
    tar_layer,
    write_layout,
)
from tests.server import RunningServer

ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
NULL_GUID = "00000000-0000-0000-0000-000000000000"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
IN_TOTO = "application/vnd.in-toto+json"


# -- images ---------------------------------------------------------------------------------------


def attestation_for(image: Image) -> tuple[Image, dict[str, Any]]:
    """A BuildKit-style attestation manifest for ``image`` and its index entry."""
    statement = Blob(IN_TOTO, b'{"_type": "https://in-toto.io/Statement/v0.1"}')
    config = Blob(
        OCI_CONFIG,
        json.dumps(
            {
                "architecture": "unknown",
                "os": "unknown",
                "rootfs": {"type": "layers", "diff_ids": [statement.digest]},
            }
        ).encode(),
    )
    manifest = Blob(
        OCI_MANIFEST,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [statement.descriptor()],
            }
        ).encode(),
    )
    entry = manifest.descriptor(
        platform={"architecture": "unknown", "os": "unknown"},
        annotations={
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": image.manifest.digest,
        },
    )
    return Image(manifest, config, (statement,)), entry


def index_with(entries: list[dict[str, Any]]) -> Blob:
    return Blob(
        OCI_INDEX, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    )


def formats_image() -> tuple[Image, list[bytes]]:
    """Three layers: gzip, zstd and uncompressed; returns the image and the layer tars."""
    tars = [
        tar_layer({"gz/file.txt": b"gzip layer\n"}),
        tar_layer({"zst/file.txt": b"zstd layer\n" * 1000}),
        tar_layer({"raw/file.txt": b"plain layer\n"}),
    ]
    base = build_image([tars[0]])
    layers = (
        base.layers[0],
        Blob(OCI_LAYER_ZSTD, zstandard.ZstdCompressor().compress(tars[1])),
        Blob(OCI_LAYER, tars[2]),
    )
    config = Blob(
        OCI_CONFIG,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]},
            },
            sort_keys=True,
        ).encode(),
    )
    manifest = Blob(
        OCI_MANIFEST,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in layers],
            },
            sort_keys=True,
        ).encode(),
    )
    return Image(manifest, config, layers), tars


@dataclass(frozen=True)
class Pushed:
    app: Image  # app:v1 (busybox + one file)
    other: Image  # other:v1 (same busybox base layer, another file)
    amd64: Image
    arm64: Image
    multi: Blob  # multi:v1 index (amd64, arm64/v8, attestation)
    foreign: Blob  # foreign:v1 index (arm64/v8, s390x only)
    formats: Image
    format_tars: list[bytes]


@dataclass(frozen=True)
class Principal:
    app_id: str
    object_id: str
    secret: str


@dataclass(frozen=True)
class Setup:
    registry: Registry
    password: str
    pushed: Pushed
    puller: Principal  # AcrPull on the registry
    stranger: Principal  # no role

    @property
    def login(self) -> str:
        return self.registry.login_server

    @property
    def admin(self) -> BasicCredential:
        return BasicCredential(self.registry.name, self.password)

    def ref(self, repository: str, locator: str = "v1") -> str:
        separator = "@" if ":" in locator else ":"
        return f"{self.login}/{repository}{separator}{locator}"


@pytest.fixture(scope="module")
def group_name(resources: ResourceManagementClient) -> Iterator[str]:
    name = f"rg-puller-{uuid.uuid4().hex[:8]}"
    resources.resource_groups.create_or_update(name, {"location": "westus"})
    yield name
    resources.resource_groups.begin_delete(name)


def _directory(server: RunningServer) -> httpx.Client:
    token = fetch_token(server, server.client_id, server.client_secret)
    return httpx.Client(
        base_url=f"{server.endpoint}/moorage/directory/{server.tenant_id}",
        verify=trust(server),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def _assign(raw: RawArm, scope: str, role: str, principal: Principal) -> None:
    sub = raw.server.subscription_id
    response = raw.request(
        "PUT",
        f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
        api_version="2022-04-01",
        json={
            "properties": {
                "roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/"
                f"roleDefinitions/{role}",
                "principalId": principal.object_id,
                "principalType": "ServicePrincipal",
            }
        },
    )
    assert response.status_code == 201, response.text


def _push(certs: str, layout: Path, dest: str, creds: str, *extra: str) -> None:
    result = skopeo(
        "copy",
        "--preserve-digests",
        "--dest-cert-dir",
        certs,
        "--dest-creds",
        creds,
        *extra,
        f"oci:{layout}:v1",
        dest,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def setup(
    server: RunningServer, raw: RawArm, group_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    registry = create_registry(raw, group_name, unique_name("puller"), adminUserEnabled=True)
    password = admin_password(raw, registry)
    creds = f"{registry.name}:{password}"
    certs = str(cert_dir(server.ca_path, tmp_path_factory.mktemp("certs")))
    where = tmp_path_factory.mktemp("layouts")

    app = busybox_image({"app/hello.txt": b"hello\n"})
    other = busybox_image({"other/file.txt": b"other\n"})
    amd64 = busybox_image({"arch.txt": b"amd64\n"}, architecture="amd64")
    arm64 = busybox_image({"arch.txt": b"arm64\n"}, architecture="arm64")
    s390x = busybox_image({"arch.txt": b"s390x\n"}, architecture="s390x")
    attestation, attestation_entry = attestation_for(amd64)
    # The attestation entry comes first, so a puller that does not skip it would pick it.
    multi = index_with(
        [
            attestation_entry,
            amd64.manifest.descriptor(platform={"os": "linux", "architecture": "amd64"}),
            arm64.manifest.descriptor(platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ]
    )
    foreign = index_of({"arm64/v8": arm64, "s390x": s390x})
    formats, format_tars = formats_image()

    login = registry.login_server
    _push(certs, write_layout(where / "app", "v1", app), f"docker://{login}/app:v1", creds)
    _push(certs, write_layout(where / "other", "v1", other), f"docker://{login}/other:v1", creds)
    layout = write_layout(where / "multi", "v1", index=multi, images=[amd64, arm64, attestation])
    _push(certs, layout, f"docker://{login}/multi:v1", creds, "--all")
    layout = write_layout(where / "foreign", "v1", index=foreign, images=[arm64, s390x])
    _push(certs, layout, f"docker://{login}/foreign:v1", creds, "--all")
    _push(certs, write_layout(where / "formats", "v1", formats), f"docker://{login}/formats:v1", creds)

    made: dict[str, Principal] = {}
    with _directory(server) as http:
        for role in ("puller", "stranger"):
            response = http.post("/servicePrincipals", json={"displayName": f"images-{role}"})
            assert response.status_code == 201, response.text
            body = response.json()
            made[role] = Principal(body["appId"], body["id"], body["password"])
        _assign(raw, registry.id, ACR_PULL, made["puller"])
        yield Setup(
            registry,
            password,
            Pushed(app, other, amd64, arm64, multi, foreign, formats, format_tars),
            made["puller"],
            made["stranger"],
        )
        for principal in made.values():
            http.delete(f"/servicePrincipals/{principal.app_id}")


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return open_blob_store("filesystem", tmp_path / "content")


@pytest.fixture
def leases(tmp_path: Path) -> Leases:
    return Leases(tmp_path / "leases")


@pytest.fixture
async def source(server: RunningServer, blobs: BlobStore, leases: Leases) -> AsyncIterator[ImageSource]:
    async with ImageSource(blobs, verify=trust(server), leases=leases) as puller:
        yield puller


async def entra_token(server: RunningServer, principal: Principal, scope: str) -> str:
    async with httpx.AsyncClient(verify=trust(server)) as http:
        response = await http.post(
            f"{server.endpoint}/{server.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": principal.app_id,
                "client_secret": principal.secret,
                "scope": scope,
            },
        )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def failure_of(puller: ImageSource, ref: str, credential: Any = ANONYMOUS, **kw: Any) -> PullFailure:
    with pytest.raises(PullFailure) as info:
        await puller.pull(ref, credential, **kw)
    return info.value


async def assert_stored(blobs: BlobStore, image: Image) -> None:
    for blob in (image.manifest, image.config, *image.layers):
        assert await blobs.read_all(blob.digest) == blob.data


# -- pulling from moorage's registry --------------------------------------------------------------


async def test_pull_by_tag_with_admin_credentials(
    setup: Setup, source: ImageSource, blobs: BlobStore
) -> None:
    image = setup.pushed.app
    pulled = await source.pull(setup.ref("app"), setup.admin)
    assert pulled.digest == image.manifest.digest
    assert pulled.manifest_digest == image.manifest.digest
    assert pulled.image.media_type == OCI_MANIFEST
    assert pulled.image.index is None
    assert pulled.image.platform == Platform("linux", "amd64")
    assert pulled.config["config"]["Cmd"] == ["/bin/sh"]
    config = json.loads(image.config.data)
    assert [(la.digest, la.media_type, la.size, la.diff_id) for la in pulled.layers] == [
        (blob.digest, OCI_LAYER_GZIP, len(blob.data), diff_id)
        for blob, diff_id in zip(image.layers, config["rootfs"]["diff_ids"], strict=True)
    ]
    await assert_stored(blobs, image)


async def test_pull_by_digest(setup: Setup, source: ImageSource, blobs: BlobStore) -> None:
    image = setup.pushed.app
    pulled = await source.pull(setup.ref("app", image.manifest.digest), setup.admin)
    assert pulled.digest == image.manifest.digest
    assert pulled.image.reference.tag is None
    await assert_stored(blobs, image)


async def test_resolve_checks_access_without_downloading_layers(
    setup: Setup, source: ImageSource, blobs: BlobStore
) -> None:
    image = setup.pushed.app
    resolved = await source.resolve(setup.ref("app"), setup.admin)
    assert resolved.digest == image.manifest.digest
    assert resolved.manifest == image.manifest.data
    assert resolved.config == image.config.data
    assert [d.digest for d in resolved.layers] == [b.digest for b in image.layers]
    assert str(resolved.pinned) == f"{setup.login}/app:v1@{image.manifest.digest}"
    assert await blobs.digests() == []


async def test_blobs_already_present_are_not_fetched_again(setup: Setup, source: ImageSource) -> None:
    events: list[PullProgress] = []
    await source.pull(setup.ref("app"), setup.admin)
    # other:v1 shares the busybox base layer with app:v1 but has its own second layer.
    await source.pull(setup.ref("other"), setup.admin, progress=events.append)
    final = {e.digest: e.state for e in events if e.state is not ProgressState.DOWNLOADING}
    base, own = setup.pushed.other.layers
    assert final == {base.digest: ProgressState.PRESENT, own.digest: ProgressState.DONE}
    assert any(e.state is ProgressState.DOWNLOADING and e.digest == own.digest for e in events)


async def test_pull_as_service_principal_with_acr_pull(
    setup: Setup, source: ImageSource, blobs: BlobStore
) -> None:
    credential = BasicCredential(setup.puller.app_id, setup.puller.secret)
    pulled = await source.pull(setup.ref("app"), credential)
    assert pulled.digest == setup.pushed.app.manifest.digest
    await assert_stored(blobs, setup.pushed.app)


async def test_service_principal_without_a_role_is_refused(setup: Setup, source: ImageSource) -> None:
    failure = await failure_of(
        source, setup.ref("app"), BasicCredential(setup.stranger.app_id, setup.stranger.secret)
    )
    # The token is issued (the credentials are valid) but grants nothing on the repository.
    assert (failure.cause, failure.step, failure.status) == (PullCause.DENIED, PullStep.MANIFEST, 403)
    assert failure.registry_message == "requested access to the resource is denied"


async def test_pull_with_null_guid_and_refresh_token(
    server: RunningServer, setup: Setup, source: ImageSource, blobs: BlobStore
) -> None:
    entra = await entra_token(server, setup.puller, "https://management.azure.com/.default")
    async with httpx.AsyncClient(verify=trust(server)) as http:
        response = await http.post(
            f"https://{setup.login}/oauth2/exchange",
            data={"grant_type": "access_token", "service": setup.login, "access_token": entra},
        )
    assert response.status_code == 200, response.text
    refresh = response.json()["refresh_token"]
    pulled = await source.pull(setup.ref("app"), BasicCredential(NULL_GUID, refresh))
    assert pulled.digest == setup.pushed.app.manifest.digest
    await assert_stored(blobs, setup.pushed.app)


async def test_pull_with_entra_token_exchange(
    server: RunningServer, setup: Setup, source: ImageSource, blobs: BlobStore
) -> None:
    calls = 0

    async def get_token() -> str:
        nonlocal calls
        calls += 1
        return await entra_token(server, setup.puller, "https://management.azure.com/.default")

    pulled = await source.pull(setup.ref("app"), EntraExchange(get_token))
    assert pulled.digest == setup.pushed.app.manifest.digest
    await assert_stored(blobs, setup.pushed.app)
    assert calls == 1


async def test_entra_exchange_for_a_principal_without_a_role_is_refused(
    server: RunningServer, setup: Setup, source: ImageSource
) -> None:
    async def get_token() -> str:
        return await entra_token(server, setup.stranger, "https://management.azure.com/.default")

    failure = await failure_of(source, setup.ref("app"), EntraExchange(get_token))
    assert (failure.cause, failure.step, failure.status) == (PullCause.DENIED, PullStep.MANIFEST, 403)


async def test_tokens_are_reused_across_pulls(
    setup: Setup, source: ImageSource, server: RunningServer
) -> None:
    calls = 0

    async def get_token() -> str:
        nonlocal calls
        calls += 1
        return await entra_token(server, setup.puller, "https://management.azure.com/.default")

    credential = EntraExchange(get_token)
    await source.resolve(setup.ref("app"), credential)
    await source.resolve(setup.ref("app", setup.pushed.app.manifest.digest), credential)
    assert calls == 1


async def test_anonymous_pull_from_a_registry_that_allows_it(
    *, raw: RawArm, group_name: str, setup: Setup, server: RunningServer, tmp_path: Path, source: ImageSource
) -> None:
    open_registry = create_registry(
        raw, group_name, unique_name("anon"), adminUserEnabled=True, anonymousPullEnabled=True
    )
    creds = f"{open_registry.name}:{admin_password(raw, open_registry)}"
    certs = str(cert_dir(server.ca_path, tmp_path / "certs"))
    layout = write_layout(tmp_path / "app", "v1", setup.pushed.app)
    _push(certs, layout, f"docker://{open_registry.login_server}/public:v1", creds)
    pulled = await source.pull(f"{open_registry.login_server}/public:v1")
    assert pulled.digest == setup.pushed.app.manifest.digest


async def test_anonymous_pull_from_a_private_registry_is_unauthorized(
    setup: Setup, source: ImageSource
) -> None:
    failure = await failure_of(source, setup.ref("app"))
    assert (failure.cause, failure.step, failure.status) == (PullCause.UNAUTHORIZED, PullStep.TOKEN, 401)


# -- platforms ------------------------------------------------------------------------------------


async def test_multi_arch_index_selects_linux_amd64(
    setup: Setup, source: ImageSource, blobs: BlobStore
) -> None:
    pulled = await source.pull(setup.ref("multi"), setup.admin)
    assert pulled.digest == setup.pushed.multi.digest
    assert pulled.image.media_type == OCI_INDEX
    assert pulled.image.index == setup.pushed.multi.data
    assert pulled.manifest_digest == setup.pushed.amd64.manifest.digest
    assert pulled.image.platform == Platform("linux", "amd64")
    await assert_stored(blobs, setup.pushed.amd64)
    assert await blobs.read_all(setup.pushed.multi.digest) == setup.pushed.multi.data


async def test_multi_arch_index_selects_arm64_v8_when_asked(
    setup: Setup, source: ImageSource, blobs: BlobStore
) -> None:
    pulled = await source.pull(setup.ref("multi"), setup.admin, platform=Platform("linux", "arm64", "v8"))
    assert pulled.manifest_digest == setup.pushed.arm64.manifest.digest
    assert pulled.config["architecture"] == "arm64"
    await assert_stored(blobs, setup.pushed.arm64)


async def test_plain_arm64_matches_the_v8_entry(setup: Setup, source: ImageSource) -> None:
    resolved = await source.resolve(setup.ref("multi"), setup.admin, platform=Platform.parse("linux/aarch64"))
    assert resolved.manifest_digest == setup.pushed.arm64.manifest.digest


async def test_attestation_entries_are_never_selected(setup: Setup, source: ImageSource) -> None:
    failure = await failure_of(
        source, setup.ref("multi"), setup.admin, platform=Platform("unknown", "unknown")
    )
    assert failure.cause is PullCause.UNSUPPORTED_PLATFORM
    assert "available: linux/amd64, linux/arm64/v8" in failure.message


async def test_no_matching_platform(setup: Setup, source: ImageSource) -> None:
    failure = await failure_of(source, setup.ref("foreign"), setup.admin)
    assert (failure.cause, failure.step) == (PullCause.UNSUPPORTED_PLATFORM, PullStep.MANIFEST)
    assert "linux/amd64" in failure.message


async def test_single_platform_image_for_another_architecture(setup: Setup, source: ImageSource) -> None:
    ref = setup.ref("foreign", setup.pushed.arm64.manifest.digest)
    failure = await failure_of(source, ref, setup.admin)
    assert failure.cause is PullCause.UNSUPPORTED_PLATFORM
    assert "linux/arm64" in failure.message


# -- layer formats --------------------------------------------------------------------------------


async def test_gzip_zstd_and_uncompressed_layers(
    setup: Setup, source: ImageSource, blobs: BlobStore, tmp_path: Path
) -> None:
    pulled = await source.pull(setup.ref("formats"), setup.admin)
    assert [la.media_type for la in pulled.layers] == [OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER]
    for layer, tar in zip(pulled.layers, setup.pushed.format_tars, strict=True):
        stored = tmp_path / "layer"
        stored.write_bytes(await blobs.read_all(layer.digest))
        with open_layer(stored, layer.media_type) as stream:
            assert stream.read() == tar
        with stored.open("rb") as raw, open_layer(raw, layer.media_type) as stream:
            unpacked = stream.read()
            assert not raw.closed
        assert "sha256:" + hashlib.sha256(unpacked).hexdigest() == layer.diff_id


def test_open_layer_streams_multi_member_gzip_from_a_pipe() -> None:
    import gzip  # noqa: PLC0415

    tar = tar_layer({"a.txt": b"a" * 100_000})
    data = gzip.compress(tar[:5000]) + gzip.compress(tar[5000:])

    class Pipe(io.RawIOBase):  # not seekable, short reads
        def __init__(self) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            n = min(len(buffer), 777, len(self.data))
            buffer[:n] = self.data[:n]
            self.data = self.data[n:]
            return n

    with open_layer(io.BufferedReader(Pipe()), OCI_LAYER_GZIP) as stream:
        assert stream.read() == tar


def test_open_layer_refuses_non_layer_media_types(tmp_path: Path) -> None:
    from moorage.instances.images import UnsupportedLayer  # noqa: PLC0415

    with pytest.raises(UnsupportedLayer):
        open_layer(io.BytesIO(b""), "application/vnd.in-toto+json")


# -- failures, classified -------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_closed_port_is_unreachable(blobs: BlobStore, server: RunningServer) -> None:
    port = closed_port()
    async with ImageSource(blobs, verify=trust(server), max_retries=1, backoff_s=0.01) as puller:
        failure = await failure_of(puller, f"127.0.0.1:{port}/app:v1")
    assert (failure.cause, failure.step) == (PullCause.UNREACHABLE, PullStep.CONNECT)
    assert failure.peer == f"127.0.0.1:{port}"
    assert failure.url == f"https://127.0.0.1:{port}/v2/"
    assert failure.status is None


async def test_unresolvable_name_is_unreachable(blobs: BlobStore) -> None:
    async with ImageSource(blobs, max_retries=0) as puller:
        failure = await failure_of(puller, "no-such-host.invalid/app:v1")
    assert (failure.cause, failure.step) == (PullCause.UNREACHABLE, PullStep.CONNECT)
    assert "does not resolve" in failure.message


async def test_untrusted_certificate_is_tls(setup: Setup, blobs: BlobStore) -> None:
    async with ImageSource(blobs, verify=ssl.create_default_context(), max_retries=3) as puller:
        started = time.monotonic()
        failure = await failure_of(puller, setup.ref("app"), setup.admin)
    assert (failure.cause, failure.step) == (PullCause.TLS, PullStep.TLS)
    assert failure.peer == setup.login
    assert "certificate verify failed" in failure.message.lower()
    assert time.monotonic() - started < 2  # TLS failures are not retried


async def test_wrong_password_is_unauthorized(setup: Setup, source: ImageSource) -> None:
    failure = await failure_of(
        source, setup.ref("app"), BasicCredential(setup.registry.name, "not-the-password")
    )
    assert (failure.cause, failure.step, failure.status) == (PullCause.UNAUTHORIZED, PullStep.TOKEN, 401)
    assert failure.url == f"https://{setup.login}/oauth2/token"
    assert "not-the-password" not in str(failure)
    assert "not-the-password" not in json.dumps(failure.additional_info[0].info)


async def test_firewall_denial_keeps_the_registry_text(
    raw: RawArm, group_name: str, setup: Setup, source: ImageSource
) -> None:
    walled = create_registry(
        raw,
        group_name,
        unique_name("walled"),
        adminUserEnabled=True,
        networkRuleSet={"defaultAction": "Deny", "ipRules": []},
    )
    credential = BasicCredential(walled.name, admin_password(raw, walled))
    failure = await failure_of(source, f"{walled.login_server}/app:v1", credential)
    assert (failure.cause, failure.step, failure.status) == (PullCause.DENIED, PullStep.CHALLENGE, 403)
    assert failure.registry_code == "DENIED"
    assert failure.registry_message is not None
    assert "client with IP '127.0.0.1' is not allowed access" in failure.registry_message
    assert failure.registry_message in failure.message


async def test_unknown_repository_is_name_unknown(setup: Setup, source: ImageSource) -> None:
    failure = await failure_of(source, setup.ref("does/not/exist"), setup.admin)
    assert (failure.cause, failure.step, failure.status) == (PullCause.NAME_UNKNOWN, PullStep.MANIFEST, 404)
    assert failure.registry_code == "NAME_UNKNOWN"


async def test_unknown_tag_is_manifest_unknown(setup: Setup, source: ImageSource) -> None:
    failure = await failure_of(source, setup.ref("app", "nope"), setup.admin)
    assert (failure.cause, failure.step, failure.status) == (
        PullCause.MANIFEST_UNKNOWN,
        PullStep.MANIFEST,
        404,
    )
    assert failure.registry_code == "MANIFEST_UNKNOWN"
    assert failure.url == f"https://{setup.login}/v2/app/manifests/nope"


async def test_invalid_reference(source: ImageSource) -> None:
    failure = await failure_of(source, "Reg.io/UPPER:v1")
    assert (failure.cause, failure.step) == (PullCause.INVALID_REFERENCE, PullStep.RESOLVE)


async def test_manifest_size_limit(setup: Setup, blobs: BlobStore, server: RunningServer) -> None:
    async with ImageSource(blobs, verify=trust(server), max_manifest_bytes=100) as puller:
        failure = await failure_of(puller, setup.ref("app"), setup.admin)
    assert (failure.cause, failure.step) == (PullCause.SIZE_LIMIT, PullStep.MANIFEST)


async def test_layer_size_limit(setup: Setup, blobs: BlobStore, server: RunningServer) -> None:
    async with ImageSource(blobs, verify=trust(server), max_layer_bytes=1000) as puller:
        failure = await failure_of(puller, setup.ref("app"), setup.admin)
    assert failure.cause is PullCause.SIZE_LIMIT
    assert await blobs.digests() == []


# -- leases and garbage collection ----------------------------------------------------------------


async def test_collect_keeps_leased_blobs_and_removes_the_rest(
    setup: Setup, source: ImageSource, blobs: BlobStore, leases: Leases
) -> None:
    kept = await source.pull(setup.ref("app"), setup.admin, lease="group-a")
    await source.pull(setup.ref("other"), setup.admin)  # temporary lease only
    assert [lease.id for lease in await leases.leases()] == ["group-a"]
    app, other = setup.pushed.app, setup.pushed.other
    held = {app.manifest.digest, app.config.digest, *(b.digest for b in app.layers)}
    assert (await leases.get("group-a")).digests == held  # type: ignore[union-attr]

    deleted = await leases.collect(blobs)
    # The shared base layer stays; what only other:v1 used goes.
    assert set(deleted) == {other.manifest.digest, other.config.digest, other.layers[1].digest}
    assert set(await blobs.digests()) == held
    assert kept.lease == "group-a"

    assert await leases.release("group-a")
    assert set(await leases.collect(blobs)) == held
    assert await blobs.digests() == []


async def test_expired_leases_stop_protecting(blobs: BlobStore, tmp_path: Path) -> None:
    now = [1000.0]
    leases = Leases(tmp_path / "clocked", clock=lambda: now[0])
    data = b"layer"
    digest = sha256(data)
    await blobs.put(data, digest)
    await leases.acquire("pull-x", [digest], ttl_s=60)
    assert await leases.collect(blobs) == []
    now[0] += 61
    assert await leases.collect(blobs) == [digest]
    assert await leases.leases() == []


async def test_lease_files_survive_a_new_instance(tmp_path: Path) -> None:
    digest = sha256(b"x")
    await Leases(tmp_path / "l").acquire("group-b", [digest])
    assert await Leases(tmp_path / "l").held() == {digest}


# -- a fake registry for conditions a correct registry never produces -----------------------------


@dataclass
class FakeRegistry:
    repositories: tuple[str, ...] = ("app",)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    corrupt_blobs: set[str] = field(default_factory=set)
    wrong_manifest_digest: bool = False
    throttled: int = 0  # answer this many requests with 429 first
    unavailable: int = 0  # ... or with 503
    blob_delay_s: float = 0.0
    token_lifetime_s: int | None = None  # require Bearer tokens that live this long
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    host: str = ""
    requests: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, tag: str, image: Image) -> None:
        self.manifests[tag] = (image.manifest.media_type, image.manifest.data)
        self.manifests[image.manifest.digest] = (image.manifest.media_type, image.manifest.data)
        for blob in image.blobs:
            self.blobs[blob.digest] = blob.data

    def app(self) -> Starlette:
        def refused(request: Request) -> Response | None:
            if self.token_lifetime_s is None:
                return None
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if self.tokens.get(token, 0.0) > time.monotonic():
                return None
            challenge = f'Bearer realm="http://{self.host}/token",service="fake"'
            if token:
                challenge += ',error="invalid_token"'
            return JSONResponse(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                401,
                headers={"WWW-Authenticate": challenge},
            )

        async def base(request: Request) -> Response:
            return refused(request) or JSONResponse({})

        async def token(request: Request) -> Response:
            assert request.query_params["scope"] == "repository:app:pull"
            issued = f"t{len(self.tokens)}"
            self.tokens[issued] = time.monotonic() + (self.token_lifetime_s or 0)
            return JSONResponse({"token": issued, "expires_in": self.token_lifetime_s})

        async def route(request: Request) -> Response:
            self.requests.append(request.url.path)
            denied = refused(request)
            if denied is not None:
                return denied
            if self.throttled:
                self.throttled -= 1
                return JSONResponse(
                    {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]},
                    429,
                    headers={"Retry-After": "0"},
                )
            if self.unavailable:
                self.unavailable -= 1
                return Response("busy", 503)
            prefix, kind, locator = request.url.path.rsplit("/", 2)
            if prefix.removeprefix("/v2/") not in self.repositories:
                return JSONResponse(
                    {
                        "errors": [
                            {"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}
                        ]
                    },
                    404,
                )
            if kind == "manifests":
                found = self.manifests.get(locator)
                if found is None:
                    return JSONResponse({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "nope"}]}, 404)
                media_type, body = found
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                if self.wrong_manifest_digest:
                    digest = "sha256:" + "0" * 64
                return Response(body, headers={"Content-Type": media_type, "Docker-Content-Digest": digest})
            data = self.blobs.get(locator)
            if data is None:
                return JSONResponse({"errors": [{"code": "BLOB_UNKNOWN", "message": "nope"}]}, 404)
            if locator in self.corrupt_blobs:
                data = bytes([data[0] ^ 1]) + data[1:]
            with self.lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.blob_delay_s)
            finally:
                with self.lock:
                    self.in_flight -= 1
            return Response(data, media_type="application/octet-stream")

        return Starlette(
            routes=[Route("/v2/", base), Route("/token", token), Route("/v2/{rest:path}", route)]
        )


@pytest.fixture
def fake() -> Iterator[tuple[FakeRegistry, str]]:
    registry = FakeRegistry()
    config = uvicorn.Config(
        registry.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
    )
    http = uvicorn.Server(config)
    thread = threading.Thread(target=http.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not http.started:
        assert time.monotonic() < deadline, "fake registry did not start"
        time.sleep(0.01)
    port = http.servers[0].sockets[0].getsockname()[1]
    registry.host = f"127.0.0.1:{port}"
    yield registry, registry.host
    http.should_exit = True
    thread.join(timeout=10)


def fake_source(blobs: BlobStore, host: str, **kw: Any) -> ImageSource:
    return ImageSource(blobs, insecure_registries=[host], backoff_s=0.01, **kw)


async def test_blob_digest_mismatch(fake: tuple[FakeRegistry, str], blobs: BlobStore) -> None:
    registry, host = fake
    image = busybox_image({"x.txt": b"x\n"})
    registry.add("v1", image)
    registry.corrupt_blobs.add(image.layers[1].digest)
    async with fake_source(blobs, host) as puller:
        failure = await failure_of(puller, f"{host}/app:v1")
    assert (failure.cause, failure.step) == (PullCause.DIGEST_MISMATCH, PullStep.BLOB)
    assert failure.url == f"http://{host}/v2/app/blobs/{image.layers[1].digest}"
    assert await blobs.stat(image.layers[1].digest) is None
    assert await blobs.ingests() == []  # nothing half-written is left behind


async def test_manifest_digest_mismatch(fake: tuple[FakeRegistry, str], blobs: BlobStore) -> None:
    registry, host = fake
    image = busybox_image()
    registry.add("v1", image)
    registry.wrong_manifest_digest = True
    async with fake_source(blobs, host) as puller:
        failure = await failure_of(puller, f"{host}/app:v1")
    assert (failure.cause, failure.step) == (PullCause.DIGEST_MISMATCH, PullStep.MANIFEST)


async def test_manifest_by_digest_must_match_that_digest(
    fake: tuple[FakeRegistry, str], blobs: BlobStore
) -> None:
    registry, host = fake
    image, impostor = busybox_image(), busybox_image({"evil": b"1"})
    registry.manifests[image.manifest.digest] = (OCI_MANIFEST, impostor.manifest.data)
    async with fake_source(blobs, host) as puller:
        failure = await failure_of(puller, f"{host}/app@{image.manifest.digest}")
    assert failure.cause is PullCause.DIGEST_MISMATCH


async def test_too_many_requests_after_bounded_retries(
    fake: tuple[FakeRegistry, str], blobs: BlobStore
) -> None:
    registry, host = fake
    registry.add("v1", busybox_image())
    registry.throttled = 1000
    async with fake_source(blobs, host, max_retries=2) as puller:
        failure = await failure_of(puller, f"{host}/app:v1")
    assert (failure.cause, failure.step, failure.status) == (
        PullCause.TOO_MANY_REQUESTS,
        PullStep.MANIFEST,
        429,
    )
    assert (failure.registry_code, failure.registry_message) == ("TOOMANYREQUESTS", "slow down")
    assert failure.code == "RegistryErrorResponse"
    assert registry.requests == ["/v2/app/manifests/v1"] * 3


async def test_transient_errors_are_retried(fake: tuple[FakeRegistry, str], blobs: BlobStore) -> None:
    registry, host = fake
    image = busybox_image()
    registry.add("v1", image)
    registry.throttled, registry.unavailable = 1, 1
    async with fake_source(blobs, host) as puller:
        pulled = await puller.pull(f"{host}/app:v1")
    assert pulled.digest == image.manifest.digest


async def test_layers_download_in_parallel(fake: tuple[FakeRegistry, str], blobs: BlobStore) -> None:
    registry, host = fake
    image = build_image([tar_layer({f"f{i}": bytes([i]) * 100}) for i in range(6)])
    registry.add("v1", image)
    registry.blob_delay_s = 0.2
    async with fake_source(blobs, host, parallelism=4) as puller:
        pulled = await puller.pull(f"{host}/app:v1")
    assert len(pulled.layers) == 6
    assert registry.max_in_flight == 4


async def test_short_lived_tokens_are_renewed_during_a_pull(
    fake: tuple[FakeRegistry, str], blobs: BlobStore
) -> None:
    registry, host = fake
    image = build_image([tar_layer({f"f{i}": bytes([i]) * 100}) for i in range(4)])
    registry.add("v1", image)
    registry.token_lifetime_s = 1
    registry.blob_delay_s = 0.5
    async with fake_source(blobs, host, parallelism=1) as puller:
        pulled = await puller.pull(f"{host}/app:v1")
    assert pulled.digest == image.manifest.digest
    assert len(registry.tokens) >= 2


async def test_name_unknown_from_the_registry(fake: tuple[FakeRegistry, str], blobs: BlobStore) -> None:
    _, host = fake
    async with fake_source(blobs, host) as puller:
        failure = await failure_of(puller, f"{host}/nothing/here:v1")
    assert (failure.cause, failure.step, failure.status) == (PullCause.NAME_UNKNOWN, PullStep.MANIFEST, 404)
    assert failure.registry_message == "repository name not known to registry"


async def test_router_picks_host_and_transport(blobs: BlobStore) -> None:
    registry = FakeRegistry()
    image = busybox_image()
    registry.add("v1", image)
    transport = httpx.ASGITransport(app=registry.app())
    seen: list[str] = []

    class Router:
        def route(self, host: str) -> tuple[str, httpx.AsyncBaseTransport | None]:
            seen.append(host)
            return ("platform.local", transport) if host == "myreg.azurecr.io" else (host, None)

    async with ImageSource(blobs, router=Router()) as puller:
        pulled = await puller.pull("myreg.azurecr.io/app:v1")
    assert pulled.digest == image.manifest.digest
    assert set(seen) == {"myreg.azurecr.io"}
    assert registry.requests[0] == "/v2/app/manifests/v1"
