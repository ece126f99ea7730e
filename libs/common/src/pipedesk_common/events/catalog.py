"""The event catalog, generated from the contracts: ``docs/events.md`` and ``docs/asyncapi.json``.

``python -m pipedesk_common.events.catalog docs/`` rewrites both; a test fails when they are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pipedesk_common.events import registered_types
from pipedesk_common.events.envelope import CONTENT_TYPE, decode_event, encode_event


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, event_type in sorted(registered_types().items()):
        message_id = name.replace(".", "_")
        messages[message_id] = {
            "name": name,
            "contentType": CONTENT_TYPE,
            "summary": (event_type.model.__doc__ or "").strip().splitlines()[0]
            if event_type.model.__doc__
            else name,
            "payload": event_type.model.model_json_schema(mode="serialization"),
        }
        channel_id = event_type.routing_key.replace(".", "_")
        channels[channel_id] = {
            "address": event_type.routing_key,
            "description": f"Routing key on the `pipedesk.events` topic exchange; source "
            f"`{event_type.source}`.",
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "PipeDesk events",
            "version": "1",
            "description": "CloudEvents 1.0 (structured JSON) published by PipeDesk services.",
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def markdown() -> str:
    lines = [
        "# Events",
        "",
        "Generated from the contracts in `libs/common/src/pipedesk_common/events/` by",
        "`python -m pipedesk_common.events.catalog docs/`; do not edit by hand.",
        "",
        "Every event is a CloudEvents 1.0 envelope in structured JSON mode",
        f"(`{CONTENT_TYPE}`), published as a persistent message on the `pipedesk.events`",
        "topic exchange with the routing key below. Extensions: `orgid`, `actorid`, `traceparent`.",
        "Entity events carry `data.version`; consumers apply only versions newer than theirs.",
        "A breaking change is a new `.vN` type, never an edit of an existing one.",
        "",
        "| type | routing key | data |",
        "|---|---|---|",
    ]
    for name, event_type in sorted(registered_types().items()):
        summary = (event_type.model.__doc__ or "").strip().splitlines()
        lines.append(f"| `{name}` | `{event_type.routing_key}` | {summary[0] if summary else ''} |")
    for name, event_type in sorted(registered_types().items()):
        schema = event_type.model.model_json_schema(mode="serialization")
        lines += ["", f"## `{name}`", "", "```json", json.dumps(schema, indent=2), "```"]
    return "\n".join(lines) + "\n"


def contract_violations(body: bytes) -> list[str]:
    """Why a published body does not satisfy its contract exactly (empty when it does)."""
    try:
        event = decode_event(body)
    except Exception as exc:  # every failure to read is a violation to report
        return [f"unreadable: {exc}"]
    raw = json.loads(body)
    expected = json.loads(encode_event(event))
    problems = []
    if raw.get("data") != expected.get("data"):
        problems.append(f"{event.type.name} {event.id}: data differs from its contract's shape")
    for attribute in ("type", "source", "id", "specversion", "orgid"):
        if raw.get(attribute) != expected.get(attribute):
            problems.append(f"{event.type.name} {event.id}: attribute {attribute} differs")
    return problems


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "events.md").write_text(markdown())
    (directory / "asyncapi.json").write_text(json.dumps(asyncapi(), indent=2) + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
