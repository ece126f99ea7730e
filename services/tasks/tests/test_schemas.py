"""Task payloads: aliases, due dates as dates or date-times, and what OpenAPI says of them."""

from datetime import date
from typing import Any

import jsonschema_rs
import pytest

from pipedesk_common.errors import InvalidInput
from tasks_service.app import build_app
from tasks_service.schemas import TaskCreate, TaskUpdate, parse_due
from tasks_service.settings import TasksSettings


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2030-03-04", date(2030, 3, 4)),
        ("2030-03-04T23:30:00-05:00", date(2030, 3, 4)),
        ("2030-03-04T00:30:00+02:00", date(2030, 3, 4)),
        ("2030-03-04T10:00:00Z", date(2030, 3, 4)),
        (None, None),
    ],
)
def test_a_due_date_keeps_the_calendar_date_it_was_given_in(
    given: str | None, expected: date | None
) -> None:
    assert parse_due(given) == expected


@pytest.mark.parametrize("given", ["2030-02-30", "03/04/2030", "2030-03-04T10:00:00", "soon"])
def test_an_invalid_due_date_names_the_field(given: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskCreate.model_validate({"title": "x", "due": given})
    assert [error.field for error in refused.value.errors or []] == ["body.due"]


def test_aliases_make_the_same_payload() -> None:
    canonical = TaskCreate.model_validate({"title": "a", "notes": "b", "due": "2030-01-02"})
    aliased = TaskCreate.model_validate({"name": "a", "description": "b", "due_date": "2030-01-02"})
    assert canonical == aliased
    assert aliased.model_fields_set == canonical.model_fields_set


def test_conflicting_aliases_name_both_fields() -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskUpdate.model_validate({"due": "2030-01-02", "due_date": "2030-01-03"})
    assert [error.field for error in refused.value.errors or []] == ["body.due", "body.due_date"]


def test_openapi_documents_every_alias(service_env: dict[str, str]) -> None:
    schemas = build_app(TasksSettings(**service_env)).openapi()["components"]["schemas"]
    for name in ("TaskCreate", "TaskUpdate"):
        properties = schemas[name]["properties"]
        assert properties["name"]["description"] == "Alias of `title`."
        assert properties["description"]["description"] == "Alias of `notes`."
        assert properties["due_date"]["description"] == "Alias of `due`."
    assert schemas["TaskListWrite"]["properties"]["name"]["description"] == "Alias of `title`."


def test_openapi_requires_a_new_tasks_title_under_exactly_one_of_its_names(
    service_env: dict[str, str],
) -> None:
    schemas = build_app(TasksSettings(**service_env)).openapi()["components"]["schemas"]
    one_name = {"oneOf": [{"required": ["title"]}, {"required": ["name"]}]}
    create = schemas["TaskCreate"]
    assert one_name in create["allOf"]
    assert create["properties"]["title"]["type"] == "string"
    assert create["properties"]["name"]["minLength"] == 1
    assert one_name in schemas["TaskListWrite"]["allOf"]
    assert "title" not in schemas["TaskUpdate"].get("required", [])
    with pytest.raises(InvalidInput):
        TaskCreate.model_validate({"title": "a", "name": "b"})


def test_openapi_says_a_due_date_is_a_date_or_a_date_time(service_env: dict[str, str]) -> None:
    schemas = build_app(TasksSettings(**service_env)).openapi()["components"]["schemas"]
    for name in ("TaskCreate", "TaskUpdate"):
        for field in ("due", "due_date"):
            members = schemas[name]["properties"][field]["anyOf"]
            assert [member.get("format") for member in members] == ["date", "date-time", None]


@pytest.mark.parametrize(
    ("payload", "valid"),
    [
        ({"title": "Call back"}, True),
        ({"name": "Call back"}, True),
        ({"notes": "later"}, True),
        ({"title": None}, False),
        ({"name": None}, False),
        ({"title": ""}, False),
        ({"title": "a", "name": "b"}, False),
    ],
)
def test_a_changed_title_is_documented_as_the_service_takes_it(
    payload: dict[str, Any], valid: bool
) -> None:
    """A title sent in a change is a non-empty string: null or empty is refused (422)."""
    assert jsonschema_rs.validator_for(TaskUpdate.model_json_schema()).is_valid(payload) is valid
