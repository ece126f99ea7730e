"""The gmail API's shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Sharing = Literal["metadata", "subject", "full"]
BlockEntry = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=320),
]
Domain = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=3,
        max_length=253,
        pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+$",
    ),
]


def _blocklist(entries: list[str]) -> list[str]:
    for entry in entries:
        if "@" not in entry or entry.count("@") > 1 or entry.endswith("@"):
            raise ValueError(f"{entry!r} is neither an address nor @domain")
    return sorted(set(entries))


class MailboxPublic(BaseModel):
    connected: bool
    email: str | None
    sharing: Sharing = Field(description="The level the mailbox's mail is shared at")
    sharing_is_org_default: bool
    blocklist: list[str]
    synced_at: datetime | None
    window_start: datetime | None
    watch_expires_at: datetime | None


class MailboxUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sharing: Sharing | None = Field(
        None,
        description="metadata (who and when), subject (and the subject) or full (and the "
        "body and attachments): what teammates who can read a record see of this mailbox's mail",
    )
    blocklist: list[BlockEntry] | None = Field(
        None, max_length=1000, description="Addresses or @domains whose mail is never matched"
    )

    _check_blocklist = field_validator("blocklist")(
        lambda entries: None if entries is None else _blocklist(entries)
    )


class OrgSettingsPublic(BaseModel):
    domains: list[str] = Field(description="The org's own domains: mail among them is internal")
    blocklist: list[str]
    default_sharing: Sharing
    on_disconnect: Literal["keep_metadata", "remove"] = Field(
        description="What a disconnected mailbox's mail becomes: kept on timelines at metadata "
        "level, or removed from every timeline and from PipeDesk"
    )
    automation_sender_id: str | None = Field(
        None, description="The user whose mailbox the automation service sends from by default"
    )
    retention_days: int | None = Field(
        None,
        description="How many days mirrored mail is kept, by its date: older mail leaves "
        "PipeDesk and every timeline (the `gmail.retention` job); null: no limit",
    )
    updated_at: datetime | None


class OrgSettingsWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domains: list[Domain] = Field(default_factory=list, max_length=100)
    blocklist: list[BlockEntry] = Field(default_factory=list, max_length=5000)
    default_sharing: Sharing = "metadata"
    on_disconnect: Literal["keep_metadata", "remove"] = "keep_metadata"
    automation_sender_id: str | None = Field(None, min_length=1, max_length=255)
    retention_days: int | None = Field(None, ge=1, le=36500)

    _check_blocklist = field_validator("blocklist")(_blocklist)
