"""Our own ids are UUIDv7: time-ordered, so they index well and sort by creation.

Ids other systems choose (an identity provider's ``sub``, a team's id) stay opaque: ``auth0|…``,
an email address or any script is fine. ``OpaqueId`` refuses only what no URL, header or log can
carry faithfully: control characters, whitespace around the id, more than 255 characters.
``id_path`` puts one into a URL path (``Location``) percent-encoded. ``ID_PATTERN`` says the same
in OpenAPI, and ``OpaqueIdPath`` is such an id as a path parameter (which may hold ``/``).
"""

from typing import Annotated, Final
from urllib.parse import quote
from uuid import UUID

from fastapi import Path
from pydantic import AfterValidator, StringConstraints, WithJsonSchema
from uuid_utils.compat import uuid7

from pipedesk_common.input_policy import has_line_controls

MAX_ID_LENGTH: Final = 255
# No control character anywhere, no whitespace first or last, at most 255 characters.
_INNER: Final = "[^\\x00-\\x1f\\x7f-\\x9f]"
_EDGE: Final = "[^\\s\\x00-\\x1f\\x7f-\\x9f]"
# (The length is maxLength's: a bounded repetition would count UTF-16 units in some readers.)
ID_PATTERN: Final = f"^{_EDGE}({_INNER}*{_EDGE})?$"


def new_id() -> UUID:
    return uuid7()


def opaque_id(value: str) -> str:
    """``value`` if it may serve as an id (see the module docstring), else ``ValueError``."""
    if has_line_controls(value):
        raise ValueError("an id may not hold control characters")
    if value != value.strip():
        raise ValueError("an id may not begin or end with whitespace")
    return value


OpaqueId = Annotated[
    str,
    StringConstraints(strip_whitespace=False, min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(opaque_id),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN}
    ),
]

OpaqueIdPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, description="An opaque id"),
]


def id_path(prefix: str, value: str) -> str:
    """``prefix/<value>`` with ``value`` percent-encoded (any character, ``/`` included)."""
    return f"{prefix}/{quote(value, safe='')}"
