"""Schemathesis hooks of the published-contract run (loaded through ``SCHEMATHESIS_HOOKS``).

A generated ``Idempotency-Key`` is drawn from a small space, so two requests of one operation
often carry the same key with different payloads, which the API refuses by design
(``422 idempotency-key-reused``). Each request that carries a key of the accepted form gets a
fresh one instead: the run checks the operation, not the reuse of keys, whose answers (replay,
reuse, a key in progress) the idempotency tests of the services check. A key outside the
accepted form is sent as drawn, so its refusal stays checked here.

The run draws in several threads. On Python 3.11 two threads building a syntax tree at once can
fail CPython's AST recursion check (gh-106905: a ``SystemError`` inside hypothesis, which parses
source to describe strategies and filters): every ``ast.parse`` of the process takes one lock."""

from __future__ import annotations

import ast
import functools
import re
import threading
import uuid
from typing import Any

import schemathesis

from pipedesk_common.idempotency import HEADER, KEY_PATTERN

_ACCEPTED_KEY = re.compile(KEY_PATTERN)
_PARSING = threading.RLock()


def _one_at_a_time(parse: Any) -> Any:
    @functools.wraps(parse)
    def parse_alone(*args: Any, **kwargs: Any) -> Any:
        with _PARSING:
            return parse(*args, **kwargs)

    return parse_alone


if not hasattr(ast.parse, "__wrapped__"):
    ast.parse = _one_at_a_time(ast.parse)  # type: ignore[assignment]


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == HEADER.lower() and isinstance(value, str) and _ACCEPTED_KEY.match(value):
            headers[name] = f"contract-{uuid.uuid4()}"
