"""``moorage image push|pull|inspect`` against a live server and a real registry, run as users
run it (``python -m moorage image ... --home <server home>``). Images come from local files
(busybox-static, tests/images.py); results are cross-checked with skopeo and the registry's own
request log."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pty
import re
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import RawArm, fetch_token
from tests.api.registry_support import (
    admin_password,
    cert_dir,
    create_registry,
    skopeo,
    unique_name,
    update_registry,
)
from tests.images import (
    BUSYBOX,
    OCI_INDEX,
    OCI_MANIFEST,
    busybox_image,
    index_of,
    sha256,
    tar_layer,
    write_layout,
)
from tests.server import RunningServer

ANSI = re.compile(r"\x1b\[")


# -- fixtures and helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRegistry:
    name: str
    id: str
    login: str
    admin_password: str
    group: str

    def ref(self, repository: str, tag: str = "v1") -> str:
        return f"{self.login}/{repository}:{tag}"


@pytest.fixture(scope="module")
def image_arm(server: RunningServer) -> Iterator[RawArm]:
    arm = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
    with arm.http:
        yield arm


@pytest.fixture(scope="module")
def image_registry(image_arm: RawArm) -> Iterator[ImageRegistry]:
    """A Premium registry with the admin user, in a resource group of this module's own."""
    group = f"rg-img-{uuid.uuid4().hex[:8]}"
    group_path = f"/subscriptions/{image_arm.server.subscription_id}/resourceGroups/{group}"
    created = image_arm.request("PUT", group_path, json={"location": "westus"})
    assert created.status_code in (200, 201), created.text
    registry = create_registry(image_arm, group, unique_name("img"), adminUserEnabled=True)
    password = admin_password(image_arm, registry)
    yield ImageRegistry(registry.name, registry.id, registry.login_server, password, group)
    image_arm.request("DELETE", group_path)


@pytest.fixture(scope="module")
def image_certs(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(cert_dir(server.ca_path, tmp_path_factory.mktemp("image-certs")))


def moorage(
    server: RunningServer, *args: str, home: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moorage", "image", *args, "--home", str(home or server.home)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **(env or {})},
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result).stdout)


def admin_args(registry: ImageRegistry) -> list[str]:
    return ["--username", registry.name, "--password", registry.admin_password]


def rootfs(where: Path) -> Path:
    """A small root file system: busybox, /bin/sh, an executable script, a private file."""
    (where / "bin").mkdir(parents=True)
    (where / "bin" / "busybox").write_bytes(BUSYBOX.read_bytes())
    (where / "bin" / "busybox").chmod(0o755)
    (where / "bin" / "sh").symlink_to("busybox")
    (where / "app").mkdir()
    (where / "app" / "run.sh").write_text("#!/bin/sh\necho hello\n")
    (where / "app" / "run.sh").chmod(0o750)
    (where / "app" / "secret.txt").write_text("x")
    (where / "app" / "secret.txt").chmod(0o600)
    (where / "etc").mkdir()
    (where / "etc" / "shell").symlink_to("/bin/sh")  # absolute: a path of the image itself
    return where


def layout_blob(layout: Path, digest: str) -> bytes:
    algorithm, _, encoded = digest.partition(":")
    return (layout / "blobs" / algorithm / encoded).read_bytes()


def layout_entries(layout: Path) -> list[dict[str, Any]]:
    return list(json.loads((layout / "index.json").read_text())["manifests"])


def registry_requests(server: RunningServer, path_part: str) -> list[tuple[str, str]]:
    """``(method, path)`` of every logged request whose path contains ``path_part``."""
    found = []
    for line in (server.home / "logs" / "moorage.log").read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "request" and path_part in str(record.get("path", "")):
            found.append((str(record["method"]), str(record["path"])))
    return found


def docker_archive(path: Path, images: list[tuple[list[str], list[bytes], list[str]]]) -> Path:
    """A tarball shaped as ``docker save`` (before 25) writes it: per image a ``<hex>.json``
    config and ``<id>/layer.tar`` layers (uncompressed; a layer seen before is a symlink to its
    first copy), and ``manifest.json`` listing them."""
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    first_copy: dict[str, str] = {}
    manifest = []
    for position, (tags, layers, cmd) in enumerate(images):
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
            }
        ).encode()
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        files[config_name] = config
        layer_names = []
        for layer in layers:
            digest = sha256(layer)
            name = f"{digest[7:31]}{position}/layer.tar"
            if digest in first_copy:
                links[name] = f"../{first_copy[digest]}"
            else:
                first_copy[digest] = name
                files[name] = layer
            layer_names.append(name)
        manifest.append({"Config": config_name, "RepoTags": tags, "Layers": layer_names})
    files["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


# -- directory builds -------------------------------------------------------------------------------


def test_push_from_a_directory_then_pull_with_skopeo(
    server: RunningServer, image_registry: ImageRegistry, image_certs: str, tmp_path: Path
) -> None:
    root = rootfs(tmp_path / "root")
    ref = image_registry.ref("dir/app")
    pushed = as_json(
        moorage(
            server,
            "push",
            str(root),
            ref,
            "--entrypoint",
            "/app/run.sh",
            "--cmd",
            '["--verbose", "two words"]',
            "--env",
            "GREETING=hello world",
            "--workdir",
            "/app",
            "--port",
            "8080",
            "--port",
            "53/udp",
            "--output",
            "json",
        )
    )
    assert pushed["reference"] == ref
    assert pushed["mediaType"] == OCI_MANIFEST
    assert len(pushed["blobsUploaded"]) == 2

    out = tmp_path / "pulled"
    copied = skopeo(
        "copy",
        "--src-cert-dir",
        image_certs,
        "--src-creds",
        f"{image_registry.name}:{image_registry.admin_password}",
        f"docker://{ref}",
        f"oci:{out}:v1",
    )
    assert copied.returncode == 0, copied.stderr
    (entry,) = layout_entries(out)
    assert entry["digest"] == pushed["digest"]
    manifest = json.loads(layout_blob(out, entry["digest"]))
    config = json.loads(layout_blob(out, manifest["config"]["digest"]))
    assert config["os"] == "linux"
    assert config["architecture"] == "amd64"
    assert config["config"]["Entrypoint"] == ["/app/run.sh"]
    assert config["config"]["Cmd"] == ["--verbose", "two words"]
    assert "GREETING=hello world" in config["config"]["Env"]
    assert any(e.startswith("PATH=") for e in config["config"]["Env"])
    assert config["config"]["WorkingDir"] == "/app"
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}

    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    raw = gzip.decompress(layout_blob(out, layer["digest"]))
    assert sha256(raw) == config["rootfs"]["diff_ids"][0]
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == [
        "app",
        "app/run.sh",
        "app/secret.txt",
        "bin",
        "bin/busybox",
        "bin/sh",
        "etc",
        "etc/shell",
    ]
    by_name = {m.name: m for m in members}
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and not m.uname for m in members)
    assert by_name["app/run.sh"].mode == 0o750
    assert by_name["app/secret.txt"].mode == 0o600
    assert by_name["bin/busybox"].mode == 0o755
    assert by_name["bin/sh"].issym()
    assert by_name["bin/sh"].linkname == "busybox"
    assert by_name["etc/shell"].issym()
    assert by_name["etc/shell"].linkname == "/bin/sh"


def test_directory_builds_are_deterministic(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    root = rootfs(tmp_path / "root")
    first = as_json(moorage(server, "push", str(root), image_registry.ref("dir/same", "a"), "-o", "json"))
    os.utime(root / "app" / "run.sh", (1_700_000_000, 1_700_000_000))  # mtimes do not count
    second = as_json(moorage(server, "push", str(root), image_registry.ref("dir/same", "b"), "-o", "json"))
    assert second["digest"] == first["digest"]
    assert second["blobsUploaded"] == []
    assert sorted(second["blobsExisting"]) == sorted(first["blobsUploaded"])


def test_symlink_escaping_the_directory_is_refused(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    root = rootfs(tmp_path / "root")
    (tmp_path / "host-secret").write_text("do not ship")
    (root / "app" / "leak").symlink_to("../../host-secret")
    ref = image_registry.ref("dir/escape")
    result = moorage(server, "push", str(root), ref)
    assert result.returncode == 1
    assert "ERROR: (PathEscapesSource)" in result.stderr
    assert "app/leak" in result.stderr
    assert registry_requests(server, "/v2/dir/escape/") == []  # refused before anything was sent


def test_an_absolute_entrypoint_missing_from_the_directory_is_refused(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    root = rootfs(tmp_path / "root")
    result = moorage(
        server, "push", str(root), image_registry.ref("dir/noentry"), "--entrypoint", "/app/nope"
    )
    assert result.returncode == 1
    assert "ERROR: (InvalidImageSource) the entrypoint '/app/nope' is not in" in result.stderr


# -- OCI layouts and tarballs -----------------------------------------------------------------------


def test_push_an_oci_layout_keeps_its_digests(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image({"etc/motd": b"layout\n"}, cmd=["/bin/sh", "-c", "cat /etc/motd"])
    layout = write_layout(tmp_path / "layout", "v1", image)
    ref = image_registry.ref("layout/app")
    pushed = as_json(moorage(server, "push", f"{layout}:v1", ref, "-o", "json"))
    assert pushed["digest"] == image.manifest.digest
    assert sorted(pushed["blobsUploaded"]) == sorted(b.digest for b in image.blobs)

    out = tmp_path / "out"
    pulled = as_json(moorage(server, "pull", ref, str(out), "-o", "json"))
    assert pulled["manifestDigest"] == image.manifest.digest
    (entry,) = layout_entries(out)
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    for blob in (image.manifest, *image.blobs):
        assert layout_blob(out, blob.digest) == blob.data


def test_a_layout_with_several_images_needs_a_ref(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image()
    layout = write_layout(tmp_path / "layout", "v1", image)
    index = json.loads((layout / "index.json").read_text())
    second = dict(index["manifests"][0], annotations={"org.opencontainers.image.ref.name": "v2"})
    index["manifests"].append(second)
    (layout / "index.json").write_text(json.dumps(index))
    result = moorage(server, "push", str(layout), image_registry.ref("layout/two"))
    assert result.returncode == 1
    assert "(InvalidImageSource)" in result.stderr
    assert "v1, v2" in result.stderr
    missing = moorage(server, "push", f"{layout}:v3", image_registry.ref("layout/two"))
    assert missing.returncode == 1
    assert "has no image named 'v3'" in missing.stderr
    assert ok(moorage(server, "push", f"{layout}:v2", image_registry.ref("layout/two")))


def test_a_corrupt_layout_blob_never_completes_an_upload(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image({"etc/motd": b"corrupt me\n"})
    layout = write_layout(tmp_path / "layout", "v1", image)
    layer = image.layers[-1]
    path = layout / "blobs" / "sha256" / layer.digest.split(":")[1]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))
    ref = image_registry.ref("layout/corrupt")
    result = moorage(server, "push", f"{layout}:v1", ref)
    assert result.returncode == 1
    assert "ERROR: (DIGEST_INVALID)" in result.stderr
    assert "corrupt" in result.stderr
    assert not any(
        m == "PUT" and "/manifests/" in p for m, p in registry_requests(server, "/v2/layout/corrupt/")
    )


def test_push_a_layout_packed_as_a_tarball(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image({"etc/motd": b"tarred layout\n"})
    layout = write_layout(tmp_path / "layout", "v1", image)
    for name, mode in (("layout.tar", "w"), ("layout.tar.gz", "w:gz")):
        archive = tmp_path / name
        with tarfile.open(archive, mode) as tar:  # type: ignore[call-overload]
            for item in sorted(layout.rglob("*")):
                tar.add(item, arcname=str(item.relative_to(layout)), recursive=False)
        pushed = as_json(
            moorage(
                server,
                "push",
                str(archive),
                image_registry.ref("tarball/layout", name.replace(".", "-")),
                "-o",
                "json",
            )
        )
        assert pushed["digest"] == image.manifest.digest


def test_push_a_docker_archive(server: RunningServer, image_registry: ImageRegistry, tmp_path: Path) -> None:
    base = tar_layer(
        {"bin/busybox": BUSYBOX.read_bytes()}, modes={"bin/busybox": 0o755}, symlinks={"bin/sh": "busybox"}
    )
    extra = tar_layer({"srv/index.html": b"<h1>docker-archive</h1>\n"})
    archive = docker_archive(
        tmp_path / "saved.tar",
        [
            (["web:1.0"], [base, extra], ["/bin/sh", "-c", "cat /srv/index.html"]),
            (["other/tool:latest"], [base], ["/bin/sh"]),
        ],
    )
    ambiguous = moorage(server, "push", str(archive), image_registry.ref("archive/web"))
    assert ambiguous.returncode == 1
    assert "web:1.0, other/tool:latest" in ambiguous.stderr

    ref = image_registry.ref("archive/web", "1.0")
    pushed = as_json(moorage(server, "push", f"{archive}:web:1.0", ref, "-o", "json"))
    shown = as_json(moorage(server, "inspect", ref, "-o", "json"))
    assert shown["digest"] == pushed["digest"]
    assert shown["config"]["cmd"] == ["/bin/sh", "-c", "cat /srv/index.html"]
    assert [layer["mediaType"] for layer in shown["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ] * 2

    out = tmp_path / "out"
    ok(moorage(server, "pull", ref, str(out)))
    manifest = json.loads(layout_blob(out, shown["manifest"]["digest"]))
    config_bytes = layout_blob(out, manifest["config"]["digest"])
    with tarfile.open(archive) as tar:
        saved = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        original_config = tar.extractfile(saved[0]["Config"]).read()  # type: ignore[union-attr]
    assert config_bytes == original_config  # kept byte for byte
    layers = [gzip.decompress(layout_blob(out, layer["digest"])) for layer in manifest["layers"]]
    assert layers == [base, extra]

    by_repo_name = as_json(
        moorage(
            server,
            "push",
            f"{archive}:other/tool:latest",
            image_registry.ref("archive/web", "tool"),
            "-o",
            "json",
        )
    )
    assert len(by_repo_name["blobsExisting"]) == 1  # the shared base layer is in the repository


# -- multi-platform -------------------------------------------------------------------------------


def test_multi_platform_index_push_and_pull_by_platform(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    amd = busybox_image({"etc/arch": b"amd64\n"})
    arm = busybox_image({"etc/arch": b"arm64\n"}, architecture="arm64")
    index = index_of({"amd64": amd, "arm64/v8": arm})
    layout = write_layout(tmp_path / "layout", "multi", index=index, images=[amd, arm])
    ref = image_registry.ref("multi/app", "multi")
    pushed = as_json(moorage(server, "push", str(layout), ref, "-o", "json"))
    assert pushed["digest"] == index.digest
    assert pushed["mediaType"] == OCI_INDEX
    assert pushed["manifests"] == [amd.manifest.digest, arm.manifest.digest, index.digest]

    shown = as_json(moorage(server, "inspect", ref, "-o", "json", "--platform", "linux/arm64"))
    assert shown["digest"] == index.digest
    assert [(p["platform"], p["digest"]) for p in shown["platforms"]] == [
        ("linux/amd64", amd.manifest.digest),
        ("linux/arm64/v8", arm.manifest.digest),
    ]
    assert shown["manifest"]["digest"] == arm.manifest.digest
    assert shown["config"]["architecture"] == "arm64"

    out = tmp_path / "out"
    pulled_arm = as_json(
        moorage(server, "pull", ref, str(out), "--platform", "linux/arm64", "--name", "arm", "-o", "json")
    )
    assert pulled_arm["manifestDigest"] == arm.manifest.digest
    assert pulled_arm["platform"] == "linux/arm64/v8"
    pulled_amd = as_json(moorage(server, "pull", ref, str(out), "--name", "amd", "-o", "json"))
    assert pulled_amd["manifestDigest"] == amd.manifest.digest
    assert pulled_amd["blobsExisting"] == [amd.layers[0].digest]  # busybox is shared: not fetched twice
    named = {e["annotations"]["org.opencontainers.image.ref.name"]: e["digest"] for e in layout_entries(out)}
    assert named == {"arm": arm.manifest.digest, "amd": amd.manifest.digest}
    seen = skopeo("inspect", f"oci:{out}:arm")  # the layout is one other tools read
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout)["Architecture"] == "arm64"

    missing = moorage(server, "pull", ref, str(tmp_path / "none"), "--platform", "linux/s390x")
    assert missing.returncode == 1
    assert "ERROR: (NoMatchingPlatform)" in missing.stderr
    assert "linux/amd64, linux/arm64/v8" in missing.stderr


# -- inspect ----------------------------------------------------------------------------------------


def test_inspect_json_and_table(server: RunningServer, image_registry: ImageRegistry, tmp_path: Path) -> None:
    root = rootfs(tmp_path / "root")
    ref = image_registry.ref("inspect/app")
    pushed = as_json(
        moorage(
            server,
            "push",
            str(root),
            ref,
            "--entrypoint",
            "/bin/sh",
            "--cmd",
            "-c 'echo hi'",
            "--port",
            "80",
            "-o",
            "json",
        )
    )
    shown = as_json(moorage(server, "inspect", ref, "-o", "json"))
    assert shown["reference"] == ref
    assert shown["digest"] == pushed["digest"]
    assert shown["mediaType"] == OCI_MANIFEST
    assert shown["platforms"] == [
        {
            "platform": "linux/amd64",
            "digest": pushed["digest"],
            "mediaType": OCI_MANIFEST,
            "size": shown["manifest"]["size"],
        }
    ]
    config = shown["config"]
    assert config["entrypoint"] == ["/bin/sh"]
    assert config["cmd"] == ["-c", "echo hi"]
    assert config["exposedPorts"] == ["80/tcp"]
    assert config["env"][0].startswith("PATH=")
    (layer,) = shown["layers"]
    assert layer["size"] > 0
    assert shown["size"] == shown["manifest"]["size"] + config["size"] + layer["size"]

    yaml_text = ok(moorage(server, "inspect", ref, "-o", "yaml")).stdout
    assert f'digest: "{pushed["digest"]}"\n' in yaml_text
    assert pushed["digest"] in ok(moorage(server, "inspect", ref, "-o", "tsv")).stdout

    table = ok(moorage(server, "inspect", ref)).stdout
    assert f"Digest:      {pushed['digest']}" in table
    assert 'Entrypoint:  ["/bin/sh"]' in table
    assert layer["digest"] in table

    unknown = moorage(server, "inspect", image_registry.ref("inspect/app", "nope"))
    assert unknown.returncode == 1
    assert "ERROR: (MANIFEST_UNKNOWN)" in unknown.stderr


# -- credentials ------------------------------------------------------------------------------------


def test_default_identity_uses_the_token_exchange(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image({"etc/who": b"identity\n"})
    layout = write_layout(tmp_path / "layout", "v1", image)
    ok(moorage(server, "push", str(layout), image_registry.ref("auth/identity")))
    requests = registry_requests(server, "/oauth2/")
    assert ("POST", "/oauth2/exchange") in requests
    as_admin = as_json(
        moorage(
            server, "inspect", image_registry.ref("auth/identity"), *admin_args(image_registry), "-o", "json"
        )
    )
    assert as_admin["digest"] == image.manifest.digest


def test_identity_of_another_connection_follows_its_role_assignments(
    server: RunningServer, image_arm: RawArm, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    """A home whose connection.json names a principal without roles: the exchange works, the
    registry denies; with AcrPush on the registry the same command succeeds."""
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "moorage",
            "sp",
            "create",
            "--name",
            "image-pusher",
            "--home",
            str(server.home),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    principal = json.loads(created.stdout)
    home = tmp_path / "other-home"
    home.mkdir()
    connection = json.loads((server.home / "connection.json").read_text())
    connection.update(clientId=principal["appId"], clientSecret=principal["password"])
    (home / "connection.json").write_text(json.dumps(connection))
    image = busybox_image({"etc/who": b"sp\n"})
    layout = write_layout(tmp_path / "layout", "v1", image)
    ref = image_registry.ref("auth/sp")

    denied = moorage(server, "push", str(layout), ref, home=home)
    assert denied.returncode == 1
    assert re.search(r"ERROR: \((DENIED|UNAUTHORIZED)\)", denied.stderr), denied.stderr
    assert principal["password"] not in denied.stderr + denied.stdout

    sp_id = subprocess.run(
        [sys.executable, "-m", "moorage", "sp", "show", principal["appId"], "--home", str(server.home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    object_id = json.loads(sp_id.stdout)["id"]
    roles = image_arm.request(
        "GET",
        f"/subscriptions/{image_arm.server.subscription_id}/providers/Microsoft.Authorization/roleDefinitions",
        api_version="2022-04-01",
        params={"$filter": "roleName eq 'AcrPush'"},
    ).json()["value"]
    assigned = image_arm.request(
        "PUT",
        f"{image_registry.id}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
        api_version="2022-04-01",
        json={
            "properties": {
                "roleDefinitionId": roles[0]["id"],
                "principalId": object_id,
                "principalType": "ServicePrincipal",
            }
        },
    )
    assert assigned.status_code in (200, 201), assigned.text
    pushed = as_json(moorage(server, "push", str(layout), ref, "-o", "json", home=home))
    assert pushed["digest"] == image.manifest.digest
    # The same principal with --username/--password (a service principal's Basic credentials).
    as_sp = moorage(
        server,
        "inspect",
        ref,
        "--username",
        principal["appId"],
        "--password",
        principal["password"],
        "-o",
        "json",
    )
    assert json.loads(ok(as_sp).stdout)["digest"] == image.manifest.digest


def test_admin_credentials_and_a_wrong_password(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image({"etc/who": b"admin\n"})
    layout = write_layout(tmp_path / "layout", "v1", image)
    ref = image_registry.ref("auth/admin")
    pushed = as_json(moorage(server, "push", str(layout), ref, *admin_args(image_registry), "-o", "json"))
    assert pushed["digest"] == image.manifest.digest

    wrong = moorage(
        server, "push", str(layout), ref, "--username", image_registry.name, "--password", "not-the-password"
    )
    assert wrong.returncode == 1
    assert (
        f"ERROR: (UNAUTHORIZED) {image_registry.login} refused the credentials of '{image_registry.name}'"
        in wrong.stderr
    )
    assert "not-the-password" not in wrong.stderr + wrong.stdout
    assert "Traceback" not in wrong.stderr

    half = moorage(server, "inspect", ref, "--username", image_registry.name)
    assert half.returncode == 1
    assert "--username and --password go together" in half.stderr


def test_any_registry_without_a_moorage_connection(
    server: RunningServer, image_arm: RawArm, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    """Without connection.json the CLI is a plain OCI client: Basic credentials or anonymous
    tokens from the Bearer challenge, TLS trusted through the system's store only."""
    registry = create_registry(image_arm, image_registry.group, unique_name("anon"), sku="Standard")
    update_registry(image_arm, registry, anonymousPullEnabled=True, adminUserEnabled=True)
    password = admin_password(image_arm, registry)
    nowhere = tmp_path / "no-connection"
    nowhere.mkdir()
    trusted = {"SSL_CERT_FILE": server.ca_path, "SSL_CERT_DIR": str(nowhere)}
    image = busybox_image({"etc/anon": b"anonymous\n"})
    layout = write_layout(tmp_path / "layout", "v1", image)
    ref = f"{registry.login_server}/open/app:v1"

    untrusted = moorage(
        server, "inspect", ref, home=nowhere, env={"SSL_CERT_FILE": str(nowhere / "none.pem")}
    )
    assert untrusted.returncode == 1
    assert "ERROR: (TlsFailure)" in untrusted.stderr
    assert "certificate verify failed" in untrusted.stderr

    anonymous_push = moorage(server, "push", str(layout), ref, home=nowhere, env=trusted)
    assert anonymous_push.returncode == 1
    # Anonymous tokens carry pull only: the upload is denied.
    assert "ERROR: (DENIED) starting the upload of sha256:" in anonymous_push.stderr
    assert "requested access to the resource is denied" in anonymous_push.stderr

    pushed = as_json(
        moorage(
            server,
            "push",
            str(layout),
            ref,
            "-u",
            registry.name,
            "-p",
            password,
            "-o",
            "json",
            home=nowhere,
            env=trusted,
        )
    )
    assert pushed["digest"] == image.manifest.digest
    shown = as_json(moorage(server, "inspect", ref, "-o", "json", home=nowhere, env=trusted))
    assert shown["digest"] == image.manifest.digest


def test_azurecr_alias_resolves_to_the_login_server(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image({"etc/alias": b"azurecr\n"})
    layout = write_layout(tmp_path / "layout", "v1", image)
    pushed = as_json(
        moorage(server, "push", str(layout), f"{image_registry.name}.azurecr.io/alias/app:v1", "-o", "json")
    )
    assert pushed["reference"] == image_registry.ref("alias/app")
    shown = as_json(
        moorage(server, "inspect", f"{image_registry.name.upper()}.azurecr.io/alias/app:v1", "-o", "json")
    )
    assert shown["digest"] == image.manifest.digest


# -- transfers ------------------------------------------------------------------------------------


def test_big_blobs_are_uploaded_in_chunks(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image({"etc/chunks": b"c" * 1000})
    layout = write_layout(tmp_path / "layout", "v1", image)
    ref = image_registry.ref("transfer/chunked")
    pushed = as_json(moorage(server, "push", str(layout), ref, "--chunk-size", "256k", "-o", "json"))
    assert pushed["digest"] == image.manifest.digest
    patches = [p for m, p in registry_requests(server, "/v2/transfer/chunked/blobs/uploads/") if m == "PATCH"]
    biggest = max(len(b.data) for b in image.layers)
    assert len(patches) >= -(-biggest // (256 * 1024))
    out = tmp_path / "out"
    ok(moorage(server, "pull", ref, str(out)))
    for blob in image.blobs:
        assert layout_blob(out, blob.digest) == blob.data


def test_progress_without_a_terminal_is_line_based(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image({"etc/progress": b"lines\n"})
    layout = write_layout(tmp_path / "layout", "v1", image)
    result = ok(moorage(server, "push", str(layout), image_registry.ref("transfer/lines")))
    assert not ANSI.search(result.stderr)
    assert "\r" not in result.stderr
    lines = result.stderr.splitlines()
    for blob in image.layers:
        short = blob.digest[:19]
        assert f"layer {short}: uploading" in "\n".join(lines)
        assert f"layer {short}: done" in lines
    assert f"config {image.config.digest[:19]}: done" in lines
    assert result.stdout.strip() == f"{image_registry.ref('transfer/lines')}@{image.manifest.digest}"

    pulled = ok(moorage(server, "pull", image_registry.ref("transfer/lines"), str(tmp_path / "out")))
    assert f"layer {image.layers[0].digest[:19]}: done" in pulled.stderr.splitlines()
    assert not ANSI.search(pulled.stderr)


def test_progress_on_a_terminal_draws_bars(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image({"etc/progress": b"bars\n"})
    layout = write_layout(tmp_path / "layout", "v1", image)
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "moorage",
                "image",
                "push",
                str(layout),
                image_registry.ref("transfer/bars"),
                "--home",
                str(server.home),
            ],
            stdout=subprocess.PIPE,
            stderr=follower,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
        )
        os.close(follower)
        follower = -1
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is done
                break
            if not chunk:
                break
            screen += chunk
        stdout, _ = process.communicate(timeout=120)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    text = screen.decode(errors="replace")
    assert process.returncode == 0, text
    assert ANSI.search(text)  # a live display, not plain lines
    assert "━" in text  # rich's bar
    assert image.manifest.digest in stdout.decode()


def test_a_single_platform_image_and_an_explicit_platform(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    image = busybox_image({"etc/single": b"amd64 only\n"})
    ref = image_registry.ref("multi/single")
    ok(moorage(server, "push", str(write_layout(tmp_path / "layout", "v1", image)), ref))
    assert as_json(moorage(server, "inspect", ref, "-o", "json"))["manifest"]["platform"] == "linux/amd64"
    other = moorage(server, "pull", ref, str(tmp_path / "out"), "--platform", "linux/arm64")
    assert other.returncode == 1
    assert "ERROR: (NoMatchingPlatform) the image is for linux/amd64, not linux/arm64" in other.stderr
    assert not (tmp_path / "out").exists()


def test_build_options_are_refused_for_layouts(
    server: RunningServer, image_registry: ImageRegistry, tmp_path: Path
) -> None:
    layout = write_layout(tmp_path / "layout", "v1", busybox_image())
    result = moorage(
        server, "push", str(layout), image_registry.ref("layout/options"), "--entrypoint", "/bin/sh"
    )
    assert result.returncode == 1
    assert "apply only when building from a plain directory, not to an OCI layout" in result.stderr


@pytest.mark.parametrize("command", ["push", "pull", "inspect"])
def test_help(server: RunningServer, command: str) -> None:
    result = ok(moorage(server, command, "--help"))
    assert "Usage:" in result.stdout
