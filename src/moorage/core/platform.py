"""Image platforms (``os/architecture[/variant]``), shared by the platform's puller and the CLI's
OCI client so both pick the same manifest from an index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moorage.core.errors import InvalidArgument

_ARCHITECTURES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386"}
_ARM_LEVELS = {"armhf": "v7", "armel": "v6"}


@dataclass(frozen=True)
class Platform:
    """``os/architecture[/variant]`` as in an image index (``linux/arm64/v8``)."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``os/arch[/variant]``; :class:`InvalidArgument` (code ``InvalidPlatform``)."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(p and p.strip() == p for p in parts):
            raise InvalidArgument(
                f"invalid platform '{text[:100]}': expected os/architecture[/variant]", code="InvalidPlatform"
            )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, value: Any) -> Platform | None:
        """The platform of an index entry or image config (``os``, ``architecture``,
        ``variant``); ``None`` when it names none."""
        if not isinstance(value, dict):
            return None
        os_name, architecture, variant = value.get("os"), value.get("architecture"), value.get("variant")
        if not isinstance(os_name, str) or not isinstance(architecture, str):
            return None
        return cls(os_name, architecture, variant if isinstance(variant, str) and variant else None)

    def normalized(self) -> Platform:
        """containerd's normalisation: ``x86_64`` → ``amd64``, ``aarch64`` → ``arm64``,
        ``amd64/v1`` and ``arm64/v8`` are the plain architectures, plain ``arm`` is ``arm/v7``."""
        architecture = self.architecture.lower()
        variant = self.variant.lower() if self.variant else None
        if architecture in _ARM_LEVELS:
            architecture, variant = "arm", _ARM_LEVELS[architecture]
        architecture = _ARCHITECTURES.get(architecture, architecture)
        if variant is not None and variant.isdigit():
            variant = f"v{variant}"
        if (architecture, variant) in {("amd64", "v1"), ("arm64", "v8")}:
            variant = None
        if architecture == "arm" and variant is None:
            variant = "v7"
        return Platform(self.os.lower(), architecture, variant)

    def matches(self, candidate: Platform) -> bool:
        """Whether ``candidate`` (an index entry) is this platform (both normalised)."""
        return self.normalized() == candidate.normalized()

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


DEFAULT_PLATFORM = Platform("linux", "amd64")
