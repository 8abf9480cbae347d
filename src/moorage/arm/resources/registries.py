"""``Microsoft.ContainerRegistry/registries`` and its ``scopeMaps`` and ``tokens``.

The ARM body lives in the resource index; what the data plane enforces (SKU, admin user,
anonymous pull, public access, network rules, bypass) is handed to the registry service, which
also gives each registry its login server. Premium-only features are refused on lower SKUs with
ACR's errors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from moorage.arm.ids import ResourceRef, normalize_location
from moorage.arm.resources.base import (
    ActionResult,
    CallContext,
    DeleteResult,
    PutResult,
    ResourceProvider,
    not_found,
    parse_tags,
    render_tracked,
    require_object,
)
from moorage.arm.store import ArmStore, StoredResource
from moorage.core.clock import isoformat
from moorage.core.errors import InvalidArgument, NotFound, QuotaExceeded
from moorage.registry.content import Content
from moorage.registry.records import (
    BYPASS_AZURE_SERVICES,
    BYPASS_NONE,
    NetworkRuleSet,
    Registry,
    RegistrySettings,
    RepositoryToken,
    ScopeMap,
    Sku,
)
from moorage.registry.service import Registries, normalize_ip_rule

REGISTRY_TYPE = "Microsoft.ContainerRegistry/registries"
MAX_IP_RULES = 100
_CHILD_NAME = re.compile(r"^[a-zA-Z0-9-_]{5,50}$")


def _bad(message: str, code: str = "InvalidRequestContent", target: str | None = None) -> InvalidArgument:
    return InvalidArgument(message, code=code, target=target)


def _enum(value: Any, allowed: tuple[str, ...], target: str) -> str:
    for option in allowed:
        if isinstance(value, str) and value.lower() == option.lower():
            return option
    raise _bad(
        f"The value '{value}' is not valid for {target}. Allowed values: {', '.join(allowed)}.", target=target
    )


def _bool(value: Any, target: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"The value of {target} must be a boolean.", target=target)
    return value


def _sku(body: dict[str, Any], current: Sku | None) -> Sku:
    sku = body.get("sku")
    if sku is None:
        if current is None:
            raise _bad("The 'sku' property is required.", code="InvalidRequestContent", target="sku")
        return current
    sku = require_object(sku, "sku")
    name = sku.get("name")
    if name == "Classic":
        raise _bad(
            "The Classic SKU is no longer supported; use Basic, Standard or Premium.", code="SkuNotSupported"
        )
    return Sku(_enum(name, tuple(s.value for s in Sku), "sku.name"))


def _settings(props: dict[str, Any], sku: Sku, current: RegistrySettings | None) -> RegistrySettings:
    """Merge ``props`` (PUT or PATCH properties) over ``current`` and check SKU rules."""
    base = current or RegistrySettings(sku=sku)
    admin = (
        _bool(props["adminUserEnabled"], "properties.adminUserEnabled")
        if "adminUserEnabled" in props
        else base.admin_user_enabled
    )
    anonymous = (
        _bool(props["anonymousPullEnabled"], "properties.anonymousPullEnabled")
        if "anonymousPullEnabled" in props
        else base.anonymous_pull_enabled
    )
    public = (
        _enum(props["publicNetworkAccess"], ("Enabled", "Disabled"), "properties.publicNetworkAccess")
        if props.get("publicNetworkAccess") is not None
        else base.public_network_access
    )
    bypass = (
        _enum(
            props["networkRuleBypassOptions"],
            (BYPASS_AZURE_SERVICES, BYPASS_NONE),
            "properties.networkRuleBypassOptions",
        )
        if props.get("networkRuleBypassOptions") is not None
        else base.network_rule_bypass
    )
    rules = base.network_rule_set
    if props.get("networkRuleSet") is not None:
        raw = require_object(props["networkRuleSet"], "properties.networkRuleSet")
        action = _enum(
            raw.get("defaultAction", "Allow"), ("Allow", "Deny"), "properties.networkRuleSet.defaultAction"
        )
        ip_rules_raw = raw.get("ipRules") or []
        if not isinstance(ip_rules_raw, list):
            raise _bad("ipRules must be an array.", target="properties.networkRuleSet.ipRules")
        ip_rules: list[str] = []
        for i, raw_rule in enumerate(ip_rules_raw):
            rule = require_object(raw_rule, f"properties.networkRuleSet.ipRules[{i}]")
            if rule.get("action", "Allow") != "Allow":
                raise _bad(
                    "The only supported IP rule action is 'Allow'.",
                    target=f"properties.networkRuleSet.ipRules[{i}].action",
                )
            value = rule.get("value")
            if not isinstance(value, str):
                raise _bad(
                    "Each IP rule needs a 'value'.", target=f"properties.networkRuleSet.ipRules[{i}].value"
                )
            ip_rules.append(normalize_ip_rule(value))
        if len(ip_rules) > MAX_IP_RULES:
            raise QuotaExceeded(
                f"The requested feature IP rule exceeds allowed quota {MAX_IP_RULES} for the SKU "
                f"{sku.value}.",
                code="QuotaExceeded",
            )
        rules = NetworkRuleSet(action, tuple(dict.fromkeys(ip_rules)))
        if props["networkRuleSet"].get("virtualNetworkRules"):
            raise _bad(
                "Virtual network rules are not supported; use IP rules.",
                code="VirtualNetworkRulesNotSupported",
            )
    if sku is not Sku.PREMIUM:
        if rules.default_action == "Deny" or rules.ip_rules:
            raise _bad(
                f"Network rules are not supported for the SKU {sku.value}. The firewall (networkRuleSet) "
                "is a Premium feature. For more information, please visit https://aka.ms/acr/firewall.",
                code="NetworkRuleNotSupported",
            )
        if public == "Disabled":
            raise _bad(
                f"Disabling public network access is not supported for the SKU {sku.value}. For more "
                "information, please visit https://aka.ms/acr/private-link.",
                code="DisablingPublicNetworkAccessNotSupported",
            )
    if anonymous and sku is Sku.BASIC:
        raise _bad(
            "Anonymous pull access is not supported for the SKU Basic; use Standard or Premium.",
            code="AnonymousPullNotSupported",
        )
    return RegistrySettings(sku, admin, anonymous, public, rules, bypass)


def _properties(registry: Registry, stored: StoredResource | None) -> dict[str, Any]:
    s = registry.settings
    # The registry's own creation time: the index row is written a moment later, and PUT (which
    # renders before that row exists) and GET must agree.
    created = registry.created_at
    return {
        "loginServer": registry.login_server,
        "creationDate": isoformat(created),
        "provisioningState": "Succeeded",
        "adminUserEnabled": s.admin_user_enabled,
        "networkRuleSet": {
            "defaultAction": s.network_rule_set.default_action,
            "ipRules": [{"action": "Allow", "value": v} for v in s.network_rule_set.ip_rules],
        },
        "policies": {
            "quarantinePolicy": {"status": "disabled"},
            "trustPolicy": {"type": "Notary", "status": "disabled"},
            "retentionPolicy": {"days": 7, "status": "disabled"},
            "exportPolicy": {"status": "enabled"},
            "azureADAuthenticationAsArmPolicy": {"status": "enabled"},
        },
        "encryption": {"status": "disabled"},
        "dataEndpointEnabled": False,
        "dataEndpointHostNames": [],
        "privateEndpointConnections": [],
        "publicNetworkAccess": s.public_network_access,
        "networkRuleBypassOptions": s.network_rule_bypass,
        "zoneRedundancy": "Disabled",
        "anonymousPullEnabled": s.anonymous_pull_enabled,
    }


class RegistryProvider(ResourceProvider):
    resource_type = REGISTRY_TYPE
    actions: ClassVar[dict[str, str]] = {
        "listCredentials": "POST",
        "regenerateCredential": "POST",
        "listUsages": "GET",
        "generateCredentials": "POST",
    }

    def __init__(self, store: ArmStore, registries: Registries, content: Content) -> None:
        self._store = store
        self._registries = registries
        self._content = content

    def permission(self, method: str, action: str | None = None) -> str:
        if action == "listUsages":
            return f"{REGISTRY_TYPE}/listUsages/read"
        return super().permission(method, action)

    async def _save(
        self, ctx: CallContext, ref: ResourceRef, registry: Registry, location: str, tags: Any
    ) -> tuple[StoredResource, bool]:
        existing = await self._store.resource(ref.id)
        body = {
            "sku": {"name": registry.settings.sku.value, "tier": registry.settings.sku.value},
            "properties": _properties(registry, existing),
        }
        return await self._store.put_resource(
            resource_id=ref.id,
            subscription_id=ctx.subscription.id,
            resource_group=ref.resource_group,
            type_=REGISTRY_TYPE,
            name=existing.name if existing else ref.name,
            location=location,
            tags=tags,
            body=body,
        )

    async def _existing(self, ref: ResourceRef) -> tuple[StoredResource, Registry]:
        stored = await self._store.resource(ref.id)
        registry = await self._registries.get(ref.name) if stored else None
        if stored is None or registry is None:
            raise not_found(ref)
        return stored, registry

    async def put(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> PutResult:
        location = body.get("location")
        if not isinstance(location, str) or not location.strip():
            raise _bad("The location property is required for this definition.", code="LocationRequired")
        tags = parse_tags(body.get("tags"))
        props = require_object(body.get("properties"), "properties")
        stored = await self._store.resource(ref.id)
        if stored is None:
            sku = _sku(body, None)
            settings = _settings(props, sku, None)
            registry = await self._registries.create(
                name=ref.name, resource_id=ref.id, tenant_id=ctx.subscription.tenant_id, settings=settings
            )
        else:
            registry = await self._registries.require(ref.name)
            if normalize_location(location) != stored.location:
                raise _bad(
                    f"The registry '{ref.name}' already exists in location '{stored.location}'.",
                    code="InvalidResourceLocation",
                )
            sku = _sku(body, registry.settings.sku)
            registry = await self._registries.update(ref.name, _settings(props, sku, registry.settings))
        saved, created = await self._save(ctx, ref, registry, normalize_location(location), tags)
        return PutResult(render_tracked(saved), created)

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        stored, registry = await self._existing(ref)
        return render_tracked(stored) | {"properties": _properties(registry, stored)}

    async def patch(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> dict[str, Any]:
        stored, registry = await self._existing(ref)
        props = require_object(body.get("properties"), "properties")
        sku = _sku(body, registry.settings.sku)
        registry = await self._registries.update(ref.name, _settings(props, sku, registry.settings))
        tags = parse_tags(body.get("tags")) if "tags" in body else stored.tags
        saved, _ = await self._save(ctx, ref, registry, stored.location or "", tags)
        return render_tracked(saved)

    async def delete(self, ctx: CallContext, ref: ResourceRef) -> DeleteResult:
        stored = await self._store.resource(ref.id)
        if stored is None:
            return DeleteResult(existed=False)
        await self._registries.delete(ref.name)
        for child in await self._store.children_of([stored.id]):
            await self._store.delete_resource(child.id)
        await self._store.delete_resource(stored.id)
        return DeleteResult(existed=True)

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        items = await self._store.list_resources(
            ctx.subscription.id, resource_group=ref.resource_group, type_=REGISTRY_TYPE
        )
        out = []
        for item in items:
            registry = await self._registries.get(item.name)
            if registry is not None:
                out.append(render_tracked(item) | {"properties": _properties(registry, item)})
        return out

    async def action(self, ctx: CallContext, ref: ResourceRef, name: str, body: Any) -> ActionResult:
        _, registry = await self._existing(ref)
        if name == "listCredentials":
            return ActionResult(await self._credentials(registry))
        if name == "regenerateCredential":
            which = require_object(body, "body").get("name")
            if not isinstance(which, str):
                raise _bad("The 'name' property is required: 'password' or 'password2'.", target="name")
            self._require_admin(registry)
            await self._registries.regenerate_admin_password(registry.name, which)
            return ActionResult(await self._credentials(registry))
        if name == "listUsages":
            return ActionResult({"value": await self._usages(registry)})
        if name == "generateCredentials":
            return ActionResult(await self._generate_credentials(ref, registry, require_object(body, "body")))
        raise NotFound(f"The action '{name}' is not supported.", code="InvalidResourceType")

    @staticmethod
    def _require_admin(registry: Registry) -> None:
        if not registry.settings.admin_user_enabled:
            raise _bad(
                f"Admin user is disabled for the registry '{registry.display_name}'. Enable it with "
                "'adminUserEnabled' (az acr update --admin-enabled true).",
                code="AdminUserDisabled",
            )

    async def _credentials(self, registry: Registry) -> dict[str, Any]:
        self._require_admin(registry)
        passwords = await self._registries.admin_credentials(registry.name)
        return {
            "username": registry.display_name,
            "passwords": [{"name": k, "value": v} for k, v in passwords.items()],
        }

    async def _usages(self, registry: Registry) -> Sequence[dict[str, Any]]:
        limits = {Sku.BASIC: 10 * 1024**3, Sku.STANDARD: 100 * 1024**3, Sku.PREMIUM: 500 * 1024**3}
        size = 0
        for repository in await self._content.catalog(registry.name):
            for manifest in await self._content.manifests_of(registry.name, repository):
                size += manifest.size
        return [
            {"name": "Size", "limit": limits[registry.settings.sku], "currentValue": size, "unit": "Bytes"},
            {"name": "Webhooks", "limit": 500, "currentValue": 0, "unit": "Count"},
            {
                "name": "ScopeMaps",
                "limit": 50000,
                "currentValue": len(await self._registries.scope_maps(registry.name)),
                "unit": "Count",
            },
            {
                "name": "Tokens",
                "limit": 50000,
                "currentValue": len(await self._registries.tokens(registry.name)),
                "unit": "Count",
            },
            {
                "name": "IPRules",
                "limit": MAX_IP_RULES,
                "currentValue": len(registry.settings.network_rule_set.ip_rules),
                "unit": "Count",
            },
        ]

    async def _generate_credentials(
        self, ref: ResourceRef, registry: Registry, body: dict[str, Any]
    ) -> dict[str, Any]:
        token_id = body.get("tokenId")
        if not isinstance(token_id, str) or "/tokens/" not in token_id:
            raise _bad("The 'tokenId' property must be the resource id of a token.", target="tokenId")
        token_name = token_id.rstrip("/").rsplit("/", 1)[-1]
        expiry_raw = body.get("expiry")
        expiry = None
        if expiry_raw is not None:
            try:
                expiry = datetime.fromisoformat(str(expiry_raw).replace("Z", "+00:00"))
            except ValueError as exc:
                raise _bad("The 'expiry' property must be an ISO 8601 time.", target="expiry") from exc
        which = body.get("name")
        if which is not None and not isinstance(which, str):
            raise _bad("The 'name' property must be 'password1' or 'password2'.", target="name")
        _, issued = await self._registries.generate_token_password(registry.name, token_name, which, expiry)
        return {
            "username": token_name,
            "passwords": [
                {
                    "creationTime": isoformat(datetime.now().astimezone()),
                    "expiry": isoformat(e) if e else None,
                    "name": n,
                    "value": v,
                }
                for n, v, e in issued
            ],
        }


class CheckNameAvailability(ResourceProvider):
    resource_type = "Microsoft.ContainerRegistry/checkNameAvailability"
    scope = "subscription"

    def __init__(self, registries: Registries) -> None:
        self._registries = registries

    def permission(self, method: str, action: str | None = None) -> str:
        return "Microsoft.ContainerRegistry/checkNameAvailability/read"

    async def action(self, ctx: CallContext, ref: ResourceRef, name: str, body: Any) -> ActionResult:
        request = require_object(body, "body")
        candidate = request.get("name")
        if not isinstance(candidate, str):
            raise _bad("The 'name' property is required.", target="name")
        if request.get("type") not in (REGISTRY_TYPE, None):
            raise _bad(
                f"The type '{request.get('type')}' is not supported; use '{REGISTRY_TYPE}'.", target="type"
            )
        available, reason, message = await self._registries.name_available(candidate)
        result: dict[str, Any] = {"nameAvailable": available}
        if not available:
            result |= {"reason": reason, "message": message}
        return ActionResult(result)


def _scope_map_body(resource_id: str, scope_map: ScopeMap) -> dict[str, Any]:
    return {
        "id": resource_id,
        "name": scope_map.name,
        "type": f"{REGISTRY_TYPE}/scopeMaps",
        "properties": {
            "description": scope_map.description,
            "type": "SystemDefined" if scope_map.builtin else "UserDefined",
            "creationDate": isoformat(scope_map.created_at),
            "provisioningState": "Succeeded",
            "actions": list(scope_map.actions),
        },
    }


class _RegistryChild(ResourceProvider):
    def __init__(self, store: ArmStore, registries: Registries) -> None:
        self._store = store
        self._registries = registries

    async def _registry(self, ref: ResourceRef) -> Registry:
        parent = ref.parent()
        if await self._store.resource(parent.id) is None:
            raise not_found(parent)
        return await self._registries.require(parent.name)

    @staticmethod
    def _check_name(name: str) -> None:
        if not _CHILD_NAME.match(name):
            raise _bad(
                f"The name '{name}' is invalid. It must be 5 to 50 characters of letters, digits, "
                "'-' or '_'.",
                code="InvalidResourceName",
            )


class ScopeMapProvider(_RegistryChild):
    resource_type = f"{REGISTRY_TYPE}/scopeMaps"

    async def put(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> PutResult:
        registry = await self._registry(ref)
        self._check_name(ref.name)
        props = require_object(body.get("properties"), "properties")
        actions = props.get("actions")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise _bad("properties.actions must be an array of strings.", target="properties.actions")
        description = props.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad("properties.description must be a string.", target="properties.description")
        scope_map, created = await self._registries.put_scope_map(
            registry.name, ref.name, actions, description
        )
        return PutResult(_scope_map_body(ref.id, scope_map), created)

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        registry = await self._registry(ref)
        scope_map = await self._registries.scope_map(registry.name, ref.name)
        if scope_map is None:
            raise not_found(ref)
        return _scope_map_body(ref.id, scope_map)

    async def delete(self, ctx: CallContext, ref: ResourceRef) -> DeleteResult:
        registry = await self._registry(ref)
        return DeleteResult(existed=await self._registries.delete_scope_map(registry.name, ref.name))

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        registry = await self._registry(ref)
        return [
            _scope_map_body(f"{ref.id}/{m.name}", m) for m in await self._registries.scope_maps(registry.name)
        ]


def _token_body(ref_id: str, registry: Registry, token: RepositoryToken, scope_map_id: str) -> dict[str, Any]:
    return {
        "id": ref_id,
        "name": token.name,
        "type": f"{REGISTRY_TYPE}/tokens",
        "properties": {
            "creationDate": isoformat(token.created_at),
            "provisioningState": "Succeeded",
            "scopeMapId": scope_map_id,
            "status": "enabled" if token.enabled else "disabled",
            "credentials": {
                "certificates": [],
                "passwords": [
                    {
                        "creationTime": isoformat(p.created_at),
                        "expiry": isoformat(p.expires_at) if p.expires_at else None,
                        "name": p.name,
                    }
                    for p in token.passwords
                ],
            },
        },
    }


class TokenProvider(_RegistryChild):
    resource_type = f"{REGISTRY_TYPE}/tokens"

    def _scope_map_id(self, ref: ResourceRef, name: str) -> str:
        return f"{ref.parent().id}/scopeMaps/{name}"

    async def put(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> PutResult:
        registry = await self._registry(ref)
        self._check_name(ref.name)
        props = require_object(body.get("properties"), "properties")
        scope_map_id = props.get("scopeMapId")
        if not isinstance(scope_map_id, str) or "/scopemaps/" not in scope_map_id.lower():
            raise _bad(
                "properties.scopeMapId must be the resource id of a scope map.",
                target="properties.scopeMapId",
            )
        status = _enum(props.get("status", "enabled"), ("enabled", "disabled"), "properties.status")
        token, created = await self._registries.put_token(
            registry.name, ref.name, scope_map_id.rstrip("/").rsplit("/", 1)[-1], status == "enabled"
        )
        return PutResult(
            _token_body(ref.id, registry, token, self._scope_map_id(ref, token.scope_map)), created
        )

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        registry = await self._registry(ref)
        token = await self._registries.token(registry.name, ref.name)
        if token is None:
            raise not_found(ref)
        return _token_body(ref.id, registry, token, self._scope_map_id(ref, token.scope_map))

    async def delete(self, ctx: CallContext, ref: ResourceRef) -> DeleteResult:
        registry = await self._registry(ref)
        return DeleteResult(existed=await self._registries.delete_token(registry.name, ref.name))

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        registry = await self._registry(ref)
        return [
            _token_body(f"{ref.id}/{tok.name}", registry, tok, self._scope_map_id(ref, tok.scope_map))
            for tok in await self._registries.tokens(registry.name)
        ]


def registry_providers(store: ArmStore, registries: Registries, content: Content) -> list[ResourceProvider]:
    return [
        RegistryProvider(store, registries, content),
        CheckNameAvailability(registries),
        ScopeMapProvider(store, registries),
        TokenProvider(store, registries),
    ]
