"""The snapshotter: chain ids, unpack-once snapshots, and overlay root filesystems."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from moorage.core.errors import InvalidArgument
from moorage.instances.layers import HostileLayer
from moorage.instances.snapshots import LayerDigestMismatch, Snapshotter
from tests.unit.layer_tars import LayerTar, digest, needs_root

A = "sha256:589f0d58b9053a4ff7329b8fdb4f9dd120e29354c086ad0b3b10733f6cfd6de3"  # sha256("layer-a")
B = "sha256:55fea2a37a9fc5963f1beccd0d162b856e6bd05ca07cdd3726847846ab740f0d"  # sha256("layer-b")
C = "sha256:e6c65c655ca8172ab7a2b634dab3220a45472dd6571b6efd956ccc05e229a201"  # sha256("layer-c")


class Layers:
    """Layer blobs with openers that count how often each layer was read."""

    def __init__(self, *tars: bytes) -> None:
        self.tars = tars
        self.opened: Counter[int] = Counter()

    def opener(self, index: int, before: Callable[[], object] = lambda: None) -> Callable[[], BinaryIO]:
        def open_layer() -> BinaryIO:
            before()
            self.opened[index] += 1
            return io.BytesIO(self.tars[index])

        return open_layer

    def stack(self, before: Callable[[], object] = lambda: None) -> list[tuple[Callable[[], BinaryIO], str]]:
        return [(self.opener(i, before), digest(tar)) for i, tar in enumerate(self.tars)]


def two_layers() -> Layers:
    base = (
        LayerTar()
        .dir("etc")
        .file("etc/keep.txt", b"keep")
        .file("etc/deleteme.txt", b"bye")
        .dir("data/opaque")
        .file("data/opaque/a.txt", b"a")
        .file("data/opaque/b.txt", b"b")
        .dir("www")
        .file("www/index.html", b"v1")
        .hardlink("www/old.html", "www/index.html")
    )
    top = (
        LayerTar()
        .dir("etc")
        .file("etc/.wh.deleteme.txt")
        .dir("data/opaque")
        .file("data/opaque/.wh..wh..opq")
        .file("data/opaque/c.txt", b"c")
        .file("www/index.html", b"v2")
        .hardlink("www/copy.html", "www/old.html")  # into the lower layer: copied
    )
    return Layers(base.data(), top.data())


# --- chain ids ----------------------------------------------------------------------------------


def test_chain_id_of_one_layer_is_its_diff_id() -> None:
    assert Snapshotter.chain_id([A]) == A


def test_chain_id_matches_the_hand_computed_value() -> None:
    # sha256("<A> <B>"), then sha256("<that> <C>"), computed separately.
    assert (
        Snapshotter.chain_id([A, B])
        == "sha256:267c5fd16af60e52927fabf0a36a31f3b5a2069347f7f00c7bd7f93f6ebc01f4"
    )
    assert (
        Snapshotter.chain_id([A, B, C])
        == "sha256:82c0ed5f6c15be9b9180a8c04b9f2c676d74af6db13c711f5bb47a0fa43b56df"
    )


@pytest.mark.parametrize("bad", [[], ["sha256:abc"], ["md5:" + "0" * 32], [A, "../../etc"]])
def test_chain_id_rejects_bad_input(bad: list[str]) -> None:
    with pytest.raises(InvalidArgument):
        Snapshotter.chain_id(bad)


# --- prepare ------------------------------------------------------------------------------------


async def test_prepare_returns_lowerdirs_top_first(tmp_path: Path) -> None:
    layers = two_layers()
    snapshotter = Snapshotter(tmp_path)

    lowers = await snapshotter.prepare(layers.stack())

    diff_ids = [digest(tar) for tar in layers.tars]
    assert lowers == [
        snapshotter.lowerdir(Snapshotter.chain_id(diff_ids)),
        snapshotter.lowerdir(diff_ids[0]),
    ]
    assert (lowers[0] / "data/opaque/c.txt").read_bytes() == b"c"
    assert (lowers[1] / "www/index.html").read_bytes() == b"v1"
    assert (lowers[0] / "www/copy.html").read_bytes() == b"v1"
    assert snapshotter.chains() == sorted([diff_ids[0], Snapshotter.chain_id(diff_ids)])


async def test_prepare_twice_unpacks_once(tmp_path: Path) -> None:
    layers = two_layers()
    snapshotter = Snapshotter(tmp_path)

    first = await snapshotter.prepare(layers.stack())
    second = await Snapshotter(tmp_path).prepare(layers.stack())  # a restarted control plane too

    assert first == second
    assert layers.opened == {0: 1, 1: 1}


async def test_diff_id_mismatch_leaves_no_snapshot(tmp_path: Path) -> None:
    layers = two_layers()
    snapshotter = Snapshotter(tmp_path)

    with pytest.raises(LayerDigestMismatch):
        await snapshotter.prepare([(layers.opener(0), A)])

    assert snapshotter.chains() == []
    assert os.listdir(tmp_path / "snapshots") == []


async def test_hostile_layer_leaves_no_snapshot(tmp_path: Path) -> None:
    evil = LayerTar().symlink("lib", str(tmp_path)).file("lib/evil", b"x").data()
    snapshotter = Snapshotter(tmp_path)

    with pytest.raises(HostileLayer):
        await snapshotter.prepare([(lambda: io.BytesIO(evil), digest(evil))])

    assert os.listdir(tmp_path / "snapshots") == []
    assert not (tmp_path / "evil").exists()


async def test_a_failing_opener_leaves_no_snapshot(tmp_path: Path) -> None:
    def missing_blob() -> BinaryIO:
        raise FileNotFoundError("blob gone")

    snapshotter = Snapshotter(tmp_path)

    with pytest.raises(FileNotFoundError):
        await snapshotter.prepare([(missing_blob, A)])

    assert os.listdir(tmp_path / "snapshots") == []


async def test_a_failed_upper_layer_keeps_the_lower_snapshot(tmp_path: Path) -> None:
    layers = two_layers()
    snapshotter = Snapshotter(tmp_path)

    with pytest.raises(LayerDigestMismatch):
        await snapshotter.prepare([(layers.opener(0), digest(layers.tars[0])), (layers.opener(1), B)])

    assert snapshotter.chains() == [digest(layers.tars[0])]


async def test_concurrent_prepares_of_the_same_chain_unpack_once(tmp_path: Path) -> None:
    layers = two_layers()
    snapshotter = Snapshotter(tmp_path)

    results = await asyncio.gather(*(snapshotter.prepare(layers.stack()) for _ in range(5)))

    assert all(result == results[0] for result in results)
    assert layers.opened == {0: 1, 1: 1}


async def test_two_processes_racing_on_one_chain_both_succeed(tmp_path: Path) -> None:
    # Two Snapshotters share no locks, like two processes: both unpack, one rename wins.
    layers = two_layers()
    both_started = threading.Barrier(2, timeout=10)

    results = await asyncio.gather(
        Snapshotter(tmp_path).prepare(layers.stack(both_started.wait)[:1]),
        Snapshotter(tmp_path).prepare(layers.stack(both_started.wait)[:1]),
    )

    assert results[0] == results[1]
    assert layers.opened == {0: 2}
    assert os.listdir(tmp_path / "snapshots") == [digest(layers.tars[0]).removeprefix("sha256:")]
    assert (results[0][0] / "www/index.html").read_bytes() == b"v1"


async def test_remove_deletes_a_chain(tmp_path: Path) -> None:
    layers = two_layers()
    snapshotter = Snapshotter(tmp_path)
    await snapshotter.prepare(layers.stack())
    top = Snapshotter.chain_id([digest(tar) for tar in layers.tars])

    snapshotter.remove(top)
    snapshotter.remove(top)  # idempotent

    assert snapshotter.chains() == [digest(layers.tars[0])]
    assert len(os.listdir(tmp_path / "snapshots")) == 1
    await snapshotter.prepare(layers.stack())
    assert layers.opened == {0: 1, 1: 2}


def test_discard_incomplete_removes_leftovers_of_dead_processes(tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    (snapshots / ".tmp-999999999-abc/fs").mkdir(parents=True)
    (snapshots / f".tmp-{os.getpid()}-abc").mkdir()

    assert Snapshotter(tmp_path).discard_incomplete() == 1
    assert os.listdir(snapshots) == [f".tmp-{os.getpid()}-abc"]


def test_snapshots_directory_is_private(tmp_path: Path) -> None:
    layers = two_layers()
    asyncio.run(Snapshotter(tmp_path).prepare(layers.stack()[:1]))

    assert stat.S_IMODE((tmp_path / "snapshots").stat().st_mode) == 0o700


# --- overlay rootfs -----------------------------------------------------------------------------


@needs_root
async def test_overlay_rootfs_merges_layers_and_writes_to_upper(tmp_path: Path) -> None:
    snapshotter = Snapshotter(tmp_path / "store")
    lowers = await snapshotter.prepare(two_layers().stack())
    ctr = tmp_path / "ctr"
    rootfs = ctr / "rootfs"

    snapshotter.mount_rootfs(lowers, ctr / "upper", ctr / "work", rootfs)
    try:
        assert not (rootfs / "etc/deleteme.txt").exists()
        assert (rootfs / "etc/keep.txt").read_bytes() == b"keep"
        assert sorted(os.listdir(rootfs / "data/opaque")) == ["c.txt"]
        assert (rootfs / "www/index.html").read_bytes() == b"v2"
        assert (rootfs / "www/old.html").read_bytes() == b"v1"

        (rootfs / "etc/new.txt").write_bytes(b"new")
        (rootfs / "etc/keep.txt").unlink()
    finally:
        snapshotter.unmount(rootfs)

    assert (ctr / "upper/etc/new.txt").read_bytes() == b"new"
    whiteout = (ctr / "upper/etc/keep.txt").lstat()
    assert (stat.S_IFMT(whiteout.st_mode), whiteout.st_rdev) == (stat.S_IFCHR, 0)
    assert (lowers[1] / "etc/keep.txt").read_bytes() == b"keep"  # snapshots stay untouched
    assert not os.path.ismount(rootfs)


@needs_root
async def test_overlay_rootfs_with_more_layers_than_fit_in_a_page(tmp_path: Path) -> None:
    tars = [
        LayerTar().file(f"layer{i}", str(i).encode()).file("top", str(i).encode()).data() for i in range(80)
    ]
    layers = Layers(*tars)
    snapshotter = Snapshotter(tmp_path / "store-with-a-rather-long-directory-name")
    lowers = await snapshotter.prepare(layers.stack())
    assert len(":".join(str(path) for path in lowers)) > os.sysconf("SC_PAGE_SIZE")
    rootfs = tmp_path / "rootfs"

    snapshotter.mount_rootfs(lowers, tmp_path / "upper", tmp_path / "work", rootfs)
    try:
        assert (rootfs / "top").read_bytes() == b"79"
        assert (rootfs / "layer0").read_bytes() == b"0"
        assert len(os.listdir(rootfs)) == 81
    finally:
        snapshotter.unmount(rootfs)


@needs_root
def test_unmount_of_an_unmounted_directory_is_a_no_op(tmp_path: Path) -> None:
    Snapshotter(tmp_path).unmount(tmp_path)
    Snapshotter(tmp_path).unmount(tmp_path / "missing")


def test_mount_without_layers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        Snapshotter(tmp_path).mount_rootfs([], tmp_path / "u", tmp_path / "w", tmp_path / "r")
