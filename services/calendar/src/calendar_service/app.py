"""The calendar service: Google Calendar events linked to CRM records, on the Google service kit."""

from calendar_service import api, jobs, models, retention, sync
from calendar_service.google import CalendarGoogle
from pipedesk_common.mirror.assembly import GoogleProduct, ProductLifecycle

CALENDAR = GoogleProduct(
    name="calendar",
    api_version="v3",
    title="PipeDesk calendar",
    description="Google Calendar events in the users' calendars, linked to CRM records, "
    "mirrored locally and kept in step by push notifications.",
    tables=models.TABLES,
    routers=[api.router],
    google=CalendarGoogle,
    sync=sync.calendar_sync,
    resync=sync.resync_user,
    jobs=jobs.calendar_jobs,
    example_job="calendar.reconcile",
    push=sync.key_of_channel,
    access_ended=retention.access_ended,
    lifecycle=ProductLifecycle(),
)
build_app = CALENDAR.app
