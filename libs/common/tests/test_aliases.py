from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipedesk_common.aliases import documented_aliases, resolve_aliases
from pipedesk_common.errors import InvalidInput

ALIASES = {"title": ("name",), "notes": ("description", "body")}


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=documented_aliases(ALIASES))

    title: str | None = Field(None, description="The title.")
    notes: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        return resolve_aliases(data, ALIASES)


def test_an_alias_fills_its_canonical_field() -> None:
    assert Payload.model_validate({"name": "a", "body": "b"}) == Payload(title="a", notes="b")


def test_two_names_of_one_field_are_refused_naming_both() -> None:
    with pytest.raises(InvalidInput) as refused:
        Payload.model_validate({"notes": "a", "description": "b"})
    fields = [error.field for error in refused.value.errors or []]
    assert fields == ["body.notes", "body.description"]
    assert "`notes` and `description`" in str(refused.value.detail)


def test_a_payload_that_is_not_an_object_is_left_to_validation() -> None:
    assert resolve_aliases(["title"], ALIASES) == ["title"]


def test_openapi_lists_every_alias_as_a_property() -> None:
    properties = Payload.model_json_schema()["properties"]
    assert properties["name"]["description"] == "Alias of `title`."
    assert "Also accepted as `title`, `name`" in properties["title"]["description"]
    assert set(properties) == {"title", "name", "notes", "description", "body"}


class Required(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=documented_aliases(ALIASES))

    title: str

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        return resolve_aliases(data, ALIASES)


def test_a_required_field_is_documented_as_required_under_exactly_one_of_its_names() -> None:
    schema = Required.model_json_schema()
    assert "required" not in schema
    assert schema["allOf"] == [{"oneOf": [{"required": ["title"]}, {"required": ["name"]}]}]
    assert Required.model_validate({"name": "a"}) == Required(title="a")


@pytest.mark.parametrize(
    "payload",
    [
        {"title": "a"},
        {"name": "a", "body": "b"},
        {"title": "a", "name": "b"},
        {"notes": "a", "description": "b"},
        {"description": "a", "body": "b"},
        {"notes": "a", "description": "b", "body": "c"},
    ],
)
def test_the_schema_refuses_exactly_the_payloads_naming_one_field_twice(
    payload: dict[str, str],
) -> None:
    schema = Payload.model_json_schema()
    documented = jsonschema_rs.validator_for(schema).is_valid(payload)
    try:
        Payload.model_validate(payload)
    except InvalidInput:
        accepted = False
    else:
        accepted = True
    assert documented == accepted
