"""``moorage support-bundle`` against the session server: what the archive holds for a failed
deployment and for a running container group, and that none of the secrets planted in them
(a service principal's secret, a secure environment value, a secure template parameter, the
CLI's own client secret, the registry's admin password) appears anywhere in it."""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import RawArm
from tests.api.diagnose_support import (
    GROUP_API,
    Setup,
    deploy_group,
    diagnose_setup,
    firewall,
    group_body,
    group_path,
)
from tests.api.test_container_groups import runs_containers
from tests.cli.conftest import Cli
from tests.server import RunningServer

PLANTED_DEFAULT = "planted-default-Zq81-secure-parameter"
PLANTED_ENV = "planted-env-Vx27-secure-value"


@pytest.fixture(scope="module")
def setup(raw: RawArm) -> Iterator[Setup]:
    with diagnose_setup(raw, "bundle") as prepared:
        yield prepared


def extract(archive: Path, where: Path) -> dict[str, str]:
    """Every member of the archive: its path below the bundle's top directory → its text."""
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(where, filter="data")
    tops = list(where.iterdir())
    assert len(tops) == 1, tops
    return {str(p.relative_to(tops[0])): p.read_text() for p in tops[0].rglob("*") if p.is_file()}


def planted(server: RunningServer, setup: Setup) -> list[str]:
    return [setup.puller.secret, PLANTED_DEFAULT, PLANTED_ENV, server.client_secret, setup.admin]


def assert_no_secret(files: dict[str, str], secrets: list[str]) -> None:
    for path, text in files.items():
        for secret in secrets:
            assert secret not in text, f"a planted secret is in {path}"


def secret_group(setup: Setup, name: str) -> dict[str, Any]:
    credential = {
        "server": setup.login,
        "username": "[parameters('appId')]",
        "password": "[parameters('secret')]",
    }
    env = [
        {"name": "MODE", "value": "bundle-test"},
        {"name": "DB_PASSWORD", "secureValue": "[parameters('envSecret')]"},
    ]
    return {"name": name, "properties": group_body(setup.image, [credential], env=env)["properties"]}


def test_a_failed_deployment_bundle_holds_what_support_asks_for_and_no_secret(
    cli: Cli, raw: RawArm, setup: Setup, tmp_path: Path
) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    parameters = {
        "appId": ("string", setup.puller.app_id),
        "secret": ("securestring", setup.puller.secret),
    }
    group = secret_group(setup, "cg-bundled")
    defaults = {"envSecret": ("securestring", PLANTED_DEFAULT)}
    shown = deploy_group(raw, setup, "dep-bundled", group=group, parameters=parameters, defaults=defaults)
    assert shown["properties"]["provisioningState"] == "Failed", shown
    out = tmp_path / "support.tar.gz"
    result = cli.run(
        "support-bundle", "dep-bundled", "-g", setup.group, "-o", str(out), check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["bundle"] == str(out)
    files = extract(out, tmp_path / "x")
    assert sorted(files) == [
        "deployment/deployment.json",
        "deployment/operations.json",
        "deployment/template.json",
        "diagnose.json",
        "diagnose.txt",
        "manifest.json",
        "registries.json",
        "server.json",
    ]
    assert sorted(p.split("/", 1)[1] for p in listed["files"]) == sorted(files)
    manifest = json.loads(files["manifest.json"])
    assert manifest["target"] == {"kind": "deployment", "id": shown["id"]}
    assert manifest["notes"] == [
        f"The container group '{group_path(raw, setup, 'cg-bundled')}' does not exist (its PUT was refused)."
    ]
    assert json.loads(files["diagnose.json"])["cause"] == "FirewallBlocksPlatform"
    assert files["diagnose.txt"].rstrip().endswith("result: FAILED (FirewallBlocksPlatform)")
    registries = json.loads(files["registries.json"])["registries"]
    assert [r["id"] for r in registries] == [setup.registry.id]
    operations = json.loads(files["deployment/operations.json"])
    assert [o["properties"]["statusMessage"]["error"]["code"] for o in operations] == ["InaccessibleImage"]
    template = json.loads(files["deployment/template.json"])["template"]
    assert template["parameters"]["envSecret"]["defaultValue"] == "<redacted>"
    assert json.loads(files["server.json"])["settings"]["platform_address"] == "100.64.0.1"
    assert_no_secret(files, planted(cli.server, setup))


@pytest.fixture
def running_group(raw: RawArm, setup: Setup) -> Iterator[str]:
    firewall(raw, setup)
    credential = {"server": setup.login, "username": setup.puller.app_id, "password": setup.puller.secret}
    env = [{"name": "MODE", "value": "bundle-test"}, {"name": "TOKEN", "secureValue": PLANTED_ENV}]
    body = group_body(setup.image, [credential], env=env, identities=(setup.identity,))
    path = group_path(raw, setup, "cg-bundle-run")
    created = raw.request("PUT", path, api_version=GROUP_API, json=body, timeout=300)
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 60
    while (
        raw.request("GET", path, api_version=GROUP_API).json()["properties"]["provisioningState"]
        != "Succeeded"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    yield path
    raw.request("DELETE", path, api_version=GROUP_API, timeout=120)


@runs_containers
def test_a_container_group_bundle_exports_its_template_and_events(
    cli: Cli, setup: Setup, running_group: str, tmp_path: Path
) -> None:
    out = tmp_path / "group.tar.gz"
    result = cli.run("support-bundle", running_group, "-o", str(out), check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    files = extract(out, tmp_path / "x")
    assert sorted(files) == [
        "container-groups/cg-bundle-run/events.json",
        "container-groups/cg-bundle-run/group.json",
        "container-groups/cg-bundle-run/template.json",
        "diagnose.json",
        "diagnose.txt",
        "manifest.json",
        "registries.json",
        "server.json",
    ]
    exported = json.loads(files["container-groups/cg-bundle-run/template.json"])
    [resource] = exported["resources"]
    assert resource["type"] == "Microsoft.ContainerInstance/containerGroups"
    assert resource["name"] == "[parameters('containerGroups_cg_bundle_run_name')]"
    assert exported["parameters"]["containerGroups_cg_bundle_run_name"]["defaultValue"] == "cg-bundle-run"
    assert resource["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {setup.identity: {}}}
    props = resource["properties"]
    assert "instanceView" not in props
    assert "provisioningState" not in props
    assert props["imageRegistryCredentials"] == [{"server": setup.login, "username": setup.puller.app_id}]
    assert props["containers"][0]["properties"]["image"] == setup.image
    events = json.loads(files["container-groups/cg-bundle-run/events.json"])
    assert "Pulling" in [e["name"] for e in events["containers"]["main"]["events"]]
    assert json.loads(files["diagnose.json"])["result"] == "Passed"
    assert [r["id"] for r in json.loads(files["registries.json"])["registries"]] == [setup.registry.id]
    assert_no_secret(files, planted(cli.server, setup))
