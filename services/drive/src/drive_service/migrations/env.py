from drive_service.models import DriveModel
from pipedesk_common.migrations import run_migrations

run_migrations(DriveModel.metadata)
