"""Which Google calls may run twice.

A call whose repeat changes nothing more than its first run may be retried whatever went wrong;
one that would act again (create a second task, send a second e-mail) may be retried only where
Google certainly did not act, and otherwise its result is looked up first (``reconcile``).

Google's HTTP verbs say most of it: GET reads, PUT/PATCH write the fields given, DELETE removes
(a repeat is refused 404/410, which counts as done). POST creates or acts, so a POST is taken to
act twice unless listed here, with the reason its repeat is harmless. Unlisted POSTs the services
make: ``tasks.tasks.insert`` and ``tasks.tasklists.insert`` (Google Tasks takes no client ids,
so the caller reconciles by the content it wrote) and ``calendar.events.watch`` (a lost answer
leaves a channel we cannot name; the renewal opens another, and the orphan expires). Gmail's
``users.messages.send`` and Drive's ``files.create``/``permissions.create`` are POSTs too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

REPEAT_SAFE_VERBS: Final = frozenset({"GET", "PUT", "PATCH", "DELETE"})

REPEATABLE_POSTS: Final[Mapping[str, Mapping[str, str]]] = {
    "calendar": {
        "events.insert": "the body carries our own event id: a repeat is refused 409 duplicate, "
        "and the insert answers the event it already stored",
        "freebusy.query": "a read",
        "channels.stop": "a stopped channel is refused 404, which counts as stopped",
    },
    "drive": {
        "channels.stop": "a stopped channel is refused 404, which counts as stopped",
    },
    "tasks": {
        "tasks.move": "moving a task to where it already is changes nothing",
        "tasks.clear": "hiding the completed tasks again hides nothing more",
    },
}


def http_method(document: Mapping[str, Any], method: str) -> str | None:
    """The HTTP verb of ``method`` (``events.insert``, ``users.messages.send``) in a discovery
    document; None when the document has no such method."""
    *resources, name = method.split(".")
    node: Any = document
    for resource in resources:
        node = node.get("resources", {}).get(resource)
        if not isinstance(node, Mapping):
            return None
    found = node.get("methods", {}).get(name)
    return str(found["httpMethod"]) if isinstance(found, Mapping) else None


def repeatable(api: str, document: Mapping[str, Any], method: str) -> bool:
    """Whether running ``method`` of ``api`` (``events.insert`` or ``calendar.events.insert``)
    twice does no more than running it once."""
    verb = http_method(document, method)
    if verb is None and method.startswith(f"{api}."):
        method = method.removeprefix(f"{api}.")
        verb = http_method(document, method)
    if verb is None:
        raise ValueError(f"{api} has no method {method!r}")
    return verb in REPEAT_SAFE_VERBS or method in REPEATABLE_POSTS.get(api, {})
