"""Identity tables and their migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.store.meta import Migration, UtcDateTime

metadata = sa.MetaData()

tenants = sa.Table(
    "identity_tenants",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

principals = sa.Table(
    "identity_principals",
    metadata,
    sa.Column("object_id", sa.String(36), primary_key=True),
    sa.Column("app_id", sa.String(36), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(36), sa.ForeignKey("identity_tenants.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    # ARM id of a managed identity, lower-cased for lookups; original casing kept in resource_id.
    sa.Column("resource_key", sa.Text, nullable=True, unique=True),
    sa.Column("resource_id", sa.Text, nullable=True),
    sa.Column("directory_roles", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

secrets = sa.Table(
    "identity_secrets",
    metadata,
    sa.Column("key_id", sa.String(36), primary_key=True),
    sa.Column(
        "object_id",
        sa.String(36),
        sa.ForeignKey("identity_principals.object_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("hint", sa.String(8), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
)

role_assignments = sa.Table(
    "identity_role_assignments",
    metadata,
    sa.Column("name", sa.String(36), primary_key=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("scope_key", sa.Text, nullable=False, index=True),
    sa.Column("role_definition_id", sa.String(36), nullable=False),
    sa.Column("principal_id", sa.String(36), nullable=False, index=True),
    sa.Column("principal_type", sa.String(32), nullable=False),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("condition", sa.Text, nullable=True),
    sa.Column("condition_version", sa.String(8), nullable=True),
    sa.Column("created_by", sa.String(36), nullable=True),
    sa.Column("created_on", UtcDateTime(), nullable=False),
    sa.Column("updated_on", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("scope_key", "role_definition_id", "principal_id", name="uq_assignment"),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[tenants, principals, secrets, role_assignments])


MIGRATIONS = (Migration("identity", 1, "tenants, principals, secrets, role assignments", _v1),)
