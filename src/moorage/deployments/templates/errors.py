"""Errors of the template language.

Every error a template can cause is a :class:`TemplateError` (kind
:class:`~moorage.core.errors.InvalidArgument`, code ``InvalidTemplate``), the code Azure uses for
template syntax, parameter and expression errors. Messages follow Azure's wording ("Deployment
template validation failed: 'The template resource ... is not valid: ...'."), with one deliberate
difference: Azure names the line and column of the offending JSON token; this package works on
parsed JSON and names its JSON path instead ("at path 'properties.template.resources[0].name'").
The path is also in :attr:`TemplateError.path` and in the ``TemplateViolation`` additionalInfo
entry Azure attaches (``{"lineNumber": 0, "linePosition": 0, "path": ...}``).

Expression faults carry :attr:`TemplateError.position`: the 0-based offset of the faulty token or
call inside the JSON string that holds the expression (the leading ``[`` is offset 0).

Messages never contain the values of secure parameters: callers build them from names, types and
positions, and the evaluator additionally redacts any secure value that slipped in.
"""

from __future__ import annotations

from collections.abc import Sequence

from moorage.core.errors import AdditionalInfo, ErrorDetail, InvalidArgument, NotSupported

#: Where Azure's messages send readers; kept so that messages read like Azure's.
FUNCTIONS_HELP = "https://aka.ms/arm-functions"
EXPRESSIONS_HELP = "https://aka.ms/arm-template-expressions"
RESOURCES_HELP = "https://aka.ms/arm-syntax-resources"
PARAMETER_FILE_HELP = "https://aka.ms/arm-create-parameter-file"
PARAMETER_VALUES_HELP = "https://aka.ms/arm-pass-parameter-values"
PARAMETER_TYPES_HELP = "https://aka.ms/resource-manager-parameter-files"
SYNTAX_HELP = "https://aka.ms/arm-syntax"


class TemplateError(InvalidArgument):
    """A template, its parameters or one of its expressions is not valid (``InvalidTemplate``).

    ``path`` is the JSON path of the offending value (``properties.template.resources[2].name``)
    when one is known; ``position`` is the offset of the fault inside that value's expression
    string, when the fault is in an expression.
    """

    default_code = "InvalidTemplate"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        position: int | None = None,
        code: str | None = None,
        details: Sequence[ErrorDetail] = (),
    ) -> None:
        info: list[AdditionalInfo] = []
        if path is not None:
            info.append(
                AdditionalInfo("TemplateViolation", {"lineNumber": 0, "linePosition": 0, "path": path})
            )
        super().__init__(message, code=code, target=path, details=details, additional_info=info)
        self.path = path
        self.position = position


class ExpressionError(TemplateError):
    """A fault inside one template language expression, before it is placed in its template.

    ``message`` is the inner text ("The template function 'foo' is not found..."); the code that
    evaluates a template value wraps it into the full Azure message for that place (a resource, an
    output) as a plain :class:`TemplateError` that keeps ``position``. ``path`` is set when the
    fault is in another value than the one being evaluated (a variable or a user-defined function
    it uses); ``position`` is then an offset in that value's string.
    """

    def __init__(
        self,
        message: str,
        *,
        position: int | None = None,
        expression: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, position=position, path=path)
        self.expression = expression


class ParameterError(TemplateError):
    """A deployment parameter value is missing, unknown, of the wrong type, or out of range."""


class OutputEvaluationError(TemplateError):
    """An output could not be evaluated after the resources were deployed
    (``DeploymentOutputEvaluationFailed``, with one detail per failed output)."""

    default_code = "DeploymentOutputEvaluationFailed"


class TemplateFeatureNotSupported(NotSupported):
    """Valid ARM, but not something this host implements (Key Vault parameter references,
    management-group scope, ...). The message names the feature."""

    default_code = "UnsupportedFeature"


def validation_failed(inner: str) -> str:
    """Azure's envelope for template validation messages."""
    return f"Deployment template validation failed: '{inner}'."


def redact(message: str, secrets: frozenset[str]) -> str:
    """``message`` with every secure value in ``secrets`` replaced by ``***`` (longest first, so
    that a secret containing another is removed whole)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and secret in message:
            message = message.replace(secret, "***")
    return message
