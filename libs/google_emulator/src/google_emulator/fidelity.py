"""Google's bundled discovery documents: the scopes each method accepts, and checks of emulator
responses against the methods' response schemas."""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import googleapiclient

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


@cache
def discovery_document(name: str) -> dict[str, Any]:
    """A bundled discovery document by file stem, e.g. ``tasks.v1``."""
    document: dict[str, Any] = json.loads((DOCUMENTS / f"{name}.json").read_text())
    return document


def _methods(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for method in resource.get("methods", {}).values():
        found[method["id"]] = method
    for child in resource.get("resources", {}).values():
        found.update(_methods(child))
    return found


@cache
def find_method(api_method: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(discovery document, method) for a method id such as ``tasks.tasks.list``, if bundled;
    the newest version's where several define it (Drive v2 and v3 share method ids)."""
    api = api_method.split(".", 1)[0]
    for path in sorted(DOCUMENTS.glob(f"{api}.*.json"), reverse=True):
        document = discovery_document(path.stem)
        method = _methods(document).get(api_method)
        if method is not None:
            return document, method
    return None


def method_scopes(api_method: str) -> tuple[str, ...]:
    """The scopes a method accepts, as its discovery document lists them (any one will do)."""
    found = find_method(api_method)
    if found is None:
        raise LookupError(f"{api_method} is not in the bundled discovery documents")
    return tuple(found[1].get("scopes", ()))


def _check_string(value: str, schema: dict[str, Any], where: str) -> list[str]:
    fmt = schema.get("format")
    try:
        if fmt in {"int64", "uint64"}:
            int(value)
        elif fmt == "date-time":
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif fmt == "date":
            date.fromisoformat(value)
    except ValueError:
        return [f"{where}: {value!r} is not a valid {fmt}"]
    enum = schema.get("enum")
    if enum and value not in enum:
        return [f"{where}: {value!r} is not one of {enum}"]
    return []


def _check_scalar(value: Any, kind: str, schema: dict[str, Any], where: str) -> list[str]:
    if kind == "string":
        if not isinstance(value, str):
            suffix = " (int64 values are strings)" if schema.get("format") else ""
            return [f"{where}: expected a string, got {type(value).__name__}{suffix}"]
        return _check_string(value, schema, where)
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return [f"{where}: expected an integer, got {type(value).__name__}"]
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return [f"{where}: expected a number, got {type(value).__name__}"]
    if kind == "boolean" and not isinstance(value, bool):
        return [f"{where}: expected a boolean, got {type(value).__name__}"]
    return []


def _check_object(
    value: dict[str, Any], schema: dict[str, Any], schemas: dict[str, Any], where: str
) -> list[str]:
    problems: list[str] = []
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            problems += validate(item, properties[key], schemas, f"{where}.{key}")
        elif extra is not None:
            problems += validate(item, extra, schemas, f"{where}.{key}")
        else:
            problems.append(f"{where}: property {key!r} is not in the schema")
    return problems


def validate(
    value: Any, schema: dict[str, Any], schemas: dict[str, Any], where: str = "$"
) -> list[str]:
    """Every way ``value`` departs from a discovery ``schema`` (``$ref``s looked up in schemas)."""
    if "$ref" in schema:
        return validate(value, schemas[schema["$ref"]], schemas, where)
    kind = schema.get("type", "any")
    if kind == "any" or value is None:
        return []
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {type(value).__name__}"]
        items = schema.get("items", {})
        return [
            p
            for i, item in enumerate(value)
            for p in validate(item, items, schemas, f"{where}[{i}]")
        ]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        return _check_object(value, schema, schemas, where)
    return _check_scalar(value, kind, schema, where)


def check_response(api_method: str, body: Any) -> list[str]:
    """Violations of a response body against its method's declared response schema.

    Methods missing from the bundled documents, or declaring no response, are not checked.
    """
    found = find_method(api_method)
    if found is None:
        return []
    document, method = found
    response = method.get("response")
    if response is None:
        return []
    if body == {}:
        return [f"empty body, but {api_method} returns {response.get('$ref', 'a resource')}"]
    return validate(body, response, document.get("schemas", {}))
