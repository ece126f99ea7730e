"""A moment in a query or body as the OpenAPI documents promise it: an RFC 3339 date-time with
its offset, or a day as ``YYYY-MM-DD``. pydantic alone would also take a number (``0.5``) as
seconds since 1970. And a time zone as the document lists them: one of zoneinfo's."""

import re
from datetime import date
from typing import Annotated, Any, Final
from zoneinfo import available_timezones

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, WithJsonSchema

_NUMBER: Final = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def _refusing_numbers(expected: str) -> BeforeValidator:
    def not_a_number(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"{expected}, not a number")
        if isinstance(value, str) and _NUMBER.match(value):
            raise ValueError(f"{expected}, not a number")
        return value

    return BeforeValidator(not_a_number)


Rfc3339 = Annotated[AwareDatetime, _refusing_numbers("an RFC 3339 date-time with its offset")]
"""An aware ``datetime``, given as an RFC 3339 date-time (``2026-03-02T10:00:00+01:00``)."""

IsoDate = Annotated[date, _refusing_numbers("a date (YYYY-MM-DD)")]
"""A day, given as ``YYYY-MM-DD``."""

TIME_ZONES: Final = tuple(sorted(available_timezones()))
_KNOWN_ZONES: Final = frozenset(TIME_ZONES)


def _known_zone(value: str) -> str:
    if value not in _KNOWN_ZONES:
        raise ValueError("not a known IANA time zone (one of the document's enum)")
    return value


TimeZoneName = Annotated[
    str,
    AfterValidator(_known_zone),
    WithJsonSchema({"type": "string", "enum": list(TIME_ZONES)}),
]
"""An IANA time zone (``Europe/Paris``): exactly one of zoneinfo's available time zones, which
the document lists as its ``enum``."""
