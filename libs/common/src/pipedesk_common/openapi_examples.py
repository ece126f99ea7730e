"""Examples in a service's OpenAPI document: every operation shows what it takes and answers.

A schema's own examples come first (``Field(examples=[...])``, a model's ``json_schema_extra``);
where a schema has none, its example is built from it: constants and enums by their first
value, formats by a typical value, objects field by field. Success answers, request bodies and
path and query parameters get one each, so a generated client's author sees the shapes filled in.
"""

from __future__ import annotations

from typing import Any, Final

EXAMPLE_ID: Final = "0193a5c2-7e4b-7c1d-9f3e-2b8d4a6c1e05"
_FORMATS: Final[dict[str, Any]] = {
    "uuid": EXAMPLE_ID,
    "date-time": "2026-03-02T09:30:00Z",
    "date": "2026-03-02",
    "time": "09:30:00",
    "duration": "PT1H",
    "email": "ada@example.com",
    "uri": "https://app.pipedesk.example/",
    "binary": "<bytes>",
}
# Typical values for fields (or a list's items) whose name says what they hold.
_NAMED: Final[dict[str, Any]] = {
    "title": "Acme renewal",
    "name": "Acme",
    "summary": "Kick-off with Acme",
    "email": "ada@example.com",
    "org_id": "acme",
    "owner_id": "u-ada",
    "user_id": "u-ada",
    "actor_id": "u-ada",
    "created_by": "u-ada",
    "added_by": "u-ada",
    "team_id": "t-emea",
    "currency": "EUR",
    "next_cursor": None,
    "estimated_value": "12000.00",
    "tags": "renewal",
}
_MAX_DEPTH: Final = 8


def example_of(schema: dict[str, Any], schemas: dict[str, Any], name: str = "") -> Any:
    """An example value satisfying ``schema`` (``schemas``: the document's components)."""
    return _example(schema, schemas, name, 0)


def _example(schema: dict[str, Any], schemas: dict[str, Any], name: str, depth: int) -> Any:
    if "$ref" in schema:
        target = schemas.get(schema["$ref"].rsplit("/", 1)[1], {})
        return _example(target, schemas, name, depth + 1) if depth < _MAX_DEPTH else None
    given = _given(schema, name)
    if given is not _NONE:
        return given
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _example(options[0], schemas, name, depth)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = _example(part, schemas, name, depth)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        # What is required, and what has a default: an input's optional fields (aliases among
        # them, which exclude each other) are left out.
        required = set(schema.get("required", ()))
        return {
            field: _example(sub, schemas, field, depth + 1)
            for field, sub in schema.get("properties", {}).items()
            if depth < _MAX_DEPTH and (field in required or sub.get("default") is not None)
        }
    if kind == "array":
        items = schema.get("items", {})
        return [_example(items, schemas, name, depth + 1)] if depth < _MAX_DEPTH else []
    return _scalar(kind, schema, name)


_NONE: Final = object()


def _given(schema: dict[str, Any], name: str) -> Any:
    """The value the schema itself offers, or a typical one for the field's name."""
    for key in ("example", "const", "default"):
        if schema.get(key) is not None:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if name in _NAMED and "items" not in schema and "properties" not in schema:
        return _NAMED[name]
    if schema.get("enum"):
        return schema["enum"][0]
    return _NONE


def _scalar(kind: Any, schema: dict[str, Any], name: str) -> Any:
    if kind == "string":
        return _string(schema, name)
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return max(schema.get("minimum", 1.5), 1.5)
    if kind == "boolean":
        return False
    return None


def _string(schema: dict[str, Any], name: str) -> str:
    if schema.get("format") in _FORMATS:
        return str(_FORMATS[schema["format"]])
    if isinstance(_NAMED.get(name), str):
        return str(_NAMED[name])
    if name == "id" or name.endswith("_id"):
        return EXAMPLE_ID
    text = name.replace("_", " ") or "text"
    return text[: schema.get("maxLength", len(text))]


def _media_schema(media_type: str, content: dict[str, Any]) -> None:
    """A body declared by its media type alone (a file, a CSV, an event stream) is a string."""
    if content.get("schema") or media_type.endswith("json"):
        return
    binary = media_type == "application/octet-stream"
    content["schema"] = {"type": "string", **({"format": "binary"} if binary else {})}


def _media_example(media_type: str, content: dict[str, Any], schemas: dict[str, Any]) -> None:
    if "example" in content or "examples" in content or not content.get("schema"):
        return
    if media_type.endswith("json"):
        content["example"] = example_of(content["schema"], schemas)
    elif media_type == "text/csv":
        content["example"] = "id,occurred_at,actor_id,entity_type,entity_id,action\n"
    elif media_type == "text/event-stream":
        content["example"] = 'event: item\ndata: {"id": "' + EXAMPLE_ID + '"}\n\n'
    elif media_type == "text/plain":
        content["example"] = example_of(content["schema"], schemas)


def add_examples(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with an example on every success answer, request body, path and query
    parameter that has none (problems keep their own), and a schema on every success answer
    declared by its media type alone."""
    schemas = document.get("components", {}).get("schemas", {})
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if str(status).startswith("2"):
                    for media_type, content in response.get("content", {}).items():
                        _media_schema(media_type, content)
                        _media_example(media_type, content, schemas)
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                _media_example(media_type, content, schemas)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in {"path", "query"} and "example" not in parameter:
                    parameter["example"] = example_of(
                        parameter.get("schema", {}), schemas, parameter["name"]
                    )
    return document
