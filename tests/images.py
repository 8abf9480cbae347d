"""Test images built from local files (busybox-static), never fetched: OCI image layouts with
reproducible digests, single- and multi-platform."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


def tar_layer(
    files: dict[str, bytes], *, modes: dict[str, int] | None = None, symlinks: dict[str, str] | None = None
) -> bytes:
    """An uncompressed tar with fixed metadata (reproducible)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), (modes or {}).get(name, 0o644), 0
            tar.addfile(info, io.BytesIO(files[name]))
        for name, target in sorted((symlinks or {}).items()):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 0
            tar.addfile(info)
    return buf.getvalue()


def gzip_layer(tar_bytes: bytes) -> bytes:
    return gzip.compress(tar_bytes, mtime=0)


@dataclass(frozen=True)
class Image:
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


def build_image(
    layers: list[bytes],
    *,
    cmd: list[str] | None = None,
    architecture: str = "amd64",
    os: str = "linux",
    env: list[str] | None = None,
) -> Image:
    """An OCI image from uncompressed layer tars (gzipped here)."""
    gz = tuple(Blob(OCI_LAYER_GZIP, gzip_layer(layer)) for layer in layers)
    config = {
        "architecture": architecture,
        "os": os,
        "config": {"Cmd": cmd or ["/bin/sh"], "Env": env or ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
    }
    config_blob = Blob(OCI_CONFIG, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [layer.descriptor() for layer in gz],
    }
    return Image(Blob(OCI_MANIFEST, json.dumps(manifest, sort_keys=True).encode()), config_blob, gz)


def busybox_image(
    extra_files: dict[str, bytes] | None = None, *, cmd: list[str] | None = None, architecture: str = "amd64"
) -> Image:
    """busybox-static as /bin/busybox with /bin/sh, plus ``extra_files`` in a second layer."""
    base = tar_layer(
        {"bin/busybox": BUSYBOX.read_bytes()}, modes={"bin/busybox": 0o755}, symlinks={"bin/sh": "busybox"}
    )
    layers = [base]
    if extra_files:
        layers.append(tar_layer(extra_files))
    return build_image(layers, cmd=cmd, architecture=architecture)


def index_of(images: dict[str, Image]) -> Blob:
    """An OCI image index with one entry per ``arch`` key (``amd64``, ``arm64/v8``...)."""
    manifests = []
    for platform, image in images.items():
        arch, _, variant = platform.partition("/")
        entry: dict[str, Any] = {"os": "linux", "architecture": arch}
        if variant:
            entry["variant"] = variant
        manifests.append(image.manifest.descriptor(platform=entry))
    return Blob(
        OCI_INDEX, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    )


def write_layout(
    path: Path,
    tag: str,
    image: Image | None = None,
    *,
    index: Blob | None = None,
    images: list[Image] | None = None,
) -> Path:
    """Write an OCI image layout with ``tag`` naming either ``image`` or ``index`` (with ``images``)."""
    if path.exists():
        shutil.rmtree(path)
    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True)
    all_images = [image] if image else list(images or [])
    for img in all_images:
        for blob in (img.manifest, *img.blobs):
            (blobs_dir / blob.digest.split(":")[1]).write_bytes(blob.data)
    top = index if index is not None else all_images[0].manifest
    (blobs_dir / top.digest.split(":")[1]).write_bytes(top.data)
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    entry = top.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return path
