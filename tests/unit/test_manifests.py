"""Manifest parsing, validation and platform selection (pure functions, built-up documents)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from moorage.core.errors import InvalidArgument
from moorage.registry.manifests import (
    DOCKER_IMAGE_CONFIG,
    DOCKER_LAYER_FOREIGN_GZIP,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V1,
    DOCKER_MANIFEST_V1_SIGNED,
    EMPTY_DESCRIPTOR,
    MAX_MANIFEST_BYTES,
    OCI_EMPTY,
    OCI_EMPTY_DIGEST,
    OCI_IMAGE_CONFIG,
    OCI_IMAGE_INDEX,
    OCI_IMAGE_MANIFEST,
    OCI_LAYER_GZIP,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP,
    OCI_LAYER_ZSTD,
    Descriptor,
    ManifestInvalid,
    ManifestTooLarge,
    ParsedManifest,
    Platform,
    digest_of,
    parse_manifest,
    select_platform,
)
from moorage.store.blobs import DigestInvalid

Document = dict[str, Any]


def descriptor(content: bytes, media_type: str, **fields: Any) -> Document:
    return {"mediaType": media_type, "digest": digest_of(content), "size": len(content), **fields}


CONFIG = descriptor(b'{"architecture":"amd64","os":"linux"}', OCI_IMAGE_CONFIG)
LAYER = descriptor(b"layer one", OCI_LAYER_GZIP)
LAYER_2 = descriptor(b"layer two", OCI_LAYER_ZSTD)
EMPTY = {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": 2}


def image(**fields: Any) -> Document:
    """An OCI image manifest; a field given as ``None`` is removed."""
    document: Document = {
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MANIFEST,
        "config": CONFIG,
        "layers": [LAYER, LAYER_2],
    }
    document.update(fields)
    return {key: value for key, value in document.items() if value is not None}


def entry(
    os: str, architecture: str, variant: str | None = None, *, name: str = "", **fields: Any
) -> Document:
    platform: Document = {"os": os, "architecture": architecture}
    if variant is not None:
        platform["variant"] = variant
    content = f"{os}/{architecture}/{variant}/{name}".encode()
    return descriptor(content, OCI_IMAGE_MANIFEST, platform=platform, **fields)


def index(*entries: Document, **fields: Any) -> Document:
    document: Document = {"schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX, "manifests": list(entries)}
    document.update(fields)
    return {key: value for key, value in document.items() if value is not None}


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def parse(document: Any, content_type: str | None = None) -> ParsedManifest:
    return parse_manifest(encode(document), content_type)


def invalid(document: Any, content_type: str | None = None) -> ManifestInvalid:
    with pytest.raises(ManifestInvalid) as caught:
        parse(document, content_type)
    assert caught.value.code == "MANIFEST_INVALID"
    return caught.value


def parsed_index(*entries: Document) -> ParsedManifest:
    return parse(index(*entries))


# -- image manifests --------------------------------------------------------------------------------


def test_oci_image_manifest_is_described() -> None:
    body = encode(image())
    parsed = parse_manifest(body, OCI_IMAGE_MANIFEST)
    assert parsed.media_type == OCI_IMAGE_MANIFEST
    assert parsed.digest == digest_of(body)
    assert parsed.size == len(body)
    assert parsed.config == Descriptor(OCI_IMAGE_CONFIG, CONFIG["digest"], CONFIG["size"])
    assert [layer.digest for layer in parsed.layers] == [LAYER["digest"], LAYER_2["digest"]]
    assert parsed.manifests == ()
    assert parsed.subject is None
    assert parsed.annotations is None
    assert not parsed.is_index


def test_digest_is_of_the_exact_bytes() -> None:
    compact = json.dumps(image(), separators=(",", ":")).encode()
    pretty = json.dumps(image(), indent=2).encode()
    assert parse_manifest(compact, None).digest == digest_of(compact)
    assert parse_manifest(pretty, None).digest == digest_of(pretty)
    assert digest_of(compact) != digest_of(pretty)


def test_docker_schema2_manifest_is_described() -> None:
    document = image(
        mediaType=DOCKER_MANIFEST,
        config=descriptor(b"{}", DOCKER_IMAGE_CONFIG),
        layers=[descriptor(b"l", DOCKER_LAYER_GZIP)],
    )
    parsed = parse(document, DOCKER_MANIFEST)
    assert parsed.media_type == DOCKER_MANIFEST
    assert parsed.artifact_type == DOCKER_IMAGE_CONFIG
    assert parsed.blob_references == (digest_of(b"{}"), digest_of(b"l"))


def test_blob_references_are_config_then_layers() -> None:
    assert parse(image()).blob_references == (CONFIG["digest"], LAYER["digest"], LAYER_2["digest"])


def test_blob_references_are_listed_once() -> None:
    parsed = parse(image(layers=[LAYER, LAYER, LAYER_2]))
    assert parsed.blob_references == (CONFIG["digest"], LAYER["digest"], LAYER_2["digest"])


def test_blob_references_skip_foreign_layers_with_urls() -> None:
    foreign = descriptor(b"windows", DOCKER_LAYER_FOREIGN_GZIP, urls=["https://example.com/layer"])
    parsed = parse(image(layers=[foreign, LAYER]))
    assert parsed.blob_references == (CONFIG["digest"], LAYER["digest"])
    assert parsed.layers[0].urls == ("https://example.com/layer",)


def test_blob_references_keep_foreign_layers_without_urls() -> None:
    foreign = descriptor(b"pushed anyway", OCI_LAYER_NONDISTRIBUTABLE_GZIP)
    assert foreign["digest"] in parse(image(layers=[foreign])).blob_references


def test_layers_may_be_empty() -> None:
    parsed = parse(image(config=EMPTY, layers=[], artifactType="application/vnd.example+type"))
    assert parsed.layers == ()
    assert parsed.blob_references == (OCI_EMPTY_DIGEST,)


def test_descriptor_optional_fields_are_kept() -> None:
    layer = descriptor(
        b"x", OCI_LAYER_GZIP, annotations={"org.opencontainers.image.title": "x.tgz"}, artifactType="a/b"
    )
    parsed_layer = parse(image(layers=[layer])).layers[0]
    assert parsed_layer.annotations == {"org.opencontainers.image.title": "x.tgz"}
    assert parsed_layer.artifact_type == "a/b"


def test_manifest_annotations_are_kept() -> None:
    parsed = parse(image(annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}))
    assert parsed.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}


def test_subject_is_described() -> None:
    subject = descriptor(b"the image", OCI_IMAGE_MANIFEST)
    parsed = parse(image(subject=subject))
    assert parsed.subject == Descriptor(OCI_IMAGE_MANIFEST, subject["digest"], subject["size"])


def test_null_optional_fields_count_as_absent() -> None:
    parsed = parse({**image(), "subject": None, "annotations": None, "artifactType": None})
    assert parsed.subject is None
    assert parsed.annotations is None


def test_embedded_data_matching_the_descriptor_is_accepted() -> None:
    config = {**EMPTY, "data": base64.b64encode(b"{}").decode()}
    assert parse(image(config=config)).config == EMPTY_DESCRIPTOR


def test_embedded_data_not_matching_the_descriptor_is_rejected() -> None:
    config = {**EMPTY, "data": base64.b64encode(b"[]").decode()}
    assert invalid(image(config=config)).target == "config.data"


def test_embedded_data_must_be_base64() -> None:
    config = {**EMPTY, "data": "not base64!"}
    assert invalid(image(config=config)).target == "config.data"


def test_empty_descriptor_constant_describes_an_empty_object() -> None:
    assert Descriptor(OCI_EMPTY, digest_of(b"{}"), 2) == EMPTY_DESCRIPTOR


# -- artifact type ----------------------------------------------------------------------------------


def test_artifact_type_field_wins() -> None:
    parsed = parse(image(config=EMPTY, artifactType="application/vnd.example.sbom+json"))
    assert parsed.artifact_type == "application/vnd.example.sbom+json"


def test_artifact_type_falls_back_to_config_media_type() -> None:
    assert parse(image()).artifact_type == OCI_IMAGE_CONFIG


def test_artifact_type_of_empty_config_without_field_is_the_empty_type() -> None:
    assert parse(image(config=EMPTY)).artifact_type == OCI_EMPTY


def test_index_artifact_type_is_its_field() -> None:
    assert (
        parse(index(artifactType="application/vnd.example+json")).artifact_type
        == "application/vnd.example+json"
    )


def test_index_without_artifact_type_has_none() -> None:
    assert parse(index()).artifact_type is None


@pytest.mark.parametrize("artifact_type", ["", "no-slash", "a/b c", "/x", 42])
def test_malformed_artifact_type_is_rejected(artifact_type: object) -> None:
    assert invalid(image(artifactType=artifact_type)).target == "artifactType"


# -- indexes ----------------------------------------------------------------------------------------


def test_oci_index_is_described() -> None:
    amd64 = entry("linux", "amd64")
    arm = entry("linux", "arm", "v7", annotations={"k": "v"})
    parsed = parse(index(amd64, arm, subject=descriptor(b"s", OCI_IMAGE_MANIFEST)), OCI_IMAGE_INDEX)
    assert parsed.is_index
    assert parsed.config is None
    assert parsed.layers == ()
    assert parsed.blob_references == ()
    assert [child.digest for child in parsed.manifests] == [amd64["digest"], arm["digest"]]
    assert parsed.manifests[1].platform == Platform("arm", "linux", "v7")
    assert parsed.manifests[1].annotations == {"k": "v"}
    assert parsed.subject is not None


def test_docker_manifest_list_is_described() -> None:
    child = entry("linux", "amd64") | {"mediaType": DOCKER_MANIFEST}
    parsed = parse(index(child, mediaType=DOCKER_MANIFEST_LIST), DOCKER_MANIFEST_LIST)
    assert parsed.media_type == DOCKER_MANIFEST_LIST
    assert parsed.is_index


def test_index_platform_details_are_parsed() -> None:
    windows = entry("windows", "amd64")
    windows["platform"] |= {"os.version": "10.0.17763.5329", "os.features": ["win32k"]}
    platform = parsed_index(windows).manifests[0].platform
    assert platform == Platform("amd64", "windows", None, "10.0.17763.5329", ("win32k",))


def test_index_may_be_empty() -> None:
    assert parse(index()).manifests == ()


def test_index_children_may_be_any_media_type() -> None:
    child = descriptor(b"something new", "application/vnd.example.future+json")
    assert parse(index(child)).manifests[0].media_type == "application/vnd.example.future+json"


@pytest.mark.parametrize("field", ["config", "layers"])
def test_index_with_image_fields_is_rejected(field: str) -> None:
    assert invalid(index(**{field: image()[field]})).target == field


def test_image_manifest_with_manifests_field_is_rejected() -> None:
    assert invalid(image(manifests=[])).target == "manifests"


def test_index_without_manifests_is_rejected() -> None:
    assert invalid(index(manifests=None)).target == "manifests"


# -- media type ---------------------------------------------------------------------------------------


def test_media_type_comes_from_content_type_when_body_has_none() -> None:
    assert parse(image(mediaType=None), OCI_IMAGE_MANIFEST).media_type == OCI_IMAGE_MANIFEST


def test_media_type_comes_from_body_without_content_type() -> None:
    assert parse(index(), None).media_type == OCI_IMAGE_INDEX


def test_content_type_parameters_and_case_are_ignored() -> None:
    content_type = "Application/VND.oci.image.manifest.v1+json; charset=utf-8"
    assert parse(image(), content_type).media_type == OCI_IMAGE_MANIFEST


@pytest.mark.parametrize("content_type", ["", "application/json", "application/json; charset=utf-8"])
def test_generic_content_type_defers_to_body(content_type: str) -> None:
    assert parse(image(), content_type).media_type == OCI_IMAGE_MANIFEST


def test_body_and_content_type_must_agree() -> None:
    error = invalid(image(), OCI_IMAGE_INDEX)
    assert error.target == "mediaType"
    assert OCI_IMAGE_INDEX in error.message


def test_media_type_must_be_known_somewhere() -> None:
    assert invalid(image(mediaType=None), None).target == "mediaType"


def test_unknown_media_type_is_rejected_by_name() -> None:
    artifact = "application/vnd.oci.artifact.manifest.v1+json"
    error = invalid(image(mediaType=artifact), artifact)
    assert artifact in error.message


def test_unknown_content_type_is_rejected_by_name() -> None:
    assert "text/plain" in invalid(image(mediaType=None), "text/plain").message


def test_docker_manifest_must_state_media_type_in_body() -> None:
    assert invalid(image(mediaType=None), DOCKER_MANIFEST).target == "mediaType"


@pytest.mark.parametrize("media_type", [42, "", ["x"]])
def test_media_type_field_must_be_a_non_empty_string(media_type: object) -> None:
    assert invalid(image(mediaType=media_type)).target == "mediaType"


@pytest.mark.parametrize(
    ("document", "content_type"),
    [
        ({"schemaVersion": 1, "name": "x", "tag": "latest", "fsLayers": []}, None),
        ({"schemaVersion": 1, "name": "x", "tag": "latest", "fsLayers": []}, DOCKER_MANIFEST_V1_SIGNED),
        ({"schemaVersion": 1, "name": "x", "tag": "latest", "fsLayers": []}, DOCKER_MANIFEST_V1),
        ({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_V1}, None),
    ],
)
def test_docker_schema1_is_refused(document: Document, content_type: str | None) -> None:
    assert "schema 1" in invalid(document, content_type).message


# -- schema -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, 3, "2", 2.0, True, 0])
def test_schema_version_must_be_2(version: object) -> None:
    assert invalid(image(schemaVersion=version)).target == "schemaVersion"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"manifest"',
        b"null",
        b"42",
        b'{"x": NaN}',
        b"[" * 100_000,
    ],
)
def test_invalid_json_is_rejected(body: bytes) -> None:
    with pytest.raises(ManifestInvalid):
        parse_manifest(body, OCI_IMAGE_MANIFEST)


def test_duplicate_keys_are_rejected() -> None:
    body = encode(image())[:-1] + b', "schemaVersion": 2}'
    with pytest.raises(ManifestInvalid, match="duplicate key 'schemaVersion'"):
        parse_manifest(body, None)


@pytest.mark.parametrize("field", ["config", "layers"])
def test_image_manifest_requires_field(field: str) -> None:
    assert invalid(image(**{field: None})).target == field


@pytest.mark.parametrize("layers", [{}, "layer", LAYER])
def test_layers_must_be_an_array(layers: object) -> None:
    assert invalid(image(layers=layers)).target == "layers"


@pytest.mark.parametrize(
    ("changes", "target"),
    [
        ({"mediaType": None}, "layers[1].mediaType"),
        ({"mediaType": 7}, "layers[1].mediaType"),
        ({"mediaType": "not a media type"}, "layers[1].mediaType"),
        ({"mediaType": "application/x; p=1"}, "layers[1].mediaType"),
        ({"digest": None}, "layers[1].digest"),
        ({"digest": 5}, "layers[1].digest"),
        ({"digest": "sha256:xyz"}, "layers[1].digest"),
        ({"digest": "sha256:" + "A" * 64}, "layers[1].digest"),
        ({"digest": "md5:" + "0" * 32}, "layers[1].digest"),
        ({"size": None}, "layers[1].size"),
        ({"size": -1}, "layers[1].size"),
        ({"size": "5"}, "layers[1].size"),
        ({"size": 1.5}, "layers[1].size"),
        ({"size": True}, "layers[1].size"),
        ({"size": 2**63}, "layers[1].size"),
        ({"annotations": ["k"]}, "layers[1].annotations"),
        ({"annotations": {"k": 1}}, "layers[1].annotations.k"),
        ({"urls": "https://x"}, "layers[1].urls"),
        ({"urls": [1]}, "layers[1].urls[0]"),
        ({"artifactType": "nope"}, "layers[1].artifactType"),
        ({"platform": {"os": "linux"}}, "layers[1].platform.architecture"),
        ({"platform": {"architecture": "amd64"}}, "layers[1].platform.os"),
        ({"platform": {"os": "linux", "architecture": 64}}, "layers[1].platform.architecture"),
        ({"platform": {"os": "linux", "architecture": "arm", "variant": 7}}, "layers[1].platform.variant"),
        ({"platform": "linux/amd64"}, "layers[1].platform"),
    ],
)
def test_malformed_descriptor_is_rejected_with_its_path(changes: Document, target: str) -> None:
    layer = {key: value for key, value in (LAYER_2 | changes).items() if value is not None}
    assert invalid(image(layers=[LAYER, layer])).target == target


@pytest.mark.parametrize("config", ["sha256:abc", [], None])
def test_config_must_be_a_descriptor_object(config: object) -> None:
    assert invalid({**image(), "config": config}).target == "config"


def test_subject_must_be_a_descriptor() -> None:
    assert invalid(image(subject={"mediaType": OCI_IMAGE_MANIFEST})).target == "subject.digest"


def test_annotations_must_map_strings_to_strings() -> None:
    assert invalid(image(annotations={"k": ["v"]})).target == "annotations.k"


def test_index_children_are_validated() -> None:
    child = entry("linux", "amd64") | {"size": -5}
    assert invalid(index(entry("linux", "arm64"), child)).target == "manifests[1].size"


# -- size limit ---------------------------------------------------------------------------------------


def padded_to(size: int) -> bytes:
    base = encode(image(annotations={"pad": ""}))
    body = encode(image(annotations={"pad": "x" * (size - len(base))}))
    assert len(body) == size
    return body


def test_manifest_at_the_size_limit_is_accepted() -> None:
    assert parse_manifest(padded_to(MAX_MANIFEST_BYTES), None).size == MAX_MANIFEST_BYTES


def test_manifest_over_the_size_limit_is_rejected() -> None:
    with pytest.raises(ManifestTooLarge) as caught:
        parse_manifest(padded_to(MAX_MANIFEST_BYTES + 1), None)
    assert isinstance(caught.value, InvalidArgument)
    assert caught.value.code == "MANIFEST_INVALID"
    assert str(MAX_MANIFEST_BYTES) in caught.value.message


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(ManifestTooLarge):
        parse_manifest(b"x" * (MAX_MANIFEST_BYTES + 1), None)


# -- digest_of ----------------------------------------------------------------------------------------


def test_digest_of_defaults_to_sha256() -> None:
    assert digest_of(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_digest_of_supports_sha512() -> None:
    digest = digest_of(b"", "sha512")
    assert digest.startswith("sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce")
    assert len(digest) == len("sha512:") + 128


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", ""])
def test_digest_of_rejects_other_algorithms(algorithm: str) -> None:
    with pytest.raises(DigestInvalid):
        digest_of(b"", algorithm)


# -- select_platform ----------------------------------------------------------------------------------


def test_select_platform_defaults_to_linux_amd64() -> None:
    amd64 = entry("linux", "amd64")
    chosen = select_platform(parsed_index(entry("linux", "arm64"), amd64))
    assert chosen is not None
    assert chosen.digest == amd64["digest"]


def test_select_platform_picks_requested_architecture() -> None:
    arm64 = entry("linux", "arm64")
    chosen = select_platform(parsed_index(entry("linux", "amd64"), arm64), architecture="arm64")
    assert chosen is not None
    assert chosen.digest == arm64["digest"]


def test_select_platform_skips_attestation_annotated_entries() -> None:
    attestation = entry(
        "linux", "amd64", name="att", annotations={"vnd.docker.reference.type": "attestation-manifest"}
    )
    image_entry = entry("linux", "amd64", name="img")
    chosen = select_platform(parsed_index(attestation, image_entry))
    assert chosen is not None
    assert chosen.digest == image_entry["digest"]


def test_select_platform_skips_unknown_platforms() -> None:
    assert select_platform(parsed_index(entry("unknown", "unknown")), "unknown", "unknown") is None


def test_select_platform_without_match_is_none() -> None:
    assert select_platform(parsed_index(entry("linux", "s390x"), entry("windows", "amd64"))) is None


def test_select_platform_skips_entries_without_platform() -> None:
    assert select_platform(parse(index(descriptor(b"m", OCI_IMAGE_MANIFEST)))) is None


def test_select_platform_of_image_manifest_is_none() -> None:
    assert select_platform(parse(image())) is None


def test_select_platform_first_match_wins() -> None:
    first = entry("linux", "amd64", name="first")
    chosen = select_platform(parsed_index(first, entry("linux", "amd64", name="second")))
    assert chosen is not None
    assert chosen.digest == first["digest"]


@pytest.mark.parametrize(
    ("listed", "requested"),
    [
        (("arm64", "v8"), ("arm64", None)),
        (("arm64", None), ("arm64", "v8")),
        (("amd64", "v1"), ("amd64", None)),
        (("arm", "v7"), ("arm", None)),
        (("arm", None), ("arm", "v7")),
        (("arm", "v7"), ("arm", "7")),
        (("amd64", None), ("x86_64", None)),
        (("arm64", None), ("aarch64", None)),
    ],
)
def test_select_platform_normalizes_variants_and_aliases(
    listed: tuple[str, str | None], requested: tuple[str, str | None]
) -> None:
    listed_entry = entry("linux", *listed)
    chosen = select_platform(parsed_index(listed_entry), architecture=requested[0], variant=requested[1])
    assert chosen is not None
    assert chosen.digest == listed_entry["digest"]


def test_select_platform_prefers_the_exact_arm_variant() -> None:
    v7 = entry("linux", "arm", "v7")
    chosen = select_platform(parsed_index(entry("linux", "arm", "v6"), v7), architecture="arm")
    assert chosen is not None
    assert chosen.digest == v7["digest"]


def test_select_platform_falls_back_to_the_highest_lower_arm_variant() -> None:
    v6 = entry("linux", "arm", "v6")
    chosen = select_platform(parsed_index(entry("linux", "arm", "v5"), v6), architecture="arm", variant="v7")
    assert chosen is not None
    assert chosen.digest == v6["digest"]


def test_select_platform_never_picks_a_higher_arm_variant() -> None:
    assert (
        select_platform(parsed_index(entry("linux", "arm", "v7")), architecture="arm", variant="v6") is None
    )


def test_select_platform_does_not_assume_amd64_microarchitecture_levels() -> None:
    assert select_platform(parsed_index(entry("linux", "amd64", "v3"))) is None
