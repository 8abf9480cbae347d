"""``moorage diagnose`` on the command line against the session server: JSON output parsed, the
text report, exit codes (0 passed, 3 a cause found, 1 refused, 2 usage)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.api.conftest import RawArm
from tests.api.diagnose_support import (
    Setup,
    deploy_group,
    diagnose_setup,
    firewall,
    group_body,
    put_group_error,
)
from tests.cli.conftest import Cli


@pytest.fixture(scope="module")
def setup(raw: RawArm) -> Iterator[Setup]:
    with diagnose_setup(raw, "dcli") as prepared:
        yield prepared


def test_a_healthy_pull_exits_0_with_every_check_passed(cli: Cli, raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    result = cli.run(
        "diagnose", setup.image, "--as", setup.identity, "--output", "json", check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["result"] == "Passed"
    assert [s["status"] for s in report["checks"][0]["steps"]] == ["passed"] * 7


def test_a_cause_exits_3_and_json_names_it(cli: Cli, raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="None")
    result = cli.run("diagnose", setup.image, "--as", setup.identity, "-o", "json", check=False, timeout=300)
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["cause"] == "FirewallBypassDisabled"
    assert report["checks"][0]["fix"]["command"] == (
        f"az acr update -n {setup.registry.name} --allow-trusted-services true"
    )


def test_the_text_report_shows_steps_cause_and_fix(cli: Cli, raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup, default="Deny", bypass="AzureServices")
    result = cli.run(
        "diagnose",
        setup.image,
        "--as",
        setup.puller.app_id,
        "--password",
        setup.puller.secret,
        check=False,
        timeout=300,
    )
    assert result.returncode == 3, result.stderr
    text = result.stdout
    lines = text.splitlines()
    assert lines[0] == f"moorage diagnose: image {setup.image} as {setup.puller.app_id}"
    assert "ok   1. Reference parsed and normalised; registry resolved" in text
    assert "ok   2. Registry reachable (connection and TLS)" in text
    assert "FAIL 3. Firewall admits the platform" in text
    assert "--   4. Authentication: challenge, credential, token exchange, granted scope" in text
    assert "  cause:    FirewallBlocksPlatform: " in text
    assert "  command:  az identity create" in text
    assert "  template: Microsoft.ContainerInstance/containerGroups" in text
    assert lines[-1] == "result: FAILED (FirewallBlocksPlatform)"
    assert setup.puller.secret not in text


def test_a_group_is_named_by_resource_group_and_name(cli: Cli, raw: RawArm, setup: Setup) -> None:
    # A group refused at PUT does not exist: the CLI says so and exits 1.
    firewall(raw, setup)
    body = group_body(
        setup.image, [{"server": setup.login, "identity": setup.stranger}], identities=(setup.stranger,)
    )
    put_group_error(raw, setup, "cg-cli-missing", body)
    result = cli.run("diagnose", "cg-cli-missing", "-g", setup.group, "-o", "json", check=False, timeout=300)
    assert result.returncode == 1
    assert result.stderr.startswith("ERROR: (ResourceNotFound) Neither a container group nor a deployment")


def test_a_refused_request_exits_1_with_code_and_message(cli: Cli, setup: Setup) -> None:
    result = cli.run("diagnose", setup.image, "--as", setup.puller.app_id, check=False, timeout=300)
    assert result.returncode == 1
    assert result.stderr.startswith("ERROR: (InvalidRequestContent) ")
    assert "needs its password" in result.stderr


def test_yaml_output_and_a_bad_format(cli: Cli, raw: RawArm, setup: Setup) -> None:
    firewall(raw, setup)
    result = cli.run("diagnose", setup.image, "--output", "yaml", check=False, timeout=300)
    assert result.returncode == 3, result.stderr
    assert "cause: AuthenticationRequired\n" in result.stdout
    result = cli.run("diagnose", setup.image, "--output", "tsv", check=False, timeout=300)
    assert result.returncode == 3, result.stderr
    assert "AuthenticationRequired" in result.stdout
    result = cli.run("diagnose", setup.image, "--output", "xml", check=False, timeout=300)
    assert result.returncode == 2
    assert result.stderr == "ERROR: --output must be text, table, json, yaml or tsv; got 'xml'.\n"


def test_a_deployment_named_with_its_kind(cli: Cli, raw: RawArm, setup: Setup) -> None:
    """The form the demo uses: moorage diagnose deployment NAME --resource-group RG."""
    firewall(raw, setup)
    credential = {
        "server": setup.login,
        "username": setup.puller.app_id,
        "password": "[parameters('secret')]",
    }
    group = {"name": "cg-cli-dep", "properties": group_body(setup.image, [credential])["properties"]}
    shown = deploy_group(
        raw, setup, "dep-cli", group=group, parameters={"secret": ("securestring", "not-the-secret")}
    )
    assert shown["properties"]["provisioningState"] == "Failed"
    result = cli.run(
        "diagnose", "deployment", "dep-cli", "--resource-group", setup.group, "-o", "json",
        check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["target"]["id"] == shown["id"]
    assert report["cause"] == "CredentialsRejected"
    missing = cli.run("diagnose", "container", "nothere", "-g", setup.group, check=False, timeout=300)
    assert missing.returncode == 1
    assert missing.stderr.startswith("ERROR: (ResourceNotFound) ")
