"""Client calls for ``moorage diagnose`` and ``moorage support-bundle``: the
``Moorage.Diagnostics`` endpoints and the ARM reads a support bundle is made of."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moorage.client import ApiError, MoorageClient

DIAGNOSTICS_API = "2025-01-01"
GROUP_API = "2023-05-01"
DEPLOYMENT_API = "2024-03-01"
REGISTRY_API = "2023-07-01"
GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"
DEPLOYMENT_TYPE = "Microsoft.Resources/deployments"
# A diagnosis retries unreachable registries as the platform does: allow for it.
DIAGNOSE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Target:
    """What to diagnose or bundle: a resource (``kind`` ``containerGroup`` or ``deployment``)."""

    kind: str
    id: str

    @property
    def name(self) -> str:
        return self.id.rstrip("/").rsplit("/", 1)[-1]


def _diagnostics(client: MoorageClient, name: str) -> str:
    return client.sub_path(f"/providers/Moorage.Diagnostics/{name}")


async def diagnose(
    client: MoorageClient,
    *,
    target: str | None = None,
    image: str | None = None,
    as_: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """The diagnosis report of a resource (``target``) or of ``image`` checked as ``as_``."""
    body: dict[str, Any] = {"target": target} if target is not None else {"image": image}
    if as_ is not None:
        body["as"] = as_
    if password is not None:
        body["password"] = password
    response = await client.request(
        "POST", _diagnostics(client, "diagnose"), api_version=DIAGNOSTICS_API, json_body=body, expect=(200,)
    )
    report: dict[str, Any] = response.json()
    return report


async def server_info(client: MoorageClient) -> dict[str, Any]:
    response = await client.request(
        "GET", _diagnostics(client, "serverInfo"), api_version=DIAGNOSTICS_API, expect=(200,)
    )
    info: dict[str, Any] = response.json()
    return info


def group_id(client: MoorageClient, resource_group: str, name: str) -> str:
    return client.sub_path(f"/resourceGroups/{resource_group}/providers/{GROUP_TYPE}/{name}")


def deployment_id(client: MoorageClient, resource_group: str, name: str) -> str:
    return client.sub_path(f"/resourceGroups/{resource_group}/providers/{DEPLOYMENT_TYPE}/{name}")


async def find(client: MoorageClient, path: str, api_version: str) -> dict[str, Any] | None:
    """GET ``path``; ``None`` when it is not there."""
    try:
        found: dict[str, Any] | None = await client.arm("GET", path, api_version)
    except ApiError as error:
        if error.status == 404:
            return None
        raise
    return found


KINDS = {"container": "containerGroup", "group": "containerGroup", "deployment": "deployment"}


async def resolve_target(
    client: MoorageClient, ref: str, resource_group: str | None, kind: str | None = None
) -> Target:
    """A resource id as given, or a name in ``resource_group``: of ``kind`` (``container`` or
    ``deployment``) when given, else the container group of that name, else the deployment.
    Raises :class:`ApiError` (404) when there is none."""
    if kind is not None:
        wanted = KINDS.get(kind.lower())
        if wanted is None:
            raise ApiError(
                400,
                "InvalidDiagnosticsTarget",
                f"'{kind}' is not a kind of target: use container or deployment.",
            )
        if not ref.startswith("/"):
            if resource_group is None:
                raise ApiError(400, "MissingResourceGroup", f"Give the resource group of '{ref}' (-g).")
            make = group_id if wanted == "containerGroup" else deployment_id
            return Target(wanted, make(client, resource_group, ref))
    if ref.startswith("/"):
        low = ref.lower()
        if f"/providers/{GROUP_TYPE.lower()}/" in low:
            return Target("containerGroup", ref)
        if f"/providers/{DEPLOYMENT_TYPE.lower()}/" in low:
            return Target("deployment", ref)
        raise ApiError(400, "InvalidDiagnosticsTarget", f"'{ref}' is not a container group or deployment id.")
    if resource_group is None:
        raise ApiError(
            400, "MissingResourceGroup", f"Give the resource group of '{ref}' (-g), or its resource id."
        )
    group = group_id(client, resource_group, ref)
    if await find(client, group, GROUP_API) is not None:
        return Target("containerGroup", group)
    deployment = deployment_id(client, resource_group, ref)
    if await find(client, deployment, DEPLOYMENT_API) is not None:
        return Target("deployment", deployment)
    raise ApiError(
        404,
        "ResourceNotFound",
        f"Neither a container group nor a deployment named '{ref}' exists in resource group "
        f"'{resource_group}'.",
    )


async def registries(client: MoorageClient) -> list[dict[str, Any]]:
    """The subscription's registries (ARM bodies)."""
    return await client.list_value(
        client.sub_path("/providers/Microsoft.ContainerRegistry/registries"), REGISTRY_API
    )


async def deployment_operations(client: MoorageClient, deployment: str) -> list[dict[str, Any]]:
    return await client.list_value(f"{deployment}/operations", DEPLOYMENT_API)


async def export_deployment_template(client: MoorageClient, deployment: str) -> dict[str, Any]:
    response = await client.request(
        "POST", f"{deployment}/exportTemplate", api_version=DEPLOYMENT_API, expect=(200,)
    )
    exported: dict[str, Any] = response.json()
    return exported
