"""Registry tables and migrations. Blobs live in the blob store; everything else is here."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moorage.store.meta import Migration, UtcDateTime

metadata = sa.MetaData()

registries = sa.Table(
    "registry_registries",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("display_name", sa.String(50), nullable=False),
    sa.Column("resource_id", sa.Text, nullable=False),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("port", sa.Integer, nullable=False),
    sa.Column("login_host", sa.Text, nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

# Admin passwords must be shown again by listCredentials, so they are sealed (encrypted with the
# server's secret key), not hashed.
admin_passwords = sa.Table(
    "registry_admin_passwords",
    metadata,
    sa.Column(
        "registry",
        sa.String(50),
        sa.ForeignKey("registry_registries.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("sealed", sa.Text, nullable=False),
)

repositories = sa.Table(
    "registry_repositories",
    metadata,
    sa.Column("registry", sa.String(50), primary_key=True),
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

blob_links = sa.Table(
    "registry_blob_links",
    metadata,
    sa.Column("registry", sa.String(50), primary_key=True),
    sa.Column("repository", sa.String(256), primary_key=True),
    sa.Column("digest", sa.String(140), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index("ix_registry_blob_links_digest", "digest"),
)

manifests = sa.Table(
    "registry_manifests",
    metadata,
    sa.Column("registry", sa.String(50), primary_key=True),
    sa.Column("repository", sa.String(256), primary_key=True),
    sa.Column("digest", sa.String(140), primary_key=True),
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("artifact_type", sa.Text, nullable=True),
    sa.Column("subject", sa.String(140), nullable=True),
    sa.Column("config_media_type", sa.Text, nullable=True),
    sa.Column("annotations", sa.JSON, nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index("ix_registry_manifests_subject", "registry", "repository", "subject"),
    sa.Index("ix_registry_manifests_digest", "digest"),
)

# What a manifest references: blobs (config, layers) and, for an index, child manifests.
manifest_refs = sa.Table(
    "registry_manifest_refs",
    metadata,
    sa.Column("registry", sa.String(50), primary_key=True),
    sa.Column("repository", sa.String(256), primary_key=True),
    sa.Column("manifest", sa.String(140), primary_key=True),
    sa.Column("target", sa.String(140), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),  # blob | manifest
    sa.Index("ix_registry_manifest_refs_target", "target"),
)

tags = sa.Table(
    "registry_tags",
    metadata,
    sa.Column("registry", sa.String(50), primary_key=True),
    sa.Column("repository", sa.String(256), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("digest", sa.String(140), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

uploads = sa.Table(
    "registry_uploads",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("registry", sa.String(50), nullable=False),
    sa.Column("repository", sa.String(256), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
)

scope_maps = sa.Table(
    "registry_scope_maps",
    metadata,
    sa.Column("registry", sa.String(50), primary_key=True),
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("actions", sa.JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("builtin", sa.Boolean, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

tokens = sa.Table(
    "registry_tokens",
    metadata,
    sa.Column("registry", sa.String(50), primary_key=True),
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("scope_map", sa.String(50), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    # [{name, hash, created_at, expires_at}] — salted hashes only.
    sa.Column("passwords", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS = (Migration("registry", 1, "registries, repositories, manifests, tags, uploads, tokens", _v1),)
