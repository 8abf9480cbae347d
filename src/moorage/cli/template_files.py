"""Reading ``--template-file`` and ``--parameters`` the way ARM and the az CLI do.

Files are read as ARM's Json.NET reads deployment bodies (comments, trailing commas, unquoted
keys, single quotes: :mod:`moorage.core.jsonc`), so a template that deploys through ``az`` reads
here too. ``--parameters`` values, later ones winning:

* ``@file.json`` — a parameters file (``{"$schema", "contentVersion", "parameters": {...}}``) or
  a bare ``{"name": {"value": ...}}`` object;
* ``{...}`` — the same, inline;
* ``name=value`` — typed by the template's declaration as az does: ``int``, ``bool``,
  ``object`` and ``array`` values are parsed (JSON), strings are taken as written.

Every problem is a :class:`~moorage.cli.command.UsageError` naming the file or value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from moorage.cli.command import UsageError, bool_text
from moorage.core.jsonc import to_strict_json


def parse_lenient(text: str, where: str) -> Any:
    try:
        return json.loads(to_strict_json(text))
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{where} is not valid JSON: {exc}.") from exc


def read_json_file(path: Path, what: str) -> Any:
    try:
        text = path.expanduser().read_text(encoding="utf-8-sig")  # -sig: editors on Windows write a BOM
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror or exc}.") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"the {what} {path} is not UTF-8 text.") from exc
    return parse_lenient(text, f"the {what} {path}")


def read_template(path: Path) -> dict[str, Any]:
    template = read_json_file(path, "template file")
    if not isinstance(template, dict):
        raise UsageError(f"the template file {path} must hold a JSON object.")
    return template


def _entries(document: Any, where: str) -> dict[str, Any]:
    """The parameter entries of a parameters document (file or inline)."""
    if not isinstance(document, dict):
        raise UsageError(f"{where} must be a JSON object.")
    inner = document.get("parameters")
    if isinstance(inner, dict) and (
        "$schema" in document or "contentVersion" in document or len(document) == 1
    ):
        document = inner
    # A bare value is taken as {"value": ...}; objects are passed on ({"value"} or {"reference"}).
    return {name: entry if isinstance(entry, dict) else {"value": entry} for name, entry in document.items()}


def _declared_type(template: Mapping[str, Any], name: str) -> str:
    declared = template.get("parameters")
    if isinstance(declared, dict):
        for key, spec in declared.items():
            if key.lower() == name.lower() and isinstance(spec, dict):
                return str(spec.get("type", "string")).lower()
    return "string"


def _typed(name: str, raw: str, kind: str) -> Any:
    where = f"--parameters {name}"
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"{where}: '{raw}' is not an integer.") from None
    if kind == "bool":
        return bool_text(raw, where)
    if kind in ("object", "secureobject", "array"):
        return parse_lenient(raw, where)
    return raw


def parameters(values: Iterable[str], template: Mapping[str, Any]) -> dict[str, Any]:
    """The deployment's ``properties.parameters`` from ``--parameters`` values."""
    out: dict[str, Any] = {}
    for value in values:
        if value.startswith("@"):
            path = Path(value[1:])
            out.update(_entries(read_json_file(path, "parameters file"), f"the parameters file {path}"))
        elif value.lstrip().startswith("{"):
            out.update(_entries(parse_lenient(value, "--parameters"), "--parameters"))
        else:
            name, sep, raw = value.partition("=")
            if not sep or not name:
                raise UsageError(
                    f"--parameters expects NAME=VALUE, @file.json or a JSON object; got '{value}'."
                )
            out[name] = {"value": _typed(name, raw, _declared_type(template, name))}
    return out


def deployment_body(template: dict[str, Any], params: dict[str, Any], mode: str) -> dict[str, Any]:
    return {"properties": {"mode": mode, "template": template, "parameters": params}}
