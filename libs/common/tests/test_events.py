import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData

from pipedesk_common.consumer import Consumer
from pipedesk_common.events import (
    MalformedEvent,
    UnknownEventType,
    decode_event,
    encode_event,
    new_event,
)
from pipedesk_common.events.catalog import asyncapi, contract_violations, markdown
from pipedesk_common.events.crm import LeadAccessChanged
from pipedesk_common.events.timeline import TimelineCarrier
from pipedesk_common.inbox import inbox_tables

DOCS = Path(__file__).resolve().parents[3] / "docs"


def event() -> bytes:
    data = LeadAccessChanged(id="l1", version=3, org_id="o1", owner_id="u1", team_id=None)
    return encode_event(
        new_event(data, org_id="o1", actor_id="u1", time=datetime(2026, 1, 1, tzinfo=UTC))
    )


def test_an_event_round_trips_through_the_cloudevents_envelope() -> None:
    body = json.loads(event())
    assert body["specversion"] == "1.0"
    assert body["type"] == "pipedesk.crm.lead.access_changed.v1"
    assert body["source"] == "/services/crm"
    assert body["orgid"] == "o1"
    assert body["actorid"] == "u1"
    decoded = decode_event(event())
    assert decoded.data == LeadAccessChanged(
        id="l1", version=3, org_id="o1", owner_id="u1", team_id=None
    )
    assert decoded.routing_key == "crm.lead.access_changed"
    assert contract_violations(event()) == []


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda body: body.pop("orgid"), MalformedEvent),
        (lambda body: body["data"].pop("version"), MalformedEvent),
        (lambda body: body.update(type="pipedesk.nobody.thing.happened.v1"), UnknownEventType),
        (lambda body: body.pop("id"), MalformedEvent),
    ],
)
def test_bad_envelopes_are_refused(mutate: object, error: type[Exception]) -> None:
    body = json.loads(event())
    mutate(body)  # type: ignore[operator]
    with pytest.raises(error):
        decode_event(json.dumps(body).encode())
    with pytest.raises(MalformedEvent):
        decode_event(b"not json")


def test_extra_data_fields_are_tolerated_by_readers_but_flagged_by_the_contract_check() -> None:
    body = json.loads(event())
    body["data"]["added_later"] = True
    raw = json.dumps(body).encode()
    data = decode_event(raw).data
    assert isinstance(data, LeadAccessChanged)
    assert data.version == 3
    assert contract_violations(raw)


def test_the_event_catalog_in_docs_is_current() -> None:
    assert (DOCS / "events.md").read_text() == markdown()
    assert json.loads((DOCS / "asyncapi.json").read_text()) == asyncapi()


def unregistered(data: object, type_name: str = "pipedesk.gmail.message.received.v1") -> bytes:
    envelope = json.loads(event())
    return json.dumps({**envelope, "type": type_name, "data": data}).encode()


def test_a_type_without_a_contract_is_read_through_a_generic_model_when_asked() -> None:
    projection = {
        "kind": "email",
        "occurred_at": "2026-01-01T10:00:00Z",
        "title": "Hello",
        "source": {"service": "gmail", "key": "gmail:m1"},
    }
    body = unregistered({"timeline": projection, "thread": "t1"})
    with pytest.raises(UnknownEventType):
        decode_event(body)
    decoded = decode_event(body, unregistered=TimelineCarrier)
    assert isinstance(decoded.data, TimelineCarrier)
    assert decoded.data.timeline.title == "Hello"
    assert decoded.routing_key == "gmail.message.received"
    assert decoded.type.name == "pipedesk.gmail.message.received.v1"
    # Without the generic model's fields it stays unknown; with them but invalid, malformed.
    with pytest.raises(UnknownEventType):
        decode_event(unregistered({"amount": 3}), unregistered=TimelineCarrier)
    with pytest.raises(UnknownEventType):
        decode_event(
            unregistered({"timeline": projection}, "other.type"), unregistered=TimelineCarrier
        )
    with pytest.raises(MalformedEvent):
        decode_event(
            unregistered({"timeline": {**projection, "kind": "gossip"}}),
            unregistered=TimelineCarrier,
        )
    # A registered type is always read through its own contract.
    assert isinstance(decode_event(event(), unregistered=TimelineCarrier).data, LeadAccessChanged)


def test_a_consumer_of_unregistered_types_is_bound_to_every_routing_key() -> None:
    tables = inbox_tables(MetaData())
    specific, generic = Consumer("a.b", tables), Consumer("a.c", tables)

    async def handle(_session: object, _event: object) -> None:
        return None

    specific.on(LeadAccessChanged)(handle)
    generic.on(LeadAccessChanged)(handle)
    generic.on_unregistered(TimelineCarrier)(handle)
    assert specific.routing_keys == ["crm.lead.access_changed"]
    assert generic.routing_keys == ["#"]
    with pytest.raises(ValueError, match="unregistered"):
        generic.on_unregistered(TimelineCarrier)(handle)
