"""JSON values as the template language sees them.

Template values are plain JSON (:data:`Json`): ``None``, ``bool``, ``int``, ``float``, ``str``,
``list`` and ``dict``. ARM works on Json.NET tokens; the helpers here reproduce the parts of that
behaviour templates can observe: the type names in messages (``String``, ``Integer``...),
case-insensitive property lookup, .NET's rendering of values as text (``True``/``False``), and
Json.NET's lenient JSON reader used by ``json()`` (single quotes, comments, unquoted names).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TypeAlias

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None


def is_int(value: object) -> bool:
    """An ARM ``Integer`` (a Python ``bool`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def type_name(value: object) -> str:
    """The Json.NET token type ARM names in its messages."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return type(value).__name__


def find_key(obj: Mapping[str, Json], name: str) -> str | None:
    """The key of ``obj`` that matches ``name`` (exactly, else ignoring case), or ``None``."""
    if name in obj:
        return name
    folded = name.casefold()
    for key in obj:
        if key.casefold() == folded:
            return key
    return None


def deep_equal(left: Json, right: Json) -> bool:
    """Json.NET's ``DeepEquals``: same type and value all the way down (strings compare
    case-sensitively; ``1`` equals ``1.0``; ``true`` never equals ``1``)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(deep_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        if len(left) != len(right):
            return False
        for key, value in left.items():
            other = find_key(right, key)
            if other is None or not deep_equal(value, right[other]):
                return False
        return True
    return type(left) is type(right) and left == right


def compact_json(value: Json) -> str:
    """Minified JSON, as Json.NET writes it (``{"a":1,"b":[true]}``)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_float(value: float) -> str:
    """A float the way .NET's round-trip formatting writes it (``1.5``, ``3``, ``1E+20``)."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    return text.replace("e+", "E+").replace("e-", "E-")


def as_text(value: Json) -> str:
    """A value as ``string()``, ``concat()`` and ``format()`` render it: strings unchanged,
    booleans as .NET writes them (``True``), numbers in invariant culture, ``null`` as the empty
    string, objects and arrays as minified JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return value
    return compact_json(value)


class LenientJsonError(ValueError):
    """Text that even Json.NET's lenient reader would refuse; ``position`` is where it stopped."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} at position {position}")
        self.reason = reason
        self.position = position


_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def parse_lenient_json(text: str) -> Json:
    """Parse JSON the way Json.NET does by default: besides strict JSON it accepts single-quoted
    strings, unquoted property names, ``//`` and ``/* */`` comments and trailing commas.

    Raises :class:`LenientJsonError` on anything else (and on trailing content).
    """
    reader = _LenientReader(text)
    value = reader.value()
    reader.skip_blank()
    if reader.pos != len(text):
        raise LenientJsonError("unexpected content after the JSON value", reader.pos)
    return value


class _LenientReader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_blank(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char.isspace():
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise LenientJsonError("unterminated comment", self.pos)
                self.pos = end + 2
            else:
                return

    def value(self) -> Json:
        self.skip_blank()
        if self.pos >= len(self.text):
            raise LenientJsonError("unexpected end of the text", self.pos)
        char = self.text[self.pos]
        if char == "{":
            return self.obj()
        if char == "[":
            return self.array()
        if char in "\"'":
            return self.string()
        number = _NUMBER.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            literal = number.group()
            if any(c in literal for c in ".eE"):
                return float(literal)
            return int(literal)
        word = _IDENTIFIER.match(self.text, self.pos)
        if word and word.group() in ("true", "false", "null"):
            self.pos = word.end()
            return {"true": True, "false": False, "null": None}[word.group()]
        raise LenientJsonError(f"unexpected character '{char}'", self.pos)

    def string(self) -> str:
        quote = self.text[self.pos]
        start = self.pos
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(out)
            if char == "\\":
                if self.pos + 1 >= len(text):
                    break
                escape = text[self.pos + 1]
                if escape == "u":
                    digits = text[self.pos + 2 : self.pos + 6]
                    if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                        raise LenientJsonError("invalid \\u escape", self.pos)
                    out.append(chr(int(digits, 16)))
                    self.pos += 6
                    continue
                mapped = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(escape, escape)
                out.append(mapped)
                self.pos += 2
                continue
            out.append(char)
            self.pos += 1
        raise LenientJsonError("unterminated string", start)

    def array(self) -> list[Json]:
        self.pos += 1
        items: list[Json] = []
        while True:
            self.skip_blank()
            if self.peek() == "]":
                self.pos += 1
                return items
            items.append(self.value())
            self.skip_blank()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "]":
                raise LenientJsonError("expected ',' or ']'", self.pos)

    def obj(self) -> dict[str, Json]:
        self.pos += 1
        members: dict[str, Json] = {}
        while True:
            self.skip_blank()
            char = self.peek()
            if char == "}":
                self.pos += 1
                return members
            if char in ("'", '"'):
                key = self.string()
            else:
                word = _IDENTIFIER.match(self.text, self.pos)
                if not word:
                    raise LenientJsonError("expected a property name", self.pos)
                key = word.group()
                self.pos = word.end()
            self.skip_blank()
            if self.peek() != ":":
                raise LenientJsonError("expected ':'", self.pos)
            self.pos += 1
            members[key] = self.value()
            self.skip_blank()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise LenientJsonError("expected ',' or '}'", self.pos)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""
