"""The CloudEvents 1.0 envelope (structured JSON mode), written and read with the official SDK."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID, uuid4

from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_structured, to_structured
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ConfigDict, ValidationError

CONTENT_TYPE = "application/cloudevents+json"
_FORMAT = JSONFormat()


class EventData(BaseModel):
    """Base of every event's ``data``. Unknown fields are ignored, so additive changes stay v1."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class VersionedData(EventData):
    """``data`` of an entity event: consumers apply it only if ``version`` is newer than theirs.

    Events of one entity that share a ``version_stream`` share one version sequence.
    """

    version_stream: ClassVar[str] = "state"

    id: str
    version: int

    def version_key(self) -> str:
        return f"{self.id}:{self.version_stream}"


@dataclass(frozen=True)
class EventType:
    service: str
    entity: str
    action: str
    version: int
    model: type[EventData]

    @property
    def name(self) -> str:
        return f"pipedesk.{self.service}.{self.entity}.{self.action}.v{self.version}"

    @property
    def routing_key(self) -> str:
        return f"{self.service}.{self.entity}.{self.action}"

    @property
    def source(self) -> str:
        return f"/services/{self.service}"


_REGISTRY: dict[str, EventType] = {}
_BY_MODEL: dict[type[EventData], EventType] = {}

D = TypeVar("D", bound=EventData)


def contract(
    service: str, entity: str, action: str, version: int = 1
) -> Callable[[type[D]], type[D]]:
    """Register a data model as the contract of one event type."""

    def register(model: type[D]) -> type[D]:
        event_type = EventType(service, entity, action, version, model)
        if event_type.name in _REGISTRY:
            raise ValueError(f"{event_type.name} is registered twice")
        _REGISTRY[event_type.name] = event_type
        _BY_MODEL[model] = event_type
        return model

    return register


def event_type_of(model: type[EventData]) -> EventType:
    return _BY_MODEL[model]


def registered_types() -> dict[str, EventType]:
    return dict(_REGISTRY)


@dataclass(frozen=True)
class Event(Generic[D]):
    """One event: CloudEvents attributes plus typed ``data``."""

    id: UUID
    type: EventType
    time: datetime
    org_id: str
    actor_id: str | None
    data: D
    traceparent: str | None = None
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        return self.type.routing_key


def new_event(
    data: D,
    *,
    org_id: str,
    actor_id: str | None,
    time: datetime,
    traceparent: str | None = None,
    request_id: str | None = None,
) -> Event[D]:
    return Event(
        id=uuid4(),
        type=event_type_of(type(data)),
        time=time,
        org_id=org_id,
        actor_id=actor_id,
        data=data,
        traceparent=traceparent,
        request_id=request_id,
    )


def encode_event(event: Event[Any]) -> bytes:
    attributes: dict[str, Any] = {
        "id": str(event.id),
        "source": event.type.source,
        "type": event.type.name,
        "time": event.time,
        "datacontenttype": "application/json",
        "orgid": event.org_id,
    }
    if event.actor_id is not None:
        attributes["actorid"] = event.actor_id
    if event.traceparent is not None:
        attributes["traceparent"] = event.traceparent
    if event.request_id is not None:
        attributes["requestid"] = event.request_id
    data = event.data.model_dump(mode="json")
    return to_structured(CloudEvent(attributes, data), _FORMAT).body


class UnknownEventType(Exception):
    """A well-formed event of a type this process has no contract for."""


class MalformedEvent(Exception):
    """Not a CloudEvent, or its data does not satisfy its contract."""


REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "orgid")
# Extensions read into their own fields: who acted, and the trace and request they belong to.
_TRACE_ATTRIBUTES = frozenset({"actorid", "traceparent", "requestid"})


_TYPE_NAME = re.compile(
    r"^pipedesk\.(?P<service>[a-z0-9_]+)\.(?P<entity>[a-z0-9_]+)\.(?P<action>[a-z0-9_]+)"
    r"\.v(?P<version>[0-9]{1,4})$"
)


def _unregistered_type(type_name: str, model: type[EventData]) -> EventType | None:
    """An event type this process has no contract for, read through a generic ``model``."""
    match = _TYPE_NAME.match(type_name)
    if match is None:
        return None
    return EventType(
        match["service"], match["entity"], match["action"], int(match["version"]), model
    )


def decode_event(
    body: bytes,
    content_type: str | None = CONTENT_TYPE,
    *,
    unregistered: type[EventData] | None = None,
) -> Event[EventData]:
    """Read one event. A type without a contract is ``UnknownEventType``, unless
    ``unregistered`` is given and the data carries one of that model's required fields: then it
    is read through that model (and malformed if it does not satisfy it)."""
    # The SDK invents an id or a time that a message lacks; ours must carry their own, since
    # consumers deduplicate by id.
    try:
        envelope = json.loads(body)
    except ValueError:
        raise MalformedEvent("not JSON") from None
    if not isinstance(envelope, dict) or any(name not in envelope for name in REQUIRED_ATTRIBUTES):
        raise MalformedEvent(f"a CloudEvent needs {', '.join(REQUIRED_ATTRIBUTES)}")
    try:
        message = RabbitMQMessage(headers={}, content_type=content_type, body=body)
        cloud_event = from_structured(message, _FORMAT, CloudEvent)
    except (BaseCloudEventException, ValueError, TypeError, KeyError) as exc:
        raise MalformedEvent(f"not a CloudEvent: {exc}") from None
    type_name = cloud_event.get_type()
    attributes = cloud_event.get_attributes()
    raw_data = cloud_event.get_data()
    if isinstance(raw_data, bytes | str):
        try:
            raw_data = json.loads(raw_data)
        except ValueError:
            raise MalformedEvent("data is not JSON") from None
    event_type = _REGISTRY.get(type_name)
    if event_type is None:
        generic = _unregistered_type(type_name, unregistered) if unregistered else None
        required = (
            {name for name, info in generic.model.model_fields.items() if info.is_required()}
            if generic is not None
            else set()
        )
        if generic is None or not isinstance(raw_data, dict) or not required & raw_data.keys():
            raise UnknownEventType(type_name)
        event_type = generic
    try:
        data = event_type.model.model_validate(raw_data)
        event_id = UUID(str(attributes["id"]))
        org_id = attributes["orgid"]
        time = cloud_event.get_time()
    except (ValidationError, ValueError, KeyError) as exc:
        raise MalformedEvent(f"{type_name} does not satisfy its contract: {exc}") from None
    if not isinstance(org_id, str) or not org_id or time is None:
        raise MalformedEvent(f"{type_name} lacks orgid or time")
    known = {"id", "source", "type", "time", "specversion", "datacontenttype", "orgid"}
    return Event(
        id=event_id,
        type=event_type,
        time=time,
        org_id=org_id,
        actor_id=attributes.get("actorid"),
        data=data,
        traceparent=attributes.get("traceparent"),
        request_id=attributes.get("requestid"),
        extra={k: v for k, v in attributes.items() if k not in known | _TRACE_ATTRIBUTES},
    )
