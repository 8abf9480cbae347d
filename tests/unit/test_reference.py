"""Image references: distribution's grammar with Docker's normalisation."""

from __future__ import annotations

import pytest

from moorage.core.errors import InvalidArgument
from moorage.core.reference import ImageReference, is_digest, parse_reference

D256 = "sha256:" + "a" * 64
D512 = "sha512:" + "0123456789abcdef" * 8


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("library/busybox", "docker.io", "library/busybox", "latest", None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", None),
        ("myreg.azurecr.io/app/web:v1", "myreg.azurecr.io", "app/web", "v1", None),
        ("MyReg.AzureCR.io/app:v1", "myreg.azurecr.io", "app", "v1", None),
        ("127.0.0.1:5000/app:v1", "127.0.0.1:5000", "app", "v1", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/a/b/c", "localhost:5000", "a/b/c", "latest", None),
        ("[::1]:5000/app:v2", "[::1]:5000", "app", "v2", None),
        ("Foo/bar", "foo", "bar", "latest", None),
        (f"myreg.io/app@{D256}", "myreg.io", "app", None, D256),
        (f"myreg.io/app:v1@{D256}", "myreg.io", "app", "v1", D256),
        (f"app@{D512}", "docker.io", "library/app", None, D512),
        ("reg.io/a_b/c__d/e-f/g.h/i---j:T_a.g-1", "reg.io", "a_b/c__d/e-f/g.h/i---j", "T_a.g-1", None),
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
    ],
)
def test_parse_and_normalise(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert ref == ImageReference(registry, repository, tag, digest)


def test_locator_prefers_the_digest() -> None:
    assert parse_reference("reg.io/app:v1").locator == "v1"
    assert parse_reference(f"reg.io/app:v1@{D256}").locator == D256
    assert parse_reference(f"reg.io/app@{D256}").locator == D256


def test_str_is_the_normalised_form_and_round_trips() -> None:
    for text, shown in [
        ("busybox", "docker.io/library/busybox:latest"),
        (f"reg.io:443/app:v1@{D256}", f"reg.io:443/app:v1@{D256}"),
        (f"reg.io/app@{D256}", f"reg.io/app@{D256}"),
    ]:
        ref = parse_reference(text)
        assert str(ref) == shown
        assert parse_reference(str(ref)) == ref


def test_name_and_pinning() -> None:
    ref = ImageReference.parse("reg.io/app:v1")
    assert ref.name == "reg.io/app"
    assert str(ref.with_digest(D256)) == f"reg.io/app:v1@{D256}"


def test_is_digest() -> None:
    assert is_digest(D256)
    assert not is_digest("v1")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        (" busybox", "white space"),
        ("busy box", "white space"),
        ("reg.io/App:v1", "lower case"),
        ("reg.io/app:", "not a valid tag"),
        ("reg.io/app:-v1", "not a valid tag"),
        ("reg.io/app:" + "a" * 129, "not a valid tag"),
        ("reg.io/app@sha256:abc", "not a valid digest"),
        ("reg.io/app@md5:" + "a" * 32, "not a valid digest"),
        ("reg.io/app@sha256:" + "A" * 64, "not a valid digest"),
        ("reg.io/app@", "not a valid digest"),
        ("reg.io/", "not a valid repository"),
        ("reg.io//app", "not a valid repository"),
        ("reg.io/app/", "not a valid repository"),
        ("reg.io/-app", "not a valid repository"),
        ("reg.io/app..x", "not a valid repository"),
        ("-reg.io/app", "not a valid registry"),
        ("reg.io:port/app", "not a valid registry"),
        (":v1", "repository name is missing"),
        ("reg.io/" + "a" * 250, "longer than 255"),
    ],
)
def test_invalid_references(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_reference(text)
    assert info.value.code == "InvalidImageReference"
    assert why in info.value.message
