"""The gateway's merged OpenAPI document documents every operation (a description, an example,
a success schema, lists as pages), and a TypeScript client generated from it with
openapi-typescript compiles: the sample client of ``tools/contracts`` type-checks with ``tsc``,
and fails to against a copy of the document that breaks it."""

import copy
import json
from typing import Any

import httpx
import pytest

from pipedesk_gateway.openapi import MergedOpenApi
from pipedesk_gateway.routing import ROUTES
from tests.contract_tools import Checked, checked

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def merged(service_documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The document the gateway serves, merged from every installed service's own."""
    documents: dict[str, dict[str, Any] | None] = dict.fromkeys({service for _, service in ROUTES})
    documents.update(copy.deepcopy(service_documents))  # the merge adds the gateway's answers
    return MergedOpenApi(httpx.AsyncClient(), {}, title="PipeDesk API").merge(documents)


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def successes(operation: dict[str, Any]) -> dict[str, Any]:
    return {s: r for s, r in operation["responses"].items() if s.startswith(("2", "3"))}


def test_every_operation_has_a_description_an_example_and_a_success_schema(
    merged: dict[str, Any],
) -> None:
    found = operations(merged)
    assert len(found) >= 100
    for where, operation in found:
        assert operation.get("summary"), where
        assert operation.get("description"), where
        answers = successes(operation)
        assert answers, where
        for status, response in answers.items():
            if status in {"204", "304"}:
                assert "content" not in response, where
            elif status.startswith("3"):
                assert "location" in {h.lower() for h in response.get("headers", {})}, where
            else:
                assert response.get("content"), (where, status)
                for media_type, content in response["content"].items():
                    assert content.get("schema"), (where, status, media_type)
        examples = [
            content
            for part in (*answers.values(), operation.get("requestBody", {}))
            for content in part.get("content", {}).values()
            if "example" in content or "examples" in content
        ] + [p for p in operation.get("parameters", []) if "example" in p]
        # Headers (a token, `If-Match`, `Idempotency-Key`) are described, not exemplified.
        takes_or_answers = (
            any(p["in"] in {"path", "query"} for p in operation.get("parameters", []))
            or operation.get("requestBody")
            or any("content" in response for response in answers.values())
        )
        assert examples or not takes_or_answers, where


def test_every_list_answers_a_page(merged: dict[str, Any]) -> None:
    for where, operation in operations(merged):
        for response in successes(operation).values():
            content = response.get("content", {}).get("application/json")
            if content is not None:
                assert resolved(merged, content["schema"]).get("type") != "array", where


def without_lead_title(document: dict[str, Any]) -> dict[str, Any]:
    """The document as if ``LeadPublic.title`` had been renamed: the sample client reads it."""
    broken = copy.deepcopy(document)
    lead = broken["components"]["schemas"]["LeadPublic"]
    lead["properties"]["name"] = lead["properties"].pop("title")
    lead["required"] = ["name" if field == "title" else field for field in lead["required"]]
    return broken


@pytest.fixture(scope="module")
def verdicts(
    merged: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Checked]:
    """The TypeScript check of the document and of a broken copy, in one Node.js run."""
    folder = tmp_path_factory.mktemp("openapi")
    copies = {"merged": merged, "renamed": without_lead_title(merged)}
    paths = {name: folder / f"{name}.json" for name in copies}
    for name, document in copies.items():
        paths[name].write_text(json.dumps(document))
    found = checked("openapi.mjs", documents=list(paths.values()))
    return {name: found[path] for name, path in paths.items()}


def test_a_typescript_client_generated_from_the_document_compiles(
    verdicts: dict[str, Checked],
) -> None:
    assert verdicts["merged"] == Checked(True, [])


def test_a_copy_that_breaks_the_client_fails_the_type_check(
    verdicts: dict[str, Checked],
) -> None:
    assert not verdicts["renamed"].valid
    assert any(
        "sample-client.ts" in problem and "'title'" in problem
        for problem in verdicts["renamed"].problems
    ), verdicts["renamed"].problems
