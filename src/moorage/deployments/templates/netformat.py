""".NET composite formatting, as ARM's ``format()`` uses it (invariant culture).

``format('{0}, {1}. Formatted number: {2:N0}', 'Hello', 'User', 8175133)`` gives
``Hello, User. Formatted number: 8,175,133``. Items are ``{index[,alignment][:format]}``; ``{{``
and ``}}`` are literal braces. Numbers take the standard numeric formats ``N``, ``D``, ``X``,
``F``, ``E``, ``P``, ``C``, ``G`` (with precision) and simple custom patterns of ``0``, ``#``,
``,`` and ``.``; other values ignore the format string, as in .NET.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from moorage.deployments.templates.values import Json, as_text, format_float, is_int


class CompositeFormatError(ValueError):
    """A format string .NET's ``String.Format`` would reject (the message is .NET's)."""


_ITEM = re.compile(r"\{(\d+)\s*(?:,\s*(-?\d+)\s*)?(?::([^{}]*))?\}")


def composite_format(template: str, args: Sequence[Json]) -> str:
    out: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char == "{":
            if template.startswith("{{", i):
                out.append("{")
                i += 2
                continue
            match = _ITEM.match(template, i)
            if not match:
                raise CompositeFormatError("Input string was not in a correct format.")
            index = int(match.group(1))
            if index >= len(args):
                raise CompositeFormatError(
                    "Index (zero based) must be greater than or equal to zero and less than the size of "
                    "the argument list."
                )
            text = format_value(args[index], match.group(3) or "")
            width = int(match.group(2) or 0)
            out.append(text.rjust(width) if width >= 0 else text.ljust(-width))
            i = match.end()
            continue
        if char == "}":
            if template.startswith("}}", i):
                out.append("}")
                i += 2
                continue
            raise CompositeFormatError("Input string was not in a correct format.")
        out.append(char)
        i += 1
    return "".join(out)


def format_value(value: Json, spec: str) -> str:
    if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_number(value, spec)
    return as_text(value)


_STANDARD = re.compile(r"^([NnDdXxFfEePpCcGg])(\d{0,2})$")


def format_number(value: int | float, spec: str) -> str:
    match = _STANDARD.match(spec)
    if not match:
        return _custom_number(value, spec)
    kind, digits = match.group(1), match.group(2)
    precision = int(digits) if digits else None
    upper = kind.upper()
    if upper == "N":
        return f"{value:,.{2 if precision is None else precision}f}"
    if upper == "F":
        return f"{value:.{2 if precision is None else precision}f}"
    if upper == "D":
        if not is_int(value):
            raise CompositeFormatError("Format specifier was invalid.")
        sign = "-" if value < 0 else ""
        return sign + str(abs(int(value))).zfill(precision or 0)
    if upper == "X":
        if not is_int(value):
            raise CompositeFormatError("Format specifier was invalid.")
        number = int(value) & 0xFFFFFFFFFFFFFFFF if value < 0 else int(value)
        text = f"{number:x}".zfill(precision or 0)
        return text.upper() if kind == "X" else text
    if upper == "E":
        mantissa, exponent = f"{value:.{6 if precision is None else precision}e}".split("e")
        sign = exponent[0]
        return f"{mantissa}{'E' if kind == 'E' else 'e'}{sign}{int(exponent[1:]):03d}"
    if upper == "P":
        return f"{value * 100:,.{2 if precision is None else precision}f} %"
    if upper == "C":
        return f"¤{value:,.{2 if precision is None else precision}f}"
    return str(value) if is_int(value) else format_float(float(value))


def _custom_number(value: int | float, spec: str) -> str:
    if not re.fullmatch(r"[0#,.]+", spec):
        return str(value) if is_int(value) else format_float(float(value))
    integer_part, _, fraction_part = spec.partition(".")
    grouping = "," in integer_part
    min_int = integer_part.count("0")
    min_frac = fraction_part.count("0")
    max_frac = min_frac + fraction_part.count("#")
    text = f"{abs(value):.{max_frac}f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(min_frac, "0") if max_frac else ""
    whole = whole.lstrip("0").rjust(min_int, "0") if min_int or whole != "0" else ""
    if grouping and whole:
        whole = f"{int(whole):,}".rjust(min_int, "0")
    sign = "-" if value < 0 and (whole.strip("0") or frac.strip("0")) else ""
    return sign + whole + ("." + frac if frac else "")
