"""Deployments: accept, run, show, cancel and forget template deployments.

A PUT is *accepted* synchronously — the request is parsed, the template checked and its
parameters bound (so ``utcNow()``/``newGuid()`` defaults are evaluated exactly once), and the
record written ``Accepted`` — or refused with ``InvalidTemplate`` and nothing written. The caller
then runs :meth:`Deployments.run` as a long-running operation: ``Running``, the engine, then
``Succeeded`` with outputs or ``Failed`` with ``DeploymentFailed``.

Every PUT bumps the record's *generation*; a run whose generation is no longer current stops
touching the record, and operations are listed for the current generation only. The request is
stored sealed (it holds secure parameters); what GET shows is stored in plain JSON with secure
parameter values already removed.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.core.clock import Clock, isoformat
from moorage.core.errors import (
    Canceled,
    Conflict,
    InvalidArgument,
    MoorageError,
    NotFound,
    NotSupported,
)
from moorage.core.sealing import Sealer
from moorage.deployments import planning, whatif
from moorage.deployments.engine import (
    DeploymentEngine,
    OperationRecord,
    dependencies,
    error_dict,
    iso_duration,
    resolver_for,
)
from moorage.deployments.plan import DeploymentPlan, DeploymentScope
from moorage.deployments.providers import Caller, ResourceGateway
from moorage.deployments.schema import deployments, operations
from moorage.store.meta import MetaStore

RESOURCE_TYPE = "Microsoft.Resources/deployments"
_NAME = re.compile(r"^[-\w._()]{1,64}$")
ACTIVE = ("Accepted", "Running")
MODES = {"incremental": "Incremental", "complete": "Complete"}
DETAIL_LEVELS = ("none", "requestcontent", "responsecontent")


class DeploymentNotFound(NotFound):
    default_code = "DeploymentNotFound"


@dataclass(frozen=True)
class DeploymentRequest:
    """The parsed body of a deployment PUT/validate/whatIf."""

    mode: str
    template: dict[str, Any]
    parameters: dict[str, Any]
    location: str | None
    tags: dict[str, str] | None
    debug_setting: dict[str, Any] | None


@dataclass(frozen=True)
class Deployment:
    id: str
    key: str
    name: str
    subscription_id: str
    resource_group: str | None
    location: str | None
    tags: dict[str, str] | None
    properties: dict[str, Any]
    generation: int

    @property
    def provisioning_state(self) -> str:
        return str(self.properties.get("provisioningState", ""))

    def body(self) -> dict[str, Any]:
        """``DeploymentExtended`` as GET shows it."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "type": RESOURCE_TYPE}
        if self.location:
            out["location"] = self.location
        if self.tags:
            out["tags"] = self.tags
        out["properties"] = {k: v for k, v in self.properties.items() if not k.startswith("_")}
        return out


def parse_request(body: Any, *, needs_location: bool) -> DeploymentRequest:
    """Parse a ``Deployment`` body, raising ARM's errors for what is malformed or unsupported."""
    if not isinstance(body, dict):
        raise _content("The request body must be a JSON object.")
    props = body.get("properties")
    if not isinstance(props, dict):
        raise _content("Required property 'properties' not found in JSON. Path ''.")
    mode = props.get("mode")
    if not isinstance(mode, str) or mode.lower() not in MODES:
        raise _content(
            f"Error converting value {json.dumps(mode)} to type 'DeploymentMode'. Path 'properties.mode'."
        )
    if props.get("templateLink") is not None or props.get("parametersLink") is not None:
        which = "templateLink" if props.get("templateLink") is not None else "parametersLink"
        raise NotSupported(
            f"The property '{which}' is not supported by this server, which fetches nothing from "
            "the internet: send the template and parameters inline (properties.template, "
            "properties.parameters).",
            code="InvalidContentLink",
            target=f"properties.{which}",
        )
    template = props.get("template")
    if not isinstance(template, dict):
        raise _content("Required property 'template' not found or not an object. Path 'properties.template'.")
    parameters = props.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise _content("Error converting value to type 'Object'. Path 'properties.parameters'.")
    if props.get("onErrorDeployment") is not None:
        raise NotSupported(
            "The property 'onErrorDeployment' is not supported by this server yet.",
            code="InvalidOnErrorDeployment",
            target="properties.onErrorDeployment",
        )
    debug = props.get("debugSetting")
    if debug is not None:
        level = debug.get("detailLevel") if isinstance(debug, dict) else None
        parts = [p.strip().lower() for p in str(level or "").split(",") if p.strip()]
        if not isinstance(debug, dict) or not all(p in DETAIL_LEVELS for p in parts):
            raise InvalidArgument(
                f"The debug setting detail level '{level}' is not valid. Allowed values are 'None', "
                "'RequestContent', 'ResponseContent' or a comma-separated combination.",
                code="InvalidDebugSettingDetailLevel",
                target="properties.debugSetting",
            )
    location = body.get("location")
    if location is not None and not isinstance(location, str):
        raise _content("Error converting value to type 'String'. Path 'location'.")
    if needs_location and not location:
        raise InvalidArgument(
            "The 'location' property must be specified for a deployment at this scope.",
            code="LocationRequired",
            target="location",
        )
    tags = body.get("tags")
    if tags is not None and not (
        isinstance(tags, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    ):
        raise _content("Error converting value to type 'Dictionary`2[String,String]'. Path 'tags'.")
    return DeploymentRequest(
        mode=MODES[mode.lower()],
        template=template,
        parameters=parameters,
        location=location or None,
        tags=tags,
        debug_setting=debug,
    )


def _content(reason: str) -> InvalidArgument:
    return InvalidArgument(
        f"The request content was invalid and could not be deserialized: '{reason}'.",
        code="InvalidRequestContent",
    )


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidArgument(
            f"The deployment name '{name}' is invalid. It must be 1 to 64 characters long and may "
            "contain only letters, digits, '-', '.', '_', '(' and ')'.",
            code="InvalidDeploymentName",
        )


class Deployments:
    """The deployment records and the runs that fill them."""

    def __init__(
        self,
        store: MetaStore,
        sealer: Sealer,
        clock: Clock,
        gateway: ResourceGateway,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._clock = clock
        self._gateway = gateway
        self._engine = DeploymentEngine(gateway, clock)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: set[str] = set()

    # -- accept -------------------------------------------------------------------------------

    async def accept(
        self, scope: DeploymentScope, body: Any, caller: Caller, base_url: str
    ) -> tuple[Deployment, bool]:
        """Check and record a deployment; return it (``Accepted``) and whether it is new.

        Raises InvalidArgument (``InvalidTemplate``, parameter errors, bad body), NotSupported,
        or Conflict (``DeploymentActive``) while a deployment of the same name runs.
        """
        check_name(scope.deployment_name)
        request = parse_request(body, needs_location=scope.resource_group is None)
        bound = planning.bind(request.template, request.parameters, scope)
        plan = planning.plan(request.template, bound, scope)
        await self._preflight(plan, scope, caller, base_url)
        key = scope.deployment_id.lower()
        existing = await self._load(key)
        if existing is not None and existing.provisioning_state in ACTIVE:
            raise Conflict(
                f"The deployment '{scope.deployment_name}' is still active; wait for it to finish or "
                "cancel it before deploying again under the same name.",
                code="DeploymentActive",
            )
        now = self._clock.now()
        properties = self._initial_properties(request, plan, scope, now)
        sealed = self._sealer.seal(
            json.dumps({"template": request.template, "bound": bound, "mode": request.mode})
        )
        generation = (existing.generation if existing else 0) + 1
        row = {
            "key": key,
            "id": existing.id if existing else scope.deployment_id,
            "subscription_id": scope.subscription_id.lower(),
            "resource_group_key": scope.resource_group.lower() if scope.resource_group else None,
            "name": existing.name if existing else scope.deployment_name,
            "location": request.location,
            "tags": request.tags,
            "sealed_request": sealed,
            "caller": dict(caller),
            "properties": properties,
            "provisioning_state": "Accepted",
            "generation": generation,
            "changed_at": now,
        }

        def write(conn: Connection) -> None:
            conn.execute(operations.delete().where(operations.c.deployment_key == key))
            if existing is None:
                conn.execute(deployments.insert().values(**row, created_at=now))
            else:
                conn.execute(deployments.update().where(deployments.c.key == key).values(**row))

        await self._store.write(write)
        deployment = await self._load(key)
        assert deployment is not None  # noqa: S101 - just written
        return deployment, existing is None

    def _initial_properties(
        self, request: DeploymentRequest, plan: DeploymentPlan, scope: DeploymentScope, now: datetime
    ) -> dict[str, Any]:
        props: dict[str, Any] = {
            "templateHash": plan.template_hash,
            "parameters": plan.parameters,
            "mode": request.mode,
            "provisioningState": "Accepted",
            "timestamp": isoformat(now),
            "duration": "PT0S",
            "correlationId": str(uuid.uuid4()),
            "providers": _providers(plan, scope),
            "dependencies": [],
            "_startedAt": now.timestamp(),
        }
        if request.debug_setting is not None:
            props["debugSetting"] = request.debug_setting
        return props

    # -- run ----------------------------------------------------------------------------------

    async def run(self, key: str, generation: int, scope: DeploymentScope, base_url: str) -> None:
        """Deploy the recorded request (the body of the deployment's long-running operation).

        Raises DeploymentFailed / OutputEvaluationFailed / InvalidTemplate when the deployment
        failed, Canceled when it was canceled; returns when it succeeded or was superseded.
        Safe to call again after a restart: providers' PUTs are idempotent.
        """
        deployment = await self._load(key)
        if deployment is None or deployment.generation != generation:
            return
        state = deployment.provisioning_state
        if state == "Succeeded":
            return
        if state in ("Failed", "Canceled"):
            error = deployment.properties.get("error") or {}
            cls = Canceled if state == "Canceled" else Conflict
            raise cls(
                str(error.get("message") or f"The deployment ended {state}."),
                code=str(error.get("code") or state),
            )
        caller = await self._caller(key)
        request = json.loads(self._sealer.unseal(await self._sealed(key)))
        task = asyncio.current_task()
        if task is not None:
            self._running[key] = task
        try:
            await self._update(key, generation, provisioningState="Running")
            plan = planning.plan(request["template"], request["bound"], scope)
            seq = 0

            async def record(op: OperationRecord) -> None:
                nonlocal seq
                seq += 1
                await self._record(key, generation, seq, op)

            complete = (
                (scope.subscription_id, scope.resource_group)
                if request["mode"] == "Complete" and scope.resource_group
                else None
            )
            result = await self._engine.run(
                plan, caller=caller, base_url=base_url, record=record, complete_scope=complete
            )
        except asyncio.CancelledError:
            if key not in self._cancel_requested:
                raise  # server shutdown: the operation resumes on the next start
            self._cancel_requested.discard(key)
            error = Canceled(f"The deployment '{deployment.name}' was canceled.", code="DeploymentCanceled")
            await self._finish(key, generation, "Canceled", error=error_dict(error))
            raise error from None
        except MoorageError as error:
            await self._finish(key, generation, "Failed", error=error_dict(error))
            raise
        finally:
            self._running.pop(key, None)
        await self._finish(
            key,
            generation,
            "Succeeded",
            outputs=result.outputs,
            outputResources=result.output_resources,
            dependencies=result.dependencies,
        )

    async def _finish(self, key: str, generation: int, state: str, **fields: Any) -> None:
        deployment = await self._load(key)
        if deployment is None or deployment.generation != generation:
            return
        started = float(deployment.properties.get("_startedAt") or self._clock.timestamp())
        await self._update(
            key,
            generation,
            provisioningState=state,
            duration=iso_duration(self._clock.timestamp() - started),
            **fields,
        )

    async def _update(self, key: str, generation: int, **fields: Any) -> None:
        now = self._clock.now()

        def write(conn: Connection) -> None:
            row = conn.execute(
                sa.select(deployments.c.properties, deployments.c.generation).where(deployments.c.key == key)
            ).first()
            if row is None or row.generation != generation:
                return
            props = dict(row.properties)
            props.update(fields)
            props["timestamp"] = isoformat(now)
            values: dict[str, Any] = {"properties": props, "changed_at": now}
            if "provisioningState" in fields:
                values["provisioning_state"] = fields["provisioningState"]
            conn.execute(deployments.update().where(deployments.c.key == key).values(**values))

        await self._store.write(write)

    async def _record(self, key: str, generation: int, seq: int, op: OperationRecord) -> None:
        props = op.properties()

        def write(conn: Connection) -> None:
            current = conn.execute(
                sa.select(deployments.c.generation).where(deployments.c.key == key)
            ).scalar_one_or_none()
            if current != generation:
                return
            updated = conn.execute(
                operations.update()
                .where(operations.c.deployment_key == key, operations.c.operation_id == op.operation_id)
                .values(properties=props)
            )
            if updated.rowcount == 0:
                conn.execute(
                    operations.insert().values(
                        deployment_key=key,
                        operation_id=op.operation_id,
                        generation=generation,
                        seq=seq,
                        properties=props,
                    )
                )

        await self._store.write(write)

    # -- read ---------------------------------------------------------------------------------

    async def get(self, deployment_id: str) -> Deployment:
        deployment = await self._load(deployment_id.lower())
        if deployment is None:
            name = deployment_id.rstrip("/").rsplit("/", 1)[-1]
            raise DeploymentNotFound(f"Deployment '{name}' could not be found.")
        return deployment

    async def list_deployments(self, subscription_id: str, resource_group: str | None) -> list[Deployment]:
        def read(conn: Connection) -> list[Deployment]:
            query = sa.select(deployments).where(deployments.c.subscription_id == subscription_id.lower())
            if resource_group is None:
                query = query.where(deployments.c.resource_group_key.is_(None))
            else:
                query = query.where(deployments.c.resource_group_key == resource_group.lower())
            return [_deployment(r) for r in conn.execute(query.order_by(deployments.c.created_at))]

        return await self._store.read(read)

    async def operations(self, deployment_id: str) -> list[dict[str, Any]]:
        """The current generation's operations as ``DeploymentOperation`` bodies, oldest first."""
        deployment = await self.get(deployment_id)

        def read(conn: Connection) -> list[Any]:
            return list(
                conn.execute(
                    sa.select(operations)
                    .where(
                        operations.c.deployment_key == deployment.key,
                        operations.c.generation == deployment.generation,
                    )
                    .order_by(operations.c.seq)
                )
            )

        return [
            {
                "id": f"{deployment.id}/operations/{r.operation_id}",
                "operationId": r.operation_id,
                "properties": r.properties,
            }
            for r in await self._store.read(read)
        ]

    async def operation(self, deployment_id: str, operation_id: str) -> dict[str, Any]:
        for op in await self.operations(deployment_id):
            if op["operationId"].lower() == operation_id.lower():
                return op
        raise NotFound(
            f"Deployment operation '{operation_id}' could not be found.", code="DeploymentOperationNotFound"
        )

    async def export_template(self, deployment_id: str) -> dict[str, Any]:
        deployment = await self.get(deployment_id)
        request = json.loads(self._sealer.unseal(await self._sealed(deployment.key)))
        template: dict[str, Any] = request["template"]
        return {"template": template}

    async def rendered_resource(
        self, deployment_id: str, resource_id: str, scope: DeploymentScope, base_url: str
    ) -> tuple[str, dict[str, Any]] | None:
        """``(api-version, PUT body)`` the deployment sends for ``resource_id``: its stored
        request planned again and that resource rendered as the deployment's caller (secure
        parameters included, so the body is secret: for diagnosing a refused resource only).
        ``None`` when the template deploys no such resource. Raises DeploymentNotFound."""
        deployment = await self.get(deployment_id)
        request = json.loads(self._sealer.unseal(await self._sealed(deployment.key)))
        plan = planning.plan(request["template"], request["bound"], scope)
        planned = next((r for r in plan.resources if r.key == resource_id.lower()), None)
        if planned is None:
            return None
        caller = await self._caller(deployment.key)
        body = await planned.render(resolver_for(self._gateway, caller, base_url))
        return planned.api_version, body

    # -- change -------------------------------------------------------------------------------

    async def cancel(self, deployment_id: str) -> None:
        """Cancel a running deployment; raise Conflict when it is not running."""
        deployment = await self.get(deployment_id)
        if deployment.provisioning_state not in ACTIVE:
            raise Conflict(
                f"The deployment '{deployment.name}' cannot be canceled because it is in the "
                f"terminal state '{deployment.provisioning_state}'.",
                code="DeploymentCannotBeCancelled",
            )
        task = self._running.get(deployment.key)
        if task is None:
            # Accepted but not started yet (or resumed elsewhere): record the cancellation.
            error = Canceled(f"The deployment '{deployment.name}' was canceled.", code="DeploymentCanceled")
            await self._finish(deployment.key, deployment.generation, "Canceled", error=error_dict(error))
            return
        self._cancel_requested.add(deployment.key)
        task.cancel()

    async def find(self, deployment_id: str) -> Deployment | None:
        return await self._load(deployment_id.lower())

    @staticmethod
    def check_deletable(deployment: Deployment) -> None:
        """Raise Conflict (``DeploymentActive``) while the deployment runs."""
        if deployment.provisioning_state in ACTIVE:
            raise Conflict(
                f"The deployment '{deployment.name}' cannot be deleted while it is active; cancel it first.",
                code="DeploymentActive",
            )

    async def delete(self, deployment_id: str) -> bool:
        """Forget a deployment (never its resources); raise Conflict while it runs."""
        deployment = await self._load(deployment_id.lower())
        if deployment is None:
            return False
        self.check_deletable(deployment)

        def write(conn: Connection) -> None:
            conn.execute(operations.delete().where(operations.c.deployment_key == deployment.key))
            conn.execute(deployments.delete().where(deployments.c.key == deployment.key))

        await self._store.write(write)
        return True

    async def forget_scope(self, subscription_id: str, resource_group: str) -> None:
        """A resource group was deleted: its deployments go with it."""

        def write(conn: Connection) -> None:
            keys = sa.select(deployments.c.key).where(
                deployments.c.subscription_id == subscription_id.lower(),
                deployments.c.resource_group_key == resource_group.lower(),
            )
            conn.execute(operations.delete().where(operations.c.deployment_key.in_(keys)))
            conn.execute(
                deployments.delete().where(
                    deployments.c.subscription_id == subscription_id.lower(),
                    deployments.c.resource_group_key == resource_group.lower(),
                )
            )

        await self._store.write(write)

    # -- validate -----------------------------------------------------------------------------

    async def validate(
        self, scope: DeploymentScope, body: Any, caller: Caller, base_url: str
    ) -> dict[str, Any]:
        """``POST .../validate``: the checks a PUT makes, nothing written; the would-be body."""
        check_name(scope.deployment_name)
        request = parse_request(body, needs_location=scope.resource_group is None)
        bound = planning.bind(request.template, request.parameters, scope)
        plan = planning.plan(request.template, bound, scope)
        await self._preflight(plan, scope, caller, base_url)
        properties = {
            "templateHash": plan.template_hash,
            "parameters": plan.parameters,
            "mode": request.mode,
            "provisioningState": "Succeeded",
            "timestamp": isoformat(self._clock.now()),
            "duration": "PT0S",
            "correlationId": str(uuid.uuid4()),
            "providers": _providers(plan, scope),
            "dependencies": dependencies(plan.resources),
            "validatedResources": [{"id": r.resource_id} for r in plan.resources],
        }
        out: dict[str, Any] = {
            "id": scope.deployment_id,
            "name": scope.deployment_name,
            "type": RESOURCE_TYPE,
        }
        if request.location:
            out["location"] = request.location
        out["properties"] = properties
        return out

    async def _preflight(
        self, plan: DeploymentPlan, scope: DeploymentScope, caller: Caller, base_url: str
    ) -> None:
        """Azure's preflight: each resource whose body is known up front is checked by its
        provider; refusals come back together as ``InvalidTemplateDeployment`` (400), before
        anything is recorded or deployed."""
        refusals: list[MoorageError] = []
        for res in plan.resources:
            if res.static_body is None:
                continue
            try:
                await self._gateway.preflight(
                    caller, base_url, res.resource_id, res.api_version, res.static_body
                )
            except MoorageError as error:
                refusals.append(error)
        if refusals:
            raise InvalidArgument(
                f"The template deployment '{scope.deployment_name}' is not valid according to the "
                f"validation procedure. The tracking id is '{uuid.uuid4()}'. See inner errors for details.",
                code="InvalidTemplateDeployment",
                details=[e.as_detail() for e in refusals],
            )

    async def what_if(
        self, scope: DeploymentScope, body: Any, caller: Caller, base_url: str
    ) -> dict[str, Any]:
        """``POST .../whatIf``: a ``WhatIfOperationResult`` predicting the deployment's changes."""
        check_name(scope.deployment_name)
        request = parse_request(body, needs_location=scope.resource_group is None)
        bound = planning.bind(request.template, request.parameters, scope)
        plan = planning.plan(request.template, bound, scope)
        changes = await whatif.predict(
            plan,
            mode=request.mode,
            gateway=self._gateway,
            resolver=resolver_for(self._gateway, caller, base_url),
            caller=caller,
            base_url=base_url,
            scope=(scope.subscription_id, scope.resource_group) if scope.resource_group else None,
            deployment_id=scope.deployment_id,
        )
        return {"status": "Succeeded", "properties": {"changes": changes}}

    # -- storage ------------------------------------------------------------------------------

    async def _load(self, key: str) -> Deployment | None:
        def read(conn: Connection) -> Deployment | None:
            row = conn.execute(sa.select(deployments).where(deployments.c.key == key)).first()
            return _deployment(row) if row is not None else None

        return await self._store.read(read)

    async def _sealed(self, key: str) -> str:
        def read(conn: Connection) -> str:
            return str(
                conn.execute(
                    sa.select(deployments.c.sealed_request).where(deployments.c.key == key)
                ).scalar_one()
            )

        return await self._store.read(read)

    async def _caller(self, key: str) -> Caller:
        def read(conn: Connection) -> dict[str, Any]:
            value = conn.execute(sa.select(deployments.c.caller).where(deployments.c.key == key)).scalar_one()
            return dict(value)

        return await self._store.read(read)

    async def active(self) -> list[Deployment]:
        """Deployments a previous process left Accepted or Running."""

        def read(conn: Connection) -> list[Deployment]:
            query = sa.select(deployments).where(deployments.c.provisioning_state.in_(ACTIVE))
            return [_deployment(r) for r in conn.execute(query)]

        return await self._store.read(read)


def _deployment(row: Any) -> Deployment:
    rg_key = row.resource_group_key
    resource_group = None
    if rg_key is not None:
        # The id keeps the casing of the first PUT; take the group's name from it.
        parts = row.id.split("/")
        resource_group = parts[4] if len(parts) > 4 else rg_key
    return Deployment(
        id=row.id,
        key=row.key,
        name=row.name,
        subscription_id=row.subscription_id,
        resource_group=resource_group,
        location=row.location,
        tags=row.tags,
        properties=dict(row.properties),
        generation=row.generation,
    )


def _providers(plan: DeploymentPlan, scope: DeploymentScope) -> list[dict[str, Any]]:
    """``properties.providers``: the namespaces and types the template deploys."""
    by_ns: dict[str, dict[str, set[str]]] = {}
    location = scope.resource_group_location or scope.location
    for res in plan.resources:
        namespace, _, type_ = res.resource_type.partition("/")
        by_ns.setdefault(namespace, {}).setdefault(type_, set())
        if location:
            by_ns[namespace][type_].add(location)
    return [
        {
            "namespace": ns,
            "resourceTypes": [
                {"resourceType": t, "locations": sorted(locs)} for t, locs in sorted(types.items())
            ],
        }
        for ns, types in sorted(by_ns.items())
    ]
