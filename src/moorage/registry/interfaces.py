"""What the registry needs from the rest of moorage, as small protocols it owns.

``app.py`` wires implementations from the identity subsystem; the registry never imports it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class EntraPrincipal:
    """A verified Entra identity: a service principal or a managed identity."""

    tenant_id: str
    object_id: str
    app_id: str
    managed_identity_id: str | None  # ARM id of the managed identity (``xms_mirid``), if one


class EntraTokens(Protocol):
    def verify(self, token: str, audiences: Collection[str]) -> EntraPrincipal:
        """Verify an Entra access token; raise ``Unauthenticated`` when it is not acceptable."""
        ...


class ClientSecrets(Protocol):
    async def authenticate(self, tenant_id: str, app_id: str, secret: str) -> EntraPrincipal | None:
        """The service principal whose secret this is, or ``None``."""
        ...


class AccessChecks(Protocol):
    async def is_authorized(self, principal_id: str, action: str, scope: str) -> bool:
        """Azure RBAC: may ``principal_id`` perform ``action`` at ``scope``?"""
        ...


class SigningKey(Protocol):
    @property
    def kid(self) -> str: ...

    @property
    def private_key(self) -> rsa.RSAPrivateKey: ...

    @property
    def public_key(self) -> rsa.RSAPublicKey: ...


class SigningKeys(Protocol):
    @property
    def current(self) -> SigningKey: ...

    def by_kid(self, kid: str) -> SigningKey | None: ...


class SecretSealer(Protocol):
    """Reversible encryption for secrets that must be shown again (admin passwords)."""

    def seal(self, plaintext: str) -> str: ...

    def unseal(self, sealed: str) -> str: ...


class Listeners(Protocol):
    """Opens and closes the TCP listeners that make each registry's login server reachable."""

    async def listen(self, port: int) -> int:
        """Start serving the registry edge on ``port`` (0: any free port); return the port.
        Raises ``OSError`` when the port cannot be bound."""
        ...

    async def close(self, port: int) -> None: ...
