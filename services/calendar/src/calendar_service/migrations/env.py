from calendar_service.models import CalendarModel
from pipedesk_common.migrations import run_migrations

run_migrations(CalendarModel.metadata)
