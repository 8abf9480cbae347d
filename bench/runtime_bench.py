"""Runtime benchmark (issue 4): moorage's runc backend vs bare runc, skopeo and umoci, side by side.

Run as root from the repository root::

    .venv/bin/python bench/runtime_bench.py            # full run, writes docs/benchmarks.md
    .venv/bin/python bench/runtime_bench.py --quick    # small image, few runs (prints only)

What it measures (medians over the runs; the two sides alternate, and who goes first alternates):

* **Warm start** — the image is pulled and unpacked already (snapshots ready). moorage:
  ``RuncRuntime.create`` + ``start`` until it reports *running* (overlay mount, ``config.json``,
  conmon → ``runc create``, ``runc start``). Reference: ``runc run -d`` of a bundle prepared
  beforehand (the same snapshots overlay-mounted, the ``config.json`` moorage generated: same
  process, namespaces, network namespace, mounts and cgroup limits). ``runc create`` +
  ``runc start`` is shown too. Target: <= 2x.
* **Cold start** — nothing cached (fresh blob store, snapshots, client and token per run).
  moorage: ``ImageSource.pull`` (linux/amd64, HTTPS to the registry's login server with the admin
  user's Basic credentials, Bearer token flow) + ``Snapshotter.prepare`` + create + start.
  Reference: ``skopeo copy docker://… oci:…`` + ``umoci unpack`` + writing the same
  ``config.json`` + ``runc run -d``. Both pull the same ~100 MB, 6-layer image from the same
  moorage registry. Target: <= 1.0x.
* **Control-plane memory** — the real server (``python -m moorage serve``, the process that also
  hosts the registry) runs N containers created through its ARM API (container groups of two
  containers each, from the same image); its ``VmRSS`` is sampled, the process tree is listed
  (every container's supervisor must be conmon, and no Python process may be the server's
  descendant), then every group is deleted and the host is checked for leftovers. Target:
  <= 150 MB and no Python process per container.
* **Container groups, PUT → Running** (issue 5) — through the same server's ARM API: the time from
  sending the PUT of a one-container group until GET shows it ``Running``. *Cached*: the image's
  layers and snapshots are on the node already, beside bare ``runc run -d`` of a prepared bundle
  (the warm reference). *Cold*: a fresh variant of the image per run (same layout and sizes,
  other bytes, so nothing is cached), beside ``skopeo copy`` + ``umoci unpack`` + ``runc run -d``
  of the same variant (the cold reference).

The image is built here from the host's busybox-static plus five layers of files whose content
is half random bytes and half word-like text, so that gzip shrinks it about as much as real
binaries and libraries (not to nothing). A real moorage server (``python -m moorage serve``)
hosts the registry; skopeo pushes the image with the admin user.

Everything created (containers, conmons, mounts, network namespaces, the bridge and nftables
table, cgroups, runc state, the server, the work directory) is removed at the end, also when a
phase fails or the run is interrupted (SIGINT/SIGTERM).

This is a benchmark, not a test: it is not collected by pytest and CI does not run it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the test suite's image builders and server fixture

from arm_groups import ArmGroups, GroupImage, hundred_containers, put_to_running  # noqa: E402
from benchdoc import write_section  # noqa: E402
from tests.images import Image, build_image, tar_layer, write_layout  # noqa: E402
from tests.runtime_support import leftovers as host_leftovers  # noqa: E402

from moorage.core.log import configure as configure_logging  # noqa: E402
from moorage.core.platform import Platform  # noqa: E402
from moorage.instances import mounts  # noqa: E402
from moorage.instances.images import BasicCredential, ImageSource, open_layer  # noqa: E402
from moorage.instances.runtime.base import (  # noqa: E402
    ContainerSpec,
    ContainerStatus,
    Resources,
    SandboxSpec,
)
from moorage.instances.runtime.runc import RuncRuntime, cgroups, conmon  # noqa: E402
from moorage.instances.runtime.runc import runtime as runc_runtime  # noqa: E402
from moorage.instances.runtime.runc.cli import RuncCli  # noqa: E402
from moorage.instances.runtime.runc.network import NETNS_DIR, SandboxNetwork  # noqa: E402
from moorage.instances.snapshots import Snapshotter  # noqa: E402
from moorage.store.blobs import open_blob_store  # noqa: E402

DEFAULT_DOC = ROOT / "docs" / "benchmarks.md"
SECTION_START = "<!-- runtime-bench:start -->"
SECTION_END = "<!-- runtime-bench:end -->"
HEADING = "## Runtime (issue 4)"
GROUPS_START = "<!-- container-groups-bench:start -->"
GROUPS_END = "<!-- container-groups-bench:end -->"
GROUPS_HEADING = "## Container groups: PUT → Running (issue 5)"
POLL_MS = 20
RUNC = "/usr/sbin/runc"
CONMON = "/usr/bin/conmon"
BUSYBOX = Path("/bin/busybox")
TOOLS = (RUNC, CONMON, "skopeo", "umoci", "ip", "nft", str(BUSYBOX))
MIB = 1 << 20
SEED = 4
REPOSITORY = "bench/runtime"
TAG = "v1"
AMD64 = Platform("linux", "amd64")
ARGS = ("sleep", "3600")
ENV = ("PATH=/usr/sbin:/usr/bin:/sbin:/bin",)
RESOURCES = Resources(cpu=1.0, memory_bytes=256 * MIB, pids=256)
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
MOORAGE, REFERENCE = "moorage", "reference"


# -- profiles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    name: str
    data_layers: int  # on top of the busybox base layer
    layer_bytes: int  # uncompressed file content per data layer
    files_per_layer: int
    warm_runs: int  # per variant
    cold_runs: int  # per side
    rss_containers: int
    rss_groups: int  # the containers are spread over this many container groups
    arm_cached_runs: int  # per side
    arm_cold_runs: int  # per side (one fresh image variant each)


FULL = Profile("full", 5, 20 * MIB, 400, 20, 7, 100, 50, 10, 5)
QUICK = Profile("quick", 5, 2 * MIB, 40, 4, 2, 10, 5, 2, 1)


# -- the host objects one run owns ------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """Names and places of everything this run creates (so that a sweep can find it all)."""

    workdir: str
    tag: str
    subnet: str

    @property
    def prefix(self) -> str:  # runtime prefix: runc ids, netns names, cgroups
        return f"rb{self.tag}"

    @property
    def reference_prefix(self) -> str:  # bare runc containers (not a dash-extension of ``prefix``)
        return f"ref{self.tag}"

    @property
    def runc_root(self) -> Path:
        return Path(f"/run/moorage-bench-{self.tag}/runc")

    @property
    def cgroup_parent(self) -> str:
        return f"moorage-bench-{self.tag}"

    @property
    def bridge(self) -> str:
        return f"rb{self.tag}br"

    @property
    def nft_table(self) -> str:
        return f"rb{self.tag}"

    @property
    def state_dir(self) -> Path:
        return Path(self.workdir) / "state"

    @property
    def net_dir(self) -> Path:
        return Path(self.workdir) / "net"

    def network(self) -> SandboxNetwork:
        return SandboxNetwork(
            self.net_dir, bridge=self.bridge, subnet=self.subnet, prefix=self.prefix, nft_table=self.nft_table
        )

    def runtime(self) -> RuncRuntime:
        return RuncRuntime(
            self.state_dir,
            network=self.network(),
            prefix=self.prefix,
            runc_root=self.runc_root,
            cgroup_parent=self.cgroup_parent,
        )


def free_subnet(avoid: str | None = None) -> str:
    """A /24 in 10.0.0.0/8 that no route on this host touches (nor ``avoid``)."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=False
    )
    used = []
    for word in routes.stdout.split():
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(word, strict=False))
    rng = random.Random()  # noqa: S311 - picking an address, not a secret
    for _ in range(1000):
        candidate = ipaddress.ip_network(f"10.{rng.randint(100, 250)}.{rng.randint(0, 255)}.0/24")
        if str(candidate) != avoid and not any(candidate.overlaps(net) for net in used if net.prefixlen > 0):
            return str(candidate)
    raise RuntimeError("no free 10.x.y.0/24 subnet")


# -- the image --------------------------------------------------------------------------------------


def word_corpus(rng: random.Random, size: int) -> bytes:
    """Word-like text (gzip shrinks it ~3x, as it does source, docs and symbol tables)."""
    letters = "abcdefghijklmnopqrstuvwxyz_"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(2, 12))) for _ in range(4000)]
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(vocabulary)
        words.append(word)
        length += len(word) + 1
    return " ".join(words).encode()[:size]


def file_sizes(rng: random.Random, count: int, total: int) -> list[int]:
    """``count`` sizes with a long tail (many small files, a few big ones) summing to ``total``."""
    raw = [rng.lognormvariate(0.0, 1.6) for _ in range(count)]
    scale = total / sum(raw)
    sizes = [max(1, int(r * scale)) for r in raw]
    sizes[-1] += total - sum(sizes)
    return sizes


@dataclass(frozen=True)
class BuiltImage:
    image: Image
    uncompressed: int
    compressed: int
    files: int


def bench_image(profile: Profile, seed: int = SEED) -> BuiltImage:
    """The bench image; another ``seed`` gives a variant with the same layout and sizes and other
    bytes in every layer (the base layer too: one file differs)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    corpus = word_corpus(rng, 4 * MIB)
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    base = tar_layer(
        {
            "bin/busybox": BUSYBOX.read_bytes(),
            "etc/passwd": PASSWD.encode(),
            "etc/group": GROUP.encode(),
            "etc/variant": f"{seed}\n".encode(),
        },
        modes={"bin/busybox": 0o755},
        symlinks={f"bin/{name}": "busybox" for name in applets if name != "busybox"},
    )
    layers = [base]
    files = 4 + len(applets)
    for index in range(1, profile.data_layers + 1):
        content: dict[str, bytes] = {}
        for number, size in enumerate(file_sizes(rng, profile.files_per_layer, profile.layer_bytes)):
            random_part = size // 2
            start = rng.randrange(0, len(corpus) - (size - random_part) + 1)
            data = rng.randbytes(random_part) + corpus[start : start + size - random_part]
            content[f"usr/lib/bench{index}/d{number % 16:02d}/f{number:04d}.so"] = data
        files += len(content)
        layers.append(tar_layer(content))
    image = build_image(layers, cmd=list(ARGS), env=list(ENV))
    return BuiltImage(
        image,
        uncompressed=sum(len(layer) for layer in layers),
        compressed=sum(len(blob.data) for blob in image.layers),
        files=files,
    )


# -- the server and the registry --------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    login_server: str
    username: str
    password: str
    ca_path: str
    cert_dir: Path

    @property
    def reference(self) -> str:
        return self.tagged(TAG)

    def tagged(self, tag: str) -> str:
        return f"{self.login_server}/{REPOSITORY}:{tag}"


def create_registry(server: Any, workdir: Path) -> Registry:
    from tests.api.conftest import RawArm, fetch_token  # noqa: PLC0415 - pulls in the Azure SDK
    from tests.api.registry_support import (  # noqa: PLC0415
        admin_password,
        cert_dir,
        create_registry,
        unique_name,
    )

    raw = RawArm(server, fetch_token(server, server.client_id, server.client_secret))
    with raw.http:
        group = f"/subscriptions/{server.subscription_id}/resourcegroups/bench"
        response = raw.request("PUT", group, json={"location": "westus"})
        if response.status_code not in (200, 201):
            raise RuntimeError(f"resource group: {response.status_code} {response.text}")
        registry = create_registry(raw, "bench", unique_name("rtbench"), adminUserEnabled=True)
        password = admin_password(raw, registry)
    return Registry(
        registry.login_server,
        registry.name,
        password,
        server.ca_path,
        cert_dir(server.ca_path, workdir / "certs"),
    )


def push(registry: Registry, layout: Path, tag: str = TAG) -> None:
    result = subprocess.run(
        [
            "skopeo", "copy", "--preserve-digests",
            "--dest-cert-dir", str(registry.cert_dir),
            "--dest-creds", f"{registry.username}:{registry.password}",
            f"oci:{layout}:{tag}", f"docker://{registry.tagged(tag)}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"skopeo push failed: {result.stderr}")


# -- measuring helpers ------------------------------------------------------------------------------


def run_tool(argv: list[str], *, stderr: IO[bytes] | None = None) -> None:
    """Run a reference tool with its stdio away from any pipe of ours (a detached container
    would inherit it), raising with its error output when it fails."""
    with tempfile.TemporaryFile() as err:
        code = subprocess.call(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr or err
        )
        if code != 0:
            err.seek(0)
            raise RuntimeError(
                f"{' '.join(argv[:4])} ... exited {code}: {err.read().decode(errors='replace')}"
            )


def runc_argv(setup: Setup, *args: str) -> list[str]:
    return [RUNC, "--root", str(setup.runc_root), *args]


@dataclass
class Series:
    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self, scale: float, digits: int) -> str:
        return f"{min(self.values) * scale:.{digits}f}-{max(self.values) * scale:.{digits}f}"


class StepTimer:
    """Accumulates time spent in wrapped functions during one measured operation (to show where
    the time of moorage's side goes). The wrappers cost a few microseconds per call."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.series: dict[str, Series] = {}
        self._undo: list[Callable[[], None]] = []

    def wrap_async(self, owner: Any, name: str, label: Callable[..., str]) -> None:
        original = getattr(owner, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                key = label(*args, **kwargs)
                self.current[key] = self.current.get(key, 0.0) + time.perf_counter() - began

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def wrap_sync(self, owner: Any, name: str, key: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.current[key] = self.current.get(key, 0.0) + time.perf_counter() - began

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def finish(self, total: float) -> None:
        self.current["other (Python: files, JSON, user lookup, asyncio)"] = total - sum(self.current.values())
        for key, value in self.current.items():
            self.series.setdefault(key, Series()).add(value)
        self.current = {}

    def discard(self) -> None:
        self.current = {}

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo = []


def moorage_step_timer() -> StepTimer:
    timer = StepTimer()
    # The overlay mount runs in a worker thread: the wrapped function is looked up at call time.
    timer.wrap_sync(mounts, "mount_overlay", "overlay mount (thread)")
    timer.wrap_async(conmon, "launch", lambda **_: "conmon launch → runc create → sync pipe")
    timer.wrap_async(RuncCli, "run", lambda _self, *args, **_: f"runc {args[0]}")
    timer.wrap_sync(runc_runtime, "write_json", "config.json + meta.json (written with fsync)")
    return timer


def rss_kib(pid: int | str = "self") -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads", "PPid"):
            values[key] = int(rest.split()[0])
    return values


def load1() -> float:
    return os.getloadavg()[0]


# -- the measurements -------------------------------------------------------------------------------


@dataclass
class Results:
    warm: dict[str, Series] = field(default_factory=dict)
    warm_steps: dict[str, Series] = field(default_factory=dict)
    cold: dict[str, Series] = field(default_factory=dict)
    cold_steps: dict[str, Series] = field(default_factory=dict)
    rss: dict[str, Any] = field(default_factory=dict)
    arm_cached: dict[str, Series] = field(default_factory=dict)
    arm_cold: dict[str, Series] = field(default_factory=dict)
    server_rss_kib: dict[str, int] = field(default_factory=dict)  # the server's VmRSS after each phase
    loads: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, profile: Profile, setup: Setup, registry: Registry, runtime: RuncRuntime) -> None:
        self.profile = profile
        self.setup = setup
        self.registry = registry
        self.runtime = runtime
        self.results = Results()
        self.verify = ssl.create_default_context(cafile=registry.ca_path)
        self.credential = BasicCredential(registry.username, registry.password)
        self.workdir = Path(setup.workdir)
        self.lowers: list[Path] = []
        self.template: dict[str, Any] = {}
        self._count = 0

    def _next(self) -> int:
        self._count += 1
        return self._count

    def spec(self, container_id: str, sandbox_id: str, lowers: list[Path]) -> ContainerSpec:
        return ContainerSpec(
            id=container_id,
            sandbox_id=sandbox_id,
            rootfs_layers=lowers,
            args=ARGS,
            env=ENV,
            resources=RESOURCES,
            stop_grace_s=0,
        )

    # -- preparation ----------------------------------------------------------------------------

    async def prepare(self) -> None:
        """The warm phase's image (pulled and unpacked once), the sandbox every container joins,
        and the reference's config.json: the one moorage generates for the same container."""
        await self.runtime.create_sandbox(SandboxSpec(id="bench", hostname="bench"))
        store = self.workdir / "warm-image"
        blobs = open_blob_store("filesystem", store / "content")
        async with ImageSource(blobs, verify=self.verify, platform=AMD64) as source:
            pulled = await source.pull(self.registry.reference, self.credential, platform=AMD64)
        snapshotter = Snapshotter(store / "snapshots")
        self.lowers = await snapshotter.prepare(
            [
                (layer_opener(store / "content", layer.digest, layer.media_type), layer.diff_id)
                for layer in pulled.layers
            ]
        )
        await self.runtime.create(self.spec("template", "bench", self.lowers))
        self.template = json.loads((self.runtime.layout.bundle("template") / "config.json").read_text())
        await self.runtime.delete("template")

    def reference_config(self, container_id: str) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(json.dumps(self.template))
        config["linux"]["cgroupsPath"] = f"/{self.setup.cgroup_parent}/{container_id}"
        return config

    def reference_id(self) -> str:
        return f"{self.setup.reference_prefix}-{self._next()}"

    def write_config(self, bundle: Path, container_id: str) -> None:
        (bundle / "config.json").write_text(json.dumps(self.reference_config(container_id)))

    def delete_reference(self, container_id: str, bundle: Path) -> None:
        run_tool(runc_argv(self.setup, "delete", "--force", container_id))
        mounts.unmount_all(bundle)
        shutil.rmtree(bundle, ignore_errors=True)

    def check_running(self, container_id: str) -> None:
        out = subprocess.run(
            runc_argv(self.setup, "state", container_id), capture_output=True, text=True, check=False
        )
        status = json.loads(out.stdout or "{}").get("status")
        if status != "running":
            raise RuntimeError(f"reference container {container_id} is {status!r}: {out.stderr}")

    # -- warm start -----------------------------------------------------------------------------

    async def warm_moorage(self, timer: StepTimer) -> float:
        container_id = f"w{self._next()}"
        spec = self.spec(container_id, "bench", self.lowers)
        timer.discard()  # what ran since the last measurement (deletes, the reference's mounts)
        began = time.perf_counter()
        await self.runtime.create(spec)
        state = await self.runtime.start(container_id)
        elapsed = time.perf_counter() - began
        timer.finish(elapsed)
        if state.status is not ContainerStatus.RUNNING:
            raise RuntimeError(f"moorage container {container_id} is {state.status}")
        await self.runtime.delete(container_id)
        return elapsed

    def reference_bundle(self, container_id: str) -> Path:
        bundle = self.workdir / "ref" / container_id
        bundle.mkdir(parents=True)
        mounts.mount_overlay(self.lowers, bundle / "upper", bundle / "work", bundle / "rootfs")
        (bundle / "rootfs").chmod(0o755)
        self.write_config(bundle, container_id)
        return bundle

    def warm_runc_run(self) -> float:
        container_id = self.reference_id()
        bundle = self.reference_bundle(container_id)
        try:
            began = time.perf_counter()
            run_tool(
                runc_argv(
                    self.setup,
                    "run",
                    "-d",
                    "--pid-file",
                    str(bundle / "init.pid"),
                    "-b",
                    str(bundle),
                    container_id,
                )
            )
            elapsed = time.perf_counter() - began
            self.check_running(container_id)
        finally:
            self.delete_reference(container_id, bundle)
        return elapsed

    def warm_runc_create_start(self) -> float:
        container_id = self.reference_id()
        bundle = self.reference_bundle(container_id)
        try:
            began = time.perf_counter()
            run_tool(
                runc_argv(
                    self.setup,
                    "create",
                    "--pid-file",
                    str(bundle / "init.pid"),
                    "-b",
                    str(bundle),
                    container_id,
                )
            )
            run_tool(runc_argv(self.setup, "start", container_id))
            elapsed = time.perf_counter() - began
            self.check_running(container_id)
        finally:
            self.delete_reference(container_id, bundle)
        return elapsed

    async def warm(self) -> None:
        self.results.loads.append(load1())
        series = {
            MOORAGE: Series(),
            "runc run -d": Series(),
            "runc create + runc start": Series(),
        }
        timer = moorage_step_timer()
        try:
            await self.warm_moorage(timer)  # warm-up: page cache, imports, first cgroup parents
            timer.series.clear()
            self.warm_runc_run()
            for run in range(self.profile.warm_runs):
                order: list[str] = list(series)
                if run % 2:
                    order.reverse()
                for name in order:
                    if name == MOORAGE:
                        series[name].add(await self.warm_moorage(timer))
                    elif name == "runc run -d":
                        series[name].add(self.warm_runc_run())
                    else:
                        series[name].add(self.warm_runc_create_start())
        finally:
            timer.restore()
        self.results.warm = series
        self.results.warm_steps = timer.series
        print(
            f"  warm: moorage {series[MOORAGE].median * 1000:.1f} ms, runc run -d "
            f"{series['runc run -d'].median * 1000:.1f} ms",
            flush=True,
        )

    # -- cold start -----------------------------------------------------------------------------

    async def cold_moorage(self, timer: StepTimer) -> dict[str, float]:
        number = self._next()
        where = self.workdir / "cold" / f"moorage-{number}"
        container_id = f"c{number}"
        blobs = open_blob_store("filesystem", where / "content")
        snapshotter = Snapshotter(where / "snapshots")
        try:
            began = time.perf_counter()
            async with ImageSource(blobs, verify=self.verify, platform=AMD64) as source:
                pulled = await source.pull(self.registry.reference, self.credential, platform=AMD64)
            pulled_at = time.perf_counter()
            layers = [
                (layer_opener(where / "content", layer.digest, layer.media_type), layer.diff_id)
                for layer in pulled.layers
            ]
            lowers = await snapshotter.prepare(layers)
            timer.discard()
            unpacked_at = time.perf_counter()
            await self.runtime.create(self.spec(container_id, "bench", lowers))
            state = await self.runtime.start(container_id)
            done = time.perf_counter()
            timer.finish(done - unpacked_at)
            if state.status is not ContainerStatus.RUNNING:
                raise RuntimeError(f"moorage container {container_id} is {state.status}")
        finally:
            await self.runtime.delete(container_id)
            shutil.rmtree(where, ignore_errors=True)
        return {
            "total": done - began,
            "pull": pulled_at - began,
            "unpack": unpacked_at - pulled_at,
            "run": done - unpacked_at,
        }

    def cold_reference(self, tag: str = TAG) -> dict[str, float]:
        container_id = self.reference_id()
        where = self.workdir / "cold" / container_id
        layout, bundle = where / "oci", where / "bundle"
        where.mkdir(parents=True)
        try:
            began = time.perf_counter()
            run_tool(
                [
                    "skopeo", "copy",
                    "--src-cert-dir", str(self.registry.cert_dir),
                    "--src-creds", f"{self.registry.username}:{self.registry.password}",
                    f"docker://{self.registry.tagged(tag)}", f"oci:{layout}:{tag}",
                ]
            )  # fmt: skip
            pulled_at = time.perf_counter()
            run_tool(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)])
            unpacked_at = time.perf_counter()
            self.write_config(bundle, container_id)
            run_tool(
                runc_argv(
                    self.setup,
                    "run",
                    "-d",
                    "--pid-file",
                    str(bundle / "init.pid"),
                    "-b",
                    str(bundle),
                    container_id,
                )
            )
            done = time.perf_counter()
            self.check_running(container_id)
        finally:
            with contextlib.suppress(RuntimeError):
                run_tool(runc_argv(self.setup, "delete", "--force", container_id))
            mounts.unmount_all(where)
            shutil.rmtree(where, ignore_errors=True)
        return {
            "total": done - began,
            "pull": pulled_at - began,
            "unpack": unpacked_at - pulled_at,
            "run": done - unpacked_at,
        }

    async def cold(self) -> None:
        self.results.loads.append(load1())
        series: dict[str, Series] = {}
        timer = moorage_step_timer()
        try:
            await self.cold_runs(series, timer)
        finally:
            timer.restore()
        self.results.cold = series
        self.results.cold_steps = timer.series

    async def cold_runs(self, series: dict[str, Series], timer: StepTimer) -> None:
        for run in range(self.profile.cold_runs):
            sides = [MOORAGE, REFERENCE] if run % 2 == 0 else [REFERENCE, MOORAGE]
            for side in sides:
                # Write back the previous run's dirty pages first (untimed), so that neither side
                # pays for the other's writeback; the kernel's page cache is not dropped.
                await asyncio.to_thread(os.sync)
                parts = await self.cold_moorage(timer) if side == MOORAGE else self.cold_reference()
                for part, value in parts.items():
                    series.setdefault(f"{side}:{part}", Series()).add(value)
            print(
                f"  cold run {run + 1}: moorage {series[f'{MOORAGE}:total'].values[-1]:.2f} s, "
                f"reference {series[f'{REFERENCE}:total'].values[-1]:.2f} s",
                flush=True,
            )

    # -- container groups through the server's ARM API ------------------------------------------

    async def arm_cached(self, arm: ArmGroups) -> None:
        """PUT → Running of a one-container group whose image the node has (layers and
        snapshots), alternating with bare ``runc run -d`` of a prepared bundle."""
        self.results.loads.append(load1())
        image = self.group_image(TAG)
        await put_to_running(arm, "warmup", image)  # pulls and unpacks once (untimed)
        await arm.delete("warmup")
        series = {MOORAGE: Series(), "runc run -d": Series()}
        for run in range(self.profile.arm_cached_runs):
            order = [MOORAGE, "runc run -d"] if run % 2 == 0 else ["runc run -d", MOORAGE]
            for side in order:
                if side == MOORAGE:
                    name = f"cached{run}"
                    series[side].add(await put_to_running(arm, name, image))
                    await arm.delete(name)
                else:
                    series[side].add(self.warm_runc_run())
        self.results.arm_cached = series
        print(
            f"  ARM cached: PUT → Running {series[MOORAGE].median * 1000:.0f} ms, runc run -d "
            f"{series['runc run -d'].median * 1000:.1f} ms",
            flush=True,
        )

    async def arm_cold(self, arm: ArmGroups) -> None:
        """PUT → Running of a group whose image nothing has seen (a fresh variant per run),
        alternating with skopeo + umoci + runc of the same variant."""
        self.results.loads.append(load1())
        series: dict[str, Series] = {MOORAGE: Series(), REFERENCE: Series()}
        for run in range(self.profile.arm_cold_runs):
            tag = f"cold{run}"
            built = await asyncio.to_thread(bench_image, self.profile, SEED + 1000 + run)
            layout = await asyncio.to_thread(write_layout, self.workdir / f"layout-{tag}", tag, built.image)
            await asyncio.to_thread(push, self.registry, layout, tag)
            shutil.rmtree(layout)
            order = [MOORAGE, REFERENCE] if run % 2 == 0 else [REFERENCE, MOORAGE]
            for side in order:
                await asyncio.to_thread(os.sync)  # as in the cold phase: nobody pays the other's writeback
                if side == MOORAGE:
                    name = f"cold{run}"
                    series[side].add(await put_to_running(arm, name, self.group_image(tag)))
                    await arm.delete(name)
                else:
                    series[side].add(self.cold_reference(tag)["total"])
            print(
                f"  ARM cold run {run + 1}: PUT → Running {series[MOORAGE].values[-1]:.2f} s, "
                f"reference {series[REFERENCE].values[-1]:.2f} s",
                flush=True,
            )
        self.results.arm_cold = series

    async def rss(self, arm: ArmGroups, server: ServerProcess) -> None:
        self.results.loads.append(load1())
        self.results.rss = await hundred_containers(
            arm,
            self.group_image(TAG),
            server_pid=server.pid,
            containers=self.profile.rss_containers,
            groups=self.profile.rss_groups,
            host=server,
        )
        rss = self.results.rss
        print(
            f"  rss: {rss['vmrss_kib'] / 1024:.1f} MiB with {rss['running']} containers; "
            f"leftovers after deleting: {rss['leftovers'] or 'none'}",
            flush=True,
        )

    def group_image(self, tag: str) -> GroupImage:
        registry = self.registry
        return GroupImage(registry.tagged(tag), registry.login_server, registry.username, registry.password)


def layer_opener(content: Path, digest: str, media_type: str) -> Callable[[], BinaryIO]:
    """Opens a layer in a filesystem blob store (``<root>/blobs/<alg>/<2 hex>/<hex>``)."""
    algorithm, _, hexdigest = digest.partition(":")
    path = content / "blobs" / algorithm / hexdigest[:2] / hexdigest
    if not path.is_file():
        raise RuntimeError(f"layer {digest} is not at {path}")
    return lambda: open_layer(path, media_type)


# -- the server's runtime on the host ----------------------------------------------------------------


class ServerProcess:
    """The moorage server under test and its runtime's objects on this host (its runtime uses the
    default runc root and cgroup parent, with the server's own prefix)."""

    runc_root = Path("/run/moorage/runc")

    def __init__(self, server: Any) -> None:
        self.server = server
        self.prefix: str = server.runtime_prefix
        self.state_dir: Path = server.home / "node" / "runtime"

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return int(self.server.process.pid)

    def vmrss_kib(self) -> int:
        return rss_kib(self.pid)["VmRSS"]

    def container_pids(self) -> dict[str, int]:
        listing = subprocess.run(
            [RUNC, "--root", str(self.runc_root), "list", "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        return {
            entry["id"]: int(entry["pid"])
            for entry in json.loads(listing.stdout or "null") or []
            if entry["id"].startswith(f"{self.prefix}-") and entry["status"] == "running"
        }

    def conmon_pids(self) -> list[int]:
        return [pid for rid, pid in conmon.find_conmons().items() if rid.startswith(f"{self.prefix}-")]

    def leftovers(self) -> list[str]:
        found = host_leftovers(self.prefix, self.state_dir)
        for kind in ("containers", "sandboxes"):
            found += [f"{kind} {p.name}" for p in (self.state_dir / kind).iterdir()]
        argv = ["nft", "list", "map", "ip", self.prefix, "hostports"]
        elements = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        if "elements" in elements:
            found.append("nftables host-port elements")
        return found


# -- cleaning up ------------------------------------------------------------------------------------


async def sweep_runtime(setup: Setup) -> list[str]:
    """Remove this run's containers, sandboxes and networks through the runtime (idempotent, best
    effort); returns what it could not do."""
    problems: list[str] = []

    async def attempt(what: str, work: Awaitable[Any]) -> None:
        try:
            await work
        except Exception as exc:  # keep sweeping, report at the end
            problems.append(f"{what}: {exc}")

    runtime = setup.runtime()
    for sandbox in await runtime.sandboxes():
        await attempt(f"sandbox {sandbox.id}", runtime.delete_sandbox(sandbox.id))
    for container in await runtime.containers():
        await attempt(f"container {container.id}", runtime.delete(container.id))
    for sandbox_id in runtime.layout.sandbox_ids():
        await attempt(f"sandbox {sandbox_id}", runtime.teardown_sandbox(sandbox_id))
    await attempt("reconcile", runtime.reconcile())
    network = setup.network()
    for sandbox_id in await network.sandboxes():
        await attempt(f"network {sandbox_id}", network.delete(sandbox_id))
    await attempt("network teardown", network.teardown())
    return problems


def sweep_host(setup: Setup) -> list[str]:
    """Remove what the runtime does not know: bare runc containers, stray conmons, mounts, the
    private runc root, the cgroup parents, network namespaces. Idempotent, best effort."""
    problems: list[str] = []
    if setup.runc_root.is_dir():
        listing = subprocess.run(
            runc_argv(setup, "list", "--format", "json"), capture_output=True, text=True, check=False
        )
        for entry in json.loads(listing.stdout or "null") or []:
            subprocess.run(
                runc_argv(setup, "delete", "--force", entry["id"]), capture_output=True, check=False
            )
    for runc_id, pid in conmon.find_conmons().items():
        if runc_id.startswith((f"{setup.prefix}-", f"{setup.reference_prefix}-")):
            conmon.kill_conmon(pid, runc_id)
            problems.append(f"conmon of {runc_id} had to be killed")
    try:
        mounts.unmount_all(Path(setup.workdir))
    except Exception as exc:  # keep sweeping
        problems.append(f"unmount: {exc}")
    shutil.rmtree(setup.runc_root.parent, ignore_errors=True)
    if not cgroups.remove(f"/{setup.cgroup_parent}"):
        problems.append(f"cgroup /{setup.cgroup_parent} still holds processes")
    if NETNS_DIR.is_dir():
        for entry in NETNS_DIR.iterdir():
            if entry.name.startswith((f"{setup.prefix}-", f"{setup.reference_prefix}-")):
                subprocess.run(["ip", "netns", "delete", entry.name], capture_output=True, check=False)
                problems.append(f"netns {entry.name} had to be deleted by hand")
    return problems


def sweep(setup: Setup) -> None:
    """Everything, from outside any event loop (the last line of defence in ``main``)."""
    problems = []
    if setup.state_dir.exists():
        problems += asyncio.run(sweep_runtime(setup))
    problems += sweep_host(setup)
    if problems:
        print("cleanup: " + "; ".join(problems), file=sys.stderr)


# -- the report -------------------------------------------------------------------------------------


def version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "missing"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


def machine() -> dict[str, str]:
    meminfo = Path("/proc/meminfo").read_text()
    match = re.search(r"MemTotal:\s+(\d+)", meminfo)
    total = int(match.group(1)) * 1024 if match else 0
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    cgroup = "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1 (hybrid)"
    return {
        "moorage": f"commit {commit or 'unknown'}" + (" with uncommitted changes in src/" if dirty else ""),
        "cpus": str(os.cpu_count()),
        "cpu": model.group(1).strip() if model else platform.machine(),
        "memory": f"{total / (1 << 30):.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cgroup": cgroup,
        "tools": ", ".join(
            [
                version([RUNC, "--version"]),
                version([CONMON, "--version"]),
                version(["skopeo", "--version"]),
                version(["umoci", "--version"]),
            ]
        ),
        "fs": subprocess.run(
            ["findmnt", "-no", "FSTYPE", "-T", tempfile.gettempdir()],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }


def ms(value: float) -> str:
    return f"{value * 1000:.1f}"


def verdict(ratio: float, target: float) -> str:
    return f"<= {target:g}x: {'met' if ratio <= target else 'MISSED'}"


def report(
    profile: Profile,
    results: Results,
    *,
    image: BuiltImage,
    command: str,
    started: datetime.datetime,
    elapsed: float,
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
    facts: dict[str, str],
) -> str:
    warm, cold, rss = results.warm, results.cold, results.rss
    before, after = loads
    lines = [
        f"Run: {started:%Y-%m-%d %H:%M} UTC, profile `{profile.name}`, {elapsed / 60:.1f} min.",
        "",
        "```",
        command,
        "```",
        "",
        f"- Machine: {facts['cpus']} CPUs ({facts['cpu']}), {facts['memory']} RAM, Linux {facts['kernel']}, "
        f"cgroup {facts['cgroup']}, {facts['fs']} under {tempfile.gettempdir()}, Python {facts['python']}. "
        f"The CPUs are shared with other work: load average {before[0]:.2f}/{before[1]:.2f}/{before[2]:.2f} "
        f"(1/5/15 min) before the run, {after[0]:.2f}/{after[1]:.2f}/{after[2]:.2f} after it; the 1-minute "
        f"load was {', '.join(f'{v:.2f}' for v in results.loads)} at the starts of the memory, warm, "
        "cold, cached PUT and cold PUT phases.",
        f"- Tools: {facts['tools']}. moorage: {facts['moorage']}.",
        f"- Image: busybox-static base layer + {profile.data_layers} layers, {image.files} files, "
        f"{image.uncompressed / MIB:.0f} MiB uncompressed, {image.compressed / MIB:.0f} MiB gzipped "
        "(file content half random bytes, half word-like text), pushed with skopeo to a registry of a "
        "real moorage server (`python -m moorage serve --port 0`), pulled over loopback HTTPS.",
        f"- Container: `{' '.join(ARGS)}` with cpu {RESOURCES.cpu:g}, "
        f"memory {(RESOURCES.memory_bytes or 0) // MIB} "
        f"MiB, pids {RESOURCES.pids}, in a sandbox (network namespace on a CNI bridge) made beforehand; "
        "the reference runs moorage's own generated `config.json` (same namespaces, mounts, limits).",
        "",
        "| Metric | moorage | reference | moorage / reference | Target |",
        "|---|---:|---:|---:|---|",
    ]
    missed: list[str] = []
    ours = warm[MOORAGE]
    for name in ("runc run -d", "runc create + runc start"):
        ref = warm[name]
        ratio = ours.median / ref.median
        target = "<= 2x" if name == "runc run -d" else "(no target)"
        if name == "runc run -d":
            target = verdict(ratio, 2.0)
            if ratio > 2.0:
                missed.append(f"warm start ({ratio:.2f}x)")
        lines.append(
            f"| Warm start, create → running (ms), vs `{name}` (n={len(ours.values)}) "
            f"| {ms(ours.median)} ({ours.spread(1000, 0)}) | {ms(ref.median)} ({ref.spread(1000, 0)}) "
            f"| {ratio:.2f}x | {target} |"
        )
    labels = {
        "total": "Cold start, pull + unpack + run (s)",
        "pull": "  of which pull: `ImageSource.pull` vs `skopeo copy` (s)",
        "unpack": "  of which unpack: `Snapshotter.prepare` vs `umoci unpack` (s)",
        "run": "  of which run: create + start vs config + `runc run -d` (s)",
    }
    for part, label in labels.items():
        ours_part, ref_part = cold[f"{MOORAGE}:{part}"], cold[f"{REFERENCE}:{part}"]
        ratio = ours_part.median / ref_part.median
        target = "(no target)"
        if part == "total":
            target = verdict(ratio, 1.0)
            if ratio > 1.0:
                missed.append(f"cold start ({ratio:.2f}x)")
        lines.append(
            f"| {label} (n={len(ours_part.values)}) | {ours_part.median:.3f} ({ours_part.spread(1, 2)}) "
            f"| {ref_part.median:.3f} ({ref_part.spread(1, 2)}) | {ratio:.2f}x | {target} |"
        )
    rss_mib = rss["vmrss_kib"] / 1024
    rss_ok = rss_mib <= 150 and rss["running"] == rss["requested"]
    if not rss_ok:
        missed.append(f"control-plane RSS ({rss_mib:.1f} MiB, {rss['running']} running)")
    lines.append(
        f"| Control-plane VmRSS with {rss['running']} running containers in {rss['groups']} groups, "
        "created through ARM; the server had taken the image's push, its first group pulled it (MiB) "
        f"| {rss_mib:.1f} (median of 10 samples; max {rss['vmrss_kib_max'] / 1024:.1f}, "
        f"{rss['idle_vmrss_kib'] / 1024:.1f} before the first group) | | | <= 150 MiB: "
        f"{'met' if rss_ok else 'MISSED'} |"
    )
    end_kib = list(results.server_rss_kib.values())[-1]
    lines.append(
        "| The same server's VmRSS at the end of the run, after serving every pull of the later phases "
        f"(MiB) | {end_kib / 1024:.1f} | | | (no target) |"
    )
    per_container = rss["python_supervisors"] + rss["python_descendants"]
    if per_container:
        missed.append("Python processes per container")
    supervisors = ", ".join(f"`{exe}` × {n}" for exe, n in rss["supervisors"].items())
    lines.append(
        f"| Python processes per container | {per_container} (parents of the containers' init: "
        f"{supervisors}) | | | 0: {'met' if per_container == 0 else 'MISSED'} |"
    )
    if rss["leftovers"]:
        missed.append("cleanup after deleting the groups")
    descendants = ", ".join(f"`{exe}` × {n}" for exe, n in rss["server_descendants"].items()) or "none"
    checkpoints = "; ".join(f"{where}: {kib / 1024:.1f}" for where, kib in results.server_rss_kib.items())
    lines += [
        "",
        f"Memory details. The server is one process (ARM, the registry, the runtime, {rss['threads']} "
        f"threads); its descendants while the containers ran: {descendants}. Each container is "
        f"supervised by a conmon ({rss['conmons']} of them, {rss['conmon_rss_kib_median'] / 1024:.1f} "
        f"MiB VmRSS each, median), double-forked away from the server. Peak VmRSS while the groups were "
        f"created: {rss['peak_vmrss_kib'] / 1024:.1f} MiB (VmHWM over the server's life "
        f"{rss['vmhwm_kib'] / 1024:.1f}). Creating the {rss['groups']} groups (8 PUTs at a time, each "
        f"until Running) took {rss['seconds_to_start']:.1f} s, deleting them "
        f"{rss['seconds_to_delete']:.1f} s; afterwards the host held "
        f"{'nothing of the server' if not rss['leftovers'] else ', '.join(rss['leftovers'])} (containers, "
        "mounts, cgroups, conmons, runc state, network namespaces, host-port elements checked). Host "
        f"Python processes: {rss['python_processes_before']} before, {rss['python_processes_during']} "
        "with the containers running (other work shares the host). The server's VmRSS (MiB) over the "
        f"run: {checkpoints}.",
        "",
        "Where moorage's create → running goes (median per step over the runs; runc commands are separate "
        "processes, the overlay mount runs in a worker thread). Cold: the same steps right after the "
        "unpack, while its dirty pages are still being written back.",
        "",
        "| Step | warm (ms) | cold (ms) |",
        "|---|---:|---:|",
    ]
    for step, series in sorted(results.warm_steps.items(), key=lambda item: -item[1].median):
        cold_step = results.cold_steps.get(step)
        lines.append(f"| {step} | {ms(series.median)} | {ms(cold_step.median) if cold_step else ''} |")
    lines.append("")
    if missed:
        lines.append(f"**Targets missed: {', '.join(missed)}.**")
    else:
        lines.append("**All targets met.**")
    lines += [f"- {note}" for note in results.notes]
    return "\n".join(lines) + "\n"


def groups_report(
    profile: Profile, results: Results, *, command: str, started: datetime.datetime, image: BuiltImage
) -> str:
    """The container-groups section (issue 5): PUT → Running beside issue 4's baselines."""
    cached, cold = results.arm_cached, results.arm_cold
    lines = [
        f"Run: {started:%Y-%m-%d %H:%M} UTC, profile `{profile.name}`, the same run as the runtime section "
        "above (machine, load and tools there).",
        "",
        "```",
        command,
        "```",
        "",
        "- Server: `python -m moorage serve --port 0` (runc runtime, default settings), the same process "
        "that hosts the registry; the client is httpx with the bootstrap principal's bearer token.",
        "- Group: one container, the image's own command (`sleep 3600`), cpu 1, memoryInGB 0.5, "
        "username/password credentials for the registry (admin user), `2023-05-01`. Timed from sending "
        f"the PUT until GET shows `provisioningState` `Succeeded` and `instanceView.state` `Running` (GET "
        f"polled every {POLL_MS} ms). It includes the image check of validation (token round trip and "
        "manifest HEAD on the platform channel), the LRO, the pull (resolve only, when cached), a new "
        "network namespace on the CNI bridge, and the container's create and start. The group is "
        "deleted after each run (untimed).",
        f"- Cached: the image ({image.uncompressed / MIB:.0f} MiB, {len(image.image.layers)} layers) was "
        "pulled and unpacked by a first, untimed group. Reference: bare `runc run -d` of a prepared "
        "bundle (overlay mounted, the `config.json` moorage generates) in a network namespace made "
        "beforehand — issue 4's warm baseline, measured alternately in the same loop.",
        "- Cold: a fresh variant of the image for each run (same layers, sizes and file counts; other "
        "bytes in every layer), pushed beforehand (untimed), so neither side has any of it. Reference: "
        "`skopeo copy` + `umoci unpack` + `runc run -d` of the same variant — issue 4's cold baseline. "
        "The two sides alternate, after an untimed `sync`.",
        "",
        "| Metric | moorage (ARM) | reference | moorage / reference |",
        "|---|---:|---:|---:|",
    ]
    ours, ref = cached[MOORAGE], cached["runc run -d"]
    lines.append(
        f"| PUT → Running, cached image (ms), vs `runc run -d` (n={len(ours.values)}) "
        f"| {ms(ours.median)} ({ours.spread(1000, 0)}) | {ms(ref.median)} ({ref.spread(1000, 0)}) "
        f"| {ours.median / ref.median:.2f}x |"
    )
    ours, ref = cold[MOORAGE], cold[REFERENCE]
    lines.append(
        f"| PUT → Running, cold image (s), vs `skopeo copy` + `umoci unpack` + `runc run -d` "
        f"(n={len(ours.values)}) | {ours.median:.3f} ({ours.spread(1, 2)}) | {ref.median:.3f} "
        f"({ref.spread(1, 2)}) | {ours.median / ref.median:.2f}x |"
    )
    lines += [
        "",
        "No target is set for these (issue 5 asks for the numbers beside issue 4's baselines). For the "
        "runtime alone (no ARM, no new network namespace) see the warm and cold rows of the runtime "
        "section.",
    ]
    return "\n".join(lines) + "\n"


def write_doc(path: Path, body: str, groups_body: str) -> None:
    write_section(path, body, start=SECTION_START, end=SECTION_END, heading=HEADING)
    write_section(path, groups_body, start=GROUPS_START, end=GROUPS_END, heading=GROUPS_HEADING)


# -- main -------------------------------------------------------------------------------------------


async def measure(profile: Profile, setup: Setup, registry: Registry, server: ServerProcess) -> Results:
    """Every phase, in this order: the 100 containers through the server's ARM API, warm and cold
    starts through a ``RuncRuntime`` of the bench's own (the server only serves the registry),
    then PUT → Running with a cached and with cold images through the server's ARM API."""
    from tests.api.conftest import fetch_token  # noqa: PLC0415 - pulls in the Azure SDK

    runtime = setup.runtime()
    bench = Bench(profile, setup, registry, runtime)
    checkpoints = bench.results.server_rss_kib
    checkpoints["after the push"] = server.vmrss_kib()
    token = await asyncio.to_thread(
        fetch_token, server.server, server.server.client_id, server.server.client_secret
    )
    plane = server.server
    arm = ArmGroups(plane.endpoint, plane.ca_path, token, plane.subscription_id, "bench")
    try:
        # Memory first: the server has served the push only, and its first group pulls the image
        # (on the platform channel, in-process) as a control plane's first group would.
        await bench.rss(arm, server)
        rss = bench.results.rss
        checkpoints[f"with {rss['running']} containers running"] = rss["vmrss_kib"]
        checkpoints["after deleting those groups"] = rss["after_delete_vmrss_kib"]
        await bench.prepare()
        await bench.warm()
        await bench.cold()
        checkpoints["after serving the warm and cold phases' pulls"] = server.vmrss_kib()
        await bench.arm_cached(arm)
        checkpoints["after the cached PUT → Running runs"] = server.vmrss_kib()
        await bench.arm_cold(arm)
        checkpoints["after the cold PUT → Running runs (end of the run)"] = server.vmrss_kib()
    finally:
        await arm.aclose()
        problems = await sweep_runtime(setup)
        problems += await asyncio.to_thread(sweep_host, setup)
        if problems:
            print("cleanup: " + "; ".join(problems), file=sys.stderr)
    return bench.results


def check_host() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root (runc, mounts, network namespaces)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None and not Path(tool).exists()]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)}")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so that every ``finally`` (the cleanup) runs."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small image, few runs (smoke run)")
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        help=f"write results into this Markdown file (default: {DEFAULT_DOC.relative_to(ROOT)} for a full "
        "run; a --quick run only prints unless --doc is given)",
    )
    args = parser.parse_args()
    configure_logging(level="warning")
    check_host()
    profile = QUICK if args.quick else FULL
    doc = args.doc if args.doc is not None else (None if args.quick else DEFAULT_DOC)
    command = ".venv/bin/python bench/runtime_bench.py" + (" --quick" if args.quick else "") + "  # as root"
    started = datetime.datetime.now(datetime.UTC)
    facts = machine()
    load_before = os.getloadavg()
    clock = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="moorage-rtbench-"))
    setup = Setup(str(workdir), secrets.token_hex(3), free_subnet())
    from tests.server import RunningServer  # noqa: PLC0415

    server = RunningServer(workdir / "home", runtime_subnet=free_subnet(avoid=setup.subnet))
    print(
        f"runtime bench ({profile.name}) in {workdir}, prefix {setup.prefix}, server prefix "
        f"{server.runtime_prefix}",
        flush=True,
    )
    with interruptible(), contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        stack.callback(sweep, setup)
        stack.callback(server.remove_runtime_objects)  # after the stop below (callbacks run LIFO)
        print("  building the image", flush=True)
        image = bench_image(profile)
        layout = write_layout(workdir / "layout", TAG, image.image)
        print(
            f"  image: {len(image.image.layers)} layers, {image.uncompressed / MIB:.0f} MiB, "
            f"{image.compressed / MIB:.0f} MiB gzipped, {image.files} files",
            flush=True,
        )
        stack.callback(server.stop)
        server.start()
        registry = create_registry(server, workdir)
        push(registry, layout)
        shutil.rmtree(layout)
        print(f"  pushed to {registry.reference}", flush=True)
        results = asyncio.run(measure(profile, setup, registry, ServerProcess(server)))
    load_after = os.getloadavg()
    text = report(
        profile,
        results,
        image=image,
        command=command,
        started=started,
        elapsed=time.monotonic() - clock,
        loads=(load_before, load_after),
        facts=facts,
    )
    groups_text = groups_report(profile, results, command=command, started=started, image=image)
    print()
    print(text)
    print(groups_text)
    if doc is not None:
        write_doc(doc, text, groups_text)
        print(f"results written to {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
