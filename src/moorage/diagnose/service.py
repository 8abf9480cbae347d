"""The diagnostician: what to check for a container group, a deployment or one image, and the
report that comes out.

* A **container group**: what :meth:`ContainerGroups.validate` checks, in its order — every
  user-assigned identity exists, then every image (init containers and containers) with the
  group's own ``imageRegistryCredentials``.
* A **deployment**: each failed ``containerGroups`` operation — the group may not exist, since
  its PUT was refused — with the request the deployment sent for it (rendered again from the
  stored deployment). A request the container-group validator refuses (an identity used for a
  registry but not attached to the group, …) is reported as that refusal, with the cause the
  PUT's error carries.
* An **image** checked as a given identity: a user-assigned identity, a service principal
  (appId and secret), a registry user (admin user or repository token and password), or nobody.

Every image is checked by :class:`~moorage.diagnose.probes.Prober` over a fresh, traced image
source built like the platform's (the caller supplies it), so nothing is cached from earlier
pulls and the trace covers the whole authentication chain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from moorage.core.errors import MoorageError
from moorage.diagnose.probes import FirewallPolicy, Prober, RoleDirectory
from moorage.diagnose.report import CheckReport, GroupInfo, Report, refusal
from moorage.diagnose.trace import Recorder, TracingRouter
from moorage.instances.access import (
    DIAGNOSIS_TYPE,
    Diagnosis,
    Fix,
    ImageAccess,
    RegistryCredential,
    RegistryFacts,
    identity_not_found_diagnosis,
)
from moorage.instances.images import ImageSource, TransportRouter
from moorage.instances.model import GroupDefinition
from moorage.instances.validation import parse_group

CONTAINER_GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"


class IdentityLookup(Protocol):
    async def principal_id(self, identity_resource_id: str) -> str | None:
        """The principal of a user-assigned identity, ``None`` when it does not exist."""
        ...


SourceFactory = Callable[[TransportRouter], ImageSource]


@dataclass(frozen=True)
class FailedGroup:
    """A container group a deployment failed to create or update, with the PUT body it sent
    (``None`` when the template no longer renders it)."""

    id: str
    name: str
    operation_id: str | None
    error: dict[str, Any] | None
    api_version: str | None
    body: dict[str, Any] | None
    location: str | None = None


class Diagnostician:
    """Builds reports (see the module docstring)."""

    def __init__(
        self,
        access: ImageAccess,
        router: TransportRouter,
        new_source: SourceFactory,
        *,
        firewall: FirewallPolicy,
        roles: RoleDirectory,
        identities: IdentityLookup,
    ) -> None:
        self._access = access
        self._router = router
        self._new_source = new_source
        self._prober = Prober(firewall, roles, platform_address=access.platform_address)
        self._identities = identities

    @property
    def platform_address(self) -> str:
        return self._access.platform_address

    async def registry(self, host: str) -> RegistryFacts | None:
        """The moorage registry ``host`` names (login server or Azure-form alias), if any."""
        return await self._access.registry(host)

    async def image(
        self,
        image: str,
        credentials: Sequence[RegistryCredential],
        *,
        tenant_id: str,
        group: str | None = None,
    ) -> CheckReport:
        """The seven checks of one image with ``credentials``."""
        recorder = Recorder()
        router = TracingRouter(self._router, recorder)
        source = self._new_source(router)
        try:
            return await self._prober.probe(
                self._access.with_source(source),
                router,
                recorder,
                image,
                credentials,
                group=group,
                tenant_id=tenant_id,
            )
        finally:
            await source.aclose()
            await router.aclose()

    async def definition(
        self, definition: GroupDefinition, *, group: str, tenant_id: str
    ) -> list[CheckReport]:
        """What a container group PUT checks, in its order: identities, then every image."""
        if definition.identity is not None:
            for identity in definition.identity.user_assigned:
                if await self._identities.principal_id(identity) is None:
                    return [refusal(group, identity_not_found_diagnosis(identity).as_json())]
        credentials = [
            RegistryCredential(c.server, username=c.username, password=c.password, identity=c.identity)
            for c in definition.image_registry_credentials
        ]
        images = [c.image for c in definition.init_containers] + [c.image for c in definition.containers]
        unique = list(dict.fromkeys(images))
        return list(
            await asyncio.gather(
                *(self.image(i, credentials, tenant_id=tenant_id, group=group) for i in unique)
            )
        )

    # -- targets ---------------------------------------------------------------------------------

    async def for_group(self, group_id: str, definition: GroupDefinition, *, tenant_id: str) -> Report:
        report = Report({"kind": "containerGroup", "id": group_id}, self.platform_address)
        report.groups.append(GroupInfo(group_id, definition.name, "containerGroup"))
        report.checks = await self.definition(definition, group=group_id, tenant_id=tenant_id)
        return report

    async def for_deployment(
        self,
        deployment_id: str,
        state: str,
        failed: Sequence[FailedGroup],
        others: Sequence[dict[str, Any]],
        *,
        tenant_id: str,
    ) -> Report:
        report = Report(
            {"kind": "deployment", "id": deployment_id, "provisioningState": state}, self.platform_address
        )
        for item in failed:
            report.groups.append(
                GroupInfo(item.id, item.name, "deploymentOperation", item.operation_id, item.error)
            )
            report.checks += await self._failed_group(item, tenant_id=tenant_id)
        if others:
            report.notes.append(
                f"{len(others)} other failed operation(s) are not container groups: "
                + "; ".join(
                    f"{o.get('resourceType')} '{o.get('resourceName')}': {o.get('code')}" for o in others
                )
            )
        if not failed:
            report.notes.append("The deployment has no failed container-group operation.")
        return report

    async def for_image(
        self, image: str, credentials: Sequence[RegistryCredential], *, identity: str | None, tenant_id: str
    ) -> Report:
        target: dict[str, Any] = {"kind": "image", "image": image}
        if identity is not None:
            target["as"] = identity
        report = Report(target, self.platform_address)
        report.checks.append(await self.image(image, credentials, tenant_id=tenant_id))
        return report

    async def _failed_group(self, item: FailedGroup, *, tenant_id: str) -> list[CheckReport]:
        if item.body is None or item.api_version is None:
            return [refusal(item.id, _unrenderable(item).as_json())]
        try:
            definition = parse_group(
                item.body, name=item.name, api_version=item.api_version, location_default=item.location
            )
        except MoorageError as error:
            return [refusal(item.id, refused_definition(error))]
        return await self.definition(definition, group=item.id, tenant_id=tenant_id)


def refused_definition(error: MoorageError) -> dict[str, Any]:
    """The diagnosis a refused group definition carries, or one naming the refusal itself."""
    for info in error.additional_info:
        if info.type == DIAGNOSIS_TYPE:
            return dict(info.info)
    return Diagnosis(
        "InvalidGroupDefinition",
        f"The container group definition is refused before any image is pulled: {error.message}",
        {"code": error.code, "message": error.message, "target": error.target},
        Fix(
            f"Correct '{error.target or 'the definition'}' as the message says.",
            "az deployment group validate -g <resource group> --template-file <template>",
            f"the property '{error.target or '<property>'}' of the container group resource",
        ),
    ).as_json()


def _unrenderable(item: FailedGroup) -> Diagnosis:
    return Diagnosis(
        "InvalidGroupDefinition",
        f"The deployment's template no longer renders the container group '{item.name}'.",
        {"operationError": item.error},
        Fix(
            "Deploy again and diagnose the new deployment.",
            "az deployment group create -g <resource group> --template-file <template>",
            "none",
        ),
    )
