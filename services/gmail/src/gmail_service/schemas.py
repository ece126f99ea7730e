"""The gmail API's shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from pipedesk_common.email_addresses import ADDRESS_CHARACTER
from pipedesk_common.mirror.disconnect import KEEP_METADATA, OnDisconnect
from pipedesk_common.mirror.retention import RetentionDays

Sharing = Literal["metadata", "subject", "full"]
# An address or an @domain, in either case (stored lower case). The constraints come before the
# validator that lowers it: pydantic documents a pattern only when no validator is before it.
BLOCK_ENTRY_PATTERN = f"^{ADDRESS_CHARACTER}*@{ADDRESS_CHARACTER}+$"
BlockEntry = Annotated[
    str,
    StringConstraints(min_length=3, max_length=320, pattern=BLOCK_ENTRY_PATTERN),
    AfterValidator(str.lower),
]
# A DNS name of the org's, in either case (stored lower case).
Domain = Annotated[
    str,
    StringConstraints(min_length=3, max_length=253, pattern=r"^[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)+$"),
    AfterValidator(str.lower),
]


def _blocklist(entries: list[str]) -> list[str]:
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


class OrgMailSettingsPublic(BaseModel):
    domains: list[str] = Field(description="The org's own domains: mail among them is internal")
    blocklist: list[str]
    default_sharing: Sharing
    on_disconnect: OnDisconnect = Field(
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


class OrgMailSettingsWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domains: list[Domain] = Field(default_factory=list, max_length=100)
    blocklist: list[BlockEntry] = Field(default_factory=list, max_length=5000)
    default_sharing: Sharing = "metadata"
    on_disconnect: OnDisconnect = KEEP_METADATA
    automation_sender_id: str | None = Field(None, min_length=1, max_length=255)
    retention_days: RetentionDays | None = None

    _check_blocklist = field_validator("blocklist")(_blocklist)
