"""Container group tables and migrations.

One row per container group. The request body is kept **sealed** (encrypted with the server's
sealing key) because it holds secrets: registry passwords, secure environment values and secret
volume contents; everything the service re-derives from it (the validated definition) is parsed
again from the unsealed body when needed. What GET shows besides the definition lives in plain
columns: the provisioning state, the group's instance-view state, the per-container state and
events (JSON), the sandbox and its address, and the *generation*, bumped by every change that
re-creates the group's containers (a PUT that changes them, start, restart), so that stale
provisioning work can tell it has been superseded.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.store.meta import Migration, UtcDateTime

metadata = sa.MetaData()

groups = sa.Table(
    "instances_groups",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),  # lower-cased resource id
    sa.Column("id", sa.Text, nullable=False),  # the resource id in the casing of the first PUT
    sa.Column("subscription_id", sa.String(36), nullable=False, index=True),
    sa.Column("resource_group_key", sa.Text, nullable=False, index=True),  # lower-cased name
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("api_version", sa.String(32), nullable=False),
    sa.Column("sealed_body", sa.Text, nullable=False),
    # desired: Running | Stopped (stop/start); state: the instance view's state.
    sa.Column("desired", sa.String(16), nullable=False),
    sa.Column("provisioning_state", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("sandbox_id", sa.String(40), nullable=True),
    sa.Column("ip", sa.String(45), nullable=True),
    # {"containers": {name: view}, "initContainers": {name: view}}; a view holds the runtime
    # container id, restartCount, currentState, previousState and events.
    sa.Column("containers", sa.JSON, nullable=False),
    sa.Column("events", sa.JSON, nullable=False),  # the group's own instanceView events
    sa.Column("error", sa.JSON, nullable=True),  # why the last provisioning failed
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("changed_at", UtcDateTime(), nullable=False),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[groups])


MIGRATIONS = (Migration("instances", 1, "container groups", _v1),)
