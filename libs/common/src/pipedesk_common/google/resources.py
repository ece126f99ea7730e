"""Google's resources as typed models, read at the edge of a service's ``google.py``.

A ``GoogleResource`` names the fields PipeDesk reads (snake case; Google's camel case is the
alias) and keeps Google's answer itself in ``raw``, untouched, for what is stored as Google wrote
it (a mirror's JSONB column). Service code reads the fields, never the raw dictionary; an answer
that does not fit its model is refused where it enters (``GoogleApi.parsed``), not deep in the
service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class GoogleModel(BaseModel):
    """A part of a Google resource (a time, an attendee): Google's camel-case names."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class GoogleResource(GoogleModel):
    """A resource as a Google API answered it (see the module docstring)."""

    raw: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _keep_raw(cls, data: Any) -> Any:
        if isinstance(data, dict) and "raw" not in data:
            return {**data, "raw": data}
        return data


R = TypeVar("R", bound=GoogleResource)


@dataclass(frozen=True)
class SkippedItem:
    """An item of a listing that could not be read or stored: its Google id and why
    (``partial``: it was stored with only what could be read of it)."""

    id: str
    reason: str
    partial: bool = False


@dataclass(frozen=True)
class Page(Generic[R]):
    """One page of a Google listing, and where the listing goes on."""

    items: list[R]
    next_page_token: str | None = None
    next_sync_token: str | None = None
    skipped: tuple[SkippedItem, ...] = ()  # items Google answered that could not be read


def as_utc(moment: datetime | None) -> datetime | None:
    """A Google time as an aware UTC datetime (one without an offset is UTC)."""
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 as Google writes it: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
