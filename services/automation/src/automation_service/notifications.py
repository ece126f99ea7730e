"""Owner-change emails, exactly one per change.

``crm.<type>.owner_changed`` records the notification (its id: the event's) and asks for its
sending (``automation.notification.requested``), both in the transaction of the event's inbox
row: a redelivered change finds it and does nothing. The send is keyed by the notification, so
gmail's internal send never sends it twice, whatever was lost after Gmail stored it; once sent,
``automation.notification.sent`` puts it on the record's timeline, merged by its ``Message-ID``
with the copies that mailboxes' syncs read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from automation_service import templates
from automation_service.models import (
    Notification,
    NotificationPreference,
    OrgAutomationSettings,
    outbox,
)
from automation_service.schemas import PreferencesPublic
from automation_service.settings import AutomationSettings
from automation_service.sla_notice import SLA_KINDS, sla_notice
from pipedesk_common.app import ServiceContext
from pipedesk_common.consumer import Consumer
from pipedesk_common.directory import DirectoryUser, OrgDirectory
from pipedesk_common.events import Event, new_event
from pipedesk_common.events.automation import NotificationRequested, NotificationSent
from pipedesk_common.events.crm import DealOwnerChanged, LeadOwnerChanged, OwnerChange
from pipedesk_common.events.timeline import (
    ItemKind,
    Link,
    RecordType,
    TimelineProjection,
    TimelineSource,
    identity_of,
)
from pipedesk_common.outbox import add_events_to

OWNER_CHANGED: Final = "owner_changed"
SLA_WARNING: Final = "sla_warning"
SLA_BREACHED: Final = "sla_breached"
KINDS: Final = (OWNER_CHANGED, SLA_WARNING, SLA_BREACHED)
RECORD_TYPES: Final[dict[type[OwnerChange], str]] = {
    LeadOwnerChanged: "lead",
    DealOwnerChanged: "deal",
}


def email_identity(message_id: str) -> str:
    """A ``Message-ID`` as the timeline identity gmail gives every copy of the email: without
    its angle brackets (``identity_of`` digests one longer than an identity takes)."""
    return identity_of(message_id.strip().strip("<>").strip())


class SendFailed(RuntimeError):
    """A send worth retrying; its message is the reason a dead letter shows."""


async def wants(session: AsyncSession, org_id: str, user_id: str, kind: str) -> bool:
    enabled = await session.scalar(
        select(col(NotificationPreference.enabled)).where(
            col(NotificationPreference.org_id) == org_id,
            col(NotificationPreference.user_id) == user_id,
            col(NotificationPreference.kind) == kind,
        )
    )
    return enabled is not False


async def preferences_of(session: AsyncSession, org_id: str, user_id: str) -> PreferencesPublic:
    """The user's choice for each kind (a kind they never chose is on)."""
    rows = await session.execute(
        select(col(NotificationPreference.kind), col(NotificationPreference.enabled)).where(
            col(NotificationPreference.org_id) == org_id,
            col(NotificationPreference.user_id) == user_id,
        )
    )
    chosen: dict[str, bool] = {row[0]: row[1] for row in rows.all()}
    return PreferencesPublic(**{kind: chosen.get(kind) is not False for kind in KINDS})


async def notify_previous_owner(session: AsyncSession, org_id: str) -> bool:
    settings = await session.get(OrgAutomationSettings, org_id)
    return settings is not None and settings.notify_previous_owner


async def record_owner_change(session: AsyncSession, event: Event[OwnerChange]) -> None:
    data = event.data
    candidates = [data.new_owner_id]
    if data.previous_owner_id != data.new_owner_id and await notify_previous_owner(
        session, data.org_id
    ):
        candidates.append(data.previous_owner_id)
    recipients = [
        user for user in candidates if await wants(session, data.org_id, user, OWNER_CHANGED)
    ]
    recorded = await session.scalar(
        insert(Notification)
        .values(
            id=event.id,
            org_id=data.org_id,
            kind=OWNER_CHANGED,
            record_type=RECORD_TYPES[type(data)],
            record_id=data.id,
            actor_id=data.changed_by,
            new_owner_id=data.new_owner_id,
            previous_owner_id=data.previous_owner_id,
            reason=data.reason,
            recipient_ids=recipients,
            status="pending" if recipients else "skipped",
            created_at=event.time,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(col(Notification.id))
    )
    if recorded is None or not recipients:
        return
    await add_events_to(
        session,
        outbox,
        [
            new_event(
                NotificationRequested(notification_id=event.id, org_id=data.org_id),
                org_id=data.org_id,
                actor_id=data.changed_by,
                time=event.time,
            )
        ],
    )


def _name(user: DirectoryUser | None, fallback: str) -> str:
    if user is None:
        return fallback
    return user.name or user.email or fallback


class NotificationSender:
    def __init__(self, context: Callable[[], ServiceContext], settings: AutomationSettings) -> None:
        self._context = context
        self.settings = settings

    def directory(self) -> OrgDirectory:
        context = self._context()
        return OrgDirectory(
            self.settings.crm_base_url, http=lambda: context.http, issuer=context.issuer
        )

    async def send(self, session: AsyncSession, event: Event[NotificationRequested]) -> None:
        notification = await session.get(Notification, event.data.notification_id)
        if (
            notification is None
            or notification.org_id != event.data.org_id
            or notification.status != "pending"
        ):
            return
        directory = self.directory()
        org = notification.org_id
        recipients = [await directory.user(org, user) for user in notification.recipient_ids]
        addresses = [user.email for user in recipients if user is not None and user.email]
        if not addresses:
            notification.status = "skipped"
            return
        url = self.settings.record_url(notification.record_type, notification.record_id)
        if notification.kind in SLA_KINDS:
            rendered = await sla_notice(session, notification, url)
        else:
            actor = await directory.user(org, notification.actor_id)
            new_owner = await directory.user(org, notification.new_owner_id)
            previous = await directory.user(org, notification.previous_owner_id)
            rendered = templates.owner_changed(
                record_kind=notification.record_type,
                actor=_name(actor, "Someone"),
                new_owner=_name(new_owner, "a teammate"),
                previous_owner=_name(previous, "") or None,
                reason=notification.reason,
                url=url,
            )
        body: dict[str, Any] = {
            "org_id": org,
            "key": f"notification:{notification.id}",
            "to": addresses,
            "subject": rendered.subject,
            "text": rendered.text,
            "html": rendered.html,
            "links": [{"type": notification.record_type, "id": notification.record_id}],
        }
        if notification.sender_id is not None:
            body["sender_id"] = notification.sender_id
        sent = await self._post(body)
        if sent is None:
            # No automation sender in the org: the actor's own mailbox sends, from now on
            # always (the key stays the notification's).
            notification.sender_id = notification.actor_id
            await session.flush()
            sent = await self._post({**body, "sender_id": notification.actor_id})
            if sent is None:
                raise SendFailed(
                    f"notification {notification.id}: the org has no automation sender and "
                    "the actor's mailbox cannot send"
                )
        notification.status = "sent"
        notification.message_id = str(sent["rfc822_message_id"])
        notification.sent_at = event.time
        link = Link(type=RecordType(notification.record_type), id=notification.record_id)
        participants = sorted({*addresses, str(sent["sender"])})
        await add_events_to(
            session,
            outbox,
            [
                new_event(
                    NotificationSent(
                        notification_id=notification.id,
                        org_id=org,
                        kind=notification.kind,
                        record=link,
                        sender=str(sent["sender"]),
                        recipient_ids=notification.recipient_ids,
                        message_id=notification.message_id,
                        timeline=TimelineProjection(
                            kind=ItemKind.EMAIL,
                            occurred_at=self._context().clock.now(),
                            title=rendered.subject,
                            summary=rendered.text[:4000],
                            participants=participants,
                            links=[link],
                            source=TimelineSource(
                                service="automation",
                                key=f"automation:notification:{notification.id}",
                                google_id=sent.get("google_id"),
                            ),
                            identity=email_identity(notification.message_id),
                            actor_id=notification.actor_id,
                        ),
                    ),
                    org_id=org,
                    actor_id=notification.actor_id,
                    time=self._context().clock.now(),
                )
            ],
        )

    async def _post(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """gmail's answer, or None when the org has no automation sender."""
        context = self._context()
        url = f"{self.settings.url_of('gmail')}/internal/gmail/messages"
        try:
            answer = await context.http.post(
                url,
                json=body,
                headers={"Authorization": f"Bearer {context.issuer().token_for('gmail')}"},
                timeout=60,
            )
        except httpx.HTTPError as exc:
            raise SendFailed(
                f"{body['key']}: the gmail service cannot be reached ({type(exc).__name__})"
            ) from exc
        if answer.status_code in {200, 201}:
            found: dict[str, Any] = answer.json()
            return found
        if answer.status_code == 422 and "sender_id" not in body:
            errors = answer.json().get("errors") or []
            if any(error.get("field") == "body.sender_id" for error in errors):
                return None
        raise SendFailed(
            f"{body['key']}: the gmail service answered {answer.status_code}: {answer.text[:300]}"
        )


def subscribe_notifications(changes: Consumer, sends: Consumer, sender: NotificationSender) -> None:
    for model in RECORD_TYPES:
        changes.on(model)(record_owner_change)
    sends.on(NotificationRequested)(sender.send)
