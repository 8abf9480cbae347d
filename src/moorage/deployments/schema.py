"""Deployment tables and migrations.

One row per deployment (its resource id lower-cased is the key) and one row per deployment
operation. The request — template and parameters — is kept **sealed**, because parameters of
type ``securestring``/``secureObject`` are secrets that must survive a restart (a deployment
in flight is resumed) but never be shown; what GET shows is kept in plain columns, with secure
parameter values already removed.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.store.meta import Migration, UtcDateTime

metadata = sa.MetaData()

deployments = sa.Table(
    "deployments_deployments",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),  # lower-cased resource id
    sa.Column("id", sa.Text, nullable=False),
    sa.Column("subscription_id", sa.String(36), nullable=False, index=True),
    sa.Column("resource_group_key", sa.Text, nullable=True, index=True),  # lower-cased; None: sub scope
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("location", sa.Text, nullable=True),
    sa.Column("tags", sa.JSON, nullable=True),
    sa.Column("sealed_request", sa.Text, nullable=False),
    sa.Column("caller", sa.JSON, nullable=False),  # opaque to deployments: the ARM caller's claims
    # The public view: mode, parameters without secure values, templateHash, and progress.
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("provisioning_state", sa.String(16), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("changed_at", UtcDateTime(), nullable=False),
)

operations = sa.Table(
    "deployments_operations",
    metadata,
    sa.Column("deployment_key", sa.Text, primary_key=True),
    sa.Column("operation_id", sa.String(16), primary_key=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("properties", sa.JSON, nullable=False),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[deployments, operations])


MIGRATIONS = (Migration("deployments", 1, "deployments and deployment operations", _v1),)
