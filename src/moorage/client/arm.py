"""Typed ARM operations on the resource types moorage serves, for the CLI (and scripts).

One small class per resource type, each a thin layer over :class:`~moorage.client.MoorageClient`:
it knows the type's path and the api-version the az CLI sends, and returns ARM's JSON bodies
unchanged (``ArmBody``), so what a caller prints is exactly what the server answered. Long-running
PUTs are returned as :class:`LongRunning` handles, so a caller can show progress while they run.
Every failure is an :class:`~moorage.client.ApiError` carrying the server's error body.
"""

from __future__ import annotations

import asyncio
import builtins
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from moorage.client import DEFAULT_API_VERSIONS, ApiError, MoorageClient

ArmBody = dict[str, Any]

# What the az CLI (2.7x-2.9x) sends for each type; the server accepts any api-version.
REGISTRIES_API = "2023-07-01"
CONTAINER_GROUPS_API = "2023-05-01"
DEPLOYMENTS_API = "2025-04-01"
IDENTITIES_API = DEFAULT_API_VERSIONS["userAssignedIdentities"]
ROLE_ASSIGNMENTS_API = DEFAULT_API_VERSIONS["roleAssignments"]
ROLE_DEFINITIONS_API = DEFAULT_API_VERSIONS["roleDefinitions"]
RESOURCE_GROUPS_API = DEFAULT_API_VERSIONS["resourceGroups"]

REGISTRY_TYPE = "Microsoft.ContainerRegistry/registries"
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
CONTAINER_GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"
DEPLOYMENT_TYPE = "Microsoft.Resources/deployments"

TERMINAL_STATES = ("Succeeded", "Failed", "Canceled")


def resource_group_of(resource_id: str) -> str | None:
    """The resource group named in an ARM id (``/subscriptions/s/resourceGroups/rg/...``)."""
    parts = [p for p in resource_id.split("/") if p]
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1]
    return None


@dataclass(frozen=True)
class OperationStatus:
    """One look at a long-running operation: ``status`` is ARM's (``InProgress``, ``Succeeded``, …)."""

    status: str
    body: ArmBody

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATES

    def failure(self) -> ApiError:
        """The operation's error as an :class:`ApiError` whose body is the status body."""
        found = self.body.get("error")
        err: dict[str, Any] = found if isinstance(found, dict) else {}
        return ApiError(200, str(err.get("code") or self.status), str(err.get("message") or ""), self.body)


class LongRunning:
    """A request ARM answered before the work finished (``Azure-AsyncOperation``), or at once.

    ``initial`` is the first answer's body. :meth:`status` looks once; :meth:`result` waits for
    the end and returns the resource (GET after a PUT) or ``None``, raising :class:`ApiError` with
    the operation's error when it failed or was canceled.
    """

    def __init__(
        self, client: MoorageClient, method: str, path: str, api_version: str, response: httpx.Response
    ) -> None:
        self._client = client
        self._method = method
        self._path = path
        self._api_version = api_version
        self.initial: Any = response.json() if response.content else None
        self.status_url: str | None = response.headers.get("azure-asyncoperation")
        self.retry_after = float(response.headers.get("retry-after", "1") or "1")

    async def status(self) -> OperationStatus:
        if self.status_url is None:
            return OperationStatus("Succeeded", {"status": "Succeeded"})
        # The status URL carries its own query (api-version); passed as params, as request()
        # replaces a URL's query with the params it is given.
        url = httpx.URL(self.status_url)
        response = await self._client.request(
            "GET", str(url.copy_with(query=None)), params=dict(url.params), expect=(200,)
        )
        body = response.json()
        return OperationStatus(str(body.get("status", "")), body)

    async def result(self) -> Any:
        while True:
            current = await self.status()
            if current.finished:
                break
            await asyncio.sleep(self.retry_after)
        if current.status != "Succeeded":
            raise current.failure()
        return await self.resource()

    async def resource(self) -> Any:
        """The resource as it is now (PUT), else the first answer's body."""
        if self._method == "PUT":
            return await self._client.arm("GET", self._path, self._api_version)
        return self.initial


async def begin(
    client: MoorageClient, method: str, path: str, api_version: str, body: Any = None
) -> LongRunning:
    response = await client.request(method, path, api_version=api_version, json_body=body)
    return LongRunning(client, method, path, api_version, response)


class ResourceGroups:
    def __init__(self, client: MoorageClient) -> None:
        self._client = client

    def path(self, group: str) -> str:
        return self._client.sub_path(f"/resourcegroups/{group}")

    async def get(self, group: str) -> ArmBody:
        body: ArmBody = await self._client.arm("GET", self.path(group), RESOURCE_GROUPS_API)
        return body

    async def location(self, group: str) -> str:
        return str((await self.get(group))["location"])

    async def create(self, group: str, body: ArmBody) -> ArmBody:
        result: ArmBody = await self._client.arm("PUT", self.path(group), RESOURCE_GROUPS_API, body)
        return result

    async def list(self) -> builtins.list[ArmBody]:
        return await self._client.list_value(self._client.sub_path("/resourcegroups"), RESOURCE_GROUPS_API)

    async def delete(self, group: str) -> None:
        """Waits until the group and everything in it are deleted."""
        await self._client.arm("DELETE", self.path(group), RESOURCE_GROUPS_API)


class _TrackedType:
    """Shared GET/LIST/DELETE of a tracked resource type in resource groups."""

    resource_type: str
    api_version: str

    def __init__(self, client: MoorageClient) -> None:
        self._client = client

    def path(self, group: str, name: str) -> str:
        return self._client.sub_path(f"/resourceGroups/{group}/providers/{self.resource_type}/{name}")

    async def get(self, group: str, name: str) -> ArmBody:
        body: ArmBody = await self._client.arm("GET", self.path(group, name), self.api_version)
        return body

    async def list(self, group: str | None = None) -> list[ArmBody]:
        where = f"/resourceGroups/{group}" if group else ""
        path = self._client.sub_path(f"{where}/providers/{self.resource_type}")
        return await self._client.list_value(path, self.api_version)

    async def delete(self, group: str, name: str) -> Any:
        return await self._client.arm("DELETE", self.path(group, name), self.api_version)

    async def find(self, name: str, group: str | None = None) -> ArmBody:
        """The resource named ``name`` (case-insensitively) in ``group``, or anywhere in the
        subscription when ``group`` is None (as az does for ``acr show -n``)."""
        if group:
            return await self.get(group, name)
        for item in await self.list():
            if str(item.get("name", "")).lower() == name.lower():
                return item
        raise ApiError(
            404,
            "ResourceNotFound",
            f"The resource with name '{name}' and type '{self.resource_type}' could not be found in "
            f"subscription '{self._client.connection.subscription_id}'.",
        )


class Registries(_TrackedType):
    resource_type = REGISTRY_TYPE
    api_version = REGISTRIES_API

    async def create(self, group: str, name: str, body: ArmBody) -> ArmBody:
        result: ArmBody = await self._client.arm("PUT", self.path(group, name), self.api_version, body)
        return result

    async def update(self, group: str, name: str, patch: ArmBody) -> ArmBody:
        result: ArmBody = await self._client.arm("PATCH", self.path(group, name), self.api_version, patch)
        return result

    async def list_credentials(self, group: str, name: str) -> ArmBody:
        path = f"{self.path(group, name)}/listCredentials"
        result: ArmBody = await self._client.arm("POST", path, self.api_version)
        return result

    async def regenerate_credential(self, group: str, name: str, password_name: str) -> ArmBody:
        path = f"{self.path(group, name)}/regenerateCredential"
        result: ArmBody = await self._client.arm("POST", path, self.api_version, {"name": password_name})
        return result


class Identities(_TrackedType):
    resource_type = IDENTITY_TYPE
    api_version = IDENTITIES_API

    async def create(self, group: str, name: str, body: ArmBody) -> ArmBody:
        result: ArmBody = await self._client.arm("PUT", self.path(group, name), self.api_version, body)
        return result


class ContainerGroups(_TrackedType):
    resource_type = CONTAINER_GROUP_TYPE
    api_version = CONTAINER_GROUPS_API

    async def begin_create(self, group: str, name: str, body: ArmBody) -> LongRunning:
        return await begin(self._client, "PUT", self.path(group, name), self.api_version, body)

    async def action(self, group: str, name: str, action: Literal["start", "stop", "restart"]) -> None:
        """``start``/``restart`` wait for the group to be provisioned again; ``stop`` is immediate."""
        await self._client.arm("POST", f"{self.path(group, name)}/{action}", self.api_version)

    async def logs(self, group: str, name: str, container: str, *, tail: int | None = None) -> ArmBody:
        params = {"tail": str(tail)} if tail is not None else {}
        path = f"{self.path(group, name)}/containers/{container}/logs"
        result: ArmBody = await self._client.arm("GET", path, self.api_version, **params)
        return result

    async def exec_session(
        self, group: str, name: str, container: str, command: str, *, rows: int, cols: int
    ) -> ArmBody:
        """``POST .../containers/{c}/exec``: ``{webSocketUri, password}`` of a one-time session."""
        path = f"{self.path(group, name)}/containers/{container}/exec"
        body = {"command": command, "terminalSize": {"rows": rows, "cols": cols}}
        result: ArmBody = await self._client.arm("POST", path, self.api_version, body)
        return result


class Deployments:
    """``Microsoft.Resources/deployments`` at resource-group scope, and their operations."""

    def __init__(self, client: MoorageClient) -> None:
        self._client = client

    def path(self, group: str, name: str = "") -> str:
        suffix = f"/{name}" if name else ""
        return self._client.sub_path(f"/resourcegroups/{group}/providers/{DEPLOYMENT_TYPE}{suffix}")

    async def begin_create(self, group: str, name: str, body: ArmBody) -> LongRunning:
        return await begin(self._client, "PUT", self.path(group, name), DEPLOYMENTS_API, body)

    async def get(self, group: str, name: str) -> ArmBody:
        result: ArmBody = await self._client.arm("GET", self.path(group, name), DEPLOYMENTS_API)
        return result

    async def list(self, group: str) -> list[ArmBody]:
        return await self._client.list_value(self.path(group), DEPLOYMENTS_API)

    async def delete(self, group: str, name: str) -> None:
        await self._client.arm("DELETE", self.path(group, name), DEPLOYMENTS_API)

    async def _action(self, group: str, name: str, action: str, body: Any = None) -> Any:
        return await self._client.arm("POST", f"{self.path(group, name)}/{action}", DEPLOYMENTS_API, body)

    async def validate(self, group: str, name: str, body: ArmBody) -> ArmBody:
        result: ArmBody = await self._action(group, name, "validate", body)
        return result

    async def what_if(self, group: str, name: str, body: ArmBody) -> ArmBody:
        result: ArmBody = await self._action(group, name, "whatIf", body)
        return result

    async def cancel(self, group: str, name: str) -> None:
        await self._action(group, name, "cancel")

    async def export_template(self, group: str, name: str) -> ArmBody:
        result: ArmBody = await self._action(group, name, "exportTemplate")
        return result

    async def operations(self, group: str, name: str) -> builtins.list[ArmBody]:
        """The deployment's operations (Azure's path: ``.../deployments/{name}/operations``)."""
        path = self._client.sub_path(f"/resourcegroups/{group}/deployments/{name}/operations")
        return await self._client.list_value(path, DEPLOYMENTS_API)


class RoleAssignments:
    """``Microsoft.Authorization/roleAssignments`` at any scope, and role-name resolution."""

    def __init__(self, client: MoorageClient) -> None:
        self._client = client

    async def create(
        self, scope: str, role_definition_id: str, principal_id: str, principal_type: str
    ) -> ArmBody:
        path = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
        body = {
            "properties": {
                "roleDefinitionId": role_definition_id,
                "principalId": principal_id,
                "principalType": principal_type,
            }
        }
        result: ArmBody = await self._client.arm("PUT", path, ROLE_ASSIGNMENTS_API, body)
        return result

    async def list(self, scope: str, *, at_scope: bool, principal_id: str | None = None) -> list[ArmBody]:
        """Assignments at ``scope``: with ``at_scope`` those at or above it, else also below."""
        clauses = (["atScope()"] if at_scope else []) + (
            [f"assignedTo('{principal_id}')"] if principal_id else []
        )
        params = {"$filter": " and ".join(clauses)} if clauses else {}
        path = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments"
        return await self._client.list_value(path, ROLE_ASSIGNMENTS_API, **params)

    async def delete(self, assignment_id: str) -> Any:
        return await self._client.arm("DELETE", assignment_id, ROLE_ASSIGNMENTS_API)

    async def definitions(self) -> builtins.list[ArmBody]:
        path = self._client.sub_path("/providers/Microsoft.Authorization/roleDefinitions")
        return await self._client.list_value(path, ROLE_DEFINITIONS_API)

    async def definition_id(self, role: str) -> str:
        """A role name (``AcrPull``), GUID or full id, as the role definition's full id."""
        if role.lower().startswith("/subscriptions/") or role.lower().startswith("/providers/"):
            return role
        return await self._client.role_definition_id(role)
