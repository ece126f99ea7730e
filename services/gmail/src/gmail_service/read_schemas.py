"""The shapes of reading mail: a message as one viewer is shown it, a thread, a record's mail,
a manual link."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from gmail_service.reading import Level, ShownMessage
from pipedesk_common.mirror.links import LinkPublic, public_links


class AttachmentPublic(BaseModel):
    id: str = Field(description="The attachment's id in this message (its MIME part)")
    filename: str
    mime_type: str
    size: int = Field(description="Its size in bytes")


class MessagePublic(BaseModel):
    id: UUID = Field(
        description="PipeDesk's id of the copy shown (the mailbox copy the viewer may see most "
        "of); any copy's id reads the same message"
    )
    message_id: str = Field(description="The RFC 5322 `Message-ID`, the same in every copy")
    thread_id: str = Field(description="Gmail's id of its thread in the shown copy's mailbox")
    level: Literal["metadata", "subject", "full"] = Field(
        description="What the viewer sees: metadata (who and when), subject (and the subject), "
        "full (and the body and attachments)"
    )
    own: bool = Field(description="The viewer's own mailbox holds a copy")
    owner_id: str = Field(description="Whose mailbox the shown copy is in")
    date: datetime
    sender: str | None
    recipients: list[str] = Field(description="To, Cc and Bcc (as the shown copy has them)")
    subject: str | None = Field(description="From level `subject`")
    snippet: str | None = Field(description="At level `full`")
    text_body: str | None = Field(description="At level `full`")
    html_body: str | None = Field(description="At level `full` (sanitised)")
    attachments: list[AttachmentPublic] | None = Field(description="At level `full`")
    label_ids: list[str] | None = Field(description="Gmail's labels, of the viewer's own copy")
    links: list[LinkPublic] = Field(
        description="The records its holders linked it to by hand (one the viewer may not read "
        "is shown hidden)"
    )


class ThreadPublic(BaseModel):
    thread_id: str
    messages: list[MessagePublic] = Field(description="Oldest first, each at the viewer's level")


class MailLinkPublic(BaseModel):
    record: LinkPublic
    thread_id: str | None = Field(description="Gmail's id of the thread, in your mailbox")
    messages: list[UUID] = Field(description="Your copies that carry the link")


def message_public(shown: ShownMessage) -> MessagePublic:
    copy = shown.copy
    subject = shown.level >= Level.SUBJECT
    full = shown.level >= Level.FULL
    return MessagePublic(
        id=copy.id,
        message_id=copy.identity,
        thread_id=copy.thread_id,
        level=shown.level_name,
        own=shown.own,
        owner_id=copy.user_id,
        date=copy.internal_date,
        sender=copy.sender,
        recipients=copy.recipients,
        subject=copy.subject if subject else None,
        snippet=copy.snippet if full else None,
        text_body=copy.text_body if full else None,
        html_body=copy.html_body if full else None,
        attachments=[
            AttachmentPublic(
                id=str(a.get("part_id", "")),
                filename=str(a.get("filename") or "attachment"),
                mime_type=str(a.get("mime_type") or "application/octet-stream"),
                size=int(a.get("size") or 0),
            )
            for a in copy.attachments
        ]
        if full
        else None,
        label_ids=copy.label_ids if shown.own and copy.user_id == shown.viewer_id else None,
        links=public_links(shown.links, shown.hidden_links),
    )
