"""``Microsoft.ContainerInstance/containerGroups`` and the ACI endpoints around it.

* PUT validates the body (:func:`~moorage.instances.validation.parse_group`), checks identities
  and images synchronously (400 ``InaccessibleImage`` with a diagnosis in ``additionalInfo``, no
  resource created), stores the group and provisions it as an LRO: 201 (create) or 200 (update)
  with ``Azure-AsyncOperation`` and ``Retry-After: 1``. An update that changes nothing but tags
  answers 200 at once.
* GET shows ``instanceView`` (group and containers); LIST (by resource group or subscription)
  does not, as ACI. Secrets are never returned (:func:`mask_secrets` over the rendering).
* PATCH changes tags; DELETE removes the containers, the sandbox (network namespace, host ports)
  and answers 200 with the last body (204 when there was nothing).
* Actions: ``start`` (202 + LRO, 204 when running), ``stop`` (204), ``restart`` (204 + LRO) — start
  and restart re-validate the images first; ``outboundNetworkDependenciesEndpoints`` (``[]``);
  ``containers/{name}/logs?tail=&timestamps=`` → ``{"content": ...}``;
  ``containers/{name}/exec`` (body ``{command, terminalSize: {rows, cols}}``) and
  ``containers/{name}/attach`` → ``{"webSocketUri", "password"}`` of a one-time session
  (:mod:`moorage.instances.exec_sessions`; the socket is served by :mod:`moorage.exec_sockets`).
  The container must exist (404 ``ContainerNotFound``) and run, in a running group (409
  ``ContainerGroupNotRunning`` / ``ContainerNotRunning``).
* Location endpoints the SDK and CLI call: ``locations/{l}/usages`` (groups and requested cores),
  ``cachedImages`` (the subscription's images this host holds unpacked), ``capabilities`` and
  ``operations/{id}`` (ACI's spelling of an operation's status); the namespace's operations
  catalog.

**Identities.** ``SystemAssigned``: the group's system-assigned identity is a managed-identity
principal keyed by the *group's own resource id* (what Azure puts in such a token's ``xms_mirid``
claim); it is created with the group (or when the identity type gains ``SystemAssigned``) and
removed with it. ``principalId``/``tenantId`` come from that principal; every user-assigned entry
shows its identity's ``principalId`` and ``clientId``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, ClassVar

from moorage.arm.ids import ResourceRef, normalize_location
from moorage.arm.lro import Operation, Operations
from moorage.arm.resources.base import (
    ActionResult,
    CallContext,
    DeleteResult,
    OperationCatalog,
    PutResult,
    ResourceProvider,
    not_found,
    parse_tags,
    require_object,
)
from moorage.arm.store import ArmStore
from moorage.core.errors import InvalidArgument, NotFound, NotSupported
from moorage.identity.service import IdentityService
from moorage.instances.exec_sessions import ExecSessions, SessionKind, check_terminal_size, split_command
from moorage.instances.model import (
    ContainerDefinition,
    GroupDefinition,
    InitContainerDefinition,
    ProbeDefinition,
    SecurityContextDefinition,
    VolumeMountDefinition,
)
from moorage.instances.runtime.base import TerminalSize
from moorage.instances.service import STOPPED, ContainerGroup, ContainerGroups
from moorage.instances.validation import MAX_GROUP_CPU, MAX_GROUP_MEMORY_GB, mask_secrets, parse_group

NAMESPACE = "Microsoft.ContainerInstance"
GROUP_TYPE = f"{NAMESPACE}/containerGroups"
PROVISION_KIND = "containerGroups/provision"
MAX_GROUPS_PER_REGION = 100
MAX_CACHED_IMAGES = 100
Items = list[dict[str, Any]]  # a name for it: providers have a ``list`` method


def _env(name: str, value: str | None, secure: bool) -> dict[str, Any]:
    return {"name": name, "secureValue": None} if secure else {"name": name, "value": value or ""}


def _mounts(mounts: tuple[VolumeMountDefinition, ...]) -> list[dict[str, Any]]:
    return [{"name": m.name, "mountPath": m.mount_path, "readOnly": m.read_only} for m in mounts]


def _probe(probe: ProbeDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if probe.exec_command is not None:
        out["exec"] = {"command": list(probe.exec_command)}
    if probe.http_get is not None:
        get = probe.http_get
        out["httpGet"] = {
            "path": get.path,
            "port": get.port,
            "scheme": get.scheme,
            "httpHeaders": [{"name": h.name, "value": h.value} for h in get.headers],
        }
    out |= {
        "initialDelaySeconds": probe.initial_delay_seconds,
        "periodSeconds": probe.period_seconds,
        "failureThreshold": probe.failure_threshold,
        "successThreshold": probe.success_threshold,
        "timeoutSeconds": probe.timeout_seconds,
    }
    return out


def _security(context: SecurityContextDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"privileged": False}
    if context.allow_privilege_escalation is not None:
        out["allowPrivilegeEscalation"] = context.allow_privilege_escalation
    if context.capabilities_add or context.capabilities_drop:
        out["capabilities"] = {"add": list(context.capabilities_add), "drop": list(context.capabilities_drop)}
    if context.run_as_user is not None:
        out["runAsUser"] = context.run_as_user
    if context.run_as_group is not None:
        out["runAsGroup"] = context.run_as_group
    return out


def _instance_view(view: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"restartCount": int(view.get("restartCount") or 0)}
    for key in ("currentState", "previousState"):
        state = view.get(key)
        if state:
            out[key] = {k: v for k, v in state.items() if v is not None}
    out["events"] = list(view.get("events") or [])
    return out


def _container(c: ContainerDefinition, view: dict[str, Any] | None) -> dict[str, Any]:
    requests: dict[str, Any] = {
        "memoryInGB": c.resources.requests.memory_in_gb,
        "cpu": c.resources.requests.cpu,
    }
    if c.resources.requests.gpu is not None:
        requests["gpu"] = {"count": c.resources.requests.gpu.count, "sku": c.resources.requests.gpu.sku}
    resources: dict[str, Any] = {"requests": requests}
    limits = c.resources.limits
    if limits is not None:
        resources["limits"] = {
            k: v for k, v in (("memoryInGB", limits.memory_in_gb), ("cpu", limits.cpu)) if v is not None
        }
    props: dict[str, Any] = {
        "image": c.image,
        "command": list(c.command),
        "ports": [{"protocol": p.protocol, "port": p.port} for p in c.ports],
        "environmentVariables": [_env(e.name, e.value, e.is_secure) for e in c.environment_variables],
        "resources": resources,
        "volumeMounts": _mounts(c.volume_mounts),
    }
    if c.liveness_probe is not None:
        props["livenessProbe"] = _probe(c.liveness_probe)
    if c.readiness_probe is not None:
        props["readinessProbe"] = _probe(c.readiness_probe)
    if c.security_context is not None:
        props["securityContext"] = _security(c.security_context)
    if view is not None:
        props["instanceView"] = _instance_view(view)
    return {"name": c.name, "properties": props}


def _init_container(c: InitContainerDefinition, view: dict[str, Any] | None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "image": c.image,
        "command": list(c.command),
        "environmentVariables": [_env(e.name, e.value, e.is_secure) for e in c.environment_variables],
        "volumeMounts": _mounts(c.volume_mounts),
    }
    if c.security_context is not None:
        props["securityContext"] = _security(c.security_context)
    if view is not None:
        props["instanceView"] = _instance_view(view)
    return {"name": c.name, "properties": props}


def render_properties(group: ContainerGroup, *, instance_view: bool) -> dict[str, Any]:
    """``properties`` of the ARM body, from the stored definition and state (no secrets)."""
    d: GroupDefinition = group.definition
    props: dict[str, Any] = {
        "provisioningState": group.provisioning_state,
        "containers": [_container(c, group.view(c.name) if instance_view else None) for c in d.containers],
        "initContainers": [
            _init_container(c, group.view(c.name, init=True) if instance_view else None)
            for c in d.init_containers
        ],
        "imageRegistryCredentials": [
            {
                k: v
                for k, v in (
                    ("server", c.server),
                    ("username", c.username),
                    ("password", None),
                    ("identity", c.identity),
                    ("identityUrl", c.identity_url),
                )
                if v is not None or k == "password"
            }
            for c in d.image_registry_credentials
        ],
        "restartPolicy": d.restart_policy,
        "osType": d.os_type,
        "sku": d.sku,
        "priority": d.priority,
    }
    if d.ip_address is not None:
        ip: dict[str, Any] = {
            "ports": [{"protocol": p.protocol, "port": p.port} for p in d.ip_address.ports],
            "type": d.ip_address.type,
            "autoGeneratedDomainNameLabelScope": d.ip_address.auto_generated_domain_name_label_scope,
        }
        if group.ip:
            ip["ip"] = group.ip
        if d.ip_address.dns_name_label:
            ip["dnsNameLabel"] = d.ip_address.dns_name_label
            ip["fqdn"] = group.fqdn
        props["ipAddress"] = ip
    if d.volumes:
        volumes: list[dict[str, Any]] = []
        for v in d.volumes:
            if v.kind == "emptyDir":
                volumes.append({"name": v.name, "emptyDir": {}})
            elif v.kind == "secret":
                volumes.append({"name": v.name, "secret": dict.fromkeys(v.secret)})
            elif v.git_repo is not None:
                repo = {"repository": v.git_repo.repository}
                if v.git_repo.directory is not None:
                    repo["directory"] = v.git_repo.directory
                if v.git_repo.revision is not None:
                    repo["revision"] = v.git_repo.revision
                volumes.append({"name": v.name, "gitRepo": repo})
        props["volumes"] = volumes
    if d.dns_config is not None:
        props["dnsConfig"] = {
            "nameServers": list(d.dns_config.name_servers),
            "searchDomains": " ".join(d.dns_config.search_domains),
            "options": " ".join(d.dns_config.options),
        }
    if instance_view:
        props["instanceView"] = {"state": group.state, "events": list(group.events)}
    return props


class ContainerGroupsProvider(ResourceProvider):
    resource_type = GROUP_TYPE
    actions: ClassVar[dict[str, str]] = {
        "start": "POST",
        "stop": "POST",
        "restart": "POST",
        "outboundNetworkDependenciesEndpoints": "GET",
    }

    def __init__(
        self, store: ArmStore, operations: Operations, service: ContainerGroups, identity: IdentityService
    ) -> None:
        self._store = store
        self._operations = operations
        self._service = service
        self._identity = identity
        operations.register(PROVISION_KIND, self._run_provision)

    def permission(self, method: str, action: str | None = None) -> str:
        if action == "outboundNetworkDependenciesEndpoints":
            return f"{GROUP_TYPE}/outboundNetworkDependenciesEndpoints/read"
        return super().permission(method, action)

    async def _run_provision(self, op: Operation) -> None:
        await self._service.provision(op.resource_id, int(op.params["generation"]))

    async def _provision(self, ctx: CallContext, group: ContainerGroup, generation: int) -> Operation:
        return await self._operations.start(
            PROVISION_KIND,
            subscription_id=ctx.subscription.id,
            namespace=NAMESPACE,
            location=group.location,
            resource_id=group.id,
            params={"generation": generation},
        )

    async def _render(self, group: ContainerGroup, *, instance_view: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": group.id,
            "name": group.name,
            "type": GROUP_TYPE,
            "location": group.location,
            "tags": dict(group.tags),
        }
        identity = group.definition.identity
        if identity is not None:
            rendered: dict[str, Any] = {"type": identity.type}
            if identity.system_assigned:
                principal = await self._identity.managed_identity(group.id)
                if principal is not None:
                    rendered["principalId"] = principal.object_id
                    rendered["tenantId"] = principal.tenant_id
            if identity.user_assigned:
                users: dict[str, Any] = {}
                for uid in identity.user_assigned:
                    found = await self._identity.managed_identity(uid)
                    users[uid] = {"principalId": found.object_id, "clientId": found.app_id} if found else {}
                rendered["userAssignedIdentities"] = users
            out["identity"] = rendered
        out["properties"] = render_properties(group, instance_view=instance_view)
        return mask_secrets(out)

    async def preflight(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> None:
        """The schema and limit checks of a PUT (not the image access check: that needs the
        registries and identities the deployment may still be creating)."""
        resource_group = await self._store.resource_group(ctx.subscription.id, ref.resource_group or "")
        parse_group(
            body,
            name=ref.name,
            api_version=ctx.api_version,
            location_default=resource_group.location if resource_group else None,
            max_cpu=MAX_GROUP_CPU,
            max_memory_gb=MAX_GROUP_MEMORY_GB,
        )

    async def put(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> PutResult:
        resource_group = await self._store.resource_group(ctx.subscription.id, ref.resource_group or "")
        definition = parse_group(
            body,
            name=ref.name,
            api_version=ctx.api_version,
            location_default=resource_group.location if resource_group else None,
            max_cpu=MAX_GROUP_CPU,
            max_memory_gb=MAX_GROUP_MEMORY_GB,
        )
        existing = await self._service.get(ref.id)
        if existing is not None and existing.location != definition.location:
            raise InvalidArgument(
                f"The resource '{ref.name}' already exists in location '{existing.location}' in resource "
                f"group '{ref.resource_group}'. A resource with the same name cannot be created in "
                f"location '{definition.location}'. Please select a new resource name.",
                code="InvalidResourceLocation",
            )
        await self._service.validate(definition)
        resource_id = existing.id if existing is not None else ref.id
        group, created, generation = await self._service.put(
            resource_id=resource_id,
            subscription_id=ctx.subscription.id,
            resource_group=ref.resource_group or "",
            body=body,
            definition=definition,
            api_version=ctx.api_version,
        )
        await self._sync_system_identity(ctx, group)
        await self._store.put_resource(
            resource_id=group.id,
            subscription_id=ctx.subscription.id,
            resource_group=ref.resource_group,
            type_=GROUP_TYPE,
            name=group.name,
            location=group.location,
            tags=dict(group.tags),
            body={},
        )
        operation = await self._provision(ctx, group, generation) if generation is not None else None
        current = await self._service.get(group.id) or group
        return PutResult(await self._render(current, instance_view=True), created, operation)

    async def _sync_system_identity(self, ctx: CallContext, group: ContainerGroup) -> None:
        identity = group.definition.identity
        if identity is not None and identity.system_assigned:
            await self._identity.ensure_managed_identity(ctx.subscription.tenant_id, group.id, group.name)
        else:
            await self._identity.delete_managed_identity(group.id)

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        group = await self._service.get(ref.id)
        if group is None:
            raise not_found(ref)
        return await self._render(group, instance_view=True)

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        found = await self._service.list_groups(ctx.subscription.id, ref.resource_group)
        return [await self._render(g, instance_view=False) for g in found]

    async def patch(self, ctx: CallContext, ref: ResourceRef, body: dict[str, Any]) -> dict[str, Any]:
        group = await self._service.get(ref.id)
        if group is None:
            raise not_found(ref)
        if "tags" in body:
            tags = parse_tags(body.get("tags")) or {}
            group = await self._service.set_tags(group.id, tags)
            stored = await self._store.resource(group.id)
            if stored is not None:
                await self._store.put_resource(
                    resource_id=stored.id,
                    subscription_id=ctx.subscription.id,
                    resource_group=ref.resource_group,
                    type_=GROUP_TYPE,
                    name=stored.name,
                    location=stored.location,
                    tags=tags,
                    body=stored.body,
                )
        return await self._render(group, instance_view=True)

    async def delete(self, ctx: CallContext, ref: ResourceRef) -> DeleteResult:
        group = await self._service.delete(ref.id)
        await self._store.delete_resource(ref.id)
        if group is None:
            return DeleteResult(existed=False)
        body = await self._render(group, instance_view=True)
        await self._identity.delete_managed_identity(group.id)
        return DeleteResult(existed=True, body=body)

    async def action(self, ctx: CallContext, ref: ResourceRef, name: str, body: Any) -> ActionResult:
        group = await self._service.get(ref.id)
        if group is None:
            raise not_found(ref)
        if name == "stop":
            await self._service.stop(group.id)
            return ActionResult(status=204)
        if name == "start":
            generation = await self._service.start(group.id)
            if generation is None:
                return ActionResult(status=204)
            return ActionResult(status=202, operation=await self._provision(ctx, group, generation))
        if name == "restart":
            generation = await self._service.restart(group.id)
            return ActionResult(status=204, operation=await self._provision(ctx, group, generation))
        if name == "outboundNetworkDependenciesEndpoints":
            return ActionResult([])
        raise NotFound(f"The action '{name}' is not supported.", code="InvalidResourceType")

    def operation_catalog(self) -> OperationCatalog:
        def entry(operation: str, title: str, description: str) -> dict[str, Any]:
            return {
                "name": f"{NAMESPACE}/{operation}",
                "display": {
                    "provider": "Microsoft Container Instance",
                    "resource": "Container Group",
                    "operation": title,
                    "description": description,
                },
                "origin": "User",
            }

        return [
            entry("containerGroups/read", "Get Container Group", "Get all container groups."),
            entry("containerGroups/write", "Create or Update Container Group", "Create or update a group."),
            entry("containerGroups/delete", "Delete Container Group", "Delete the container group."),
            entry("containerGroups/restart/action", "Restart Container Group", "Restarts the group."),
            entry("containerGroups/stop/action", "Stop Container Group", "Stops the group."),
            entry("containerGroups/start/action", "Start Container Group", "Starts the group."),
            entry("containerGroups/containers/logs/read", "Get container logs", "Get the container's logs."),
            entry("containerGroups/containers/exec/action", "Container Exec", "Exec into a container."),
            entry("containerGroups/containers/attach/action", "Container Attach", "Attach to a container."),
            entry("locations/usages/read", "Get Usages", "Usage of container groups in a region."),
            entry("locations/cachedImages/read", "Get Cached Images", "Cached images in a region."),
            entry("locations/capabilities/read", "Get Capabilities", "Capabilities of a region."),
        ]


class ContainersProvider(ResourceProvider):
    """``containerGroups/{g}/containers/{c}``: its ``logs`` (GET), ``exec`` and ``attach`` (POST)
    actions. ``socket_uri`` turns an issued session into its ``webSocketUri``."""

    resource_type = f"{GROUP_TYPE}/containers"
    actions: ClassVar[dict[str, str]] = {"logs": "GET", "exec": "POST", "attach": "POST"}

    def __init__(
        self,
        service: ContainerGroups,
        sessions: ExecSessions,
        socket_uri: Callable[[SessionKind, str], str],
    ) -> None:
        self._service = service
        self._sessions = sessions
        self._socket_uri = socket_uri

    def permission(self, method: str, action: str | None = None) -> str:
        if action == "logs":
            return f"{GROUP_TYPE}/containers/logs/read"
        if action in ("exec", "attach"):
            return f"{GROUP_TYPE}/containers/{action}/action"
        return super().permission(method, action)

    async def action(self, ctx: CallContext, ref: ResourceRef, name: str, body: Any) -> ActionResult:
        group_id = ref.parent().id
        if await self._service.get(group_id) is None:
            raise not_found(ref.parent())
        if name in ("exec", "attach"):
            return await self._open_session(ref, SessionKind(name), body)
        if name != "logs":
            raise NotSupported(f"The operation '{name}' is not supported.", code="UnsupportedOperation")
        tail = _tail(ctx.query.get("tail"))
        timestamps = (ctx.query.get("timestamps") or "").lower() == "true"
        content = await self._service.logs(group_id, ref.name, tail=tail, timestamps=timestamps)
        return ActionResult({"content": content})

    async def _open_session(self, ref: ResourceRef, kind: SessionKind, body: Any) -> ActionResult:
        """The body is checked first (400), then the container's state (404/409)."""
        args: tuple[str, ...] = ()
        size: TerminalSize | None = None
        if kind is SessionKind.EXEC:
            args, size = _exec_request(body)
        group, container_id = await self._sessions.running_container(ref.parent().id, ref.name)
        issued = self._sessions.open(
            kind, container_id, label=f"{group.name}/{ref.name}", args=args, size=size
        )
        return ActionResult({"webSocketUri": self._socket_uri(kind, issued.id), "password": issued.password})


def _member(obj: dict[str, Any], key: str) -> Any:
    """``obj[key]``, matched case-insensitively as ACI's deserializer does; None when absent."""
    for name, value in obj.items():
        if name.lower() == key.lower():
            return value
    return None


def _content_error(detail: str, path: str) -> InvalidArgument:
    return InvalidArgument(
        f"The request content was invalid and could not be deserialized: '{detail} Path '{path}'.'.",
        code="InvalidRequestContent",
        target=path,
    )


def _conversion_error(value: Any, path: str, type_name: str) -> InvalidArgument:
    if isinstance(value, dict | list):
        token = "StartObject" if isinstance(value, dict) else "StartArray"
        return _content_error(f"Unexpected token {token} when reading a value of type '{type_name}'.", path)
    shown = json.dumps(value) if not isinstance(value, bool) else str(value)
    return _content_error(f"Error converting value {shown[:100]} to type '{type_name}'.", path)


def _side(size: dict[str, Any], key: str, default: int) -> int:
    value = _member(size, key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _conversion_error(value, f"terminalSize.{key}", "System.Int32")
    return value


def _exec_request(body: Any) -> tuple[tuple[str, ...], TerminalSize]:
    """``ContainerExecRequest``: the command split into words (ACI's whitespace split, see
    :func:`~moorage.instances.exec_sessions.split_command`) and the terminal size (24x80 when
    absent or 0). ``InvalidRequestContent`` for wrong types, ``InvalidParameter`` for an empty
    command or a size outside 0..65535."""
    request = require_object(body, "")
    command = _member(request, "command")
    if command is not None and not isinstance(command, str):
        raise _conversion_error(command, "command", "System.String")
    args = split_command(command or "")
    default = TerminalSize()
    raw_size = _member(request, "terminalSize")
    if raw_size is None:
        return args, default
    if not isinstance(raw_size, dict):
        raise _conversion_error(raw_size, "terminalSize", "ContainerExecRequestTerminalSize")
    size = check_terminal_size(_side(raw_size, "rows", default.rows), _side(raw_size, "cols", default.cols))
    return args, size


def _tail(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidArgument(
            f"The value '{raw}' of the query parameter 'tail' is invalid; it must be a non-negative integer.",
            code="InvalidParameter",
            target="tail",
        )
    return value


class _LocationListing(ResourceProvider):
    """A read-only, subscription-level ``locations/{l}/<what>`` listing (one page: these lists
    are short, so there is no ``nextLink``)."""

    scope = "subscription"

    def __init__(self, service: ContainerGroups) -> None:
        self._service = service

    async def list(self, ctx: CallContext, ref: ResourceRef) -> list[dict[str, Any]]:
        return await self.items(ctx, normalize_location(ref.names[-1] if ref.names else ""))

    async def items(self, ctx: CallContext, location: str) -> Items:
        raise NotImplementedError


class LocationUsages(_LocationListing):
    """``locations/{l}/usages``: the subscription's container groups in the region and the cores
    their containers request (stopped groups hold none), against this host's limits."""

    resource_type = f"{NAMESPACE}/locations/usages"

    async def items(self, ctx: CallContext, location: str) -> Items:
        groups = [g for g in await self._service.list_groups(ctx.subscription.id) if g.location == location]
        cores = sum(
            c.resources.requests.cpu for g in groups if g.state != STOPPED for c in g.definition.containers
        )
        prefix = f"/subscriptions/{ctx.subscription.id}/providers/{NAMESPACE}/locations/{location}/usages"
        return [
            {
                "id": f"{prefix}/ContainerGroups",
                "unit": "Count",
                "currentValue": len(groups),
                "limit": MAX_GROUPS_PER_REGION,
                "name": {"value": "ContainerGroups", "localizedValue": "Container Groups"},
            },
            {
                "id": f"{prefix}/StandardCores",
                "unit": "Count",
                "currentValue": math.ceil(cores),
                "limit": int(MAX_GROUP_CPU) * MAX_GROUPS_PER_REGION,
                "name": {"value": "StandardCores", "localizedValue": "Standard Cores"},
            },
        ]


class CachedImages(_LocationListing):
    """``locations/{l}/cachedImages``: the images this host holds unpacked for the subscription's
    groups in the region (so a group using one starts without a pull); all Linux."""

    resource_type = f"{NAMESPACE}/locations/cachedImages"

    async def items(self, ctx: CallContext, location: str) -> Items:
        images = await self._service.cached_images(ctx.subscription.id, location, limit=MAX_CACHED_IMAGES)
        return [{"osType": "Linux", "image": image} for image in images]


class Capabilities(_LocationListing):
    resource_type = f"{NAMESPACE}/locations/capabilities"

    async def items(self, ctx: CallContext, location: str) -> Items:
        return [
            {
                "resourceType": "containerGroups",
                "osType": "Linux",
                "location": location,
                "ipAddressType": "Public",
                "gpu": "None",
                "capabilities": {
                    "maxMemoryInGB": MAX_GROUP_MEMORY_GB,
                    "maxCpu": MAX_GROUP_CPU,
                    "maxGpuCount": 0.0,
                },
            }
        ]


class LocationOperations(ResourceProvider):
    """``locations/{l}/operations/{id}``: ACI's spelling of an asynchronous operation's status
    (the same record ``operationStatuses/{id}`` shows), for container-instance operations only."""

    resource_type = f"{NAMESPACE}/locations/operations"
    scope = "subscription"

    def __init__(self, operations: Operations) -> None:
        self._operations = operations

    async def get(self, ctx: CallContext, ref: ResourceRef) -> dict[str, Any]:
        operation = await self._operations.get(ctx.subscription.id, ref.name)
        location = normalize_location(ref.names[0])
        if operation.namespace.lower() != NAMESPACE.lower() or operation.location != location:
            raise NotFound(f"The operation '{ref.name}' could not be found.", code="OperationNotFound")
        return operation.status_body() | {"id": ref.id}

    def operation_catalog(self) -> OperationCatalog:
        return [
            {
                "name": f"{NAMESPACE}/locations/operations/read",
                "display": {
                    "provider": "Microsoft Container Instance",
                    "resource": "Operation",
                    "operation": "Get Operation Status",
                    "description": "Gets the status of an asynchronous container group operation.",
                },
                "origin": "User",
            }
        ]


def container_instance_providers(
    store: ArmStore,
    operations: Operations,
    service: ContainerGroups,
    identity: IdentityService,
    *,
    exec_sessions: ExecSessions,
    socket_uri: Callable[[SessionKind, str], str],
) -> list[ResourceProvider]:
    return [
        ContainerGroupsProvider(store, operations, service, identity),
        ContainersProvider(service, exec_sessions, socket_uri),
        LocationUsages(service),
        CachedImages(service),
        Capabilities(service),
        LocationOperations(operations),
    ]
