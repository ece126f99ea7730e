"""Reading mail at the viewer's level: a message, a thread, a record's messages.

A message is one item however many of the org's mailboxes hold a copy (its ``Message-ID``), as
on the timeline, and the timeline's rule decides what a viewer sees of it:

- the viewer may read it if they hold a copy, or if it is on a lead or deal they can read (a
  record the timeline attached it to, or one a holder linked it to by hand); else ``404``;
- their level of each copy is ``full`` for their own copy and for mail they take part in (an
  address of theirs among its participants), else the copy's mailbox's sharing level (its own,
  else the org's default; ``metadata`` once the mailbox is disconnected);
- they are shown the copy they may see most of (the newest of those), at that level:
  ``metadata`` who and when, ``subject`` and the subject, ``full`` and the body and attachments.

Which records an item is on is the timeline's to say (it matches participants to contacts and
their leads and deals): it is read from the timeline service's internal routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from gmail_service.mirror import MESSAGE_LINKS
from gmail_service.models import Mailbox, MirroredMessage
from gmail_service.read_repository import MailReadRepository
from gmail_service.repository import GmailRepository
from gmail_service.sync import GmailRuntime
from pipedesk_common.app import ServiceContext
from pipedesk_common.auth import Principal
from pipedesk_common.errors import NotFound, ServiceUnavailable
from pipedesk_common.events.timeline import Link, RecordType
from pipedesk_common.internal_calls import read_internal
from pipedesk_common.rbac import Action

# Records whose access lists decide who reads a teammate's mail (contacts and companies are
# readable org-wide: mail on them alone is no teammate's to read, as on their timelines).
ACL_RECORDS: Final = frozenset({RecordType.LEAD, RecordType.DEAL})
MAX_IDENTITIES: Final = 100
# Kept well under what HTTP servers take in a request line (h11: 16 KiB with the headers).
MAX_QUERY_CHARACTERS: Final = 6000


class Level(IntEnum):
    METADATA = 1
    SUBJECT = 2
    FULL = 3


LEVEL_NAMES: Final = {"metadata": Level.METADATA, "subject": Level.SUBJECT, "full": Level.FULL}


class MessageNotFound(NotFound):
    slug, title = "message-not-found", "No such message"


@dataclass(frozen=True)
class ShownMessage:
    """A message as one viewer is shown it: the copy they may see most of, at their level."""

    copy: MirroredMessage
    level: Level
    own: bool
    viewer_id: str
    links: list[Link]
    hidden_links: list[Link]

    @property
    def level_name(self) -> str:
        return self.level.name.lower()


@dataclass(frozen=True)
class RecordItem:
    """A message on a record, as the timeline lists it."""

    identity: str
    item_id: UUID
    occurred_at: datetime


def copy_level(
    principal: Principal, message: MirroredMessage, mailbox: Mailbox, default: str
) -> Level:
    """The viewer's level of one copy (the timeline's rule)."""
    email = (principal.email or "").strip().lower()
    if message.user_id == principal.sub or (email and email in message.participants):
        return Level.FULL
    if not mailbox.connected:
        return Level.METADATA
    return LEVEL_NAMES.get(mailbox.sharing or default, Level.METADATA)


def _url_sized(identities: Sequence[str]) -> list[list[str]]:
    """The identities in groups that fit one request's query string (at most
    ``MAX_IDENTITIES``, about ``MAX_QUERY_CHARACTERS`` once percent-encoded)."""
    groups: list[list[str]] = []
    size = 0
    for identity in identities:
        length = 3 * len(identity) + len("identity=&")  # each character encoded, at worst
        if not groups or len(groups[-1]) >= MAX_IDENTITIES or size + length > MAX_QUERY_CHARACTERS:
            groups.append([])
            size = 0
        groups[-1].append(identity)
        size += length
    return groups


class TimelineRecords:
    """What the timeline service says of the records items are on."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.base = context.settings.url_of("timeline")

    async def _read(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        found = await read_internal(
            self.context.http,
            self.context.issuer(),
            "timeline",
            self.base + path,
            what="the records mail is on",
            params=params,
        )
        if not isinstance(found, dict):
            raise ServiceUnavailable("the timeline service did not say which records mail is on")
        return found

    async def records_of(self, org_id: str, identities: Sequence[str]) -> dict[str, list[Link]]:
        found: dict[str, list[Link]] = {identity: [] for identity in identities}
        for chunk in _url_sized(identities):
            answer = await self._read(f"/internal/orgs/{org_id}/items/records", {"identity": chunk})
            for item in answer.get("items", []):
                found[item["identity"]] = [Link.model_validate(r) for r in item["records"]]
        return found

    async def record_page(
        self,
        org_id: str,
        record: Link,
        *,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[RecordItem]:
        params: dict[str, Any] = {"service": "gmail", "limit": limit}
        if after is not None:
            params["after_at"] = after[0].isoformat()
            params["after_id"] = str(after[1])
        answer = await self._read(
            f"/internal/orgs/{org_id}/records/{record.type.value}/{record.id}/items", params
        )
        return [
            RecordItem(
                identity=item["identity"],
                item_id=UUID(item["item_id"]),
                occurred_at=datetime.fromisoformat(item["occurred_at"]),
            )
            for item in answer.get("items", [])
        ]


class MailReader:
    """Reads the org's mail for one viewer."""

    def __init__(self, runtime: GmailRuntime, context: ServiceContext) -> None:
        self.runtime = runtime
        self.timeline = TimelineRecords(context)

    async def _readable(
        self, session: AsyncSession, principal: Principal, links: Iterable[Link]
    ) -> tuple[bool, list[Link]]:
        """Whether one of ``links`` is a lead or deal the viewer can read; and those they cannot."""
        readable = False
        hidden: list[Link] = []
        for link in links:
            can = link.type in ACL_RECORDS and await self.runtime.replica.can(
                session, principal, Action.READ, link.type.value, link.id
            )
            readable = readable or can
            if not can:
                hidden.append(link)
        return readable, hidden

    async def shown(
        self,
        principal: Principal,
        identities: Sequence[str],
        *,
        on_readable_record: bool = False,
    ) -> dict[str, ShownMessage]:
        """The messages of these identities the viewer may read, each as they are shown it.
        ``on_readable_record``: the caller already knows each is on a record the viewer reads."""
        org_id = principal.org_id
        async with self.runtime.uow.read() as session:
            rows = await MailReadRepository(session).copies(org_id, identities)
            settings = await GmailRepository(session).settings(org_id)
            manual = await MESSAGE_LINKS.of(session, [message.id for message, _ in rows])
        default = settings.default_sharing if settings else "metadata"
        by_identity: dict[str, list[tuple[MirroredMessage, Mailbox]]] = {}
        for message, mailbox in rows:
            by_identity.setdefault(message.identity, []).append((message, mailbox))
        held = {
            identity
            for identity, copies in by_identity.items()
            if any(message.user_id == principal.sub for message, _ in copies)
        }
        records: dict[str, list[Link]] = {}
        if not on_readable_record and set(by_identity) - held:
            records = await self.timeline.records_of(org_id, sorted(set(by_identity) - held))
        found: dict[str, ShownMessage] = {}
        async with self.runtime.uow.write() as session:
            for identity, copies in by_identity.items():
                linked = sorted(
                    {link for message, _ in copies for link in manual[message.id]},
                    key=lambda link: (link.type.value, link.id),
                )
                readable, hidden = await self._readable(
                    session, principal, {*linked, *records.get(identity, [])}
                )
                own = identity in held
                if not (own or readable or on_readable_record):
                    continue
                levels = [(copy_level(principal, m, b, default), m) for m, b in copies]
                level, copy = max(
                    levels,
                    key=lambda pair: (
                        pair[0],
                        pair[1].user_id == principal.sub,
                        pair[1].updated_at,
                        pair[1].id,
                    ),
                )
                found[identity] = ShownMessage(
                    copy=copy,
                    level=level,
                    own=own,
                    viewer_id=principal.sub,
                    links=linked,
                    hidden_links=[link for link in linked if link in hidden],
                )
        return found

    async def message(self, principal: Principal, message_id: UUID) -> ShownMessage:
        """A message (any copy's id) as the viewer is shown it; ``404`` if they may not read it."""
        async with self.runtime.uow.read() as session:
            copy = await MailReadRepository(session).copy(principal.org_id, message_id)
        if copy is None:
            raise MessageNotFound("no such message")
        found = (await self.shown(principal, [copy.identity])).get(copy.identity)
        if found is None:
            raise MessageNotFound("no such message")
        return found

    async def thread(self, principal: Principal, thread_id: str) -> list[ShownMessage]:
        """The thread's messages the viewer may read, oldest first; ``404`` if none."""
        async with self.runtime.uow.read() as session:
            identities = await MailReadRepository(session).thread_identities(
                principal.org_id, thread_id
            )
        shown = await self.shown(principal, identities)
        if not shown:
            raise NotFound("no such thread")
        return sorted(shown.values(), key=lambda item: (item.copy.internal_date, item.copy.id))

    async def record_messages(
        self,
        principal: Principal,
        record: Link,
        *,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> tuple[list[ShownMessage], RecordItem | None]:
        """A page of a record's messages (newest first), each at the viewer's level, and the
        last item of the page when more follow. The caller checked that the viewer reads the
        record."""
        items = await self.timeline.record_page(
            principal.org_id, record, after=after, limit=limit + 1
        )
        more = len(items) > limit
        items = items[:limit]
        shown = await self.shown(
            principal, [item.identity for item in items], on_readable_record=True
        )
        page = [shown[item.identity] for item in items if item.identity in shown]
        return page, items[-1] if more else None

    async def require_readable_record(self, principal: Principal, record: Link) -> None:
        """``404`` unless the viewer can read the record."""
        async with self.runtime.uow.write() as session:
            readable = await self.runtime.replica.can(
                session, principal, Action.READ, record.type.value, record.id
            )
        if not readable:
            raise NotFound(f"no such {record.type.value}")
