"""How a server refusal is printed: ``ERROR: (Code) message``, then what explains it.

ARM errors nest (``details``) and carry typed ``additionalInfo``. When an entry is moorage's
image-access diagnosis (``MoorageImageAccessDiagnosis``, which container groups attach to
``InaccessibleImage``), its cause, evidence and fix are printed under the error they belong to,
so a failed deployment shows its ``DeploymentFailed`` envelope, each failed resource's own error
and that error's cause.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.cli.output import to_yaml
from moorage.client import ApiError

# The additionalInfo type of moorage's classified pull failures (moorage.instances.access): a
# wire-protocol name, repeated here because the CLI knows the server only through its answers.
DIAGNOSIS_TYPE = "MoorageImageAccessDiagnosis"


def error_object(error: ApiError) -> Mapping[str, Any] | None:
    """ARM's inner ``error`` object of a refusal or of a failed operation's status, if any."""
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        found: Mapping[str, Any] = body["error"]
        return found
    return None


def describe(error: ApiError) -> list[str]:
    """The lines to print (on stderr) for ``error``."""
    inner = error_object(error)
    if inner is None:
        return [f"ERROR: ({error.code}) {error.message}"]
    lines = [f"ERROR: ({inner.get('code')}) {inner.get('message')}"]
    lines.extend(_explanation(inner, ""))
    for detail in _details(inner):
        lines.extend(_detail(detail, "  "))
    return lines


def _details(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [d for d in error.get("details") or [] if isinstance(d, dict)]


def _detail(error: Mapping[str, Any], indent: str) -> list[str]:
    lines = [f"{indent}({error.get('code')}) {error.get('message')}"]
    lines.extend(_explanation(error, indent + "  "))
    for nested in _details(error):
        lines.extend(_detail(nested, indent + "  "))
    return lines


def _explanation(error: Mapping[str, Any], indent: str) -> list[str]:
    """``Target:`` and, for each diagnosis in ``additionalInfo``, ``Cause:``/``Evidence:``/``Fix:``."""
    lines: list[str] = []
    if error.get("target"):
        lines.append(f"{indent}Target: {error['target']}")
    for entry in error.get("additionalInfo") or []:
        if not isinstance(entry, dict) or entry.get("type") != DIAGNOSIS_TYPE:
            continue
        raw = entry.get("info")
        info: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        lines.append(f"{indent}Cause: {info.get('cause')}: {info.get('summary')}")
        evidence = info.get("evidence")
        if isinstance(evidence, dict) and evidence:
            lines.append(f"{indent}Evidence:")
            lines.extend(f"{indent}  {line}" for line in to_yaml(evidence).splitlines())
        if info.get("fix"):
            lines.append(f"{indent}Fix: {info['fix']}")
        if info.get("fixCommand"):
            lines.append(f"{indent}Command: {info['fixCommand']}")
        if info.get("templateChange"):
            lines.append(f"{indent}Template: {info['templateChange']}")
    return lines
