"""Manifest parsing and validation: pure functions over bytes, no I/O.

Follows the OCI image spec v1.1 and distribution spec v1.1, plus Docker's schema 2 manifest and
manifest list (which ``docker push`` still sends). Docker schema 1 is refused. Every failure is a
:class:`ManifestInvalid` (code ``MANIFEST_INVALID``) whose ``target`` names the offending field,
except an oversized body, which is a :class:`ManifestTooLarge` so that the OCI edge can answer
413 as the distribution spec suggests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from moorage.core.errors import InvalidArgument
from moorage.store.blobs import SUPPORTED_ALGORITHMS, DigestInvalid, parse_digest

_T = TypeVar("_T")

# -- media types ----------------------------------------------------------------------------------

OCI_IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

OCI_EMPTY = "application/vnd.oci.empty.v1+json"
#: The digest of ``{}``, the empty descriptor's content (image spec v1.1, "Guidance for an Empty
#: Descriptor").
OCI_EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

IMAGE_MANIFEST_TYPES = frozenset({OCI_IMAGE_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_IMAGE_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES
SCHEMA1_TYPES = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})
LAYER_TYPES = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_LAYER_NONDISTRIBUTABLE,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_FOREIGN_GZIP,
    }
)
#: Layers that registries need not hold when the descriptor lists ``urls`` to fetch them from
#: (Windows base layers, mostly).
FOREIGN_LAYER_TYPES = frozenset(
    {
        OCI_LAYER_NONDISTRIBUTABLE,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
        DOCKER_LAYER_FOREIGN_GZIP,
    }
)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024

# Annotation BuildKit puts on the index entries that hold attestations (SBOM, provenance).
ATTESTATION_REFERENCE_TYPE = "vnd.docker.reference.type"

# RFC 6838 section 4.2 restricted names, as the image spec requires of mediaType/artifactType.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_MAX_SIZE = 2**63 - 1  # descriptors' sizes are int64

# Content-Type values that say nothing about the manifest: the body's mediaType decides.
_GENERIC_CONTENT_TYPES = frozenset({"", "application/json"})


# -- errors ---------------------------------------------------------------------------------------


class ManifestInvalid(InvalidArgument):
    """Malformed JSON, a schema violation, or a media type we do not accept."""

    default_code = "MANIFEST_INVALID"


class ManifestTooLarge(InvalidArgument):
    """The body exceeds :data:`MAX_MANIFEST_BYTES` (the distribution spec suggests HTTP 413)."""

    default_code = "MANIFEST_INVALID"


# -- model ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    """An index entry's ``platform`` (GOOS/GOARCH spelling)."""

    architecture: str
    os: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor. ``urls`` is kept for foreign layers; ``data`` is verified against
    the digest while parsing and then dropped."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    urls: tuple[str, ...] = ()


#: The OCI empty descriptor: ``{}`` as config of artifacts that have none.
EMPTY_DESCRIPTOR = Descriptor(OCI_EMPTY, OCI_EMPTY_DIGEST, 2)


@dataclass(frozen=True)
class ParsedManifest:
    """A validated manifest or index.

    ``digest`` is the sha256 of the exact bytes parsed; ``artifact_type`` is the value the
    referrers API reports: the ``artifactType`` field, else (image manifests only) the config's
    media type. ``manifests`` holds an index's children and is empty for image manifests;
    ``config`` is ``None`` and ``layers`` empty for indexes.
    """

    media_type: str
    digest: str
    size: int
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str] | None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def blob_references(self) -> tuple[str, ...]:
        """Digests of the blobs this manifest needs in the registry (config, then layers), each
        once. Foreign layers that carry ``urls`` are left out: clients fetch those elsewhere and
        never push them, as distribution allows."""
        wanted: dict[str, None] = {}
        if self.config is not None:
            wanted[self.config.digest] = None
        for layer in self.layers:
            if not (layer.urls and layer.media_type in FOREIGN_LAYER_TYPES):
                wanted[layer.digest] = None
        return tuple(wanted)


# -- parsing --------------------------------------------------------------------------------------


def digest_of(body: bytes, algorithm: str = "sha256") -> str:
    """``algorithm:hex`` of ``body``. Raises :class:`DigestInvalid` for an algorithm other than
    sha256/sha512."""
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise DigestInvalid(f"unsupported digest algorithm '{algorithm[:50]}'")
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Validate a manifest body and describe it.

    The media type comes from the body's ``mediaType`` and, failing that, from ``content_type``
    (parameters such as ``charset`` ignored; an absent, empty or plain ``application/json``
    header counts as not given). When both are given they must agree. Docker types must carry
    ``mediaType`` in the body, as their spec requires. An image manifest may not have
    ``manifests`` and an index may not have ``config``/``layers``, so one document cannot be
    read as two different things (CVE-2021-41190).

    Raises :class:`ManifestTooLarge` above :data:`MAX_MANIFEST_BYTES`, otherwise
    :class:`ManifestInvalid` for invalid JSON, duplicate keys, schema violations, Docker schema
    1 and unknown media types.
    """
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestTooLarge(
            f"manifest is {len(body)} bytes; the limit is {MAX_MANIFEST_BYTES} bytes (4 MiB)"
        )
    header_type = _header_media_type(content_type)
    if header_type in SCHEMA1_TYPES:
        raise _schema1_refused()
    document = _decode(body)
    body_type = document.get("mediaType")
    if body_type is not None and (not isinstance(body_type, str) or not body_type):
        raise ManifestInvalid("mediaType must be a non-empty string", target="mediaType")
    schema_version = document.get("schemaVersion")
    if (type(schema_version) is int and schema_version == 1) or body_type in SCHEMA1_TYPES:
        raise _schema1_refused()
    if body_type is not None and header_type is not None and body_type != header_type:
        raise ManifestInvalid(
            f"the manifest's mediaType '{body_type[:200]}' does not match its Content-Type "
            f"'{header_type[:200]}'",
            target="mediaType",
        )
    media_type = body_type or header_type
    if media_type is None:
        raise ManifestInvalid(
            "cannot tell the manifest's media type: no mediaType field and no Content-Type",
            target="mediaType",
        )
    if media_type not in MANIFEST_TYPES:
        raise ManifestInvalid(f"unsupported manifest media type '{media_type[:200]}'", target="mediaType")
    if media_type in {DOCKER_MANIFEST, DOCKER_MANIFEST_LIST} and body_type is None:
        raise ManifestInvalid(f"a {media_type} must state its mediaType", target="mediaType")
    if type(schema_version) is not int or schema_version != 2:
        raise ManifestInvalid("schemaVersion must be 2", target="schemaVersion")

    subject = _optional(document, "subject", _descriptor)
    annotations = _optional(document, "annotations", _string_map)
    artifact_type = _optional(document, "artifactType", _media_type)
    digest = digest_of(body)
    if media_type in INDEX_TYPES:
        for field in ("config", "layers"):
            if field in document:
                raise ManifestInvalid(f"an image index has no '{field}' field", target=field)
        return ParsedManifest(
            media_type=media_type,
            digest=digest,
            size=len(body),
            config=None,
            layers=(),
            manifests=_required(document, "manifests", _descriptors),
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )
    if "manifests" in document:
        raise ManifestInvalid("an image manifest has no 'manifests' field", target="manifests")
    config = _required(document, "config", _descriptor)
    return ParsedManifest(
        media_type=media_type,
        digest=digest,
        size=len(body),
        config=config,
        layers=_required(document, "layers", _descriptors),
        manifests=(),
        subject=subject,
        artifact_type=artifact_type or config.media_type,
        annotations=annotations,
    )


def _schema1_refused() -> ManifestInvalid:
    return ManifestInvalid(
        "Docker image manifest schema 1 is not supported (deprecated and insecure); push with a "
        "client that sends schema 2 or OCI manifests",
        target="mediaType",
    )


def _header_media_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    value = content_type.split(";", 1)[0].strip().lower()
    return None if value in _GENERIC_CONTENT_TYPES else value


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins; refusing them keeps every reader of the stored
    # bytes seeing the same manifest.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ManifestInvalid(f"duplicate key '{key[:100]}' in manifest JSON", target=key[:100])
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ManifestInvalid(f"'{name}' is not valid JSON")


def _decode(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    return document


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _required(fields: Mapping[str, Any], name: str, parse: Callable[[Any, str], _T], where: str = "") -> _T:
    path = _path(where, name)
    if name not in fields:
        raise ManifestInvalid(f"missing required field '{path}'", target=path)
    return parse(fields[name], path)


def _optional(
    fields: Mapping[str, Any], name: str, parse: Callable[[Any, str], _T], where: str = ""
) -> _T | None:
    # ``null`` counts as absent: some generators emit it for unset optional fields.
    value = fields.get(name)
    return None if value is None else parse(value, _path(where, name))


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be a JSON object", target=where)
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestInvalid(f"{where} must be a string", target=where)
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ManifestInvalid(f"{where} must be an array of strings", target=where)
    return tuple(_string(item, f"{where}[{i}]") for i, item in enumerate(value))


def _string_map(value: Any, where: str) -> dict[str, str]:
    mapping = _object(value, where)
    for key, item in mapping.items():
        _string(item, f"{where}.{key[:100]}")
    return mapping


def _media_type(value: Any, where: str) -> str:
    text = _string(value, where)
    if not _MEDIA_TYPE.fullmatch(text):
        raise ManifestInvalid(f"{where} '{text[:200]}' is not a valid media type", target=where)
    return text


def _digest(value: Any, where: str) -> str:
    text = _string(value, where)
    try:
        parse_digest(text)
    except DigestInvalid as exc:
        raise ManifestInvalid(f"{where}: {exc.message}", target=where) from exc
    return text


def _size(value: Any, where: str) -> int:
    # ``type`` rather than ``isinstance``: JSON ``true`` must not pass as 1.
    if type(value) is not int or not 0 <= value <= _MAX_SIZE:
        raise ManifestInvalid(f"{where} must be a non-negative integer", target=where)
    return value


def _platform(value: Any, where: str) -> Platform:
    fields = _object(value, where)
    return Platform(
        architecture=_required(fields, "architecture", _string, where),
        os=_required(fields, "os", _string, where),
        variant=_optional(fields, "variant", _string, where),
        os_version=_optional(fields, "os.version", _string, where),
        os_features=_optional(fields, "os.features", _strings, where) or (),
    )


def _descriptor(value: Any, where: str) -> Descriptor:
    """Validate one descriptor (image spec v1.1, "Content Descriptors")."""
    fields = _object(value, where)
    descriptor = Descriptor(
        media_type=_required(fields, "mediaType", _media_type, where),
        digest=_required(fields, "digest", _digest, where),
        size=_required(fields, "size", _size, where),
        artifact_type=_optional(fields, "artifactType", _media_type, where),
        annotations=_optional(fields, "annotations", _string_map, where),
        platform=_optional(fields, "platform", _platform, where),
        urls=_optional(fields, "urls", _strings, where) or (),
    )
    data = _optional(fields, "data", _string, where)
    if data is not None:
        _check_embedded(data, descriptor, _path(where, "data"))
    return descriptor


def _check_embedded(data: str, descriptor: Descriptor, where: str) -> None:
    # The spec requires embedded data to match the descriptor; a mismatch would let two readers
    # of one manifest see different content.
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ManifestInvalid(f"{where} is not valid base64", target=where) from exc
    algorithm = descriptor.digest.partition(":")[0]
    if len(raw) != descriptor.size or digest_of(raw, algorithm) != descriptor.digest:
        raise ManifestInvalid(f"{where} does not match the descriptor's digest and size", target=where)


def _descriptors(value: Any, where: str) -> tuple[Descriptor, ...]:
    if not isinstance(value, list):
        raise ManifestInvalid(f"{where} must be an array of descriptors", target=where)
    return tuple(_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value))


# -- platform selection ---------------------------------------------------------------------------

_ARCHITECTURE_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}


def _normal_variant(architecture: str, variant: str | None) -> str | None:
    """containerd's normalization: ``amd64/v1`` and ``arm64/v8`` are the plain architectures,
    and plain ``arm`` means ``arm/v7``."""
    if variant is not None and variant.isdigit():
        variant = f"v{variant}"
    if (architecture, variant) in {("amd64", "v1"), ("arm64", "v8")}:
        return None
    if architecture == "arm" and variant is None:
        return "v7"
    return variant


def is_attestation(descriptor: Descriptor) -> bool:
    """Whether an index entry holds attestations (BuildKit's SBOM/provenance manifests) rather
    than a runnable image."""
    if (descriptor.annotations or {}).get(ATTESTATION_REFERENCE_TYPE) == "attestation-manifest":
        return True
    platform = descriptor.platform
    return platform is not None and "unknown" in {platform.os, platform.architecture}


def select_platform(
    index: ParsedManifest, os: str = "linux", architecture: str = "amd64", variant: str | None = None
) -> Descriptor | None:
    """The index entry to run on ``os``/``architecture``/``variant``, or ``None``.

    Attestation entries and entries without a platform are skipped. Variants are compared after
    containerd's normalization (``arm64`` == ``arm64/v8``, ``arm`` == ``arm/v7``); an ``arm``
    host also accepts lower variants (v7 runs v6 and v5), preferring the highest. The first
    match in index order wins. An image manifest (no children) yields ``None``.
    """
    architecture = _ARCHITECTURE_ALIASES.get(architecture, architecture)
    wanted = _normal_variant(architecture, variant)
    by_variant: dict[str | None, Descriptor] = {}
    for entry in index.manifests:
        platform = entry.platform
        if platform is None or is_attestation(entry) or platform.os != os:
            continue
        entry_architecture = _ARCHITECTURE_ALIASES.get(platform.architecture, platform.architecture)
        if entry_architecture == architecture:
            by_variant.setdefault(_normal_variant(architecture, platform.variant), entry)
    if wanted in by_variant:
        return by_variant[wanted]
    if architecture == "arm" and wanted is not None and wanted[1:].isdigit():
        for lower in range(int(wanted[1:]) - 1, 4, -1):
            if f"v{lower}" in by_variant:
                return by_variant[f"v{lower}"]
    return None
