"""The diagnosis report: for each image, the seven ordered checks and how each went; the first
failure's cause, evidence and fix.

The JSON form (:meth:`Report.as_json`) is what ``POST …/providers/Moorage.Diagnostics/diagnose``
answers and ``moorage diagnose --output json`` prints::

    {"target": {...}, "platformAddress": "100.64.0.1", "result": "Failed", "cause": "TagNotFound",
     "groups": [{"id", "name", "source", "operationId"?, "operationError"?}],
     "checks": [{"group", "image", "result", "cause", "check", "summary", "evidence",
                 "fix": {"text", "command", "template"},
                 "steps": [{"number", "check", "title", "status", "evidence"}]}],
     "notes": [...]}

A step's ``status`` is ``passed``, ``failed``, ``skipped`` (not run: an earlier check failed) or
``notApplicable`` (nothing to check, e.g. the firewall of a registry outside moorage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from moorage.instances.access import CHECK_ORDER, Check

TITLES = {
    Check.REFERENCE: "Reference parsed and normalised; registry resolved",
    Check.REACHABILITY: "Registry reachable (connection and TLS)",
    Check.FIREWALL: "Firewall admits the platform",
    Check.AUTHENTICATION: "Authentication: challenge, credential, token exchange, granted scope",
    Check.AUTHORIZATION: "Authorization: the principal may pull",
    Check.MANIFEST: "Manifest: tag to digest, media type, platform",
    Check.BLOBS: "Blobs reachable (config and layers)",
}


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_APPLICABLE = "notApplicable"


@dataclass
class StepReport:
    check: Check
    status: Status
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "number": CHECK_ORDER.index(self.check) + 1,
            "check": str(self.check),
            "title": TITLES[self.check],
            "status": str(self.status),
            "evidence": self.evidence,
        }


@dataclass
class CheckReport:
    """One image checked for one group (``image`` is ``None`` when the group was refused before
    any pull). ``diagnosis`` is the classifier's JSON (``cause``, ``check``, ``summary``,
    ``evidence``, ``fix``, ``fixCommand``, ``templateChange``), ``None`` when every check passed."""

    group: str | None
    image: str | None
    steps: list[StepReport]
    diagnosis: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.diagnosis is not None

    @property
    def cause(self) -> str | None:
        return str(self.diagnosis["cause"]) if self.diagnosis else None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "group": self.group,
            "image": self.image,
            "result": "failed" if self.failed else "passed",
            "cause": self.cause,
        }
        if self.diagnosis is not None:
            d = self.diagnosis
            out |= {
                "check": d.get("check"),
                "summary": d.get("summary"),
                "evidence": d.get("evidence") or {},
                "fix": {
                    "text": d.get("fix") or "",
                    "command": d.get("fixCommand") or "",
                    "template": d.get("templateChange") or "",
                },
            }
        out["steps"] = [s.as_json() for s in self.steps]
        return out


def refusal(
    group: str | None, diagnosis: dict[str, Any], evidence: dict[str, Any] | None = None
) -> CheckReport:
    """A group refused before any image was pulled: the failed check, every other one skipped."""
    failed = Check(str(diagnosis.get("check") or Check.REFERENCE))
    steps = [
        StepReport(c, Status.FAILED, evidence or dict(diagnosis.get("evidence") or {}))
        if c is failed
        else StepReport(c, Status.SKIPPED)
        for c in CHECK_ORDER
    ]
    return CheckReport(group, None, steps, diagnosis)


@dataclass
class GroupInfo:
    """A container group the report covers: an existing one, or one a deployment tried to create."""

    id: str
    name: str
    source: str  # "containerGroup" | "deploymentOperation"
    operation_id: str | None = None
    operation_error: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "source": self.source}
        if self.operation_id is not None:
            out["operationId"] = self.operation_id
        if self.operation_error is not None:
            out["operationError"] = self.operation_error
        return out


@dataclass
class Report:
    target: dict[str, Any]
    platform_address: str
    checks: list[CheckReport] = field(default_factory=list)
    groups: list[GroupInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def cause(self) -> str | None:
        return next((c.cause for c in self.checks if c.failed), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "platformAddress": self.platform_address,
            "result": "Failed" if self.cause else "Passed",
            "cause": self.cause,
            "groups": [g.as_json() for g in self.groups],
            "checks": [c.as_json() for c in self.checks],
            "notes": list(self.notes),
        }
