"""Support bundles: what Azure's support asks for about a failed container group or deployment,
in one ``tar.gz``, with every secret redacted (:mod:`moorage.diagnose.redaction`).

This module only shapes and writes; the CLI collects the documents over HTTP. Every document
goes through :func:`~moorage.diagnose.redaction.redact` on its way into the archive, and the
archive's ``manifest.json`` lists what it holds.

:func:`export_group_template` turns a container group as GET shows it into the template ARM's
*export template* produces: the resource with its name as a parameter, without what the
platform owns (``provisioningState``, ``instanceView``, the assigned IP) or could not show
(secrets are never in a GET body; anything secret-looking left is redacted anyway).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moorage.diagnose.redaction import redact, redact_text

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"
_PLATFORM_OWNED = ("provisioningState", "instanceView")
_CONTAINER_OWNED = ("instanceView",)


def export_group_template(group: dict[str, Any], api_version: str) -> dict[str, Any]:
    """ARM's exported template of one container group GET body."""
    name = str(group.get("name") or "group")
    parameter = "containerGroups_" + re.sub(r"[^A-Za-z0-9_]", "_", name) + "_name"
    resource: dict[str, Any] = {
        "type": GROUP_TYPE,
        "apiVersion": api_version,
        "name": f"[parameters('{parameter}')]",
        "location": group.get("location"),
    }
    if group.get("tags"):
        resource["tags"] = group["tags"]
    identity = group.get("identity")
    if isinstance(identity, dict) and identity.get("type"):
        exported: dict[str, Any] = {"type": identity["type"]}
        users = identity.get("userAssignedIdentities")
        if isinstance(users, dict) and users:
            exported["userAssignedIdentities"] = {uid: {} for uid in users}
        resource["identity"] = exported
    properties = {k: v for k, v in dict(group.get("properties") or {}).items() if k not in _PLATFORM_OWNED}
    for section in ("containers", "initContainers"):
        items = properties.get(section)
        if isinstance(items, list):
            properties[section] = [_exported_container(c) for c in items]
    address = properties.get("ipAddress")
    if isinstance(address, dict):
        properties["ipAddress"] = {k: v for k, v in address.items() if k not in ("ip", "fqdn")}
    credentials = properties.get("imageRegistryCredentials")
    if isinstance(credentials, list):
        properties["imageRegistryCredentials"] = [
            {k: v for k, v in c.items() if k != "password"} if isinstance(c, dict) else c for c in credentials
        ]
    resource["properties"] = properties
    exported_template: dict[str, Any] = redact(
        {
            "$schema": SCHEMA,
            "contentVersion": "1.0.0.0",
            "parameters": {parameter: {"defaultValue": name, "type": "String"}},
            "variables": {},
            "resources": [resource],
        }
    )
    return exported_template


def _exported_container(container: Any) -> Any:
    if not isinstance(container, dict):
        return container
    props = {k: v for k, v in dict(container.get("properties") or {}).items() if k not in _CONTAINER_OWNED}
    env = props.get("environmentVariables")
    if isinstance(env, list):
        # Export leaves secure values out, as a GET does.
        props["environmentVariables"] = [
            {k: v for k, v in e.items() if k != "secureValue" or v} if isinstance(e, dict) else e for e in env
        ]
    return {**{k: v for k, v in container.items() if k != "properties"}, "properties": props}


def group_events(group: dict[str, Any]) -> dict[str, Any]:
    """The events of a group GET body (``instanceView``): the group's and each container's."""
    props = group.get("properties") or {}
    view = props.get("instanceView") or {}
    out: dict[str, Any] = {
        "group": list(view.get("events") or []),
        "state": view.get("state"),
        "containers": {},
    }
    for section in ("initContainers", "containers"):
        for container in props.get(section) or []:
            cview = (container.get("properties") or {}).get("instanceView") or {}
            out["containers"][container.get("name")] = {
                "init": section == "initContainers",
                "restartCount": cview.get("restartCount"),
                "currentState": cview.get("currentState"),
                "previousState": cview.get("previousState"),
                "events": list(cview.get("events") or []),
            }
    return out


@dataclass
class Bundle:
    """Documents to archive, by path inside the bundle. ``known`` secrets are scrubbed from every
    one (with the generic rules of :func:`redact`)."""

    root: str
    known: set[str] = field(default_factory=set)
    files: dict[str, bytes] = field(default_factory=dict)

    def add_json(self, path: str, document: Any) -> None:
        text = json.dumps(redact(document, self.known), indent=2, sort_keys=True)
        self.files[path] = (redact_text(text, self.known) + "\n").encode()

    def add_text(self, path: str, text: str) -> None:
        self.files[path] = redact_text(text, self.known).encode()

    def write(self, target: Path, manifest: dict[str, Any]) -> list[str]:
        """Write the archive (``manifest.json`` first); returns the member names."""
        listing = {"files": sorted(self.files), **manifest}
        members = {
            "manifest.json": (json.dumps(redact(listing, self.known), indent=2) + "\n").encode(),
            **self.files,
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        now = time.time()
        with tarfile.open(partial, "w:gz") as archive:
            for path, data in members.items():
                info = tarfile.TarInfo(f"{self.root}/{path}")
                info.size, info.mtime, info.mode = len(data), int(now), 0o600
                archive.addfile(info, io.BytesIO(data))
        partial.replace(target)
        return [f"{self.root}/{p}" for p in members]


def secrets_in(values: Iterable[str | None]) -> set[str]:
    return {v for v in values if v}
