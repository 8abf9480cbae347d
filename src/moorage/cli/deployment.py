"""``moorage deployment group …`` and ``moorage deployment operation group list``: ARM template
deployments at resource-group scope, shaped like ``az deployment group``.

``create`` shows the deployment's operations live while it runs (resource, type, state, status
code, duration) and, when it fails, prints ARM's ``DeploymentFailed`` envelope with each failed
resource's own error and moorage's classified cause. ``export`` prints the template, as az does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from moorage.cli.command import GroupOption, HomeOption, NoWaitOption, OutputOption, emit, run
from moorage.cli.output import Column, OutputFormat, Table, path_get
from moorage.cli.progress import ProgressTable, Row, seconds_text
from moorage.cli.template_files import deployment_body, parameters, read_template
from moorage.client import MoorageClient
from moorage.client.arm import ArmBody, Deployments, resource_group_of

app = typer.Typer(help="Template deployments (Microsoft.Resources/deployments).", no_args_is_help=True)
group_app = typer.Typer(help="Deployments at resource-group scope.", no_args_is_help=True)
operation_app = typer.Typer(help="Deployment operations.", no_args_is_help=True)
operation_group_app = typer.Typer(
    help="Operations of deployments at resource-group scope.", no_args_is_help=True
)
app.add_typer(group_app, name="group")
app.add_typer(operation_app, name="operation")
operation_app.add_typer(operation_group_app, name="group")


class Mode(StrEnum):
    INCREMENTAL = "Incremental"
    COMPLETE = "Complete"


DeploymentName = Annotated[str, typer.Option("--name", "-n", help="Deployment name.")]
TemplateOption = Annotated[
    Path,
    typer.Option("--template-file", "-f", help="ARM template (JSON; comments allowed, as ARM reads it)."),
]
ParametersOption = Annotated[
    list[str] | None,
    typer.Option(
        "--parameters", "-p", help="NAME=VALUE, @params.json or a JSON object (repeatable; later ones win)."
    ),
]
ModeOption = Annotated[Mode, typer.Option("--mode", case_sensitive=False, help="Incremental or Complete.")]

DEPLOYMENT_TABLE = Table(
    [
        Column("Name", "name"),
        Column("State", "properties.provisioningState"),
        Column("Timestamp", "properties.timestamp"),
        Column("Mode", "properties.mode"),
        Column("ResourceGroup", lambda d: resource_group_of(str(d.get("id", "")))),
    ]
)
OPERATION_HEADERS = ("Resource", "Type", "Operation", "State", "StatusCode", "Duration")


def operation_row(operation: ArmBody) -> Row:
    props = operation.get("properties") or {}
    target = props.get("targetResource") or {}
    return (
        str(target.get("resourceName") or operation.get("operationId") or ""),
        str(target.get("resourceType") or ""),
        str(props.get("provisioningOperation") or ""),
        str(props.get("provisioningState") or ""),
        str(props.get("statusCode") or ""),
        seconds_text(props.get("duration")),
    )


def _operation_cell(index: int) -> Callable[[Any], str]:
    return lambda operation: operation_row(operation)[index]


OPERATION_TABLE = Table([Column(h, _operation_cell(i)) for i, h in enumerate(OPERATION_HEADERS)])
WHAT_IF_TABLE = Table(
    [
        Column("ChangeType", "changeType"),
        Column("ResourceId", "resourceId"),
        Column("Changes", lambda c: len(c.get("delta") or []) or ""),
    ],
    rows=lambda result: list(path_get(result, "properties.changes") or []),
)


def _request(template_file: Path, values: list[str] | None, mode: Mode) -> ArmBody:
    template = read_template(template_file)
    return deployment_body(template, parameters(values or [], template), mode.value)


async def _deploy_with_progress(
    client: MoorageClient, group: str, name: str, body: ArmBody, *, wait: bool
) -> ArmBody | None:
    deployments = Deployments(client)
    operation = await deployments.begin_create(group, name, body)
    if not wait:
        return None
    with ProgressTable(f"deployment {name}", OPERATION_HEADERS, volatile=(5,)) as progress:
        while True:
            status = await operation.status()
            progress.update(
                status.status, [operation_row(op) for op in await deployments.operations(group, name)]
            )
            if status.finished:
                break
            await asyncio.sleep(min(operation.retry_after, 1.0))
    if status.status != "Succeeded":
        raise status.failure()
    return await deployments.get(group, name)


@group_app.command("create")
def create(
    *,
    group: GroupOption,
    template_file: TemplateOption,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Deployment name (default: the template file's name).")
    ] = None,
    parameters_: ParametersOption = None,
    mode: ModeOption = Mode.INCREMENTAL,
    no_wait: NoWaitOption = False,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Deploy a template to a resource group (az deployment group create)."""
    body = _request(template_file, parameters_, mode)
    deployment = name or template_file.stem
    result = run(home, lambda c: _deploy_with_progress(c, group, deployment, body, wait=not no_wait))
    emit(result, output, DEPLOYMENT_TABLE)


@group_app.command("validate")
def validate(
    *,
    group: GroupOption,
    template_file: TemplateOption,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Deployment name.")] = None,
    parameters_: ParametersOption = None,
    mode: ModeOption = Mode.INCREMENTAL,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Check a template and its parameters without deploying (az deployment group validate)."""
    body = _request(template_file, parameters_, mode)
    deployment = name or template_file.stem
    emit(run(home, lambda c: Deployments(c).validate(group, deployment, body)), output, DEPLOYMENT_TABLE)


@group_app.command("what-if")
def what_if(
    *,
    group: GroupOption,
    template_file: TemplateOption,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Deployment name.")] = None,
    parameters_: ParametersOption = None,
    mode: ModeOption = Mode.INCREMENTAL,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Predict what a deployment would change (az deployment group what-if)."""
    body = _request(template_file, parameters_, mode)
    deployment = name or template_file.stem
    emit(run(home, lambda c: Deployments(c).what_if(group, deployment, body)), output, WHAT_IF_TABLE)


@group_app.command("show")
def show(
    group: GroupOption,
    name: DeploymentName,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Show a deployment (az deployment group show)."""
    emit(run(home, lambda c: Deployments(c).get(group, name)), output, DEPLOYMENT_TABLE)


@group_app.command("list")
def list_(group: GroupOption, output: OutputOption = OutputFormat.JSON, home: HomeOption = None) -> None:
    """List a resource group's deployments (az deployment group list)."""
    emit(run(home, lambda c: Deployments(c).list(group)), output, DEPLOYMENT_TABLE)


@group_app.command("delete")
def delete(
    group: GroupOption,
    name: DeploymentName,
    output: OutputOption = OutputFormat.JSON,  # accepted everywhere; delete prints nothing
    home: HomeOption = None,
) -> None:
    """Delete a deployment's record (not its resources) (az deployment group delete)."""
    run(home, lambda c: Deployments(c).delete(group, name))


@group_app.command("cancel")
def cancel(
    group: GroupOption,
    name: DeploymentName,
    output: OutputOption = OutputFormat.JSON,  # accepted everywhere; cancel prints nothing
    home: HomeOption = None,
) -> None:
    """Cancel a running deployment (az deployment group cancel)."""
    run(home, lambda c: Deployments(c).cancel(group, name))


@group_app.command("export")
def export(
    group: GroupOption,
    name: DeploymentName,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """Print the template a deployment used (az deployment group export)."""

    async def go(client: MoorageClient) -> Any:
        return (await Deployments(client).export_template(group, name)).get("template")

    emit(run(home, go), output)


@operation_group_app.command("list")
def operation_list(
    group: GroupOption,
    name: DeploymentName,
    output: OutputOption = OutputFormat.JSON,
    home: HomeOption = None,
) -> None:
    """List a deployment's operations (az deployment operation group list)."""
    emit(run(home, lambda c: Deployments(c).operations(group, name)), output, OPERATION_TABLE)
