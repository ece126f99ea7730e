"""Event contracts and the CloudEvents envelope.

A contract is a pydantic model registered with ``@contract(service, entity, action)``; its type is
``pipedesk.<service>.<entity>.<action>.v<N>`` and its routing key ``<service>.<entity>.<action>``.
Contracts live in one module per producer (``events/crm.py``…) so producers and consumers share
them. A breaking change is a new version (a new model), never an edit.
"""

# Importing the contract modules registers every event type the system knows.
from pipedesk_common.events import accounts as accounts
from pipedesk_common.events import automation as automation
from pipedesk_common.events import calendar as calendar
from pipedesk_common.events import crm as crm
from pipedesk_common.events import drive as drive
from pipedesk_common.events import gmail as gmail
from pipedesk_common.events import tasks as tasks
from pipedesk_common.events.envelope import (
    Event,
    EventData,
    EventType,
    MalformedEvent,
    UnknownEventType,
    VersionedData,
    contract,
    decode_event,
    encode_event,
    event_type_of,
    new_event,
    registered_types,
)

__all__ = [
    "Event",
    "EventData",
    "EventType",
    "MalformedEvent",
    "UnknownEventType",
    "VersionedData",
    "contract",
    "decode_event",
    "encode_event",
    "event_type_of",
    "new_event",
    "registered_types",
]
