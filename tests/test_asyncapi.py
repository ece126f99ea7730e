"""The AsyncAPI document of our events passes the AsyncAPI project's own parser and names every
event type; a broken copy fails it."""

import copy
import json
from typing import Any

import pytest

from pipedesk_common.events import registered_types
from tests.contract_tools import ROOT, Checked, checked

DOCUMENT = ROOT / "docs" / "asyncapi.json"
DROPPED = "pipedesk.crm.lead.created.v1"


def without_message(document: dict[str, Any], name: str) -> dict[str, Any]:
    """``document`` as if the event type ``name`` had been forgotten."""
    broken = copy.deepcopy(document)
    message_id = name.replace(".", "_")
    del broken["components"]["messages"][message_id]
    for channel_id, channel in list(broken["channels"].items()):
        channel["messages"].pop(message_id, None)
        if not channel["messages"]:
            del broken["channels"][channel_id]
    for operation_id, operation in list(broken["operations"].items()):
        operation["messages"] = [
            ref for ref in operation["messages"] if not ref["$ref"].endswith(f"/{message_id}")
        ]
        if operation["channel"]["$ref"].removeprefix("#/channels/") not in broken["channels"]:
            del broken["operations"][operation_id]
    return broken


def with_dangling_reference(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with one payload's ``data`` pointing at a schema it does not hold."""
    broken = copy.deepcopy(document)
    del broken["components"]["schemas"]["LeadCreated"]
    return broken


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Checked]:
    """The parser's verdict on the document and on two broken copies, in one Node.js run."""
    folder = tmp_path_factory.mktemp("asyncapi")
    document = json.loads(DOCUMENT.read_text())
    copies = {
        "published": document,
        "dangling": with_dangling_reference(document),
        "forgotten": without_message(document, DROPPED),
    }
    paths = {name: folder / f"{name}.json" for name in copies}
    for name, content in copies.items():
        paths[name].write_text(json.dumps(content))
    types = folder / "event-types.txt"
    types.write_text("\n".join(sorted(registered_types())) + "\n")
    found = checked("asyncapi.mjs", str(types), documents=list(paths.values()))
    return {name: found[path] for name, path in paths.items()}


def test_the_published_asyncapi_document_is_valid_and_names_every_event_type(
    verdicts: dict[str, Checked],
) -> None:
    assert verdicts["published"] == Checked(True, [])


def test_a_copy_with_a_dangling_reference_fails_the_parser(verdicts: dict[str, Checked]) -> None:
    assert not verdicts["dangling"].valid
    assert any("LeadCreated" in problem for problem in verdicts["dangling"].problems)


def test_a_copy_that_forgets_an_event_type_fails_the_check(verdicts: dict[str, Checked]) -> None:
    assert verdicts["forgotten"].problems == [f"no message for event type {DROPPED}"]


def test_every_message_is_the_cloudevents_envelope_around_its_contract() -> None:
    document = json.loads(DOCUMENT.read_text())
    envelope = document["components"]["schemas"]["CloudEventEnvelope"]
    assert {"specversion", "id", "source", "type", "time", "orgid", "data"} <= set(
        envelope["required"]
    )
    for name, event_type in registered_types().items():
        message = document["components"]["messages"][name.replace(".", "_")]
        own = message["payload"]["allOf"][1]["properties"]
        assert message["payload"]["allOf"][0] == {"$ref": "#/components/schemas/CloudEventEnvelope"}
        assert own["type"]["const"] == name
        assert (
            own["data"]["$ref"].removeprefix("#/components/schemas/")
            in (document["components"]["schemas"])
        )
        channel = document["channels"][event_type.routing_key.replace(".", "_")]
        assert channel["address"] == event_type.routing_key
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "pipedesk.events"
    queues = {
        channel["address"]
        for channel in document["channels"].values()
        if channel["bindings"]["amqp"]["is"] == "queue"
    }
    assert "timeline.items" in queues
    assert document["servers"]["rabbitmq"]["protocol"] == "amqp"
