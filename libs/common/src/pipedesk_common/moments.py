"""A moment in a query or body as the OpenAPI documents promise it: an RFC 3339 date-time with
its offset. pydantic alone would also take a number (``0.5``) as seconds since 1970."""

import re
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, BeforeValidator

_NUMBER: Final = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def _not_a_number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("an RFC 3339 date-time with its offset, not a number")
    if isinstance(value, str) and _NUMBER.match(value):
        raise ValueError("an RFC 3339 date-time with its offset, not a number")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
"""An aware ``datetime``, given as an RFC 3339 date-time (``2026-03-02T10:00:00+01:00``)."""
