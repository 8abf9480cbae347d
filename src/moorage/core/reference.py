"""Image references: ``[registry[:port]/]repository[:tag][@digest]``.

Follows the grammar of distribution's ``reference`` package, with Docker's normalisation:

* The first path component is a registry when it contains ``.`` or ``:``, is ``localhost``, or
  has upper-case letters (``Foo/bar`` names the host ``foo``); otherwise the reference is on
  Docker Hub (``docker.io``, also spelled ``index.docker.io``).
* On Docker Hub a single-component repository gets the ``library/`` prefix (``busybox`` →
  ``docker.io/library/busybox``).
* Without a tag and without a digest the tag is ``latest``. With a digest, a tag may be kept for
  display but the digest is what names the content.

Registry host names are case-insensitive and are lower-cased; repository names must already be
lower case. Digests must be ``sha256`` (64 hex digits) or ``sha512`` (128), lower-case hex.
Every malformed input raises :class:`~moorage.core.errors.InvalidArgument` with code
``InvalidImageReference`` and a message that says which part is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from moorage.core.errors import InvalidArgument

DOCKER_HUB = "docker.io"
DEFAULT_TAG = "latest"
INVALID_REFERENCE = "InvalidImageReference"
MAX_NAME_LENGTH = 255

_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]+))?"
)
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}


def _invalid(text: str, why: str) -> InvalidArgument:
    shown = text if len(text) <= 300 else text[:300] + "..."
    return InvalidArgument(f"invalid image reference '{shown}': {why}", code=INVALID_REFERENCE)


@dataclass(frozen=True)
class ImageReference:
    """A normalised reference. ``tag`` is ``None`` only when ``digest`` is set."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse and normalise ``text``; :class:`InvalidArgument` (``InvalidImageReference``)."""
        return parse_reference(text)

    @property
    def locator(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        if self.digest is not None:
            return self.digest
        return self.tag or DEFAULT_TAG

    @property
    def name(self) -> str:
        """``registry/repository``."""
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> ImageReference:
        """The same name and tag pinned to ``digest``."""
        return ImageReference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageReference:
    """Parse ``[registry[:port]/]repository[:tag][@digest]`` with Docker Hub defaults.

    Raises :class:`InvalidArgument` (code ``InvalidImageReference``) for an empty reference,
    a malformed registry, repository, tag or digest, an upper-case repository, or a name longer
    than 255 characters.
    """
    if not isinstance(text, str) or not text:
        raise _invalid(str(text), "the reference is empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise _invalid(text, "the reference contains white space")

    remainder, at, digest = text.partition("@")
    if at:
        _check_digest(text, digest)
    # A ':' after the last '/' starts the tag; one before it belongs to the registry port.
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    tag: str | None = None
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise _invalid(text, f"'{tag[:130]}' is not a valid tag")
    if not remainder:
        raise _invalid(text, "the repository name is missing")

    registry, repository = _split_registry(remainder)
    if registry is None:
        registry = DOCKER_HUB
    else:
        if not _HOST.fullmatch(registry):
            raise _invalid(text, f"'{registry}' is not a valid registry host")
        registry = registry.lower()
        if registry in _DOCKER_HUB_ALIASES:
            registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"

    if repository != repository.lower():
        raise _invalid(text, "repository names must be lower case")
    for component in repository.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise _invalid(text, f"'{repository}' is not a valid repository name")
    if len(registry) + 1 + len(repository) > MAX_NAME_LENGTH:
        raise _invalid(text, f"the name is longer than {MAX_NAME_LENGTH} characters")
    if tag is None and not at:
        tag = DEFAULT_TAG
    return ImageReference(registry, repository, tag, digest if at else None)


def _split_registry(name: str) -> tuple[str | None, str]:
    first, slash, rest = name.partition("/")
    if not slash:
        return None, name
    if any(c in first for c in ".:") or first == "localhost" or first != first.lower():
        return first, rest
    return None, name


def _check_digest(text: str, digest: str) -> None:
    algorithm, colon, encoded = digest.partition(":")
    length = _DIGEST_LENGTHS.get(algorithm)
    if (
        not colon
        or length is None
        or len(encoded) != length
        or any(c not in "0123456789abcdef" for c in encoded)
    ):
        raise _invalid(
            text, f"'{digest[:150]}' is not a valid digest (expected sha256:<64 hex> or sha512:<128 hex>)"
        )


def is_digest(locator: str) -> bool:
    """Whether a locator (``ImageReference.locator``) is a digest rather than a tag."""
    return ":" in locator
