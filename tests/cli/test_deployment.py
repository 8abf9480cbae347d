"""``moorage deployment group …`` and ``deployment operation group list`` with a small template
of user-assigned identities, read from a file with comments as ARM reads it; and a failed
deployment's envelope with the container group's error and moorage's cause."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli, PrivateImage, unique

TEMPLATE = """{
  // Identities only: nothing to pull, nothing to run.
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "prefix": {"type": "string"},
    "count": {"type": "int", "defaultValue": 2},
  },
  "resources": [
    {
      "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
      "apiVersion": "2023-01-31",
      "name": "[format('{0}-{1}', parameters('prefix'), copyIndex())]",
      "location": "[resourceGroup().location]",
      "copy": {"name": "ids", "count": "[parameters('count')]"}
    }
  ],
  "outputs": {
    "first": {
      "type": "string",
      "value": "[reference(format('{0}-0', parameters('prefix'))).principalId]"
    }
  }
}
"""
FAILED_MESSAGE = (
    "At least one resource deployment operation failed. Please list deployment operations for "
    "details. Please see https://aka.ms/arm-deployment-operations for usage details."
)


def _template(tmp_path: Path) -> Path:
    path = tmp_path / "identities.json"
    path.write_text(TEMPLATE)
    return path


def test_validate_and_what_if_write_nothing(cli: Cli, group: str, tmp_path: Path) -> None:
    template = str(_template(tmp_path))
    validated = cli.json("deployment", "group", "validate", "-g", group, "-f", template, "-p", "prefix=v")
    assert validated["properties"]["provisioningState"] == "Succeeded"
    assert [r["id"].rsplit("/", 1)[-1] for r in validated["properties"]["validatedResources"]] == [
        "v-0",
        "v-1",
    ]
    predicted = cli.json(
        "deployment", "group", "what-if", "-g", group, "-f", template, "-p", "prefix=v", "-p", "count=3"
    )
    assert [
        (c["changeType"], c["resourceId"].rsplit("/", 1)[-1]) for c in predicted["properties"]["changes"]
    ] == [
        ("Create", "v-0"),
        ("Create", "v-1"),
        ("Create", "v-2"),
    ]
    table = cli.run(
        "deployment", "group", "what-if", "-g", group, "-f", template, "-p", "prefix=v", "-o", "table"
    )
    assert table.stdout.splitlines()[0].split() == ["ChangeType", "ResourceId", "Changes"]
    assert cli.json("identity", "list", "-g", group) == []
    assert cli.json("deployment", "group", "list", "-g", group) == []


def test_create_show_operations_export_delete(cli: Cli, group: str, tmp_path: Path) -> None:
    template = _template(tmp_path)
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps({"$schema": "x", "contentVersion": "1.0.0.0", "parameters": {"prefix": {"value": "p"}}})
    )
    run = cli.run(
        "deployment", "group", "create", "-g", group, "-n", "ids", "-f", str(template), "-p", f"@{params}"
    )
    created = json.loads(run.stdout)
    assert created["name"] == "ids"
    assert created["properties"]["provisioningState"] == "Succeeded"
    first = cli.json("identity", "show", "-n", "p-0", "-g", group)
    assert created["properties"]["outputs"]["first"]["value"] == first["properties"]["principalId"]
    # Progress went to stderr as plain lines (not a terminal): the final state and each resource.
    assert "deployment ids: Succeeded" in run.stderr
    assert (
        "  p-0: Type=Microsoft.ManagedIdentity/userAssignedIdentities, Operation=Create, State=Succeeded"
        in run.stderr
    )
    assert cli.json("deployment", "group", "show", "-g", group, "-n", "ids") == created
    listed = cli.run("deployment", "group", "list", "-g", group, "-o", "table").stdout.splitlines()
    assert listed[0].split() == ["Name", "State", "Timestamp", "Mode", "ResourceGroup"]
    assert listed[2].split()[:2] == ["ids", "Succeeded"]
    operations = cli.json("deployment", "operation", "group", "list", "-g", group, "-n", "ids")
    assert sorted(o["properties"]["targetResource"]["resourceName"] for o in operations) == ["p-0", "p-1"]
    table = cli.run("deployment", "operation", "group", "list", "-g", group, "-n", "ids", "-o", "table")
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["Resource", "Type", "Operation", "State", "StatusCode", "Duration"]
    assert sorted(r.split()[:5] for r in rows[2:]) == [
        [n, "Microsoft.ManagedIdentity/userAssignedIdentities", "Create", "Succeeded", "Created"]
        for n in ("p-0", "p-1")
    ]
    exported = cli.json("deployment", "group", "export", "-g", group, "-n", "ids")
    assert exported["resources"][0]["copy"] == {"name": "ids", "count": "[parameters('count')]"}
    # The name defaults to the template file's, as in az.
    assert cli.json("deployment", "group", "create", "-g", group, "-f", str(template), "-p", "prefix=q")[
        "name"
    ] == ("identities")
    finished = cli.run("deployment", "group", "cancel", "-g", group, "-n", "ids", check=False)
    assert finished.returncode == 1
    assert finished.stderr.startswith("ERROR: (DeploymentCannotBeCancelled) ")
    assert cli.run("deployment", "group", "delete", "-g", group, "-n", "ids").stdout == ""
    missing = cli.run("deployment", "group", "show", "-g", group, "-n", "ids", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("ERROR: (DeploymentNotFound) ")


def test_no_wait_returns_at_once(cli: Cli, group: str, tmp_path: Path) -> None:
    result = cli.run(
        "deployment", "group", "create", "-g", group, "-n", "later", "-f", str(_template(tmp_path)),
        "-p", "prefix=l", "--no-wait",
    )  # fmt: skip
    assert result.stdout == ""
    assert cli.json("deployment", "group", "show", "-g", group, "-n", "later")["name"] == "later"


def test_template_problems(cli: Cli, group: str, tmp_path: Path) -> None:
    template = str(_template(tmp_path))
    # Found locally: a usage error, and nothing is sent.
    for args in (
        ("-f", str(tmp_path / "none.json")),
        ("-f", template, "-p", "count=two"),
        ("-f", template, "-p", "x"),
    ):
        result = cli.run("deployment", "group", "create", "-g", group, *args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("ERROR: ")
    # Found by the server: InvalidTemplate, with its target.
    missing = cli.run("deployment", "group", "create", "-g", group, "-f", template, check=False)
    assert missing.returncode == 1
    lines = missing.stderr.splitlines()
    assert lines[0].startswith("ERROR: (InvalidTemplate) Deployment template validation failed: ")
    assert "Target: properties.template.parameters.prefix" in lines
    assert cli.json("deployment", "group", "list", "-g", group) == []


def test_failed_deployment_prints_the_envelope_each_detail_and_the_cause(
    cli: Cli, private_image: PrivateImage, tmp_path: Path
) -> None:
    template = {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"password": {"type": "securestring"}},
        "resources": [
            {
                "type": "Microsoft.ContainerInstance/containerGroups",
                "apiVersion": "2023-05-01",
                "name": "cg-wrong",
                "location": "[resourceGroup().location]",
                "properties": {
                    "osType": "Linux",
                    "imageRegistryCredentials": [
                        {
                            "server": private_image.login_server,
                            "username": private_image.registry,
                            "password": "[parameters('password')]",
                        }
                    ],
                    "containers": [
                        {
                            "name": "main",
                            "properties": {
                                "image": private_image.image,
                                "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}},
                            },
                        }
                    ],
                },
            }
        ],
    }
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(template))
    name = unique("dep-wrong-")
    failed = cli.run(
        "deployment", "group", "create", "-g", private_image.group, "-n", name, "-f", str(path),
        "-p", "password=not-the-password", check=False,
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert "not-the-password" not in failed.stderr
    lines = failed.stderr.splitlines()
    start = lines.index(f"ERROR: (DeploymentFailed) {FAILED_MESSAGE}")
    error = lines[start:]
    assert error[1] == (
        f"  (InaccessibleImage) The image '{private_image.image}' in container group 'cg-wrong' is not "
        "accessible. Please check the image and registry credential."
    )
    assert error[2].startswith("    Cause: CredentialsRejected: ")
    assert error[3] == "    Evidence:"
    assert "      credentialKind: adminUser" in error
    assert any(line.startswith("    Fix: ") for line in error)
    # The operation that failed, as the table shows it.
    progress = [line for line in lines[:start] if line.startswith("  cg-wrong: ")]
    assert progress
    assert "State=Failed" in progress[-1]
    assert "StatusCode=BadRequest" in progress[-1]
    shown = cli.json("deployment", "group", "show", "-g", private_image.group, "-n", name)
    assert shown["properties"]["error"]["code"] == "DeploymentFailed"
