"""``parse_template``: a template document (parsed JSON) into a validated :class:`Template`.

Checks the document's shape (member names and types, as Json.NET would when ARM deserializes it),
compiles every expression (syntax errors surface here, with their path and position), flattens
nested child resources, and records copy loops, conditions and dependencies for expansion.
Member names match case-insensitively, as in ARM. Resources accept members the template language
does not know (``managedBy``, ``extendedLocation``...): they are passed to the resource provider.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from moorage.deployments.templates.errors import (
    RESOURCES_HELP,
    TemplateError,
    TemplateFeatureNotSupported,
    validation_failed,
)
from moorage.deployments.templates.model import (
    CopyDefinition,
    OutputDefinition,
    ParameterDefinition,
    ParameterType,
    ResourceDefinition,
    Template,
    UserFunction,
    VariableDefinition,
)
from moorage.deployments.templates.nodes import Const, Node, ObjectNode, child_path, compile_value
from moorage.deployments.templates.values import Json, is_int, type_name

_TEMPLATE_MEMBERS = {
    "$schema",
    "contentversion",
    "apiprofile",
    "languageversion",
    "metadata",
    "parameters",
    "variables",
    "functions",
    "resources",
    "outputs",
    "definitions",
}
_PARAMETER_MEMBERS = {
    "type",
    "defaultvalue",
    "allowedvalues",
    "minvalue",
    "maxvalue",
    "minlength",
    "maxlength",
    "metadata",
    "nullable",
    "$ref",  # refused with TemplateFeatureNotSupported
    # languageVersion 2.0 type refinements, accepted and not enforced
    "items",
    "properties",
    "additionalproperties",
    "sealed",
    "prefixitems",
    "discriminator",
}
_OUTPUT_MEMBERS = {"type", "value", "copy", "condition", "metadata"}
#: Resource members that belong to the template language; all others go to the provider.
_RESOURCE_TEMPLATE_MEMBERS = {
    "type",
    "apiversion",
    "name",
    "dependson",
    "condition",
    "copy",
    "scope",
    "resources",
    "comments",
    "metadata",
    "existing",
}
#: ARM's template limits (learn.microsoft.com .../templates/best-practices#template-limits).
MAX_PARAMETERS = 256
MAX_VARIABLES = 256
MAX_OUTPUTS = 64
_CONTENT_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")
_TYPE_LIST = "string, securestring, int, bool, object, secureObject, array"


def parse_template(doc: Mapping[str, Any], *, base_path: str = "properties.template") -> Template:
    """Validate and compile a template document.

    ``base_path`` prefixes the JSON paths in errors (the template's place in the request body).
    Raises :class:`TemplateError` (``InvalidTemplate``) for a malformed document or expression,
    and :class:`TemplateFeatureNotSupported` for valid ARM this host does not implement.
    """
    if not isinstance(doc, Mapping):
        raise TemplateError(validation_failed("The template must be a JSON object."), path=base_path)
    members = _members(doc, base_path, "Template", _TEMPLATE_MEMBERS)
    schema = _optional_string(members, "$schema", base_path)
    content_version = _optional_string(members, "contentversion", base_path)
    if content_version is not None and not _CONTENT_VERSION.match(content_version):
        raise TemplateError(
            validation_failed(
                f"The template content version '{content_version}' is not valid. It must be four numbers "
                "separated by dots, such as '1.0.0.0'."
            ),
            path=child_path(base_path, "contentVersion"),
        )
    if "resources" not in members:
        raise TemplateError(
            validation_failed(f"Required property 'resources' not found in JSON. Path '{base_path}'."),
            path=base_path,
        )
    if "definitions" in members and members["definitions"][1]:
        raise TemplateFeatureNotSupported(
            "Template type definitions ('definitions', languageVersion 2.0) are not supported."
        )
    parameters = _parameters(members.get("parameters"), base_path)
    variables = _variables(members.get("variables"), base_path)
    functions = _functions(members.get("functions"), base_path)
    resources = _resources(members["resources"], base_path)
    outputs = _outputs(members.get("outputs"), base_path)
    for what, count, limit in (
        ("parameters", len(parameters), MAX_PARAMETERS),
        ("variables", len(variables), MAX_VARIABLES),
        ("outputs", len(outputs), MAX_OUTPUTS),
    ):
        if count > limit:
            raise TemplateError(
                validation_failed(
                    f"The number of template {what} limit exceeded. Limit: '{limit}' and actual: '{count}'."
                ),
                path=child_path(base_path, what),
            )
    return Template(
        schema=schema,
        content_version=content_version,
        parameters=parameters,
        variables=variables,
        functions=functions,
        resources=resources,
        outputs=outputs,
        base_path=base_path,
        raw=dict(doc),
    )


# --- helpers ------------------------------------------------------------------------------------


def _members(
    obj: Mapping[str, Any], path: str, type_label: str, allowed: set[str] | None
) -> dict[str, tuple[str, Any]]:
    """Members by folded name -> (name as written, value); unknown names raise as Json.NET does."""
    result: dict[str, tuple[str, Any]] = {}
    for key, value in obj.items():
        folded = str(key).casefold()
        if allowed is not None and folded not in allowed:
            member_path = child_path(path, str(key))
            raise TemplateError(
                f"Deployment template parse failed: 'Could not find member '{key}' on object of type "
                f"'{type_label}'. Path '{member_path}'.'.",
                path=member_path,
            )
        if folded in result:
            raise TemplateError(
                validation_failed(f"The property '{key}' is defined more than once at path '{path}'."),
                path=path,
            )
        result[folded] = (str(key), value)
    return result


def _type_error(path: str, expected: str, value: object) -> TemplateError:
    return TemplateError(
        validation_failed(
            f"The value at path '{path}' is not valid: expected a value of type '{expected}', got "
            f"'{type_name(value)}'."
        ),
        path=path,
    )


def _optional_string(members: Mapping[str, tuple[str, Any]], key: str, path: str) -> str | None:
    if key not in members:
        return None
    name, value = members[key]
    if not isinstance(value, str):
        raise _type_error(child_path(path, name), "String", value)
    return value


def _object(value: object, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _type_error(path, "Object", value)
    return value


def _optional_int(members: Mapping[str, tuple[str, Any]], key: str, path: str) -> int | None:
    if key not in members:
        return None
    name, value = members[key]
    if not is_int(value):
        raise _type_error(child_path(path, name), "Integer", value)
    return int(value)


# --- parameters ---------------------------------------------------------------------------------


def _parameters(entry: tuple[str, Any] | None, base: str) -> dict[str, ParameterDefinition]:
    if entry is None:
        return {}
    name_written, raw = entry
    section_path = child_path(base, name_written)
    result: dict[str, ParameterDefinition] = {}
    for name, definition in _object(raw, section_path).items():
        path = child_path(section_path, name)
        if name.casefold() in result:
            raise TemplateError(
                validation_failed(f"The template parameter '{name}' is defined more than once."), path=path
            )
        members = _members(_object(definition, path), path, "TemplateParameter", _PARAMETER_MEMBERS)
        if "type" not in members:
            if "$ref" in members:
                raise TemplateFeatureNotSupported(
                    f"The template parameter '{name}' uses a type reference ('$ref'), which is not supported."
                )
            raise TemplateError(
                validation_failed(
                    f"The template parameter '{name}' at path '{path}' is not valid: the 'type' is missing."
                ),
                path=path,
            )
        type_text = members["type"][1]
        kind = ParameterType.parse(type_text) if isinstance(type_text, str) else None
        if kind is None:
            raise TemplateError(
                validation_failed(
                    f"The template parameter '{name}' at path '{path}' has an invalid type '{type_text}'. "
                    f"The supported types are '{_TYPE_LIST}'."
                ),
                path=child_path(path, "type"),
            )
        default: Node | None = None
        if "defaultvalue" in members:
            written, value = members["defaultvalue"]
            default = compile_value(value, child_path(path, written))
        allowed: tuple[Json, ...] | None = None
        if "allowedvalues" in members:
            written, values = members["allowedvalues"]
            if not isinstance(values, list) or not values:
                raise _type_error(child_path(path, written), "Array (non-empty)", values)
            allowed = tuple(values)
        metadata = members.get("metadata", ("metadata", {}))[1]
        result[name.casefold()] = ParameterDefinition(
            name=name,
            type=kind,
            path=path,
            default=default,
            allowed_values=allowed,
            min_value=_optional_int(members, "minvalue", path),
            max_value=_optional_int(members, "maxvalue", path),
            min_length=_optional_int(members, "minlength", path),
            max_length=_optional_int(members, "maxlength", path),
            nullable="nullable" in members and members["nullable"][1] is True,
            metadata=dict(_object(metadata, child_path(path, "metadata"))),
        )
    return result


# --- variables and functions --------------------------------------------------------------------


def _variables(entry: tuple[str, Any] | None, base: str) -> dict[str, VariableDefinition]:
    if entry is None:
        return {}
    written, raw = entry
    section_path = child_path(base, written)
    result: dict[str, VariableDefinition] = {}

    def add(definition: VariableDefinition) -> None:
        if definition.name.casefold() in result:
            raise TemplateError(
                validation_failed(f"The template variable '{definition.name}' is defined more than once."),
                path=definition.path,
            )
        result[definition.name.casefold()] = definition

    for name, value in _object(raw, section_path).items():
        path = child_path(section_path, name)
        if name.casefold() == "copy":
            if not isinstance(value, list):
                raise _type_error(path, "Array", value)
            for i, loop in enumerate(value):
                loop_path = child_path(path, i)
                fields = _members(
                    _object(loop, loop_path), loop_path, "TemplateVariableCopy", {"name", "count", "input"}
                )
                loop_name = fields.get("name", ("name", None))[1]
                if (
                    not isinstance(loop_name, str)
                    or not loop_name
                    or "count" not in fields
                    or "input" not in fields
                ):
                    raise TemplateError(
                        validation_failed(
                            f"The variable copy loop at path '{loop_path}' must have a 'name', a 'count' "
                            "and an 'input'."
                        ),
                        path=loop_path,
                    )
                add(
                    VariableDefinition(
                        name=loop_name,
                        value=compile_value(
                            fields["input"][1], child_path(loop_path, "input"), property_loops=True
                        ),
                        path=loop_path,
                        loop_count=compile_value(fields["count"][1], child_path(loop_path, "count")),
                    )
                )
            continue
        add(VariableDefinition(name=name, value=compile_value(value, path, property_loops=True), path=path))
    return result


def _functions(entry: tuple[str, Any] | None, base: str) -> dict[str, UserFunction]:
    if entry is None:
        return {}
    written, raw = entry
    section_path = child_path(base, written)
    if not isinstance(raw, list):
        raise _type_error(section_path, "Array", raw)
    result: dict[str, UserFunction] = {}
    for i, namespace_def in enumerate(raw):
        ns_path = child_path(section_path, i)
        ns_members = _members(
            _object(namespace_def, ns_path), ns_path, "TemplateFunctionNamespace", {"namespace", "members"}
        )
        namespace = ns_members.get("namespace", ("namespace", None))[1]
        if not isinstance(namespace, str) or not namespace:
            raise _type_error(child_path(ns_path, "namespace"), "String", namespace)
        members_path = child_path(ns_path, "members")
        for name, fn in _object(ns_members.get("members", ("members", {}))[1], members_path).items():
            fn_path = child_path(members_path, name)
            fn_members = _members(
                _object(fn, fn_path), fn_path, "TemplateFunction", {"parameters", "output", "metadata"}
            )
            params: list[tuple[str, ParameterType]] = []
            params_raw = fn_members.get("parameters", ("parameters", []))[1]
            if not isinstance(params_raw, list):
                raise _type_error(child_path(fn_path, "parameters"), "Array", params_raw)
            for j, param in enumerate(params_raw):
                param_path = child_path(child_path(fn_path, "parameters"), j)
                param_members = _members(
                    _object(param, param_path),
                    param_path,
                    "TemplateFunctionParameter",
                    {"name", "type", "metadata"},
                )
                param_name = param_members.get("name", ("name", None))[1]
                param_type = param_members.get("type", ("type", None))[1]
                kind = ParameterType.parse(param_type) if isinstance(param_type, str) else None
                if not isinstance(param_name, str) or not param_name or kind is None:
                    raise TemplateError(
                        validation_failed(
                            f"The user-defined function parameter at path '{param_path}' must have a 'name' "
                            f"and a 'type' among '{_TYPE_LIST}'."
                        ),
                        path=param_path,
                    )
                params.append((param_name, kind))
            output_path = child_path(fn_path, "output")
            output = _members(
                _object(fn_members.get("output", ("output", None))[1], output_path),
                output_path,
                "TemplateFunctionOutput",
                {"type", "value"},
            )
            output_type = output.get("type", ("type", None))[1]
            out_kind = ParameterType.parse(output_type) if isinstance(output_type, str) else None
            if out_kind is None or "value" not in output:
                raise TemplateError(
                    validation_failed(
                        f"The user-defined function '{namespace}.{name}' must have an output with a 'type' "
                        "and a 'value'."
                    ),
                    path=output_path,
                )
            key = f"{namespace}.{name}".casefold()
            if key in result:
                raise TemplateError(
                    validation_failed(
                        f"The user-defined function '{namespace}.{name}' is defined more than once."
                    ),
                    path=fn_path,
                )
            result[key] = UserFunction(
                namespace=namespace,
                name=name,
                parameters=tuple(params),
                output_type=out_kind,
                output=compile_value(output["value"][1], child_path(output_path, "value")),
                path=fn_path,
            )
    return result


# --- resources ----------------------------------------------------------------------------------


def _resources(entry: tuple[str, Any], base: str) -> tuple[ResourceDefinition, ...]:
    written, raw = entry
    section_path = child_path(base, written)
    flattened: list[ResourceDefinition] = []
    if isinstance(raw, Mapping):  # languageVersion 2.0: resources keyed by symbolic name
        for symbolic, resource in raw.items():
            _resource(resource, child_path(section_path, symbolic), None, str(symbolic), flattened)
    elif isinstance(raw, list):
        for i, resource in enumerate(raw):
            _resource(resource, child_path(section_path, i), None, None, flattened)
    else:
        raise _type_error(section_path, "Array", raw)
    symbols = [r.symbolic_name.casefold() for r in flattened if r.symbolic_name]
    if len(symbols) != len(set(symbols)):
        raise TemplateError(
            validation_failed("Two resources have the same symbolic name."), path=section_path
        )
    return tuple(flattened)


def _resource(
    raw: object,
    path: str,
    parent: ResourceDefinition | None,
    symbolic_name: str | None,
    out: list[ResourceDefinition],
) -> None:
    members = _members(_object(raw, path), path, "TemplateResource", None)
    name_entry = members.get("name")
    display = str(name_entry[1]) if name_entry else path

    def invalid(reason: str, at: str = path) -> TemplateError:
        return TemplateError(
            validation_failed(
                f"The template resource '{display}' at path '{path}' is not valid: {reason}. Please see "
                f"{RESOURCES_HELP} for usage details."
            ),
            path=at,
        )

    existing_entry = members.get("existing")
    existing = bool(existing_entry and existing_entry[1] is True)
    resource_type = _resource_type(members, parent, path, invalid)
    if name_entry is None:
        raise invalid("the 'name' property is required")
    api_entry = members.get("apiversion")
    if api_entry is None and not existing:
        raise invalid("the 'apiVersion' property is required")
    condition = _optional_node(members, "condition", path)
    if isinstance(condition, Const) and not isinstance(condition.value, bool):
        raise invalid("the condition must be a boolean or an expression", condition.path)
    copy_def = _copy(members.get("copy"), path, invalid)
    scope = _optional_node(members, "scope", path)
    depends_on = _depends_on(members, path)
    comments = members.get("comments", ("comments", None))[1]
    body_raw: dict[str, Any] = {}
    for folded, (written, value) in members.items():
        if folded not in _RESOURCE_TEMPLATE_MEMBERS:
            body_raw[written] = value
    body = _compile_body(body_raw, path)
    definition = ResourceDefinition(
        path=path,
        type=resource_type,
        api_version=compile_value(api_entry[1], child_path(path, api_entry[0])) if api_entry else None,
        name=compile_value(name_entry[1], child_path(path, name_entry[0])),
        body=body,
        condition=condition,
        copy=copy_def,
        depends_on=depends_on,
        scope=scope,
        parent=parent,
        symbolic_name=symbolic_name,
        existing=existing,
        comments=comments if isinstance(comments, str) else None,
    )
    out.append(definition)
    if "resources" in members:
        written, children = members["resources"]
        children_path = child_path(path, written)
        if not isinstance(children, list):
            raise _type_error(children_path, "Array", children)
        for i, child in enumerate(children):
            _resource(child, child_path(children_path, i), definition, None, out)


def _resource_type(
    members: Mapping[str, tuple[str, Any]],
    parent: ResourceDefinition | None,
    path: str,
    invalid: Callable[..., TemplateError],
) -> str:
    type_entry = members.get("type")
    if type_entry is None or not isinstance(type_entry[1], str) or not type_entry[1]:
        raise invalid("the 'type' property is required")
    resource_type: str = type_entry[1]
    if resource_type.startswith("["):
        raise invalid("the type property cannot be an expression", child_path(path, type_entry[0]))
    if parent is not None and not _is_full_type(resource_type, parent.type):
        resource_type = f"{parent.type}/{resource_type}"
    if "/" not in resource_type.strip("/"):
        raise invalid(f"the type '{resource_type}' is not a valid resource type ('Namespace/type')")
    return resource_type


def _optional_node(members: Mapping[str, tuple[str, Any]], key: str, path: str) -> Node | None:
    if key not in members:
        return None
    written, value = members[key]
    return compile_value(value, child_path(path, written))


def _depends_on(members: Mapping[str, tuple[str, Any]], path: str) -> tuple[Node, ...]:
    if "dependson" not in members:
        return ()
    written, entries = members["dependson"]
    dep_path = child_path(path, written)
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise _type_error(dep_path, "Array of String", entries)
    return tuple(compile_value(e, child_path(dep_path, i)) for i, e in enumerate(entries))


def _is_full_type(child_type: str, parent_type: str) -> bool:
    """A nested child may give its type in full (``Microsoft.Network/virtualNetworks/subnets``) or
    relative to its parent (``subnets``)."""
    return child_type.casefold().startswith(parent_type.casefold() + "/")


def _compile_body(body_raw: dict[str, Any], path: str) -> Node:
    # Property loops ("copy" arrays) are only a template feature inside "properties".
    compiled: dict[str, Node] = {}
    for key, value in body_raw.items():
        compiled[key] = compile_value(
            value, child_path(path, key), property_loops=key.casefold() == "properties"
        )
    if all(isinstance(v, Const) for v in compiled.values()):
        return Const({k: v.value for k, v in compiled.items() if isinstance(v, Const)}, path)
    return ObjectNode(tuple(compiled.items()), (), path)


def _copy(
    entry: tuple[str, Any] | None, path: str, invalid: Callable[..., TemplateError]
) -> CopyDefinition | None:
    if entry is None:
        return None
    written, raw = entry
    copy_path = child_path(path, written)
    fields = _members(
        _object(raw, copy_path), copy_path, "TemplateResourceCopy", {"name", "count", "mode", "batchsize"}
    )
    name = fields.get("name", ("name", None))[1]
    if not isinstance(name, str) or not name:
        raise invalid("the copy loop must have a 'name'", copy_path)
    if "count" not in fields:
        raise invalid("the copy loop must have a 'count'", copy_path)
    mode_text = fields.get("mode", ("mode", "Parallel"))[1]
    if not isinstance(mode_text, str) or mode_text.casefold() not in ("parallel", "serial"):
        raise invalid("the copy mode must be 'Parallel' or 'Serial'", copy_path)
    mode: Any = "Serial" if mode_text.casefold() == "serial" else "Parallel"
    batch = fields.get("batchsize")
    return CopyDefinition(
        name=name,
        count=compile_value(fields["count"][1], child_path(copy_path, fields["count"][0])),
        mode=mode,
        batch_size=compile_value(batch[1], child_path(copy_path, batch[0])) if batch else None,
        path=copy_path,
    )


# --- outputs ------------------------------------------------------------------------------------


def _outputs(entry: tuple[str, Any] | None, base: str) -> tuple[OutputDefinition, ...]:
    if entry is None:
        return ()
    written, raw = entry
    section_path = child_path(base, written)
    result: list[OutputDefinition] = []
    seen: set[str] = set()
    for name, definition in _object(raw, section_path).items():
        path = child_path(section_path, name)
        if name.casefold() in seen:
            raise TemplateError(
                validation_failed(f"The template output '{name}' is defined more than once."), path=path
            )
        seen.add(name.casefold())
        members = _members(_object(definition, path), path, "TemplateOutput", _OUTPUT_MEMBERS)
        type_text = members.get("type", ("type", None))[1]
        kind = ParameterType.parse(type_text) if isinstance(type_text, str) else None
        if kind is None:
            raise TemplateError(
                validation_failed(
                    f"The template output '{name}' at path '{path}' has an invalid type '{type_text}'. The "
                    f"supported types are '{_TYPE_LIST}'."
                ),
                path=path,
            )
        value = None
        if "value" in members:
            value = compile_value(
                members["value"][1], child_path(path, members["value"][0]), property_loops=True
            )
        copy_count = copy_input = None
        if "copy" in members:
            copy_path = child_path(path, members["copy"][0])
            fields = _members(
                _object(members["copy"][1], copy_path), copy_path, "TemplateOutputCopy", {"count", "input"}
            )
            if "count" not in fields or "input" not in fields:
                raise TemplateError(
                    validation_failed(
                        f"The output copy at path '{copy_path}' must have a 'count' and an 'input'."
                    ),
                    path=copy_path,
                )
            copy_count = compile_value(fields["count"][1], child_path(copy_path, "count"))
            copy_input = compile_value(
                fields["input"][1], child_path(copy_path, "input"), property_loops=True
            )
        if (value is None) == (copy_count is None):
            raise TemplateError(
                validation_failed(f"The template output '{name}' must have either a 'value' or a 'copy'."),
                path=path,
            )
        condition = None
        if "condition" in members:
            condition = compile_value(members["condition"][1], child_path(path, members["condition"][0]))
        result.append(
            OutputDefinition(
                name=name,
                type=kind,
                path=path,
                value=value,
                copy_count=copy_count,
                copy_input=copy_input,
                condition=condition,
            )
        )
    return tuple(result)
