import automation_service.sla_models  # noqa: F401  (its tables join the metadata)
from automation_service.models import AutomationModel
from pipedesk_common.migrations import run_migrations

run_migrations(AutomationModel.metadata)
