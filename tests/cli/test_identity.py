"""``moorage identity`` and ``moorage group``; YAML and TSV output."""

from __future__ import annotations

import uuid

from tests.cli.conftest import Cli, unique


def test_identity_lifecycle(cli: Cli, group: str) -> None:
    name = unique("id-")
    created = cli.json("identity", "create", "-n", name, "-g", group, "--tags", "env=ci")
    assert created["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert created["tags"] == {"env": "ci"}
    props = created["properties"]
    for key in ("principalId", "clientId", "tenantId"):
        uuid.UUID(props[key])
    assert cli.json("identity", "show", "-n", name, "-g", group)["properties"] == props
    assert [i["name"] for i in cli.json("identity", "list", "-g", group)] == [name]
    assert name in [i["name"] for i in cli.json("identity", "list")]
    deleted = cli.run("identity", "delete", "-n", name, "-g", group)
    assert deleted.stdout == ""
    missing = cli.run("identity", "show", "-n", name, "-g", group, check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("ERROR: (ResourceNotFound) ")


def test_yaml_output(cli: Cli, group: str) -> None:
    name = unique("id-")
    created = cli.json("identity", "create", "-n", name, "-g", group)
    lines = cli.run("identity", "show", "-n", name, "-g", group, "-o", "yaml").stdout.splitlines()
    assert f"id: {created['id']}" in lines
    assert f"name: {name}" in lines
    assert "properties:" in lines
    assert f'  principalId: "{created["properties"]["principalId"]}"' in lines or (
        f"  principalId: {created['properties']['principalId']}" in lines
    )
    assert "tags: {}" in lines


def test_tsv_output_is_az_s(cli: Cli, group: str) -> None:
    name = unique("id-")
    created = cli.json("identity", "create", "-n", name, "-g", group)
    # az's tsv: the top-level keys sorted (id, location, name, properties, tags, type), nested
    # objects empty.
    line = cli.run("identity", "show", "-n", name, "-g", group, "-o", "tsv").stdout
    assert line == f"{created['id']}\twestus\t{name}\t\t\t{created['type']}\n"


def test_group_show_list_and_missing_group(cli: Cli, group: str) -> None:
    assert cli.json("group", "show", "-n", group)["properties"]["provisioningState"] == "Succeeded"
    assert group in [g["name"] for g in cli.json("group", "list")]
    missing = cli.run("identity", "create", "-n", "x", "-g", unique("rg-none-"), check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("ERROR: (ResourceGroupNotFound) ")


def test_unknown_output_format_is_a_usage_error(cli: Cli) -> None:
    result = cli.run("group", "list", "-o", "xml", check=False)
    assert result.returncode == 2
