"""What deployments need from the resource providers, as Protocols this subsystem owns.

A deployment deploys every resource through the very providers that serve the ARM API (wired
in ``moorage.app``), so a template and a direct PUT cannot behave differently. The gateway
authorizes each call as the deployment's caller, waits for long-running work to finish, and
reports the outcome the way deployment operations show it: ARM's HTTP status name and, on
failure, the provider's error body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# The caller of a deployment, opaque to this subsystem: the ARM edge serialises its verified
# claims (never the token itself) so that a deployment resumed after a restart acts as the same
# principal.
Caller = Mapping[str, Any]

# ARM's names for the HTTP statuses a provider answers with (``statusCode`` of an operation).
STATUS_NAMES = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "NoContent",
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


@dataclass(frozen=True)
class Outcome:
    """What one provider call came to.

    ``status`` is ARM's status name (``Created``, ``BadRequest``, ``Conflict`` for a long-running
    operation that failed after it was accepted, …); ``error`` is the provider's ARM error body
    (``{code, message, details, ...}``) when the call failed, else ``None``; ``body`` is the
    resource as GET shows it after a successful PUT.
    """

    status: str
    body: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ExistingResource:
    id: str
    type: str


class ResourceGateway(Protocol):
    """Provider calls on behalf of a deployment's caller."""

    async def put(
        self, caller: Caller, base_url: str, resource_id: str, api_version: str, body: dict[str, Any]
    ) -> Outcome:
        """Create or update, waiting for a long-running PUT to finish. Never raises for a
        provider's refusal: that is an :class:`Outcome` with ``error``."""
        ...

    async def preflight(
        self, caller: Caller, base_url: str, resource_id: str, api_version: str, body: dict[str, Any]
    ) -> None:
        """Check a PUT body as the provider would, changing nothing; raise the provider's error."""
        ...

    async def get(self, caller: Caller, base_url: str, resource_id: str, api_version: str) -> dict[str, Any]:
        """The resource as GET shows it; raises the provider's MoorageError (e.g. NotFound)."""
        ...

    async def action(
        self, caller: Caller, base_url: str, resource_id: str, api_version: str, *, action: str, body: Any
    ) -> Any:
        """POST ``{resource_id}/{action}`` (``listCredentials``, ``listKeys``, …); raises on refusal."""
        ...

    async def delete(self, caller: Caller, base_url: str, resource_id: str, api_version: str) -> Outcome:
        """Delete, waiting for a long-running DELETE to finish."""
        ...

    async def resources_in_group(
        self, caller: Caller, subscription_id: str, resource_group: str
    ) -> list[ExistingResource]:
        """Top-level resources of a resource group (what Complete mode may delete)."""
        ...

    async def api_version_for(self, resource_type: str) -> str:
        """An api-version to use for calls the template gives none for (Complete-mode deletes)."""
        ...
