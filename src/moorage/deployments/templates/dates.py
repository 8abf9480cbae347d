"""Date and time as ARM handles them: .NET format strings (invariant culture), ISO 8601 input and
ISO 8601 durations.

ARM's ``utcNow(format)`` and ``dateTimeAdd(base, duration, format)`` take .NET *standard* format
strings (one character: ``d`` gives ``03/05/2019``, ``u`` gives ``2019-03-05 17:53:18Z``) or
*custom* ones (``yyyyMMddTHHmmssZ``, ``M d``). :func:`format_datetime` implements both for the
invariant culture ARM uses; all times are UTC.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

#: ``utcNow()`` without a format.
DEFAULT_UTCNOW_FORMAT = "yyyyMMddTHHmmssZ"

_STANDARD = {
    "d": "MM/dd/yyyy",
    "D": "dddd, dd MMMM yyyy",
    "f": "dddd, dd MMMM yyyy HH:mm",
    "F": "dddd, dd MMMM yyyy HH:mm:ss",
    "g": "MM/dd/yyyy HH:mm",
    "G": "MM/dd/yyyy HH:mm:ss",
    "m": "MMMM dd",
    "M": "MMMM dd",
    "o": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "O": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "r": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "R": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "s": "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
    "t": "HH:mm",
    "T": "HH:mm:ss",
    "u": "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
    "U": "dddd, dd MMMM yyyy HH:mm:ss",
    "y": "yyyy MMMM",
    "Y": "yyyy MMMM",
}

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class DateFormatError(ValueError):
    """A format string .NET would refuse, or a date/duration that does not parse."""


def format_datetime(moment: datetime, fmt: str) -> str:
    """``moment`` (UTC) written with a .NET standard or custom format string."""
    if len(fmt) == 1:
        if fmt not in _STANDARD:
            raise DateFormatError(f"the format '{fmt}' is not a standard date and time format")
        fmt = _STANDARD[fmt]
    return _custom(moment.astimezone(UTC), fmt)


def _custom(moment: datetime, fmt: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char in "'\"":
            end = fmt.find(char, i + 1)
            if end < 0:
                raise DateFormatError("the format string has an unterminated quoted literal")
            out.append(fmt[i + 1 : end])
            i = end + 1
            continue
        if char == "\\":
            if i + 1 >= len(fmt):
                raise DateFormatError("the format string ends with an escape character")
            out.append(fmt[i + 1])
            i += 2
            continue
        if char == "%":
            i += 1
            continue
        run = 1
        while i + run < len(fmt) and fmt[i + run] == char:
            run += 1
        out.append(_specifier(moment, char, run))
        i += run
    return "".join(out)


def _specifier(moment: datetime, char: str, run: int) -> str:
    if char == "y":
        year = moment.year
        return f"{year % 100:0{run}d}" if run <= 2 else f"{year:0{run}d}"
    if char == "M":
        if run >= 4:
            return _MONTHS[moment.month - 1]
        if run == 3:
            return _MONTHS[moment.month - 1][:3]
        return f"{moment.month:0{run}d}"
    if char == "d":
        if run >= 4:
            return _DAYS[moment.weekday()]
        if run == 3:
            return _DAYS[moment.weekday()][:3]
        return f"{moment.day:0{run}d}"
    if char == "H":
        return f"{moment.hour:0{min(run, 2)}d}"
    if char == "h":
        return f"{(moment.hour % 12) or 12:0{min(run, 2)}d}"
    if char == "m":
        return f"{moment.minute:0{min(run, 2)}d}"
    if char == "s":
        return f"{moment.second:0{min(run, 2)}d}"
    if char in "fF":
        if run > 7:
            raise DateFormatError("a fraction specifier has more than seven digits")
        digits = f"{moment.microsecond:06d}0"[:run]
        return digits if char == "f" else digits.rstrip("0")
    if char == "t":
        marker = "AM" if moment.hour < 12 else "PM"
        return marker[:1] if run == 1 else marker
    if char == "K":
        return "Z"
    if char == "z":
        return "+0" if run == 1 else ("+00" if run == 2 else "+00:00")
    if char == "g":
        return "A.D."
    return char * run


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date-time (``2020-04-07T14:53:14Z``, ``2020-04-07 14:53:14Z``,
    ``20190305T175318Z``, with or without fraction or offset) as an aware UTC datetime. Times
    without an offset are taken as UTC."""
    candidate = text.strip()
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError as exc:
        raise DateFormatError("the value is not a valid ISO 8601 date and time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


_FORMAT_OF_BASE = (
    (re.compile(r"^\d{8}T\d{6}Z$"), "yyyyMMddTHHmmssZ"),
    (re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z$"), "u"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"), "yyyy-MM-ddTHH:mm:ssZ"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$"), "o"),
)


def format_like(text: str) -> str:
    """The format string that reproduces the layout of ``text`` (``dateTimeAdd`` keeps the format
    of its base value); ISO 8601 ``yyyy-MM-ddTHH:mm:ssZ`` for layouts not recognised."""
    for pattern, fmt in _FORMAT_OF_BASE:
        if pattern.match(text):
            return fmt
    return "yyyy-MM-ddTHH:mm:ssZ"


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration: calendar part (years, months) and exact part."""

    negative: bool
    years: int
    months: int
    exact: timedelta


_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> Duration:
    """Parse ``P3Y``, ``-P9D``, ``PT1H30M``, ``P1DT0.5S``..."""
    match = _DURATION.match(text.strip())
    if not match or text.strip().rstrip("T").endswith("P") or text.strip().endswith("T"):
        raise DateFormatError("the value is not a valid ISO 8601 duration")
    parts = match.groupdict()
    exact = timedelta(
        weeks=int(parts["weeks"] or 0),
        days=int(parts["days"] or 0),
        hours=int(parts["hours"] or 0),
        minutes=int(parts["minutes"] or 0),
        seconds=float(parts["seconds"] or 0),
    )
    return Duration(bool(parts["sign"]), int(parts["years"] or 0), int(parts["months"] or 0), exact)


def add_duration(moment: datetime, duration: Duration) -> datetime:
    """``moment`` plus (or minus) ``duration``; adding months clamps the day to the month's end,
    as .NET's ``AddMonths`` does."""
    sign = -1 if duration.negative else 1
    total_months = moment.year * 12 + (moment.month - 1) + sign * (duration.years * 12 + duration.months)
    year, month = divmod(total_months, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise DateFormatError("the resulting date is outside the supported range")
    day = min(moment.day, calendar.monthrange(year, month)[1])
    shifted = moment.replace(year=year, month=month, day=day)
    try:
        return shifted + sign * duration.exact
    except OverflowError as exc:
        raise DateFormatError("the resulting date is outside the supported range") from exc


def epoch_seconds(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())


def from_epoch(seconds: int) -> datetime:
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError as exc:
        raise DateFormatError("the epoch value is outside the supported range") from exc
