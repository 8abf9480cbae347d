"""The runc backend's pure parts (no root needed): k8s-file log parsing, the OCI config, rlimit
clamping, and user resolution against an untrusted rootfs."""

from __future__ import annotations

import resource
from datetime import UTC, datetime
from pathlib import Path

import pytest

from moorage.core.errors import InvalidArgument
from moorage.instances.runtime.base import ContainerSpec, Mount, Resources, VolumeMount
from moorage.instances.runtime.runc.bundle import SandboxFiles, clamp_rlimits, oci_config
from moorage.instances.runtime.runc.logs import parse_k8s_file
from moorage.instances.runtime.specs import image_process
from moorage.instances.runtime.users import InvalidUser, ResolvedUser, read_in_root, resolve_user

PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = b"root:x:0:\nwheel:x:10:app\nstaff:x:50:app,other\napp:x:1000:\n"


def test_k8s_file_records_become_lines_and_partials_are_joined() -> None:
    log = (
        b"2026-11-27T14:00:37.001643444+00:00 stdout F hello\n"
        b"2026-11-27T14:00:37.100000000+00:00 stdout P part-\n"
        b"2026-11-27T14:00:37.200000000+00:00 stderr F oops\n"
        b"2026-11-27T14:00:37.300000000+00:00 stdout F ial\n"
        b"2026-11-27T14:00:37.400000000+00:00 stdout F \n"
        b"2026-11-27T14:00:37.500000000+00:00 stdout P no newline at the end"
    )
    lines = parse_k8s_file(log)
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", "hello"),
        ("stderr", "oops"),
        ("stdout", "part-ial"),
        ("stdout", ""),
        ("stdout", "no newline at the end"),
    ]
    assert lines[0].timestamp == datetime(2026, 11, 27, 14, 0, 37, 1643, tzinfo=UTC)
    assert lines[2].timestamp == datetime(2026, 11, 27, 14, 0, 37, 100000, tzinfo=UTC)  # where it began


def test_k8s_file_ignores_torn_records() -> None:
    assert [line.text for line in parse_k8s_file(b"garbage\n2026-11-27T14:00:37Z stdout F ok\n")] == ["ok"]


def test_rlimits_are_clamped_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    (nofile,) = clamp_rlimits({"RLIMIT_NOFILE": (1 << 40, 1 << 40)})
    if hard != resource.RLIM_INFINITY:
        assert nofile["hard"] == hard
    assert nofile["soft"] <= nofile["hard"]
    with pytest.raises(ValueError, match="unknown rlimit"):
        clamp_rlimits({"RLIMIT_NOPE": (1, 1)})


def test_oci_config_carries_the_spec() -> None:
    spec = ContainerSpec(
        id="web",
        sandbox_id="group",
        rootfs_layers=[Path("/layers/a")],
        args=["httpd", "-f"],
        cwd="/srv",
        mounts=[Mount(Path("/data/x"), "/x", read_only=True), Mount(Path("/"), "/scratch", kind="tmpfs")],
        volume_mounts=[VolumeMount("creds", "/creds"), VolumeMount("cache", "/cache")],
        resources=Resources(cpu=1.5, memory_bytes=64 << 20, pids=100),
    )
    sandbox = SandboxFiles(
        hostname="group",
        netns="/run/netns/moorage-group",
        hosts=Path("/s/hosts"),
        resolv_conf=Path("/s/resolv.conf"),
        hostname_file=Path("/s/hostname"),
        volumes={"creds": (Path("/v/creds"), True), "cache": (Path("/v/cache"), False)},
    )
    config = oci_config(
        spec,
        user=ResolvedUser(1000, 1000, (10,), "/home/app"),
        env=["PATH=/bin"],
        sandbox=sandbox,
        cgroups_path="/moorage/moorage-web",
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}],
        swap_accounting=True,
    )
    process = config["process"]
    assert (process["args"], process["cwd"], process["terminal"]) == (["httpd", "-f"], "/srv", False)
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert len(process["capabilities"]["bounding"]) == 14
    linux = config["linux"]
    assert {"type": "network", "path": "/run/netns/moorage-group"} in linux["namespaces"]
    assert linux["cgroupsPath"] == "/moorage/moorage-web"
    assert linux["resources"]["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert linux["resources"]["cpu"] == {"quota": 150000, "period": 100000, "shares": 1536}
    assert linux["resources"]["pids"] == {"limit": 100}
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert mounts["/etc/hosts"]["source"] == "/s/hosts"
    assert mounts["/etc/resolv.conf"]["source"] == "/s/resolv.conf"
    assert "ro" in mounts["/x"]["options"]
    assert mounts["/scratch"]["type"] == "tmpfs"
    assert "ro" in mounts["/creds"]["options"]  # secrets are always read-only
    assert "ro" not in mounts["/cache"]["options"]


def _rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_bytes(PASSWD)
    (tmp_path / "etc/group").write_bytes(GROUP)
    return tmp_path


def test_user_names_resolve_with_supplementary_groups(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    user = resolve_user("app", lambda p: read_in_root(root, p))
    assert user == ResolvedUser(1000, 1000, (10, 50), "/home/app")
    assert resolve_user("app:wheel", lambda p: read_in_root(root, p)).gid == 10
    assert resolve_user(None, lambda p: read_in_root(root, p)) == ResolvedUser(0, 0, (), "/root")
    assert resolve_user("4242", lambda p: read_in_root(root, p)) == ResolvedUser(4242, 0, (), "/")
    for bad in ("ghost", "app:nogroup", "app:", ":1"):
        with pytest.raises(InvalidUser):
            resolve_user(bad, lambda p: read_in_root(root, p))


def test_reading_the_rootfs_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "host-secret"
    outside.write_text("root:x:0:0:pwned:/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").symlink_to(outside)
    assert read_in_root(root, "/etc/passwd") is None
    other = tmp_path / "rootfs2"
    other.mkdir()
    (other / "etc").symlink_to(tmp_path / "rootfs" / "etc")
    assert read_in_root(other, "/etc/passwd") is None
    assert read_in_root(root, "/../host-secret") is None


def test_image_config_gives_the_process_and_a_command_replaces_entrypoint_and_cmd() -> None:
    image = {
        "config": {
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "Env": ["PATH=/usr/bin:/bin", "MODE=prod"],
            "WorkingDir": "/srv",
            "User": "101",
        }
    }
    default = image_process(image, env=["MODE=dev", "EXTRA=1"])
    assert default.args == ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
    assert default.env == ["PATH=/usr/bin:/bin", "MODE=dev", "EXTRA=1"]
    assert (default.cwd, default.user) == ("/srv", "101")
    assert image_process(image, command=["sh", "-c", "true"]).args == ["sh", "-c", "true"]
    with pytest.raises(InvalidArgument):
        image_process({"config": {}})
