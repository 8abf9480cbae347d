"""The parsed template: what :func:`~moorage.deployments.templates.parse_template` returns.

Every value that may hold an expression is a compiled :data:`~moorage.deployments.templates.nodes.Node`
(its expressions already parsed); names are kept as written. Nested child resources are
flattened: a child carries its full type and a reference to its parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from moorage.deployments.templates.nodes import Const, Expr, Node
from moorage.deployments.templates.values import Json


class ParameterType(Enum):
    """Template parameter and output types (``value`` is the spelling templates use)."""

    STRING = "string"
    SECURE_STRING = "securestring"
    INT = "int"
    BOOL = "bool"
    OBJECT = "object"
    SECURE_OBJECT = "secureObject"
    ARRAY = "array"

    @classmethod
    def parse(cls, text: str) -> ParameterType | None:
        for member in cls:
            if member.value.casefold() == text.casefold():
                return member
        return None

    @property
    def secure(self) -> bool:
        return self in (ParameterType.SECURE_STRING, ParameterType.SECURE_OBJECT)

    @property
    def display(self) -> str:
        """The spelling ARM uses in responses (``String``, ``SecureString``, ``Int``...)."""
        return {
            ParameterType.STRING: "String",
            ParameterType.SECURE_STRING: "SecureString",
            ParameterType.INT: "Int",
            ParameterType.BOOL: "Bool",
            ParameterType.OBJECT: "Object",
            ParameterType.SECURE_OBJECT: "SecureObject",
            ParameterType.ARRAY: "Array",
        }[self]

    @property
    def json_type(self) -> str:
        """The Json.NET token type values of this type must have (as ARM names it in errors)."""
        return {
            ParameterType.STRING: "String",
            ParameterType.SECURE_STRING: "String",
            ParameterType.INT: "Integer",
            ParameterType.BOOL: "Boolean",
            ParameterType.OBJECT: "Object",
            ParameterType.SECURE_OBJECT: "Object",
            ParameterType.ARRAY: "Array",
        }[self]


@dataclass(frozen=True)
class ParameterDefinition:
    name: str
    type: ParameterType
    path: str
    default: Node | None = None
    allowed_values: tuple[Json, ...] | None = None
    min_value: int | None = None
    max_value: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    nullable: bool = False
    metadata: Mapping[str, Json] = field(default_factory=dict)


@dataclass(frozen=True)
class CopyDefinition:
    """A resource loop: ``count`` instances, all at once or ``Serial`` in batches."""

    name: str
    count: Node
    mode: Literal["Parallel", "Serial"]
    batch_size: Node | None
    path: str


@dataclass(frozen=True)
class ResourceDefinition:
    """One resource of the template (nested children flattened, ``parent`` set).

    ``type`` is the full type; ``name`` is the (possibly expression) name as written: for a nested
    child, the short name, joined to each parent instance's name at expansion. ``body`` holds the
    members sent to the resource provider (``location``, ``tags``, ``sku``, ``kind``,
    ``identity``, ``properties``, ``zones``, ``plan``...).
    """

    path: str
    type: str
    api_version: Node | None
    name: Node
    body: Node
    condition: Node | None = None
    copy: CopyDefinition | None = None
    depends_on: tuple[Node, ...] = ()
    scope: Node | None = None
    parent: ResourceDefinition | None = None
    symbolic_name: str | None = None
    existing: bool = False
    comments: str | None = None

    @property
    def display_name(self) -> str:
        """The name as written, for messages (an expression stays an expression)."""
        if isinstance(self.name, Const):
            return str(self.name.value)
        if isinstance(self.name, Expr):
            return self.name.parsed.source
        return self.path


@dataclass(frozen=True)
class OutputDefinition:
    name: str
    type: ParameterType
    path: str
    value: Node | None
    copy_count: Node | None = None
    copy_input: Node | None = None
    condition: Node | None = None


@dataclass(frozen=True)
class UserFunction:
    """``functions[].members`` entry: ``namespace.name(parameters) -> output``."""

    namespace: str
    name: str
    parameters: tuple[tuple[str, ParameterType], ...]
    output_type: ParameterType
    output: Node
    path: str


@dataclass(frozen=True)
class VariableDefinition:
    """A variable, or (``loop_count`` set) one built by a top-level variable ``copy`` loop."""

    name: str
    value: Node
    path: str
    loop_count: Node | None = None


@dataclass(frozen=True)
class Template:
    """A parsed and validated template. Lookups by name are case-insensitive (keys are folded)."""

    schema: str | None
    content_version: str | None
    parameters: Mapping[str, ParameterDefinition]
    variables: Mapping[str, VariableDefinition]
    functions: Mapping[str, UserFunction]  # key: "namespace.name", folded
    resources: tuple[ResourceDefinition, ...]
    outputs: tuple[OutputDefinition, ...]
    base_path: str
    raw: Mapping[str, Json] = field(repr=False, default_factory=dict)

    def parameter(self, name: str) -> ParameterDefinition | None:
        return self.parameters.get(name.casefold())
