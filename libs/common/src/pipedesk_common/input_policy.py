"""The input policy every service applies at its edge, and the same rule for data from Google.

Text may hold any character but control characters: NUL and the other C0 controls, DEL, the C1
controls and lone surrogates (which no database column, log line or header can carry). Free
text keeps its newlines and tabs (``\\n``, ``\\r``, ``\\t``); a query value, an id or a path keeps
none.

- ``InputPolicyMiddleware`` (installed by ``create_app``) refuses a request whose path holds a
  control character with ``400 invalid-path``, and one whose query values or JSON strings (keys
  included) hold one with ``422 invalid-input`` naming each field (``query.q``,
  ``body.attendees.0.email``), before any route runs.
- ``clean_text`` and ``cleaned`` drop those characters from what Google sends, before it is
  stored: a NUL in an event's summary is not the mirror's to refuse, and must not stop a sync.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipedesk_common.errors import FieldError, InvalidInput, problem_response

# Controls a free text may not hold: every C0 control but tab, LF and CR; DEL; C1; surrogates.
TEXT_CONTROLS: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Controls a single-line value (a query value, an id, a path) may not hold: all of them.
LINE_CONTROLS: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# What a JSON body must contain to hold a control inside a string at all: JSON forbids raw C0
# controls in strings, so they come escaped; DEL and C1 may come raw. A body without any of these
# is not parsed here.
_MAY_HOLD_CONTROLS: Final = re.compile(rb"\\u|\\b|\\f|\x7f|\xc2[\x80-\x9f]")

T = TypeVar("T")

INVALID_PATH_SLUG: Final = "invalid-path"
INVALID_PATH_TITLE: Final = "The path is not valid"


def has_text_controls(value: str) -> bool:
    return TEXT_CONTROLS.search(value) is not None


def has_line_controls(value: str) -> bool:
    return LINE_CONTROLS.search(value) is not None


def clean_text(value: str) -> str:
    """``value`` without the control characters free text may not hold."""
    return TEXT_CONTROLS.sub("", value)


def cleaned(value: T) -> T:
    """``value`` (JSON-like: dicts, lists, strings…) with every string and key cleaned."""
    if isinstance(value, str):
        return clean_text(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: cleaned(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [cleaned(item) for item in value]  # type: ignore[return-value]
    return value


def _field(parts: tuple[str, ...]) -> str:
    return ".".join(LINE_CONTROLS.sub("?", part) for part in parts)


def json_control_errors(value: Any, path: tuple[str, ...] = ("body",)) -> Iterator[FieldError]:
    """A ``FieldError`` for each string of ``value`` (or key) holding a control character."""
    if isinstance(value, str):
        if has_text_controls(value):
            yield FieldError(
                field=_field(path),
                message="control characters are not allowed (newlines and tabs are)",
                code="control_characters",
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            if has_line_controls(key):
                yield FieldError(
                    field=_field(path),
                    message="a member name holds control characters",
                    code="control_characters",
                )
            yield from json_control_errors(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_control_errors(item, (*path, str(index)))


def query_control_errors(query_string: bytes) -> list[FieldError]:
    pairs = parse_qsl(
        query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace"
    )
    return [
        FieldError(
            field=_field(("query", name)),
            message="control characters are not allowed",
            code="control_characters",
        )
        for name, value in pairs
        if has_line_controls(name) or has_line_controls(value)
    ]


def _is_json(scope: Scope) -> bool:
    content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1").lower()
    media: str = content_type.split(";", 1)[0].strip()
    return media == "application/json" or media.endswith("+json")


class InputPolicyMiddleware:
    """Refuses control characters in the path, query values and JSON strings (module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if has_line_controls(path):
            response = problem_response(
                400,
                INVALID_PATH_SLUG,
                INVALID_PATH_TITLE,
                "the path holds control characters",
                errors=[
                    FieldError(
                        field="path",
                        message="control characters are not allowed",
                        code="control_characters",
                    )
                ],
            )
            await response(scope, receive, send)
            return
        errors = query_control_errors(scope.get("query_string", b""))
        if scope["method"] in {"POST", "PUT", "PATCH"} and _is_json(scope):
            body, receive = await _buffered(receive)
            if _MAY_HOLD_CONTROLS.search(body):
                try:
                    document = json.loads(body)
                except ValueError:  # malformed: the route answers that (400)
                    document = None
                errors.extend(json_control_errors(document))
        if errors:
            fields = ", ".join(dict.fromkeys(error.field for error in errors))
            response = problem_response(
                InvalidInput.status,
                InvalidInput.slug,
                InvalidInput.title,
                f"invalid fields: {fields}",
                instance=LINE_CONTROLS.sub("?", path),
                errors=errors,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _replaying(message: Message) -> Receive:
    """A ``receive`` answering ``message`` (a disconnect): the app meets it too."""

    async def again() -> Message:
        return message

    return again


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a ``receive`` that hands it to the app again."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", _replaying(message)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
