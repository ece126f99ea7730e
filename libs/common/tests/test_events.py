import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipedesk_common.events import (
    MalformedEvent,
    UnknownEventType,
    decode_event,
    encode_event,
    new_event,
)
from pipedesk_common.events.catalog import asyncapi, contract_violations, markdown
from pipedesk_common.events.crm import LeadAccessChanged

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
    assert decode_event(raw).data.version == 3
    assert contract_violations(raw)


def test_the_event_catalog_in_docs_is_current() -> None:
    assert (DOCS / "events.md").read_text() == markdown()
    assert json.loads((DOCS / "asyncapi.json").read_text()) == asyncapi()
