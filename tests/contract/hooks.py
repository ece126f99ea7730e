"""Schemathesis hooks of the published-contract run (loaded through ``SCHEMATHESIS_HOOKS``).

A generated ``Idempotency-Key`` is drawn from a small space, so two requests of one operation
often carry the same key with different payloads, which the API refuses by design
(``422 idempotency-key-reused``). Each request that carries a key of the accepted form gets a
fresh one instead: the run checks the operation, not the reuse of keys, whose answers (replay,
reuse, a key in progress) the idempotency tests of the services check. A key outside the
accepted form is sent as drawn, so its refusal stays checked here."""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

from pipedesk_common.idempotency import HEADER, KEY_PATTERN

_ACCEPTED_KEY = re.compile(KEY_PATTERN)


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == HEADER.lower() and isinstance(value, str) and _ACCEPTED_KEY.match(value):
            headers[name] = f"contract-{uuid.uuid4()}"
