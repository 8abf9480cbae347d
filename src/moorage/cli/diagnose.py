"""``moorage diagnose``: why the platform cannot pull an image — the checks, the cause, the fix.

Exit status: 0 when every check passed, 3 when the diagnosis names a cause, 1 when the server
refused the request (the error printed as ``(Code) message``), 2 for bad usage.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from moorage.cli.command import EXIT_USAGE, HomeOption, fail, run
from moorage.cli.output import OutputFormat
from moorage.cli.output import render as render_data
from moorage.client import MoorageClient
from moorage.client import diagnose as calls

FOUND_CAUSE = 3
_MARKS = {"passed": "ok  ", "failed": "FAIL", "skipped": "--  ", "notApplicable": "n/a "}


def render(report: dict[str, Any]) -> str:
    """The report as text: each image's checks in order, the first failure's evidence and fix."""
    target = report.get("target") or {}
    lines = [
        f"moorage diagnose: {target.get('kind')} {target.get('id') or target.get('image')}"
        + (f" as {target['as']}" if target.get("as") else ""),
        f"checked from the platform's viewpoint (address {report.get('platformAddress')})",
    ]
    for group in report.get("groups") or []:
        error = group.get("operationError") or {}
        if error:
            lines.append(
                f"deployment operation on {group.get('name')}: ({error.get('code')}) {error.get('message')}"
            )
    for check in report.get("checks") or []:
        lines.append("")
        subject = check.get("image") or "(container group definition)"
        lines.append(f"image {subject}" + (f"  [group {check['group']}]" if check.get("group") else ""))
        for step in check.get("steps") or []:
            status = str(step.get("status"))
            title = f"  {_MARKS.get(status, status)} {step.get('number')}. {step.get('title')}"
            evidence = step.get("evidence") or {}
            if status == "failed":
                lines.append(title)
                lines.extend(f"         {line}" for line in _evidence_lines(evidence))
            elif status in ("passed", "notApplicable"):
                summary = _summary(str(step.get("check")), evidence)
                lines.append(f"{title} — {summary}" if summary else title)
            else:
                lines.append(title)
        if check.get("cause"):
            fix = check.get("fix") or {}
            lines += [
                f"  cause:    {check['cause']}: {check.get('summary')}",
                f"  fix:      {fix.get('text')}",
                f"  command:  {fix.get('command')}",
                f"  template: {fix.get('template')}",
            ]
    lines.extend(f"note: {n}" for n in report.get("notes") or [])
    lines.append("")
    cause = report.get("cause")
    lines.append(f"result: {'FAILED (' + cause + ')' if cause else 'every check passed'}")
    return "\n".join(lines)


# What a passed step shows on its line (all of it is in --output json).
_SUMMARY_KEYS = {
    "reference": ("normalized", "registryKind", "channel", "credentialKind"),
    "reachability": ("peer", "status"),
    "firewall": ("decision", "reason", "matchedIpRule"),
    "authentication": ("credentialKind", "grantedScope"),
    "authorization": ("granted", "rule"),
    "manifest": ("digest", "platform"),
    "blobs": ("blobs",),
}


def _summary(check: str, evidence: dict[str, Any]) -> str:
    parts = []
    for key in _SUMMARY_KEYS.get(check, ()):
        value = evidence.get(key)
        if value is None:
            continue
        if key == "blobs" and isinstance(value, list):
            parts.append(f"{len(value)} reachable")
        elif key == "grantedScope" and isinstance(value, list):
            grants = [f"{g.get('name')}:{','.join(g.get('actions') or []) or '(nothing)'}" for g in value]
            parts.append(f"granted {' '.join(grants)}")
        else:
            parts.append(f"{key} {value if isinstance(value, str) else json.dumps(value)}")
    if "reason" in evidence and not parts:
        parts.append(str(evidence["reason"]))
    return ", ".join(parts)


def _evidence_lines(evidence: dict[str, Any], limit: int = 12) -> list[str]:
    out = []
    for key, value in evidence.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
        out.append(f"{key}: {text if len(text) <= 160 else text[:157] + '...'}")
    return out[:limit] + ([f"... ({len(out) - limit} more in --output json)"] if len(out) > limit else [])


def diagnose(  # noqa: PLR0917 - typer maps each parameter to an argument or option
    target: Annotated[
        str,
        typer.Argument(
            help="A container group or deployment (resource id, or name with -g), an image reference, "
            "or the kind 'container' or 'deployment' followed by the name.",
        ),
    ],
    name: Annotated[
        str | None, typer.Argument(help="The name, after the kind: moorage diagnose deployment NAME -g RG.")
    ] = None,
    resource_group: Annotated[
        str | None,
        typer.Option("--resource-group", "-g", help="Resource group of a group or deployment name."),
    ] = None,
    as_: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Check an image as this identity: a user-assigned identity id, a service principal appId, "
            "or a registry user (with --password).",
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option("--password", "-p", help="The service principal's secret or the user's password."),
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="text (default; table is the same), json, yaml or tsv.")
    ] = "text",
    home: HomeOption = None,
) -> None:
    """Check, from the platform's viewpoint, whether images can be pulled; name the cause and the fix.

    Exit status: 0 every check passed, 3 a cause was found, 1 refused by the server, 2 usage."""
    chosen = output.lower()
    if chosen == OutputFormat.TABLE:
        chosen = "text"  # the report is a list of checks: its text form is its table
    if chosen not in ("text", OutputFormat.JSON, OutputFormat.YAML, OutputFormat.TSV):
        fail(f"--output must be text, table, json, yaml or tsv; got '{output}'.", EXIT_USAGE)
    kind, ref = (target, name) if name is not None else (None, target)
    image_check = kind is None and (as_ is not None or (not ref.startswith("/") and resource_group is None))
    if kind is not None and as_ is not None:
        fail("--as checks an image; a container group or deployment is checked with its own credentials.")

    async def go(client: MoorageClient) -> dict[str, Any]:
        if image_check:
            return await calls.diagnose(client, image=ref, as_=as_, password=password)
        resolved = await calls.resolve_target(client, ref, resource_group, kind)
        return await calls.diagnose(client, target=resolved.id)

    report = run(home, go, timeout=calls.DIAGNOSE_TIMEOUT_S)
    if chosen == "text":
        typer.echo(render(report))
    else:
        typer.echo(render_data(report, OutputFormat(chosen)), nl=False)
    if report.get("cause"):
        raise typer.Exit(FOUND_CAUSE)
