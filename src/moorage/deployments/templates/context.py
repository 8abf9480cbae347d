"""Where a deployment runs: what ``resourceGroup()``, ``subscription()``, ``tenant()``,
``deployment()`` and ``environment()`` return, and the clock and GUID source of ``utcNow()`` and
``newGuid()``.

The engine builds one :class:`DeploymentContext` per deployment and passes it to
:func:`~moorage.deployments.templates.bind_parameters` and
:func:`~moorage.deployments.templates.expand`. ``now`` is fixed when the context is created so that
every evaluation of a deployment sees the same ``utcNow()``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from moorage.deployments.templates.values import Json


@dataclass(frozen=True)
class ResourceGroupInfo:
    """The target resource group of a resource-group-scope deployment."""

    name: str
    location: str
    tags: Mapping[str, str] = field(default_factory=dict)
    managed_by: str | None = None


def azure_cloud_environment(
    *,
    resource_manager: str = "https://management.azure.com/",
    login_endpoint: str = "https://login.microsoftonline.com/",
    acr_login_server_suffix: str = ".azurecr.io",
    name: str = "AzureCloud",
) -> dict[str, Json]:
    """``environment()`` in Azure's shape, with the endpoints a local cloud overrides."""
    audience = resource_manager if resource_manager.endswith("/") else resource_manager + "/"
    return {
        "name": name,
        "gallery": "https://gallery.azure.com/",
        "graph": "https://graph.windows.net/",
        "portal": "https://portal.azure.com",
        "graphAudience": "https://graph.windows.net/",
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "batch": "https://batch.core.windows.net/",
        "media": "https://rest.media.azure.net",
        "sqlManagement": "https://management.core.windows.net:8443/",
        "vmImageAliasDoc": (
            "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json"
        ),
        "resourceManager": resource_manager,
        "authentication": {
            "loginEndpoint": login_endpoint,
            "audiences": ["https://management.core.windows.net/", audience],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "suffixes": {
            "acrLoginServer": acr_login_server_suffix,
            "azureDatalakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
            "azureDatalakeStoreFileSystem": "azuredatalakestore.net",
            "azureFrontDoorEndpointSuffix": "azurefd.net",
            "keyvaultDns": ".vault.azure.net",
            "sqlServerHostname": ".database.windows.net",
            "storage": "core.windows.net",
        },
    }


def _new_guid() -> str:
    return str(uuid.uuid4())


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeploymentContext:
    """The facts about one deployment that template functions can observe.

    ``resource_group`` is ``None`` for a subscription-scope deployment (then ``resourceGroup()`` is
    an error and ``resourceId()`` builds subscription-level ids). ``location`` is the deployment's
    own location (required by ARM at subscription scope). ``new_guid`` supplies ``newGuid()``
    values; tests pass a deterministic one.
    """

    subscription_id: str
    tenant_id: str
    deployment_name: str
    resource_group: ResourceGroupInfo | None = None
    location: str | None = None
    subscription_display_name: str = "moorage"
    tenant_display_name: str = "moorage"
    tenant_country_code: str = "US"
    mode: Literal["Incremental", "Complete"] = "Incremental"
    template_link: Mapping[str, Json] | None = None
    environment: Mapping[str, Json] = field(default_factory=azure_cloud_environment)
    now: datetime = field(default_factory=_utc_now)
    new_guid: Callable[[], str] = field(default=_new_guid, repr=False)

    @property
    def scope(self) -> Literal["resourceGroup", "subscription"]:
        return "resourceGroup" if self.resource_group is not None else "subscription"

    @property
    def subscription_scope_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}"

    @property
    def resource_group_id(self) -> str | None:
        if self.resource_group is None:
            return None
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group.name}"
