"""Every service's OpenAPI document says what its operations can answer: every problem as
``application/problem+json`` with the ``Problem`` schema, the ``401`` of every operation that
takes a token, the ``400``/``413``/``422`` the shared edge answers."""

from importlib.metadata import entry_points
from typing import Any

import pytest

from pipedesk_common.idempotency import HEADER, KEY_PATTERN

# Every installed service (the gateway's own document is merged from theirs).
SERVICES = sorted(entry.name for entry in entry_points(group="pipedesk.services"))
METHODS = {"get", "put", "post", "delete", "patch"}
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_every_problem_an_operation_answers_is_documented_as_a_problem(
    service: str, service_documents: dict[str, dict[str, Any]]
) -> None:
    document = service_documents[service]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "Problem" in document["components"]["schemas"]
    checked = 0
    for method, path, operation in operations(document):
        where = f"{service}: {method} {path}"
        responses = operation["responses"]
        for status, response in responses.items():
            if int(status) >= 400:
                assert response.get("content") == PROBLEM, (where, status)
        if operation.get("security"):
            assert "401" in responses, where
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(responses), where
        if any(parameter["in"] == "path" for parameter in operation.get("parameters", [])):
            assert "400" in responses, where
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("service", SERVICES)
def test_every_idempotency_key_is_documented_in_the_form_it_is_checked_against(
    service: str, service_documents: dict[str, dict[str, Any]]
) -> None:
    """A key the document admits is one ``parse_key`` takes: 1 to 255 visible ASCII characters."""
    for method, path, operation in operations(service_documents[service]):
        for parameter in operation.get("parameters", []):
            if parameter["name"].lower() == HEADER.lower():
                assert parameter["schema"]["pattern"] == KEY_PATTERN, (service, method, path)


def test_no_two_services_publish_different_schemas_under_one_name(
    service_documents: dict[str, dict[str, Any]],
) -> None:
    """The gateway merges the services' components by name and keeps the first of a name: a
    second service's different schema of that name would describe its operations wrongly."""
    first: dict[str, tuple[str, Any]] = {}
    clashes = []
    for service in SERVICES:
        for name, schema in service_documents[service]["components"]["schemas"].items():
            owner, kept = first.setdefault(name, (service, schema))
            if kept != schema:
                clashes.append(f"{name}: {owner} and {service}")
    assert clashes == []
