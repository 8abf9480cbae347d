"""Persistence of ARM's own objects: subscriptions, resource groups and the resource index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.arm.schema import resource_groups, resources, subscriptions
from moorage.core.clock import Clock
from moorage.store.meta import MetaStore


@dataclass(frozen=True)
class Subscription:
    id: str
    tenant_id: str
    display_name: str
    state: str


@dataclass(frozen=True)
class ResourceGroup:
    subscription_id: str
    name: str
    location: str
    tags: dict[str, str] | None
    managed_by: str | None
    provisioning_state: str

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"


@dataclass(frozen=True)
class StoredResource:
    """A provider resource as indexed by ARM. ``body`` holds everything but id/name/type."""

    id: str
    subscription_id: str
    resource_group: str | None
    type: str
    name: str
    location: str | None
    tags: dict[str, str] | None
    body: dict[str, Any]
    created_at: datetime
    changed_at: datetime


def _rg(row: Row[Any]) -> ResourceGroup:
    return ResourceGroup(
        row.subscription_id, row.name, row.location, row.tags, row.managed_by, row.provisioning_state
    )


def _res(row: Row[Any]) -> StoredResource:
    rg = None
    if row.resource_group_key:
        rg = row.id.split("/")[4]
    return StoredResource(
        row.id,
        row.subscription_id,
        rg,
        row.type,
        row.name,
        row.location,
        row.tags,
        row.body,
        row.created_at,
        row.changed_at,
    )


def rg_key(subscription_id: str, name: str) -> str:
    return f"/subscriptions/{subscription_id}/resourcegroups/{name}".lower()


class ArmStore:
    def __init__(self, store: MetaStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    @property
    def meta(self) -> MetaStore:
        return self._store

    # -- subscriptions --------------------------------------------------------------------------

    async def create_subscription(self, sub: Subscription) -> None:
        async with self._store.begin() as conn:
            await conn.execute(
                subscriptions.insert().values(
                    id=sub.id,
                    tenant_id=sub.tenant_id,
                    display_name=sub.display_name,
                    state=sub.state,
                    created_at=self._clock.now(),
                )
            )

    async def subscription(self, subscription_id: str) -> Subscription | None:
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(subscriptions).where(subscriptions.c.id == subscription_id.lower())
                )
            ).first()
        return Subscription(row.id, row.tenant_id, row.display_name, row.state) if row else None

    async def subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        query = sa.select(subscriptions).order_by(subscriptions.c.created_at)
        if tenant_id:
            query = query.where(subscriptions.c.tenant_id == tenant_id)
        async with self._store.connect() as conn:
            return [
                Subscription(r.id, r.tenant_id, r.display_name, r.state) for r in await conn.execute(query)
            ]

    # -- resource groups ------------------------------------------------------------------------

    async def resource_group(self, subscription_id: str, name: str) -> ResourceGroup | None:
        async with self._store.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(resource_groups).where(resource_groups.c.key == rg_key(subscription_id, name))
                )
            ).first()
        return _rg(row) if row else None

    async def resource_groups(self, subscription_id: str) -> list[ResourceGroup]:
        async with self._store.connect() as conn:
            rows = await conn.execute(
                sa.select(resource_groups)
                .where(resource_groups.c.subscription_id == subscription_id)
                .order_by(resource_groups.c.created_at)
            )
            return [_rg(r) for r in rows]

    async def put_resource_group(self, group: ResourceGroup) -> bool:
        """Insert or update; returns whether it was created."""
        now = self._clock.now()
        key = rg_key(group.subscription_id, group.name)
        async with self._store.begin() as conn:
            exists = (
                await conn.execute(sa.select(resource_groups.c.key).where(resource_groups.c.key == key))
            ).first()
            values = {
                "location": group.location,
                "tags": group.tags,
                "managed_by": group.managed_by,
                "provisioning_state": group.provisioning_state,
                "changed_at": now,
            }
            if exists:
                await conn.execute(
                    resource_groups.update().where(resource_groups.c.key == key).values(**values)
                )
                return False
            await conn.execute(
                resource_groups.insert().values(
                    key=key,
                    subscription_id=group.subscription_id,
                    name=group.name,
                    created_at=now,
                    **values,
                )
            )
            return True

    async def set_resource_group_state(self, subscription_id: str, name: str, state: str) -> None:
        async with self._store.begin() as conn:
            await conn.execute(
                resource_groups.update()
                .where(resource_groups.c.key == rg_key(subscription_id, name))
                .values(provisioning_state=state, changed_at=self._clock.now())
            )

    async def delete_resource_group(self, subscription_id: str, name: str) -> None:
        async with self._store.begin() as conn:
            await conn.execute(
                resource_groups.delete().where(resource_groups.c.key == rg_key(subscription_id, name))
            )

    # -- provider resources ---------------------------------------------------------------------

    async def resource(self, resource_id: str) -> StoredResource | None:
        async with self._store.connect() as conn:
            return await self._resource(conn, resource_id)

    @staticmethod
    async def _resource(conn: AsyncConnection, resource_id: str) -> StoredResource | None:
        row = (await conn.execute(sa.select(resources).where(resources.c.key == resource_id.lower()))).first()
        return _res(row) if row else None

    @classmethod
    async def _written(cls, conn: AsyncConnection, resource_id: str) -> StoredResource:
        stored = await cls._resource(conn, resource_id)
        if stored is None:  # pragma: no cover - written in this same transaction
            raise RuntimeError(f"resource {resource_id} vanished inside its own transaction")
        return stored

    async def put_resource(
        self,
        *,
        resource_id: str,
        subscription_id: str,
        resource_group: str | None,
        type_: str,
        name: str,
        location: str | None,
        tags: dict[str, str] | None,
        body: dict[str, Any],
        parent_id: str | None = None,
    ) -> tuple[StoredResource, bool]:
        """Insert or replace a resource's indexed body; returns it and whether it was created.

        On update the stored id keeps the casing of the original create (as ARM does).
        """
        now = self._clock.now()
        key = resource_id.lower()
        async with self._store.begin() as conn:
            existing = await self._resource(conn, resource_id)
            values = {
                "location": location,
                "tags": tags,
                "body": body,
                "changed_at": now,
            }
            if existing is not None:
                await conn.execute(resources.update().where(resources.c.key == key).values(**values))
                return await self._written(conn, resource_id), False
            await conn.execute(
                resources.insert().values(
                    key=key,
                    id=resource_id,
                    subscription_id=subscription_id.lower(),
                    resource_group_key=rg_key(subscription_id, resource_group) if resource_group else None,
                    parent_key=parent_id.lower() if parent_id else None,
                    type=type_,
                    type_key=type_.lower(),
                    name=name,
                    created_at=now,
                    **values,
                )
            )
            return await self._written(conn, resource_id), True

    async def delete_resource(self, resource_id: str) -> bool:
        async with self._store.begin() as conn:
            result = await conn.execute(resources.delete().where(resources.c.key == resource_id.lower()))
        return bool(result.rowcount)

    async def list_resources(
        self,
        subscription_id: str,
        *,
        resource_group: str | None = None,
        type_: str | None = None,
        parent_id: str | None = None,
        top_level_only: bool = False,
    ) -> list[StoredResource]:
        query = sa.select(resources).where(resources.c.subscription_id == subscription_id.lower())
        if resource_group is not None:
            query = query.where(resources.c.resource_group_key == rg_key(subscription_id, resource_group))
        if type_ is not None:
            query = query.where(resources.c.type_key == type_.lower())
        if parent_id is not None:
            query = query.where(resources.c.parent_key == parent_id.lower())
        if top_level_only:
            query = query.where(resources.c.parent_key.is_(None))
        async with self._store.connect() as conn:
            rows = await conn.execute(query.order_by(resources.c.created_at))
            return [_res(r) for r in rows]

    async def children_of(self, resource_ids: Sequence[str]) -> list[StoredResource]:
        keys = [r.lower() for r in resource_ids]
        async with self._store.connect() as conn:
            rows = await conn.execute(sa.select(resources).where(resources.c.parent_key.in_(keys)))
            return [_res(r) for r in rows]

    async def scope_exists(self, scope: str) -> bool:
        """Whether a subscription, resource group or resource with this id exists."""
        parts = [p for p in scope.split("/") if p]
        if len(parts) < 2 or parts[0].lower() != "subscriptions":
            return False
        if await self.subscription(parts[1]) is None:
            return False
        if len(parts) == 2:
            return True
        if parts[2].lower() != "resourcegroups" or len(parts) < 4:
            return False
        if await self.resource_group(parts[1], parts[3]) is None:
            return False
        return len(parts) == 4 or await self.resource("/" + "/".join(parts)) is not None
