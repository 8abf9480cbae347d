"""ARM tables: subscriptions, resource groups, the generic resource index, and operations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.store.meta import Migration, UtcDateTime

metadata = sa.MetaData()

subscriptions = sa.Table(
    "arm_subscriptions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

resource_groups = sa.Table(
    "arm_resource_groups",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),  # lower-cased id
    sa.Column("subscription_id", sa.String(36), sa.ForeignKey("arm_subscriptions.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("tags", sa.JSON, nullable=True),
    sa.Column("managed_by", sa.Text, nullable=True),
    sa.Column("provisioning_state", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("changed_at", UtcDateTime(), nullable=False),
)

# One row per provider resource (tracked or proxy), whatever its type; providers keep the
# resource's public body here and any private state in their own subsystem's tables.
resources = sa.Table(
    "arm_resources",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),  # lower-cased id
    sa.Column("id", sa.Text, nullable=False),
    sa.Column("subscription_id", sa.String(36), nullable=False, index=True),
    sa.Column("resource_group_key", sa.Text, nullable=True, index=True),
    sa.Column("parent_key", sa.Text, nullable=True, index=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("type_key", sa.Text, nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("location", sa.Text, nullable=True),
    sa.Column("tags", sa.JSON, nullable=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("changed_at", UtcDateTime(), nullable=False),
)

operations = sa.Table(
    "arm_operations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("subscription_id", sa.String(36), nullable=False),
    sa.Column("namespace", sa.Text, nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("resource_id", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("params", sa.JSON, nullable=True),
    sa.Column("start_time", UtcDateTime(), nullable=False),
    sa.Column("end_time", UtcDateTime(), nullable=True),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[subscriptions, resource_groups, resources, operations])


MIGRATIONS = (Migration("arm", 1, "subscriptions, resource groups, resources, operations", _v1),)
