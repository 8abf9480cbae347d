"""Typed settings. The only module that reads ``os.environ``.

Every setting has an embedded default so that ``moorage serve`` runs with no configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

from moorage.core.errors import InvalidArgument

DEFAULT_PORT = 8443
DEFAULT_LOCATION = "westus"
# Azure Container Apps' identity endpoint port (http://localhost:42356/msi/token there).
DEFAULT_IDENTITY_ENDPOINT_PORT = 42356
# Lower-case letters and digits only, so that no prefix is a dash-extension of another (runc
# container names are "<prefix>-<id>"), and short enough for the bridge name "<prefix>0".
_RUNTIME_PREFIX = re.compile(r"[a-z][a-z0-9]{0,13}")


@dataclass(frozen=True)
class Settings:
    """Server settings.

    ``home`` holds everything moorage writes: the metadata database, the CA and server
    certificate, signing keys, logs and ``connection.json``.
    """

    home: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Extra DNS names / IP addresses for the server certificate (beyond localhost and loopback).
    tls_names: tuple[str, ...] = ()
    # Public base URL used for token issuers and metadata when the request's Host is not
    # available; by default derived from host and port once bound.
    public_url: str | None = None
    database_url: str | None = None
    log_level: str = "info"
    default_location: str = DEFAULT_LOCATION
    access_token_lifetime_s: int = 3600
    lro_step_s: float = 0.2
    # Registries: blob backend, the host part of login servers, firewall audit mode, proxies
    # whose X-Forwarded-For is believed, and the address platform pulls are judged as.
    blob_store: str = "filesystem"
    registry_host: str | None = None
    registry_firewall_audit: bool = False
    trusted_proxies: tuple[str, ...] = ()
    platform_address: str = "100.64.0.1"
    registry_upload_ttl_s: int = 24 * 3600
    # Registries (by name) where anonymous clients may pull, push and delete: for running the
    # OCI conformance suite without authentication, or throwaway local use. Empty by default.
    open_registries: tuple[str, ...] = ()
    registry_gc_interval_s: int = 3600
    # Container groups: the runtime (auto: runc when root with runc and conmon installed, else the
    # in-memory fake), and the names its host objects carry. Two servers on one host need
    # different prefixes and subnets: the runc backend's reconciler removes every object carrying
    # its prefix that it has no record of. The prefix also names the bridge (<prefix>0) and the
    # nftables table (<prefix>).
    runtime: str = "auto"
    runtime_prefix: str = "moorage"
    runtime_subnet: str = "10.88.0.0/16"
    # How long an exec/attach session (webSocketUri + password) stays usable when unused.
    exec_session_ttl_s: int = 120
    # The managed-identity endpoint containers reach on the bridge's gateway address (runc only);
    # 0 picks a free port at each start (containers created before a restart then lose it).
    identity_endpoint_port: int = DEFAULT_IDENTITY_ENDPOINT_PORT
    # Seconds between reconciliation rounds of the runc backend while the server runs (adopt,
    # record exits, remove debris; start-up always runs one); 0 disables the periodic rounds.
    runtime_reconcile_interval_s: float = 60.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.home / 'moorage.db'}"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def ca_path(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "moorage.log"

    @property
    def connection_file(self) -> Path:
        return self.home / "connection.json"

    def with_overrides(self, **changes: object) -> Settings:
        clean = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **clean)  # type: ignore[arg-type]


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """``MOORAGE_HOME`` or the per-user data directory."""
    env = os.environ if env is None else env
    explicit = env.get("MOORAGE_HOME")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return Path(platformdirs.user_data_dir("moorage")).resolve()


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{name} must be an integer, got {raw!r}", code="InvalidSetting") from exc


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if not 0 <= value <= 65535:
        raise InvalidArgument(f"{name} must be a port number 0-65535, got {value}", code="InvalidSetting")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A non-negative number of seconds (fractions allowed)."""
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):  # also rejects nan
        raise InvalidArgument(
            f"{name} must be a non-negative number of seconds, got {raw!r}", code="InvalidSetting"
        )
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (case-insensitive); the first is the default."""
    raw = env.get(name, "").strip().lower() or allowed[0]
    if raw not in allowed:
        raise InvalidArgument(
            f"{name} must be one of {', '.join(allowed)}, got {raw!r}", code="InvalidSetting"
        )
    return raw


def _pattern(env: Mapping[str, str], name: str, default: str, pattern: re.Pattern[str]) -> str:
    raw = env.get(name, "").strip() or default
    if not pattern.fullmatch(raw):
        raise InvalidArgument(f"{name} must match {pattern.pattern}, got {raw!r}", code="InvalidSetting")
    return raw


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in env.get(name, "").split(",") if n.strip())


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment (``MOORAGE_*``), defaults elsewhere."""
    env = os.environ if env is None else env
    names = _list(env, "MOORAGE_TLS_NAMES")
    return Settings(
        home=default_home(env),
        host=env.get("MOORAGE_HOST", "127.0.0.1"),
        port=_int(env, "MOORAGE_PORT", DEFAULT_PORT),
        tls_names=names,
        public_url=env.get("MOORAGE_PUBLIC_URL") or None,
        database_url=env.get("MOORAGE_DATABASE_URL") or None,
        log_level=env.get("MOORAGE_LOG_LEVEL", "info"),
        default_location=env.get("MOORAGE_DEFAULT_LOCATION", DEFAULT_LOCATION),
        access_token_lifetime_s=_int(env, "MOORAGE_TOKEN_LIFETIME", 3600),
        blob_store=env.get("MOORAGE_BLOB_STORE", "filesystem"),
        registry_host=env.get("MOORAGE_REGISTRY_HOST") or None,
        registry_firewall_audit=env.get("MOORAGE_REGISTRY_FIREWALL_AUDIT", "").lower()
        in ("1", "true", "yes"),
        trusted_proxies=_list(env, "MOORAGE_TRUSTED_PROXIES"),
        platform_address=env.get("MOORAGE_PLATFORM_ADDRESS", "100.64.0.1"),
        registry_upload_ttl_s=_int(env, "MOORAGE_REGISTRY_UPLOAD_TTL", 24 * 3600),
        open_registries=_list(env, "MOORAGE_REGISTRY_OPEN"),
        registry_gc_interval_s=_int(env, "MOORAGE_REGISTRY_GC_INTERVAL", 3600),
        runtime=_choice(env, "MOORAGE_RUNTIME", ("auto", "runc", "fake")),
        runtime_prefix=_pattern(env, "MOORAGE_RUNTIME_PREFIX", "moorage", _RUNTIME_PREFIX),
        runtime_subnet=env.get("MOORAGE_RUNTIME_SUBNET") or "10.88.0.0/16",
        exec_session_ttl_s=_int(env, "MOORAGE_EXEC_SESSION_TTL", 120),
        identity_endpoint_port=_port(env, "MOORAGE_IDENTITY_ENDPOINT_PORT", DEFAULT_IDENTITY_ENDPOINT_PORT),
        runtime_reconcile_interval_s=_seconds(env, "MOORAGE_RUNTIME_RECONCILE_INTERVAL", 60.0),
    )
