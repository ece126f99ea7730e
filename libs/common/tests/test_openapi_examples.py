"""Examples built from schemas: the schema's own first, then typical values by format and name,
an input's optional fields (aliases) left out."""

from typing import Any

from pipedesk_common.openapi_examples import EXAMPLE_ID, add_examples, example_of

SCHEMAS: dict[str, Any] = {
    "Status": {"enum": ["new", "won"], "type": "string"},
    "Lead": {
        "type": "object",
        "required": ["id", "title", "status", "at", "tags"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "title": {"type": "string"},
            "status": {"$ref": "#/components/schemas/Status"},
            "at": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string", "examples": ["vip"]}},
            "start_time": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "priority": {"type": "string", "default": "medium"},
        },
    },
}


def test_an_example_follows_the_schema_and_leaves_out_optional_inputs() -> None:
    assert example_of({"$ref": "#/components/schemas/Lead"}, SCHEMAS) == {
        "id": EXAMPLE_ID,
        "title": "Acme renewal",
        "status": "new",
        "at": "2026-03-02T09:30:00Z",
        "tags": ["vip"],
        "priority": "medium",
    }


def test_a_recursive_schema_ends() -> None:
    schemas = {
        "Node": {
            "type": "object",
            "required": ["next"],
            "properties": {"next": {"$ref": "#/components/schemas/Node"}},
        }
    }
    assert isinstance(example_of({"$ref": "#/components/schemas/Node"}, schemas), dict)


def test_answers_bodies_and_parameters_get_examples_problems_and_given_ones_are_kept() -> None:
    given = {"title": "mine"}
    document: dict[str, Any] = {
        "components": {"schemas": SCHEMAS},
        "paths": {
            "/leads/{lead_id}": {
                "patch": {
                    "parameters": [
                        {
                            "name": "lead_id",
                            "in": "path",
                            "schema": {"type": "string", "format": "uuid"},
                        },
                        {"name": "If-Match", "in": "header", "schema": {"type": "string"}},
                    ],
                    "requestBody": {
                        "content": {"application/json": {"schema": {}, "example": given}}
                    },
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Lead"}
                                }
                            }
                        },
                        "404": {
                            "content": {"application/problem+json": {"schema": {"type": "object"}}}
                        },
                    },
                },
                "get": {"responses": {"200": {"content": {"text/csv": {}}}}},
            }
        },
    }
    add_examples(document)
    patch = document["paths"]["/leads/{lead_id}"]["patch"]
    assert patch["parameters"][0]["example"] == EXAMPLE_ID
    assert "example" not in patch["parameters"][1]
    assert patch["requestBody"]["content"]["application/json"]["example"] is given
    assert patch["responses"]["200"]["content"]["application/json"]["example"]["status"] == "new"
    assert "example" not in patch["responses"]["404"]["content"]["application/problem+json"]
    csv = document["paths"]["/leads/{lead_id}"]["get"]["responses"]["200"]["content"]["text/csv"]
    assert csv["schema"] == {"type": "string"}
    assert csv["example"].startswith("id,")
