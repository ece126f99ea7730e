"""The OpenAPI document says what each operation can answer.

``create_app`` passes its document through ``document_problems``: every problem an operation may
answer is ``application/problem+json`` with the ``Problem`` schema (never ``application/json``);
FastAPI's own ``422`` (``HTTPValidationError``) is the ``invalid-input`` problem it really is;
an operation that takes a token documents ``401``; one with a body or path parameters documents
``400`` (malformed JSON, an invalid path) and, with a body, ``413``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BeforeValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from pipedesk_common.errors import PROBLEM_JSON, Problem

REF_TEMPLATE: Final = "#/components/schemas/{model}"
PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}
_ADDED: Final = {
    "400": "Bad request: malformed JSON, or a path holding control characters",
    "401": "Authentication is required",
    "413": "The request body is too large",
    "422": "The input is not valid",
}
_METHODS: Final = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": dict(PROBLEM_REF)}}}


def _as_problems(responses: dict[str, Any]) -> None:
    for status, response in list(responses.items()):
        content = response.get("content") or {}
        validation = status == "422" and "HTTPValidationError" in str(content)
        if PROBLEM_JSON in content or validation:
            description = _ADDED["422"] if validation else response.get("description")
            responses[status] = _problem(str(description or "A problem"))


def _answered_by_every_route(operation: dict[str, Any]) -> list[str]:
    """The problems the shared edge answers for this operation, whatever the route does."""
    wanted = ["401"] if operation.get("security") else []
    parameters = operation.get("parameters", [])
    if "requestBody" in operation:
        wanted += ["400", "413", "422"]
    elif any(parameter.get("in") == "path" for parameter in parameters):
        wanted.append("400")
    if parameters and "422" not in wanted:
        wanted.append("422")
    return wanted


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (an app's OpenAPI), its problem answers as described above; in place."""
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            _as_problems(responses)
            for status in _answered_by_every_route(operation):
                responses.setdefault(status, _problem(_ADDED[status]))
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template=REF_TEMPLATE)
    for name, schema in problem.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault("Problem", problem)
    used = str(document.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if name in schemas and f"#/components/schemas/{name}" not in used:
            del schemas[name]
    return document


# The input policy (``input_policy``) in the document: a string a request carries may hold no
# control character (a query value, a path segment or a header value none at all; a JSON string
# keeps its newlines and tabs), so every such string without a pattern of its own gets one saying
# so, or beside its own pattern. Formatted strings (uuid, date-time, email…) and enumerations
# already hold none.
LINE_CLASS: Final = "[^\\x00-\\x1f\\x7f-\\x9f]"
TEXT_CLASS: Final = "[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]"
_NESTED: Final = ("items", "additionalProperties", "contains", "propertyNames")
_LISTS: Final = ("anyOf", "oneOf", "allOf", "prefixItems")


def text_pattern(character: str) -> str:
    """A pattern of ``character``s. The length stays with ``minLength`` and ``maxLength``, which
    count characters: a bounded repetition would count UTF-16 units in some readers."""
    return f"^{character}*$"


def _constrain(schema: Any, character: str, refs: list[str]) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("$ref"), str):
        refs.append(schema["$ref"])
    kind = schema.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    if is_string and not {"format", "enum", "const"} & schema.keys():
        if "pattern" not in schema:
            schema["pattern"] = text_pattern(character)
        elif schema["pattern"] != text_pattern(character):
            # A pattern of the route's own says what else the string must be.
            schema.setdefault("allOf", []).append({"pattern": text_pattern(character)})
    if kind == "object" and schema.get("additionalProperties") not in (None, False):
        schema.setdefault("propertyNames", {"pattern": text_pattern(LINE_CLASS)})
    for name in _NESTED:
        _constrain(schema.get(name), character, refs)
    for member in (schema.get("properties") or {}).values():
        _constrain(member, character, refs)
    for name in _LISTS:
        for member in schema.get(name) or ():
            _constrain(member, character, refs)


def _without_null(schema: Any) -> None:
    """A parameter is absent or a string: FastAPI's ``null`` of an optional one is never sent."""
    if not isinstance(schema, dict) or not isinstance(schema.get("anyOf"), list):
        return
    kept = [member for member in schema["anyOf"] if member != {"type": "null"}]
    if len(kept) == 1 and isinstance(kept[0], dict):
        del schema["anyOf"]
        schema.update({**kept[0], **schema})
    else:
        schema["anyOf"] = kept


def document_input_policy(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the input policy on every string its requests carry; in place."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    refs: list[str] = []
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                _without_null(parameter.get("schema"))
                _constrain(parameter.get("schema"), LINE_CLASS, refs)
            for media in (operation.get("requestBody") or {}).get("content", {}).values():
                _constrain(media.get("schema"), TEXT_CLASS, refs)
    seen: set[str] = set()
    while refs:
        ref = refs.pop()
        name = ref.rsplit("/", 1)[-1]
        if ref.startswith("#/components/schemas/") and name not in seen:
            seen.add(name)
            _constrain(schemas.get(name), TEXT_CLASS, refs)
    return document


class NonBlank:
    """Marks a string that must hold a character besides whitespace: one read with
    ``strip_whitespace`` and ``min_length=1``, say. Its schema gets the pattern ``\\S``, so that
    ``"\\t"`` is not documented as valid when it is refused once stripped."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = NON_BLANK_PATTERN
        return schema


NON_BLANK_PATTERN: Final = "\\S"


def _a_json_number(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("a whole number, not a boolean or a string")
    return value


JSON_NUMBER: Final = BeforeValidator(_a_json_number)
"""Refuses a boolean or a string where a body's number is wanted; after an integer's own bounds
(``Annotated[int, Field(ge=0), JSON_NUMBER]``), which pydantic documents only when they come
first."""

BodyInteger = Annotated[int, JSON_NUMBER]
"""An integer in a JSON body as its schema (``type: integer``) says: a number without a
fraction, ``234`` or ``234.0`` alike; pydantic alone would also take ``true`` or ``"234"``."""
