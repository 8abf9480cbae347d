"""Whole templates of the issue's scenarios: the seed (a firewalled Premium registry, a
user-assigned identity with AcrPull on it, a container group pulling with that identity) and
Azure's multi-container group tutorial (an app plus a sidecar)."""

from __future__ import annotations

from typing import Any

from moorage.deployments.templates import CachedResolver, RuntimeCall, deterministic_guid
from tests.unit.templates.support import RG_ID, SUB, plan_of, rid

ACR = "Microsoft.ContainerRegistry/registries"
UAMI = "Microsoft.ManagedIdentity/userAssignedIdentities"
ACI = "Microsoft.ContainerInstance/containerGroups"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"

SEED: dict[str, Any] = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "contentVersion": "1.0.0.0",
    "parameters": {
        "registryName": {"type": "string", "minLength": 5, "maxLength": 50},
        "bypass": {"type": "string", "allowedValues": ["None", "AzureServices"], "defaultValue": "None"},
        "image": {"type": "string", "defaultValue": "app:v1"},
        "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
    },
    "variables": {
        "identityName": "[concat(parameters('registryName'), '-puller')]",
        "identityId": "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', "
        "variables('identityName'))]",
        "registryId": "[resourceId('Microsoft.ContainerRegistry/registries', parameters('registryName'))]",
        "acrPull": f"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{ACR_PULL}')]",
    },
    "resources": [
        {
            "type": ACR,
            "apiVersion": "2023-07-01",
            "name": "[parameters('registryName')]",
            "location": "[parameters('location')]",
            "sku": {"name": "Premium"},
            "properties": {
                "adminUserEnabled": False,
                "networkRuleSet": {"defaultAction": "Deny"},
                "networkRuleBypassOptions": "[parameters('bypass')]",
            },
        },
        {
            "type": UAMI,
            "apiVersion": "2023-01-31",
            "name": "[variables('identityName')]",
            "location": "[parameters('location')]",
        },
        {
            "type": "Microsoft.Authorization/roleAssignments",
            "apiVersion": "2022-04-01",
            "name": "[guid(variables('registryId'), variables('identityId'), variables('acrPull'))]",
            "scope": "[concat('Microsoft.ContainerRegistry/registries/', parameters('registryName'))]",
            "properties": {
                "roleDefinitionId": "[variables('acrPull')]",
                "principalId": "[reference(variables('identityId')).principalId]",
                "principalType": "ServicePrincipal",
            },
        },
        {
            "type": ACI,
            "apiVersion": "2023-05-01",
            "name": "cg-seed",
            "location": "[parameters('location')]",
            "dependsOn": [
                "[extensionResourceId(variables('registryId'), 'Microsoft.Authorization/roleAssignments', "
                "guid(variables('registryId'), variables('identityId'), variables('acrPull')))]"
            ],
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {"[variables('identityId')]": {}}},
            "properties": {
                "osType": "Linux",
                "restartPolicy": "Never",
                "imageRegistryCredentials": [
                    {
                        "server": "[reference(variables('registryId')).loginServer]",
                        "identity": "[variables('identityId')]",
                    }
                ],
                "containers": [
                    {
                        "name": "app",
                        "properties": {
                            "image": "[concat(reference(variables('registryId')).loginServer, '/', "
                            "parameters('image'))]",
                            "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
                        },
                    }
                ],
            },
        },
    ],
    "outputs": {
        "loginServer": {"type": "string", "value": "[reference(variables('registryId')).loginServer]"},
        "principalId": {"type": "string", "value": "[reference(variables('identityId')).principalId]"},
    },
}


def test_seed_template_plan() -> None:
    plan = plan_of(SEED, {"registryName": {"value": "seedacr"}, "bypass": {"value": "AzureServices"}})
    registry = rid(ACR, "seedacr")
    identity = rid(UAMI, "seedacr-puller")
    role = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL}"
    assignment_name = deterministic_guid(registry, identity, role)
    assignment = f"{registry}/providers/Microsoft.Authorization/roleAssignments/{assignment_name}"
    group = rid(ACI, "cg-seed")

    assert [r.id for r in plan.resources] == [registry, identity, assignment, group]
    assert [[r.id for r in wave] for wave in plan.waves()] == [[registry, identity], [assignment], [group]]
    by_id = {r.id: r for r in plan.resources}
    assert set(by_id[assignment].depends_on) == {registry, identity}
    assert by_id[assignment].scope == registry
    assert set(by_id[group].depends_on) == {assignment, registry}
    assert by_id[group].explicit_depends_on == (assignment,)

    registry_body = by_id[registry].body.evaluate()
    assert registry_body == {
        "location": "westeurope",
        "sku": {"name": "Premium"},
        "properties": {
            "adminUserEnabled": False,
            "networkRuleSet": {"defaultAction": "Deny"},
            "networkRuleBypassOptions": "AzureServices",
        },
    }

    resolver = CachedResolver()
    resolver.add(
        RuntimeCall("reference", identity, "2023-01-31"), {"principalId": "pid-1", "clientId": "cid-1"}
    )
    resolver.add(RuntimeCall("reference", registry, "2023-07-01"), {"loginServer": "seedacr.azurecr.io"})
    assignment_body = by_id[assignment].body.evaluate(resolver)
    assert assignment_body == {
        "properties": {"roleDefinitionId": role, "principalId": "pid-1", "principalType": "ServicePrincipal"}
    }
    group_body = by_id[group].body.evaluate(resolver)
    assert isinstance(group_body, dict)
    assert group_body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}
    assert group_body["properties"]["imageRegistryCredentials"] == [
        {"server": "seedacr.azurecr.io", "identity": identity}
    ]
    assert group_body["properties"]["containers"][0]["properties"]["image"] == "seedacr.azurecr.io/app:v1"
    assert plan.evaluate_outputs(resolver) == {
        "loginServer": {"type": "String", "value": "seedacr.azurecr.io"},
        "principalId": {"type": "String", "value": "pid-1"},
    }


def test_seed_template_default_bypass_is_none() -> None:
    plan = plan_of(SEED, {"registryName": {"value": "seedacr"}})
    body = plan.resource(rid(ACR, "seedacr")).body.evaluate()
    assert isinstance(body, dict)
    assert body["properties"]["networkRuleBypassOptions"] == "None"


# learn.microsoft.com/azure/container-instances/container-instances-multi-container-group (the
# template of the tutorial), with the images moved to a moorage registry.
SIDECAR: dict[str, Any] = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "contentVersion": "1.0.0.0",
    "parameters": {
        "containerGroupName": {"type": "string", "defaultValue": "myContainerGroup"},
        "registry": {"type": "string"},
    },
    "variables": {
        "container1name": "aci-tutorial-app",
        "container1image": "[concat(parameters('registry'), '/aci-helloworld:latest')]",
        "container2name": "aci-tutorial-sidecar",
        "container2image": "[concat(parameters('registry'), '/aci-tutorial-sidecar')]",
    },
    "resources": [
        {
            "name": "[parameters('containerGroupName')]",
            "type": "Microsoft.ContainerInstance/containerGroups",
            "apiVersion": "2019-12-01",
            "location": "[resourceGroup().location]",
            "properties": {
                "containers": [
                    {
                        "name": "[variables('container1name')]",
                        "properties": {
                            "image": "[variables('container1image')]",
                            "resources": {"requests": {"cpu": 1, "memoryInGb": 1.5}},
                            "ports": [{"port": 80}, {"port": 8080}],
                        },
                    },
                    {
                        "name": "[variables('container2name')]",
                        "properties": {
                            "image": "[variables('container2image')]",
                            "resources": {"requests": {"cpu": 1, "memoryInGb": 1.5}},
                        },
                    },
                ],
                "osType": "Linux",
                "ipAddress": {
                    "type": "Public",
                    "ports": [{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 8080}],
                },
            },
        }
    ],
    "outputs": {
        "containerIPv4Address": {
            "type": "string",
            "value": "[reference(resourceId('Microsoft.ContainerInstance/containerGroups/', "
            "parameters('containerGroupName'))).ipAddress.ip]",
        }
    },
}


def test_multi_container_tutorial_template() -> None:
    plan = plan_of(SIDECAR, {"registry": {"value": "registry.local:5000"}})
    (group,) = plan.resources
    assert group.id == f"{RG_ID}/providers/{ACI}/myContainerGroup"
    body = group.body.evaluate()
    assert isinstance(body, dict)
    images = [c["properties"]["image"] for c in body["properties"]["containers"]]
    assert images == ["registry.local:5000/aci-helloworld:latest", "registry.local:5000/aci-tutorial-sidecar"]
    resolver = CachedResolver()
    resolver.add(RuntimeCall("reference", group.id, "2019-12-01"), {"ipAddress": {"ip": "10.0.0.4"}})
    assert plan.evaluate_outputs(resolver) == {
        "containerIPv4Address": {"type": "String", "value": "10.0.0.4"}
    }
