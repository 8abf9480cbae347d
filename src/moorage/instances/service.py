"""Container groups: validate → pull → run → watch, over a runtime-neutral :class:`Runtime`.

Lifecycle of one group (``Microsoft.ContainerInstance/containerGroups``)::

    PUT ─▶ validate (identities exist, every image accessible: a synchronous 400 otherwise)
        ─▶ row stored, provisioningState Pending ─▶ provision (the caller runs it as an LRO):
           Creating: pull every image (Pulling/Pulled or Failed events) under the group's lease,
           prepare snapshots, create the sandbox (network, published ports, volumes), clone
           gitRepo volumes, run init containers in order to completion, create and start the
           containers ─▶ Succeeded (state Running) or Failed (everything created is removed)
        ─▶ watchers: one task per container waits for its exit and applies the restart policy
           (Always / OnFailure: back-off, BackOff event, a new container; Never: stays
           Terminated); the group's state follows (Running, Succeeded, Failed). Meanwhile it
           runs the container's probes (:mod:`moorage.instances.probes`): each failed attempt
           is an Unhealthy event; liveness past its threshold is Killing, then the stop, then
           the restart policy as for any exit.
    stop: watchers cancelled, containers stopped and deleted with the sandbox (no netns or host
          port left), state Stopped. start / restart: images re-validated (InaccessibleImage
          when a tag is gone), then provisioned again. delete: like stop, and the row, the gitRepo
          clones and the image lease go.

**Generations.** Every change that re-creates containers (a PUT that changes the definition,
stop, start, restart) bumps the row's ``generation``. Status writes of provisioning and of the
watchers are conditional on the generation they started from, so work overtaken by a newer
request can never overwrite its result; it notices and stops.

**Restarts of the control plane.** Containers are supervised by the runtime (conmon for runc) and
keep running. :meth:`ContainerGroups.resume` re-attaches a watcher to every container of every
running group (an exit that happened meanwhile is handled at once); a group whose sandbox is gone
(a host reboot, the in-memory fake runtime) is provisioned again. Provisioning that was in flight
is resumed by the caller's LRO machinery, which calls :meth:`provision` again: it is idempotent.

The stored request body holds secrets, so it is sealed (:mod:`moorage.core.sealing`) and only
unsealed to re-derive the definition; secure environment values never reach the status columns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import sqlalchemy as sa

from moorage.core import memory
from moorage.core.clock import Clock, isoformat
from moorage.core.errors import InvalidArgument, MoorageError, NotFound
from moorage.core.log import get_logger
from moorage.core.sealing import Sealer
from moorage.instances.access import (
    DIAGNOSIS_TYPE,
    ImageAccess,
    RegistryCredential,
    identity_not_found_diagnosis,
)
from moorage.instances.content import Leases
from moorage.instances.identity_endpoint import GroupSandbox, IdentityEnvironment, has_identity
from moorage.instances.images import PulledImage, PullFailure, open_layer
from moorage.instances.model import GroupDefinition, SecurityContextDefinition, VolumeDefinition
from moorage.instances.probes import ContainerProber, ContainerProbes, ProbeFailure
from moorage.instances.runtime.base import (
    ContainerNotFound,
    ContainerSecurity,
    ContainerSpec,
    ContainerState,
    Mount,
    PortMapping,
    Resources,
    Runtime,
    SandboxSpec,
    Volume,
    VolumeMount,
)
from moorage.instances.runtime.specs import image_process
from moorage.instances.schema import groups
from moorage.instances.snapshots import Snapshotter
from moorage.instances.validation import parse_group
from moorage.store.blobs import BlobStore
from moorage.store.meta import MetaStore

log = get_logger("instances.groups")

# Group instance-view states and provisioning states (azure-semantics §1).
RUNNING, STOPPED, PENDING, SUCCEEDED, FAILED = "Running", "Stopped", "Pending", "Succeeded", "Failed"
CREATING = "Creating"
# Container states.
WAITING, TERMINATED = "Waiting", "Terminated"

MAX_EVENTS = 50
GIB = 1 << 30
FQDN_SUFFIX = "azurecontainer.io"
GIT_TIMEOUT_S = 300.0


class IdentityDirectory(Protocol):
    """What container groups need to know about managed identities (wired to identity)."""

    async def user_assigned_exists(self, resource_id: str) -> bool:
        """Whether the user-assigned identity ``resource_id`` exists."""
        ...


class FailedIdentityOperation(InvalidArgument):
    default_code = "FailedIdentityOperation"


class ContainerGroupInitFailed(InvalidArgument):
    default_code = "InitContainerFailed"


class GitRepoCloneFailed(InvalidArgument):
    default_code = "GitRepoVolumeCloneFailed"


class ContainerGroupNotFound(NotFound):
    default_code = "ResourceNotFound"


class _Superseded(Exception):
    """A newer request changed the group's generation: the work in hand is stale."""


@dataclass(frozen=True)
class ContainerGroup:
    """One container group as stored: its definition and what the platform made of it.

    ``containers`` maps ``"containers"`` and ``"initContainers"`` to ``{name: view}``, where a view
    holds ``restartCount``, ``currentState``, ``previousState`` and ``events`` as ACI's
    ``instanceView`` spells them (plus private keys starting with ``_``)."""

    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str
    tags: dict[str, str]
    api_version: str
    definition: GroupDefinition
    desired: str
    provisioning_state: str
    state: str
    generation: int
    ip: str | None
    containers: dict[str, Any]
    events: list[dict[str, Any]]
    error: dict[str, Any] | None
    created_at: datetime
    changed_at: datetime

    @property
    def fqdn(self) -> str | None:
        ip = self.definition.ip_address
        if ip is None or not ip.dns_name_label:
            return None
        return f"{ip.dns_name_label}.{self.location}.{FQDN_SUFFIX}".lower()

    def view(self, name: str, *, init: bool = False) -> dict[str, Any]:
        return dict(self.containers.get("initContainers" if init else "containers", {}).get(name) or {})


@dataclass
class _Row:
    """A group row being worked on (mutable); ``views`` is the ``containers`` column."""

    key: str
    id: str
    subscription_id: str
    resource_group_key: str
    name: str
    location: str
    tags: dict[str, str]
    api_version: str
    sealed_body: str
    desired: str
    provisioning_state: str
    state: str
    generation: int
    sandbox_id: str | None
    ip: str | None
    views: dict[str, Any]
    events: list[dict[str, Any]]
    error: dict[str, Any] | None
    created_at: datetime
    changed_at: datetime
    resource_group: str = ""

    def container(self, name: str, *, init: bool = False) -> dict[str, Any]:
        section = self.views.setdefault("initContainers" if init else "containers", {})
        view: dict[str, Any] = section.setdefault(name, _fresh_view())
        return view


@dataclass
class _Image:
    """What provisioning learnt about one image: enough to build a container spec again later."""

    config: str  # digest of the config blob
    layers: list[list[str]] = field(default_factory=list)  # [digest, media type, diff_id], bottom first

    def as_json(self) -> dict[str, Any]:
        return {"config": self.config, "layers": self.layers}

    @classmethod
    def from_json(cls, data: Any) -> _Image | None:
        if not isinstance(data, dict) or not isinstance(data.get("config"), str):
            return None
        return cls(str(data["config"]), [list(map(str, layer)) for layer in data.get("layers") or []])


def _fresh_view() -> dict[str, Any]:
    return {"restartCount": 0, "currentState": None, "previousState": None, "events": []}


def _hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class ContainerGroups:
    """The container group service (see the module docstring)."""

    def __init__(
        self,
        store: MetaStore,
        *,
        sealer: Sealer,
        runtime: Runtime,
        access: ImageAccess,
        blobs: BlobStore,
        snapshots: Snapshotter,
        identities: IdentityDirectory,
        clock: Clock,
        leases: Leases | None,
        work_dir: Path,
        identity_env: IdentityEnvironment | None = None,
        stop_grace_s: float = 10.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._runtime = runtime
        self._access = access
        self._blobs = blobs
        self._snapshots = snapshots
        self._identities = identities
        self._clock = clock
        self._leases = leases
        self._identity_env = identity_env  # the identity endpoint's variables; None: no endpoint
        self._volumes_dir = work_dir / "volumes"
        self._spool_dir = work_dir / "spool"
        self._stop_grace_s = stop_grace_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._watchers: dict[str, dict[str, asyncio.Task[None]]] = {}  # group key → name → watcher
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ validation

    async def validate(self, definition: GroupDefinition) -> None:
        """What ACI checks before it accepts a PUT (and again at start and restart): every
        user-assigned identity exists, every image (containers and init containers) is
        accessible with the group's credentials from the platform's viewpoint. Raises
        ``FailedIdentityOperation``, ``InaccessibleImage`` or ``RegistryErrorResponse`` (the
        latter two with a diagnosis in ``additionalInfo``)."""
        if definition.identity is not None:
            for identity in definition.identity.user_assigned:
                if not await self._identities.user_assigned_exists(identity):
                    raise FailedIdentityOperation(
                        f"Identity operation for resource of container group '{definition.name}' failed "
                        f"with error 'Failed to perform resource identity operation. Status: 'NotFound'. "
                        f"Response: 'The user assigned identity '{identity}' does not exist.''.",
                        target="identity.userAssignedIdentities",
                        additional_info=(identity_not_found_diagnosis(identity).as_info(),),
                    )
        images = [c.image for c in definition.init_containers] + [c.image for c in definition.containers]
        unique = list(dict.fromkeys(images))
        credentials = self._credentials(definition)
        results = await asyncio.gather(
            *(self._access.check(definition.name, image, credentials) for image in unique),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    @staticmethod
    def _credentials(definition: GroupDefinition) -> list[RegistryCredential]:
        return [
            RegistryCredential(c.server, username=c.username, password=c.password, identity=c.identity)
            for c in definition.image_registry_credentials
        ]

    # ------------------------------------------------------------------ reads

    async def get(self, resource_id: str) -> ContainerGroup | None:
        row = await self._load(resource_id.lower())
        return self._public(row) if row else None

    async def require(self, resource_id: str) -> ContainerGroup:
        group = await self.get(resource_id)
        if group is None:
            raise ContainerGroupNotFound(f"The container group '{resource_id}' was not found.")
        return group

    async def list_groups(
        self, subscription_id: str, resource_group: str | None = None
    ) -> list[ContainerGroup]:
        query = sa.select(groups).where(groups.c.subscription_id == subscription_id.lower())
        if resource_group is not None:
            query = query.where(groups.c.resource_group_key == resource_group.lower())
        async with self._store.connect() as conn:
            rows = list(await conn.execute(query.order_by(groups.c.created_at)))
        return [self._public(self._row(r)) for r in rows]

    async def sandboxes_at(self, address: str) -> list[GroupSandbox]:
        """The groups whose current sandbox has ``address`` (for the identity endpoint)."""
        async with self._store.connect() as conn:
            rows = [self._row(r) for r in await conn.execute(sa.select(groups).where(groups.c.ip == address))]
        return [
            GroupSandbox(row.id, row.sandbox_id, self._definition(row).identity)
            for row in rows
            if row.sandbox_id is not None
        ]

    async def count(self, subscription_id: str, location: str | None = None) -> int:
        return len(
            [g for g in await self.list_groups(subscription_id) if location is None or g.location == location]
        )

    async def cached_images(self, subscription_id: str, location: str, *, limit: int = 100) -> list[str]:
        """The images (as the groups name them, sorted, at most ``limit``) of the subscription's
        groups in ``location`` whose layers are all unpacked on this host: a group using one starts
        without unpacking. Other subscriptions' images are never listed (their names are theirs)."""
        found: set[str] = set()
        for group in await self.list_groups(subscription_id):
            if group.location != location:
                continue
            members = [(c.name, c.image, True) for c in group.definition.init_containers]
            members += [(c.name, c.image, False) for c in group.definition.containers]
            for name, reference, init in members:
                image = _Image.from_json(group.view(name, init=init).get("_image"))
                if image is not None and reference not in found and self._unpacked(image):
                    found.add(reference)
        return sorted(found)[:limit]

    def _unpacked(self, image: _Image) -> bool:
        diff_ids = [diff_id for _, _, diff_id in image.layers]
        return all(
            self._snapshots.lowerdir(Snapshotter.chain_id(diff_ids[: i + 1])).exists()
            for i in range(len(diff_ids))
        )

    # ------------------------------------------------------------------ writes

    async def put(
        self,
        *,
        resource_id: str,
        subscription_id: str,
        resource_group: str,
        body: dict[str, Any],
        definition: GroupDefinition,
        api_version: str,
    ) -> tuple[ContainerGroup, bool, int | None]:
        """Store the group (call :meth:`validate` first). Returns the group, whether it was
        created, and the generation to :meth:`provision` (``None``: nothing to re-create, e.g. only
        the tags changed)."""
        key = resource_id.lower()
        now = self._clock.now()
        sealed = self._sealer.seal(json.dumps(body))
        existing = await self._load(key)
        if existing is None:
            views: dict[str, Any] = {"containers": {}, "initContainers": {}}
            for c in definition.containers:
                views["containers"][c.name] = _fresh_view()
            for ic in definition.init_containers:
                views["initContainers"][ic.name] = _fresh_view()
            values = {
                "key": key,
                "id": resource_id,
                "subscription_id": subscription_id.lower(),
                "resource_group_key": resource_group.lower(),
                "name": definition.name,
                "location": definition.location,
                "tags": dict(definition.tags),
                "api_version": api_version,
                "sealed_body": sealed,
                "desired": RUNNING,
                "provisioning_state": PENDING,
                "state": PENDING,
                "generation": 1,
                "sandbox_id": None,
                "ip": None,
                "containers": views,
                "events": [],
                "error": None,
                "created_at": now,
                "changed_at": now,
            }
            async with self._store.begin() as conn:
                await conn.execute(groups.insert().values(**values))
            created = await self._load(key)
            assert created is not None  # noqa: S101 - inserted just above
            return self._public(created), True, 1
        old = self._definition(existing)
        unchanged = (
            replace(old, tags={}) == replace(definition, tags={})
            and existing.desired == RUNNING
            and existing.provisioning_state == SUCCEEDED
        )
        values = {
            "tags": dict(definition.tags),
            "api_version": api_version,
            "sealed_body": sealed,
            "changed_at": now,
        }
        async with self._store.begin() as conn:
            await conn.execute(groups.update().where(groups.c.key == key).values(**values))
        generation = None if unchanged else await self._bump(key, desired=RUNNING)
        updated = await self._load(key)
        if updated is None:
            raise ContainerGroupNotFound(f"The container group '{resource_id}' was deleted meanwhile.")
        return self._public(updated), False, generation

    async def set_tags(self, resource_id: str, tags: dict[str, str]) -> ContainerGroup:
        """PATCH: only the tags change (in the sealed body too, so that they survive re-parsing)."""
        key = resource_id.lower()
        row = await self._load(key)
        if row is None:
            raise ContainerGroupNotFound(f"The container group '{resource_id}' was not found.")
        body = json.loads(self._sealer.unseal(row.sealed_body))
        for name in [n for n in body if n.lower() == "tags"]:
            del body[name]
        body["tags"] = tags
        async with self._store.begin() as conn:
            await conn.execute(
                groups.update()
                .where(groups.c.key == key)
                .values(
                    tags=tags, sealed_body=self._sealer.seal(json.dumps(body)), changed_at=self._clock.now()
                )
            )
        return await self.require(resource_id)

    async def start(self, resource_id: str) -> int | None:
        """Re-validate and mark the group to be provisioned again; the generation to
        :meth:`provision`, or ``None`` when it is running already."""
        key = resource_id.lower()
        row = await self._require_row(key)
        if row.desired == RUNNING and (row.provisioning_state in (PENDING, CREATING) or row.state == RUNNING):
            return None
        await self.validate(self._definition(row))
        return await self._bump(key, desired=RUNNING)

    async def restart(self, resource_id: str) -> int:
        """Re-validate (a deleted tag is ``InaccessibleImage``) and mark the group to be
        provisioned again: every container is re-created from freshly resolved images."""
        key = resource_id.lower()
        row = await self._require_row(key)
        await self.validate(self._definition(row))
        return await self._bump(key, desired=RUNNING)

    async def _bump(self, key: str, *, desired: str) -> int:
        """Start a new generation (read back in the same transaction, so two bumps never get
        the same number); raises ``ContainerGroupNotFound`` when the group is gone."""
        async with self._store.begin() as conn:
            await conn.execute(
                groups.update()
                .where(groups.c.key == key)
                .values(
                    generation=groups.c.generation + 1,
                    desired=desired,
                    provisioning_state=PENDING,
                    error=None,
                    changed_at=self._clock.now(),
                )
            )
            generation = (
                await conn.execute(sa.select(groups.c.generation).where(groups.c.key == key))
            ).scalar()
        if generation is None:
            raise ContainerGroupNotFound(f"The container group '{key}' was not found.")
        return int(generation)

    async def stop(self, resource_id: str) -> ContainerGroup:
        """Stop every container and release the sandbox (its address and host ports)."""
        key = resource_id.lower()
        await self._require_row(key)
        generation = await self._bump(key, desired=STOPPED)
        async with self._lock(key):
            await self._stop_watchers(key)
            row = await self._require_row(key)
            if row.generation != generation:
                return self._public(row)
            await self._teardown(row, reason="stop")
            row.provisioning_state = SUCCEEDED
            row.state = STOPPED
            await self._save(row, generation=row.generation)
        return await self.require(resource_id)

    async def delete(self, resource_id: str) -> ContainerGroup | None:
        """Remove the group's containers, sandbox, volumes, lease and row; ``None`` if there
        was no such group."""
        key = resource_id.lower()
        if await self._load(key) is None:
            return None
        async with self._lock(key):
            await self._stop_watchers(key)
            row = await self._load(key)
            if row is None:
                return None
            async with self._store.begin() as conn:
                # Nothing that is still running may write its status any more.
                await conn.execute(
                    groups.update().where(groups.c.key == key).values(generation=groups.c.generation + 1)
                )
            await self._teardown(row, reason="delete")
            if self._leases is not None:
                await self._leases.release(self._lease_id(key))
            async with self._store.begin() as conn:
                await conn.execute(groups.delete().where(groups.c.key == key))
        row.provisioning_state = SUCCEEDED
        row.state = STOPPED
        return self._public(row)

    # ------------------------------------------------------------------ logs

    async def logs(
        self, resource_id: str, container: str, *, tail: int | None = None, timestamps: bool = False
    ) -> str:
        """The log of ``container``'s current instance (all of it, or the last ``tail`` lines),
        each line optionally prefixed with its RFC 3339 timestamp."""
        group = await self.require(resource_id)
        names = {c.name for c in group.definition.containers}
        init_names = {c.name for c in group.definition.init_containers}
        if container not in names | init_names:
            raise NotFound(
                f"The container '{container}' does not exist in container group '{group.name}'.",
                code="ContainerNotFound",
            )
        view = group.view(container, init=container not in names)
        container_id = view.get("_id")
        if not container_id:
            return ""
        try:
            lines = await self._runtime.logs(str(container_id), tail=tail)
        except ContainerNotFound:
            return ""
        prefix: Callable[[datetime], str] = (
            (lambda ts: isoformat(ts) + " ") if timestamps else (lambda _ts: "")
        )
        return "".join(f"{prefix(line.timestamp)}{line.text}\n" for line in lines)

    # ------------------------------------------------------------------ provisioning

    async def provision(self, resource_id: str, generation: int) -> None:
        """Create everything generation ``generation`` of the group needs and start it. Returns
        quietly when the group was deleted or changed meanwhile; raises the error that made
        provisioning fail (after recording it and removing what was created)."""
        key = resource_id.lower()
        async with self._lock(key):
            row = await self._load(key)
            if row is None or row.generation != generation or row.desired != RUNNING:
                return
            await self._stop_watchers(key)
            definition = self._definition(row)
            sandbox_id = self._sandbox_id(key, generation)
            try:
                await self._teardown(row, reason="restart")
                await self._remove_sandbox(sandbox_id)  # debris of an interrupted attempt
                self._reset_views(row, definition)
                row.provisioning_state = CREATING
                row.state = PENDING
                row.error = None
                await self._save(row, generation=generation)
                await self._provision(row, definition, sandbox_id, generation)
                row.provisioning_state = SUCCEEDED
                row.state = self._group_state(row, definition)
                await self._save(row, generation=generation)
            except _Superseded:
                await self._remove_sandbox(sandbox_id)
                return
            except Exception as exc:
                # Nothing half-made stays: no sandbox, no published port, no clone.
                await self._remove_sandbox(sandbox_id)
                code = exc.code if isinstance(exc, MoorageError) else "InternalServerError"
                message = (
                    exc.message if isinstance(exc, MoorageError) else "Provisioning failed unexpectedly."
                )
                row.sandbox_id = None
                row.ip = None
                row.provisioning_state = FAILED
                row.state = PENDING
                row.error = {"code": code, "message": message}
                with contextlib.suppress(_Superseded):
                    await self._save(row, generation=generation)
                log.info("container group provisioning failed", group=row.id, code=code)
                raise
            self._start_watchers(row, definition)
        log.info("container group running", group=row.id, generation=generation, ip=row.ip)

    async def _provision(
        self, row: _Row, definition: GroupDefinition, sandbox_id: str, generation: int
    ) -> None:
        lease = self._lease_id(row.key)
        if self._leases is not None:
            await self._leases.release(lease)
        pulled: dict[str, _Image] = {}
        members = [(ic.name, ic.image, True) for ic in definition.init_containers]
        members += [(c.name, c.image, False) for c in definition.containers]
        for name, image, init in members:
            view = row.container(name, init=init)
            self._event(view, "Pulling", f'pulling image "{image}"')
            await self._save(row, generation=generation)
            if image not in pulled:
                try:
                    pulled[image] = await self._pull(definition, image, lease)
                except MoorageError as error:
                    self._event(
                        view,
                        "Failed",
                        f'Failed to pull image "{image}": rpc error: code Unknown desc {_why(error)}',
                        "Warning",
                    )
                    await self._save(row, generation=generation)
                    raise
            view["_image"] = pulled[image].as_json()
            self._event(view, "Pulled", f'Successfully pulled image "{image}"')
        await self._save(row, generation=generation)
        sandbox = await self._runtime.create_sandbox(self._sandbox_spec(definition, sandbox_id))
        row.sandbox_id = sandbox_id
        row.ip = sandbox.ip
        await self._save(row, generation=generation)
        await self._clone_git_volumes(definition, sandbox_id)
        for index, ic in enumerate(definition.init_containers):
            container_id = f"{sandbox_id}-i{index}"
            await self._create_and_start(row, definition, ic.name, container_id, init=True)
            await self._save(row, generation=generation)
            state = await self._runtime.wait(container_id)
            view = row.container(ic.name, init=True)
            view["previousState"] = None
            view["currentState"] = self._terminated(view, state)
            await self._save(row, generation=generation)
            if state.exit_code != 0:
                raise ContainerGroupInitFailed(
                    f"The init container '{ic.name}' of container group '{definition.name}' exited with "
                    f"code {state.exit_code}.",
                    target=ic.name,
                )
        for index, c in enumerate(definition.containers):
            await self._create_and_start(row, definition, c.name, f"{sandbox_id}-c{index}-0", init=False)
            await self._save(row, generation=generation)

    async def _pull(self, definition: GroupDefinition, image: str, lease: str) -> _Image:
        credentials = self._credentials(definition)
        resolved, credential = await self._access.check_with_credential(definition.name, image, credentials)
        try:
            image_pulled: PulledImage = await self._access.source.pull(
                resolved.pinned, credential, lease=lease if self._leases is not None else None
            )
        except PullFailure as failure:
            # Check again for the diagnosed error; if the image is fine now, classify the pull's.
            raise await self._access.pull_error(definition.name, image, credentials, failure) from failure
        finally:
            # A pull frees ~100 MiB of transfer buffers that glibc would otherwise keep.
            await asyncio.to_thread(memory.trim)
        return _Image(
            image_pulled.image.config_descriptor.digest,
            [[layer.digest, layer.media_type, layer.diff_id] for layer in image_pulled.layers],
        )

    def _sandbox_spec(self, definition: GroupDefinition, sandbox_id: str) -> SandboxSpec:
        ports: list[PortMapping] = []
        if definition.ip_address is not None:
            ports = [
                PortMapping(p.port, p.protocol, host_port=p.port, host_ip="127.0.0.1")
                for p in definition.ip_address.ports
            ]
        volumes = [
            Volume(v.name, "secret", dict(v.secret)) if v.kind == "secret" else Volume(v.name, "emptyDir")
            for v in definition.volumes
            if v.kind in ("secret", "emptyDir")
        ]
        dns = definition.dns_config
        return SandboxSpec(
            id=sandbox_id,
            hostname=definition.name,
            ports=ports,
            dns_servers=dns.name_servers if dns else (),
            dns_search=dns.search_domains if dns else (),
            volumes=volumes,
        )

    async def _create_and_start(
        self, row: _Row, definition: GroupDefinition, name: str, container_id: str, *, init: bool
    ) -> None:
        view = row.container(name, init=init)
        spec = await self._container_spec(
            definition, view, name, container_id, str(row.sandbox_id), init=init, group_id=row.id
        )
        await self._runtime.create(spec)
        view["_id"] = container_id
        self._event(view, "Created", f"Created container with docker id {container_id}")
        started = await self._runtime.start(container_id)
        self._event(view, "Started", f"Started container with docker id {container_id}")
        view["currentState"] = {
            "state": RUNNING,
            "startTime": isoformat(started.started_at or self._clock.now()),
            "detailStatus": "",
        }

    async def _container_spec(
        self,
        definition: GroupDefinition,
        view: dict[str, Any],
        name: str,
        container_id: str,
        sandbox_id: str,
        *,
        init: bool,
        group_id: str,
    ) -> ContainerSpec:
        image = _Image.from_json(view.get("_image"))
        if image is None:
            raise InvalidArgument(
                f"The image of container '{name}' has not been pulled.", code="ImageNotPulled"
            )
        config = json.loads(await self._blobs.read_all(image.config))
        lowers = await self._lowers(image)
        if init:
            spec_of = next(c for c in definition.init_containers if c.name == name)
            command, env_vars, volume_mounts = (
                spec_of.command,
                spec_of.environment_variables,
                spec_of.volume_mounts,
            )
            security, resources = spec_of.security_context, Resources()
        else:
            c = next(c for c in definition.containers if c.name == name)
            command, env_vars, volume_mounts = c.command, c.environment_variables, c.volume_mounts
            security = c.security_context
            resources = Resources(
                cpu=c.resources.cpu_limit, memory_bytes=int(c.resources.memory_limit_in_gb * GIB)
            )
        env = [f"{e.name}={e.effective_value}" for e in env_vars]
        if self._identity_env is not None and has_identity(definition.identity):
            # The platform's variables come last and win; they never enter the stored body.
            env += [f"{k}={v}" for k, v in self._identity_env.environment(group_id, sandbox_id).items()]
        process = image_process(config if isinstance(config, dict) else {}, command=command, env=env)
        user, privileges = _apply_security_context(process.user, security)
        binds: list[Mount] = []
        mounts: list[VolumeMount] = []
        for vm in volume_mounts:
            volume = definition.volume(vm.name)
            if volume is not None and volume.kind == "gitRepo":
                binds.append(Mount(self._git_dir(sandbox_id, volume), vm.mount_path, vm.read_only))
            else:
                mounts.append(VolumeMount(vm.name, vm.mount_path, vm.read_only))
        return ContainerSpec(
            id=container_id,
            sandbox_id=sandbox_id,
            rootfs_layers=lowers,
            args=process.args,
            env=process.env,
            cwd=process.cwd,
            user=user,
            mounts=binds,
            volume_mounts=mounts,
            resources=resources,
            stop_grace_s=self._stop_grace_s,
            security=privileges,
        )

    async def _lowers(self, image: _Image) -> list[Path]:
        """The image's snapshot directories (top first), unpacking the layers that are missing."""
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        spooled: list[Path] = []
        openers: list[tuple[Callable[[], BinaryIO], str]] = []
        diff_ids: list[str] = []
        try:
            for digest, media_type, diff_id in image.layers:
                diff_ids.append(diff_id)
                chain = Snapshotter.chain_id(diff_ids)
                if self._snapshots.lowerdir(chain).exists():
                    openers.append((_no_opener, diff_id))
                    continue
                path = self._spool_dir / f"{uuid.uuid4().hex}.layer"
                await self._spool(digest, path)
                spooled.append(path)
                openers.append((_opener(path, media_type), diff_id))
            return await self._snapshots.prepare(openers)
        finally:
            for path in spooled:
                path.unlink(missing_ok=True)

    async def _spool(self, digest: str, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            async for chunk in self._blobs.read(digest):
                handle.write(chunk)

    # -- gitRepo volumes

    def _git_dir(self, sandbox_id: str, volume: VolumeDefinition) -> Path:
        return self._volumes_dir / sandbox_id / volume.name

    async def _clone_git_volumes(self, definition: GroupDefinition, sandbox_id: str) -> None:
        for volume in definition.volumes:
            if volume.kind != "gitRepo" or volume.git_repo is None:
                continue
            target = self._git_dir(sandbox_id, volume)
            target.mkdir(parents=True, mode=0o755)
            repo = volume.git_repo
            # Like Kubernetes' gitRepo: '.' clones into the volume itself, a name into that
            # subdirectory, nothing into the directory git names after the repository.
            argv = ["git", "clone", "--quiet", "--", repo.repository]
            if repo.directory:
                argv.append(repo.directory)
            await self._git(volume, argv, cwd=target)
            if repo.revision:
                checkout = target / (repo.directory or "")
                if not repo.directory:
                    cloned = [p for p in target.iterdir() if p.is_dir()]
                    checkout = cloned[0] if len(cloned) == 1 else target
                await self._git(volume, ["git", "checkout", "--quiet", repo.revision, "--"], cwd=checkout)

    async def _git(self, volume: VolumeDefinition, argv: Sequence[str], *, cwd: Path) -> None:
        home = tempfile.mkdtemp(prefix="moorage-git-")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,  # neither the host's git config nor its credentials
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/true",
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), GIT_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                out = b"timed out"
        except OSError as exc:
            raise GitRepoCloneFailed(f"git could not be run for volume '{volume.name}': {exc}") from exc
        finally:
            shutil.rmtree(home, ignore_errors=True)
        if proc.returncode != 0:
            text = out.decode(errors="replace").strip()[-500:]
            raise GitRepoCloneFailed(
                f"The git repo volume '{volume.name}' could not be prepared: {text}", target=volume.name
            )

    # -- teardown

    async def _teardown(self, row: _Row, *, reason: str) -> None:
        """Stop and remove the group's current containers and sandbox (if any)."""
        if row.sandbox_id is None:
            return
        running = [
            (section, name, view)
            for section in ("initContainers", "containers")
            for name, view in row.views.get(section, {}).items()
            if view.get("_id") and (view.get("currentState") or {}).get("state") == RUNNING
        ]
        if reason != "delete":

            async def stop(view: dict[str, Any]) -> None:
                container_id = str(view["_id"])
                self._event(view, "Killing", f"Killing container with id {container_id}.")
                try:
                    state = await self._runtime.stop(container_id, self._stop_grace_s)
                except ContainerNotFound:
                    return
                view["previousState"] = None
                view["currentState"] = self._terminated(view, state)

            await asyncio.gather(*(stop(view) for _, _, view in running))
        await self._remove_sandbox(row.sandbox_id)
        row.sandbox_id = None
        row.ip = None

    async def _remove_sandbox(self, sandbox_id: str) -> None:
        await self._runtime.delete_sandbox(sandbox_id)
        await asyncio.to_thread(shutil.rmtree, self._volumes_dir / sandbox_id, True)

    # ------------------------------------------------------------------ supervision

    def _start_watchers(self, row: _Row, definition: GroupDefinition) -> int:
        """A watcher for every container of the row that is not terminated and has none alive;
        returns how many were started."""
        tasks = self._watchers.setdefault(row.key, {})
        started = 0
        for c in definition.containers:
            view = row.container(c.name)
            container_id = view.get("_id")
            if not container_id or (view.get("currentState") or {}).get("state") == TERMINATED:
                continue
            if c.name in tasks:
                continue
            probes = ContainerProbes(
                liveness=c.liveness_probe,
                readiness=c.readiness_probe,
                ip=row.ip,
                secrets=tuple(e.secure_value for e in c.environment_variables if e.secure_value),
            )
            task = asyncio.create_task(
                self._watch(row.key, c.name, str(container_id), row.generation, probes),
                name=f"watch-{container_id}",
            )
            tasks[c.name] = task
            task.add_done_callback(functools.partial(_forget, tasks, c.name))
            started += 1
        return started

    async def _stop_watchers(self, key: str) -> None:
        tasks = list(self._watchers.pop(key, {}).values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(
        self, key: str, name: str, container_id: str, generation: int, probes: ContainerProbes
    ) -> None:
        """Wait for the container's exits (probing it meanwhile) and apply the restart policy,
        until the group changes."""
        try:
            while True:
                state, unhealthy = await self._supervise(key, name, container_id, generation, probes)
                delay = await self._exited(key, name, container_id, generation, state, unhealthy=unhealthy)
                if delay is None:
                    return
                await asyncio.sleep(delay)
                restarted = await self._restart_container(key, name, container_id, generation)
                if restarted is None:
                    return
                container_id = restarted
        except _Superseded:
            return
        except MoorageError as error:
            log.warning("container supervision stopped", group=key, container=name, error=error.message)
        except Exception:
            log.exception("container supervision failed", group=key, container=name)

    async def _supervise(
        self, key: str, name: str, container_id: str, generation: int, probes: ContainerProbes
    ) -> tuple[ContainerState | None, bool]:
        """Run the container's probes until it exits; when liveness fails, kill it (like
        kubelet: Killing, then SIGTERM and the grace period). Returns the exit state (``None``
        when the container is gone) and whether liveness killed it."""

        async def report(failure: ProbeFailure) -> None:
            async with self._lock(key):
                row = await self._load(key)
                if row is None or row.generation != generation:
                    return  # overtaken: the watcher learns it from its next write
                view = row.container(name)
                if view.get("_id") != container_id:
                    return
                self._event(view, "Unhealthy", failure.message, "Warning")
                with contextlib.suppress(_Superseded):
                    await self._save(row, generation=generation)

        prober = ContainerProber(self._runtime, container_id, probes, report)
        try:
            outcome = await prober.until_exit(self._runtime.wait(container_id))
        except ContainerNotFound:
            return None, False
        if isinstance(outcome, ContainerState):
            return outcome, False
        async with self._lock(key):
            row = await self._load(key)
            if row is None or row.generation != generation:
                raise _Superseded
            view = row.container(name)
            if view.get("_id") != container_id:
                raise _Superseded
            will = ", will be restarted" if self._definition(row).restart_policy != "Never" else ""
            self._event(view, "Killing", f"Container {name} failed liveness probe{will}")
            await self._save(row, generation=generation)
        try:
            return await self._runtime.stop(container_id, self._stop_grace_s), True
        except ContainerNotFound:
            return None, True

    async def _exited(
        self,
        key: str,
        name: str,
        container_id: str,
        generation: int,
        state: ContainerState | None,
        *,
        unhealthy: bool = False,
    ) -> float | None:
        """Record an exit; the back-off before a restart, or ``None`` when the container stays
        terminated. A container that liveness killed (``unhealthy``) is restarted unless the
        policy is ``Never``, whatever its exit code (kubelet's rule)."""
        async with self._lock(key):
            row = await self._load(key)
            if row is None or row.generation != generation:
                raise _Superseded
            view = row.container(name)
            if view.get("_id") != container_id:
                raise _Superseded
            definition = self._definition(row)
            terminated = self._terminated(view, state)
            exit_code = terminated.get("exitCode")
            policy = definition.restart_policy
            restart = policy == "Always" or (policy == "OnFailure" and (exit_code != 0 or unhealthy))
            if not restart:
                view["currentState"] = terminated
                row.state = self._group_state(row, definition)
                await self._save(row, generation=generation)
                return None
            delay = min(self._backoff_base_s * 2.0 ** int(view.get("restartCount", 0)), self._backoff_max_s)
            view["previousState"] = terminated
            view["currentState"] = {"state": WAITING, "detailStatus": "CrashLoopBackOff: Back-off restarting"}
            self._event(view, "BackOff", "Back-off restarting failed container")
            await self._save(row, generation=generation)
            return delay

    async def _restart_container(self, key: str, name: str, old_id: str, generation: int) -> str | None:
        async with self._lock(key):
            row = await self._load(key)
            if row is None or row.generation != generation or row.sandbox_id is None:
                raise _Superseded
            view = row.container(name)
            if view.get("_id") != old_id:
                raise _Superseded
            definition = self._definition(row)
            index = next(i for i, c in enumerate(definition.containers) if c.name == name)
            attempt = int(view.get("restartCount", 0)) + 1
            with contextlib.suppress(ContainerNotFound):
                await self._runtime.delete(old_id)
            new_id = f"{row.sandbox_id}-c{index}-{attempt}"
            with contextlib.suppress(ContainerNotFound):
                await self._runtime.delete(new_id)  # debris of an interrupted restart
            await self._create_and_start(row, definition, name, new_id, init=False)
            view["restartCount"] = attempt
            row.state = self._group_state(row, definition)
            await self._save(row, generation=generation)
            return new_id

    def _terminated(self, view: dict[str, Any], state: ContainerState | None) -> dict[str, Any]:
        current = view.get("currentState") or {}
        exit_code = state.exit_code if state is not None else None
        finished = state.finished_at if state is not None and state.finished_at else self._clock.now()
        terminated: dict[str, Any] = {
            "state": TERMINATED,
            "startTime": current.get("startTime"),
            "exitCode": exit_code,
            "finishTime": isoformat(finished),
            "detailStatus": "Completed"
            if exit_code == 0
            else ("OOMKilled" if state and state.oom_killed else "Error"),
        }
        return terminated

    @staticmethod
    def _group_state(row: _Row, definition: GroupDefinition) -> str:
        if row.desired == STOPPED:
            return STOPPED
        views = [row.container(c.name) for c in definition.containers]
        states = [(v.get("currentState") or {}) for v in views]
        if not views or any(s.get("state") != TERMINATED for s in states):
            return RUNNING
        if definition.restart_policy == "Never" and any(s.get("exitCode") != 0 for s in states):
            return FAILED
        return SUCCEEDED

    # ------------------------------------------------------------------ start-up and shutdown

    async def _provisioned_rows(self) -> list[_Row]:
        """Groups that should run and were provisioned."""
        async with self._store.connect() as conn:
            return [
                self._row(r)
                for r in await conn.execute(
                    sa.select(groups).where(
                        groups.c.desired == RUNNING, groups.c.provisioning_state == SUCCEEDED
                    )
                )
            ]

    async def resume(self) -> int:
        """Re-attach watchers to the containers of every running group; provision again the
        groups whose sandbox is gone. Returns how many groups were resumed."""
        rows = await self._provisioned_rows()
        sandboxes = {s.id for s in await self._runtime.sandboxes()}
        for row in rows:
            definition = self._definition(row)
            if row.sandbox_id in sandboxes:
                self._start_watchers(row, definition)
                continue
            if row.state in (SUCCEEDED, FAILED):
                continue  # ran to completion: nothing to bring back
            generation = await self._bump(row.key, desired=RUNNING)
            self._spawn(self._reprovision(row.id, generation))
        return len(rows)

    async def supervise(self) -> int:
        """The periodic complement of :meth:`resume`, run after each reconciliation round of the
        runtime: every container of a running group that is not terminated gets a watcher if it
        has none alive (its watcher ended on an error). The new watcher handles at once an exit
        that happened meanwhile (e.g. one the reconciler recorded), so that the instance view,
        the events, the restart policy and the group state follow. Groups being worked on (their
        lock is held: provisioning, stop, delete) are left to that work. Returns how many
        watchers it started."""
        started = 0
        for row in await self._provisioned_rows():
            watched = self._watchers.get(row.key, {})
            unwatched = [
                name
                for name, view in (row.views.get("containers") or {}).items()
                if view.get("_id")
                and (view.get("currentState") or {}).get("state") != TERMINATED
                and name not in watched
            ]
            lock = self._lock(row.key)
            if not unwatched or lock.locked():
                continue
            async with lock:
                fresh = await self._load(row.key)
                if (
                    fresh is None
                    or fresh.generation != row.generation
                    or fresh.desired != RUNNING
                    or fresh.provisioning_state != SUCCEEDED
                ):
                    continue
                count = self._start_watchers(fresh, self._definition(fresh))
            if count:
                log.warning("container supervision resumed", group=row.id, watchers=count)
            started += count
        return started

    async def _reprovision(self, resource_id: str, generation: int) -> None:
        try:
            await self.provision(resource_id, generation)
        except MoorageError as error:
            log.warning("could not provision container group again", group=resource_id, error=error.message)
        except Exception:
            log.exception("could not provision container group again", group=resource_id)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Stop supervising (containers keep running: the next start re-attaches)."""
        tasks = [t for ts in self._watchers.values() for t in ts.values()] + list(self._background)
        self._watchers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ persistence

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    @staticmethod
    def _sandbox_id(key: str, generation: int) -> str:
        return f"cg-{_hash(key, 16)}-{generation}"

    @staticmethod
    def _lease_id(key: str) -> str:
        return f"cg-{_hash(key, 32)}"

    def _event(self, view: dict[str, Any], name: str, message: str, type_: str = "Normal") -> None:
        """Record an event, aggregating repeats (same name, message and type) into ``count``."""
        now = isoformat(self._clock.now())
        events: list[dict[str, Any]] = view.setdefault("events", [])
        for event in events:
            if (event["name"], event["message"], event["type"]) == (name, message, type_):
                event["count"] += 1
                event["lastTimestamp"] = now
                return
        events.append(
            {
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "name": name,
                "message": message,
                "type": type_,
            }
        )
        del events[:-MAX_EVENTS]

    @staticmethod
    def _reset_views(row: _Row, definition: GroupDefinition) -> None:
        """Fresh instance views for a new generation; events of containers that stay are kept."""
        old = row.views
        row.views = {"containers": {}, "initContainers": {}}
        for section, members in (
            ("initContainers", [c.name for c in definition.init_containers]),
            ("containers", [c.name for c in definition.containers]),
        ):
            for name in members:
                view = _fresh_view()
                view["events"] = list((old.get(section, {}).get(name) or {}).get("events") or [])
                view["currentState"] = {"state": WAITING, "detailStatus": ""}
                row.views[section][name] = view

    def _definition(self, row: _Row) -> GroupDefinition:
        body = json.loads(self._sealer.unseal(row.sealed_body))
        return parse_group(body, name=row.name, api_version=row.api_version, location_default=row.location)

    async def _load(self, key: str) -> _Row | None:
        async with self._store.connect() as conn:
            found = (await conn.execute(sa.select(groups).where(groups.c.key == key))).first()
        return self._row(found) if found is not None else None

    async def _require_row(self, key: str) -> _Row:
        row = await self._load(key)
        if row is None:
            raise ContainerGroupNotFound(f"The container group '{key}' was not found.")
        return row

    @staticmethod
    def _row(r: Any) -> _Row:
        return _Row(
            key=r.key,
            id=r.id,
            subscription_id=r.subscription_id,
            resource_group_key=r.resource_group_key,
            name=r.name,
            location=r.location,
            tags=dict(r.tags or {}),
            api_version=r.api_version,
            sealed_body=r.sealed_body,
            desired=r.desired,
            provisioning_state=r.provisioning_state,
            state=r.state,
            generation=r.generation,
            sandbox_id=r.sandbox_id,
            ip=r.ip,
            views=dict(r.containers or {}),
            events=list(r.events or []),
            error=r.error,
            created_at=r.created_at,
            changed_at=r.changed_at,
            resource_group=r.id.split("/")[4] if r.id.count("/") >= 4 else r.resource_group_key,
        )

    def _public(self, row: _Row) -> ContainerGroup:
        return ContainerGroup(
            id=row.id,
            name=row.name,
            subscription_id=row.subscription_id,
            resource_group=row.resource_group,
            location=row.location,
            tags=row.tags,
            api_version=row.api_version,
            definition=self._definition(row),
            desired=row.desired,
            provisioning_state=row.provisioning_state,
            state=row.state,
            generation=row.generation,
            ip=row.ip,
            containers=row.views,
            events=row.events,
            error=row.error,
            created_at=row.created_at,
            changed_at=row.changed_at,
        )

    async def _save(self, row: _Row, *, generation: int) -> None:
        """Write the status columns, if the group is still at ``generation`` (else _Superseded)."""
        now = self._clock.now()
        async with self._store.begin() as conn:
            result = await conn.execute(
                groups.update()
                .where(groups.c.key == row.key, groups.c.generation == generation)
                .values(
                    provisioning_state=row.provisioning_state,
                    state=row.state,
                    sandbox_id=row.sandbox_id,
                    ip=row.ip,
                    containers=row.views,
                    events=row.events,
                    error=row.error,
                    changed_at=now,
                )
            )
        if not result.rowcount:
            raise _Superseded


def _apply_security_context(
    image_user: str | None, context: SecurityContextDefinition | None
) -> tuple[str | None, ContainerSecurity]:
    """The process user (``uid[:gid]`` or the image's ``name[:group]``) and privileges for a
    container's ``securityContext``: ``runAsUser`` replaces the image's user (and its group: the
    uid's primary group applies), ``runAsGroup`` replaces the group; capabilities are added to and
    dropped from the default set; ``allowPrivilegeEscalation: false`` sets no-new-privileges."""
    if context is None:
        return image_user, ContainerSecurity()
    user = image_user
    if context.run_as_user is not None or context.run_as_group is not None:
        name, _, group = (image_user or "0").partition(":")
        if context.run_as_user is not None:
            # A uid without a group gets its primary group from the image's /etc/passwd (or 0).
            name, group = str(context.run_as_user), ""
        if context.run_as_group is not None:
            group = str(context.run_as_group)
        user = f"{name}:{group}" if group else name
    privileges = ContainerSecurity(
        capabilities_add=context.capabilities_add,
        capabilities_drop=context.capabilities_drop,
        no_new_privileges=context.allow_privilege_escalation is False,
    )
    return user, privileges


def _forget(tasks: dict[str, asyncio.Task[None]], name: str, task: asyncio.Task[None]) -> None:
    """Done-callback of a watcher: drop it from its group's table (unless replaced already)."""
    if tasks.get(name) is task:
        del tasks[name]


def _why(error: MoorageError) -> str:
    """The registry's own words for a failed pull (the diagnosis evidence), else the message."""
    for info in error.additional_info:
        if info.type == DIAGNOSIS_TYPE:
            evidence = info.info.get("evidence") or {}
            text = evidence.get("registryMessage")
            code = evidence.get("registryCode")
            if text:
                return f"{str(code).lower()}: {text}" if code else str(text)
            summary = info.info.get("summary")
            if summary:
                return str(summary)
    return error.message


def _no_opener() -> BinaryIO:  # pragma: no cover - never called: the snapshot exists
    raise RuntimeError("a prepared snapshot's layer was opened")


def _opener(path: Path, media_type: str) -> Callable[[], BinaryIO]:
    def open_stream() -> BinaryIO:
        return open_layer(path, media_type)

    return open_stream
