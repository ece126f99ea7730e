from pipedesk_common.migrations import run_migrations
from timeline_service.models import TimelineModel

run_migrations(TimelineModel.metadata)
