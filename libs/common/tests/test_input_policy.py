"""The input policy every service applies at its edge, seen from a minimal app; and what never
reaches the logs."""

import json
import logging
import re
import sys
from typing import Any, ClassVar

import pytest
from fastapi import APIRouter
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pipedesk_common.app import create_app
from pipedesk_common.contract import LINE_CLASS, document_input_policy
from pipedesk_common.db import create_engine
from pipedesk_common.ids import OpaqueId
from pipedesk_common.input_policy import clean_text, cleaned
from pipedesk_common.observability import JsonLogFormatter
from pipedesk_common.settings import BaseServiceSettings
from pipedesk_testkit.clients import app_client

pytestmark = pytest.mark.asyncio


class ProbeSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "probe"


class Attendee(BaseModel):
    email: str


class Note(BaseModel):
    title: str
    body: str = ""
    attendees: list[Attendee] = []
    labels: dict[str, str] = {}


def probe_app(service_env: dict[str, Any]) -> Any:
    router = APIRouter()
    stored: list[Note] = []

    @router.post("/notes", status_code=201)
    async def create_note(note: Note) -> Note:
        stored.append(note)
        return note

    @router.get("/notes")
    async def search(q: str = "") -> list[Note]:
        return [note for note in stored if q in note.title]

    @router.get("/notes/{name}")
    async def one(name: str) -> dict[str, str]:
        return {"name": name}

    return create_app(ProbeSettings(**service_env), title="probe", routers=[router])


def fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:pipedesk:problem:invalid-input"
    return [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize(
    "character", ["\u0000", "\u0001", "\u0008", "\u000b", "\u001b", "\u007f", "\u0085", "\ud800"]
)
async def test_control_characters_in_json_strings_are_refused_naming_the_field(
    service_env: dict[str, Any], character: str
) -> None:
    async with app_client(probe_app(service_env)) as client:

        async def post(document: dict[str, Any]) -> Any:
            # Escaped as JSON writes them (a lone surrogate has no UTF-8 of its own).
            return await client.post(
                "/notes", content=json.dumps(document), headers={"content-type": "application/json"}
            )

        title = await post({"title": f"a{character}b"})
        assert fields(title) == ["body.title"]
        nested = await post({"title": "ok", "attendees": [{"email": "x@y"}, {"email": character}]})
        assert fields(nested) == ["body.attendees.1.email"]
        key = await post({"title": "ok", "labels": {f"k{character}": "v"}})
        assert fields(key) == ["body.labels"]
        listed = await client.get("/notes")
        assert listed.json() == []


async def test_free_text_keeps_newlines_and_tabs(service_env: dict[str, Any]) -> None:
    async with app_client(probe_app(service_env)) as client:
        created = await client.post(
            "/notes", json={"title": "plan", "body": "line one\r\nline two\n\tindented ü €"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["body"] == "line one\r\nline two\n\tindented ü €"


@pytest.mark.parametrize("value", ["%00", "a%0Ab", "%1B%5B31m", "%C2%85"])
async def test_control_characters_in_query_values_are_refused_naming_the_parameter(
    service_env: dict[str, Any], value: str
) -> None:
    async with app_client(probe_app(service_env)) as client:
        assert fields(await client.get(f"/notes?q={value}")) == ["query.q"]
        assert (await client.get("/notes?q=plain%20text")).status_code == 200


@pytest.mark.parametrize("path", ["/notes/%00", "/notes/qu%C3%94%16w", "/notes/a%0Ab"])
async def test_control_characters_in_the_path_are_a_400_problem(
    service_env: dict[str, Any], path: str
) -> None:
    async with app_client(probe_app(service_env)) as client:
        response = await client.get(path)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:pipedesk:problem:invalid-path"
        assert (await client.get("/notes/qu%C3%94w")).json() == {"name": "quÔw"}


async def test_malformed_json_is_still_the_routes_400(service_env: dict[str, Any]) -> None:
    async with app_client(probe_app(service_env)) as client:
        response = await client.post(
            "/notes", content=b'{"title": "\\u0000', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["type"] == "urn:pipedesk:problem:malformed-json"


async def test_text_from_google_is_cleaned_of_control_characters() -> None:
    assert clean_text("a\u0000b\u0007c\nd\te\u007f\ud800") == "abc\nd\te"
    assert cleaned({"summary": "x\u0000", "k\u0000": ["\u0000y", 3, None]}) == {
        "summary": "x",
        "k": ["y", 3, None],
    }


async def test_sql_parameter_values_never_reach_the_logs(
    service_env: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(ProbeSettings(**service_env), echo=True)
    secret = "customer-secret-4711"
    try:
        with caplog.at_level(logging.DEBUG, logger="sqlalchemy.engine"):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT :value"), {"value": secret})
                with pytest.raises(DBAPIError) as failed:
                    await connection.execute(
                        text("SELECT CAST(:value AS integer)"), {"value": secret}
                    )
    finally:
        await engine.dispose()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "SELECT CAST" in logged
    assert secret not in logged
    # The driver quotes the value in its error; the service's log line of the failure does not.
    assert secret in str(failed.value)
    try:
        raise RuntimeError("the request failed") from failed.value
    except RuntimeError:
        record = logging.getLogger("probe").makeRecord(
            "probe", logging.ERROR, __file__, 1, "unhandled error", (), sys.exc_info()
        )
    line = JsonLogFormatter("probe").format(record)
    assert "SELECT CAST" in line
    assert "RuntimeError: the request failed" in line
    assert secret not in line


async def test_the_openapi_document_says_which_characters_each_string_may_hold(
    service_env: dict[str, Any],
) -> None:
    document = probe_app(service_env).openapi()
    note = document["components"]["schemas"]["Note"]["properties"]
    free_text = re.compile(note["title"]["pattern"])
    assert free_text.match("two\nlines\twith a tab")
    assert not free_text.match("a\x00b")
    assert not free_text.match("a\x85b")
    assert note["labels"]["propertyNames"]["pattern"] == f"^{LINE_CLASS}*$"
    attendee = document["components"]["schemas"]["Attendee"]["properties"]["email"]
    assert attendee["pattern"] == note["title"]["pattern"]
    (query,) = document["paths"]["/notes"]["get"]["parameters"]
    single_line = re.compile(query["schema"]["pattern"])
    assert single_line.match("acme")
    assert not single_line.match("a\tb")
    (name,) = document["paths"]["/notes/{name}"]["get"]["parameters"]
    assert name["schema"]["pattern"] == query["schema"]["pattern"]


async def test_an_optional_parameter_is_documented_as_a_string_never_as_null() -> None:
    document = {
        "paths": {
            "/x": {
                "get": {
                    "parameters": [
                        {
                            "name": "cursor",
                            "in": "query",
                            "schema": {
                                "anyOf": [{"type": "string", "maxLength": 9}, {"type": "null"}],
                                "title": "Cursor",
                            },
                        }
                    ]
                }
            }
        }
    }
    (parameter,) = document_input_policy(document)["paths"]["/x"]["get"]["parameters"]
    assert parameter["schema"] == {
        "type": "string",
        "maxLength": 9,
        "title": "Cursor",
        "pattern": f"^{LINE_CLASS}*$",
    }


async def test_an_opaque_id_is_documented_as_it_is_checked() -> None:
    schema = TypeAdapter(OpaqueId).json_schema()
    pattern = re.compile(schema["pattern"])
    assert (schema["minLength"], schema["maxLength"]) == (1, 255)
    for value in ("auth0|abc", "ada@example.com", "a b/c", "é" * 255, "\U0001d11e" * 255):
        assert pattern.match(value), value
        assert TypeAdapter(OpaqueId).validate_python(value) == value
    for value in (" a", "a ", "a\nb", "a\x85b"):
        assert not pattern.match(value), value
        with pytest.raises(ValidationError):
            TypeAdapter(OpaqueId).validate_python(value)
    with pytest.raises(ValidationError):
        TypeAdapter(OpaqueId).validate_python("é" * 256)
