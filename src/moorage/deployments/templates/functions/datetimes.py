"""Date functions: ``utcNow`` (parameter default values only), ``dateTimeAdd``,
``dateTimeFromEpoch``, ``dateTimeToEpoch``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from moorage.deployments.templates.dates import (
    DEFAULT_UTCNOW_FORMAT,
    DateFormatError,
    add_duration,
    epoch_seconds,
    format_datetime,
    format_like,
    from_epoch,
    parse_datetime,
    parse_duration,
)
from moorage.deployments.templates.function_registry import function, int_arg, string_arg
from moorage.deployments.templates.values import Json

if TYPE_CHECKING:
    from moorage.deployments.templates.evaluator import Invocation


@function("utcNow", max_args=1)
def _utc_now(inv: Invocation, args: list[Json]) -> Json:
    if not inv.scope.permissions.nondeterministic:
        raise inv.not_expected("The function can only be used with parameter default values.")
    fmt = string_arg(inv, args, 0) if args else DEFAULT_UTCNOW_FORMAT
    try:
        return format_datetime(inv.scope.shared.context.now, fmt)
    except DateFormatError as exc:
        raise inv.fail(str(exc)) from None


@function("dateTimeAdd", min_args=2, max_args=3)
def _date_time_add(inv: Invocation, args: list[Json]) -> Json:
    base, duration = string_arg(inv, args, 0), string_arg(inv, args, 1)
    fmt = string_arg(inv, args, 2) if len(args) > 2 else format_like(base)
    try:
        return format_datetime(add_duration(parse_datetime(base), parse_duration(duration)), fmt)
    except DateFormatError as exc:
        raise inv.fail(str(exc)) from None


@function("dateTimeToEpoch", min_args=1, max_args=1)
def _date_time_to_epoch(inv: Invocation, args: list[Json]) -> Json:
    try:
        return epoch_seconds(parse_datetime(string_arg(inv, args, 0)))
    except DateFormatError as exc:
        raise inv.fail(str(exc)) from None


@function("dateTimeFromEpoch", min_args=1, max_args=1)
def _date_time_from_epoch(inv: Invocation, args: list[Json]) -> Json:
    try:
        return format_datetime(from_epoch(int_arg(inv, args, 0)), "yyyy-MM-ddTHH:mm:ssZ")
    except DateFormatError as exc:
        raise inv.fail(str(exc)) from None
