"""``moorage acr``: container registries, shaped like ``az acr``.

``-g`` is optional wherever az makes it optional: the registry is then found by name in the
subscription. Firewall settings map to the registry's ARM properties: ``--default-action`` →
``networkRuleSet.defaultAction``, ``--public-network-access`` (or az's
``--public-network-enabled``) → ``publicNetworkAccess``, ``--allow-trusted-services`` →
``networkRuleBypassOptions`` (``AzureServices``/``None``); ``network-rule add/remove`` edit
``networkRuleSet.ipRules``.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from moorage.cli.command import (
    GroupOption,
    HomeOption,
    NameOption,
    OutputOption,
    UsageError,
    YesOption,
    bool_text,
    confirm,
    emit,
    key_values,
    run,
)
from moorage.cli.output import Column, OutputFormat, Table
from moorage.client import MoorageClient
from moorage.client.arm import ArmBody, Registries, ResourceGroups, resource_group_of
from moorage.client.registry_login import exchange_token

app = typer.Typer(help="Container registries (Microsoft.ContainerRegistry/registries).", no_args_is_help=True)
credential_app = typer.Typer(help="The registry's admin user credentials.", no_args_is_help=True)
network_rule_app = typer.Typer(help="Firewall IP rules (Premium registries).", no_args_is_help=True)
app.add_typer(credential_app, name="credential")
app.add_typer(network_rule_app, name="network-rule")


class Sku(StrEnum):
    BASIC = "Basic"
    STANDARD = "Standard"
    PREMIUM = "Premium"


class DefaultAction(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


class PublicNetworkAccess(StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class PasswordName(StrEnum):
    PASSWORD = "password"
    PASSWORD2 = "password2"


OptionalGroup = Annotated[
    str | None, typer.Option("--resource-group", "-g", help="Resource group (found by name if omitted).")
]
SkuOption = Annotated[Sku, typer.Option("--sku", case_sensitive=False, help="Basic, Standard or Premium.")]
AdminOption = Annotated[
    str | None, typer.Option("--admin-enabled", help="Enable the admin user: true or false.")
]
DefaultActionOption = Annotated[
    DefaultAction | None,
    typer.Option("--default-action", case_sensitive=False, help="Firewall default action: Allow or Deny."),
]
PublicAccessOption = Annotated[
    PublicNetworkAccess | None,
    typer.Option("--public-network-access", case_sensitive=False, help="Enabled or Disabled."),
]
PublicEnabledOption = Annotated[
    str | None,
    typer.Option("--public-network-enabled", help="az's spelling of --public-network-access: true or false."),
]
TrustedOption = Annotated[
    str | None,
    typer.Option(
        "--allow-trusted-services",
        help="Let trusted platform pulls (container groups with a managed identity) bypass the "
        "firewall: true or false (networkRuleBypassOptions AzureServices/None).",
    ),
]
TagsOption = Annotated[list[str] | None, typer.Option("--tags", help="KEY=VALUE (repeatable).")]
IpOption = Annotated[str, typer.Option("--ip-address", help="An IPv4 address or CIDR range.")]

REGISTRY_TABLE = Table(
    [
        Column("Name", "name"),
        Column("ResourceGroup", lambda r: resource_group_of(str(r.get("id", "")))),
        Column("Location", "location"),
        Column("Sku", "sku.name"),
        Column("LoginServer", "properties.loginServer"),
        Column("CreationDate", "properties.creationDate"),
        Column("AdminEnabled", "properties.adminUserEnabled"),
        Column("PublicNetworkAccess", "properties.publicNetworkAccess"),
        Column("DefaultAction", "properties.networkRuleSet.defaultAction"),
        Column("Bypass", "properties.networkRuleBypassOptions"),
    ]
)
CREDENTIAL_TABLE = Table(
    [
        Column("Username", "username"),
        Column("Password", "passwords.0.value"),
        Column("Password2", "passwords.1.value"),
    ]
)
NETWORK_RULE_TABLE = Table(
    [
        Column("DefaultAction", "defaultAction"),
        Column("Action", "action"),
        Column("IpAddressOrRange", "value"),
    ],
    rows=lambda rules: (
        [{"defaultAction": rules.get("defaultAction"), **rule} for rule in rules.get("ipRules") or []]
        or [{"defaultAction": rules.get("defaultAction")}]
    ),
)


def _network_properties(
    *,
    admin_enabled: str | None,
    default_action: DefaultAction | None,
    ip_rules: list[Any] | None,
    public_network_access: PublicNetworkAccess | None,
    public_network_enabled: str | None,
    allow_trusted_services: str | None,
) -> dict[str, Any]:
    """The ``properties`` these options set (only those given)."""
    props: dict[str, Any] = {}
    if admin_enabled is not None:
        props["adminUserEnabled"] = bool_text(admin_enabled, "--admin-enabled")
    if public_network_access is not None and public_network_enabled is not None:
        raise UsageError("give --public-network-access or --public-network-enabled, not both.")
    if public_network_access is not None:
        props["publicNetworkAccess"] = public_network_access.value
    if public_network_enabled is not None:
        enabled = bool_text(public_network_enabled, "--public-network-enabled")
        props["publicNetworkAccess"] = "Enabled" if enabled else "Disabled"
    if allow_trusted_services is not None:
        allowed = bool_text(allow_trusted_services, "--allow-trusted-services")
        props["networkRuleBypassOptions"] = "AzureServices" if allowed else "None"
    if default_action is not None:
        props["networkRuleSet"] = {"defaultAction": default_action.value, "ipRules": ip_rules or []}
    return props


@app.command("create")
def create(
    *,
    name: NameOption,
    group: GroupOption,
    sku: SkuOption,
    location: Annotated[
        str | None, typer.Option("--location", "-l", help="Location (default: the group's).")
    ] = None,
    admin_enabled: AdminOption = None,
    default_action: DefaultActionOption = None,
    public_network_access: PublicAccessOption = None,
    public_network_enabled: PublicEnabledOption = None,
    allow_trusted_services: TrustedOption = None,
    tags: TagsOption = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Create a registry (az acr create)."""

    async def go(client: MoorageClient) -> ArmBody:
        props = _network_properties(
            admin_enabled=admin_enabled,
            default_action=default_action,
            ip_rules=None,
            public_network_access=public_network_access,
            public_network_enabled=public_network_enabled,
            allow_trusted_services=allow_trusted_services,
        )
        body: ArmBody = {
            "location": location or await ResourceGroups(client).location(group),
            "sku": {"name": sku.value},
            "properties": props,
        }
        if tags:
            body["tags"] = key_values(tags, "--tags")
        return await Registries(client).create(group, name, body)

    emit(run(home, go), output, REGISTRY_TABLE)


@app.command("update")
def update(
    *,
    name: NameOption,
    group: OptionalGroup = None,
    sku: Annotated[Sku | None, typer.Option("--sku", case_sensitive=False, help="A new SKU.")] = None,
    admin_enabled: AdminOption = None,
    default_action: DefaultActionOption = None,
    public_network_access: PublicAccessOption = None,
    public_network_enabled: PublicEnabledOption = None,
    allow_trusted_services: TrustedOption = None,
    tags: TagsOption = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Update a registry's SKU, admin user, firewall or tags (az acr update)."""

    async def go(client: MoorageClient) -> ArmBody:
        registries = Registries(client)
        current = await registries.find(name, group)
        # The server replaces networkRuleSet as a whole: keep the IP rules when only the
        # default action changes, as az does.
        rules = ((current.get("properties") or {}).get("networkRuleSet") or {}).get("ipRules")
        patch: ArmBody = {
            "properties": _network_properties(
                admin_enabled=admin_enabled,
                default_action=default_action,
                ip_rules=rules,
                public_network_access=public_network_access,
                public_network_enabled=public_network_enabled,
                allow_trusted_services=allow_trusted_services,
            )
        }
        if sku is not None:
            patch["sku"] = {"name": sku.value}
        if tags is not None:
            patch["tags"] = key_values(tags, "--tags")
        return await registries.update(_group_of(current), current["name"], patch)

    emit(run(home, go), output, REGISTRY_TABLE)


def _group_of(resource: ArmBody) -> str:
    return resource_group_of(str(resource["id"])) or ""


@app.command("show")
def show(
    name: NameOption,
    group: OptionalGroup = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Show a registry (az acr show)."""
    emit(run(home, lambda c: Registries(c).find(name, group)), output, REGISTRY_TABLE)


@app.command("list")
def list_(
    group: OptionalGroup = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """List the registries of a resource group or of the subscription (az acr list)."""
    emit(run(home, lambda c: Registries(c).list(group)), output, REGISTRY_TABLE)


@app.command("delete")
def delete(
    name: NameOption,
    group: OptionalGroup = None,
    yes: YesOption = False,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Delete a registry and its content (az acr delete)."""
    confirm(f"Are you sure you want to delete the registry '{name}'?", yes)

    async def go(client: MoorageClient) -> Any:
        registries = Registries(client)
        current = await registries.find(name, group)
        return await registries.delete(_group_of(current), current["name"])

    emit(run(home, go), output)


@app.command("login")
def login(
    *,
    name: NameOption,
    group: OptionalGroup = None,
    expose_token: Annotated[
        bool,
        typer.Option("--expose-token", "-t", help="Print the token instead of storing it (az's output)."),
    ] = False,
    auth_file: Annotated[
        Path | None,
        typer.Option(
            "--auth-file",
            help="Where to store the login (default ~/.docker/config.json, which docker, podman, "
            "skopeo and oras read).",
        ),
    ] = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Log in to a registry with your identity (az acr login): its ARM token is exchanged for a
    registry refresh token, used as the password of user 00000000-0000-0000-0000-000000000000."""

    async def go(client: MoorageClient) -> Any:
        registry = await Registries(client).find(name, group)
        return await exchange_token(client, str(registry["properties"]["loginServer"]))

    credentials = run(home, go)
    if expose_token:
        emit({"accessToken": credentials.password, "loginServer": credentials.login_server}, output)
        return
    path = auth_file or Path.home() / ".docker" / "config.json"
    _store_login(path, credentials.login_server, credentials.username, credentials.password)
    typer.echo("Login Succeeded", err=True)


def _store_login(path: Path, server: str, username: str, password: str) -> None:
    """Add ``server`` to a docker-style auth file (keeping its other entries), mode 0600."""
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text() or "{}")
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--auth-file") from exc
        if isinstance(loaded, dict):
            data = loaded
    auths = data.setdefault("auths", {})
    auths[server] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Written to a private temporary file and renamed: a reader never sees half a file, and the
    # secret is never readable by others.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".auth-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    Path(temporary).replace(path)


@credential_app.command("show")
def credential_show(
    name: NameOption,
    group: OptionalGroup = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Show the admin user's name and passwords (az acr credential show)."""

    async def go(client: MoorageClient) -> ArmBody:
        registries = Registries(client)
        current = await registries.find(name, group)
        return await registries.list_credentials(_group_of(current), current["name"])

    emit(run(home, go), output, CREDENTIAL_TABLE)


@credential_app.command("renew")
def credential_renew(
    name: NameOption,
    password_name: Annotated[
        PasswordName, typer.Option("--password-name", case_sensitive=False, help="password or password2.")
    ],
    group: OptionalGroup = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Regenerate one admin password (az acr credential renew)."""

    async def go(client: MoorageClient) -> ArmBody:
        registries = Registries(client)
        current = await registries.find(name, group)
        return await registries.regenerate_credential(
            _group_of(current), current["name"], password_name.value
        )

    emit(run(home, go), output, CREDENTIAL_TABLE)


async def _edit_ip_rules(
    client: MoorageClient, name: str, group: str | None, add: str | None, remove: str | None
) -> ArmBody:
    registries = Registries(client)
    current = await registries.find(name, group)
    rule_set = (current.get("properties") or {}).get("networkRuleSet") or {}
    rules: list[dict[str, Any]] = list(rule_set.get("ipRules") or [])
    if add is not None and all(r.get("value") != add for r in rules):
        rules.append({"action": "Allow", "value": add})
    if remove is not None:
        rules = [r for r in rules if r.get("value") != remove]
    patch = {
        "properties": {
            "networkRuleSet": {"defaultAction": rule_set.get("defaultAction", "Allow"), "ipRules": rules}
        }
    }
    return await registries.update(_group_of(current), current["name"], patch)


@network_rule_app.command("add")
def network_rule_add(
    name: NameOption,
    ip_address: IpOption,
    group: OptionalGroup = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Allow an address or range through the firewall (az acr network-rule add)."""
    emit(run(home, lambda c: _edit_ip_rules(c, name, group, ip_address, None)), output, REGISTRY_TABLE)


@network_rule_app.command("remove")
def network_rule_remove(
    name: NameOption,
    ip_address: IpOption,
    group: OptionalGroup = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Remove an IP rule (az acr network-rule remove)."""
    emit(run(home, lambda c: _edit_ip_rules(c, name, group, None, ip_address)), output, REGISTRY_TABLE)


@network_rule_app.command("list")
def network_rule_list(
    name: NameOption,
    group: OptionalGroup = None,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """The registry's networkRuleSet: default action and IP rules (az acr network-rule list)."""

    async def go(client: MoorageClient) -> Any:
        current = await Registries(client).find(name, group)
        return (current.get("properties") or {}).get("networkRuleSet") or {}

    emit(run(home, go), output, NETWORK_RULE_TABLE)
