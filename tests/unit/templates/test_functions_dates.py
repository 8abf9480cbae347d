"""Date functions. The deployment context's clock is 2019-03-05T17:53:18Z, the time of the
utcNow() example in learn.microsoft.com .../templates/template-functions-date, so the expected
values there apply unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.deployments.templates import Json, TemplateError, bind_parameters, parse_template
from tests.unit.templates.support import CONTEXT, ev, template


def default_of(expression: str) -> Json:
    doc = template(parameters={"p": {"type": "string", "defaultValue": expression}})
    parsed = parse_template(doc)
    return bind_parameters(parsed, None, CONTEXT)["p"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("[utcNow()]", "20190305T175318Z"),  # docs
        ("[utcNow('d')]", "03/05/2019"),  # docs
        ("[utcNow('M d')]", "3 5"),  # docs
        ("[utcNow('u')]", "2019-03-05 17:53:18Z"),
        ("[utcNow('yyyy-MM-ddTHH:mm:ssZ')]", "2019-03-05T17:53:18Z"),
        ("[utcNow('o')]", "2019-03-05T17:53:18.0000000Z"),
        ("[utcNow('D')]", "Tuesday, 05 March 2019"),
        ("[utcNow('ddd MMM yy h:mm tt')]", "Tue Mar 19 5:53 PM"),
        ("[utcNow('yyyy''-''MM')]", "2019-03"),
    ],
)
def test_utc_now_formats(expression: str, expected: str) -> None:
    assert default_of(expression) == expected


def test_utc_now_outside_a_parameter_default_is_refused() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[utcNow()]")
    assert "The template function 'utcNow' is not expected at this location." in caught.value.message
    assert "only be used with parameter default values" in caught.value.message


def test_utc_now_in_a_variable_is_refused() -> None:
    doc: dict[str, Any] = template(variables={"now": "[utcNow()]"})
    with pytest.raises(TemplateError) as caught:
        ev("[variables('now')]", template=doc)
    assert "The template variable 'now' is not valid" in caught.value.message


def test_unknown_standard_format() -> None:
    with pytest.raises(TemplateError):
        default_of("[utcNow('q')]")


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        # docs: base time 2020-04-07 14:53:14Z; the article prints these values in this format.
        ("P3Y", "4/7/2023 2:53:14 PM"),
        ("-P9D", "3/29/2020 2:53:14 PM"),
        ("PT1H", "4/7/2020 3:53:14 PM"),
    ],
)
def test_date_time_add_documented_values(duration: str, expected: str) -> None:
    assert ev(f"[dateTimeAdd('2020-04-07 14:53:14Z', '{duration}', 'M/d/yyyy h:mm:ss tt')]") == expected


def test_date_time_add_keeps_the_format_of_its_base() -> None:
    assert ev("[dateTimeAdd('2020-04-07 14:53:14Z', 'PT1H')]") == "2020-04-07 15:53:14Z"
    assert ev("[dateTimeAdd('20190305T175318Z', 'P1D')]") == "20190306T175318Z"
    assert ev("[dateTimeAdd('2020-01-31T00:00:00Z', 'P1M')]") == "2020-02-29T00:00:00Z"


def test_date_time_add_with_weeks_minutes_and_fractional_seconds() -> None:
    assert ev("[dateTimeAdd('2020-01-01T00:00:00Z', 'P1WT1M1.5S', 'o')]") == "2020-01-08T00:01:01.5000000Z"


def test_date_time_add_rejects_bad_durations() -> None:
    for duration in ("P", "PT", "1D", "P1H", "P1DT"):
        with pytest.raises(TemplateError):
            ev(f"[dateTimeAdd('2020-01-01T00:00:00Z', '{duration}')]")


def test_epoch_conversions() -> None:
    # docs (template-functions-date#datetimefromepoch): 1683040573 -> 2023-05-02T15:16:13Z
    assert ev("[dateTimeFromEpoch(1683040573)]") == "2023-05-02T15:16:13Z"
    assert ev("[dateTimeToEpoch('2023-05-02T15:16:13Z')]") == 1683040573
    assert ev("[dateTimeToEpoch('2023-05-02T17:16:13+02:00')]") == 1683040573


def test_date_parsing_errors_do_not_echo_the_value() -> None:
    with pytest.raises(TemplateError) as caught:
        ev("[dateTimeToEpoch('yesterday-ish')]")
    assert "yesterday-ish" not in caught.value.message.split("'[")[0]
    assert "not a valid ISO 8601 date and time" in caught.value.message
