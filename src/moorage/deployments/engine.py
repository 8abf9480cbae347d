"""The deployment engine: deploys a :class:`DeploymentPlan` through the resource gateway.

Resources start as soon as everything they depend on has succeeded, so independent resources
deploy in parallel; a resource whose dependency failed is never started (Azure records no
operation for it). Each started resource is one *deployment operation*, recorded when it starts
(``Running``) and again when its provider answered — so listing operations while a deployment
runs shows progress, and after a failure shows the provider's own error, which is what
"Please list deployment operations for details" sends users to.

Complete mode then deletes the resource group's top-level resources the template does not
name, one ``Delete`` operation each.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from moorage.core.clock import Clock, isoformat
from moorage.core.errors import (
    AdditionalInfo,
    Conflict,
    ErrorDetail,
    InvalidArgument,
    MoorageError,
)
from moorage.deployments.plan import DeploymentPlan, PlannedResource, Resolver
from moorage.deployments.providers import Caller, Outcome, ResourceGateway

FAILED_MESSAGE = (
    "At least one resource deployment operation failed. Please list deployment operations for "
    "details. Please see https://aka.ms/arm-deployment-operations for usage details."
)


class DeploymentFailed(Conflict):
    """The outer error of a failed deployment; ``details`` holds each failed operation's error."""

    default_code = "DeploymentFailed"


class OutputEvaluationFailed(InvalidArgument):
    default_code = "DeploymentOutputEvaluationFailed"


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration as ARM writes it: ``PT1.2345678S``, minutes and hours when longer."""
    seconds = max(seconds, 0.0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = "PT"
    if hours:
        out += f"{int(hours)}H"
    if minutes:
        out += f"{int(minutes)}M"
    text = f"{secs:.7f}".rstrip("0").rstrip(".")
    return out + f"{text or '0'}S"


def error_detail(body: dict[str, Any]) -> ErrorDetail:
    """An ARM error body (``{code, message, target, details, additionalInfo}``) as a detail."""
    return ErrorDetail(
        code=str(body.get("code") or "Unknown"),
        message=str(body.get("message") or ""),
        target=body.get("target") if isinstance(body.get("target"), str) else None,
        details=tuple(error_detail(d) for d in body.get("details") or () if isinstance(d, dict)),
        additional_info=tuple(
            AdditionalInfo(str(i.get("type")), dict(i.get("info") or {}))
            for i in body.get("additionalInfo") or ()
            if isinstance(i, dict)
        ),
    )


def error_dict(error: MoorageError) -> dict[str, Any]:
    """``error`` as an ARM error body (same shape as the ARM edge renders)."""

    def render(detail: ErrorDetail) -> dict[str, Any]:
        return {
            "code": detail.code,
            "message": detail.message,
            "target": detail.target,
            "details": [render(d) for d in detail.details],
            "additionalInfo": [{"type": i.type, "info": dict(i.info)} for i in detail.additional_info],
        }

    return render(error.as_detail())


@dataclass
class OperationRecord:
    """One deployment operation, in the shape ``.../deployments/{name}/operations`` lists."""

    operation_id: str
    provisioning_operation: str
    target: dict[str, Any]
    started: float
    timestamp: str
    state: str = "Running"
    status_code: str | None = None
    error: dict[str, Any] | None = None
    duration: str = "PT0S"

    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "provisioningOperation": self.provisioning_operation,
            "provisioningState": self.state,
            "timestamp": self.timestamp,
            "duration": self.duration,
            "trackingId": self.operation_id.lower(),
            "serviceRequestId": self.operation_id.lower(),
            "targetResource": self.target,
        }
        if self.status_code is not None:
            props["statusCode"] = self.status_code
        if self.error is not None:
            props["statusMessage"] = {"status": "Failed", "error": self.error}
        return props


Record = Callable[[OperationRecord], Awaitable[None]]


@dataclass
class EngineResult:
    outputs: dict[str, Any] = field(default_factory=dict)
    output_resources: list[dict[str, str]] = field(default_factory=list)
    dependencies: list[dict[str, Any]] = field(default_factory=list)


class _GatewayResolver:
    """``reference()``/``list*()`` answered from real resources through the gateway."""

    def __init__(self, gateway: ResourceGateway, caller: Caller, base_url: str) -> None:
        self._gateway = gateway
        self._caller = caller
        self._base_url = base_url

    async def reference(self, resource_id: str, api_version: str | None, *, full: bool) -> Any:
        version = api_version or await self._gateway.api_version_for(_type_of(resource_id))
        body = await self._gateway.get(self._caller, self._base_url, resource_id, version)
        if full:
            return {"apiVersion": version, **body}
        return body.get("properties", {})

    async def invoke(self, resource_id: str, api_version: str, action: str, body: Any) -> Any:
        return await self._gateway.action(
            self._caller, self._base_url, resource_id, api_version, action=action, body=body
        )


def _type_of(resource_id: str) -> str:
    parts = [p for p in resource_id.split("/") if p]
    low = [p.lower() for p in parts]
    if "providers" not in low:
        return (
            "Microsoft.Resources/resourceGroups"
            if "resourcegroups" in low
            else "Microsoft.Resources/subscriptions"
        )
    last = len(low) - 1 - low[::-1].index("providers")
    chain = parts[last + 1 :]
    return "/".join([chain[0], *chain[1::2]])


def resolver_for(gateway: ResourceGateway, caller: Caller, base_url: str) -> Resolver:
    return _GatewayResolver(gateway, caller, base_url)


class DeploymentEngine:
    """Runs one plan. Stateless between runs; everything durable goes through ``record``."""

    def __init__(self, gateway: ResourceGateway, clock: Clock) -> None:
        self._gateway = gateway
        self._clock = clock

    async def run(
        self,
        plan: DeploymentPlan,
        *,
        caller: Caller,
        base_url: str,
        record: Record,
        complete_scope: tuple[str, str] | None = None,
    ) -> EngineResult:
        """Deploy ``plan``; raise :class:`DeploymentFailed` (details: the failed operations'
        errors) if any resource failed, :class:`OutputEvaluationFailed` if an output could not
        be evaluated. ``complete_scope`` = (subscription, resource group) for Complete mode."""
        resolver = resolver_for(self._gateway, caller, base_url)
        outcomes = await self._deploy_all(plan.resources, caller, base_url, resolver, record)
        failures = [o.error for o in outcomes.values() if o.error is not None]
        if not failures and complete_scope is not None:
            failures = await self._complete(plan.resources, caller, base_url, complete_scope, record)
        if failures:
            raise DeploymentFailed(FAILED_MESSAGE, details=[error_detail(e) for e in failures])
        try:
            outputs = await plan.outputs(resolver)
        except MoorageError as error:
            raise OutputEvaluationFailed(
                f"Unable to evaluate template outputs: '{', '.join(_output_names(error))}'. Please "
                "see error details and deployment operations. Please see "
                "https://aka.ms/arm-common-errors for usage details.",
                details=[error.as_detail()],
            ) from None
        return EngineResult(
            outputs=outputs,
            output_resources=[{"id": r.resource_id} for r in plan.resources],
            dependencies=dependencies(plan.resources),
        )

    async def _deploy_all(
        self,
        resources: Sequence[PlannedResource],
        caller: Caller,
        base_url: str,
        resolver: Resolver,
        record: Record,
    ) -> dict[str, Outcome]:
        by_key = {r.key: r for r in resources}
        outcomes: dict[str, Outcome] = {}
        running: dict[asyncio.Task[Outcome], str] = {}
        waiting = dict(by_key)
        try:
            while waiting or running:
                for key, res in list(waiting.items()):
                    deps = [d for d in res.depends_on if d in by_key and d != key]
                    if any(d in outcomes and not outcomes[d].ok for d in deps):
                        del waiting[key]  # a dependency failed: never started, no operation
                        continue
                    if all(d in outcomes for d in deps):
                        del waiting[key]
                        task = asyncio.create_task(self._deploy_one(res, caller, base_url, resolver, record))
                        running[task] = key
                if not running:
                    break  # what is left waits on something that will never finish (no cycle here)
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    outcomes[running.pop(task)] = task.result()
        except BaseException:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        return outcomes

    def _start(self, operation: str, target: dict[str, Any]) -> OperationRecord:
        return OperationRecord(
            operation_id=secrets.token_hex(8).upper(),
            provisioning_operation=operation,
            target=target,
            started=time.monotonic(),
            timestamp=isoformat(self._clock.now()),
        )

    def _finish(self, op: OperationRecord, outcome: Outcome) -> None:
        op.state = "Succeeded" if outcome.ok else "Failed"
        op.status_code = outcome.status
        op.error = outcome.error
        op.timestamp = isoformat(self._clock.now())
        op.duration = iso_duration(time.monotonic() - op.started)

    async def _deploy_one(
        self,
        res: PlannedResource,
        caller: Caller,
        base_url: str,
        resolver: Resolver,
        record: Record,
    ) -> Outcome:
        target: dict[str, Any] = {
            "id": res.resource_id,
            "resourceType": res.resource_type,
            "resourceName": res.name,
            "apiVersion": res.api_version,
        }
        if res.symbolic_name:
            target["symbolicName"] = res.symbolic_name
        op = self._start("Create", target)
        await record(op)
        try:
            body = await res.render(resolver)
        except MoorageError as error:
            outcome = Outcome("BadRequest", error=error_dict(error))
        else:
            outcome = await self._gateway.put(caller, base_url, res.resource_id, res.api_version, body)
        self._finish(op, outcome)
        await record(op)
        return outcome

    async def _complete(
        self,
        resources: Sequence[PlannedResource],
        caller: Caller,
        base_url: str,
        scope: tuple[str, str],
        record: Record,
    ) -> list[dict[str, Any]]:
        keep = {r.key for r in resources}
        existing = await self._gateway.resources_in_group(caller, *scope)
        failures: list[dict[str, Any]] = []
        for res in existing:
            if res.id.lower() in keep:
                continue
            target = {"id": res.id, "resourceType": res.type, "resourceName": res.id.rsplit("/", 1)[-1]}
            op = self._start("Delete", target)
            await record(op)
            version = await self._gateway.api_version_for(res.type)
            outcome = await self._gateway.delete(caller, base_url, res.id, version)
            self._finish(op, outcome)
            await record(op)
            if outcome.error is not None:
                failures.append(outcome.error)
        return failures


def _output_names(error: MoorageError) -> list[str]:
    return [error.target] if error.target else ["outputs"]


def dependencies(resources: Sequence[PlannedResource]) -> list[dict[str, Any]]:
    """``properties.dependencies``: each resource with what it depended on."""
    by_key = {r.key: r for r in resources}
    out: list[dict[str, Any]] = []
    for res in resources:
        deps = [by_key[d] for d in sorted(res.depends_on) if d in by_key]
        if not deps:
            continue
        out.append(
            {
                "id": res.resource_id,
                "resourceType": res.resource_type,
                "resourceName": res.name,
                "dependsOn": [
                    {"id": d.resource_id, "resourceType": d.resource_type, "resourceName": d.name}
                    for d in deps
                ],
            }
        )
    return out
