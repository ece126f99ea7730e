from crm_service.models import CrmModel
from pipedesk_common.migrations import run_migrations

run_migrations(CrmModel.metadata)
