"""The layer applier: what a layer tar becomes on disk, and what hostile layers cannot do."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from moorage.instances.layers import HostileLayer, MalformedLayer, apply_layer
from tests.unit.layer_tars import CAP_NET_RAW_EP, MTIME, LayerTar, apply, digest, needs_root


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "snap" / "fs"
    path.mkdir(parents=True)
    return path


def lstat(path: Path) -> os.stat_result:
    return path.lstat()


# --- what a layer becomes -----------------------------------------------------------------------


def test_regular_file_content_mode_and_mtime(dest: Path) -> None:
    apply(LayerTar().dir("etc").file("etc/hello", b"hi\n", mode=0o640).data(), dest)

    st = lstat(dest / "etc/hello")
    assert (dest / "etc/hello").read_bytes() == b"hi\n"
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime == MTIME


@needs_root
def test_ownership_is_numeric(dest: Path) -> None:
    layer = (
        LayerTar().dir("home/u", uid=1000, gid=1000).file("home/u/f", b"x", mode=0o640, uid=1000, gid=1000)
    )
    apply(layer.symlink("home/u/link", "f", uid=1000, gid=1000).data(), dest)

    for name in ("home/u", "home/u/f", "home/u/link"):
        st = lstat(dest / name)
        assert (st.st_uid, st.st_gid) == (1000, 1000), name  # uname "root" in the tar is ignored
    assert stat.S_IMODE(lstat(dest / "home/u/f").st_mode) == 0o640


@needs_root
def test_setuid_and_setgid_survive_chown(dest: Path) -> None:
    layer = LayerTar().file("bin/su", b"\x7fELF", mode=0o4755).file("bin/wall", b"x", mode=0o2755, gid=5)
    apply(layer.dir("tmp", mode=0o1777).data(), dest)

    assert stat.S_IMODE(lstat(dest / "bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(lstat(dest / "bin/wall").st_mode) == 0o2755
    assert stat.S_IMODE(lstat(dest / "tmp").st_mode) == 0o1777


@needs_root
def test_xattrs_and_file_capabilities_are_applied(dest: Path) -> None:
    xattrs = {"user.test": b"hello", "security.capability": CAP_NET_RAW_EP}
    apply(LayerTar().file("bin/ping", b"x", mode=0o755, uid=1000, xattrs=xattrs).data(), dest)

    assert os.getxattr(dest / "bin/ping", "user.test") == b"hello"
    # Set after chown, which would have cleared it.
    assert os.getxattr(dest / "bin/ping", "security.capability") == CAP_NET_RAW_EP


@needs_root
def test_overlay_and_selinux_xattrs_from_the_image_are_dropped(dest: Path) -> None:
    xattrs = {
        "trusted.overlay.opaque": b"y",
        "user.overlay.redirect": b"/x",
        "security.selinux": b"system_u:object_r:bin_t:s0",
        "user.kept": b"1",
    }
    apply(LayerTar().dir("d", xattrs=xattrs).data(), dest)

    assert os.listxattr(dest / "d") == ["user.kept"]


def test_symlink_targets_are_kept_verbatim(dest: Path) -> None:
    layer = LayerTar().symlink("usr/bin/env", "/bin/busybox").symlink("lib/escape", "../../../etc")
    apply(layer.data(), dest)

    assert os.readlink(dest / "usr/bin/env") == "/bin/busybox"
    assert os.readlink(dest / "lib/escape") == "../../../etc"
    assert stat.S_ISLNK(lstat(dest / "lib/escape").st_mode)


def test_hardlink_within_the_layer_shares_the_inode(dest: Path) -> None:
    apply(LayerTar().file("bin/busybox", b"bb", mode=0o755).hardlink("bin/sh", "bin/busybox").data(), dest)

    assert lstat(dest / "bin/sh").st_ino == lstat(dest / "bin/busybox").st_ino
    assert lstat(dest / "bin/sh").st_nlink == 2


@needs_root
def test_hardlink_to_a_lower_layer_is_an_independent_copy(tmp_path: Path) -> None:
    lower, upper = tmp_path / "l0", tmp_path / "l1"
    xattrs = {"user.test": b"v", "security.capability": CAP_NET_RAW_EP}
    apply(LayerTar().file("bin/ping", b"ping", mode=0o4755, uid=1000, gid=7, xattrs=xattrs).data(), lower)
    apply(LayerTar().hardlink("usr/bin/ping", "/bin/ping").data(), upper, lower)

    copy, original = lstat(upper / "usr/bin/ping"), lstat(lower / "bin/ping")
    assert (copy.st_dev, copy.st_ino) != (original.st_dev, original.st_ino)
    assert original.st_nlink == 1
    assert (upper / "usr/bin/ping").read_bytes() == b"ping"
    assert (stat.S_IMODE(copy.st_mode), copy.st_uid, copy.st_gid) == (0o4755, 1000, 7)
    assert copy.st_mtime == MTIME
    assert os.getxattr(upper / "usr/bin/ping", "security.capability") == CAP_NET_RAW_EP
    assert os.getxattr(upper / "usr/bin/ping", "user.test") == b"v"


@needs_root
def test_hardlink_to_a_file_a_higher_layer_whited_out_is_refused(tmp_path: Path) -> None:
    l0, l1, l2 = tmp_path / "l0", tmp_path / "l1", tmp_path / "l2"
    apply(LayerTar().file("a", b"a").data(), l0)
    apply(LayerTar().file(".wh.a").data(), l1, l0)

    with pytest.raises(HostileLayer):
        apply(LayerTar().hardlink("b", "a").data(), l2, l1, l0)


@needs_root
def test_device_nodes_and_fifo(dest: Path) -> None:
    layer = LayerTar().device("dev/null", tarfile.CHRTYPE, 1, 3).device("dev/loop0", tarfile.BLKTYPE, 7, 0)
    apply(layer.fifo("run/fifo", mode=0o620).data(), dest)

    null, loop, fifo = lstat(dest / "dev/null"), lstat(dest / "dev/loop0"), lstat(dest / "run/fifo")
    assert (stat.S_IFMT(null.st_mode), null.st_rdev) == (stat.S_IFCHR, os.makedev(1, 3))
    assert stat.S_IMODE(null.st_mode) == 0o666
    assert (stat.S_IFMT(loop.st_mode), loop.st_rdev) == (stat.S_IFBLK, os.makedev(7, 0))
    assert (stat.S_IFMT(fifo.st_mode), stat.S_IMODE(fifo.st_mode)) == (stat.S_IFIFO, 0o620)


@needs_root
def test_whiteout_becomes_an_overlay_whiteout(dest: Path) -> None:
    apply(LayerTar().dir("etc").file("etc/.wh.deleteme.txt").data(), dest)

    st = lstat(dest / "etc/deleteme.txt")
    assert (stat.S_IFMT(st.st_mode), st.st_rdev) == (stat.S_IFCHR, os.makedev(0, 0))
    assert not (dest / "etc/.wh.deleteme.txt").exists()


@needs_root
def test_opaque_marker_sets_the_overlay_xattr(dest: Path) -> None:
    apply(
        LayerTar().dir("data/opaque").file("data/opaque/.wh..wh..opq").file("data/opaque/c.txt").data(), dest
    )

    assert os.getxattr(dest / "data/opaque", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(dest / "data/opaque")) == ["c.txt"]


@needs_root
def test_whiteout_of_a_directory_this_layer_recreates_makes_it_opaque(dest: Path) -> None:
    apply(LayerTar().file(".wh.data").dir("data").file("data/new").data(), dest)

    assert stat.S_ISDIR(lstat(dest / "data").st_mode)
    assert os.getxattr(dest / "data", "trusted.overlay.opaque") == b"y"


def test_diff_id_is_the_sha256_of_the_whole_stream(dest: Path) -> None:
    data = LayerTar().file("a", b"a" * 5000).data() + b"\0" * 4096  # trailing padding counts too

    assert apply(data, dest) == digest(data)


def test_directory_mode_and_mtime_are_applied_after_the_contents(dest: Path) -> None:
    apply(LayerTar().dir("ro", mode=0o555, mtime=1_000_000).file("ro/inside", b"x").data(), dest)

    st = lstat(dest / "ro")
    assert stat.S_IMODE(st.st_mode) == 0o555
    assert st.st_mtime == 1_000_000
    assert (dest / "ro/inside").read_bytes() == b"x"


def test_implied_parent_copies_the_lower_directory(tmp_path: Path) -> None:
    lower, upper = tmp_path / "l0", tmp_path / "l1"
    apply(LayerTar().dir("tmp", mode=0o1777, mtime=1234).data(), lower)
    apply(LayerTar().file("tmp/x", b"x").data(), upper, lower)

    st = lstat(upper / "tmp")
    assert stat.S_IMODE(st.st_mode) == 0o1777
    assert st.st_mtime == 1234


def test_implied_parent_without_lower_directory_is_0755(dest: Path) -> None:
    apply(LayerTar().file("a/b/c", b"x").data(), dest)

    assert stat.S_IMODE(lstat(dest / "a/b").st_mode) == 0o755


def test_a_later_member_replaces_an_earlier_one(dest: Path) -> None:
    layer = LayerTar().file("a", b"old").symlink("a", "target").dir("d").file("d/f").file("d", b"file now")
    apply(layer.file("e", b"first").file("e", b"second").data(), dest)

    assert os.readlink(dest / "a") == "target"
    assert (dest / "d").read_bytes() == b"file now"
    assert (dest / "e").read_bytes() == b"second"


def test_absolute_member_names_are_stripped_into_the_snapshot(dest: Path) -> None:
    apply(LayerTar().file("/etc/motd", b"hello").data(), dest)

    assert (dest / "etc/motd").read_bytes() == b"hello"


def test_truncated_stream_is_malformed(dest: Path) -> None:
    data = LayerTar().file("big", b"x" * 100_000).data()

    with pytest.raises(MalformedLayer):
        apply_layer(io.BytesIO(data[:20_000]), dest)


# --- hostile layers -----------------------------------------------------------------------------


def snapshot_of(root: Path, skip: Path) -> dict[str, tuple[int, int, int, bytes | str | None]]:
    """Every path under ``root`` except the ``skip`` tree, with type, inode, link count and content."""
    seen: dict[str, tuple[int, int, int, bytes | str | None]] = {}
    for directory, dirs, files in os.walk(root):
        if Path(directory) == skip or skip in Path(directory).parents:
            dirs[:] = []
            continue
        for name in dirs + files:
            path = Path(directory) / name
            if path == skip:
                continue
            st = path.lstat()
            content: bytes | str | None = None
            if stat.S_ISREG(st.st_mode):
                content = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            seen[str(path)] = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_nlink, content)
    return seen


HOSTILE: dict[str, Callable[[Path], LayerTar]] = {
    "dotdot": lambda out: LayerTar().file("../escape.txt", b"evil"),
    "deep dotdot": lambda out: LayerTar().dir("a").file("a/../../x", b"evil"),
    "dotdot that stays inside": lambda out: LayerTar().file("a/../b", b"evil"),
    "dotdot directory": lambda out: LayerTar().dir("../d"),
    "write through absolute symlinked parent": lambda out: (
        LayerTar().symlink("lib", str(out)).file("lib/evil", b"evil")
    ),
    "write through relative symlinked parent": lambda out: (
        LayerTar().symlink("lib", "../../outside").file("lib/evil", b"evil")
    ),
    "directory through symlinked parent": lambda out: LayerTar().symlink("lib", str(out)).dir("lib/sub"),
    "fifo through symlinked parent": lambda out: LayerTar().symlink("lib", str(out)).fifo("lib/p"),
    "symlink through symlinked parent": lambda out: LayerTar().symlink("lib", str(out)).symlink("lib/l", "x"),
    "dir replaced by symlink, then written through": lambda out: (
        LayerTar().dir("etc").symlink("etc", str(out)).file("etc/evil", b"evil")
    ),
    "whiteout through symlinked parent": lambda out: (
        LayerTar().symlink("lib", str(out)).file("lib/.wh.secret.txt")
    ),
    "opaque marker through symlinked parent": lambda out: (
        LayerTar().symlink("lib", str(out)).file("lib/.wh..wh..opq")
    ),
    "whiteout of dotdot": lambda out: LayerTar().dir("a").file("a/.wh..."),
    "hardlink through symlinked parent": lambda out: (
        LayerTar().symlink("esc", str(out)).hardlink("x", "esc/secret.txt")
    ),
    "hardlink created in symlinked parent": lambda out: (
        LayerTar().symlink("esc", str(out)).file("a", b"a").hardlink("esc/a", "a")
    ),
    "hardlink to /etc/passwd": lambda out: LayerTar().hardlink("passwd", "/etc/passwd"),
    "hardlink to absolute host file": lambda out: LayerTar().hardlink("x", str(out / "secret.txt")),
    "hardlink to dotdot": lambda out: LayerTar().hardlink("x", "../x"),
    "hardlink to deep dotdot": lambda out: LayerTar().hardlink("x", "a/../../outside/secret.txt"),
    "hardlink to a directory": lambda out: LayerTar().dir("d").hardlink("x", "d"),
    "NUL in name": lambda out: LayerTar().raw(_pax_path("a\0/../../evil"), b""),
    "NUL in symlink target": lambda out: LayerTar().raw(_pax_symlink("l", "/etc\0passwd")),
}


def _pax_path(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo("placeholder")
    info.pax_headers = {"path": name}
    return info


def _pax_symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.pax_headers = {"linkpath": target}
    return info


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused_and_writes_nothing_outside(case: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    dest = tmp_path / "snap" / "fs"
    dest.mkdir(parents=True)
    passwd = Path("/etc/passwd").stat()
    before = snapshot_of(tmp_path, skip=dest)

    with pytest.raises(HostileLayer) as raised:
        apply(HOSTILE[case](outside).data(), dest)

    assert raised.value.code == "HostileLayer"
    assert "layer member" in raised.value.message
    assert snapshot_of(tmp_path, skip=dest) == before
    assert Path("/etc/passwd").stat().st_nlink == passwd.st_nlink
    assert not os.listxattr(outside)
    host_inodes = {
        (passwd.st_dev, passwd.st_ino),
        (outside.stat().st_dev, (outside / "secret.txt").stat().st_ino),
    }
    for directory, _, files in os.walk(dest):
        for name in files:
            st = (Path(directory) / name).lstat()
            assert (st.st_dev, st.st_ino) not in host_inodes


def test_hostile_error_names_the_member(dest: Path, tmp_path: Path) -> None:
    with pytest.raises(HostileLayer, match="lib/evil"):
        apply(LayerTar().symlink("lib", str(tmp_path)).file("lib/evil", b"x").data(), dest)


def test_absolute_path_to_a_host_directory_lands_inside_the_snapshot(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "snap" / "fs"
    dest.mkdir(parents=True)

    apply(LayerTar().file(f"{outside}/evil", b"evil").data(), dest)

    assert list(outside.iterdir()) == []
    assert (dest / str(outside).lstrip("/") / "evil").read_bytes() == b"evil"
