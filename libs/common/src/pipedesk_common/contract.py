"""The OpenAPI document says what each operation can answer.

``create_app`` passes its document through ``document_problems``: every problem an operation may
answer is ``application/problem+json`` with the ``Problem`` schema (never ``application/json``);
FastAPI's own ``422`` (``HTTPValidationError``) is the ``invalid-input`` problem it really is;
an operation that takes a token documents ``401``; one with a body or path parameters documents
``400`` (malformed JSON, an invalid path) and, with a body, ``413``.
"""

from __future__ import annotations

from typing import Any, Final

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
