"""``moorage acr``: registry lifecycle, admin credentials, firewall rules and login."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.api.conftest import fetch_token, trust
from tests.api.registry_support import cert_dir, skopeo
from tests.cli.conftest import Cli, unique
from tests.images import busybox_image, write_layout


def test_lifecycle_json_is_the_arm_body(cli: Cli, group: str) -> None:
    name = unique("clireg")
    created = cli.json(
        "acr", "create", "-n", name, "-g", group, "--sku", "Premium", "--admin-enabled", "true"
    )
    assert created["name"] == name
    assert created["location"] == "westus"  # the group's, as az defaults it
    assert created["sku"]["name"] == "Premium"
    assert created["properties"]["adminUserEnabled"] is True
    # show (with and without -g) prints exactly what ARM answers.
    token = fetch_token(cli.server, cli.server.client_id, cli.server.client_secret)
    arm = httpx.get(
        f"{cli.server.endpoint}{created['id']}",
        params={"api-version": "2023-07-01"},
        headers={"Authorization": f"Bearer {token}"},
        verify=trust(cli.server),
    ).json()
    assert cli.json("acr", "show", "-n", name, "-g", group) == arm
    assert cli.json("acr", "show", "-n", name) == arm
    assert name in [r["name"] for r in cli.json("acr", "list", "-g", group)]
    assert name in [r["name"] for r in cli.json("acr", "list")]
    updated = cli.json("acr", "update", "-n", name, "--admin-enabled", "false", "--tags", "team=a b")
    assert updated["properties"]["adminUserEnabled"] is False
    assert updated["tags"] == {"team": "a b"}
    cli.run("acr", "delete", "-n", name, "--yes")
    gone = cli.run("acr", "show", "-n", name, "-g", group, check=False)
    assert gone.returncode == 1
    assert gone.stderr.startswith("ERROR: (ResourceNotFound) ")
    assert gone.stdout == ""


def test_credential_show_and_renew(cli: Cli, group: str) -> None:
    name = unique("clicred")
    cli.run("acr", "create", "-n", name, "-g", group, "--sku", "Basic")
    disabled = cli.run("acr", "credential", "show", "-n", name, check=False)
    assert disabled.returncode == 1
    assert "ERROR: (AdminUserDisabled)" in disabled.stderr
    cli.run("acr", "update", "-n", name, "--admin-enabled", "true")
    shown = cli.json("acr", "credential", "show", "-n", name)
    assert shown["username"] == name
    before = {p["name"]: p["value"] for p in shown["passwords"]}
    renewed = cli.json("acr", "credential", "renew", "-n", name, "-g", group, "--password-name", "password2")
    after = {p["name"]: p["value"] for p in renewed["passwords"]}
    assert after["password"] == before["password"]
    assert after["password2"] != before["password2"]
    table = cli.run("acr", "credential", "show", "-n", name, "-o", "table").stdout.splitlines()
    assert table[0].split() == ["Username", "Password", "Password2"]
    assert table[2].split() == [name, after["password"], after["password2"]]


def test_network_rules_and_firewall_options(cli: Cli, group: str) -> None:
    name = unique("clinet")
    created = cli.json(
        "acr", "create", "-n", name, "-g", group, "--sku", "Premium",
        "--default-action", "Deny", "--allow-trusted-services", "false",
    )  # fmt: skip
    assert created["properties"]["networkRuleSet"]["defaultAction"] == "Deny"
    assert created["properties"]["networkRuleBypassOptions"] == "None"
    cli.run("acr", "network-rule", "add", "-n", name, "--ip-address", "10.1.0.0/16")
    added = cli.json("acr", "network-rule", "add", "-n", name, "-g", group, "--ip-address", "192.0.2.7")
    assert added["properties"]["networkRuleSet"]["ipRules"] == [
        {"action": "Allow", "value": "10.1.0.0/16"},
        {"action": "Allow", "value": "192.0.2.7"},
    ]
    # Changing only the default action keeps the rules (the server replaces networkRuleSet whole).
    allowed = cli.json(
        "acr", "update", "-n", name, "--default-action", "Allow", "--allow-trusted-services", "true"
    )
    assert allowed["properties"]["networkRuleSet"]["defaultAction"] == "Allow"
    assert len(allowed["properties"]["networkRuleSet"]["ipRules"]) == 2
    assert allowed["properties"]["networkRuleBypassOptions"] == "AzureServices"
    cli.run("acr", "network-rule", "remove", "-n", name, "--ip-address", "10.1.0.0/16")
    rules = cli.json("acr", "network-rule", "list", "-n", name)
    assert rules == {"defaultAction": "Allow", "ipRules": [{"action": "Allow", "value": "192.0.2.7"}]}
    table = cli.run("acr", "network-rule", "list", "-n", name, "-o", "table").stdout.splitlines()
    assert table[2].split() == ["Allow", "Allow", "192.0.2.7"]
    private = cli.json("acr", "update", "-n", name, "--public-network-enabled", "false")
    assert private["properties"]["publicNetworkAccess"] == "Disabled"
    public = cli.json("acr", "update", "-n", name, "--public-network-access", "Enabled")
    assert public["properties"]["publicNetworkAccess"] == "Enabled"


def test_firewall_on_a_basic_registry_is_refused(cli: Cli, group: str) -> None:
    refused = cli.run(
        "acr", "create", "-n", unique("clibasic"), "-g", group, "--sku", "Basic", "--default-action", "Deny",
        check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith("ERROR: (NetworkRuleNotSupported) ")


def test_bad_option_values_are_usage_errors(cli: Cli, group: str) -> None:
    for args in (
        ("--sku", "Gold"),
        ("--sku", "Basic", "--admin-enabled", "maybe"),
        ("--sku", "Premium", "--public-network-access", "Enabled", "--public-network-enabled", "true"),
    ):
        result = cli.run("acr", "create", "-n", unique("cliuse"), "-g", group, *args, check=False)
        assert result.returncode == 2, (args, result.stderr)
    assert cli.json("acr", "list", "-g", group) == []


def test_delete_asks_for_yes_when_not_interactive(cli: Cli, group: str) -> None:
    name = unique("cliyes")
    cli.run("acr", "create", "-n", name, "-g", group, "--sku", "Basic")
    refused = cli.run("acr", "delete", "-n", name, check=False)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert cli.json("acr", "show", "-n", name)["name"] == name


def test_login_stores_a_token_that_pushes_and_the_firewall_judges_it(
    cli: Cli, group: str, tmp_path: Path
) -> None:
    name = unique("clilogin")
    login_server = cli.json("acr", "create", "-n", name, "-g", group, "--sku", "Premium")["properties"][
        "loginServer"
    ]
    exposed = cli.json("acr", "login", "-n", name, "--expose-token")
    assert exposed["loginServer"] == login_server
    assert exposed["accessToken"]
    auth_file = tmp_path / "auth.json"
    stored = cli.run("acr", "login", "-n", name, "--auth-file", str(auth_file))
    assert "Login Succeeded" in stored.stderr
    assert auth_file.stat().st_mode & 0o777 == 0o600
    assert login_server in json.loads(auth_file.read_text())["auths"]
    # skopeo pushes with what was stored (the bootstrap principal is Owner: push is allowed).
    layout = write_layout(tmp_path / "layout", "v1", busybox_image())
    pushed = skopeo(
        "copy", "--dest-cert-dir", str(cert_dir(cli.server.ca_path, tmp_path / "certs")),
        "--dest-authfile", str(auth_file), f"oci:{layout}:v1", f"docker://{login_server}/cli/login:v1",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    # This machine is not in the rules of a registry that denies by default.
    cli.run("acr", "update", "-n", name, "--default-action", "Deny")
    denied = cli.run("acr", "login", "-n", name, "--expose-token", check=False)
    assert denied.returncode == 1
    assert denied.stderr.startswith("ERROR: (DENIED) client with IP '127.0.0.1' is not allowed access.")
