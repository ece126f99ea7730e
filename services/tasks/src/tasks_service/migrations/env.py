from pipedesk_common.migrations import run_migrations
from tasks_service.models import TasksModel

run_migrations(TasksModel.metadata)
