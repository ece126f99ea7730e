"""A message's RFC 5322 bytes read with the standard library's ``email`` package: headers (RFC 2047
words in any charset), text and HTML bodies in any charset, attachments' metadata.

Whatever a message gets wrong (a header that does not decode, a charset Python does not know, a
multipart without a boundary, broken base64) is read as far as it can be and named in
``problems``; reading never raises. HTML is sanitised with nh3 (Rust's ammonia) before it is
stored: scripts and styles are dropped with their content, event handler attributes and
``javascript:`` (and every other non-web) URLs are removed, so nothing kept can run.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Final

import nh3

MAX_BODY: Final = 200_000
# Links may point to web pages and mail addresses only.
URL_SCHEMES: Final = frozenset({"http", "https", "mailto"})


@dataclass
class Attachment:
    part_id: str
    filename: str
    mime_type: str
    size: int


@dataclass
class ParsedMail:
    message_id: str
    subject: str
    sender: str | None
    to: list[str]
    cc: list[str]
    bcc: list[str]
    date: datetime | None
    text: str | None
    html: str | None
    attachments: list[Attachment]
    headers: dict[str, str]  # the few headers matching reads, lower-case names
    problems: list[str] = field(default_factory=list)

    @property
    def participants(self) -> list[str]:
        every = [*([self.sender] if self.sender else []), *self.to, *self.cc, *self.bcc]
        return sorted(set(every))


def decoded_header(value: object, problems: list[str], name: str) -> str:
    """A header's text, its RFC 2047 encoded words decoded (what cannot be, left as written)."""
    raw = str(value)
    try:
        words = decode_header(raw)
    except (ValueError, email.errors.HeaderParseError):
        problems.append(f"the {name} header does not decode")
        return raw
    try:
        return str(make_header(words))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        problems.append(f"the {name} header does not decode")
    read = []
    for word, charset in words:  # each word on its own, what does not decode replaced
        if isinstance(word, str):
            read.append(word)
            continue
        try:
            read.append(word.decode(charset or "us-ascii", "replace"))
        except LookupError:
            read.append(word.decode("utf-8", "replace"))
    return "".join(read)


def _addresses(message: Message, name: str, problems: list[str]) -> list[str]:
    values = message.get_all(name) or []
    try:
        pairs = getaddresses([str(value) for value in values])
    except (ValueError, TypeError):
        problems.append(f"the {name} header is not a list of addresses")
        return []
    return sorted({address.strip().lower() for _n, address in pairs if "@" in address})


def _text_of(part: Message, problems: list[str]) -> str:
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError):
        data = None
    if not isinstance(data, bytes):
        raw = part.get_payload()
        data = raw.encode("utf-8", "replace") if isinstance(raw, str) else b""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return data.decode(charset, "replace")[:MAX_BODY]
    except LookupError:
        problems.append(f"unknown charset {charset!r}; read as UTF-8")
        return data.decode("utf-8", "replace")[:MAX_BODY]


def _filename(part: Message, problems: list[str]) -> str:
    try:
        name = part.get_filename()
    except (ValueError, TypeError, LookupError):
        problems.append("an attachment's name does not decode")
        return "attachment"
    return decoded_header(name, problems, "filename") if name else ""


def _leaves(part: Message, part_id: str = "") -> list[tuple[str, Message]]:
    if not part.is_multipart():
        return [(part_id, part)]
    children = part.get_payload()
    if not isinstance(children, list):
        return [(part_id, part)]
    prefix = "" if part_id == "" else part_id + "."
    found: list[tuple[str, Message]] = []
    for index, child in enumerate(children):
        found += _leaves(child, f"{prefix}{index}")
    return found


def sanitised(html: str) -> str:
    """HTML with nothing left that runs: see the module docstring."""
    return nh3.clean(html, url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer nofollow")


def message_identity(message_id: str, raw_headers: str) -> str:
    """The ``Message-ID`` without its brackets; a digest of the headers when there is none."""
    cleaned = message_id.strip().strip("<>").strip()
    if cleaned:
        return cleaned
    return "sha256:" + hashlib.sha256(raw_headers.encode("utf-8", "replace")).hexdigest()


def parse(raw: bytes) -> ParsedMail:
    """Read ``raw`` as far as it goes (see the module docstring)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    problems = [type(defect).__name__ for defect in message.defects]
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace")
    try:
        date = parsedate_to_datetime(str(message.get("date", "")))
        date = date.astimezone(UTC) if date.tzinfo else date.replace(tzinfo=UTC)
    except (TypeError, ValueError, IndexError):
        date = None
        if message.get("date") is not None:
            problems.append("the Date header is not a date")
    senders = _addresses(message, "from", problems)
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    for part_id, leaf in _leaves(message):
        problems += [type(defect).__name__ for defect in leaf.defects if leaf is not message]
        filename = _filename(leaf, problems)
        kind = leaf.get_content_type()
        disposition = str(leaf.get("content-disposition", "")).split(";")[0].strip().lower()
        if filename or disposition == "attachment" or not kind.startswith("text/"):
            if kind.startswith("multipart/"):  # one that could not be split: read as text
                text = text if text is not None else _text_of(leaf, problems)
                continue
            size = len(leaf.get_payload(decode=True) or b"")
            attachments.append(Attachment(part_id, filename or "attachment", kind, size))
        elif kind == "text/html" and html is None:
            html = sanitised(_text_of(leaf, problems))
        elif text is None:
            text = _text_of(leaf, problems)
    keep = ("list-unsubscribe", "list-id", "precedence", "auto-submitted")
    return ParsedMail(
        message_id=message_identity(str(message.get("message-id", "")), head),
        subject=decoded_header(message.get("subject", ""), problems, "Subject"),
        sender=senders[0] if senders else None,
        to=_addresses(message, "to", problems),
        cc=_addresses(message, "cc", problems),
        bcc=_addresses(message, "bcc", problems),
        date=date,
        text=text,
        html=html,
        attachments=attachments,
        headers={name: str(message[name]).strip() for name in keep if message[name] is not None},
        problems=problems,
    )
