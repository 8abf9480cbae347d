"""What ARM's Json.NET accepts beyond JSON, rewritten into strict JSON.

``az deployment group create`` does not send JSON: it splices the template file's text into
the body after an unquoted ``template:`` key, and template files may carry ``//`` and ``/* */``
comments. Json.NET reads that, and so must we — but only where Azure does (deployment bodies),
so everything else keeps strict parsing.

:func:`to_strict_json` removes comments and trailing commas, quotes bare property names and turns
single-quoted strings into double-quoted ones; string contents are never touched. Malformed
input is passed on as it is, for ``json.loads`` to report.
"""

from __future__ import annotations

import json
import re

_BARE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_LITERALS = {"true", "false", "null"}


def _string_end(text: str, start: int) -> int:
    """Index just past the string literal opening at ``start`` (or ``len(text)``)."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            return i + 1
        i += 1
    return len(text)


def _next_significant(text: str, i: int) -> str:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return text[i] if i < len(text) else ""


def to_strict_json(text: str) -> str:  # noqa: PLR0915 - one scanner, one pass
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            end = _string_end(text, i)
            literal = text[i:end]
            if ch == "'":
                # Re-encode the single-quoted body as a JSON string (escapes kept as written).
                body = literal[1:-1] if literal.endswith("'") and len(literal) > 1 else literal[1:]
                body = body.replace("\\'", "'")
                out.append(json.dumps(json.loads('"' + body.replace('"', '\\"') + '"')))
            else:
                out.append(literal)
            i = end
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
            out.append(" ")
        elif ch == ",":
            # A comma followed (after blanks and comments) by a closing bracket is dropped.
            j = i + 1
            while True:
                while j < n and text[j] in " \t\r\n":
                    j += 1
                if text.startswith("//", j):
                    nl = text.find("\n", j)
                    j = n if nl < 0 else nl
                elif text.startswith("/*", j):
                    close = text.find("*/", j + 2)
                    j = n if close < 0 else close + 2
                else:
                    break
            if j < n and text[j] in "}]":
                i += 1
                continue
            out.append(ch)
            i += 1
        else:
            match = _BARE.match(text, i) if (ch.isalpha() or ch in "_$") else None
            if match is not None:
                word = match.group(0)
                if word not in _LITERALS and _next_significant(text, match.end()) == ":":
                    out.append(json.dumps(word))
                else:
                    out.append(word)
                i = match.end()
            else:
                out.append(ch)
                i += 1
    return "".join(out)
