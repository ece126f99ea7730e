"""The payload shapes the frontend sends normalize into one; conflicting aliases are refused."""

from datetime import UTC, date, datetime
from typing import Any

import pytest

from calendar_service.app import build_app
from calendar_service.schemas import (
    ALIASES,
    EventCreate,
    check_span,
    normalize_attendees,
    parse_occurrence,
    parse_when,
)
from calendar_service.settings import CalendarSettings
from pipedesk_common.aliases import resolve_aliases
from pipedesk_common.errors import InvalidInput


def test_each_alias_is_read_as_its_field() -> None:
    data = EventCreate.model_validate(
        {
            "title": "Kick-off",
            "notes": "Agenda",
            "startTime": "2026-03-02T10:00:00",
            "end_time": "2026-03-02T11:00:00",
            "time_zone": "Europe/Paris",
        }
    )
    start, end = data.times()
    assert data.summary == "Kick-off"
    assert data.description == "Agenda"
    assert data.timezone == "Europe/Paris"
    assert start is not None
    assert end is not None
    assert start.google() == {"dateTime": "2026-03-02T10:00:00+01:00", "timeZone": "Europe/Paris"}
    assert end.instant() == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("canonical", "alias"),
    [(canonical, alias) for canonical, aliases in ALIASES.items() for alias in aliases]
    + [("start_time", "startTime"), ("end_time", "endTime")],
)
def test_two_names_of_one_field_are_refused_naming_both(canonical: str, alias: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        resolve_aliases({canonical: "x", alias: "y"}, ALIASES)
    assert refused.value.errors is not None
    assert {error.field for error in refused.value.errors} == {f"body.{canonical}", f"body.{alias}"}
    assert canonical in str(refused.value.detail)
    assert alias in str(refused.value.detail)


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-02T10:00:00+01:00",
        "2026-03-02T09:00:00Z",
        {"dateTime": "2026-03-02T10:00:00", "timeZone": "Europe/Paris"},
        {"dateTime": "2026-03-02T10:00:00+01:00"},
    ],
)
def test_every_time_shape_is_the_same_instant(value: Any) -> None:
    data = EventCreate.model_validate({"start": value, "end": "2026-03-02T12:00:00Z"})
    start, _ = data.times()
    assert start is not None
    assert start.instant() == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_all_day_events_take_dates_in_either_shape() -> None:
    data = EventCreate.model_validate({"start": "2026-03-02", "end": {"date": "2026-03-03"}})
    start, end = data.times()
    assert start is not None
    assert end is not None
    assert start.google() == {"date": "2026-03-02"}
    assert end.day == date(2026, 3, 3)
    check_span(start, end)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"start": "2026-03-02T10:00:00"}, "body.start"),
        ({"start": "2026-03-02T10:00:00Z", "timezone": "Mars/Olympus"}, "body.timezone"),
        ({"start": "not a time"}, "body.start"),
        ({"start": {"date": "2026-03-02", "dateTime": "2026-03-02T10:00:00Z"}}, "body.start"),
        ({"start": "2026-03-02", "all_day": False}, "body.all_day"),
    ],
)
def test_bad_times_name_their_field(payload: dict[str, Any], field: str) -> None:
    data = EventCreate.model_validate(payload)
    with pytest.raises(InvalidInput) as refused:
        data.times()
    assert refused.value.errors is not None
    assert refused.value.errors[0].field == field


def test_end_before_start_and_mixed_forms_are_refused() -> None:
    timed = parse_when("2026-03-02T10:00:00Z", "start", None)
    with pytest.raises(InvalidInput):
        check_span(timed, parse_when("2026-03-02T09:00:00Z", "end", None))
    with pytest.raises(InvalidInput):
        check_span(timed, parse_when("2026-03-03", "end", None))


def test_attendees_as_strings_or_objects_become_one_list() -> None:
    data = EventCreate.model_validate(
        {
            "attendees": [
                "Ann@Example.com",
                {"email": "bob@example.com", "optional": True, "displayName": "Bob"},
                "ann@example.com",
            ]
        }
    )
    assert normalize_attendees(data.attendees or []) == [
        {"email": "ann@example.com"},
        {"email": "bob@example.com", "optional": True, "displayName": "Bob"},
    ]
    with pytest.raises(InvalidInput) as refused:
        normalize_attendees(["not-an-email"])
    assert refused.value.errors is not None
    assert refused.value.errors[0].field == "body.attendees.0"


def test_openapi_says_an_occurrence_is_a_date_or_a_date_time(service_env: dict[str, str]) -> None:
    document = build_app(CalendarSettings(**service_env)).openapi()
    for method in ("patch", "delete"):
        parameters = document["paths"]["/api/calendar/events/{event_id}"][method]["parameters"]
        (occurrence,) = [p for p in parameters if p["name"] == "occurrence"]
        formats = [member["format"] for member in occurrence["schema"]["anyOf"]]
        assert formats == ["date", "date-time"], method
    assert parse_occurrence("2030-03-04").day == date(2030, 3, 4)
    with pytest.raises(InvalidInput):
        parse_occurrence("occurrence")
