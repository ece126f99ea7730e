"""Gmail API v1: mailboxes, messages, threads, labels, history and push watches.

Served at Google's paths (``/gmail/v1/users/{userId}/…``; ``me`` or the caller's own address).
Every mailbox keeps its messages as the raw RFC 5322 bytes Gmail received, and a history of
changes (messages added and deleted, labels added and removed) numbered by the mailbox's
``historyId``; history older than what the mailbox retains (``/_emulator/gmail/{email}/history/
expire`` forgets it all, as Gmail does after about a week) answers ``404`` to ``history.list``.

Mail reaches mailboxes through the admin API: seeded into one mailbox (raw bytes, or a fixture
from ``gmail_fixtures/``), or delivered from one address to others, each recipient's copy (and the
sender's ``SENT`` copy) carrying the same ``Message-ID``; or through ``users.messages.send`` (a
JSON body with ``raw``, or the media upload path, ``uploadType=media`` or ``multipart``): the
sender's copy is labelled ``SENT`` (in the thread ``threadId`` names when the message's headers
and subject belong to it, else threaded by ``In-Reply-To``/``References``), each recipient's
copy goes to their ``INBOX`` (``Bcc`` removed), and mail to addresses outside the emulated domains
is kept in a record the admin API reads (``/_emulator/gmail/outbound``). As at Gmail, a message
over 25 MB, one without recipients, or one whose ``From`` is not the sender's own address is
refused. A watch (``users.watch``) publishes
every change of the mailbox to its Pub/Sub topic (``google_emulator.pubsub``).

The ``gmail.metadata`` scope is as narrow as at Google: no ``q``, no ``full`` or ``raw`` format,
no attachments.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import format_datetime, getaddresses, make_msgid, parsedate_to_datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from google_emulator import pubsub
from google_emulator.core import Emulator, GoogleError, begin, emulator_of
from google_emulator.drive import multipart_related
from google_emulator.fidelity import find_method
from google_emulator.paging import paged

FIXTURES = Path(__file__).parent / "gmail_fixtures"
METADATA_SCOPE = "https://www.googleapis.com/auth/gmail.metadata"
# Scopes of Gmail add-ons, limited to the message an add-on is open on: not modelled, refused.
ADDON_MARKER = "gmail.addons."
SYSTEM_LABELS = (
    "INBOX",
    "SENT",
    "DRAFT",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
WATCH_LIFETIME = timedelta(days=7)
FORMATS = ("full", "metadata", "minimal", "raw")
# Gmail refuses to send a message larger than 25 MB (its encoded size, attachments included).
MAX_SENT_BYTES = 25 * 1024 * 1024

router = APIRouter(prefix="/gmail/v1/users/{userId}")
admin_router = APIRouter(prefix="/_emulator/gmail")


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    internal_date: datetime
    label_ids: list[str]
    history_id: int

    @property
    def parsed(self) -> Message:
        return email.message_from_bytes(self.raw, policy=email.policy.compat32)


@dataclass
class HistoryRecord:
    id: int
    kind: str  # one of HISTORY_TYPES
    message_id: str
    thread_id: str
    label_ids: list[str] = field(default_factory=list)


@dataclass
class Watch:
    topic: str
    label_ids: list[str]
    label_filter_behavior: str
    expiration: datetime


@dataclass
class Mailbox:
    email: str
    history_id: int = 1000
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    history: list[HistoryRecord] = field(default_factory=list)
    oldest_history: int = 1000  # history before this id is no longer retained
    labels: dict[str, str] = field(default_factory=dict)  # user label id → name
    watch: Watch | None = None

    def next_history(self) -> int:
        self.history_id += 1
        return self.history_id


@dataclass
class OutboundMail:
    """A sent message's copy to an address outside the emulated domains."""

    sender: str
    recipient: str
    message_id: str
    raw: bytes
    sent_at: datetime


@dataclass
class GmailState:
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    outbound: list[OutboundMail] = field(default_factory=list)

    def is_local(self, address: str) -> bool:
        """An emulated mailbox: one that exists, or an address of a domain one exists in."""
        domain = address.rpartition("@")[2].lower()
        return address.lower() in self.mailboxes or any(
            known.rpartition("@")[2] == domain for known in self.mailboxes
        )

    def mailbox(self, address: str) -> Mailbox:
        key = address.lower()
        found = self.mailboxes.get(key)
        if found is None:
            found = self.mailboxes[key] = Mailbox(email=key)
        return found


def gmail_state(emulator: Emulator) -> GmailState:
    state = emulator.apis.setdefault("gmail", GmailState())
    assert isinstance(state, GmailState)
    return state


def scopes_of(api_method: str) -> tuple[str, ...]:
    found = find_method(api_method)
    assert found is not None, api_method
    return tuple(scope for scope in found[1]["scopes"] if ADDON_MARKER not in scope)


def _metadata_only(emulator: Emulator, request: Request) -> bool:
    """The caller's token grants no more than ``gmail.metadata`` of Gmail's reading scopes."""
    _scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = emulator.access_tokens.get(value.strip())
    if token is None:
        return False
    broader = set(scopes_of("gmail.users.messages.get")) - {METADATA_SCOPE}
    return not (token.scopes & broader)


async def _begin(request: Request, api_method: str, user_id: str) -> tuple[Emulator, Mailbox]:
    emulator, caller = await begin(request, api_method)
    emulator.authorize(request, scopes_of(api_method))
    if user_id not in ("me", caller):
        raise GoogleError(403, "forbidden", "Delegation denied for " + caller)
    return emulator, gmail_state(emulator).mailbox(caller)


def _not_found() -> GoogleError:
    return GoogleError(404, "notFound", "Requested entity was not found.")


# -- rendering ---------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def attachment_id(message_id: str, part_id: str) -> str:
    return "ANGjdJ" + _b64(f"{message_id}:{part_id}".encode()).rstrip("=")


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: what is there, undecoded
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:
        return ""
    if not name:
        return ""
    return str(email.header.make_header(email.header.decode_header(name)))


def _headers(part: Message, only: set[str] | None = None) -> list[dict[str, str]]:
    found = []
    for name, value in part.items():
        if only is not None and name.lower() not in only:
            continue
        found.append({"name": name, "value": str(value)})
    return found


def _part(message_id: str, part: Message, part_id: str) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": _filename(part),
        "headers": _headers(part),
    }
    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        rendered["body"] = {"size": 0}
        prefix = "" if part_id == "" else part_id + "."
        rendered["parts"] = [
            _part(message_id, child, f"{prefix}{index}") for index, child in enumerate(children)
        ]
        return rendered
    data = _payload_bytes(part)
    if rendered["filename"]:
        rendered["body"] = {"attachmentId": attachment_id(message_id, part_id), "size": len(data)}
    else:
        rendered["body"] = {"size": len(data), **({"data": _b64(data)} if data else {})}
    return rendered


def _leaves(part: Message, part_id: str = "") -> list[tuple[str, Message]]:
    if not part.is_multipart():
        return [(part_id, part)]
    children = part.get_payload()
    assert isinstance(children, list)
    prefix = "" if part_id == "" else part_id + "."
    found: list[tuple[str, Message]] = []
    for index, child in enumerate(children):
        found += _leaves(child, f"{prefix}{index}")
    return found


def _text(part: Message) -> str:
    charset = part.get_content_charset() or "utf-8"
    data = _payload_bytes(part)
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def snippet(message: Message) -> str:
    for kind in ("text/plain", "text/html"):
        for _part_id, leaf in _leaves(message):
            if leaf.get_content_type() == kind and not _filename(leaf):
                text = _text(leaf)
                if kind == "text/html":
                    text = re.sub(r"<[^>]*>", " ", text)
                return " ".join(text.split())[:200]
    return ""


def render(stored: StoredMessage, fmt: str, metadata_headers: list[str]) -> dict[str, Any]:
    parsed = stored.parsed
    body: dict[str, Any] = {
        "id": stored.id,
        "threadId": stored.thread_id,
        "labelIds": list(stored.label_ids),
        "snippet": snippet(parsed),
        "sizeEstimate": len(stored.raw),
        "historyId": str(stored.history_id),
        "internalDate": str(int(stored.internal_date.timestamp() * 1000)),
    }
    if fmt == "raw":
        body["raw"] = _b64(stored.raw)
    elif fmt == "metadata":
        only = {name.lower() for name in metadata_headers} or None
        body["payload"] = {
            "partId": "",
            "mimeType": parsed.get_content_type(),
            "filename": "",
            "headers": _headers(parsed, only),
            "body": {"size": 0},
        }
    elif fmt == "full":
        body["payload"] = _part(stored.id, parsed, "")
    return body


# -- search --------------------------------------------------------------------------------------

_TERM = re.compile(r'(-?)(?:([a-z0-9_]+):)?("[^"]*"|\S+)')


class QueryProblem(GoogleError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "invalidArgument", message)


def _date_bound(value: str) -> datetime:
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    for pattern in ("%Y/%m/%d", "%Y-%m-%d", "%m/%d/%Y"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise QueryProblem(f"Invalid date in query: {value}")


def _newer_than(value: str, now: datetime) -> datetime:
    match = re.fullmatch(r"(\d+)([dmy])", value)
    if match is None:
        raise QueryProblem(f"Invalid newer_than in query: {value}")
    amount, unit = int(match.group(1)), match.group(2)
    return now - timedelta(days=amount * {"d": 1, "m": 31, "y": 365}[unit])


def _addresses(parsed: Message, *names: str) -> str:
    values = [str(parsed.get(name, "")) for name in names]
    return " ".join(f"{n} {a}" for n, a in getaddresses(values)).lower()


def _label_id(mailbox: Mailbox, name: str) -> str:
    upper = name.upper()
    if upper in SYSTEM_LABELS:
        return upper
    for label_id, label_name in mailbox.labels.items():
        if name.lower() in (label_name.lower(), label_id.lower()):
            return label_id
    return "\0unknown"


def _matches(
    mailbox: Mailbox, stored: StoredMessage, operator: str, value: str, now: datetime
) -> bool:
    parsed = stored.parsed
    if operator == "from":
        return value in _addresses(parsed, "from")
    if operator == "to":
        return value in _addresses(parsed, "to", "cc", "bcc")
    if operator == "subject":
        return value in _decoded(parsed.get("subject", "")).lower()
    if operator == "after":
        return stored.internal_date >= _date_bound(value)
    if operator == "before":
        return stored.internal_date < _date_bound(value)
    if operator == "newer_than":
        return stored.internal_date >= _newer_than(value, now)
    if operator == "rfc822msgid":
        return value.strip("<>") == str(parsed.get("message-id", "")).strip().strip("<>").lower()
    if operator == "has":
        if value != "attachment":
            raise QueryProblem(f"Unsupported has: value in query: {value}")
        return any(_filename(leaf) for _id, leaf in _leaves(parsed))
    if operator in ("in", "label"):
        if value == "anywhere":
            return True
        return _label_id(mailbox, value) in stored.label_ids
    if operator == "":
        haystack = " ".join(
            [_decoded(parsed.get("subject", "")), _addresses(parsed, "from", "to"), snippet(parsed)]
        ).lower()
        return value in haystack
    raise QueryProblem(f"Unsupported search operator: {operator}:")


def _decoded(value: Any) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except Exception:
        return str(value)


def search(
    mailbox: Mailbox, query: str, label_ids: list[str], include_spam_trash: bool, now: datetime
) -> list[StoredMessage]:
    """The messages of ``mailbox`` matching Gmail's query ``query``, newest first."""
    terms = [
        (negated == "-", (operator or "").lower(), quoted.strip('"').lower())
        for negated, operator, quoted in _TERM.findall(query or "")
    ]
    asks_spam_trash = any(
        op in ("in", "label") and v in ("spam", "trash", "anywhere") for _n, op, v in terms
    )
    found = []
    for stored in mailbox.messages.values():
        hidden = {"SPAM", "TRASH"} & set(stored.label_ids)
        if hidden and not include_spam_trash and not asks_spam_trash:
            continue
        if any(label not in stored.label_ids for label in label_ids):
            continue
        if all(
            _matches(mailbox, stored, op, value, now) != negated for negated, op, value in terms
        ):
            found.append(stored)
    return sorted(found, key=lambda m: (m.internal_date, m.id), reverse=True)


# -- changes -------------------------------------------------------------------------------------


def _record(
    emulator: Emulator,
    mailbox: Mailbox,
    kind: str,
    stored: StoredMessage,
    labels: list[str] | None = None,
) -> None:
    history_id = mailbox.next_history()
    stored.history_id = history_id
    mailbox.history.append(
        HistoryRecord(history_id, kind, stored.id, stored.thread_id, list(labels or []))
    )
    _notify(emulator, mailbox, stored.label_ids if labels is None else labels)


def _notify(emulator: Emulator, mailbox: Mailbox, labels: list[str]) -> None:
    watch = mailbox.watch
    if watch is None or watch.expiration <= emulator.clock.now():
        return
    if watch.label_ids:
        touched = bool(set(watch.label_ids) & set(labels))
        if touched == (watch.label_filter_behavior == "exclude"):
            return
    pubsub.publish(
        emulator,
        watch.topic,
        {"emailAddress": mailbox.email, "historyId": mailbox.history_id},
    )


def _referenced(parsed: Message) -> set[str]:
    return set(
        re.findall(r"<[^>]+>", f"{parsed.get('references', '')} {parsed.get('in-reply-to', '')}")
    )


def _thread_for(mailbox: Mailbox, parsed: Message) -> str:
    referenced = _referenced(parsed)
    for stored in mailbox.messages.values():
        if str(stored.parsed.get("message-id", "")).strip() in referenced:
            return stored.thread_id
    return secrets.token_hex(8)


_REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg)\s*:\s*)+", re.IGNORECASE)


def _bare_subject(value: Any) -> str:
    return _REPLY_PREFIX.sub("", _decoded(value or "")).strip().lower()


def _in_thread(mailbox: Mailbox, thread_id: str, parsed: Message) -> bool:
    """Gmail's rule for a sent message's ``threadId``: its ``References`` or ``In-Reply-To``
    name a message of the thread, and its subject is the thread's (``Re:`` aside)."""
    members = [m for m in mailbox.messages.values() if m.thread_id == thread_id]
    referenced = _referenced(parsed)
    subject = _bare_subject(parsed.get("subject"))
    return any(
        str(m.parsed.get("message-id", "")).strip() in referenced
        and _bare_subject(m.parsed.get("subject")) == subject
        for m in members
    )


def add_message(
    emulator: Emulator,
    mailbox: Mailbox,
    raw: bytes,
    label_ids: list[str],
    internal_date: datetime | None = None,
    thread_id: str | None = None,
) -> StoredMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    if internal_date is None:
        try:
            internal_date = parsedate_to_datetime(str(parsed.get("date", "")))
        except (TypeError, ValueError):
            internal_date = None
        if internal_date is None or internal_date.tzinfo is None:
            internal_date = emulator.clock.now()
    stored = StoredMessage(
        id=secrets.token_hex(8),
        thread_id=thread_id or _thread_for(mailbox, parsed),
        raw=raw,
        internal_date=internal_date.astimezone(UTC),
        label_ids=list(dict.fromkeys(label_ids)),
        history_id=0,
    )
    mailbox.messages[stored.id] = stored
    _record(emulator, mailbox, "messageAdded", stored)
    return stored


def change_labels(
    emulator: Emulator, mailbox: Mailbox, stored: StoredMessage, add: list[str], remove: list[str]
) -> None:
    added = [label for label in add if label not in stored.label_ids]
    removed = [label for label in remove if label in stored.label_ids]
    stored.label_ids = [label for label in stored.label_ids if label not in removed] + added
    if added:
        _record(emulator, mailbox, "labelAdded", stored, added)
    if removed:
        _record(emulator, mailbox, "labelRemoved", stored, removed)


def delete_message(emulator: Emulator, mailbox: Mailbox, stored: StoredMessage) -> None:
    del mailbox.messages[stored.id]
    _record(emulator, mailbox, "messageDeleted", stored)


# -- the API -------------------------------------------------------------------------------------


def _find(mailbox: Mailbox, message_id: str) -> StoredMessage:
    found = mailbox.messages.get(message_id)
    if found is None:
        raise _not_found()
    return found


def _page_size(request: Request, default: int, most: int) -> int:
    raw = request.query_params.get("maxResults")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise GoogleError(400, "invalidArgument", "Invalid maxResults") from None
    if value < 1:
        raise GoogleError(400, "invalidArgument", "Invalid maxResults")
    return min(value, most)


def _format(request: Request, emulator: Emulator, default: str = "full") -> str:
    fmt = request.query_params.get("format", default)
    if fmt not in FORMATS:
        raise GoogleError(400, "invalidArgument", f"Invalid value for format: {fmt}")
    if fmt in ("full", "raw") and _metadata_only(emulator, request):
        raise GoogleError(403, "forbidden", f"Metadata scope doesn't allow format {fmt.upper()}")
    return fmt


def _query(request: Request, emulator: Emulator) -> str:
    query = request.query_params.get("q", "")
    if query and _metadata_only(emulator, request):
        raise GoogleError(403, "forbidden", "Metadata scope does not support 'q' parameter")
    return query


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


@router.get("/profile")
async def get_profile(request: Request, userId: str) -> dict[str, Any]:
    _emulator, mailbox = await _begin(request, "gmail.users.getProfile", userId)
    threads = {m.thread_id for m in mailbox.messages.values()}
    return {
        "emailAddress": mailbox.email,
        "messagesTotal": len(mailbox.messages),
        "threadsTotal": len(threads),
        "historyId": str(mailbox.history_id),
    }


def _listing(
    request: Request,
    emulator: Emulator,
    mailbox: Mailbox,
    kind: str,
    rows: Callable[[list[StoredMessage]], list[dict[str, str]]],
) -> dict[str, Any]:
    """``messages.list`` and ``threads.list``: the search's ``rows``, paged by a snapshot."""
    query = _query(request, emulator)
    labels = request.query_params.getlist("labelIds")
    spam_trash = _flag(request, "includeSpamTrash")
    size = _page_size(request, 100, 500)
    now = emulator.clock.now()

    def snapshot() -> tuple[list[dict[str, str]], dict[str, Any]]:
        return rows(search(mailbox, query, labels, spam_trash, now)), {}

    page = paged(emulator, request, f"gmail:{mailbox.email}:{kind}", size, snapshot)
    body: dict[str, Any] = {"resultSizeEstimate": len(page.items)}
    if page.items:
        body[kind] = list(page.items)
    if page.next_page_token:
        body["nextPageToken"] = page.next_page_token
    return body


@router.get("/messages")
async def list_messages(request: Request, userId: str) -> dict[str, Any]:
    emulator, mailbox = await _begin(request, "gmail.users.messages.list", userId)
    return _listing(
        request,
        emulator,
        mailbox,
        "messages",
        lambda found: [{"id": m.id, "threadId": m.thread_id} for m in found],
    )


@router.get("/messages/{id}")
async def get_message(request: Request, userId: str, id: str) -> dict[str, Any]:
    emulator, mailbox = await _begin(request, "gmail.users.messages.get", userId)
    fmt = _format(request, emulator)
    return render(_find(mailbox, id), fmt, request.query_params.getlist("metadataHeaders"))


@router.get("/messages/{messageId}/attachments/{id}")
async def get_attachment(request: Request, userId: str, messageId: str, id: str) -> dict[str, Any]:
    _emulator, mailbox = await _begin(request, "gmail.users.messages.attachments.get", userId)
    stored = _find(mailbox, messageId)
    for part_id, leaf in _leaves(stored.parsed):
        if _filename(leaf) and attachment_id(stored.id, part_id) == id:
            data = _payload_bytes(leaf)
            return {"attachmentId": id, "size": len(data), "data": _b64(data)}
    raise GoogleError(400, "invalidArgument", "Invalid attachment token")


# -- sending -------------------------------------------------------------------------------------


def _recipients(parsed: Message) -> list[str]:
    values = [str(value) for name in ("to", "cc", "bcc") for value in parsed.get_all(name, [])]
    found = [address.lower() for _name, address in getaddresses(values) if "@" in address]
    return list(dict.fromkeys(found))


def _without_bcc(raw: bytes) -> bytes:
    """The message as its recipients get it: its ``Bcc`` header gone, the rest byte for byte."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = raw.partition(b"\n\n")
    newline = b"\r\n" if separator == b"\r\n\r\n" else b"\n"
    kept: list[bytes] = []
    skipping = False
    for line in head.split(newline):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            kept.append(line)
    return newline.join(kept) + separator + body


def _completed(raw: bytes, parsed: Message, mailbox: Mailbox, now: datetime) -> bytes:
    """Gmail adds what a sent message lacks: ``From``, ``Date`` and ``Message-ID``."""
    added = []
    if parsed.get("from") is None:
        added.append(f"From: {mailbox.email}")
    if parsed.get("date") is None:
        added.append(f"Date: {format_datetime(now)}")
    if parsed.get("message-id") is None:
        added.append(f"Message-ID: {make_msgid(domain='mail.gmail.com')}")
    if not added:
        return raw
    return "\r\n".join(added).encode() + b"\r\n" + raw


def send_message(
    emulator: Emulator, mailbox: Mailbox, raw: bytes, thread_id: str | None
) -> StoredMessage:
    """``users.messages.send``: the sender's ``SENT`` copy, each emulated recipient's ``INBOX``
    copy, and a record of each copy to an outside address."""
    if len(raw) > MAX_SENT_BYTES:
        raise GoogleError(400, "invalidArgument", "Message too large: the limit is 25 MB")
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    senders = [a.lower() for _n, a in getaddresses([str(v) for v in parsed.get_all("from", [])])]
    if senders and senders != [mailbox.email]:
        # Gmail sends only from the user's own address (send-as aliases are not modelled).
        raise GoogleError(400, "invalidArgument", "Invalid From header: not the sender's address")
    recipients = _recipients(parsed)
    if not recipients:
        raise GoogleError(400, "invalidArgument", "Recipient address required")
    now = emulator.clock.now()
    raw = _completed(raw, parsed, mailbox, now)
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    if thread_id:
        if not any(m.thread_id == thread_id for m in mailbox.messages.values()):
            raise _not_found()
        if not _in_thread(mailbox, thread_id, parsed):
            thread_id = secrets.token_hex(8)  # Gmail starts a new thread: they do not belong
    labels = ["SENT", *(["INBOX", "UNREAD"] if mailbox.email in recipients else [])]
    sent = add_message(emulator, mailbox, raw, labels, now, thread_id)
    state = gmail_state(emulator)
    delivered = _without_bcc(raw)
    message_id = str(parsed.get("message-id", "")).strip()
    for recipient in recipients:
        if recipient == mailbox.email:
            continue
        if state.is_local(recipient):
            add_message(emulator, state.mailbox(recipient), delivered, ["INBOX", "UNREAD"], now)
        else:
            state.outbound.append(
                OutboundMail(mailbox.email, recipient, message_id, delivered, now)
            )
    return sent


def _sent(stored: StoredMessage) -> dict[str, Any]:
    return {"id": stored.id, "threadId": stored.thread_id, "labelIds": list(stored.label_ids)}


@router.post("/messages/send")
async def send(request: Request, userId: str) -> dict[str, Any]:
    """gmail.users.messages.send with the message in ``raw`` (base64url)"""
    emulator, mailbox = await _begin(request, "gmail.users.messages.send", userId)
    body = await _json(request)
    encoded = body.get("raw")
    if not isinstance(encoded, str) or not encoded:
        raise GoogleError(400, "invalidArgument", "'raw' RFC822 payload message string required")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        raise GoogleError(400, "invalidArgument", "Invalid value for ByteString") from None
    thread_id = body.get("threadId")
    return _sent(send_message(emulator, mailbox, raw, thread_id if thread_id else None))


upload_router = APIRouter(prefix="/upload/gmail/v1/users/{userId}")


@upload_router.post("/messages/send")
async def send_upload(request: Request, userId: str) -> dict[str, Any]:
    """gmail.users.messages.send with the message as media: ``uploadType=media`` (the body is
    the message) or ``multipart`` (metadata, then the message)"""
    emulator, mailbox = await _begin(request, "gmail.users.messages.send", userId)
    upload_type = request.query_params.get("uploadType", "media")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise GoogleError(413, "uploadTooLarge", "Media larger than the method's maximum size")
    content = await request.body()
    if len(content) > MAX_UPLOAD_BYTES:
        raise GoogleError(413, "uploadTooLarge", "Media larger than the method's maximum size")
    content_type = request.headers.get("content-type", "")
    if upload_type == "multipart":
        metadata, media_type, raw = multipart_related(content_type, content)
    elif upload_type == "media":
        metadata, media_type, raw = {}, content_type, content
    else:
        raise GoogleError(400, "invalidArgument", f"Invalid upload type: {upload_type}")
    if not media_type.startswith("message/"):
        raise GoogleError(400, "badContent", f"Media type '{media_type}' is not supported.")
    thread_id = metadata.get("threadId")
    return _sent(send_message(emulator, mailbox, raw, thread_id if thread_id else None))


def _max_upload() -> int:
    found = find_method("gmail.users.messages.send")
    assert found is not None
    return int(found[1]["mediaUpload"]["maxSize"])


MAX_UPLOAD_BYTES = _max_upload()


def _threads(mailbox: Mailbox, messages: list[StoredMessage]) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for stored in messages:
        if stored.thread_id in seen:
            continue
        newest = max(
            (m for m in mailbox.messages.values() if m.thread_id == stored.thread_id),
            key=lambda m: m.history_id,
        )
        seen[stored.thread_id] = {
            "id": stored.thread_id,
            "snippet": snippet(stored.parsed),
            "historyId": str(newest.history_id),
        }
    return list(seen.values())


@router.get("/threads")
async def list_threads(request: Request, userId: str) -> dict[str, Any]:
    emulator, mailbox = await _begin(request, "gmail.users.threads.list", userId)
    return _listing(request, emulator, mailbox, "threads", lambda found: _threads(mailbox, found))


@router.get("/threads/{id}")
async def get_thread(request: Request, userId: str, id: str) -> dict[str, Any]:
    emulator, mailbox = await _begin(request, "gmail.users.threads.get", userId)
    fmt = _format(request, emulator)
    if fmt == "raw":
        raise GoogleError(400, "invalidArgument", "Invalid value for format: raw")
    messages = sorted(
        (m for m in mailbox.messages.values() if m.thread_id == id),
        key=lambda m: (m.internal_date, m.id),
    )
    if not messages:
        raise _not_found()
    headers = request.query_params.getlist("metadataHeaders")
    return {
        "id": id,
        "historyId": str(max(m.history_id for m in messages)),
        "messages": [render(m, fmt, headers) for m in messages],
    }


@router.get("/labels")
async def list_labels(request: Request, userId: str) -> dict[str, Any]:
    _emulator, mailbox = await _begin(request, "gmail.users.labels.list", userId)
    labels = [{"id": name, "name": name, "type": "system"} for name in SYSTEM_LABELS]
    labels += [
        {
            "id": label_id,
            "name": name,
            "type": "user",
            "messageListVisibility": "show",
            "labelListVisibility": "labelShow",
        }
        for label_id, name in mailbox.labels.items()
    ]
    return {"labels": labels}


def _history_entry(mailbox: Mailbox, record: HistoryRecord) -> dict[str, Any]:
    stored = mailbox.messages.get(record.message_id)
    message: dict[str, Any] = {"id": record.message_id, "threadId": record.thread_id}
    if stored is not None:
        message["labelIds"] = list(stored.label_ids)
    entry: dict[str, Any] = {"id": str(record.id), "messages": [message]}
    if record.kind == "messageAdded":
        entry["messagesAdded"] = [{"message": message}]
    elif record.kind == "messageDeleted":
        entry["messagesDeleted"] = [{"message": message}]
    elif record.kind == "labelAdded":
        entry["labelsAdded"] = [{"message": message, "labelIds": record.label_ids}]
    else:
        entry["labelsRemoved"] = [{"message": message, "labelIds": record.label_ids}]
    return entry


@router.get("/history")
async def list_history(request: Request, userId: str) -> dict[str, Any]:
    emulator, mailbox = await _begin(request, "gmail.users.history.list", userId)
    start = request.query_params.get("startHistoryId")
    if start is None:
        raise GoogleError(400, "invalidArgument", "Missing startHistoryId")
    try:
        start_id = int(start)
    except ValueError:
        raise GoogleError(400, "invalidArgument", "Invalid startHistoryId") from None
    if start_id < mailbox.oldest_history:
        raise GoogleError(404, "notFound", "Requested entity was not found.")
    types = request.query_params.getlist("historyTypes") or list(HISTORY_TYPES)
    if any(kind not in HISTORY_TYPES for kind in types):
        raise GoogleError(400, "invalidArgument", "Invalid historyTypes")
    label = request.query_params.get("labelId")
    size = _page_size(request, 100, 500)

    def snapshot() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        records = [
            record
            for record in mailbox.history
            if record.id > start_id
            and record.kind in types
            and (
                label is None
                or label in record.label_ids
                or label in getattr(mailbox.messages.get(record.message_id), "label_ids", [])
            )
        ]
        return [_history_entry(mailbox, r) for r in records], {"historyId": mailbox.history_id}

    page = paged(emulator, request, f"gmail:{mailbox.email}:history", size, snapshot)
    body: dict[str, Any] = {"historyId": str(page.extra["historyId"])}
    if page.items:
        body["history"] = list(page.items)
    if page.next_page_token:
        body["nextPageToken"] = page.next_page_token
    return body


@router.post("/watch")
async def watch(request: Request, userId: str) -> dict[str, Any]:
    emulator, mailbox = await _begin(request, "gmail.users.watch", userId)
    body = await _json(request)
    topic = body.get("topicName")
    if not isinstance(topic, str) or not pubsub.topic_exists(emulator, topic):
        raise GoogleError(
            400, "invalidArgument", "Invalid topicName does not match projects/*/topics/*"
        )
    if not pubsub.may_publish(emulator, topic):
        raise GoogleError(
            403,
            "forbidden",
            "Error sending test message to Cloud PubSub: "
            "User not authorized to perform this action.",
        )
    behaviour = str(body.get("labelFilterBehavior") or body.get("labelFilterAction") or "include")
    mailbox.watch = Watch(
        topic=topic,
        label_ids=[str(label) for label in body.get("labelIds") or []],
        label_filter_behavior=behaviour.lower(),
        expiration=emulator.clock.now() + WATCH_LIFETIME,
    )
    return {
        "historyId": str(mailbox.history_id),
        "expiration": str(int(mailbox.watch.expiration.timestamp() * 1000)),
    }


@router.post("/stop", status_code=204)
async def stop(request: Request, userId: str) -> Response:
    _emulator, mailbox = await _begin(request, "gmail.users.stop", userId)
    mailbox.watch = None
    return Response(status_code=204)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise GoogleError(400, "parseError", "Parse Error") from None
    if not isinstance(body, dict):
        raise GoogleError(400, "invalidArgument", "The request body must be a JSON object.")
    return body


# -- the admin API -------------------------------------------------------------------------------


class SeedSpec(BaseModel):
    raw: str | None = Field(None, description="The message, base64url (RFC 5322 bytes)")
    fixture: str | None = Field(
        None, description="A file of gmail_fixtures/ (e.g. `html-only.eml`)"
    )
    label_ids: list[str] = Field(default_factory=lambda: ["INBOX", "UNREAD"])
    internal_date: datetime | None = None


class DeliverySpec(BaseModel):
    sender: str
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    subject: str = ""
    text: str | None = None
    html: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    attachments: dict[str, str] = Field(default_factory=dict, description="Name → text content")
    message_id: str | None = None
    date: datetime | None = None


class LabelChange(BaseModel):
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)


class LabelSpec(BaseModel):
    name: str


def _raw_of(spec: SeedSpec) -> bytes:
    if spec.fixture is not None:
        path = FIXTURES / spec.fixture
        if path.parent != FIXTURES or not path.is_file():
            raise GoogleError(404, "notFound", f"No such fixture: {spec.fixture}")
        return path.read_bytes()
    if spec.raw is None:
        raise GoogleError(400, "invalidArgument", "Give `raw` or `fixture`")
    try:
        return base64.urlsafe_b64decode(spec.raw + "=" * (-len(spec.raw) % 4))
    except ValueError:
        raise GoogleError(400, "invalidArgument", "`raw` is not base64url") from None


def compose(spec: DeliverySpec, now: datetime) -> bytes:
    """An RFC 5322 message as a mail client would send it."""
    message = email.message.EmailMessage()
    message["From"] = spec.sender
    message["To"] = ", ".join(spec.to)
    if spec.cc:
        message["Cc"] = ", ".join(spec.cc)
    message["Subject"] = spec.subject
    message["Date"] = format_datetime(spec.date or now)
    message["Message-ID"] = spec.message_id or make_msgid(domain=spec.sender.rpartition("@")[2])
    for name, value in spec.headers.items():
        message[name] = value
    message.set_content(spec.text or "")
    if spec.html is not None:
        if spec.text is None:
            message.set_content(spec.html, subtype="html")
        else:
            message.add_alternative(spec.html, subtype="html")
    for name, content in spec.attachments.items():
        message.add_attachment(
            content.encode(), maintype="application", subtype="octet-stream", filename=name
        )
    return message.as_bytes(policy=email.policy.SMTP)


def _summary(stored: StoredMessage) -> dict[str, Any]:
    return {
        "id": stored.id,
        "threadId": stored.thread_id,
        "labelIds": stored.label_ids,
        "messageId": str(stored.parsed.get("message-id", "")).strip(),
        "internalDate": stored.internal_date.isoformat(),
        "historyId": stored.history_id,
    }


@admin_router.post("/{address}/messages")
async def seed_message(request: Request, address: str, spec: SeedSpec) -> dict[str, Any]:
    """Mail arriving in one mailbox from outside (raw bytes, or a fixture)."""
    emulator = emulator_of(request)
    mailbox = gmail_state(emulator).mailbox(address)
    return _summary(
        add_message(emulator, mailbox, _raw_of(spec), spec.label_ids, spec.internal_date)
    )


@admin_router.post("/deliver")
async def deliver(request: Request, spec: DeliverySpec) -> dict[str, Any]:
    """Send a message from ``sender`` to its recipients: the sender's ``SENT`` copy and each
    recipient's ``INBOX`` copy carry the same bytes and ``Message-ID``."""
    emulator = emulator_of(request)
    state = gmail_state(emulator)
    raw = compose(spec, emulator.clock.now())
    copies = {spec.sender.lower(): ["SENT"]}
    for recipient in [*spec.to, *spec.cc]:
        labels = copies.setdefault(recipient.lower(), [])
        labels += ["INBOX", "UNREAD"]
    when = spec.date or emulator.clock.now()
    return {
        address: _summary(add_message(emulator, state.mailbox(address), raw, labels, when))
        for address, labels in copies.items()
    }


@admin_router.get("/outbound")
async def outbound_mail(request: Request) -> list[dict[str, Any]]:
    """Every copy of a sent message to an address outside the emulated mailboxes, oldest
    first (its bytes base64url, as recipients got them)."""
    return [
        {
            "sender": mail.sender,
            "recipient": mail.recipient,
            "messageId": mail.message_id,
            "raw": _b64(mail.raw),
            "sentAt": mail.sent_at.isoformat(),
        }
        for mail in gmail_state(emulator_of(request)).outbound
    ]


@admin_router.get("/{address}/messages")
async def mailbox_messages(request: Request, address: str) -> list[dict[str, Any]]:
    """Every message of a mailbox (spam and trash too), newest first."""
    mailbox = gmail_state(emulator_of(request)).mailbox(address)
    ordered = sorted(mailbox.messages.values(), key=lambda m: m.internal_date, reverse=True)
    return [_summary(m) for m in ordered]


@admin_router.post("/{address}/messages/{message_id}/labels")
async def modify_labels(
    request: Request, address: str, message_id: str, spec: LabelChange
) -> dict[str, Any]:
    """The user changes a message's labels (reads it, archives it, labels it)."""
    emulator = emulator_of(request)
    mailbox = gmail_state(emulator).mailbox(address)
    stored = _find(mailbox, message_id)
    change_labels(emulator, mailbox, stored, spec.add, spec.remove)
    return _summary(stored)


@admin_router.delete("/{address}/messages/{message_id}", status_code=204)
async def remove_message(request: Request, address: str, message_id: str) -> Response:
    """The user deletes a message for good (not to the trash)."""
    emulator = emulator_of(request)
    mailbox = gmail_state(emulator).mailbox(address)
    delete_message(emulator, mailbox, _find(mailbox, message_id))
    return Response(status_code=204)


@admin_router.post("/{address}/labels")
async def add_label(request: Request, address: str, spec: LabelSpec) -> dict[str, str]:
    mailbox = gmail_state(emulator_of(request)).mailbox(address)
    label_id = "Label_" + hashlib.sha1(spec.name.encode(), usedforsecurity=False).hexdigest()[:8]
    mailbox.labels[label_id] = spec.name
    return {"id": label_id, "name": spec.name}


@admin_router.post("/{address}/history/expire")
async def expire_history(request: Request, address: str) -> dict[str, str]:
    """Forget the mailbox's history so far: older ``startHistoryId``s answer ``404``."""
    mailbox = gmail_state(emulator_of(request)).mailbox(address)
    mailbox.history.clear()
    mailbox.oldest_history = mailbox.history_id
    return {"historyId": str(mailbox.history_id)}


@admin_router.get("/{address}/watch")
async def get_watch(request: Request, address: str) -> dict[str, Any]:
    mailbox = gmail_state(emulator_of(request)).mailbox(address)
    if mailbox.watch is None:
        return {"watching": False}
    return {
        "watching": True,
        "topic": mailbox.watch.topic,
        "expiration": mailbox.watch.expiration.isoformat(),
    }
