"""The mailbox mirror's rules: what a Gmail message becomes in the mirror, and what reaches the
timeline.

Every path goes through the kit's ``MirrorWriter``: ``created`` when a message is first read,
``updated`` when its labels (Gmail's ``historyId`` of the message) or its mailbox's sharing
change, ``deleted`` once when it leaves the mailbox. Each event carries the message's projection:
its ``Message-ID`` is the identity, so every mailbox's copy is one timeline item, shown at each
mailbox's sharing level (the timeline's holders rule).

Matching: a message is offered to the timeline's participant index (its participants) unless it
is bulk or automated mail (``List-Unsubscribe``, ``List-Id``, ``Precedence: bulk|list|junk``,
``Auto-Submitted`` other than ``no``), internal-only (every participant in the org's domains),
or has a participant on the user's or the org's blocklist (an address, or ``@domain``). Mail not
offered is still one item of its holders, on no record's timeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from gmail_service.google import GmailMessage
from gmail_service.models import TABLES, Mailbox, MirroredMessage, OrgMailSettings, message_links
from gmail_service.parsing import parse
from pipedesk_common.clock import Clock
from pipedesk_common.events import VersionedData
from pipedesk_common.events.gmail import (
    GmailMessageCreated,
    GmailMessageDeleted,
    GmailMessageUpdated,
)
from pipedesk_common.events.timeline import (
    REMOVED_STATUS,
    ItemKind,
    Link,
    TimelineProjection,
    TimelineSource,
    Visibility,
    identity_of,
)
from pipedesk_common.mirror.links import RecordLinks
from pipedesk_common.mirror.writer import MirrorWriter

SHARING_LEVELS: Final = ("metadata", "subject", "full")
BULK_PRECEDENCE: Final = frozenset({"bulk", "list", "junk"})
MAX_SUMMARY: Final = 4000
MESSAGE_LINKS: Final = RecordLinks(message_links, "message_id")


@dataclass(frozen=True)
class MailRules:
    """The org's and the mailbox owner's settings matching reads."""

    domains: frozenset[str]
    blocklist: frozenset[str]
    sharing: str

    @classmethod
    def of(cls, mailbox: Mailbox, settings: OrgMailSettings | None) -> MailRules:
        own_domain = (mailbox.user_email or "").rpartition("@")[2].lower()
        domains = {d.lower() for d in (settings.domains if settings else [])}
        if own_domain:
            domains.add(own_domain)
        blocked = {entry.lower() for entry in mailbox.blocklist}
        blocked |= {entry.lower() for entry in (settings.blocklist if settings else [])}
        default = settings.default_sharing if settings else "metadata"
        return cls(frozenset(domains), frozenset(blocked), mailbox.sharing or default)


def automated(headers: Mapping[str, str]) -> bool:
    """Bulk or automated mail, by its headers."""
    if "list-unsubscribe" in headers or "list-id" in headers:
        return True
    if headers.get("precedence", "").strip().lower() in BULK_PRECEDENCE:
        return True
    submitted = headers.get("auto-submitted")
    return submitted is not None and submitted.strip().lower() != "no"


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def offered_to_matching(message: MirroredMessage, rules: MailRules) -> bool:
    participants = message.participants
    if not participants or automated(message.headers):
        return False
    if all(_domain(address) in rules.domains for address in participants):
        return False
    return not any(
        address in rules.blocklist or "@" + _domain(address) in rules.blocklist
        for address in participants
    )


@dataclass(frozen=True)
class MailboxScope:
    """The writer's parent: a mailbox with the settings its messages are announced under."""

    mailbox: Mailbox
    rules: MailRules

    @property
    def id(self) -> UUID:
        return self.mailbox.id


class MessageRules:
    def gone(self, resource: GmailMessage) -> bool:
        return resource.deleted

    def values(
        self, scope: MailboxScope, resource: GmailMessage, stored: MirroredMessage | None
    ) -> dict[str, Any] | None:
        mailbox = scope.mailbox
        if resource.deleted:
            return {"deleted": True}
        columns: dict[str, Any] = {
            "org_id": mailbox.org_id,
            "user_id": mailbox.user_id,
            "mailbox_id": mailbox.id,
            "google_id": resource.id,
            "deleted": False,
            "label_ids": list(resource.label_ids),
        }
        if resource.history_id is not None:
            columns["etag"] = resource.history_id
        if resource.thread_id:
            columns["thread_id"] = resource.thread_id
        content = resource.content()
        if content is None:
            return columns if stored is not None else None
        mail = parse(content)
        received = resource.received_at or mail.date
        if received is None:
            return None
        body = mail.text or ""
        return {
            **columns,
            "identity": identity_of(mail.message_id),
            "internal_date": received,
            "subject": mail.subject[:2000],
            "sender": mail.sender,
            "recipients": sorted({*mail.to, *mail.cc, *mail.bcc}),
            "snippet": " ".join(body.split())[:300],
            "text_body": mail.text,
            "html_body": mail.html,
            "attachments": [
                {
                    "part_id": a.part_id,
                    "filename": a.filename,
                    "mime_type": a.mime_type,
                    "size": a.size,
                }
                for a in mail.attachments
            ],
            "headers": mail.headers,
            "problems": mail.problems,
        }

    def kind(
        self, before: Mapping[str, Any] | None, row: MirroredMessage
    ) -> type[VersionedData] | None:
        if row.deleted:
            return None if before is not None and before["deleted"] else GmailMessageDeleted
        return GmailMessageCreated if before is None else GmailMessageUpdated

    def snapshot(
        self,
        scope: MailboxScope,
        message: MirroredMessage,
        links: Sequence[Link],
        actor_id: str | None,
    ) -> dict[str, Any]:
        rules = scope.rules
        # A message gone from the mailbox leaves its copy without content: once every mailbox
        # dropped it, it leaves every timeline, and nothing of it stays there.
        gone = message.deleted
        summary = None if gone else message.text_body or message.snippet
        matched = offered_to_matching(message, rules)
        return {
            "id": str(message.id),
            "version": message.version,
            "org_id": message.org_id,
            "owner_id": message.user_id,
            "google_id": message.google_id,
            "thread_id": message.thread_id,
            "message_id": message.identity,
            "sharing": rules.sharing,
            "deleted": message.deleted,
            "internal_date": message.internal_date,
            "label_ids": message.label_ids,
            "sender": message.sender,
            "recipients": message.recipients,
            "matched": matched,
            "timeline": TimelineProjection(
                kind=ItemKind.EMAIL,
                occurred_at=message.internal_date,
                title="(removed)" if gone else (message.subject or "(no subject)")[:500],
                summary=summary[:MAX_SUMMARY] if summary else None,
                participants=message.participants if matched and not gone else [],
                links=list(links),
                source=TimelineSource(
                    service="gmail",
                    key=f"gmail:message:{message.id}",
                    google_id=message.google_id,
                    url=f"https://mail.google.com/mail/#all/{message.google_id}",
                ),
                identity=message.identity,
                status=REMOVED_STATUS if gone else None,
                actor_id=actor_id,
                visibility=Visibility(sharing=rules.sharing, owner_id=message.user_id),
                version=message.version,
            ),
        }


MessageWriter = MirrorWriter[MirroredMessage, MailboxScope, GmailMessage]


def message_writer(clock: Clock) -> MessageWriter:
    return MirrorWriter(
        MirroredMessage,
        parent_key="mailbox_id",
        links=MESSAGE_LINKS,
        outbox=TABLES.outbox,
        clock=clock,
        rules=MessageRules(),
    )
