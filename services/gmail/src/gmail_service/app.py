"""The gmail service: every connected mailbox synced by history and push, its mail matched onto
record timelines at each mailbox's sharing level, on the Google service kit."""

from __future__ import annotations

from gmail_service import api, models, read_api, service, sync
from gmail_service.google import GmailGoogle
from pipedesk_common.mirror.assembly import GoogleProduct

GMAIL = GoogleProduct(
    name="gmail",
    api_version="v1",
    title="PipeDesk gmail",
    description="Every connected mailbox synced (a bounded window, then history and push), "
    "each message one timeline item matched to the records of its participants, shown at "
    "its mailbox's sharing level.",
    tables=models.TABLES,
    routers=[api.router, read_api.router, api.webhooks],
    google=GmailGoogle,
    sync=sync.gmail_sync,
    resync=service.resync_user,
    jobs=service.gmail_jobs,
    example_job="gmail.catch-up",
    access_ended=service.mailbox_ended,
)
build_app = GMAIL.app
