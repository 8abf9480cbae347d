"""``moorage support-bundle``: one ``tar.gz`` with what support asks for about a container group
or a deployment, every secret redacted.

The archive (under one top directory) holds ``manifest.json`` (what is inside, for what, when),
``server.json`` (server version and settings), ``diagnose.json`` and ``diagnose.txt`` (the
diagnosis report), ``registries.json`` (the resource URIs and settings of the registries the
images name), for a deployment ``deployment/deployment.json``, ``deployment/operations.json`` and
``deployment/template.json`` (exportTemplate), and for each container group that exists
``container-groups/<name>/group.json`` (GET), ``template.json`` (exported as ARM's export
template does) and ``events.json`` (its instance view's events). A group a deployment failed to
create has no resource: the manifest says so and the diagnosis covers it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from moorage import __version__
from moorage.cli.command import HomeOption, run
from moorage.cli.diagnose import render
from moorage.client import ApiError, MoorageClient
from moorage.client import diagnose as calls
from moorage.core.errors import MoorageError
from moorage.core.reference import parse_reference
from moorage.diagnose.bundle import Bundle, export_group_template, group_events

REDACTION_NOTE = (
    "Secrets are redacted: passwords, secure values, tokens, keys, secure template parameters and "
    "the client's own credentials are replaced by <redacted>."
)


def _hosts(groups: list[dict[str, Any]], report: dict[str, Any]) -> set[str]:
    """Registry hosts the groups and the report name (images and credential servers)."""
    images = [c.get("image") for c in report.get("checks") or []]
    hosts = set()
    for group in groups:
        props = group.get("properties") or {}
        for section in ("containers", "initContainers"):
            images += [(c.get("properties") or {}).get("image") for c in props.get(section) or []]
        hosts |= {str(c.get("server", "")).lower() for c in props.get("imageRegistryCredentials") or []}
    for image in images:
        if not image:
            continue
        try:
            hosts.add(parse_reference(image).registry.lower())
        except MoorageError:
            continue  # an invalid reference names no registry
    return hosts


async def _registries(client: MoorageClient, hosts: set[str]) -> dict[str, Any]:
    try:
        found = await calls.registries(client)
    except ApiError as error:
        return {"error": {"code": error.code, "message": error.message}}
    named = [
        r
        for r in found
        if str((r.get("properties") or {}).get("loginServer", "")).lower() in hosts
        or f"{str(r.get('name', '')).lower()}.azurecr.io" in hosts
    ]
    return {
        "registries": [
            {"id": r.get("id"), "loginServer": (r.get("properties") or {}).get("loginServer"), "resource": r}
            for r in named
        ],
        "hostsNamed": sorted(hosts),
    }


async def collect(
    client: MoorageClient, ref: str, resource_group: str | None, out: Path | None, kind: str | None = None
) -> dict[str, Any]:
    """Fetch everything, write the archive; ``{"bundle": path, "files": [...]}``."""
    target = await calls.resolve_target(client, ref, resource_group, kind)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    root = f"moorage-support-{target.name}-{stamp}"
    bundle = Bundle(root, known={client.connection.client_secret})
    notes: list[str] = []
    bundle.add_json("server.json", await calls.server_info(client))
    group_ids = [target.id]
    if target.kind == "deployment":
        bundle.add_json(
            "deployment/deployment.json", await calls.find(client, target.id, calls.DEPLOYMENT_API)
        )
        operations = await calls.deployment_operations(client, target.id)
        bundle.add_json("deployment/operations.json", operations)
        bundle.add_json("deployment/template.json", await calls.export_deployment_template(client, target.id))
        group_ids = [
            str(resource["id"])
            for op in operations
            if (resource := (op.get("properties") or {}).get("targetResource") or {})
            and str(resource.get("resourceType", "")).lower() == calls.GROUP_TYPE.lower()
        ]
    groups: list[dict[str, Any]] = []
    for group_id in dict.fromkeys(group_ids):
        body = await calls.find(client, group_id, calls.GROUP_API)
        name = group_id.rstrip("/").rsplit("/", 1)[-1]
        if body is None:
            notes.append(f"The container group '{group_id}' does not exist (its PUT was refused).")
            continue
        groups.append(body)
        bundle.add_json(f"container-groups/{name}/group.json", body)
        bundle.add_json(
            f"container-groups/{name}/template.json", export_group_template(body, calls.GROUP_API)
        )
        bundle.add_json(f"container-groups/{name}/events.json", group_events(body))
    try:
        report = await calls.diagnose(client, target=target.id)
    except ApiError as error:
        report = {"error": {"code": error.code, "message": error.message}}
        notes.append(f"The diagnosis was refused: ({error.code}) {error.message}")
    else:
        bundle.add_text("diagnose.txt", render(report) + "\n")
    bundle.add_json("diagnose.json", report)
    bundle.add_json("registries.json", await _registries(client, _hosts(groups, report)))
    path = (out or Path(f"{root}.tar.gz")).resolve()
    manifest = {
        "target": {"kind": target.kind, "id": target.id},
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "client": {"version": __version__, "endpoint": client.connection.endpoint},
        "redaction": REDACTION_NOTE,
        "notes": notes,
    }
    files = bundle.write(path, manifest)
    return {"bundle": str(path), "files": files, "notes": notes}


def support_bundle(
    target: Annotated[
        str,
        typer.Argument(
            help="A deployment or container group: resource id, name with -g, or the kind 'container' "
            "or 'deployment' followed by the name."
        ),
    ],
    name: Annotated[str | None, typer.Argument(help="The name, after the kind.")] = None,
    resource_group: Annotated[
        str | None, typer.Option("--resource-group", "-g", help="Its resource group.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--output-file", "-o", help="Where to write the .tar.gz.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Write a support bundle (tar.gz) for a deployment or container group, secrets redacted."""
    kind, ref = (target, name) if name is not None else (None, target)
    result = run(
        home, lambda client: collect(client, ref, resource_group, out, kind), timeout=calls.DIAGNOSE_TIMEOUT_S
    )
    typer.echo(json.dumps(result, indent=2))
