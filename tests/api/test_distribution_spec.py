"""The OCI distribution-spec v1.1 data plane, from the text of the spec (``spec.md``): the pull,
push, content discovery and content management workflows, each run with ACR's token flow
(401 challenge, ``/oauth2/token`` with the admin user's Basic credentials, then Bearer) and with
Basic credentials sent straight to ``/v2``; the pull workflow also anonymously, on a registry
with ``anonymousPullEnabled``. Plain httpx against ``https://<loginServer>`` so statuses,
headers and bodies are asserted exactly. Every test builds its own content in a repository of
its own; the two registries are shared by the module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.api.conftest import RawArm, trust
from tests.api.registry_support import TestRegistry as AcrRegistry
from tests.api.registry_support import admin_password, create_registry
from tests.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    Image,
    build_image,
    gzip_layer,
    sha256,
    tar_layer,
)
from tests.server import RunningServer

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT_ALL = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
EMPTY = Blob("application/vnd.oci.empty.v1+json", b"{}")
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"
OCTETS = {"Content-Type": "application/octet-stream"}
MiB = 1024 * 1024

# spec.md, "Error Codes": the code MUST be one of these (TAG_INVALID is a legacy Docker code
# the spec says clients MAY encounter).
SPEC_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
    "TAG_INVALID",
}
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs/uploads|blobs|tags|referrers)(?:/|$)")
_NEXT_LINK = re.compile(r'^<(?P<url>[^>]+)>;\s*rel="next"$')


# -- a small registry client ----------------------------------------------------------------------


def parse_challenge(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer", header
    return dict(_CHALLENGE_PARAM.findall(rest))


def _token_key(method: str, url: str) -> str:
    """Which cached token a request uses: one per repository and kind of access, as clients
    keep them (an upload session needs pull+push whatever the method)."""
    path = httpx.URL(url).path
    match = _REPO_PATH.match(path)
    if match is None:
        return path
    if match["kind"] == "blobs/uploads" or method in ("POST", "PUT", "PATCH"):
        action = "push"
    else:
        action = "delete" if method == "DELETE" else "pull"
    return f"{match['name']}:{action}"


class Oci:
    """Speaks /v2 to one registry as ``token`` (challenge → /oauth2/token → Bearer, like docker
    and containerd), ``basic`` (admin credentials on every request) or ``anonymous``."""

    def __init__(self, server: RunningServer, registry: AcrRegistry, mode: str, password: str) -> None:
        self.registry = registry
        self.mode = mode
        self.password = password
        self.http = httpx.Client(
            base_url=f"https://{registry.login_server}", verify=trust(server), timeout=60
        )
        self.tokens: dict[tuple[str, ...], str] = {}

    def basic(self) -> str:
        pair = f"{self.registry.name}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        also: tuple[str, ...] = (),
        **kw: Any,
    ) -> httpx.Response:
        """``also``: further scopes to ask for in token mode (the source of a cross-mount)."""
        headers = dict(headers or {})
        if self.mode == "basic":
            headers["Authorization"] = self.basic()
        if self.mode != "token":
            return self.http.request(method, url, headers=headers, **kw)
        key = (_token_key(method, url), *also)
        if key in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[key]}"
        response = self.http.request(method, url, headers=headers, **kw)
        if response.status_code != 401 or "www-authenticate" not in response.headers:
            return response
        self.tokens[key] = self.token(parse_challenge(response.headers["www-authenticate"]), also)
        headers["Authorization"] = f"Bearer {self.tokens[key]}"
        return self.http.request(method, url, headers=headers, **kw)

    def token(self, challenge: dict[str, str], also: tuple[str, ...] = ()) -> str:
        scopes = [s for s in (challenge.get("scope"), *also) if s]
        params = [("service", challenge["service"]), *(("scope", s) for s in scopes)]
        response = self.http.get(challenge["realm"], params=params, headers={"Authorization": self.basic()})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def raw_path(self, method: str, raw_path: str) -> httpx.Response:
        """A request whose path goes out byte for byte (no dot-segment removal)."""
        headers = {"Authorization": self.basic()} if self.mode != "anonymous" else {}
        request = self.http.build_request(method, "/v2/", headers=headers)
        request.url = request.url.copy_with(raw_path=raw_path.encode())
        return self.http.send(request)


@dataclass
class Env:
    server: RunningServer
    secured: AcrRegistry
    secured_password: str
    public: AcrRegistry  # anonymousPullEnabled
    public_password: str
    clients: dict[tuple[str, bool], Oci] = field(default_factory=dict)

    def client(self, mode: str, *, public: bool = False) -> Oci:
        if (mode, public) not in self.clients:
            registry, password = (
                (self.public, self.public_password) if public else (self.secured, self.secured_password)
            )
            self.clients[mode, public] = Oci(self.server, registry, mode, password)
        return self.clients[mode, public]


@dataclass(frozen=True)
class PullSide:
    pusher: Oci  # admin, Basic: sets up content
    reader: Oci  # the mode under test


@pytest.fixture(scope="module")
def env(raw: RawArm) -> Iterator[Env]:
    group = f"rg-spec-{uuid.uuid4().hex[:8]}"
    group_path = f"/subscriptions/{raw.server.subscription_id}/resourcegroups/{group}"
    assert raw.request("PUT", group_path, json={"location": "westus"}).status_code in (200, 201)
    secured = create_registry(raw, group, adminUserEnabled=True)
    public = create_registry(raw, group, adminUserEnabled=True, anonymousPullEnabled=True)
    environment = Env(raw.server, secured, admin_password(raw, secured), public, admin_password(raw, public))
    yield environment
    for client in environment.clients.values():
        client.http.close()
    raw.request("DELETE", group_path)


@pytest.fixture(scope="module", params=["token", "basic"])
def client(request: pytest.FixtureRequest, env: Env) -> Oci:
    """An authenticated client of the secured registry (token flow, or Basic on /v2)."""
    return env.client(str(request.param))


@pytest.fixture(scope="module", params=["token", "basic", "anonymous"])
def pull(request: pytest.FixtureRequest, env: Env) -> PullSide:
    """The pull workflow's reader in each mode (anonymous: on the anonymous-pull registry)."""
    public = request.param == "anonymous"
    return PullSide(env.client("basic", public=public), env.client(str(request.param), public=public))


@pytest.fixture
def anonymous(env: Env) -> Oci:
    """No credentials, on the registry that does not allow anonymous pull."""
    return env.client("anonymous")


# -- content --------------------------------------------------------------------------------------


def repo_name(prefix: str = "spec") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def small_image(layers: int = 1) -> Image:
    return build_image([tar_layer({f"file{i}": os.urandom(300)}) for i in range(layers)])


def docker_image() -> Image:
    layer = Blob(DOCKER_LAYER, gzip_layer(tar_layer({"hello": os.urandom(200)})))
    config = Blob(
        DOCKER_CONFIG,
        json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode(),
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    }
    return Image(Blob(DOCKER_MANIFEST, json.dumps(manifest).encode()), config, (layer,))


def index_blob(media_type: str, children: list[Blob], **extra: Any) -> Blob:
    platform = {"architecture": "amd64", "os": "linux"}
    body = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [child.descriptor(platform=platform) for child in children],
        **extra,
    }
    return Blob(media_type, json.dumps(body).encode())


def artifact_blob(
    subject: Blob | None,
    artifact_type: str | None,
    annotations: dict[str, str] | None = None,
    *,
    config: Blob = EMPTY,
    layers: tuple[Blob, ...] = (EMPTY,),
) -> Blob:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if artifact_type:
        body["artifactType"] = artifact_type
    if subject is not None:
        body["subject"] = subject.descriptor()
    if annotations:
        body["annotations"] = annotations
    return Blob(OCI_MANIFEST, json.dumps(body).encode())


def start_upload(c: Oci, repo: str) -> str:
    response = c.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response.headers["location"]


def push_blob(c: Oci, repo: str, data: bytes) -> str:
    location = start_upload(c, repo)
    digest = sha256(data)
    done = c.request("PUT", with_query(location, digest=digest), content=data, headers=OCTETS)
    assert done.status_code == 201, done.text
    return digest


def put_manifest(c: Oci, repo: str, reference: str, manifest: Blob) -> httpx.Response:
    return c.request(
        "PUT",
        f"/v2/{repo}/manifests/{reference}",
        content=manifest.data,
        headers={"Content-Type": manifest.media_type},
    )


def push_manifest(c: Oci, repo: str, reference: str, manifest: Blob) -> httpx.Response:
    response = put_manifest(c, repo, reference, manifest)
    assert response.status_code == 201, response.text
    return response


def push_image(c: Oci, repo: str, image: Image | None = None, reference: str | None = "latest") -> Image:
    image = image or small_image()
    for blob in image.blobs:
        push_blob(c, repo, blob.data)
    push_manifest(c, repo, reference or image.manifest.digest, image.manifest)
    return image


def push_artifact(c: Oci, repo: str, artifact: Blob, *blobs: Blob) -> httpx.Response:
    for blob in (EMPTY, *blobs):
        push_blob(c, repo, blob.data)
    return push_manifest(c, repo, artifact.digest, artifact)


def assert_error(response: httpx.Response, status: int, *codes: str) -> None:
    """The spec's error envelope: ``{"errors": [{"code", "message", "detail"?}, ...]}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, dict)
    assert set(body) == {"errors"}
    assert isinstance(body["errors"], list)
    assert body["errors"]
    for error in body["errors"]:
        assert re.fullmatch(r"[A-Z_]+", error["code"])
        assert error["code"] in SPEC_CODES
        assert isinstance(error.get("message", ""), str)
        assert set(error) <= {"code", "message", "detail"}
    if codes:
        assert body["errors"][0]["code"] in codes, body


def next_link(response: httpx.Response) -> str | None:
    header = response.headers.get("link")
    if header is None:
        return None
    match = _NEXT_LINK.match(header)
    assert match, header
    return match["url"]


# == authentication =============================================================================


def test_base_answers_200_with_the_api_version_header(client: Oci) -> None:
    response = client.request("GET", "/v2/")
    assert response.status_code == 200
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def test_base_without_credentials_is_a_bearer_challenge(anonymous: Oci) -> None:
    response = anonymous.request("GET", "/v2/")
    assert_error(response, 401, "UNAUTHORIZED")
    login = anonymous.registry.login_server
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="https://{login}/oauth2/token",service="{login}"'
    )
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def test_pull_challenge_names_the_pull_scope(anonymous: Oci) -> None:
    repo = repo_name()
    response = anonymous.request("GET", f"/v2/{repo}/manifests/latest")
    assert_error(response, 401, "UNAUTHORIZED")
    challenge = parse_challenge(response.headers["www-authenticate"])
    login = anonymous.registry.login_server
    assert challenge == {
        "realm": f"https://{login}/oauth2/token",
        "service": login,
        "scope": f"repository:{repo}:pull",
    }


def test_push_challenge_names_the_pull_and_push_scope(anonymous: Oci) -> None:
    repo = repo_name()
    response = anonymous.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert_error(response, 401, "UNAUTHORIZED")
    assert parse_challenge(response.headers["www-authenticate"])["scope"] == f"repository:{repo}:pull,push"


def test_delete_challenge_names_the_delete_scope(anonymous: Oci) -> None:
    repo = repo_name()
    response = anonymous.request("DELETE", f"/v2/{repo}/manifests/sha256:{'0' * 64}")
    assert_error(response, 401, "UNAUTHORIZED")
    assert parse_challenge(response.headers["www-authenticate"])["scope"] == f"repository:{repo}:delete"


def test_token_from_the_challenge_grants_the_request(env: Env) -> None:
    basic = env.client("basic")
    repo = repo_name()
    image = push_image(basic, repo)
    http = basic.http
    challenged = http.get(f"/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
    assert challenged.status_code == 401
    challenge = parse_challenge(challenged.headers["www-authenticate"])
    issued = http.get(
        challenge["realm"],
        params={"service": challenge["service"], "scope": challenge["scope"]},
        headers={"Authorization": basic.basic()},
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    response = http.get(
        f"/v2/{repo}/manifests/latest",
        headers={"Accept": OCI_MANIFEST, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert response.content == image.manifest.data


def test_token_endpoint_refuses_a_wrong_password(anonymous: Oci) -> None:
    login = anonymous.registry.login_server
    pair = base64.b64encode(f"{anonymous.registry.name}:wrong".encode()).decode()
    response = anonymous.http.get(
        "/oauth2/token",
        params={"service": login, "scope": f"repository:{repo_name()}:pull"},
        headers={"Authorization": f"Basic {pair}"},
    )
    assert response.status_code == 401


def test_basic_with_a_wrong_password_is_refused(anonymous: Oci) -> None:
    pair = base64.b64encode(f"{anonymous.registry.name}:wrong".encode()).decode()
    response = anonymous.http.get(f"/v2/{repo_name()}/tags/list", headers={"Authorization": f"Basic {pair}"})
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"].startswith("Bearer realm=")


def test_token_for_one_repository_does_not_open_another(env: Env) -> None:
    basic = env.client("basic")
    mine, other = repo_name(), repo_name()
    push_image(basic, other)
    login = basic.registry.login_server
    issued = basic.http.get(
        "/oauth2/token",
        params={"service": login, "scope": f"repository:{mine}:pull"},
        headers={"Authorization": basic.basic()},
    )
    token = issued.json()["access_token"]
    response = basic.http.get(f"/v2/{other}/manifests/latest", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "UNAUTHORIZED")
    challenge = parse_challenge(response.headers["www-authenticate"])
    assert challenge["scope"] == f"repository:{other}:pull"
    assert challenge["error"] == "insufficient_scope"


def test_pull_without_credentials_is_refused_when_anonymous_pull_is_off(env: Env, anonymous: Oci) -> None:
    repo = repo_name()
    push_image(env.client("basic"), repo)
    assert_error(anonymous.request("GET", f"/v2/{repo}/manifests/latest"), 401, "UNAUTHORIZED")


# -- anonymous pull (anonymousPullEnabled) --------------------------------------------------------


def test_anonymous_token_flow_pulls(env: Env) -> None:
    pusher, reader = env.client("basic", public=True), env.client("anonymous", public=True)
    repo = repo_name()
    image = push_image(pusher, repo)
    login = reader.registry.login_server
    issued = reader.http.get("/oauth2/token", params={"service": login, "scope": f"repository:{repo}:pull"})
    assert issued.status_code == 200, issued.text
    response = reader.http.get(
        f"/v2/{repo}/manifests/latest",
        headers={"Accept": OCI_MANIFEST, "Authorization": f"Bearer {issued.json()['access_token']}"},
    )
    assert response.status_code == 200
    assert response.content == image.manifest.data


def test_anonymous_token_is_refused_when_anonymous_pull_is_off(anonymous: Oci) -> None:
    login = anonymous.registry.login_server
    response = anonymous.http.get(
        "/oauth2/token", params={"service": login, "scope": f"repository:{repo_name()}:pull"}
    )
    assert response.status_code == 401


def test_anonymous_push_is_challenged(env: Env) -> None:
    reader = env.client("anonymous", public=True)
    repo = repo_name()
    response = reader.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert_error(response, 401, "UNAUTHORIZED")
    assert parse_challenge(response.headers["www-authenticate"])["scope"] == f"repository:{repo}:pull,push"


def test_anonymous_delete_is_challenged(env: Env) -> None:
    pusher, reader = env.client("basic", public=True), env.client("anonymous", public=True)
    repo = repo_name()
    image = push_image(pusher, repo)
    response = reader.request("DELETE", f"/v2/{repo}/manifests/{image.manifest.digest}")
    assert_error(response, 401, "UNAUTHORIZED")
    assert pusher.request("HEAD", f"/v2/{repo}/manifests/latest").status_code == 200


def test_anonymous_catalog_is_challenged(env: Env) -> None:
    response = env.client("anonymous", public=True).request("GET", "/v2/_catalog")
    assert_error(response, 401, "UNAUTHORIZED")


# == pull ========================================================================================


@pytest.fixture
def pulled(pull: PullSide) -> tuple[Oci, str, Image]:
    """An image pushed by the admin as ``<repo>:latest``, and the reader under test."""
    repo = repo_name()
    return pull.reader, repo, push_image(pull.pusher, repo)


def _assert_manifest_headers(response: httpx.Response, manifest: Blob) -> None:
    assert response.headers["content-type"] == manifest.media_type
    assert response.headers["docker-content-digest"] == manifest.digest
    assert response.headers["content-length"] == str(len(manifest.data))


def test_get_manifest_by_tag(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    response = reader.request("GET", f"/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200
    assert response.content == image.manifest.data
    _assert_manifest_headers(response, image.manifest)


def test_get_manifest_by_digest(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    response = reader.request(
        "GET", f"/v2/{repo}/manifests/{image.manifest.digest}", headers={"Accept": OCI_MANIFEST}
    )
    assert response.status_code == 200
    assert response.content == image.manifest.data
    _assert_manifest_headers(response, image.manifest)


def test_head_manifest_by_tag(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    response = reader.request("HEAD", f"/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200
    assert response.content == b""
    _assert_manifest_headers(response, image.manifest)


def test_head_manifest_by_digest(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    response = reader.request(
        "HEAD", f"/v2/{repo}/manifests/{image.manifest.digest}", headers={"Accept": OCI_MANIFEST}
    )
    assert response.status_code == 200
    assert response.content == b""
    _assert_manifest_headers(response, image.manifest)


def test_get_blob(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    for blob in image.blobs:
        response = reader.request("GET", f"/v2/{repo}/blobs/{blob.digest}")
        assert response.status_code == 200
        assert sha256(response.content) == blob.digest
        assert response.headers["docker-content-digest"] == blob.digest
        assert response.headers["content-length"] == str(len(blob.data))


def test_head_blob(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    layer = image.layers[0]
    response = reader.request("HEAD", f"/v2/{repo}/blobs/{layer.digest}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["docker-content-digest"] == layer.digest
    assert response.headers["content-length"] == str(len(layer.data))


def test_blob_range_request(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    layer = image.layers[0]
    response = reader.request("GET", f"/v2/{repo}/blobs/{layer.digest}", headers={"Range": "bytes=5-14"})
    assert response.status_code == 206
    assert response.content == layer.data[5:15]
    assert response.headers["content-range"] == f"bytes 5-14/{len(layer.data)}"
    assert response.headers["content-length"] == "10"


def test_blob_open_ended_range(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    layer = image.layers[0]
    size = len(layer.data)
    response = reader.request("GET", f"/v2/{repo}/blobs/{layer.digest}", headers={"Range": "bytes=100-"})
    assert response.status_code == 206
    assert response.content == layer.data[100:]
    assert response.headers["content-range"] == f"bytes 100-{size - 1}/{size}"


def test_blob_suffix_range(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    layer = image.layers[0]
    size = len(layer.data)
    response = reader.request("GET", f"/v2/{repo}/blobs/{layer.digest}", headers={"Range": "bytes=-7"})
    assert response.status_code == 206
    assert response.content == layer.data[-7:]
    assert response.headers["content-range"] == f"bytes {size - 7}-{size - 1}/{size}"


def test_blob_range_past_the_end_is_416(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    layer = image.layers[0]
    size = len(layer.data)
    response = reader.request("GET", f"/v2/{repo}/blobs/{layer.digest}", headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"


def test_unknown_tag_is_manifest_unknown(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, _ = pulled
    assert_error(reader.request("GET", f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")


def test_unknown_manifest_digest_is_manifest_unknown(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, _ = pulled
    response = reader.request("GET", f"/v2/{repo}/manifests/{sha256(os.urandom(8))}")
    assert_error(response, 404, "MANIFEST_UNKNOWN")


def test_head_unknown_manifest_is_404(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, _ = pulled
    response = reader.request("HEAD", f"/v2/{repo}/manifests/nope")
    assert response.status_code == 404
    assert response.content == b""


def test_unknown_blob_is_blob_unknown(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, _ = pulled
    response = reader.request("GET", f"/v2/{repo}/blobs/{sha256(os.urandom(8))}")
    assert_error(response, 404, "BLOB_UNKNOWN")


def test_head_unknown_blob_is_404(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, _ = pulled
    response = reader.request("HEAD", f"/v2/{repo}/blobs/{sha256(os.urandom(8))}")
    assert response.status_code == 404
    assert response.content == b""


def test_blob_of_another_repository_is_not_found(pull: PullSide) -> None:
    repo, other = repo_name(), repo_name()
    image = push_image(pull.pusher, repo)
    push_image(pull.pusher, other)
    response = pull.reader.request("GET", f"/v2/{other}/blobs/{image.layers[0].digest}")
    assert_error(response, 404, "BLOB_UNKNOWN")


def test_manifest_of_another_repository_is_not_found(pull: PullSide) -> None:
    repo, other = repo_name(), repo_name()
    image = push_image(pull.pusher, repo)
    push_image(pull.pusher, other)
    response = pull.reader.request("GET", f"/v2/{other}/manifests/{image.manifest.digest}")
    assert_error(response, 404, "MANIFEST_UNKNOWN")


def test_manifest_of_a_nonexistent_repository_is_404(pull: PullSide) -> None:
    response = pull.reader.request("GET", f"/v2/{repo_name()}/manifests/latest")
    assert_error(response, 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def test_manifest_without_accept_is_served_with_its_own_type(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, _ = pulled
    response = reader.request("GET", f"/v2/{repo}/manifests/latest")
    assert response.status_code == 200
    assert response.headers["content-type"] == OCI_MANIFEST


def test_accept_parameters_are_ignored(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, image = pulled
    accept = f"{DOCKER_MANIFEST};q=0.9, {OCI_MANIFEST};q=0.5"
    response = reader.request("GET", f"/v2/{repo}/manifests/latest", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.content == image.manifest.data
    assert response.headers["content-type"] == OCI_MANIFEST


def test_oci_manifest_is_not_served_to_a_docker_only_client(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, _ = pulled
    response = reader.request("GET", f"/v2/{repo}/manifests/latest", headers={"Accept": DOCKER_MANIFEST})
    assert_error(response, 404, "MANIFEST_UNKNOWN")


def test_docker_manifest_is_served_as_docker(pull: PullSide) -> None:
    repo = repo_name()
    image = push_image(pull.pusher, repo, docker_image())
    response = pull.reader.request("GET", f"/v2/{repo}/manifests/latest", headers={"Accept": ACCEPT_ALL})
    assert response.status_code == 200
    assert response.content == image.manifest.data
    _assert_manifest_headers(response, image.manifest)


def test_oci_index_is_served_as_an_index(pull: PullSide) -> None:
    repo = repo_name()
    child = push_image(pull.pusher, repo, reference=None)
    index = index_blob(OCI_INDEX, [child.manifest])
    push_manifest(pull.pusher, repo, "multi", index)
    response = pull.reader.request(
        "GET", f"/v2/{repo}/manifests/multi", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
    )
    assert response.status_code == 200
    assert response.content == index.data
    _assert_manifest_headers(response, index)


def test_docker_manifest_list_is_served_as_a_list(pull: PullSide) -> None:
    repo = repo_name()
    child = push_image(pull.pusher, repo, docker_image(), reference=None)
    listing = index_blob(DOCKER_LIST, [child.manifest])
    push_manifest(pull.pusher, repo, "multi", listing)
    response = pull.reader.request("GET", f"/v2/{repo}/manifests/multi", headers={"Accept": ACCEPT_ALL})
    assert response.status_code == 200
    assert response.content == listing.data
    _assert_manifest_headers(response, listing)


def test_sha512_blob_is_pulled_by_its_digest(pull: PullSide) -> None:
    repo = repo_name()
    data = os.urandom(1000)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    location = start_upload(pull.pusher, repo)
    put = pull.pusher.request("PUT", with_query(location, digest=digest), content=data, headers=OCTETS)
    assert put.status_code == 201, put.text
    response = pull.reader.request("GET", f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["docker-content-digest"] == digest


def test_tags_list_is_readable(pulled: tuple[Oci, str, Image]) -> None:
    reader, repo, _ = pulled
    response = reader.request("GET", f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": repo, "tags": ["latest"]}


# == push =======================================================================================


def test_empty_blob(client: Oci) -> None:
    repo = repo_name()
    digest = sha256(b"")
    response = client.request("POST", with_query(f"/v2/{repo}/blobs/uploads/", digest=digest), content=b"")
    assert response.status_code == 201, response.text
    pulled = client.request("GET", f"/v2/{repo}/blobs/{digest}")
    assert pulled.status_code == 200
    assert pulled.content == b""
    assert pulled.headers["content-length"] == "0"


def test_post_opens_an_upload_session(client: Oci) -> None:
    response = client.request("POST", f"/v2/{repo_name()}/blobs/uploads/")
    assert response.status_code == 202
    assert UUID.search(response.headers["location"])


def test_upload_sessions_are_unique(client: Oci) -> None:
    repo = repo_name()
    assert start_upload(client, repo) != start_upload(client, repo)


def test_monolithic_post_then_put(client: Oci) -> None:
    repo = repo_name()
    data = os.urandom(2048)
    digest = sha256(data)
    location = start_upload(client, repo)
    response = client.request("PUT", with_query(location, digest=digest), content=data, headers=OCTETS)
    assert response.status_code == 201
    pulled = client.request("GET", response.headers["location"])
    assert pulled.status_code == 200
    assert pulled.content == data
    assert response.headers["docker-content-digest"] == digest


def test_single_post_monolithic_upload(client: Oci) -> None:
    repo = repo_name()
    data = os.urandom(2048)
    digest = sha256(data)
    response = client.request(
        "POST", with_query(f"/v2/{repo}/blobs/uploads/", digest=digest), content=data, headers=OCTETS
    )
    assert response.status_code == 201
    pulled = client.request("GET", response.headers["location"])
    assert pulled.status_code == 200
    assert pulled.content == data


def test_chunked_upload(client: Oci) -> None:
    repo = repo_name()
    data = os.urandom(3000)
    location = start_upload(client, repo)
    for start, end in ((0, 1000), (1000, 2500), (2500, 3000)):
        response = client.request(
            "PATCH",
            location,
            content=data[start:end],
            headers={**OCTETS, "Content-Range": f"{start}-{end - 1}"},
        )
        assert response.status_code == 202, response.text
        assert response.headers["range"] == f"0-{end - 1}"
        location = response.headers["location"]
    done = client.request("PUT", with_query(location, digest=sha256(data)))
    assert done.status_code == 201, done.text
    assert client.request("GET", done.headers["location"]).content == data


def test_chunked_upload_with_the_last_chunk_in_put(client: Oci) -> None:
    repo = repo_name()
    data = os.urandom(3000)
    location = start_upload(client, repo)
    first = client.request(
        "PATCH", location, content=data[:2000], headers={**OCTETS, "Content-Range": "0-1999"}
    )
    assert first.status_code == 202
    done = client.request(
        "PUT",
        with_query(first.headers["location"], digest=sha256(data)),
        content=data[2000:],
        headers={**OCTETS, "Content-Range": "2000-2999"},
    )
    assert done.status_code == 201, done.text
    assert client.request("GET", f"/v2/{repo}/blobs/{sha256(data)}").content == data


def test_streamed_patch_without_content_range(client: Oci) -> None:
    repo = repo_name()
    data = os.urandom(5000)
    location = start_upload(client, repo)
    response = client.request("PATCH", location, content=data, headers=OCTETS)
    assert response.status_code == 202
    assert response.headers["range"] == "0-4999"
    done = client.request("PUT", with_query(response.headers["location"], digest=sha256(data)))
    assert done.status_code == 201


def test_chunk_whose_length_contradicts_its_range_is_refused(client: Oci) -> None:
    location = start_upload(client, repo_name())
    client.request("PATCH", location, content=b"a" * 10, headers={**OCTETS, "Content-Range": "0-9"})
    response = client.request(
        "PATCH", location, content=b"b" * 3, headers={**OCTETS, "Content-Range": "10-109"}
    )
    assert response.status_code in (400, 416), response.text
    assert client.request("GET", location).headers["range"] == "0-9"


def test_out_of_order_chunk_is_416_with_the_current_range(client: Oci) -> None:
    repo = repo_name()
    location = start_upload(client, repo)
    client.request("PATCH", location, content=b"a" * 10, headers={**OCTETS, "Content-Range": "0-9"})
    response = client.request(
        "PATCH", location, content=b"b" * 10, headers={**OCTETS, "Content-Range": "20-29"}
    )
    assert response.status_code == 416
    assert response.headers["range"] == "0-9"


def test_first_chunk_must_start_at_zero(client: Oci) -> None:
    location = start_upload(client, repo_name())
    response = client.request(
        "PATCH", location, content=b"b" * 10, headers={**OCTETS, "Content-Range": "5-14"}
    )
    assert response.status_code == 416


def test_out_of_order_final_chunk_in_put_is_416(client: Oci) -> None:
    repo = repo_name()
    location = start_upload(client, repo)
    client.request("PATCH", location, content=b"a" * 10, headers={**OCTETS, "Content-Range": "0-9"})
    response = client.request(
        "PUT",
        with_query(location, digest=sha256(b"a" * 20)),
        content=b"a" * 10,
        headers={**OCTETS, "Content-Range": "15-24"},
    )
    assert response.status_code == 416


def test_upload_status_after_416(client: Oci) -> None:
    repo = repo_name()
    data = os.urandom(30)
    location = start_upload(client, repo)
    client.request("PATCH", location, content=data[:10], headers={**OCTETS, "Content-Range": "0-9"})
    client.request("PATCH", location, content=data[20:], headers={**OCTETS, "Content-Range": "20-29"})
    status = client.request("GET", location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-9"
    assert UUID.search(status.headers["location"])
    resumed = client.request(
        "PATCH", status.headers["location"], content=data[10:], headers={**OCTETS, "Content-Range": "10-29"}
    )
    assert resumed.status_code == 202
    done = client.request("PUT", with_query(resumed.headers["location"], digest=sha256(data)))
    assert done.status_code == 201


def test_upload_status_reports_the_bytes_received(client: Oci) -> None:
    location = start_upload(client, repo_name())
    client.request("PATCH", location, content=b"x" * 64, headers={**OCTETS, "Content-Range": "0-63"})
    status = client.request("GET", location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-63"
    assert status.content == b""


def test_cancelled_upload_is_gone(client: Oci) -> None:
    location = start_upload(client, repo_name())
    client.request("PATCH", location, content=b"x" * 64, headers={**OCTETS, "Content-Range": "0-63"})
    cancelled = client.request("DELETE", location)
    assert cancelled.status_code == 204
    assert_error(client.request("GET", location), 404, "BLOB_UPLOAD_UNKNOWN")
    response = client.request("PATCH", location, content=b"y", headers={**OCTETS, "Content-Range": "64-64"})
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


def test_completed_upload_session_is_closed(client: Oci) -> None:
    repo = repo_name()
    data = os.urandom(100)
    location = start_upload(client, repo)
    assert client.request("PUT", with_query(location, digest=sha256(data)), content=data).status_code == 201
    assert_error(client.request("GET", location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_unknown_upload_session_is_404(client: Oci) -> None:
    repo = repo_name()
    assert_error(
        client.request("GET", f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}"), 404, "BLOB_UPLOAD_UNKNOWN"
    )


def test_upload_session_belongs_to_its_repository(client: Oci) -> None:
    location = start_upload(client, repo_name())
    upload_id = location.rstrip("/").rsplit("/", 1)[1]
    response = client.request("GET", f"/v2/{repo_name()}/blobs/uploads/{upload_id}")
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


def test_digest_mismatch_is_digest_invalid_and_stores_nothing(client: Oci) -> None:
    repo = repo_name()
    data, claimed = os.urandom(512), sha256(os.urandom(512))
    location = start_upload(client, repo)
    response = client.request("PUT", with_query(location, digest=claimed), content=data, headers=OCTETS)
    assert_error(response, 400, "DIGEST_INVALID")
    assert client.request("HEAD", f"/v2/{repo}/blobs/{claimed}").status_code == 404
    assert client.request("HEAD", f"/v2/{repo}/blobs/{sha256(data)}").status_code == 404


def test_single_post_digest_mismatch_stores_nothing(client: Oci) -> None:
    repo = repo_name()
    data, claimed = os.urandom(512), sha256(os.urandom(512))
    response = client.request(
        "POST", with_query(f"/v2/{repo}/blobs/uploads/", digest=claimed), content=data, headers=OCTETS
    )
    assert_error(response, 400, "DIGEST_INVALID")
    assert client.request("HEAD", f"/v2/{repo}/blobs/{claimed}").status_code == 404
    assert client.request("HEAD", f"/v2/{repo}/blobs/{sha256(data)}").status_code == 404


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:xyz",
        "sha256:",
        "sha256",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:" + "A" * 64,
        "sha256:" + "0" * 63,
        "sha384:" + "0" * 96,
        "",
    ],
)
def test_closing_put_with_an_invalid_digest_is_400(client: Oci, digest: str) -> None:
    location = start_upload(client, repo_name())
    response = client.request("PUT", with_query(location, digest=digest), content=b"data", headers=OCTETS)
    assert_error(response, 400, "DIGEST_INVALID")


def test_closing_put_without_a_digest_is_400(client: Oci) -> None:
    location = start_upload(client, repo_name())
    response = client.request("PUT", location, content=b"data", headers=OCTETS)
    assert_error(response, 400, "DIGEST_INVALID")


def test_sha512_upload_is_verified(client: Oci) -> None:
    repo = repo_name()
    data = os.urandom(4096)
    wrong = "sha512:" + hashlib.sha512(b"other").hexdigest()
    location = start_upload(client, repo)
    response = client.request("PUT", with_query(location, digest=wrong), content=data, headers=OCTETS)
    assert_error(response, 400, "DIGEST_INVALID")


def test_chunked_sha512_upload_with_digest_algorithm(client: Oci) -> None:
    repo = repo_name()
    data = os.urandom(3000)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    started = client.request("POST", f"/v2/{repo}/blobs/uploads/?digest-algorithm=sha512")
    assert started.status_code == 202
    chunk = client.request(
        "PATCH", started.headers["location"], content=data, headers={**OCTETS, "Content-Range": "0-2999"}
    )
    assert chunk.status_code == 202
    done = client.request("PUT", with_query(chunk.headers["location"], digest=digest))
    assert done.status_code == 201, done.text
    assert done.headers["docker-content-digest"] == digest
    assert client.request("GET", f"/v2/{repo}/blobs/{digest}").content == data


def test_mount_from_another_repository(client: Oci) -> None:
    source, target = repo_name(), repo_name()
    data = os.urandom(700)
    digest = push_blob(client, source, data)
    response = client.request(
        "POST",
        with_query(f"/v2/{target}/blobs/uploads/", mount=digest, **{"from": source}),
        also=(f"repository:{source}:pull",),
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v2/{target}/blobs/{digest}"
    assert response.headers["docker-content-digest"] == digest
    assert client.request("GET", f"/v2/{target}/blobs/{digest}").content == data


def test_mount_without_from(client: Oci) -> None:
    source, target = repo_name(), repo_name()
    data = os.urandom(700)
    digest = push_blob(client, source, data)
    response = client.request(
        "POST",
        with_query(f"/v2/{target}/blobs/uploads/", mount=digest),
        also=(f"repository:{source}:pull",),
    )
    assert response.status_code == 201, response.text
    assert client.request("GET", f"/v2/{target}/blobs/{digest}").content == data


def test_mount_needs_pull_access_to_the_source(env: Env) -> None:
    """A token without pull on ``from`` does not mount (nor reveal) the blob: 202, an upload."""
    basic = env.client("basic")
    source, target = repo_name(), repo_name()
    digest = push_blob(basic, source, os.urandom(100))
    login = basic.registry.login_server
    issued = basic.http.get(
        "/oauth2/token",
        params={"service": login, "scope": f"repository:{target}:pull,push"},
        headers={"Authorization": basic.basic()},
    )
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    url = with_query(f"/v2/{target}/blobs/uploads/", mount=digest, **{"from": source})
    response = basic.http.post(url, headers=bearer)
    assert response.status_code == 202
    assert basic.request("HEAD", f"/v2/{target}/blobs/{digest}").status_code == 404


def test_mount_of_an_unknown_blob_opens_an_upload_session(client: Oci) -> None:
    source, target = repo_name(), repo_name()
    push_blob(client, source, os.urandom(10))
    data = os.urandom(700)
    response = client.request(
        "POST",
        with_query(f"/v2/{target}/blobs/uploads/", mount=sha256(data), **{"from": source}),
        also=(f"repository:{source}:pull",),
    )
    assert response.status_code == 202, response.text
    done = client.request(
        "PUT", with_query(response.headers["location"], digest=sha256(data)), content=data, headers=OCTETS
    )
    assert done.status_code == 201


def test_mount_from_a_repository_without_the_blob_opens_an_upload_session(client: Oci) -> None:
    holder, source, target = repo_name(), repo_name(), repo_name()
    digest = push_blob(client, holder, os.urandom(100))
    push_blob(client, source, os.urandom(100))
    response = client.request(
        "POST",
        with_query(f"/v2/{target}/blobs/uploads/", mount=digest, **{"from": source}),
        also=(f"repository:{source}:pull",),
    )
    assert response.status_code == 202
    assert client.request("HEAD", f"/v2/{target}/blobs/{digest}").status_code == 404


def test_put_manifest_by_tag(client: Oci) -> None:
    repo = repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    response = put_manifest(client, repo, "v1", image.manifest)
    assert response.status_code == 201
    assert response.headers["docker-content-digest"] == image.manifest.digest
    pulled = client.request("GET", response.headers["location"], headers={"Accept": OCI_MANIFEST})
    assert pulled.status_code == 200
    assert pulled.content == image.manifest.data


def test_put_manifest_by_digest(client: Oci) -> None:
    repo = repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    response = put_manifest(client, repo, image.manifest.digest, image.manifest)
    assert response.status_code == 201
    assert response.headers["location"] == f"/v2/{repo}/manifests/{image.manifest.digest}"
    assert response.headers["docker-content-digest"] == image.manifest.digest
    assert client.request("GET", response.headers["location"]).content == image.manifest.data


def test_put_manifest_by_sha512_digest(client: Oci) -> None:
    repo = repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    digest = "sha512:" + hashlib.sha512(image.manifest.data).hexdigest()
    response = put_manifest(client, repo, digest, image.manifest)
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == digest
    pulled = client.request("GET", f"/v2/{repo}/manifests/{digest}")
    assert pulled.status_code == 200
    assert pulled.content == image.manifest.data


def test_pushing_the_same_manifest_twice_is_idempotent(client: Oci) -> None:
    repo = repo_name()
    image = push_image(client, repo)
    again = put_manifest(client, repo, "latest", image.manifest)
    assert again.status_code == 201
    assert again.headers["docker-content-digest"] == image.manifest.digest


def test_tag_of_128_characters(client: Oci) -> None:
    repo = repo_name()
    tag = "T" + "a" * 126 + "9"
    image = push_image(client, repo, reference=tag)
    response = client.request("GET", f"/v2/{repo}/manifests/{tag}")
    assert response.status_code == 200
    assert response.content == image.manifest.data


def test_manifest_is_stored_byte_for_byte(client: Oci) -> None:
    repo = repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    document = json.loads(image.manifest.data)
    odd = Blob(OCI_MANIFEST, ("\n  " + json.dumps(document, indent=7) + "\n\n").encode())
    push_manifest(client, repo, "odd", odd)
    pulled = client.request("GET", f"/v2/{repo}/manifests/odd")
    assert pulled.content == odd.data
    assert pulled.headers["docker-content-digest"] == odd.digest


def test_manifest_without_media_type_field_keeps_the_pushed_content_type(client: Oci) -> None:
    repo = repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    document = json.loads(image.manifest.data)
    del document["mediaType"]
    bare = Blob(OCI_MANIFEST, json.dumps(document).encode())
    push_manifest(client, repo, "bare", bare)
    assert client.request("GET", f"/v2/{repo}/manifests/bare").headers["content-type"] == OCI_MANIFEST


def test_content_type_parameters_are_ignored_on_push(client: Oci) -> None:
    repo = repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    response = client.request(
        "PUT",
        f"/v2/{repo}/manifests/v1",
        content=image.manifest.data,
        headers={"Content-Type": f"{OCI_MANIFEST}; charset=utf-8"},
    )
    assert response.status_code == 201, response.text
    assert client.request("GET", f"/v2/{repo}/manifests/v1").headers["content-type"] == OCI_MANIFEST


def test_retagging_points_a_tag_at_the_new_manifest(client: Oci) -> None:
    repo = repo_name()
    push_image(client, repo, reference="v1")
    second = push_image(client, repo, reference="v1")
    response = client.request("GET", f"/v2/{repo}/manifests/v1")
    assert response.headers["docker-content-digest"] == second.manifest.digest


def test_manifest_put_by_a_digest_it_does_not_have_is_refused(client: Oci) -> None:
    repo = repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    wrong = sha256(image.manifest.data + b" ")
    response = put_manifest(client, repo, wrong, image.manifest)
    assert_error(response, 400, "DIGEST_INVALID")
    assert client.request("HEAD", f"/v2/{repo}/manifests/{wrong}").status_code == 404


def test_manifest_referencing_an_unknown_blob_is_manifest_blob_unknown(client: Oci) -> None:
    repo = repo_name()
    image = small_image(layers=2)
    push_blob(client, repo, image.config.data)
    push_blob(client, repo, image.layers[0].data)
    response = put_manifest(client, repo, "v1", image.manifest)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert client.request("HEAD", f"/v2/{repo}/manifests/v1").status_code == 404


def test_manifest_referencing_a_blob_of_another_repository_is_refused(client: Oci) -> None:
    repo, other = repo_name(), repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, other, blob.data)
    assert_error(put_manifest(client, repo, "v1", image.manifest), 400, "MANIFEST_BLOB_UNKNOWN")


def test_index_referencing_an_unknown_manifest_is_manifest_blob_unknown(client: Oci) -> None:
    repo = repo_name()
    index = index_blob(OCI_INDEX, [small_image().manifest])
    assert_error(put_manifest(client, repo, "multi", index), 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"string"',
        b"{",
        b'{"schemaVersion": 2}',
        b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
        b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", '
        b'"config": {"mediaType": "x/y", "digest": "sha256:bad", "size": -1}, "layers": []}',
        b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"schemaVersion": 2, "schemaVersion": 2}',
        b"\xff\xfe garbage",
    ],
    ids=[
        "empty",
        "text",
        "array",
        "string",
        "truncated",
        "bare",
        "no-config",
        "bad-descriptor",
        "schema1",
        "deep",
        "duplicate-keys",
        "binary",
    ],
)
def test_invalid_manifest_is_manifest_invalid(client: Oci, body: bytes) -> None:
    response = client.request(
        "PUT", f"/v2/{repo_name()}/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert_error(response, 400, "MANIFEST_INVALID")


def test_manifest_media_type_contradicting_content_type_is_invalid(client: Oci) -> None:
    repo = repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    response = client.request(
        "PUT", f"/v2/{repo}/manifests/v1", content=image.manifest.data, headers={"Content-Type": OCI_INDEX}
    )
    assert_error(response, 400, "MANIFEST_INVALID")


def _padded_manifest(client: Oci, repo: str, size: int) -> Blob:
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    document = json.loads(image.manifest.data)
    document["annotations"] = {"pad": ""}
    overhead = len(json.dumps(document).encode())
    document["annotations"]["pad"] = "x" * (size - overhead)
    manifest = Blob(OCI_MANIFEST, json.dumps(document).encode())
    assert len(manifest.data) == size
    return manifest


def test_manifest_of_4_mib_is_accepted(client: Oci) -> None:
    repo = repo_name()
    manifest = _padded_manifest(client, repo, 4 * MiB)
    assert put_manifest(client, repo, "big", manifest).status_code == 201
    assert client.request("GET", f"/v2/{repo}/manifests/big").content == manifest.data


def test_manifest_over_4_mib_is_413(client: Oci) -> None:
    repo = repo_name()
    manifest = _padded_manifest(client, repo, 4 * MiB + 1)
    response = put_manifest(client, repo, "huge", manifest)
    assert response.status_code == 413
    assert client.request("HEAD", f"/v2/{repo}/manifests/huge").status_code == 404


def test_push_oci_image_index(client: Oci) -> None:
    repo = repo_name()
    amd, arm = push_image(client, repo, reference=None), push_image(client, repo, reference=None)
    index = index_blob(OCI_INDEX, [amd.manifest, arm.manifest])
    response = put_manifest(client, repo, "multi", index)
    assert response.status_code == 201
    assert response.headers["docker-content-digest"] == index.digest


def test_push_docker_manifest_list(client: Oci) -> None:
    repo = repo_name()
    child = push_image(client, repo, docker_image(), reference=None)
    listing = index_blob(DOCKER_LIST, [child.manifest])
    response = put_manifest(client, repo, "multi", listing)
    assert response.status_code == 201
    assert response.headers["docker-content-digest"] == listing.digest


def test_push_artifact_with_subject_answers_oci_subject(client: Oci) -> None:
    repo = repo_name()
    subject = push_image(client, repo)
    artifact = artifact_blob(subject.manifest, SBOM)
    response = push_artifact(client, repo, artifact)
    assert response.headers["oci-subject"] == subject.manifest.digest
    assert response.headers["docker-content-digest"] == artifact.digest
    assert client.request("GET", f"/v2/{repo}/manifests/{artifact.digest}").content == artifact.data


def test_manifest_without_subject_has_no_oci_subject_header(client: Oci) -> None:
    repo = repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    assert "oci-subject" not in put_manifest(client, repo, "v1", image.manifest).headers


def test_subject_need_not_exist_yet(client: Oci) -> None:
    repo = repo_name()
    future = small_image().manifest
    artifact = artifact_blob(future, SIGNATURE)
    response = push_artifact(client, repo, artifact)
    assert response.headers["oci-subject"] == future.digest
    referrers = client.request("GET", f"/v2/{repo}/referrers/{future.digest}")
    assert [m["digest"] for m in referrers.json()["manifests"]] == [artifact.digest]


def test_artifact_with_a_custom_config_and_blob_layers(client: Oci) -> None:
    repo = repo_name()
    config = Blob("application/vnd.example.config.v1+json", b'{"k": "v"}')
    payload = Blob("application/vnd.example.payload", os.urandom(256))
    artifact = artifact_blob(None, "application/vnd.example.thing", config=config, layers=(payload,))
    push_blob(client, repo, config.data)
    push_blob(client, repo, payload.data)
    assert put_manifest(client, repo, "thing", artifact).status_code == 201


# == content discovery ==========================================================================


TAGS = ["latest", "B", "a", "1.0", "a-b", "A", "z_", "10"]


@pytest.fixture(scope="module")
def tagged(client: Oci) -> str:
    """A repository with one manifest under every tag of TAGS (read-only: shared)."""
    repo = repo_name()
    image = push_image(client, repo, reference=None)
    for tag in TAGS:
        push_manifest(client, repo, tag, image.manifest)
    return repo


def test_tags_list_is_sorted(client: Oci, tagged: str) -> None:
    repo = tagged
    response = client.request("GET", f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": repo, "tags": sorted(TAGS)}


def test_tags_list_n_limits_and_links_to_the_next_page(client: Oci, tagged: str) -> None:
    repo = tagged
    response = client.request("GET", f"/v2/{repo}/tags/list", params={"n": 3})
    assert response.status_code == 200
    assert response.json()["tags"] == sorted(TAGS)[:3]
    link = next_link(response)
    assert link is not None
    following = client.request("GET", link)
    assert following.status_code == 200
    assert following.json()["tags"] == sorted(TAGS)[3:6]


def test_tags_list_paging_visits_every_tag_once(client: Oci, tagged: str) -> None:
    repo = tagged
    seen: list[str] = []
    url: str | None = f"/v2/{repo}/tags/list?n=3"
    while url is not None:
        response = client.request("GET", url)
        assert response.status_code == 200
        seen += response.json()["tags"]
        url = next_link(response)
    assert seen == sorted(TAGS)


def test_tags_list_last_starts_after_the_given_tag(client: Oci, tagged: str) -> None:
    repo = tagged
    response = client.request("GET", f"/v2/{repo}/tags/list", params={"n": 2, "last": "B"})
    ordered = sorted(TAGS)
    start = ordered.index("B") + 1
    assert response.json()["tags"] == ordered[start : start + 2]


def test_tags_list_last_without_n(client: Oci, tagged: str) -> None:
    repo = tagged
    response = client.request("GET", f"/v2/{repo}/tags/list", params={"last": "a"})
    ordered = sorted(TAGS)
    assert response.json()["tags"] == ordered[ordered.index("a") + 1 :]


def test_tags_list_n_zero_is_empty_without_link(client: Oci, tagged: str) -> None:
    repo = tagged
    response = client.request("GET", f"/v2/{repo}/tags/list", params={"n": 0})
    assert response.status_code == 200
    assert response.json() == {"name": repo, "tags": []}
    assert "link" not in response.headers


def test_tags_list_n_beyond_the_count_has_no_link(client: Oci, tagged: str) -> None:
    repo = tagged
    response = client.request("GET", f"/v2/{repo}/tags/list", params={"n": len(TAGS)})
    assert response.json()["tags"] == sorted(TAGS)
    assert "link" not in response.headers


@pytest.mark.parametrize("n", ["99999999999999999999999999", str(2**63), str(2**63 - 1), "1000000"])
def test_tags_list_huge_n_returns_everything(client: Oci, tagged: str, n: str) -> None:
    repo = tagged
    response = client.request("GET", f"/v2/{repo}/tags/list", params={"n": n})
    assert response.status_code == 200
    assert response.json()["tags"] == sorted(TAGS)


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "0x10"])
def test_tags_list_bad_n_is_400(client: Oci, tagged: str, n: str) -> None:
    repo = tagged
    assert_error(client.request("GET", f"/v2/{repo}/tags/list", params={"n": n}), 400)


@pytest.mark.parametrize("last", ["\x00", "~~~", "x" * 5000, "é", "a%2Fb"])
def test_tags_list_odd_last_is_not_an_error(client: Oci, tagged: str, last: str) -> None:
    repo = tagged
    response = client.request("GET", f"/v2/{repo}/tags/list", params={"last": last})
    assert response.status_code == 200
    assert response.json()["tags"] == [tag for tag in sorted(TAGS) if tag > last]


def test_tags_list_of_an_untagged_repository_is_empty(client: Oci) -> None:
    repo = repo_name()
    push_image(client, repo, reference=None)
    response = client.request("GET", f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": repo, "tags": []}


def test_tags_list_of_an_unknown_repository_is_name_unknown(client: Oci) -> None:
    assert_error(client.request("GET", f"/v2/{repo_name()}/tags/list"), 404, "NAME_UNKNOWN")


def test_catalog_lists_repositories_in_order(client: Oci) -> None:
    prefix = f"cat{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}/c", f"{prefix}/a", f"{prefix}/b"]
    for name in names:
        push_blob(client, name, os.urandom(16))
    response = client.request("GET", "/v2/_catalog")
    assert response.status_code == 200
    repositories = response.json()["repositories"]
    assert repositories == sorted(repositories)
    assert set(names) <= set(repositories)


def test_catalog_paging(client: Oci) -> None:
    prefix = f"cat{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}/a", f"{prefix}/b", f"{prefix}/c"]
    for name in names:
        push_blob(client, name, os.urandom(16))
    response = client.request("GET", "/v2/_catalog", params={"n": 2, "last": prefix})
    assert response.status_code == 200
    assert response.json() == {"repositories": names[:2]}
    link = next_link(response)
    assert link is not None
    following = client.request("GET", link)
    assert following.json()["repositories"][0] == names[2]


def test_catalog_n_zero_is_empty_without_link(client: Oci) -> None:
    push_blob(client, repo_name(), os.urandom(16))
    response = client.request("GET", "/v2/_catalog", params={"n": 0})
    assert response.status_code == 200
    assert response.json() == {"repositories": []}
    assert "link" not in response.headers


def test_catalog_huge_n_is_not_an_error(client: Oci) -> None:
    response = client.request("GET", "/v2/_catalog", params={"n": "99999999999999999999999999"})
    assert response.status_code == 200


@pytest.fixture(scope="module")
def referred(client: Oci) -> tuple[str, Image, dict[str, Blob]]:
    """An image with four referrers: two artifacts with an ``artifactType``, an image manifest
    without one (its config type stands in) and an index without one (none reported).
    Read-only, so shared by the module."""
    repo = repo_name()
    subject = push_image(client, repo)
    config = Blob("application/vnd.example.config.v1+json", b'{"c": 1}')
    refs = {
        "sbom": artifact_blob(subject.manifest, SBOM, {"org.example.sbom.format": "json"}),
        "signature": artifact_blob(subject.manifest, SIGNATURE, {"org.example.signature.fingerprint": "ab"}),
        "configured": artifact_blob(subject.manifest, None, {"k": "v"}, config=config),
        "index": index_blob(
            OCI_INDEX, [], subject=subject.manifest.descriptor(), annotations={"org.example.kind": "index"}
        ),
    }
    push_blob(client, repo, config.data)
    for ref in refs.values():
        push_artifact(client, repo, ref)
    return repo, subject, refs


def test_referrers_lists_every_referrer_as_an_index(
    client: Oci, referred: tuple[str, Image, dict[str, Blob]]
) -> None:
    repo, subject, refs = referred
    response = client.request("GET", f"/v2/{repo}/referrers/{subject.manifest.digest}")
    assert response.status_code == 200
    assert response.headers["content-type"] == OCI_INDEX
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    by_digest = {entry["digest"]: entry for entry in body["manifests"]}
    assert set(by_digest) == {ref.digest for ref in refs.values()}
    for ref in refs.values():
        assert by_digest[ref.digest]["mediaType"] == ref.media_type
        assert by_digest[ref.digest]["size"] == len(ref.data)


def test_referrers_carry_the_artifact_type(client: Oci, referred: tuple[str, Image, dict[str, Blob]]) -> None:
    repo, subject, refs = referred
    response = client.request("GET", f"/v2/{repo}/referrers/{subject.manifest.digest}")
    by_digest = {entry["digest"]: entry for entry in response.json()["manifests"]}
    assert by_digest[refs["sbom"].digest]["artifactType"] == SBOM
    assert by_digest[refs["signature"].digest]["artifactType"] == SIGNATURE
    assert by_digest[refs["configured"].digest]["artifactType"] == "application/vnd.example.config.v1+json"
    assert "artifactType" not in by_digest[refs["index"].digest]


def test_referrers_carry_the_annotations(client: Oci, referred: tuple[str, Image, dict[str, Blob]]) -> None:
    repo, subject, refs = referred
    response = client.request("GET", f"/v2/{repo}/referrers/{subject.manifest.digest}")
    by_digest = {entry["digest"]: entry for entry in response.json()["manifests"]}
    for ref in refs.values():
        assert by_digest[ref.digest]["annotations"] == json.loads(ref.data)["annotations"]


def test_referrers_filtered_by_artifact_type(
    client: Oci, referred: tuple[str, Image, dict[str, Blob]]
) -> None:
    repo, subject, refs = referred
    response = client.request(
        "GET", f"/v2/{repo}/referrers/{subject.manifest.digest}", params={"artifactType": SBOM}
    )
    assert response.status_code == 200
    assert response.headers["oci-filters-applied"] == "artifactType"
    assert [entry["digest"] for entry in response.json()["manifests"]] == [refs["sbom"].digest]


def test_referrers_unfiltered_has_no_filters_applied_header(
    client: Oci, referred: tuple[str, Image, dict[str, Blob]]
) -> None:
    repo, subject, _ = referred
    response = client.request("GET", f"/v2/{repo}/referrers/{subject.manifest.digest}")
    assert "oci-filters-applied" not in response.headers


def test_referrers_without_referrers_is_an_empty_index(client: Oci) -> None:
    repo = repo_name()
    image = push_image(client, repo)
    response = client.request("GET", f"/v2/{repo}/referrers/{image.manifest.digest}")
    assert response.status_code == 200
    assert response.headers["content-type"] == OCI_INDEX
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_referrers_of_an_unknown_repository_is_not_404(client: Oci) -> None:
    response = client.request("GET", f"/v2/{repo_name()}/referrers/{sha256(b'x')}")
    assert response.status_code == 200
    assert response.json()["manifests"] == []


@pytest.mark.parametrize("digest", ["sha256:xyz", "latest", "sha256:" + "A" * 64, "md5:0000"])
def test_referrers_of_an_invalid_digest_is_400(client: Oci, digest: str) -> None:
    response = client.request("GET", f"/v2/{repo_name()}/referrers/{digest}")
    assert_error(response, 400)


def test_referrers_are_scoped_to_the_repository(client: Oci) -> None:
    repo, other = repo_name(), repo_name()
    subject = push_image(client, repo)
    push_image(client, other, subject)
    push_artifact(client, other, artifact_blob(subject.manifest, SBOM))
    response = client.request("GET", f"/v2/{repo}/referrers/{subject.manifest.digest}")
    assert response.json()["manifests"] == []


def test_deleted_referrer_is_no_longer_listed(client: Oci) -> None:
    repo = repo_name()
    subject = push_image(client, repo)
    artifact = artifact_blob(subject.manifest, SBOM)
    push_artifact(client, repo, artifact)
    assert client.request("DELETE", f"/v2/{repo}/manifests/{artifact.digest}").status_code == 202
    response = client.request("GET", f"/v2/{repo}/referrers/{subject.manifest.digest}")
    assert response.json()["manifests"] == []


# == content management ==========================================================================


def test_delete_manifest_by_digest(client: Oci) -> None:
    repo = repo_name()
    image = push_image(client, repo)
    response = client.request("DELETE", f"/v2/{repo}/manifests/{image.manifest.digest}")
    assert response.status_code == 202
    assert_error(
        client.request("GET", f"/v2/{repo}/manifests/{image.manifest.digest}"), 404, "MANIFEST_UNKNOWN"
    )


def test_deleting_a_manifest_removes_its_tags(client: Oci) -> None:
    repo = repo_name()
    image = push_image(client, repo, reference="one")
    push_manifest(client, repo, "two", image.manifest)
    client.request("DELETE", f"/v2/{repo}/manifests/{image.manifest.digest}")
    assert_error(client.request("GET", f"/v2/{repo}/manifests/one"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.request("GET", f"/v2/{repo}/manifests/two"), 404, "MANIFEST_UNKNOWN")
    assert client.request("GET", f"/v2/{repo}/tags/list").json()["tags"] == []


def test_delete_tag_removes_only_the_tag(client: Oci) -> None:
    repo = repo_name()
    image = push_image(client, repo, reference="one")
    push_manifest(client, repo, "two", image.manifest)
    response = client.request("DELETE", f"/v2/{repo}/manifests/one")
    assert response.status_code == 202
    assert_error(client.request("GET", f"/v2/{repo}/manifests/one"), 404, "MANIFEST_UNKNOWN")
    assert client.request("GET", f"/v2/{repo}/manifests/two").status_code == 200
    assert client.request("GET", f"/v2/{repo}/manifests/{image.manifest.digest}").status_code == 200
    assert client.request("GET", f"/v2/{repo}/tags/list").json()["tags"] == ["two"]


def test_delete_blob(client: Oci) -> None:
    repo = repo_name()
    digest = push_blob(client, repo, os.urandom(500))
    response = client.request("DELETE", f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 202
    assert_error(client.request("GET", f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.request("HEAD", f"/v2/{repo}/blobs/{digest}").status_code == 404


def test_deleting_a_blob_leaves_other_repositories_alone(client: Oci) -> None:
    repo, other = repo_name(), repo_name()
    data = os.urandom(500)
    digest = push_blob(client, repo, data)
    push_blob(client, other, data)
    client.request("DELETE", f"/v2/{repo}/blobs/{digest}")
    assert client.request("GET", f"/v2/{other}/blobs/{digest}").content == data


def test_delete_unknown_manifest_is_manifest_unknown(client: Oci) -> None:
    repo = repo_name()
    push_image(client, repo)
    response = client.request("DELETE", f"/v2/{repo}/manifests/{sha256(os.urandom(8))}")
    assert_error(response, 404, "MANIFEST_UNKNOWN")


def test_delete_unknown_tag_is_404(client: Oci) -> None:
    repo = repo_name()
    push_image(client, repo)
    assert_error(client.request("DELETE", f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")


def test_delete_manifest_of_an_unknown_repository_is_404(client: Oci) -> None:
    response = client.request("DELETE", f"/v2/{repo_name()}/manifests/{sha256(os.urandom(8))}")
    assert_error(response, 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def test_delete_unknown_blob_is_blob_unknown(client: Oci) -> None:
    repo = repo_name()
    push_image(client, repo)
    assert_error(client.request("DELETE", f"/v2/{repo}/blobs/{sha256(os.urandom(8))}"), 404, "BLOB_UNKNOWN")


def test_deleted_manifest_can_be_pushed_again(client: Oci) -> None:
    repo = repo_name()
    image = push_image(client, repo)
    client.request("DELETE", f"/v2/{repo}/manifests/{image.manifest.digest}")
    assert put_manifest(client, repo, "latest", image.manifest).status_code == 201
    assert client.request("GET", f"/v2/{repo}/manifests/latest").content == image.manifest.data


# == names and bad input ==========================================================================


INVALID_NAMES = [
    "Upper/case",
    "-lead",
    "trail-",
    "a..b",
    "a_.b",
    "a b",
    "é",
    ".hidden",
    "x" * 256,
    "a/" + "b" * 254,
]


@pytest.mark.parametrize("name", INVALID_NAMES, ids=range(len(INVALID_NAMES)))
def test_invalid_repository_name_is_name_invalid(client: Oci, name: str) -> None:
    assert_error(client.request("GET", f"/v2/{name}/tags/list"), 400, "NAME_INVALID")


@pytest.mark.parametrize(
    "path",
    [
        "/v2/../x/tags/list",
        "/v2/a/../../b/manifests/latest",
        "/v2/%2e%2e/x/tags/list",
        "/v2/a/%2e%2e/b/blobs/uploads/",
        "/v2/..%2fx/manifests/latest",
        "/v2/./x/tags/list",
    ],
)
def test_path_traversal_names_are_refused(client: Oci, path: str) -> None:
    method = "POST" if path.endswith("uploads/") else "GET"
    response = client.raw_path(method, path)
    # The HTTP server resolves literal dot segments (/v2/../x is /x: no route); encoded ones
    # reach the registry as part of the name.
    assert response.status_code in (400, 404), response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        assert_error(response, response.status_code, "NAME_INVALID", "NAME_UNKNOWN")


def test_name_of_255_characters_is_valid(client: Oci) -> None:
    name = "a/" + "b" * 253
    assert len(name) == 255
    assert_error(client.request("GET", f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN")


def test_invalid_name_on_push_is_name_invalid(client: Oci) -> None:
    assert_error(client.request("POST", "/v2/Bad/blobs/uploads/"), 400, "NAME_INVALID")


@pytest.mark.parametrize(
    "digest",
    ["sha256:xyz", "sha256:", "notadigest", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + "A" * 64],
)
def test_garbage_blob_digest_is_400(client: Oci, digest: str) -> None:
    assert_error(client.request("GET", f"/v2/{repo_name()}/blobs/{digest}"), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", ["sha256:xyz", "sha512:abc", "foo:bar"])
def test_garbage_manifest_digest_is_400(client: Oci, digest: str) -> None:
    assert_error(client.request("GET", f"/v2/{repo_name()}/manifests/{digest}"), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("tag", ["-dash", ".dot", "x" * 129])
def test_invalid_tag_is_refused(client: Oci, tag: str) -> None:
    response = client.request("GET", f"/v2/{repo_name()}/manifests/{tag}")
    assert response.status_code in (400, 404)
    assert_error(response, response.status_code, "TAG_INVALID", "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def test_invalid_tag_on_push_is_refused(client: Oci) -> None:
    repo = repo_name()
    image = small_image()
    for blob in image.blobs:
        push_blob(client, repo, blob.data)
    assert_error(put_manifest(client, repo, "-bad", image.manifest), 400)


@pytest.mark.parametrize(
    "content_range",
    ["abc", "5-2", "bytes=0-", "-1-5", "0--1", "0-", "99999999999999999999999-99999999999999999999999"],
)
def test_bad_content_range_is_refused(client: Oci, content_range: str) -> None:
    location = start_upload(client, repo_name())
    response = client.request(
        "PATCH", location, content=b"abc", headers={**OCTETS, "Content-Range": content_range}
    )
    assert response.status_code in (400, 416), response.text


@pytest.mark.parametrize("value", ["bytes=abc", "bytes=5-2", "items=0-1", "bytes=0-1,3-4", "bytes=--1"])
def test_odd_range_headers_are_not_errors(pulled: tuple[Oci, str, Image], value: str) -> None:
    reader, repo, image = pulled
    response = reader.request("GET", f"/v2/{repo}/blobs/{image.layers[0].digest}", headers={"Range": value})
    assert response.status_code in (200, 206, 416)


def test_garbage_mount_digest_is_not_an_error(client: Oci) -> None:
    response = client.request("POST", with_query(f"/v2/{repo_name()}/blobs/uploads/", mount="garbage"))
    assert response.status_code in (202, 400)


def test_garbage_upload_id_is_upload_unknown(client: Oci) -> None:
    for upload_id in ("not-a-uuid", "..", "%2e%2e", "x" * 300):
        response = client.request("GET", f"/v2/{repo_name()}/blobs/uploads/{upload_id}")
        assert response.status_code in (400, 404), response.text


def test_unsupported_method_is_not_an_error(client: Oci) -> None:
    response = client.request("PATCH", f"/v2/{repo_name()}/manifests/latest", content=b"{}")
    assert response.status_code in (400, 404, 405)
