"""A message PipeDesk sends, as RFC 5322 bytes: its sender, recipients, subject, text and/or
HTML, attachments, its own ``Message-ID``, and for a reply the headers that keep Gmail's thread
(``In-Reply-To``, ``References``, a ``Re:`` subject that is never doubled, reply-all's
recipients without the sender's own address)."""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from typing import Final
from uuid import UUID

from gmail_service.google import OriginalHeaders

REPLY_PREFIX: Final = re.compile(r"^\s*(re|aw|sv)\s*:", re.IGNORECASE)
MESSAGE_ID: Final = re.compile(r"<[^<>\s]+>")
# References may grow long in old threads: the first and the newest are what threading needs.
MAX_REFERENCES: Final = 20
# Headers are folded only past RFC 5322's 998 characters: a folded Message-ID reads back with
# the fold's space in some readers.
UNFOLDED: Final = email.policy.SMTP.clone(max_line_length=998)


@dataclass(frozen=True)
class Attachment:
    filename: str
    mime_type: str
    content: bytes


@dataclass(frozen=True)
class Outgoing:
    """What is sent: every address already lower-cased and checked."""

    sender: str
    to: Sequence[str]
    cc: Sequence[str]
    bcc: Sequence[str]
    subject: str
    text: str | None
    html: str | None
    attachments: Sequence[Attachment]
    in_reply_to: str | None = None
    references: Sequence[str] = ()


@dataclass(frozen=True)
class ReplyHeaders:
    """What a reply takes from the message it answers."""

    subject: str
    in_reply_to: str | None
    references: list[str]
    to: list[str]
    cc: list[str]


def rfc822_message_id(sent_id: UUID, sender: str) -> str:
    """The ``Message-ID`` of the message PipeDesk sends as ``sent_id``, at the sender's domain."""
    return f"<{sent_id.hex}.pipedesk@{sender.rpartition('@')[2]}>"


def reply_subject(subject: str) -> str:
    """``Re:`` before the subject, unless it already starts with one (any case, ``AW:``…)."""
    stripped = subject.strip()
    return stripped if REPLY_PREFIX.match(stripped) else f"Re: {stripped}".rstrip()


def _addresses(*values: str) -> list[str]:
    found = [address.lower() for _name, address in getaddresses(list(values)) if "@" in address]
    return list(dict.fromkeys(found))


def without(addresses: Iterable[str], *removed: Iterable[str]) -> list[str]:
    """``addresses`` in order, once each, without any of ``removed``."""
    gone = {address.lower() for group in removed for address in group}
    kept: list[str] = []
    for address in addresses:
        if address.lower() not in gone and address.lower() not in kept:
            kept.append(address.lower())
    return kept


def reply_headers(original: OriginalHeaders, own: str, *, reply_all: bool) -> ReplyHeaders:
    """The subject, threading headers and recipients of a reply (``reply_all``: to everyone the
    original went to) by ``own`` to ``original``. A reply to one's own message goes to its
    recipients, as Gmail does."""
    message_id = original.header("Message-ID").strip()
    references = MESSAGE_ID.findall(original.header("References"))
    if message_id:
        references = [ref for ref in references if ref != message_id] + [message_id]
    if len(references) > MAX_REFERENCES:
        references = [references[0], *references[-(MAX_REFERENCES - 1) :]]
    senders = _addresses(original.header("From"))
    answer_to = _addresses(original.header("Reply-To")) or senders
    recipients = _addresses(original.header("To"))
    copied = _addresses(original.header("Cc"))
    own = own.lower()
    if own in senders:
        to, cc = recipients, copied if reply_all else []
    elif reply_all:
        to, cc = [*answer_to, *recipients], copied
    else:
        to, cc = answer_to, []
    to = without(to, [own])
    return ReplyHeaders(
        subject=reply_subject(original.header("Subject")),
        in_reply_to=message_id or None,
        references=references,
        to=to,
        cc=without(cc, [own], to),
    )


def compose(outgoing: Outgoing, message_id: str, date: datetime) -> bytes:
    """The message's RFC 5322 bytes (``Bcc`` kept: Gmail takes the blind copies from it and
    removes it before delivery)."""
    message = EmailMessage()
    message["From"] = outgoing.sender
    if outgoing.to:
        message["To"] = ", ".join(outgoing.to)
    if outgoing.cc:
        message["Cc"] = ", ".join(outgoing.cc)
    if outgoing.bcc:
        message["Bcc"] = ", ".join(outgoing.bcc)
    message["Subject"] = outgoing.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    if outgoing.in_reply_to:
        message["In-Reply-To"] = outgoing.in_reply_to
    if outgoing.references:
        message["References"] = " ".join(outgoing.references)
    if outgoing.text is not None or outgoing.html is None:
        message.set_content(outgoing.text or "")
        if outgoing.html is not None:
            message.add_alternative(outgoing.html, subtype="html")
    else:
        message.set_content(outgoing.html, subtype="html")
    for attachment in outgoing.attachments:
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return message.as_bytes(policy=UNFOLDED)
