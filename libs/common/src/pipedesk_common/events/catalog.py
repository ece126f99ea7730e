"""The event catalog, generated from the contracts: ``docs/events.md`` and ``docs/asyncapi.json``.

``python -m pipedesk_common.events.catalog docs/`` rewrites both; a test fails when they are stale.
The AsyncAPI document names the broker, the topic exchange and its routing keys, and the queues
the installed services consume (read from their apps, found through the ``pipedesk.services``
entry points); each message is the whole CloudEvents envelope around its contract's ``data``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from pipedesk_common.events import registered_types
from pipedesk_common.events.envelope import (
    CONTENT_TYPE,
    EventType,
    decode_event,
    encode_event,
)

EXCHANGE: Final = "pipedesk.events"
SERVICES_ENTRY_POINTS: Final = "pipedesk.services"
AMQP_BINDING_VERSION: Final = "0.3.0"
ENVELOPE: Final = "CloudEventEnvelope"


@dataclass(frozen=True)
class Subscription:
    """A queue a service consumes and the event types bound to it; ``every_type`` when it
    takes every event of the exchange (routing key `by `#`;`), types without a contract included."""

    service: str
    queue: str
    event_types: tuple[str, ...]
    every_type: bool = False


def installed_subscriptions() -> list[Subscription]:
    """The queues of every installed service, read from the consumers its app is built with."""
    found = []
    for entry in sorted(entry_points(group=SERVICES_ENTRY_POINTS), key=lambda e: e.name):
        app = entry.load()()
        for consumer in getattr(app.state, "consumers", ()):
            found.append(
                Subscription(
                    entry.name,
                    consumer.queue,
                    tuple(consumer.event_types),
                    every_type=consumer.unregistered_model is not None,
                )
            )
    return sorted(found, key=lambda s: s.queue)


def _identifier(name: str) -> str:
    return name.replace(".", "_")


def _envelope_schema() -> dict[str, Any]:
    """The CloudEvents 1.0 attributes every PipeDesk event carries, around its ``data``."""
    return {
        "type": "object",
        "description": "A CloudEvents 1.0 event in structured JSON mode.",
        "required": ["specversion", "id", "source", "type", "time", "orgid", "data"],
        "properties": {
            "specversion": {"type": "string", "const": "1.0"},
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "Unique per event; consumers deduplicate by it.",
            },
            "source": {"type": "string", "description": "`/services/<producer>`."},
            "type": {"type": "string", "description": "`pipedesk.<service>.<entity>.<action>.vN`."},
            "time": {"type": "string", "format": "date-time", "description": "RFC 3339, UTC."},
            "datacontenttype": {"type": "string", "const": "application/json"},
            "orgid": {"type": "string", "description": "The tenant the event belongs to."},
            "actorid": {
                "type": "string",
                "description": "Who caused it (a user id, or `svc:<name>`), when someone did.",
            },
            "traceparent": {
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C trace context of the change that produced the event.",
            },
            "requestid": {
                "type": "string",
                "description": "The `X-Request-ID` of the request that produced the event.",
            },
            "data": {"type": "object"},
        },
    }


def _amqp_exchange() -> dict[str, Any]:
    return {
        "name": EXCHANGE,
        "type": "topic",
        "durable": True,
        "autoDelete": False,
        "vhost": "/",
    }


def asyncapi(subscriptions: Sequence[Subscription] | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every event type, and of ``subscriptions`` (default: the
    installed services')."""
    if subscriptions is None:
        subscriptions = installed_subscriptions()
    types = sorted(registered_types().items())
    data_refs, definitions = models_json_schema(
        [(event_type.model, "serialization") for _, event_type in types],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = {ENVELOPE: _envelope_schema(), **definitions.get("$defs", {})}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, event_type in types:
        message_id = _identifier(name)
        messages[message_id] = _message(
            name, event_type, data_refs[(event_type.model, "serialization")]
        )
        channel_id = _identifier(event_type.routing_key)
        channels[channel_id] = {
            "address": event_type.routing_key,
            "title": event_type.routing_key,
            "description": f"Routing key `{event_type.routing_key}` on the `{EXCHANGE}` topic "
            f"exchange; published by `{event_type.source}`.",
            "servers": [{"$ref": "#/servers/rabbitmq"}],
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": _amqp_exchange(),
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "title": f"{event_type.service} publishes {name}",
            "summary": f"Published by the {event_type.service} service through its outbox.",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
            "bindings": {
                "amqp": {"deliveryMode": 2, "bindingVersion": AMQP_BINDING_VERSION},
            },
        }
    for subscription in subscriptions:
        _add_queue(subscription, channels, operations, [name for name, _ in types])
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "PipeDesk events",
            "version": "1",
            "description": "CloudEvents 1.0 (structured JSON) published by PipeDesk services on "
            f"the `{EXCHANGE}` topic exchange, one routing key per event type, and the queues "
            "the services consume them from. Every message is persistent and at-least-once; "
            "consumers deduplicate by the event `id` and apply an entity's `data.version` only "
            "if it is newer than theirs. A queue's failed messages are retried through "
            "`<queue>.retry.<ms>` queues and end in `<queue>.dlq` (exchange `pipedesk.dlx`). "
            "`BROKER_PREFIX` prefixes every exchange and queue name of a deployment.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": "RabbitMQ, as `AMQP_URL` names it (this is its default).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def _message(name: str, event_type: EventType, data_ref: dict[str, Any]) -> dict[str, Any]:
    doc = (event_type.model.__doc__ or "").strip()
    return {
        "name": name,
        "title": name,
        "summary": doc.splitlines()[0] if doc else name,
        "contentType": CONTENT_TYPE,
        "payload": {
            "allOf": [
                {"$ref": f"#/components/schemas/{ENVELOPE}"},
                {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "const": name},
                        "source": {"type": "string", "const": event_type.source},
                        "data": data_ref,
                    },
                },
            ]
        },
        "bindings": {
            "amqp": {"messageType": name, "bindingVersion": AMQP_BINDING_VERSION},
        },
    }


def _add_queue(
    subscription: Subscription,
    channels: dict[str, Any],
    operations: dict[str, Any],
    every_name: Iterable[str],
) -> None:
    channel_id = f"queue_{_identifier(subscription.queue)}"
    names = sorted(every_name) if subscription.every_type else list(subscription.event_types)
    keys = (
        "`#`"
        if subscription.every_type
        else ", ".join(f"`{registered_types()[name].routing_key}`" for name in names)
    )
    channels[channel_id] = {
        "address": subscription.queue,
        "title": subscription.queue,
        "description": f"The {subscription.service} service's quorum queue, bound to the "
        f"`{EXCHANGE}` exchange by {keys}; failed messages are retried, then dead-lettered to "
        f"`{subscription.queue}.dlq`."
        + (" It also takes types without a contract." if subscription.every_type else ""),
        "servers": [{"$ref": "#/servers/rabbitmq"}],
        "messages": {
            _identifier(name): {"$ref": f"#/components/messages/{_identifier(name)}"}
            for name in names
        },
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": subscription.queue,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }
    operations[f"consume_{channel_id}"] = {
        "action": "receive",
        "title": f"{subscription.service} consumes {subscription.queue}",
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [
            {"$ref": f"#/channels/{channel_id}/messages/{_identifier(name)}"} for name in names
        ],
        "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
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
        "topic exchange with the routing key below. Extensions: `orgid`, `actorid`, `traceparent`,",
        "`requestid`. `asyncapi.json` describes the same events, the broker and the queues.",
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
