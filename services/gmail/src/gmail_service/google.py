"""The Gmail calls this service makes, what Google answers as typed models, and what each costs
in Gmail's quota units (Gmail API usage limits: per user, 250 units a second)."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from googleapiclient.http import MediaInMemoryUpload

from pipedesk_common.clock import Clock
from pipedesk_common.errors import NotFound
from pipedesk_common.google import GoogleApi, GoogleUser
from pipedesk_common.google.resources import GoogleModel, GoogleResource, Page
from pipedesk_common.mirror.paged import WatermarkExpired

# Gmail's quota units per method (developers.google.com/gmail/api/reference/quota).
UNITS: Final = {
    "users.getProfile": 1,
    "users.messages.list": 5,
    "users.messages.get": 5,
    "users.history.list": 2,
    "users.watch": 100,
    "users.stop": 50,
    "users.messages.send": 100,
}
# The headers a reply is built from (``messages.get`` in ``metadata`` format).
REPLY_HEADERS: Final = ("Message-ID", "References", "Subject", "From", "Reply-To", "To", "Cc")


class MessageRef(GoogleResource):
    id: str
    thread_id: str = ""
    label_ids: list[str] | None = None  # in history: the labels after the change


class GmailMessage(GoogleResource):
    """A message as ``messages.get`` answers it (``raw`` format: its bytes, base64url)."""

    id: str
    thread_id: str = ""
    label_ids: list[str] = []
    history_id: str | None = None
    internal_date: str | None = None
    encoded: str | None = None  # the ``raw`` field (the name ``raw`` keeps Google's answer)
    deleted: bool = False  # not Google's: this service's note that the message is gone

    @classmethod
    def read(cls, answer: dict[str, object]) -> GmailMessage:
        return cls.model_validate({**answer, "encoded": answer.get("raw"), "raw": answer})

    @property
    def etag(self) -> str | None:
        return self.history_id

    @property
    def updated(self) -> datetime | None:
        return None

    @property
    def received_at(self) -> datetime | None:
        if self.internal_date is None or not self.internal_date.isdigit():
            return None
        return datetime.fromtimestamp(int(self.internal_date) / 1000, UTC)

    def content(self) -> bytes | None:
        if self.encoded is None:
            return None
        try:
            return base64.urlsafe_b64decode(self.encoded + "=" * (-len(self.encoded) % 4))
        except (binascii.Error, ValueError):
            return None


class Profile(GoogleResource):
    email_address: str
    history_id: str


class OriginalHeaders(GoogleResource):
    """A message as ``messages.get`` answers it in ``metadata`` format: what a reply needs."""

    id: str
    thread_id: str = ""
    payload: dict[str, object] = {}

    def header(self, name: str) -> str:
        """The first header of that name ("" when it has none)."""
        headers = self.payload.get("headers")
        for item in headers if isinstance(headers, list) else []:
            if isinstance(item, dict) and str(item.get("name", "")).lower() == name.lower():
                return str(item.get("value", ""))
        return ""


class HistoryMessage(GoogleModel):
    message: MessageRef
    label_ids: list[str] = []


class HistoryChange(GoogleModel):
    id: str = ""
    thread_id: str = ""
    label_ids: list[str] | None = None


class HistoryRecord(GoogleResource):
    id: str
    messages: list[HistoryChange] = []
    messages_added: list[HistoryMessage] = []
    messages_deleted: list[HistoryMessage] = []
    labels_added: list[HistoryMessage] = []
    labels_removed: list[HistoryMessage] = []


class Watched(GoogleResource):
    history_id: str
    expiration: str

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(int(self.expiration) / 1000, UTC)


class QuotaBudget:
    """One mailbox's quota units, refilled at ``rate`` a second on the clock up to ``burst``: a
    call spends its units first, and waits (on the clock) for what it overspends. Calls made at
    once spend one after the other, each after the wait of the one before."""

    def __init__(self, clock: Clock, rate: float, burst: int) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = clock.now()
        self.spent = 0
        self.waited = 0.0  # seconds, on the clock
        self._turn = asyncio.Lock()

    async def spend(self, units: int) -> None:
        async with self._turn:
            await self._spend(units)

    async def _spend(self, units: int) -> None:
        now = self.clock.now()
        elapsed = max(0.0, (now - self.stamp).total_seconds())
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        self.stamp = now
        self.tokens -= units
        self.spent += units
        if self.tokens < 0:
            wait = -self.tokens / self.rate
            self.waited += wait
            await self.clock.sleep(wait)
            self.tokens = 0.0
            self.stamp = self.clock.now()


class GmailGoogle:
    def __init__(self, api: GoogleApi) -> None:
        self.api = api
        self._pacing: tuple[Clock, float, int] | None = None
        self._budgets: OrderedDict[GoogleUser, QuotaBudget] = OrderedDict()

    def pace(self, clock: Clock, rate: float, burst: int) -> None:
        """Pace every mailbox's calls to ``rate`` quota units a second (bursts of ``burst``)."""
        self._pacing = (clock, rate, burst)

    def budget(self, user: GoogleUser) -> QuotaBudget:
        """The user's quota budget (made on first use)."""
        assert self._pacing is not None, "the calls are paced before they are made"
        found = self._budgets.get(user)
        if found is None:
            found = self._budgets[user] = QuotaBudget(*self._pacing)
            while len(self._budgets) > 10_000:
                self._budgets.popitem(last=False)
        self._budgets.move_to_end(user)
        return found

    async def _spend(self, user: GoogleUser, method: str) -> None:
        await self.budget(user).spend(UNITS[method])

    async def profile(self, user: GoogleUser) -> Profile:
        await self._spend(user, "users.getProfile")
        return await self.api.parsed(
            user,
            "users.getProfile",
            lambda client: client.users().getProfile(userId="me"),
            Profile,
        )

    async def message_ids(
        self, user: GoogleUser, query: str, page_token: str | None, size: int
    ) -> Page[MessageRef]:
        """One page of the ids of the messages matching ``query``, newest first."""
        await self._spend(user, "users.messages.list")
        return await self.api.page(
            user,
            "users.messages.list",
            lambda client: (
                client.users()
                .messages()
                .list(userId="me", q=query, maxResults=size, pageToken=page_token)
            ),
            MessageRef,
            items="messages",
            skip_unreadable=True,
        )

    async def message(self, user: GoogleUser, message_id: str) -> GmailMessage | None:
        """The message with its bytes; None when it is gone from the mailbox."""
        await self._spend(user, "users.messages.get")
        try:
            answer = await self.api.call(
                user,
                "users.messages.get",
                lambda client: (
                    client.users().messages().get(userId="me", id=message_id, format="raw")
                ),
            )
        except NotFound:
            return None
        return GmailMessage.read(answer)

    async def messages(self, user: GoogleUser, message_ids: Sequence[str]) -> list[GmailMessage]:
        """The messages of these ids still in the mailbox, in order: read at once, as many at a
        time as the kit lets a user's calls run; the first failure stops the others."""
        reads = [asyncio.create_task(self.message(user, message_id)) for message_id in message_ids]
        try:
            found = await asyncio.gather(*reads)
        except BaseException:
            for read in reads:
                read.cancel()
            await asyncio.wait(reads)
            raise
        return [message for message in found if message is not None]

    async def history(
        self, user: GoogleUser, start: str, page_token: str | None, size: int
    ) -> tuple[Page[HistoryRecord], str]:
        """One page of the mailbox's history after ``start``, and the mailbox's ``historyId``;
        ``WatermarkExpired`` when Gmail no longer holds history from ``start``."""
        await self._spend(user, "users.history.list")
        try:
            answer = await self.api.call(
                user,
                "users.history.list",
                lambda client: (
                    client.users()
                    .history()
                    .list(userId="me", startHistoryId=start, maxResults=size, pageToken=page_token)
                ),
            )
        except NotFound as error:
            raise WatermarkExpired(start) from error
        records = [HistoryRecord.model_validate(item) for item in answer.get("history", [])]
        page = Page(items=records, next_page_token=answer.get("nextPageToken"))
        return page, str(answer.get("historyId") or start)

    async def watch(self, user: GoogleUser, topic: str) -> Watched:
        await self._spend(user, "users.watch")
        return await self.api.parsed(
            user,
            "users.watch",
            lambda client: client.users().watch(userId="me", body={"topicName": topic}),
            Watched,
        )

    async def stop(self, user: GoogleUser) -> None:
        await self._spend(user, "users.stop")
        await self.api.ensure_gone(
            user, "users.stop", lambda client: client.users().stop(userId="me")
        )

    async def original(self, user: GoogleUser, message_id: str) -> OriginalHeaders | None:
        """The headers of a message of the mailbox a reply answers; None when it is gone."""
        await self._spend(user, "users.messages.get")
        try:
            return await self.api.parsed(
                user,
                "users.messages.get",
                lambda client: (
                    client.users()
                    .messages()
                    .get(
                        userId="me",
                        id=message_id,
                        format="metadata",
                        metadataHeaders=list(REPLY_HEADERS),
                    )
                ),
                OriginalHeaders,
            )
        except NotFound:
            return None

    async def sent_by_id(self, user: GoogleUser, rfc822_message_id: str) -> MessageRef | None:
        """The mailbox's message with this ``Message-ID`` (``rfc822msgid:``), if there is one:
        what a send whose answer was lost did."""
        page = await self.message_ids(
            user, f"rfc822msgid:{rfc822_message_id.strip('<>')} in:anywhere", None, 1
        )
        return page.items[0] if page.items else None

    async def send(
        self, user: GoogleUser, raw: bytes, thread_id: str | None, rfc822_message_id: str
    ) -> MessageRef:
        """``users.messages.send`` of ``raw`` (an upload, not base64 in JSON), in the thread
        ``thread_id``. Never sent twice: after an ambiguous failure (a timeout, a lost answer, a
        5xx) the mailbox is searched for its ``Message-ID`` first, and sent again only if it is
        not there."""

        async def reconcile() -> dict[str, object] | None:
            found = await self.sent_by_id(user, rfc822_message_id)
            return None if found is None else {"id": found.id, "threadId": found.thread_id}

        def request(client: Any) -> Any:
            media = MediaInMemoryUpload(raw, mimetype="message/rfc822", resumable=False)
            body = {"threadId": thread_id} if thread_id else None
            return client.users().messages().send(userId="me", body=body, media_body=media)

        await self._spend(user, "users.messages.send")
        return await self.api.parsed(
            user, "users.messages.send", request, MessageRef, reconcile=reconcile
        )
