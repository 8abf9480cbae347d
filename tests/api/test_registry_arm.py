"""``Microsoft.ContainerRegistry/registries`` (and its scope maps and tokens) through the official
azure-mgmt-containerregistry SDK."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.models import (
    GenerateCredentialsParameters,
    IPRule,
    NetworkRuleSet,
    RegenerateCredentialParameters,
    Registry,
    RegistryNameCheckRequest,
    RegistryProperties,
    RegistryPropertiesUpdateParameters,
    RegistryUpdateParameters,
    ScopeMap,
    ScopeMapProperties,
    Sku,
    Token,
    TokenProperties,
)
from azure.mgmt.resource.resources import ResourceManagementClient

from tests.api.registry_support import unique_name
from tests.conftest import sdk_kwargs
from tests.server import RunningServer

REGISTRY_TYPE = "Microsoft.ContainerRegistry/registries"


@pytest.fixture(scope="module")
def acr(
    server: RunningServer, credential: ClientSecretCredential
) -> Iterator[ContainerRegistryManagementClient]:
    with ContainerRegistryManagementClient(
        credential, server.subscription_id, **sdk_kwargs(server)
    ) as client:
        yield client


def new_registry(sku: str = "Premium", *, tags: dict[str, str] | None = None, **properties: Any) -> Registry:
    return Registry(
        location="westus", sku=Sku(name=sku), tags=tags, properties=RegistryProperties(**properties)
    )


def create(
    acr: ContainerRegistryManagementClient, group: str, name: str | None = None, **kw: Any
) -> Registry:
    return acr.registries.begin_create(group, name or unique_name(), new_registry(**kw)).result()


def patch(acr: ContainerRegistryManagementClient, group: str, name: str, **properties: Any) -> Registry:
    update = RegistryUpdateParameters(properties=RegistryPropertiesUpdateParameters(**properties))
    return acr.registries.begin_update(group, name, update).result()


def error_of(info: pytest.ExceptionInfo[HttpResponseError]) -> tuple[int | None, str, str]:
    error = info.value.error
    assert error is not None, info.value
    return info.value.status_code, str(error.code), str(error.message)


@pytest.fixture
def registry(acr: ContainerRegistryManagementClient, group: Any) -> Registry:
    """A Premium registry with the admin user enabled, in the test's own group."""
    return create(acr, group.name, admin_user_enabled=True)


# -- registries -------------------------------------------------------------------------------------


def test_create_returns_the_registry(
    acr: ContainerRegistryManagementClient, server: RunningServer, group: Any
) -> None:
    name = unique_name("Reg")
    before = datetime.now(UTC) - timedelta(seconds=5)
    created = create(acr, group.name, name, sku="Standard", tags={"team": "a"})
    assert created.id == f"{group.id}/providers/{REGISTRY_TYPE}/{name}"
    assert created.name == name
    assert created.type == REGISTRY_TYPE
    assert created.location == "westus"
    assert created.tags == {"team": "a"}
    assert created.sku.name == "Standard"
    assert created.sku.tier == "Standard"
    props = created.properties
    assert props is not None
    assert props.provisioning_state == "Succeeded"
    assert props.creation_date is not None
    assert before <= props.creation_date <= datetime.now(UTC) + timedelta(seconds=5)
    host, _, port = str(props.login_server).rpartition(":")
    assert host == "127.0.0.1"
    assert port.isdigit()


def test_create_defaults(acr: ContainerRegistryManagementClient, group: Any) -> None:
    props = create(acr, group.name).properties
    assert props is not None
    assert props.admin_user_enabled is False
    assert props.anonymous_pull_enabled is False
    assert props.public_network_access == "Enabled"
    assert props.network_rule_bypass_options == "AzureServices"
    assert props.network_rule_set is not None
    assert props.network_rule_set.default_action == "Allow"
    assert props.network_rule_set.ip_rules == []


def test_get_returns_what_create_returned(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    fetched = acr.registries.get(group.name, registry.name)
    assert fetched.as_dict() == registry.as_dict()


def test_update_changes_only_given_properties(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    updated = patch(acr, group.name, registry.name, anonymous_pull_enabled=True)
    assert updated.properties is not None
    assert updated.properties.anonymous_pull_enabled is True
    assert updated.properties.admin_user_enabled is True
    assert updated.properties.login_server == registry.properties.login_server
    assert acr.registries.get(group.name, registry.name).properties.anonymous_pull_enabled is True


def test_update_sku_and_tags(acr: ContainerRegistryManagementClient, group: Any) -> None:
    created = create(acr, group.name, sku="Basic")
    update = RegistryUpdateParameters(sku=Sku(name="Standard"), tags={"env": "test"})
    updated = acr.registries.begin_update(group.name, created.name, update).result()
    assert updated.sku.name == "Standard"
    assert updated.tags == {"env": "test"}


def test_update_network_rules(acr: ContainerRegistryManagementClient, group: Any, registry: Registry) -> None:
    rules = NetworkRuleSet(
        default_action="Deny",
        ip_rules=[IPRule(action="Allow", ip_address_or_range=v) for v in ("10.0.0.1", "192.168.0.0/24")],
    )
    updated = patch(
        acr, group.name, registry.name, network_rule_set=rules, network_rule_bypass_options="None"
    )
    props = updated.properties
    assert props is not None
    assert props.network_rule_bypass_options == "None"
    assert props.network_rule_set is not None
    assert props.network_rule_set.default_action == "Deny"
    assert [(r.action, r.ip_address_or_range) for r in props.network_rule_set.ip_rules or []] == [
        ("Allow", "10.0.0.1"),
        ("Allow", "192.168.0.0/24"),
    ]


def test_public_network_access_can_be_disabled_on_premium(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    updated = patch(acr, group.name, registry.name, public_network_access="Disabled")
    assert updated.properties is not None
    assert updated.properties.public_network_access == "Disabled"


def test_list_by_resource_group(acr: ContainerRegistryManagementClient, group: Any) -> None:
    names = {create(acr, group.name).name for _ in range(2)}
    assert {r.name for r in acr.registries.list_by_resource_group(group.name)} == names


def test_list_in_subscription(acr: ContainerRegistryManagementClient, registry: Registry) -> None:
    listed = {r.id: r for r in acr.registries.list()}
    assert registry.id in listed
    assert listed[registry.id].properties.login_server == registry.properties.login_server


def test_delete(acr: ContainerRegistryManagementClient, group: Any, registry: Registry) -> None:
    acr.registries.begin_delete(group.name, registry.name).result()
    with pytest.raises(ResourceNotFoundError):
        acr.registries.get(group.name, registry.name)
    assert registry.name not in {r.name for r in acr.registries.list_by_resource_group(group.name)}
    # The name is free again.
    status = acr.registries.check_name_availability(
        RegistryNameCheckRequest(name=registry.name, type=REGISTRY_TYPE)
    )
    assert status.name_available is True


def test_get_missing_registry_is_resource_not_found(
    acr: ContainerRegistryManagementClient, group: Any
) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        acr.registries.get(group.name, unique_name())
    status, code, _ = error_of(info)
    assert (status, code) == (404, "ResourceNotFound")


def test_create_in_missing_resource_group(acr: ContainerRegistryManagementClient) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        create(acr, f"rg-missing-{uuid.uuid4().hex[:8]}")
    status, code, _ = error_of(info)
    assert (status, code) == (404, "ResourceGroupNotFound")


@pytest.mark.parametrize("name", ["abcd", "a" * 51, "has-dash", "under_score"])
def test_create_with_invalid_name(acr: ContainerRegistryManagementClient, group: Any, name: str) -> None:
    with pytest.raises(HttpResponseError) as info:
        create(acr, group.name, name)
    status, code, _ = error_of(info)
    assert (status, code) == (400, "InvalidResourceName")


def test_name_taken_in_another_group_is_conflict(
    acr: ContainerRegistryManagementClient, resources: ResourceManagementClient, registry: Registry
) -> None:
    other = f"rg-{uuid.uuid4().hex[:8]}"
    resources.resource_groups.create_or_update(other, {"location": "westus"})
    try:
        with pytest.raises(HttpResponseError) as info:
            create(acr, other, registry.name)
        status, code, _ = error_of(info)
        assert (status, code) == (409, "AlreadyInUse")
    finally:
        resources.resource_groups.begin_delete(other).result()


# -- checkNameAvailability ----------------------------------------------------------------------------


def test_name_available(acr: ContainerRegistryManagementClient) -> None:
    status = acr.registries.check_name_availability(
        RegistryNameCheckRequest(name=unique_name(), type=REGISTRY_TYPE)
    )
    assert status.name_available is True
    assert status.reason is None


def test_name_taken(acr: ContainerRegistryManagementClient, registry: Registry) -> None:
    status = acr.registries.check_name_availability(
        RegistryNameCheckRequest(name=registry.name.upper(), type=REGISTRY_TYPE)
    )
    assert status.name_available is False
    assert status.reason == "AlreadyExists"
    assert status.message == f"The registry {registry.name.upper()} is already in use."


def test_name_invalid(acr: ContainerRegistryManagementClient) -> None:
    status = acr.registries.check_name_availability(RegistryNameCheckRequest(name="a-b", type=REGISTRY_TYPE))
    assert status.name_available is False
    assert status.reason == "Invalid"


# -- admin credentials ----------------------------------------------------------------------------------


def test_list_credentials(acr: ContainerRegistryManagementClient, group: Any, registry: Registry) -> None:
    creds = acr.registries.list_credentials(group.name, registry.name)
    assert creds.username == registry.name
    passwords = creds.passwords or []
    assert [p.name for p in passwords] == ["password", "password2"]
    assert all(p.value and len(p.value) >= 32 for p in passwords)
    assert passwords[0].value != passwords[1].value
    # Stable across calls.
    again = acr.registries.list_credentials(group.name, registry.name)
    assert [p.value for p in again.passwords or []] == [p.value for p in passwords]


@pytest.mark.parametrize(("which", "index"), [("password", 0), ("password2", 1)])
def test_regenerate_credential_changes_only_that_password(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry, which: str, index: int
) -> None:
    before = [p.value for p in acr.registries.list_credentials(group.name, registry.name).passwords or []]
    result = acr.registries.regenerate_credential(
        group.name, registry.name, RegenerateCredentialParameters(name=which)
    )
    after = [p.value for p in result.passwords or []]
    assert after[index] != before[index]
    assert after[1 - index] == before[1 - index]
    listed = [p.value for p in acr.registries.list_credentials(group.name, registry.name).passwords or []]
    assert listed == after


def test_list_credentials_needs_admin_user(acr: ContainerRegistryManagementClient, group: Any) -> None:
    created = create(acr, group.name)
    with pytest.raises(HttpResponseError) as info:
        acr.registries.list_credentials(group.name, created.name)
    status, code, _ = error_of(info)
    assert (status, code) == (400, "AdminUserDisabled")


# -- usages ---------------------------------------------------------------------------------------------


def test_list_usages(acr: ContainerRegistryManagementClient, group: Any, registry: Registry) -> None:
    usages = {u.name: u for u in acr.registries.list_usages(group.name, registry.name).value or []}
    assert usages["Size"].unit == "Bytes"
    assert usages["Size"].current_value == 0
    assert usages["Size"].limit == 500 * 1024**3
    assert usages["IPRules"].limit == 100
    assert usages["IPRules"].current_value == 0


# -- SKU rules and network rule validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "code", "message"),
    [
        (
            {"network_rule_set": NetworkRuleSet(default_action="Deny")},
            "NetworkRuleNotSupported",
            "Network rules are not supported for the SKU Basic.",
        ),
        (
            {
                "network_rule_set": NetworkRuleSet(
                    default_action="Allow", ip_rules=[IPRule(ip_address_or_range="10.0.0.1")]
                )
            },
            "NetworkRuleNotSupported",
            "Network rules are not supported for the SKU Basic.",
        ),
        (
            {"public_network_access": "Disabled"},
            "DisablingPublicNetworkAccessNotSupported",
            "Disabling public network access is not supported for the SKU Basic. For more information, "
            "please visit https://aka.ms/acr/private-link.",
        ),
    ],
    ids=["deny", "ip-rules", "public-access-disabled"],
)
def test_premium_features_refused_on_basic(
    acr: ContainerRegistryManagementClient, group: Any, properties: dict[str, Any], code: str, message: str
) -> None:
    name = unique_name()
    with pytest.raises(HttpResponseError) as info:
        create(acr, group.name, name, sku="Basic", **properties)
    status, got_code, got_message = error_of(info)
    assert (status, got_code) == (400, code)
    assert got_message.startswith(message)
    with pytest.raises(ResourceNotFoundError):
        acr.registries.get(group.name, name)


def test_premium_features_refused_on_standard_update(
    acr: ContainerRegistryManagementClient, group: Any
) -> None:
    created = create(acr, group.name, sku="Standard")
    with pytest.raises(HttpResponseError) as info:
        patch(acr, group.name, created.name, network_rule_set=NetworkRuleSet(default_action="Deny"))
    status, code, _ = error_of(info)
    assert (status, code) == (400, "NetworkRuleNotSupported")
    props = acr.registries.get(group.name, created.name).properties
    assert props.network_rule_set.default_action == "Allow"


def test_downgrade_with_network_rules_refused(acr: ContainerRegistryManagementClient, group: Any) -> None:
    created = create(acr, group.name, network_rule_set=NetworkRuleSet(default_action="Deny"))
    update = RegistryUpdateParameters(sku=Sku(name="Basic"))
    with pytest.raises(HttpResponseError) as info:
        acr.registries.begin_update(group.name, created.name, update).result()
    status, code, _ = error_of(info)
    assert (status, code) == (400, "NetworkRuleNotSupported")


def _ip_rules(count: int) -> list[IPRule]:
    return [
        IPRule(action="Allow", ip_address_or_range=f"10.1.{i // 250}.{i % 250 + 1}") for i in range(count)
    ]


def test_one_hundred_ip_rules_are_allowed(acr: ContainerRegistryManagementClient, group: Any) -> None:
    created = create(
        acr, group.name, network_rule_set=NetworkRuleSet(default_action="Deny", ip_rules=_ip_rules(100))
    )
    assert len(created.properties.network_rule_set.ip_rules) == 100


def test_more_than_one_hundred_ip_rules_exceed_quota(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    rules = NetworkRuleSet(default_action="Deny", ip_rules=_ip_rules(101))
    with pytest.raises(HttpResponseError) as info:
        patch(acr, group.name, registry.name, network_rule_set=rules)
    status, code, message = error_of(info)
    assert (status, code) == (400, "QuotaExceeded")
    assert message == "The requested feature IP rule exceeds allowed quota 100 for the SKU Premium."


@pytest.mark.parametrize("value", ["10.0.0.256", "not-an-ip", "10.0.0.0/33", "2001:db8::1", "fd00::/8", ""])
def test_invalid_ip_rule_value(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry, value: str
) -> None:
    rules = NetworkRuleSet(
        default_action="Deny", ip_rules=[IPRule(action="Allow", ip_address_or_range=value)]
    )
    with pytest.raises(HttpResponseError) as info:
        patch(acr, group.name, registry.name, network_rule_set=rules)
    status, code, message = error_of(info)
    assert (status, code) == (400, "InvalidIpRuleValue")
    assert value in message
    assert acr.registries.get(group.name, registry.name).properties.network_rule_set.default_action == "Allow"


def test_ip_rule_cidr_is_canonicalised(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    rules = NetworkRuleSet(default_action="Deny", ip_rules=[IPRule(ip_address_or_range="10.2.3.4/16")])
    updated = patch(acr, group.name, registry.name, network_rule_set=rules)
    assert [r.ip_address_or_range for r in updated.properties.network_rule_set.ip_rules] == ["10.2.0.0/16"]


# -- scope maps -----------------------------------------------------------------------------------------


def scope_map(actions: list[str], description: str | None = None) -> ScopeMap:
    return ScopeMap(properties=ScopeMapProperties(actions=actions, description=description))


def test_scope_map_create_get_list_update_delete(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    actions = ["repositories/app/content/read", "repositories/app/content/write"]
    created = acr.scope_maps.begin_create(
        group.name, registry.name, "app-rw", scope_map(actions, "app read/write")
    ).result()
    assert created.id == f"{registry.id}/scopeMaps/app-rw"
    assert created.type == f"{REGISTRY_TYPE}/scopeMaps"
    assert created.properties.actions == actions
    assert created.properties.description == "app read/write"
    assert created.properties.type == "UserDefined"
    assert created.properties.provisioning_state == "Succeeded"
    assert acr.scope_maps.get(group.name, registry.name, "app-rw").as_dict() == created.as_dict()

    listed = {m.name: m for m in acr.scope_maps.list(group.name, registry.name)}
    assert listed["app-rw"].properties.actions == actions
    assert listed["_repositories_pull"].properties.type == "SystemDefined"
    assert listed["_repositories_pull"].properties.actions == ["repositories/*/content/read"]

    more = [*actions, "repositories/app/content/delete", "repositories/app/metadata/read"]
    updated = acr.scope_maps.begin_create(group.name, registry.name, "app-rw", scope_map(more)).result()
    assert updated.properties.actions == more

    acr.scope_maps.begin_delete(group.name, registry.name, "app-rw").result()
    with pytest.raises(ResourceNotFoundError):
        acr.scope_maps.get(group.name, registry.name, "app-rw")


@pytest.mark.parametrize(
    "action", ["repositories/app/content/execute", "registry/app/content/read", "repositories/app", "pull"]
)
def test_scope_map_invalid_action(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry, action: str
) -> None:
    with pytest.raises(HttpResponseError) as info:
        acr.scope_maps.begin_create(group.name, registry.name, "badmap", scope_map([action])).result()
    status, code, _ = error_of(info)
    assert (status, code) == (400, "InvalidScopeMapAction")


def test_builtin_scope_map_is_read_only(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    with pytest.raises(HttpResponseError) as info:
        acr.scope_maps.begin_delete(group.name, registry.name, "_repositories_admin").result()
    status, code, _ = error_of(info)
    assert (status, code) == (400, "ScopeMapReadOnly")


def test_scope_map_of_missing_registry(acr: ContainerRegistryManagementClient, group: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        acr.scope_maps.get(group.name, unique_name(), "_repositories_pull")
    status, code, _ = error_of(info)
    assert (status, code) == (404, "ResourceNotFound")


# -- tokens ---------------------------------------------------------------------------------------------


def scope_map_id(registry: Registry, name: str) -> str:
    return f"{registry.id}/scopeMaps/{name}"


def make_token(
    acr: ContainerRegistryManagementClient,
    group: str,
    registry: Registry,
    name: str,
    *,
    map_name: str = "_repositories_pull",
    status: str = "enabled",
) -> Token:
    body = Token(properties=TokenProperties(scope_map_id=scope_map_id(registry, map_name), status=status))
    return acr.tokens.begin_create(group, registry.name, name, body).result()


def test_token_create_get_list_delete(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    created = make_token(acr, group.name, registry, "puller")
    assert created.id == f"{registry.id}/tokens/puller"
    assert created.type == f"{REGISTRY_TYPE}/tokens"
    props = created.properties
    assert props.scope_map_id == scope_map_id(registry, "_repositories_pull")
    assert props.status == "enabled"
    assert props.provisioning_state == "Succeeded"
    assert props.credentials.passwords == []
    assert acr.tokens.get(group.name, registry.name, "puller").as_dict() == created.as_dict()
    assert [t.name for t in acr.tokens.list(group.name, registry.name)] == ["puller"]
    acr.tokens.begin_delete(group.name, registry.name, "puller").result()
    with pytest.raises(ResourceNotFoundError):
        acr.tokens.get(group.name, registry.name, "puller")


def test_token_can_be_disabled(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    make_token(acr, group.name, registry, "toggled")
    disabled = make_token(acr, group.name, registry, "toggled", status="disabled")
    assert disabled.properties.status == "disabled"
    assert acr.tokens.get(group.name, registry.name, "toggled").properties.status == "disabled"


def test_token_with_missing_scope_map(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    with pytest.raises(HttpResponseError) as info:
        make_token(acr, group.name, registry, "orphan", map_name="nosuchmap")
    status, code, _ = error_of(info)
    assert (status, code) == (400, "ScopeMapNotFound")


def test_scope_map_in_use_cannot_be_deleted(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    acr.scope_maps.begin_create(
        group.name, registry.name, "usedmap", scope_map(["repositories/x/content/read"])
    ).result()
    make_token(acr, group.name, registry, "user1", map_name="usedmap")
    with pytest.raises(HttpResponseError) as info:
        acr.scope_maps.begin_delete(group.name, registry.name, "usedmap").result()
    status, code, _ = error_of(info)
    assert (status, code) == (400, "ScopeMapInUse")


def test_generate_credentials_returns_passwords_once(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    token = make_token(acr, group.name, registry, "ci-token")
    result = acr.registries.begin_generate_credentials(
        group.name, registry.name, GenerateCredentialsParameters(token_id=token.id)
    ).result()
    assert result.username == "ci-token"
    passwords = result.passwords or []
    assert [p.name for p in passwords] == ["password1", "password2"]
    assert all(p.value for p in passwords)
    assert passwords[0].value != passwords[1].value
    fetched = acr.tokens.get(group.name, registry.name, "ci-token").properties.credentials.passwords or []
    assert [p.name for p in fetched] == ["password1", "password2"]
    assert [p.value for p in fetched] == [None, None]
    assert all(p.creation_time is not None for p in fetched)
    listed = next(iter(acr.tokens.list(group.name, registry.name)))
    assert all(p.value is None for p in listed.properties.credentials.passwords or [])


def test_generate_one_password_with_expiry(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    token = make_token(acr, group.name, registry, "expiring")
    first = acr.registries.begin_generate_credentials(
        group.name, registry.name, GenerateCredentialsParameters(token_id=token.id)
    ).result()
    expiry = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    second = acr.registries.begin_generate_credentials(
        group.name,
        registry.name,
        GenerateCredentialsParameters(token_id=token.id, name="password2", expiry=expiry),
    ).result()
    assert [p.name for p in second.passwords or []] == ["password2"]
    assert second.passwords[0].value != first.passwords[1].value
    assert second.passwords[0].expiry == expiry
    fetched = acr.tokens.get(group.name, registry.name, "expiring").properties.credentials.passwords or []
    assert {p.name: p.expiry for p in fetched} == {"password1": None, "password2": expiry}


def test_generate_credentials_for_missing_token(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    with pytest.raises(HttpResponseError) as info:
        acr.registries.begin_generate_credentials(
            group.name,
            registry.name,
            GenerateCredentialsParameters(token_id=f"{registry.id}/tokens/nosuchtoken"),
        ).result()
    status, _, _ = error_of(info)
    assert status == 404


def test_deleting_registry_removes_its_tokens(
    acr: ContainerRegistryManagementClient, group: Any, registry: Registry
) -> None:
    make_token(acr, group.name, registry, "gone-token")
    acr.registries.begin_delete(group.name, registry.name).result()
    with pytest.raises(ResourceNotFoundError):
        acr.tokens.get(group.name, registry.name, "gone-token")
