"""The template expression grammar: ``"[concat('a', parameters('b').c[0])]"``.

A JSON string is an expression when it starts with ``[`` and ends with ``]``; a string that starts
with ``[[`` is the literal text without its first ``[`` (``"[[x]"`` is ``"[x]"``); every other
string is literal text. Inside the brackets::

    expression := primary ( "." identifier | "[" expression "]" )*
    primary    := string | integer | call
    call       := identifier [ "." identifier ] "(" [ expression ( "," expression )* ] ")"
    string     := "'" ( any character but "'" | "''" )* "'"
    integer    := [ "-" ] digit+

Function names are matched without regard to case (``CONCAT`` is ``concat``); ``ns.name(...)``
calls a user-defined function. Every node records ``pos``, its offset in the JSON string (the
opening ``[`` is offset 0), so that errors can point at the faulty call.

:func:`parse_string_value` is the entry point; it raises :class:`ExpressionError` with Azure's
message ("Unable to parse language expression '...': expected token 'RightParenthesis' and actual
'EndOfData'.") and the offset of the offending token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from moorage.deployments.templates.errors import ExpressionError


@dataclass(frozen=True)
class StringLiteral:
    value: str
    pos: int


@dataclass(frozen=True)
class IntegerLiteral:
    value: int
    pos: int


@dataclass(frozen=True)
class Call:
    """``name(args)``, or ``namespace.name(args)`` for a user-defined function."""

    name: str
    args: tuple[Expression, ...]
    pos: int
    namespace: str | None = None

    @property
    def key(self) -> str:
        """The case-folded name the function registry is keyed by."""
        return self.name.casefold()

    @property
    def display_name(self) -> str:
        return f"{self.namespace}.{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class Member:
    """``target.name``: property access (case-insensitive, as in ARM)."""

    target: Expression
    name: str
    pos: int


@dataclass(frozen=True)
class Index:
    """``target[index]``: array element or object property by computed name."""

    target: Expression
    index: Expression
    pos: int


Expression: TypeAlias = StringLiteral | IntegerLiteral | Call | Member | Index


@dataclass(frozen=True)
class ParsedExpression:
    """A JSON string holding an expression: its text and its syntax tree."""

    source: str
    root: Expression


def parse_string_value(text: str) -> str | ParsedExpression:
    """Classify one JSON string: literal text (returned with a ``[[`` escape resolved) or a
    parsed expression. Raises :class:`ExpressionError` when the expression does not parse."""
    if text.startswith("[["):
        return text[1:]
    if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
        return ParsedExpression(text, _Parser(text).parse())
    return text


# --- tokens -------------------------------------------------------------------------------------

_PUNCTUATION = {
    "(": "LeftParenthesis",
    ")": "RightParenthesis",
    "[": "LeftSquareBracket",
    "]": "RightSquareBracket",
    ",": "Comma",
    ".": "Dot",
}


@dataclass(frozen=True)
class _Token:
    kind: str  # Azure's token names: Identifier, String, Integer, Dot, ..., EndOfData
    text: str
    pos: int
    value: str | int | None = None


def _is_identifier_start(char: str) -> bool:
    return char.isalpha() or char in "_$"


def _is_identifier_part(char: str) -> bool:
    return char.isalnum() or char in "_$"


class _Parser:
    """Recursive descent over the text between the outer brackets (offsets kept absolute)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.end = len(source) - 1  # the closing ']'
        self.tokens = self._tokenize()
        self.index = 0

    # tokenizer
    def _tokenize(self) -> list[_Token]:
        text, pos, end = self.source, 1, self.end
        tokens: list[_Token] = []
        while pos < end:
            char = text[pos]
            if char.isspace():
                pos += 1
            elif char in _PUNCTUATION:
                tokens.append(_Token(_PUNCTUATION[char], char, pos))
                pos += 1
            elif char == "'":
                start, pos = pos, pos + 1
                parts: list[str] = []
                while True:
                    if pos >= end:
                        raise self._error(
                            f"Unable to parse language expression '{self._inner()}': the string literal at "
                            f"position '{start}' is not terminated.",
                            start,
                        )
                    if text[pos] == "'":
                        if pos + 1 < end and text[pos + 1] == "'":
                            parts.append("'")
                            pos += 2
                            continue
                        pos += 1
                        break
                    parts.append(text[pos])
                    pos += 1
                tokens.append(_Token("String", text[start:pos], start, "".join(parts)))
            elif char.isdigit() or (char == "-" and pos + 1 < end and text[pos + 1].isdigit()):
                start, pos = pos, pos + 1
                while pos < end and text[pos].isdigit():
                    pos += 1
                tokens.append(_Token("Integer", text[start:pos], start, int(text[start:pos])))
            elif _is_identifier_start(char):
                start = pos
                while pos < end and _is_identifier_part(text[pos]):
                    pos += 1
                tokens.append(_Token("Identifier", text[start:pos], start, text[start:pos]))
            else:
                raise self._error(
                    f"Unable to parse language expression '{self._inner()}': the character '{char}' at "
                    f"position '{pos}' is not expected.",
                    pos,
                )
        tokens.append(_Token("EndOfData", "", end))
        return tokens

    def _inner(self) -> str:
        return self.source[1 : self.end]

    def _error(self, message: str, pos: int) -> ExpressionError:
        return ExpressionError(message, position=pos, expression=self.source)

    # grammar
    def parse(self) -> Expression:
        if self.tokens[0].kind == "EndOfData":
            raise self._error(
                f"The language expression '{self._inner()}' is not valid: the expression is empty.", 1
            )
        expression = self._expression()
        self._expect("EndOfData")
        return expression

    def _peek(self) -> _Token:
        return self.tokens[self.index]

    def _next(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "EndOfData":
            self.index += 1
        return token

    def _expect(self, kind: str) -> _Token:
        token = self._next()
        if token.kind != kind:
            raise self._error(
                f"Unable to parse language expression '{self._inner()}': expected token '{kind}' and "
                f"actual '{token.kind}'.",
                token.pos,
            )
        return token

    def _expression(self) -> Expression:
        node = self._primary()
        while True:
            token = self._peek()
            if token.kind == "Dot":
                self._next()
                name = self._expect("Identifier")
                node = Member(node, name.text, token.pos)
            elif token.kind == "LeftSquareBracket":
                self._next()
                index = self._expression()
                self._expect("RightSquareBracket")
                node = Index(node, index, token.pos)
            else:
                return node

    def _primary(self) -> Expression:
        token = self._next()
        if token.kind == "String":
            return StringLiteral(str(token.value), token.pos)
        if token.kind == "Integer":
            return IntegerLiteral(int(token.text), token.pos)
        if token.kind != "Identifier":
            raise self._error(
                f"Unable to parse language expression '{self._inner()}': expected token 'Identifier' and "
                f"actual '{token.kind}'.",
                token.pos,
            )
        namespace: str | None = None
        name = token.text
        if self._peek().kind == "Dot" and self.tokens[self.index + 1].kind == "Identifier":
            # ``ns.fn(...)``: a bare identifier is never a value, so a dot after one can only
            # mean a user-defined function's namespace.
            self._next()
            namespace, name = name, self._next().text
        self._expect("LeftParenthesis")
        args: list[Expression] = []
        if self._peek().kind != "RightParenthesis":
            args.append(self._expression())
            while self._peek().kind == "Comma":
                self._next()
                args.append(self._expression())
        self._expect("RightParenthesis")
        return Call(name, tuple(args), token.pos, namespace)
