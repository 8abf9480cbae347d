"""``bind_parameters``: deployment parameter values checked against the template's declarations.

Values arrive as ARM sends them, ``{"name": {"value": ...}}``. Names match case-insensitively.
Parameters without a value take their ``defaultValue``, evaluated here (the only place
``utcNow()`` and ``newGuid()`` are allowed; a default may use other parameters). Every value is
checked for type, ``allowedValues``, ``minValue``/``maxValue`` and ``minLength``/``maxLength``.

Errors (all ``InvalidTemplate``, as Azure reports them): a parameter the template does not
declare, a required parameter without a value, a value of the wrong type or out of range. A Key
Vault reference (``{"reference": {"keyVault": ...}}``) raises
:class:`~moorage.deployments.templates.errors.TemplateFeatureNotSupported`. Values of
``securestring``/``secureObject`` parameters never appear in messages or reprs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from moorage.core.errors import InvalidArgument
from moorage.deployments.templates.context import DeploymentContext
from moorage.deployments.templates.errors import (
    FUNCTIONS_HELP,
    PARAMETER_FILE_HELP,
    PARAMETER_TYPES_HELP,
    PARAMETER_VALUES_HELP,
    ExpressionError,
    ParameterError,
    TemplateFeatureNotSupported,
    validation_failed,
)
from moorage.deployments.templates.evaluator import (
    PARAMETER_DEFAULT,
    Scope,
    Shared,
    check_type,
    evaluate_node,
    wrap_error,
)
from moorage.deployments.templates.model import ParameterDefinition, ParameterType, Template
from moorage.deployments.templates.nodes import Node, child_path
from moorage.deployments.templates.values import Json, as_text, deep_equal, type_name

#: Secure strings shorter than this are not redacted from messages (doing so would garble them);
#: such values are not plausible secrets.
MIN_REDACTED_LENGTH = 4


def secret_strings(value: Json) -> set[str]:
    """The string leaves of a secure value (what redaction removes from messages)."""
    if isinstance(value, str):
        return {value} if len(value) >= MIN_REDACTED_LENGTH else set()
    if isinstance(value, list):
        return set().union(*(secret_strings(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(secret_strings(v) for v in value.values())) if value else set()
    if value is None or isinstance(value, bool):
        return set()
    text = as_text(value)
    return {text} if len(text) >= MIN_REDACTED_LENGTH else set()


class BoundParameters(Mapping[str, Json]):
    """The deployment's parameter values, by declared name (lookups ignore case).

    ``repr`` and :meth:`echo` hide the values of secure parameters.
    """

    def __init__(self, template: Template, values: Mapping[str, Json]) -> None:
        self._template = template
        self._values = {k.casefold(): v for k, v in values.items()}
        self._names = {k.casefold(): d.name for k, d in template.parameters.items() if k in self._values}

    def __getitem__(self, name: str) -> Json:
        return self._values[name.casefold()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = {
            self._names[k]: ("***" if self.is_secure(k) else v)
            for k, v in self._values.items()
            if k in self._names
        }
        return f"BoundParameters({shown!r})"

    def value(self, name: str) -> tuple[bool, Json]:
        key = name.casefold()
        if key in self._values:
            return True, self._values[key]
        return False, None

    def is_secure(self, name: str) -> bool:
        definition = self._template.parameter(name)
        return definition is not None and definition.type.secure

    @property
    def secrets(self) -> frozenset[str]:
        """Every secure value's string leaves, for redaction."""
        found: set[str] = set()
        for key, value in self._values.items():
            if self.is_secure(key):
                found |= secret_strings(value)
        return frozenset(found)

    def echo(self) -> dict[str, dict[str, Json]]:
        """``properties.parameters`` of a deployment response: ``{name: {type, value}}``, without the
        value of secure parameters."""
        result: dict[str, dict[str, Json]] = {}
        for key, definition in self._template.parameters.items():
            if key not in self._values:
                continue
            entry: dict[str, Json] = {"type": definition.type.display}
            if not definition.type.secure:
                entry["value"] = copy.deepcopy(self._values[key])
            result[definition.name] = entry
        return result


def bind_parameters(
    template: Template,
    parameters: Mapping[str, Any] | None,
    context: DeploymentContext,
    *,
    base_path: str = "properties.parameters",
) -> BoundParameters:
    """Check ``parameters`` (``{"name": {"value": v}}``) against ``template`` and fill defaults.

    Raises :class:`ParameterError` (``InvalidTemplate``),
    :class:`~moorage.core.errors.InvalidArgument` (``InvalidRequestContent``) for entries that
    are not ``{"value": ...}`` objects, or :class:`TemplateFeatureNotSupported` for Key Vault
    references.
    """
    provided = _provided_values(template, parameters or {}, base_path)
    binder = _Binder(template, context, provided, base_path)
    values = {key: binder.resolve(key) for key in template.parameters}
    return BoundParameters(template, values)


def _provided_values(template: Template, parameters: Mapping[str, Any], base_path: str) -> dict[str, Json]:
    if not isinstance(parameters, Mapping):
        raise InvalidArgument(
            "The request content was invalid and could not be deserialized: 'The deployment parameters "
            f"must be a JSON object. Path '{base_path}'.'",
            code="InvalidRequestContent",
            target=base_path,
        )
    provided: dict[str, Json] = {}
    unknown: list[str] = []
    for name, entry in parameters.items():
        path = child_path(base_path, name)
        if not isinstance(entry, Mapping):
            raise InvalidArgument(
                "The request content was invalid and could not be deserialized: 'Error converting value "
                "to type 'DeploymentParameterDefinition': a parameter must be an object with a 'value'. "
                f"Path '{path}'.'",
                code="InvalidRequestContent",
                target=path,
            )
        fields = {str(k).casefold(): v for k, v in entry.items()}
        if "reference" in fields:
            raise TemplateFeatureNotSupported(
                f"The deployment parameter '{name}' is a Key Vault reference ('reference'). Key Vault "
                "parameter references are not supported by moorage: pass the value itself (a securestring "
                "parameter keeps it out of responses)."
            )
        if "value" not in fields:
            raise InvalidArgument(
                "The request content was invalid and could not be deserialized: 'Required property "
                f"'value' not found in JSON. Path '{path}'.'",
                code="InvalidRequestContent",
                target=path,
            )
        if template.parameter(name) is None:
            unknown.append(name)
            continue
        provided[name.casefold()] = fields["value"]
    if unknown:
        supported = ", ".join(d.name for d in template.parameters.values())
        raise ParameterError(
            validation_failed(
                f"The template parameters '{', '.join(unknown)}' in the parameters file are not valid; they "
                "are not present in the original template and can therefore not be provided at deployment "
                f"time. The only supported parameters for this template are '{supported}'. Please see "
                f"{PARAMETER_VALUES_HELP} for usage details."
            ),
            path=child_path(base_path, unknown[0]),
        )
    return provided


class _Binder:
    """Resolves parameter values in dependency order (a default may use other parameters)."""

    def __init__(
        self, template: Template, context: DeploymentContext, provided: dict[str, Json], base_path: str
    ) -> None:
        self.template = template
        self.provided = provided
        self.base_path = base_path
        self.resolved: dict[str, Json] = {}
        self.in_progress: set[str] = set()
        secrets: set[str] = set()
        for key, value in provided.items():
            definition = template.parameters[key]
            if definition.type.secure:
                secrets |= secret_strings(value)
        self.shared = Shared(template=template, context=context, parameters=self, secrets=frozenset(secrets))

    def value(self, name: str) -> tuple[bool, Json]:
        key = name.casefold()
        if key not in self.template.parameters:
            return False, None
        if key in self.in_progress:
            raise ExpressionError(
                f"The template parameter '{self.template.parameters[key].name}' refers to itself through a "
                "circular reference."
            )
        return True, copy.deepcopy(self.resolve(key))

    def resolve(self, key: str) -> Json:
        if key in self.resolved:
            return self.resolved[key]
        definition = self.template.parameters[key]
        if key in self.provided:
            value = self.provided[key]
            path = child_path(self.base_path, definition.name)
        elif definition.default is not None:
            value = self._default(definition, definition.default)
            path = definition.path
        elif definition.nullable:
            self.resolved[key] = None
            return None
        else:
            raise ParameterError(
                validation_failed(
                    f"The value for the template parameter '{definition.name}' at path '{definition.path}' "
                    f"is not provided. Please see {PARAMETER_FILE_HELP} for usage details."
                ),
                path=definition.path,
            )
        _check(definition, value, path)
        if definition.type.secure:
            self.shared.secrets = self.shared.secrets | frozenset(secret_strings(value))
        self.resolved[key] = value
        return value

    def _default(self, definition: ParameterDefinition, default: Node) -> Json:
        key = definition.name.casefold()
        self.in_progress.add(key)
        try:
            return evaluate_node(default, Scope(self.shared, PARAMETER_DEFAULT))
        except ExpressionError as exc:
            raise wrap_error(
                exc,
                lambda inner: validation_failed(
                    f"The template parameter '{definition.name}' at path '{definition.path}' is not valid: "
                    f"{inner}. Please see {FUNCTIONS_HELP} for usage details."
                ),
                definition.path,
                self.shared.secrets,
            ) from exc
        finally:
            self.in_progress.discard(key)


def _check(definition: ParameterDefinition, value: Json, path: str) -> None:
    kind = definition.type
    if value is None and definition.nullable:
        return
    if not check_type(value, kind.value):
        expected = (
            "String, Uri" if kind in (ParameterType.STRING, ParameterType.SECURE_STRING) else kind.json_type
        )
        raise ParameterError(
            validation_failed(
                f"Template parameter JToken type is not valid. Expected '{expected}'. Actual "
                f"'{type_name(value)}'. Please see {PARAMETER_TYPES_HELP} for usage details."
            ),
            path=path,
        )

    def invalid(reason: str) -> ParameterError:
        return ParameterError(
            validation_failed(
                f"The provided value for the template parameter '{definition.name}' at path '{path}' is not "
                f"valid. {reason}"
            ),
            path=path,
        )

    if definition.allowed_values is not None:
        allowed = definition.allowed_values
        candidates = (
            value if isinstance(value, list) and not any(isinstance(a, list) for a in allowed) else [value]
        )
        for candidate in candidates:
            if not any(deep_equal(candidate, option) for option in allowed):
                listed = ",".join(as_text(option) for option in allowed)
                raise invalid(f"The parameter value is not part of the allowed value(s): '{listed}'.")
    if isinstance(value, int) and not isinstance(value, bool):
        if definition.min_value is not None and value < definition.min_value:
            raise invalid(f"Value should be greater than or equal to '{definition.min_value}'.")
        if definition.max_value is not None and value > definition.max_value:
            raise invalid(f"Value should be less than or equal to '{definition.max_value}'.")
    if isinstance(value, (str, list)):
        if definition.min_length is not None and len(value) < definition.min_length:
            raise invalid(
                f"Length of the value should be greater than or equal to '{definition.min_length}'."
            )
        if definition.max_length is not None and len(value) > definition.max_length:
            raise invalid(f"Length of the value should be less than or equal to '{definition.max_length}'.")
