"""The gmail service: every connected mailbox synced by history and push, its mail matched onto
record timelines at each mailbox's sharing level, on the Google service kit."""

from __future__ import annotations

from gmail_service import api, automation_api, models, read_api, send_api, service, sync
from gmail_service.google import GmailGoogle
from gmail_service.settings import GmailSettings
from pipedesk_common.mirror.assembly import GoogleProduct, ProductLifecycle
from pipedesk_common.observability import BodyLimit
from pipedesk_common.uploads import gmail_send_limits


def send_limits(settings: GmailSettings) -> list[BodyLimit]:
    """Send and reply take up to ``GMAIL_MAX_SEND_BYTES`` (attachments); every other route
    keeps the 1 MiB default."""
    return gmail_send_limits(settings.max_send_bytes)


GMAIL = GoogleProduct(
    name="gmail",
    api_version="v1",
    title="PipeDesk gmail",
    description="Every connected mailbox synced (a bounded window, then history and push), "
    "each message one timeline item matched to the records of its participants, shown at "
    "its mailbox's sharing level.",
    tables=models.TABLES,
    routers=[
        api.router,
        read_api.router,
        send_api.router,
        api.webhooks,
        send_api.internal,
        automation_api.internal,
    ],
    google=GmailGoogle,
    sync=sync.gmail_sync,
    resync=service.resync_user,
    jobs=service.gmail_jobs,
    example_job="gmail.catch-up",
    access_ended=service.mailbox_ended,
    lifecycle=ProductLifecycle(
        user_deactivated=service.user_deactivated,
        user_google_data_deleted=service.user_google_data_deleted,
        org_offboarded=service.org_offboarded,
        google_disconnected=service.user_google_disconnected,
    ),
    body_limits=send_limits,
)
build_app = GMAIL.app
