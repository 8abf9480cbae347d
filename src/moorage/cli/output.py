"""Rendering command results as ``json``, ``yaml``, ``table`` or ``tsv``, the way the az CLI does.

* ``json``: the server's body unchanged (ARM's key order), indented by two.
* ``yaml``: the same data in block style. A small emitter of our own (no PyYAML dependency):
  strings are plain only when YAML cannot read them as anything else, otherwise double-quoted
  with JSON escapes (a JSON string is a valid YAML double-quoted scalar).
* ``table``: the columns a :class:`Table` names for the resource type (az's per-command table
  formats), else az's automatic table (top-level scalars except ``id``/``type``/``etag``);
  headers underlined with dashes, columns two spaces apart.
* ``tsv``: az's tab-separated rows: one line per item, a dict's scalar values in key order
  (nested objects empty, lists as their length), ``None`` as ``None``, a top-level boolean as
  ``true``/``false``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class OutputFormat(StrEnum):
    JSON = "json"
    YAML = "yaml"
    TABLE = "table"
    TSV = "tsv"


def path_get(data: Any, path: str) -> Any:
    """``data`` at a dotted ``path`` (``properties.loginServer``; ``containers.0.name``), or None."""
    current = data
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


@dataclass(frozen=True)
class Column:
    """A table column: its header and how to read the cell from an item (a dotted path or a
    function of the item)."""

    header: str
    value: str | Callable[[Any], Any]

    def cell(self, item: Any) -> Any:
        return path_get(item, self.value) if isinstance(self.value, str) else self.value(item)


@dataclass(frozen=True)
class Table:
    """How a command's result is shown as a table: ``rows`` turns the result into row items
    (default: the result itself, or each element of a list), ``columns`` reads their cells."""

    columns: Sequence[Column]
    rows: Callable[[Any], list[Any]] | None = field(default=None)


def render(data: Any, fmt: OutputFormat, table: Table | None = None) -> str:
    """``data`` in format ``fmt``, ending with a newline (empty for ``None``)."""
    if data is None:
        return ""
    if fmt is OutputFormat.JSON:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt is OutputFormat.YAML:
        return to_yaml(data)
    if fmt is OutputFormat.TSV:
        return to_tsv(data)
    return to_table(data, table)


# -- table -------------------------------------------------------------------------------------


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _auto_columns(items: list[Any]) -> list[Column]:
    """az's automatic table: each item's top-level scalars but ``id``, ``type`` and ``etag``."""
    names: dict[str, None] = {}
    for item in items:
        if isinstance(item, dict):
            for key in sorted(item):
                value = item[key]
                if key in ("id", "type", "etag") or value is None or isinstance(value, (dict, list)):
                    continue
                names.setdefault(key)
    if not names:
        return [Column("Result", lambda item: item)]
    return [Column(name[:1].upper() + name[1:], name) for name in names]


def to_table(data: Any, table: Table | None = None) -> str:
    if table is not None and table.rows is not None:
        items = table.rows(data)
    else:
        items = data if isinstance(data, list) else [data]
    columns = list(table.columns) if table is not None else _auto_columns(items)
    cells = [[_cell_text(column.cell(item)) for column in columns] for item in items]
    headers = [column.header for column in columns]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out) + "\n"


# -- tsv ---------------------------------------------------------------------------------------


def _tsv_value(value: Any) -> str:
    if isinstance(value, list):
        return str(len(value))
    if isinstance(value, dict):
        return ""
    return value if isinstance(value, str) else str(value)


def _tsv_row(item: Any) -> str:
    if isinstance(item, dict):
        return "\t".join(_tsv_value(v) for _, v in sorted(item.items()))
    if isinstance(item, list):
        return "\t".join(_tsv_value(v) for v in item)
    if isinstance(item, bool):
        return str(item).lower()
    return _tsv_value(item)


def to_tsv(data: Any) -> str:
    items = data if isinstance(data, list) else [data]
    return "".join(_tsv_row(item) + "\n" for item in items)


# -- yaml --------------------------------------------------------------------------------------

# A string stays plain only if it starts with a letter, '_' or '/' (never a number, a date or an
# indicator) and holds nothing YAML could read as syntax; the words YAML 1.1 reads as booleans or
# null are quoted too.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+-]*(?: [A-Za-z0-9_./@+()-]+)*")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text:
            # YAML 1.1 (PyYAML) reads an exponent as a float only with a dot in the mantissa.
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text, ensure_ascii=False)


def _yaml_lines(value: Any, indent: str) -> list[str]:
    """Block lines for a non-empty dict or list, each starting with ``indent``."""
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{indent}{_yaml_scalar(str(key))}:"
            if isinstance(item, dict) and item:
                lines.append(head)
                lines.extend(_yaml_lines(item, indent + "  "))
            elif isinstance(item, list) and item:
                # As PyYAML writes it: a sequence under a key is not indented further.
                lines.append(head)
                lines.extend(_yaml_lines(item, indent))
            else:
                lines.append(f"{head} {_yaml_inline(item)}")
        return lines
    for item in value:
        if isinstance(item, (dict, list)) and item:
            nested = _yaml_lines(item, indent + "  ")
            nested[0] = f"{indent}- {nested[0][len(indent) + 2 :]}"
            lines.extend(nested)
        else:
            lines.append(f"{indent}- {_yaml_inline(item)}")
    return lines


def _yaml_inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _yaml_scalar(value)


def to_yaml(data: Any) -> str:
    if isinstance(data, (dict, list)) and data:
        return "\n".join(_yaml_lines(data, "")) + "\n"
    return _yaml_inline(data) + "\n"
