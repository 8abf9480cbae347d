"""End to end: ``az deployment group`` (the real Azure CLI from ``.venv-az``) against moorage.

The CLI validates before it deploys (``POST .../validate``), sends the template file's text
spliced into a body that is not JSON (an unquoted key, the file's comments), prints a failed
deployment's whole error and exits 1; ``az deployment operation group list`` then shows the
failed operation's ``statusMessage`` — the path the seed's users take.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_azcli import AzCli, require_az, unique
from tests.server import RunningServer

pytestmark = pytest.mark.azcli

TEMPLATE = """{
  // Written the way people write templates: with comments.
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "identityName": {"type": "string"},
    "image": {"type": "string", "defaultValue": "127.0.0.1:1/none/such:v1"}
  },
  "variables": {
    "identityType": "Microsoft.ManagedIdentity/userAssignedIdentities",
    "identityId": "[resourceId(variables('identityType'), parameters('identityName'))]"
  },
  "resources": [
    {
      "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
      "apiVersion": "2023-01-31",
      "name": "[parameters('identityName')]",
      "location": "[resourceGroup().location]"
    }
  ],
  "outputs": {
    /* reference() reads the deployed identity */
    "principalId": {"type": "string", "value": "[reference(variables('identityId')).principalId]"}
  }
}
"""

FAILING = """{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {"image": {"type": "string"}},
  "resources": [
    {
      "type": "Microsoft.ContainerInstance/containerGroups",
      "apiVersion": "2023-05-01",
      "name": "cg-cli",
      "location": "[resourceGroup().location]",
      "properties": {
        "osType": "Linux",
        "imageRegistryCredentials": [
          {"server": "[split(parameters('image'), '/')[0]]", "username": "nobody", "password": "wrong"}
        ],
        "containers": [
          {"name": "main", "properties": {"image": "[parameters('image')]",
            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}
        ]
      }
    }
  ]
}
"""


@pytest.fixture(scope="module")
def az(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> AzCli:
    require_az()
    cli = AzCli(server, tmp_path_factory.mktemp("azure-config-deployment"))
    cli.register_cloud()
    cli.json(*cli.login_args(server.client_secret))
    return cli


@pytest.fixture(scope="module")
def group(az: AzCli) -> Iterator[str]:
    name = unique("azcli-dep-rg")
    az.json("group", "create", "--name", name, "--location", "westus")
    yield name
    az.run("group", "delete", "--name", name, "--yes", "--no-wait")


def test_deployment_group_create_show_and_operations(az: AzCli, group: str, tmp_path: Path) -> None:
    path = tmp_path / "identity.jsonc"
    path.write_text(TEMPLATE)
    result = az.json(
        "deployment",
        "group",
        "create",
        "--resource-group",
        group,
        "--name",
        "cli-identity",
        "--template-file",
        str(path),
        "--parameters",
        "identityName=cli-made",
    )
    assert result["properties"]["provisioningState"] == "Succeeded"
    identity = az.json("identity", "show", "--resource-group", group, "--name", "cli-made")
    assert result["properties"]["outputs"]["principalId"]["value"] == identity["principalId"]
    shown = az.json("deployment", "group", "show", "--resource-group", group, "--name", "cli-identity")
    assert shown["properties"]["parameters"]["identityName"]["value"] == "cli-made"
    ops = az.json(
        "deployment", "operation", "group", "list", "--resource-group", group, "--name", "cli-identity"
    )
    assert [o["properties"]["targetResource"]["resourceName"] for o in ops] == ["cli-made"]
    assert ops[0]["properties"]["provisioningState"] == "Succeeded"


def test_failed_deployment_prints_the_error_and_operations_name_the_cause(
    az: AzCli, group: str, tmp_path: Path
) -> None:
    path = tmp_path / "failing.json"
    path.write_text(FAILING)
    image = f"{az.server.endpoint.removeprefix('https://')}/nothing/here:v1"
    failed = az.run(
        "deployment",
        "group",
        "create",
        "--resource-group",
        group,
        "--name",
        "cli-failing",
        "--template-file",
        str(path),
        "--parameters",
        f"image={image}",
        expect_success=False,
    )
    assert "DeploymentFailed" in failed.output
    assert "InaccessibleImage" in failed.output
    codes = az.run(
        "deployment",
        "operation",
        "group",
        "list",
        "--resource-group",
        group,
        "--name",
        "cli-failing",
        "--query",
        "[?properties.provisioningState=='Failed'].properties.statusMessage.error.code",
        "--output",
        "tsv",
    )
    assert codes.stdout.split() == ["InaccessibleImage"]
    shown = az.json("deployment", "group", "show", "--resource-group", group, "--name", "cli-failing")
    assert shown["properties"]["error"]["code"] == "DeploymentFailed"
    assert json.dumps(shown).count("wrong") == 0  # the literal password is not echoed


def test_validate_and_what_if(az: AzCli, group: str, tmp_path: Path) -> None:
    path = tmp_path / "identity.jsonc"
    path.write_text(TEMPLATE)
    common = (
        "--resource-group",
        group,
        "--template-file",
        str(path),
        "--parameters",
        "identityName=cli-preview",
    )
    validated = az.json("deployment", "group", "validate", *common)
    assert validated["properties"]["provisioningState"] == "Succeeded"
    assert [r["id"].rsplit("/", 1)[-1] for r in validated["properties"]["validatedResources"]] == [
        "cli-preview"
    ]
    preview = az.json("deployment", "group", "what-if", *common, "--no-pretty-print")
    changes = {c["resourceId"].rsplit("/", 1)[-1]: c["changeType"] for c in preview["changes"]}
    assert changes["cli-preview"] == "Create"
    # Nothing was created.
    missing = az.run(
        "identity", "show", "--resource-group", group, "--name", "cli-preview", expect_success=False
    )
    assert "ResourceNotFound" in missing.output


def test_invalid_template_is_refused_before_anything_runs(az: AzCli, group: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(
        TEMPLATE.replace(
            'parameters(\'identityName\')]",\n      "location"', 'parameters(\'nope\')]",\n      "location"'
        )
    )
    failed = az.run(
        "deployment",
        "group",
        "create",
        "--resource-group",
        group,
        "--name",
        "cli-broken",
        "--template-file",
        str(path),
        "--parameters",
        "identityName=x",
        expect_success=False,
    )
    assert "InvalidTemplate" in failed.output
